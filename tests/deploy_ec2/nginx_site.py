"""Render the shipped nginx site for loopback ports and run a real nginx with it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO_ROOT

SITE = REPO_ROOT / "deploy" / "ec2" / "nginx" / "opsforge.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

MAIN_CONF = """
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include /etc/nginx/mime.types;
    include {tmp}/site.conf;
}}
"""


@dataclass
class NginxSite:
    folder: Path
    port: int

    @property
    def conf(self) -> Path:
        return self.folder / "nginx.conf"


def render_site(
    folder: Path,
    port: int,
    console_port: int,
    api_port: int,
    user: str,
    password: str,
    *,
    auth_dir: Path | None = None,
    worker: str | None = None,
) -> NginxSite:
    """Write the shipped site with its ports and paths rewritten into ``folder``.

    The site reads ``htpasswd`` from ``auth_dir`` when given (as ec2_setup.sh writes it), else
    from a file written here for ``user`` and ``password``. ``worker`` is the user, and
    optionally the group, that nginx's worker processes run as. Without it they run as root
    when the test runs as root.
    """
    site = SITE.read_text()
    site = site.replace("server 127.0.0.1:8501;", f"server 127.0.0.1:{console_port};")
    site = site.replace("server 127.0.0.1:8080;", f"server 127.0.0.1:{api_port};")
    site = re.sub(r"listen 80;", f"listen 127.0.0.1:{port};", site)
    site = re.sub(r"\n\s*listen \[::\]:80;", "", site)
    folder.mkdir(parents=True, exist_ok=True)
    if auth_dir is None:
        auth_dir = folder / "opsforge"
        _write_htpasswd(auth_dir, user, password)
    site = site.replace("/etc/nginx/opsforge/", f"{auth_dir}/")
    (folder / "site.conf").write_text(site)
    if worker is not None:
        run_as = f"user {worker};"
    else:
        run_as = "user root;" if os.geteuid() == 0 else ""
    (folder / "nginx.conf").write_text(MAIN_CONF.format(tmp=folder, user=run_as))
    return NginxSite(folder, port)


def _write_htpasswd(auth_dir: Path, user: str, password: str) -> None:
    auth_dir.mkdir(parents=True, exist_ok=True)
    hashed = subprocess.run(
        ["openssl", "passwd", "-apr1", password], capture_output=True, text=True, check=True
    ).stdout.strip()
    (auth_dir / "htpasswd").write_text(f"{user}:{hashed}\n")


def check_config(site: NginxSite) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NGINX, "-t", "-p", str(site.folder), "-c", str(site.conf)],
        capture_output=True,
        text=True,
    )


def start_nginx(site: NginxSite) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [NGINX, "-p", str(site.folder), "-c", str(site.conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {proc.stderr.read().decode(errors='replace')}")
        try:
            import socket

            with socket.create_connection(("127.0.0.1", site.port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("nginx did not start listening within 10 s")
