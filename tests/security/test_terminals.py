"""Terminals refuse foreign origins, missing, revoked and insufficient credentials; the host
terminal is off by default, admin-only, asks for the password (and TOTP) again, idles out and
is audited (start, end, user)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from stackhub.adapters.exec import EngineExec
from stackhub.auth import totp

from .conftest import ADMIN, MEMBER, ORIGIN, Server, bearer, csrf
from .test_login import enable_totp
from .test_members import install
from .test_websocket_routes import receive_json, refused, revocable_token, revoke

TERMINAL = "/api/instances/wiki/terminal"
HOST = "/api/host/terminal"


@pytest.fixture
def wiki(ready: Server, tmp_path: Path) -> Server:
    """An installed instance `wiki`; execs go to a socket where no engine listens."""
    install(ready, "wiki", 18111)
    ready.services.terminals.execs = EngineExec(socket=str(tmp_path / "no-engine.sock"))
    return ready


def receive_any(ws: WebSocketTestSession, timeout: float = 10.0) -> dict[str, Any] | bytes:
    """Return the next JSON message, or the bytes of a binary one."""
    stream = ws._send_rx  # TestClient's own receive waits forever

    async def receive() -> Any:
        import anyio

        with anyio.fail_after(timeout):
            return await stream.receive()

    message = ws.portal.call(receive)
    if message["type"] == "websocket.close":
        raise WebSocketDisconnect(code=message.get("code", 1000))
    if message.get("bytes") is not None:
        return bytes(message["bytes"])
    import json

    result: dict[str, Any] = json.loads(message["text"])
    return result


def error_then_close(ws: WebSocketTestSession) -> tuple[dict[str, Any], int]:
    """Read the error message and the close code that follows."""
    answer = receive_any(ws)
    assert isinstance(answer, dict) and answer["type"] == "error", answer
    with pytest.raises(WebSocketDisconnect) as caught:
        receive_any(ws)
    return answer["error"], caught.value.code


# container terminal --------------------------------------------------------------------------


def test_container_terminal_refuses_a_foreign_origin(wiki: Server) -> None:
    """A page elsewhere gets a failed handshake, even with a valid session cookie."""
    client = wiki.signed_in(*ADMIN)
    with pytest.raises(WebSocketDisconnect) as caught, \
            client.websocket_connect(TERMINAL, headers={"Origin": "https://evil.example"}) as ws:
        ws.receive_json()
    assert caught.value.code == 1008
    # substring tricks do not pass either (CasaOS matched Origin by substring)
    with pytest.raises(WebSocketDisconnect) as caught, client.websocket_connect(
            TERMINAL, headers={"Origin": "http://testserver.evil.example"}) as ws:
        ws.receive_json()
    assert caught.value.code == 1008


def test_container_terminal_needs_credentials(wiki: Server) -> None:
    """No credential: a start message is not an auth message; a token in the URL is ignored."""
    with wiki.new_client().websocket_connect(TERMINAL) as ws:
        ws.send_json({"type": "start", "command": ["id"]})
        refused(ws)
    with wiki.new_client().websocket_connect(
            f"{TERMINAL}?token={wiki.admin_token}&access_token={wiki.admin_token}") as ws:
        ws.send_json({"type": "start", "command": ["id"]})
        refused(ws)


def test_container_terminal_refuses_a_revoked_token(wiki: Server) -> None:
    """A revoked token opens nothing; one revoked while open closes the terminal."""
    session, token, token_id = revocable_token(wiki)
    with wiki.new_client().websocket_connect(TERMINAL, headers=bearer(token)) as ws:
        assert receive_json(ws) == {"type": "auth_ok"}
        revoke(session, token_id)
        with pytest.raises(WebSocketDisconnect) as caught:
            for _ in range(100):
                receive_json(ws)
        assert caught.value.code == 4401
    with wiki.new_client().websocket_connect(TERMINAL, headers=bearer(token)) as ws:
        refused(ws)


def test_member_needs_a_grant(wiki: Server) -> None:
    """A member without the grant is refused as if the instance did not exist; with it, the
    request reaches the engine (here: none listening, so 503)."""
    token = wiki.user_token(wiki.signed_in(*MEMBER))
    with wiki.new_client().websocket_connect(TERMINAL, headers=bearer(token)) as ws:
        refused(ws, kind="auth_forbidden", code=4403, error="not_found")
    assert wiki.client.put("/api/users/bob/instances", json={"instances": ["wiki"]},
                           headers=wiki.admin_headers()).status_code == 200
    with wiki.new_client().websocket_connect(TERMINAL, headers=bearer(token)) as ws:
        assert receive_json(ws) == {"type": "auth_ok"}
        ws.send_json({"type": "start", "command": ["id"]})
        error, code = error_then_close(ws)
        assert error["code"] == "engine_unavailable"
        assert code == 4503
    other = "/api/instances/payroll/terminal"
    with wiki.new_client().websocket_connect(other, headers=bearer(token)) as ws:
        refused(ws, kind="auth_forbidden", code=4403, error="not_found")


def test_bad_start_messages_are_refused(wiki: Server) -> None:
    """Unknown services, bad sizes and junk get a clear error and nothing runs."""
    cases: list[Any] = [
        ({"type": "start", "service": "nope"}, "not_found"),
        ({"type": "start", "rows": 0}, "invalid"),
        ({"type": "start", "command": []}, "invalid"),
        ({"type": "start", "service": "../x"}, "invalid"),
        ({"type": "resize", "rows": 1, "cols": 1}, "invalid"),
        ("not json", "invalid"),
    ]
    for message, wanted in cases:
        with wiki.new_client().websocket_connect(
                TERMINAL, headers=wiki.admin_headers()) as ws:
            assert receive_json(ws) == {"type": "auth_ok"}
            if isinstance(message, str):
                ws.send_text(message)
            else:
                ws.send_json(message)
            error, _ = error_then_close(ws)
            assert error["code"] == wanted, (message, error)


# host terminal -------------------------------------------------------------------------------


def host_on(server: Server) -> None:
    """Turn the host terminal on, with /bin/sh as its shell (STACKHUB_HOST_SHELL).

    These tests close shells while they start. Root's dotfiles on the test machine run pyenv,
    whose rehash takes a lock file; a shell killed mid-rehash leaves it, and every later root
    login shell (the e2e host terminal's too) then waits 60 s for it. sh skips ~/.bashrc.
    """
    server.services.terminals.host_enabled = True
    server.services.terminals.host_shell = "/bin/sh"


def start_host(ws: WebSocketTestSession, password: str, code: str | None = None) -> None:
    """Send the host terminal's start message after auth_ok."""
    assert receive_json(ws) == {"type": "auth_ok"}
    ws.send_json({"type": "start", "password": password, "code": code, "rows": 30,
                  "cols": 90})


def test_host_terminal_is_off_by_default(ready: Server) -> None:
    """Off unless the server enables it: even an admin with the right password gets nothing."""
    assert ready.services.terminals.host_enabled is False
    admin = ready.signed_in(*ADMIN)
    assert admin.get(HOST).json() == {"enabled": False, "idle_timeout": 900}
    with admin.websocket_connect(HOST, headers={"Origin": ORIGIN}) as ws:
        start_host(ws, ADMIN[1])
        error, code = error_then_close(ws)
    assert error["details"]["reason"] == "host_terminal_off"
    assert code == 4403


def test_host_terminal_is_for_admins_with_their_password(ready: Server) -> None:
    """Members are refused at once; a wrong password or the passwordless built-in token opens
    nothing and is audited."""
    host_on(ready)
    member = ready.signed_in(*MEMBER)
    assert member.get(HOST).status_code == 403
    with member.websocket_connect(HOST, headers={"Origin": ORIGIN}) as ws:
        refused(ws, kind="auth_forbidden", code=4403, error="forbidden")
    admin = ready.signed_in(*ADMIN)
    with admin.websocket_connect(HOST, headers={"Origin": ORIGIN}) as ws:
        start_host(ws, "not-the-password")
        error, code = error_then_close(ws)
    assert (error["code"], code) == ("unauthorized", 4401)
    with ready.new_client().websocket_connect(HOST, headers=ready.admin_headers()) as ws:
        start_host(ws, "anything")
        error, code = error_then_close(ws)
    assert (error["code"], code) == ("forbidden", 4403)  # no account behind the token
    failures = [e for e in ready.services.auth.audit.recent(50)
                if e.action == "host_terminal.open" and not e.success]
    assert {e.actor for e in failures} == {"alice", "local-admin"}


def read_output(ws: WebSocketTestSession, needle: str) -> str:
    """Collect terminal output until `needle` appears."""
    seen = ""
    deadline = time.monotonic() + 20
    while needle not in seen:
        assert time.monotonic() < deadline, seen[-300:]
        message = receive_any(ws)
        if isinstance(message, bytes):
            assert message[0] == 1  # a pty has one stream
            seen += message[1:].decode("utf-8", "replace")
        else:
            assert message.get("type") != "error", message
    return seen


def test_host_terminal_runs_a_shell_and_audits_it(ready: Server) -> None:
    """The right password opens a shell on a pty; its size is set; exit reports the code; the
    session's start and end are in the audit log with the user."""
    host_on(ready)
    admin = ready.signed_in(*ADMIN)
    with admin.websocket_connect(HOST, headers={"Origin": ORIGIN}) as ws:
        start_host(ws, ADMIN[1])
        started = receive_any(ws)
        assert isinstance(started, dict) and started["type"] == "started", started
        ws.send_bytes(b"echo sum-$((40+2)); stty size\n")
        read_output(ws, "30 90")
        ws.send_json({"type": "resize", "rows": 33, "cols": 101})
        ws.send_bytes(b"stty size; exit 5\n")
        read_output(ws, "33 101")
        while True:
            message = receive_any(ws)
            if isinstance(message, dict):
                assert message == {"type": "exit", "code": 5}
                break
    closes = audited(ready, "host_terminal.close")
    assert [(e.actor, e.success, e.details["reason"], e.details["exit_status"]) for e in closes] \
        == [("alice", True, "exit", 5)]
    assert [(e.actor, e.success) for e in audited(ready, "host_terminal.open")] == \
        [("alice", True)]


def audited(server: Server, action: str) -> list[Any]:
    """Return the audit entries of `action`, waiting a little for one to be written."""
    deadline = time.monotonic() + 5
    while True:
        found = [e for e in server.services.auth.audit.recent(50) if e.action == action]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_host_terminal_disconnect_ends_the_shell(ready: Server, tmp_path: Path) -> None:
    """A client that goes away mid-command leaves no process behind."""
    host_on(ready)
    marker = tmp_path / "started"
    admin = ready.signed_in(*ADMIN)
    with admin.websocket_connect(HOST, headers={"Origin": ORIGIN}) as ws:
        start_host(ws, ADMIN[1])
        receive_any(ws)
        ws.send_bytes(f"sleep 777 & touch {marker}; sleep 778\n".encode())
        deadline = time.monotonic() + 10
        while not marker.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    deadline = time.monotonic() + 10
    while True:
        alive = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmd(p) in (
            "sleep 777", "sleep 778")]
        if not alive:
            break
        assert time.monotonic() < deadline, alive
        time.sleep(0.1)


