"""The store-script sandbox on the real engine: what a hostile script tries, fails.

One run probes most boundaries at once (reads, writes, network, Docker, capabilities) and
exports what it saw as data; separate runs check the pids limit, a fork bomb and the time
limit. The image is prebuilt by scripts/test-images (cached by recipe hash).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from stackhub.adapters.engine import DockerEngine
from stackhub.adapters.sandbox import SANDBOX_LABEL, Limits, ensure_image
from stackhub.apps import scripts
from stackhub.errors import ScriptFailed

pytestmark = pytest.mark.integration

PROBES = r"""
yes_no() { if "$@" >/dev/null 2>&1; then echo yes; else echo no; fi; }
export SHADOW_SUM="$(sha256sum /etc/shadow 2>/dev/null | cut -c1-64)"
export SECRET_READ="$(yes_no cat "$PROBE_SECRET")"
export SEED_SEEN="$(yes_no test -e "$PROBE_SEED")"
export OUTSIDE_SEEN="$(yes_no test -e "$PROBE_OUTSIDE/marker")"
export WRITE_ETC="$(yes_no touch /etc/evil)"
export WRITE_OUTSIDE="$(yes_no sh -c 'mkdir -p "$PROBE_OUTSIDE" && touch "$PROBE_OUTSIDE/evil"')"
export WRITE_USR="$(yes_no touch /usr/evil)"
export WRITE_ROOT="$(yes_no touch /root/evil)"
export WRITE_STAGE="$(yes_no touch /stackhub/app/evil)"
export WRITE_UP="$(yes_no touch "$APP_DATA_DIR/../evil")"
export WRITE_APP="$(yes_no touch "$APP_DATA_DIR/ok")"
chown 1000:1000 "$APP_DATA_DIR/ok"
export MKNOD="$(yes_no mknod /tmp/dev b 8 0)"
export SOCK_SEEN="$(yes_no test -e /var/run/docker.sock -o -e /run/docker.sock)"
export RUN_DOCKER="$(docker run alpine 2>&1)"
export NET_OUT="$(yes_no python3 -c 'import socket; socket.create_connection(("1.1.1.1", 53), 2)')"
export NET_HOST="$(yes_no timeout 3 bash -c 'echo x > /dev/tcp/172.17.0.1/5000')"
export NET_IFACES="$(ls /sys/class/net | tr '\n' ' ')"
export CAP_EFF="$(awk '/^CapEff/ {print $2}' /proc/self/status)"
export NO_NEW_PRIVS="$(awk '/^NoNewPrivs/ {print $2}' /proc/self/status)"
export ENTROPY="$(derive_entropy probe-id)"
export IPS="$(hostname -I)"
export INSTALLED="$(app ls-installed | tr '\n' ',')"
export OTHER_APP="$(app restart bitcoin 2>&1)"
export OWN_UP="$(yes_no app compose probe up -d web)"
export OTHER_UP="$(yes_no app compose bitcoin up -d app)"
export OWN_EXEC="$(yes_no app compose probe exec web ls)"
export TOR_UP="$(yes_no "$UMBREL_ROOT/scripts/app" compose bitcoin up -d tor)"
"""

FORKS = r"""
export FORKS="$(python3 -c '
import os, time
n = 0
try:
    while n < 400:
        pid = os.fork()
        if pid == 0:
            fd = os.open("/dev/null", os.O_WRONLY)
            os.dup2(fd, 1); os.dup2(fd, 2)
            time.sleep(20)
            os._exit(0)
        n += 1
except OSError:
    pass
