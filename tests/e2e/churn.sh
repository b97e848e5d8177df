#!/usr/bin/env bash
# Container churn on this host, to reproduce browser-test flakes: Chromium aborts requests in
# flight with net::ERR_NETWORK_CHANGED whenever a network interface or address appears or
# vanishes, which Docker does for every network it creates or removes and every container it
# starts (a veth pair). Run it beside the browser suite:
#
#   bash tests/e2e/churn.sh &            # or: bash tests/e2e/churn.sh --for 600
#   .venv/bin/pytest tests/e2e
#   kill %1                              # it removes what it made on exit
#
# It churns on the browser suite's own private dockerd (tests/e2e/conftest.py `e2e_engine`), whose
# DOCKER_HOST the suite writes to /tmp/stackhub-e2e-engine while it runs: it waits up to
# CHURN_WAIT seconds (default 600) for that file and stops when the suite's engine goes away.
# A DOCKER_HOST already set names the engine to use instead (no waiting).
#
# Every cycle creates a bridge network (its bridge gets an address), starts a short container on
# it (a veth pair comes and goes), then removes the network: three or four interface changes per
# cycle, one cycle every CHURN_INTERVAL seconds (default 0.5). Objects are named
# stackhub-churn-<pid>-<n> and labelled io.stackhub.churn, so nothing else is touched.
set -euo pipefail

interval="${CHURN_INTERVAL:-0.5}"
image="${STACKHUB_TEST_IMAGE:-stackhub-test/web:1}"
seconds=0
while [ $# -gt 0 ]; do
  case "$1" in
    --for) seconds="$2"; shift 2 ;;
    --interval) interval="$2"; shift 2 ;;
    --no-containers) image=""; shift ;;
    *) echo "usage: churn.sh [--for SECONDS] [--interval SECONDS] [--no-containers]" >&2; exit 2 ;;
  esac
done

engine_file=/tmp/stackhub-e2e-engine
follow=""
if [ -z "${DOCKER_HOST:-}" ]; then
  echo "churn: waiting for the browser suite's engine ($engine_file)" >&2
  waited=0
  until [ -s "$engine_file" ]; do
    if [ "$waited" -ge "${CHURN_WAIT:-600}" ]; then
      echo "churn: no browser suite engine after ${waited} s" >&2
      exit 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  follow="$(cat "$engine_file")"
  export DOCKER_HOST="$follow"
  echo "churn: on $DOCKER_HOST" >&2
fi

prefix="stackhub-churn-$$"
cleanup() {
  docker ps -aq --filter "label=io.stackhub.churn=$$" 2>/dev/null \
    | xargs -r docker rm -f >/dev/null 2>&1 || true
  docker network ls -q --filter "label=io.stackhub.churn=$$" 2>/dev/null \
    | xargs -r docker network rm >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 0' INT TERM

start=$(date +%s)
n=0
while [ "$seconds" -eq 0 ] || [ $(( $(date +%s) - start )) -lt "$seconds" ]; do
  if [ -n "$follow" ] && [ "$(cat "$engine_file" 2>/dev/null || true)" != "$follow" ]; then
    echo "churn: the browser suite's engine is gone; $n cycles" >&2
    exit 0
  fi
  n=$((n + 1))
  net="$prefix-$n"
  docker network create --label "io.stackhub.churn=$$" "$net" >/dev/null 2>&1 || true
  if [ -n "$image" ]; then
    docker run --rm --label "io.stackhub.churn=$$" --network "$net" "$image" true \
      >/dev/null 2>&1 || true
  fi
  sleep "$interval"
  docker network rm "$net" >/dev/null 2>&1 || true
  if [ $((n % 20)) -eq 0 ]; then echo "churn: $n cycles" >&2; fi
done
