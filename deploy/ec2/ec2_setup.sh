#!/usr/bin/env bash
# Set up OpsForge on an Ubuntu or Debian host: system packages, the opsforge service user, the
# app under /opt/opsforge with its virtual environment, the nginx site with basic auth, and the
# console, API and simulator systemd units. Idempotent: a second run changes nothing.
#
# Run as root from a checkout:  sudo deploy/ec2/ec2_setup.sh
#
# Environment (all optional):
#   OPSFORGE_TLS_CERT, OPSFORGE_TLS_KEY  certificate and key paths; enables HTTPS on 443
#   OPSFORGE_ADMIN_USER                  console login name (default: admin)
#   OPSFORGE_ROOT                        prefix for every path written (tests use a temp dir)
#   OPSFORGE_NGINX_GROUP                 group of nginx's worker processes, which read the
#                                        console's password file (default: www-data; none
#                                        with OPSFORGE_SKIP_SYSTEM=1)
#   OPSFORGE_SKIP_SYSTEM=1               skip apt-get, useradd, the virtual environment, chown
#                                        and systemctl (tests)
set -euo pipefail

SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ROOT="${OPSFORGE_ROOT:-}"
SKIP_SYSTEM="${OPSFORGE_SKIP_SYSTEM:-0}"
APP_DIR="$ROOT/opt/opsforge"
STATE_DIR="$ROOT/var/lib/opsforge"
ETC_DIR="$ROOT/etc/opsforge"
NGINX_DIR="$ROOT/etc/nginx"
UNIT_DIR="$ROOT/etc/systemd/system"
ADMIN_USER="${OPSFORGE_ADMIN_USER:-admin}"
UNITS=(opsforge-console opsforge-api opsforge-simulator)
# Debian's and Ubuntu's nginx runs its workers as www-data (the `user` line of nginx.conf).
NGINX_GROUP="${OPSFORGE_NGINX_GROUP:-}"
if [[ -z "$NGINX_GROUP" && "$SKIP_SYSTEM" != 1 ]]; then
  NGINX_GROUP=www-data
fi
# On a fresh instance cloud-init and unattended-upgrades hold the dpkg lock for minutes.
APT_OPTIONS=(-o DPkg::Lock::Timeout=600 -qq)
CHANGED=0

log() { printf 'ec2_setup: %s\n' "$*"; }

# Install FILE to DEST with MODE only when the content differs, so reruns touch nothing.
install_if_changed() {
  local src="$1" dest="$2" mode="$3"
  if [[ -f "$dest" ]] && cmp -s "$src" "$dest"; then
    return 0
  fi
  install -D -m "$mode" "$src" "$dest"
  log "wrote $dest"
  CHANGED=1
}

system_packages() {
  [[ "$SKIP_SYSTEM" == 1 ]] && return 0
  local missing=()
  for pkg in python3 python3-venv nginx apache2-utils rsync openssl; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get "${APT_OPTIONS[@]}" update
    DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTIONS[@]}" install -y "${missing[@]}"
  fi
}

service_user() {
  [[ "$SKIP_SYSTEM" == 1 ]] && return 0
  if ! id opsforge >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/opsforge --shell /usr/sbin/nologin opsforge
    log "created user opsforge"
  fi
}

app_files() {
  mkdir -p "$APP_DIR" "$STATE_DIR" "$ETC_DIR"
  # --checksum keeps a rerun from rewriting unchanged files.
  local synced
  synced="$(rsync -a --itemize-changes --checksum --delete \
    --exclude .git --exclude .venv --exclude node_modules --exclude /data \
    --exclude tests/artifacts --exclude bench/results --exclude '__pycache__' \
    "$SRC_DIR/" "$APP_DIR/")"
  if [[ -n "$synced" ]]; then
    log "updated the app in $APP_DIR"
    CHANGED=1
  fi
  # Tests skip the virtual environment: installing the requirements takes minutes.
  [[ "$SKIP_SYSTEM" == 1 ]] && return 0
  if [[ ! -x "$APP_DIR/.venv/bin/python" ]]; then
    python3 -m venv "$APP_DIR/.venv"
    log "created $APP_DIR/.venv"
  fi
  local stamp="$APP_DIR/.venv/.requirements.sha256"
  local want
  want="$(sha256sum "$APP_DIR/requirements.txt" | cut -d' ' -f1)"
  if [[ ! -f "$stamp" ]] || [[ "$(cat "$stamp")" != "$want" ]]; then
    "$APP_DIR/.venv/bin/pip" install --quiet --upgrade pip
    "$APP_DIR/.venv/bin/pip" install --quiet -r "$APP_DIR/requirements.txt"
    echo "$want" >"$stamp"
    log "installed requirements"
  fi
  chown -R opsforge:opsforge "$STATE_DIR"
}