print(n)
')"
"""


@pytest.fixture(scope="module")
def engine() -> DockerEngine:
    return DockerEngine()


@pytest.fixture(scope="module")
def image(engine: DockerEngine) -> str:
    return ensure_image(engine)


def make_runner(engine: DockerEngine, image: str, root: Path,
                limits: Limits | None = None) -> scripts.ScriptRunner:
    return scripts.ScriptRunner(engine, secrets_dir=root / "secrets", work_dir=root / "sandbox",
                                image=image, limits=limits)


def context(root: Path, **env: str) -> scripts.ScriptContext:
    instance = f"sbx-{uuid.uuid4().hex[:8]}"
    return scripts.ScriptContext(instance=instance, app_id="probe",
                                 data_dir=root / "appdata" / instance, env=dict(env),
                                 installed=["probe", "other"], addresses=["192.0.2.7"])


def leftovers(instance: str) -> list[str]:
    out = subprocess.run(["docker", "ps", "-aq", "--filter",
                          f"label=org.stackhub.sandbox.instance={instance}", "--filter",
                          f"label={SANDBOX_LABEL}=true"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def test_a_hostile_script_reads_writes_and_reaches_nothing_of_the_host(
        engine: DockerEngine, image: str, tmp_path: Path) -> None:
    root = tmp_path / "root"
    runner = make_runner(engine, image, root)
    (root / "secrets").mkdir(parents=True)
    secret = root / "secrets" / "admin-token"
    secret.write_text("top-secret\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "marker").write_text("x")
    ctx = context(root, PROBE_SECRET=str(secret), PROBE_SEED=str(root / "secrets" /
                  scripts.SEED_FILE), PROBE_OUTSIDE=str(outside))
    out = runner.run({"exports.sh": PROBES}, ctx, mode="exports").exports

    host_shadow = hashlib.sha256(Path("/etc/shadow").read_bytes()).hexdigest()
    assert out["SHADOW_SUM"] != host_shadow  # the image's own, never the host's
    assert out["SECRET_READ"] == "no" and out["SEED_SEEN"] == "no"
    assert out["OUTSIDE_SEEN"] == "no"
    assert (out["WRITE_ETC"], out["WRITE_USR"], out["WRITE_ROOT"], out["WRITE_STAGE"]) == \
        ("no", "no", "no", "no")
    # the test's folders are under /tmp, the sandbox's own tmpfs: writes there land in it
    assert sorted(p.name for p in outside.iterdir()) == ["marker"]
    assert not (ctx.data_dir.parent / "evil").exists()
    assert out["WRITE_APP"] == "yes"
    made = ctx.data_dir / "ok"
    assert (made.stat().st_uid, made.stat().st_gid) == (1000, 1000)  # chown works in the app
    assert out["MKNOD"] == "no"
    assert out["SOCK_SEEN"] == "no"
    assert "refused" in out["RUN_DOCKER"]
    assert out["NET_OUT"] == "no" and out["NET_HOST"] == "no"
    assert out["NET_IFACES"].split() == ["lo"]
    assert int(out["CAP_EFF"], 16) == (1 << 0) | (1 << 1) | (1 << 3)  # CHOWN, DAC_OVERRIDE, FOWNER
    assert out["NO_NEW_PRIVS"] == "1"
    seed = scripts.load_seed(root / "secrets")
    assert out["ENTROPY"] == scripts.derive_entropy(
        scripts.instance_key(seed, ctx.instance, "probe"), "probe-id")
    assert out["IPS"].split() == ["192.0.2.7"]
    assert out["INSTALLED"] == "probe,other,"
    assert "refused" in out["OTHER_APP"]
    assert (out["OWN_UP"], out["OTHER_UP"], out["OWN_EXEC"], out["TOR_UP"]) == \
        ("no", "no", "no", "yes")
    assert leftovers(ctx.instance) == []
    assert not list((root / "sandbox").iterdir())  # the staging folder is gone


def test_forks_stop_at_the_pids_limit(engine: DockerEngine, image: str, tmp_path: Path) -> None:
    runner = make_runner(engine, image, tmp_path, Limits(timeout=60, pids=64))
    ctx = context(tmp_path)
    out = runner.run({"exports.sh": FORKS}, ctx, mode="exports").exports
    assert 10 < int(out["FORKS"]) < 64


def test_a_fork_bomb_ends_within_its_limits(engine: DockerEngine, image: str,
                                            tmp_path: Path) -> None:
    runner = make_runner(engine, image, tmp_path, Limits(timeout=8, pids=64))
    ctx = context(tmp_path)
    started = time.monotonic()
    bomb = "bomb() { bomb | bomb & }; bomb\nsleep 2\n"
    with contextlib.suppress(ScriptFailed):  # contained either way: ends or is stopped
        runner.run({"exports.sh": bomb}, ctx, mode="exports")
    assert time.monotonic() - started < 30
    assert leftovers(ctx.instance) == []
    assert os.getloadavg()[0] >= 0  # the host still answers


def test_an_endless_loop_is_stopped_at_the_time_limit(engine: DockerEngine, image: str,
                                                      tmp_path: Path) -> None:
    runner = make_runner(engine, image, tmp_path, Limits(timeout=3))
    ctx = context(tmp_path)
    started = time.monotonic()
    with pytest.raises(ScriptFailed) as err:
        runner.run({"hooks/pre-start": "echo looping\nwhile :; do :; done\n"}, ctx, mode="hook")
    assert time.monotonic() - started < 20
    assert "stopped after 3 s" in err.value.message
    assert "looping" in err.value.message  # the script's output reaches the error and the log
    assert leftovers(ctx.instance) == []


def test_hostile_output_is_read_as_data(engine: DockerEngine, image: str,
                                        tmp_path: Path) -> None:
    runner = make_runner(engine, image, tmp_path)
    ctx = context(tmp_path)
    hostile = ("export GOOD='$(touch /tmp/pwned)'\n"
               "export LINES=$'a\\nb'\n"
               "export COMPOSE_FILE=/etc/passwd\n"
               "export APP_DATA_DIR=/\n"
               "head -c 3000000 /dev/zero | tr '\\0' 'x' >&3\n")
    with pytest.raises(ScriptFailed) as err:
        runner.run({"exports.sh": hostile}, ctx, mode="exports")
    assert "more than the sandbox reads" in err.value.message
    calm = hostile.replace("head -c 3000000", "head -c 10")
    outcome = runner.run({"exports.sh": calm}, ctx, mode="exports")
    assert outcome.exports["GOOD"] == "$(touch /tmp/pwned)"  # text, never evaluated
    assert "LINES" not in outcome.exports and "COMPOSE_FILE" not in outcome.exports
    assert "APP_DATA_DIR" not in outcome.exports
    assert not Path("/tmp/pwned").exists()
