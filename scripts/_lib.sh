# shellcheck shell=bash disable=SC2034  # variables are used by the scripts sourcing this
# Shared helpers for scripts/*. Sourced, never executed directly.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${REPO_ROOT}/.venv"

# Shared test infrastructure (registry, test image build area).
STACKHUB_TEST_STATE="${STACKHUB_TEST_STATE:-/var/lib/stackhub-test}"
REGISTRY_ADDR="127.0.0.1:5000"
REGISTRY_URL="http://${REGISTRY_ADDR}"
DOCKERD_LOG="/var/log/stackhub-dockerd.log"
REGISTRY_LOG="/var/log/stackhub-registry.log"

export DEBIAN_FRONTEND=noninteractive
# dockerd, iptables live in sbin dirs, which a minimal PATH may lack.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" ;; esac
export PATH

log() { printf '[%s] %s\n' "${SCRIPT_NAME:-stackhub}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

have() { command -v "$1" >/dev/null 2>&1; }

# Run a command as root (directly when root, else via sudo -n, never prompting).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif have sudo; then
    sudo -n "$@"
  else
    die "need root for: $*"
  fi
}

# pid_alive PID: true if a process with that pid exists and is not a zombie.
# (PID 1 here is not a real init and may reap orphans late: a killed daemon can linger as a zombie.)
pid_alive() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  local state
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# proc_is PID NAME: PID is alive and its command line mentions NAME (guards against pid reuse).
proc_is() {
  pid_alive "${1:-}" && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q -- "$2"
}

# wait_for SECONDS CMD...: poll CMD every 0.5 s until it succeeds.
wait_for() {
  local timeout="$1"; shift
  local deadline=$(( $(date +%s) + timeout ))
  while ! "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      return 1
    fi
    sleep 0.5
  done
}

docker_ok() { docker info >/dev/null 2>&1; }
registry_ok() { curl -fs -o /dev/null --max-time 2 "${REGISTRY_URL}/v2/"; }

# start_detached PIDFILE LOGFILE CMD...: run CMD in its own session (setsid + nohup), detached
# from this script and its terminal, output appended to LOGFILE. PIDFILE (optional, "" to skip)
# gets CMD's real pid: the shell writes its own pid, then execs CMD.
start_detached() {
  local pidfile="$1" logfile="$2"; shift 2
  # shellcheck disable=SC2016  # $$ / $1 expand in the inner sh
  setsid sh -c 'if [ -n "$1" ]; then echo $$ > "$1"; fi; shift; exec nohup "$@"' \
    sh "$pidfile" "$@" >>"$logfile" 2>&1 </dev/null &
  disown 2>/dev/null || true
}