# Secrets are generated once and never overwritten, so a rerun keeps the same credentials.
secrets() {
  local env_file="$ETC_DIR/opsforge.env"
  # The subshells keep the tight umask from leaking into the files written after these.
  if [[ ! -f "$env_file" ]]; then
    (
      umask 077
      {
        echo "OPSFORGE_API_TOKEN=$(openssl rand -hex 24)"
        echo "OPSFORGE_STORE=sqlite"
        echo "OPSFORGE_LLM_PROVIDER=offline"
      } >"$env_file"
    )
    log "wrote $env_file with a new API token"
    CHANGED=1
  fi
  local htpasswd="$NGINX_DIR/opsforge/htpasswd"
  if [[ ! -f "$htpasswd" ]]; then
    mkdir -p "$NGINX_DIR/opsforge"
    local password
    password="$(openssl rand -base64 18)"
    (
      umask 027
      printf '%s:%s\n' "$ADMIN_USER" "$(openssl passwd -apr1 "$password")" >"$htpasswd"
    )
    log "console login: $ADMIN_USER / $password (shown once; stored hashed in $htpasswd)"
    CHANGED=1
  fi
  htpasswd_access "$htpasswd"
}

# nginx's workers, not its root master, open the password file on every request. When they
# cannot, every console request fails with 500, so fix the modes on each run.
htpasswd_access() {
  local htpasswd="$1" dir
  dir="$(dirname "$htpasswd")"
  if [[ "$(stat -c %a "$dir")" != 755 ]]; then
    chmod 755 "$dir"
    log "set $dir to mode 755"
    CHANGED=1
  fi
  if [[ "$(stat -c %a "$htpasswd")" != 640 ]]; then
    chmod 640 "$htpasswd"
    log "set $htpasswd to mode 640"
    CHANGED=1
  fi
  if [[ -n "$NGINX_GROUP" && "$(stat -c %G "$htpasswd")" != "$NGINX_GROUP" ]]; then
    chgrp "$NGINX_GROUP" "$htpasswd"
    log "set the group of $htpasswd to $NGINX_GROUP"
    CHANGED=1
  fi
}

nginx_site() {
  install_if_changed "$SRC_DIR/deploy/ec2/nginx/opsforge.conf" \
    "$NGINX_DIR/sites-available/opsforge" 644
  mkdir -p "$NGINX_DIR/sites-enabled"
  if [[ "$(readlink "$NGINX_DIR/sites-enabled/opsforge" 2>/dev/null)" != \
    "/etc/nginx/sites-available/opsforge" ]]; then
    ln -sfn /etc/nginx/sites-available/opsforge "$NGINX_DIR/sites-enabled/opsforge"
    CHANGED=1
  fi
  if [[ -e "$NGINX_DIR/sites-enabled/default" || -L "$NGINX_DIR/sites-enabled/default" ]]; then
    rm -f "$NGINX_DIR/sites-enabled/default"
    CHANGED=1
  fi
  tls_snippet
}

tls_snippet() {
  local snippet="$NGINX_DIR/opsforge/tls.conf"
  local redirect="$NGINX_DIR/opsforge/redirect-https.conf"
  if [[ -n "${OPSFORGE_TLS_CERT:-}" && -n "${OPSFORGE_TLS_KEY:-}" ]]; then
    local tmp
    tmp="$(mktemp)"
    cat >"$tmp" <<EOF
listen 443 ssl;
listen [::]:443 ssl;
ssl_certificate ${OPSFORGE_TLS_CERT};
ssl_certificate_key ${OPSFORGE_TLS_KEY};
ssl_protocols TLSv1.2 TLSv1.3;
add_header Strict-Transport-Security "max-age=31536000" always;
EOF
    install_if_changed "$tmp" "$snippet" 644
    # Only the console redirects to HTTPS: a redirected webhook POST would come back as a GET.
    # shellcheck disable=SC2016 # nginx variables, not shell ones
    printf '%s\n' 'if ($scheme = http) { return 301 https://$host$request_uri; }' >"$tmp"
    install_if_changed "$tmp" "$redirect" 644
    rm -f "$tmp"
  else
    for file in "$snippet" "$redirect"; do
      if [[ -f "$file" ]]; then
        rm -f "$file"
        log "removed $file (no certificate configured)"
        CHANGED=1
      fi
    done
  fi
}

systemd_units() {
  for unit in "${UNITS[@]}"; do
    install_if_changed "$SRC_DIR/deploy/ec2/systemd/$unit.service" "$UNIT_DIR/$unit.service" 644
  done
  [[ "$SKIP_SYSTEM" == 1 ]] && return 0
  nginx -t -q
  if [[ "$CHANGED" == 1 ]]; then
    systemctl daemon-reload
    systemctl restart "${UNITS[@]}"
    systemctl reload-or-restart nginx
  fi
  systemctl enable --now --quiet "${UNITS[@]}" nginx
}

main() {
  if [[ "$SKIP_SYSTEM" != 1 && "$(id -u)" != 0 ]]; then
    echo "ec2_setup: run as root (sudo $0)" >&2
    exit 1
  fi
  system_packages
  service_user
  app_files
  secrets
  nginx_site
  systemd_units
  if [[ "$CHANGED" == 1 ]]; then
    log "done; the console is at http://<host>/ and the API at http://<host>/api/"
  else
    log "nothing to change"
  fi
}

main "$@"
