"""The compose proxy's vocabulary (apps/hookproxy.py) and its socket server, with real sockets."""

from __future__ import annotations

import base64
import json
import socket
import time
from pathlib import Path

import pytest

from stackhub.adapters import sandbox_proxy
from stackhub.adapters.sandbox_proxy import ProxyServer, Reply
from stackhub.apps import hookproxy, scripts
from stackhub.apps.hookproxy import Call, Refused, Scope, parse

SCOPE = Scope(app_id="invoice-ninja", instance="inv", services=frozenset({"app", "db"}))


def test_the_forms_real_hooks_use_map_to_compose_on_the_own_project() -> None:
    call = parse(["app", "compose", "invoice-ninja", "exec", "-T", "-w", "/var/www/html", "app",
                  "php", "artisan", "key:generate", "--force"], SCOPE)
    assert call.args() == ["exec", "-T", "-w", "/var/www/html", "app", "php", "artisan",
                           "key:generate", "--force"]
    assert call.describe() == "exec app: php (3 arguments)"  # no argument (password) logged
    run = parse(["app", "compose", "invoice-ninja", "run", "--rm", "app", "./create-user -x"],
                SCOPE)
    assert run.args() == ["run", "--rm", "-T", "app", "./create-user -x"]
    up = parse(["app", "compose", "invoice-ninja", "up", "--detach", "--wait",
                "--wait-timeout", "60", "db"], SCOPE)
    assert up.args() == ["up", "--detach", "--pull", "missing", "--quiet-pull", "--wait",
                         "--wait-timeout", "60", "db"]
    assert parse(["app", "compose", "invoice-ninja", "stop"], SCOPE).args() == ["stop"]
    assert parse(["app", "compose", "invoice-ninja", "start", "app"], SCOPE).args() == [
        "start", "app"]
    assert parse(["app", "restart", "invoice-ninja"], SCOPE) == Call("restart", ())
    docker = parse(["docker", "exec", "-it", "invoice-ninja_db_1", "psql", "-c", "select 1"],
                   SCOPE)
    assert docker.args() == ["exec", "-T", "db", "psql", "-c", "select 1"]
    assert parse(["docker", "exec", "stackhub-inv-db-1", "true"], SCOPE).services == ("db",)


@pytest.mark.parametrize(("argv", "why"), [
    (["app", "compose", "bitcoin", "exec", "app", "id"], "only act on its own app"),
    (["app", "restart", "prowlarr"], "only act on its own app"),
    (["docker", "exec", "bitcoin_app_1", "id"], "not one of this app's own containers"),
    (["docker", "exec", "stackhub-other-db-1", "id"], "not one of this app's own containers"),
    (["docker", "run", "--rm", "-v", "/:/h", "alpine"], "nothing else of app or docker"),
    (["docker", "logs", "invoice-ninja_app_1"], "nothing else of app or docker"),
    (["app", "compose", "invoice-ninja", "down", "-v"], "down: not allowed"),
    (["app", "compose", "invoice-ninja", "exec", "--privileged", "app", "id"],
     "--privileged: not allowed"),
    (["app", "compose", "invoice-ninja", "run", "-v", "/:/h", "app", "id"], "-v: not allowed"),
    (["app", "compose", "invoice-ninja", "run", "--entrypoint=sh", "app", "id"],
     "not allowed"),
    (["app", "compose", "invoice-ninja", "up", "--build"], "--build: option not allowed"),
    (["app", "compose", "invoice-ninja", "exec", "tor", "id"], "not a service"),
    (["app", "compose", "invoice-ninja", "exec", "app"], "needs a service and a command"),
    (["app", "compose", "invoice-ninja", "up", "--wait-timeout", "1e9"], "1 to 600 seconds"),
    (["app", "install", "invoice-ninja"], "nothing else of app or docker"),
])
def test_everything_else_is_refused_with_the_reason(argv: list[str], why: str) -> None:
    with pytest.raises(Refused, match=why.replace("(", r"\(")):
        parse(argv, SCOPE)


