"""The EC2 deployment files: nginx site syntax, systemd units, and an idempotent setup."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, free_port
from tests.deploy_ec2.nginx_site import NGINX, SITE, check_config, render_site

UNITS = sorted((REPO_ROOT / "deploy" / "ec2" / "systemd").glob("*.service"))
SETUP = REPO_ROOT / "deploy" / "ec2" / "ec2_setup.sh"

needs_nginx = pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed")


@needs_nginx
def test_nginx_site_passes_nginx_t(tmp_path: Path) -> None:
    site = render_site(tmp_path, free_port(), 8501, 8080, "admin", "pw")
    result = check_config(site)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


@needs_nginx
def test_nginx_t_rejects_broken_site(tmp_path: Path) -> None:
    site = render_site(tmp_path, free_port(), 8501, 8080, "admin", "pw")
    site_file = tmp_path / "site.conf"
    site_file.write_text(site_file.read_text().replace("proxy_http_version 1.1;", "bogus 1;", 1))
    assert check_config(site).returncode != 0


def test_nginx_site_upgrades_streamlit_websocket() -> None:
    text = SITE.read_text()
    block = text.split("location /_stcore/stream {", 1)[1].split("}", 1)[0]
    assert "proxy_http_version 1.1;" in block
    assert "proxy_set_header Upgrade $http_upgrade;" in block
    assert "proxy_set_header Connection $opsforge_connection_upgrade;" in block
    assert "proxy_read_timeout 86400s;" in block


def test_systemd_units_cover_three_services() -> None:
    names = [unit.name for unit in UNITS]
    assert names == [
        "opsforge-api.service",
        "opsforge-console.service",
        "opsforge-simulator.service",
    ]
    for unit in UNITS:
        text = unit.read_text()
        assert "User=opsforge" in text
        assert "Restart=on-failure" in text
        assert "ProtectSystem=strict" in text
        assert "NoNewPrivileges=yes" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed")
def test_systemd_units_pass_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart's program exists, so point the units at this checkout.
    python = REPO_ROOT / ".venv" / "bin" / "python"
    for unit in UNITS:
        text = unit.read_text().replace("/opt/opsforge/.venv/bin/python", str(python))
        text = text.replace("WorkingDirectory=/opt/opsforge", f"WorkingDirectory={REPO_ROOT}")
        (tmp_path / unit.name).write_text(text)
    paths = [str(tmp_path / unit.name) for unit in UNITS]
    result = subprocess.run(
        ["systemd-analyze", "verify", *paths], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    # verify exits 0 on directives it ignores, so any output means a problem.
    assert result.stderr.strip() == "", result.stderr


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed")
def test_setup_script_second_run_changes_nothing(tmp_path: Path) -> None:
    # Run a copy of the checkout, so files edited meanwhile cannot change the second run.
    source = tmp_path / "src"
    shutil.copytree(REPO_ROOT / "deploy", source / "deploy")
    shutil.copy(REPO_ROOT / "app.py", source / "app.py")
    shutil.copy(REPO_ROOT / "requirements.txt", source / "requirements.txt")
    root = tmp_path / "root"
    setup = source / "deploy" / "ec2" / "ec2_setup.sh"
    env = {**os.environ, "OPSFORGE_ROOT": str(root), "OPSFORGE_SKIP_SYSTEM": "1"}
    first = subprocess.run(["bash", str(setup)], capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    assert "console login: admin / " in first.stdout
    installed = root / "etc" / "nginx" / "sites-available" / "opsforge"
    assert installed.read_text() == SITE.read_text()
    assert (root / "etc" / "systemd" / "system" / "opsforge-api.service").is_file()
    assert (root / "opt" / "opsforge" / "app.py").is_file()
    token_file = root / "etc" / "opsforge" / "opsforge.env"
    token_before = token_file.read_text()

    snapshot = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    second = subprocess.run(["bash", str(setup)], capture_output=True, text=True, env=env)
    assert second.returncode == 0, second.stderr
    assert "nothing to change" in second.stdout
    after = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    assert after == snapshot
    assert token_file.read_text() == token_before


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_setup_script_passes_shellcheck() -> None:
    result = subprocess.run(["shellcheck", str(SETUP)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@needs_nginx
@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed")
def test_tls_redirects_console_not_api(tmp_path: Path) -> None:
    import http.client
    import ssl

    from tests.deploy_ec2.nginx_site import start_nginx

    cert, key = tmp_path / "site.crt", tmp_path / "site.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=opsforge.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        check=True,
    )
    root = tmp_path / "root"
    env = {
        **os.environ,
        "OPSFORGE_ROOT": str(root),
        "OPSFORGE_SKIP_SYSTEM": "1",
        "OPSFORGE_TLS_CERT": str(cert),
        "OPSFORGE_TLS_KEY": str(key),
    }
    setup = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, env=env)
    assert setup.returncode == 0, setup.stderr
    auth_dir = root / "etc" / "nginx" / "opsforge"
    http_port, https_port = free_port(), free_port()
    tls = (auth_dir / "tls.conf").read_text()
    tls = tls.replace("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    (auth_dir / "tls.conf").write_text(tls.replace("listen [::]:443 ssl;\n", ""))
    # Both upstreams are closed ports: the API request must reach the proxy (502), not 301.
    site = render_site(
        tmp_path / "nginx", http_port, free_port(), free_port(), "", "", auth_dir=auth_dir
    )
    proc = start_nginx(site)
    try:
        plain = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
        plain.request("GET", "/")
        console = plain.getresponse()
        console.read()
        assert console.status == 301
        assert console.getheader("Location", "").startswith("https://")
        plain.request("POST", "/api/v1/events", body=b"{}")
        api = plain.getresponse()
        api.read()
        assert api.status == 502
        secure = http.client.HTTPSConnection(
            "127.0.0.1", https_port, timeout=5, context=ssl._create_unverified_context()
        )
        secure.request("GET", "/")
        login = secure.getresponse()
        login.read()
        assert login.status == 401
        assert login.getheader("Strict-Transport-Security") == "max-age=31536000"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
