"""`stackhub doctor` on a real machine: a healthy server, then a broken setup named problem by
problem (the shared engine is not stopped: an unreachable engine is a DOCKER_HOST socket that
does not exist, which the real adapter meets exactly as a stopped engine)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

from tests.integration.conftest import STACKHUB, Server, free_port
from tests.integration.second_engine import second_engine


def doctor(*args: str, env: dict[str, str]) -> tuple[int, dict[str, dict[str, str]]]:
    done = subprocess.run([*STACKHUB, "doctor", "--json", *args], capture_output=True,
                          text=True, env=env, timeout=120, stdin=subprocess.DEVNULL,
                          check=False)
    report = json.loads(done.stdout)
    return done.returncode, {c["name"]: c for c in report["checks"]} | {"": report}


def test_healthy_server_checks_itself(server: Server) -> None:
    code, checks = doctor(env=server.env)
    assert checks[""]["ran_on"] == "server"
    assert checks["engine"]["level"] == "ok" and checks["compose"]["level"] == "ok"
    assert checks["database"]["message"].endswith("integrity ok")
    assert checks["port"]["message"] == f"port {server.port}: the StackHub server listens there"
    # the running server put the pool's rule in Docker's DOCKER-USER chain (real iptables)
    assert checks["firewall"]["level"] == "ok", checks["firewall"]
    assert code == 0, checks
    text = server.cli("doctor")
    assert "0 errors" in text.stdout and text.returncode == 0


def test_broken_setup_names_each_problem(server: Server, tmp_path: Path) -> None:
    data = server.data_dir
    server.stop()  # the data root now has a database, secrets and no server
    port = free_port()
    env = {**server.env, "STACKHUB_URL": "", "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        data.chmod(0o500)
        try:
            code, checks = doctor("--port", str(port), "--data-dir", str(data), env=env)
        finally:
            data.chmod(0o700)
    assert code == 1
    assert checks[""]["ran_on"] == "local"
    assert checks["engine"]["level"] == "error"
    assert checks["engine"]["fix"] in ("sudo systemctl start docker", "sudo service docker start")
    assert checks["data_root"]["level"] == "error"
    assert "not writable" in checks["data_root"]["message"]
    assert checks["data_root"]["fix"] == f"sudo chmod u+rwx {data}"
    assert checks["port"]["level"] == "error"
    assert f"port {port} is taken by another program" == checks["port"]["message"]
    assert checks["server"]["level"] == "error"
    assert checks["server"]["message"].endswith(f"not answering at http://127.0.0.1:{port}")
    assert checks["database"]["level"] == "ok"
    assert checks[""]["errors"] >= 4


def test_a_stopped_engine_read_only_root_and_taken_port_are_each_named(tmp_path: Path) -> None:
    """A real engine (a private dockerd, never the shared one) checked up, then stopped."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("STACKHUB_")}
    args = ("--port", str(port), "--data-dir", str(data))
    with second_engine() as engine:
        env = {**base, **engine.env}
        code, up = doctor(*args, env=env)
        assert up["engine"]["level"] in ("ok", "warning"), up["engine"]
        assert up["engine"]["message"].startswith("Docker ")
        assert up["engine.storage"]["message"].startswith("storage driver ")
        assert up["engine.cgroup"]["message"].startswith("cgroup v")
        assert "free in" in up["engine.space"]["message"]
        assert up["data_root"]["level"] == "ok"
        engine.stop()
        engine.wait_stopped()
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", port))
            taken.listen()
            data.chmod(0o500)
            try:
                code, down = doctor(*args, env=env)
            finally:
                data.chmod(0o700)
    assert code == 1
    assert down["engine"]["level"] == "error" and "not reachable" in down["engine"]["message"]
    assert down["engine"]["fix"] in ("sudo systemctl start docker", "sudo service docker start")
    assert "engine.storage" not in down
    assert down["data_root"]["level"] == "error"
    assert down["data_root"]["fix"] == f"sudo chmod u+rwx {data}"
    assert down["port"]["level"] == "error"
    assert down["port"]["message"] == f"port {port} is taken by another program"
    assert down["server"]["level"] == "error" and down["service"]["level"] == "error"
    assert int(down[""]["errors"]) >= 5