def ask(path: Path, payload: bytes) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(str(path))
        conn.sendall(payload)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    reply: dict[str, object] = json.loads(data)
    return reply


def request(argv: object, stdin: bytes = b"") -> bytes:
    return json.dumps({"argv": argv, "stdin": base64.b64encode(stdin).decode()}).encode() + b"\n"


def test_the_server_answers_checked_requests_and_refuses_bad_ones() -> None:
    seen: list[tuple[list[str], bytes]] = []

    def handler(argv: list[str], stdin: bytes, left: float) -> Reply:
        seen.append((argv, stdin))
        assert left > 1
        return Reply(3, b"out", b"err")

    with ProxyServer(handler, deadline=time.monotonic() + 30, max_calls=2) as server:
        assert server.path.stat().st_mode & 0o777 == 0o600
        reply = ask(server.path, request(["app", "compose", "x", "exec", "a", "id"], b"in"))
        assert reply["code"] == 3
        assert base64.b64decode(str(reply["stdout"])) == b"out"
        assert seen == [(["app", "compose", "x", "exec", "a", "id"], b"in")]
        for bad in (b"not json\n", request("app compose"), request([]), request([1, 2]),
                    request(["a\0b"]), request(["x"], b"x" * (sandbox_proxy.MAX_STDIN + 1))):
            refused = ask(server.path, bad)
            assert refused["code"] == 126
            assert base64.b64decode(str(refused["stderr"])).startswith(b"stackhub: refused:")
        assert ask(server.path, request(["one", "more"]))["code"] == 3
        over = ask(server.path, request(["over", "limit"]))
        assert over["code"] == 126 and b"at most 2 requests" in base64.b64decode(
            str(over["stderr"]))
        folder = server.folder
    assert len(seen) == 2
    assert not folder.exists()


def test_the_server_refuses_once_the_run_is_out_of_time() -> None:
    with ProxyServer(lambda *_: Reply(0), deadline=time.monotonic()) as server:
        reply = ask(server.path, request(["app", "compose", "x", "stop"]))
    assert reply["code"] == 126
    assert b"time limit" in base64.b64decode(str(reply["stderr"]))


def test_a_refused_request_is_logged_and_never_runs(tmp_path: Path) -> None:
    proxy = hookproxy.HookProxy(SCOPE, compose_argv=["/nonexistent/compose"], project="p",
                                project_dir=tmp_path)
    reply = proxy(["docker", "run", "alpine"], b"", 30.0)
    assert reply.code == 126
    assert proxy.log == [f"stackhub: proxy refused: {reply.stderr.decode()[19:].strip()}"]
    ran = proxy(["app", "compose", "invoice-ninja", "stop"], b"", 30.0)
    assert ran.code == 127 and b"/nonexistent/compose" in ran.stderr  # it did try compose
    assert proxy.log[-1] == "stackhub: proxy: stop (all services) -> exit 127"


def test_only_a_run_given_the_proxy_sees_its_socket_read_only(tmp_path: Path) -> None:
    runner = scripts.ScriptRunner(object(), secrets_dir=tmp_path / "secrets",  # type: ignore[arg-type]
                                  work_dir=tmp_path / "work", image="x")
    ctx = scripts.ScriptContext(instance="i", app_id="a", data_dir=tmp_path / "d", env={})
    plain = runner.spec(tmp_path / "stage", ctx, "exports")
    assert sandbox_proxy.TARGET not in [m.target for m in plain.mounts]
    served = runner.spec(tmp_path / "stage", ctx, "post-start", tmp_path / "sock-dir")
    [mount] = [m for m in served.mounts if m.target == sandbox_proxy.TARGET]
    assert mount.source == str(tmp_path / "sock-dir") and not mount.writable
    assert [m.target for m in served.mounts if m.writable] == [str(tmp_path / "d")]
    assert served.command[-1] == "post-start"