def _cmd(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def test_host_terminal_needs_totp_when_enrolled(ready: Server) -> None:
    """With TOTP on, the password alone is not enough; password and a fresh code are."""
    host_on(ready)
    secret, _ = enable_totp(ready, *ADMIN)
    admin = ready.new_client(headers=bearer(ready.user_token(_signed_in_totp(ready, secret))))
    with admin.websocket_connect(HOST) as ws:
        start_host(ws, ADMIN[1])
        error, code = error_then_close(ws)
    assert error["details"]["reason"] == "totp_required" and code == 4401
    with admin.websocket_connect(HOST) as ws:
        start_host(ws, ADMIN[1], totp.code_at(secret, time.time() + 30))
        started = receive_any(ws)
        assert isinstance(started, dict) and started["type"] == "started", started


def _signed_in_totp(server: Server, secret: str) -> Any:
    client = server.new_client()
    origin = {"Origin": ORIGIN}
    assert client.post("/api/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]},
                       headers=origin).json()["totp_required"]
    answer = client.post("/api/auth/totp", json={"code": totp.code_at(secret, time.time())},
                         headers=csrf(client))
    assert answer.status_code == 200, answer.text
    return client


def test_host_terminal_idles_out(ready: Server) -> None:
    """No input for the idle timeout closes the terminal, audited with the reason."""
    host_on(ready)
    ready.services.terminals.idle_timeout = 1
    admin = ready.signed_in(*ADMIN)
    with admin.websocket_connect(HOST, headers={"Origin": ORIGIN}) as ws:
        start_host(ws, ADMIN[1])
        deadline = time.monotonic() + 10
        while True:
            assert time.monotonic() < deadline
            message = receive_any(ws)
            if isinstance(message, dict) and message["type"] == "error":
                assert message["error"]["details"]["reason"] == "idle"
                break
    closes = audited(ready, "host_terminal.close")
    assert closes and closes[0].details["reason"] == "idle"


def test_logout_closes_an_open_host_terminal(ready: Server) -> None:
    """Signing out ends the shell's socket at once."""
    host_on(ready)
    admin = ready.signed_in(*ADMIN)
    with admin.websocket_connect(HOST, headers={"Origin": ORIGIN}) as ws:
        start_host(ws, ADMIN[1])
        receive_any(ws)
        assert admin.post("/api/auth/logout", headers=csrf(admin)).status_code == 204
        with pytest.raises(WebSocketDisconnect) as caught:
            for _ in range(1000):
                receive_any(ws)
        assert caught.value.code == 4401


def test_terminals_per_user_are_capped(wiki: Server) -> None:
    """One user cannot hold more than the cap of terminals open; a closed one frees its slot."""
    wiki.services.terminals.max_per_user = 1
    with wiki.new_client().websocket_connect(TERMINAL, headers=wiki.admin_headers()) as first:
        assert receive_json(first) == {"type": "auth_ok"}
        with wiki.new_client().websocket_connect(TERMINAL,
                                                 headers=wiki.admin_headers()) as second:
            assert receive_json(second) == {"type": "auth_ok"}
            error, code = error_then_close(second)
            assert (error["code"], code) == ("conflict", 4409), error
    deadline = time.monotonic() + 5
    while wiki.services.terminals._open and time.monotonic() < deadline:  # the slot is freed
        time.sleep(0.05)
    with wiki.new_client().websocket_connect(TERMINAL, headers=wiki.admin_headers()) as again:
        assert receive_json(again) == {"type": "auth_ok"}
        again.send_json({"type": "start", "command": ["id"]})
        error, _ = error_then_close(again)
        assert error["code"] == "engine_unavailable"  # past the cap, on to the engine
