"""Notifications through a real server: a real webhook receiver (http.server) and a real SMTP
sink (aiosmtpd) receive the "send test" action and a real failed backup, which resolves when
the next backup succeeds; the CLI lists and marks them read."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.integration.conftest import Server, free_port

IMAGE = os.environ.get("STACKHUB_TEST_IMAGE", "stackhub-test/web:1")
COMPOSE = f"services:\n  web:\n    image: {IMAGE}\n    stop_grace_period: 1s\n"


class Receiver:
    """A webhook receiver on loopback: records (headers, body) of every POST."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.posts]


class Sink:
    """aiosmtpd's handler: keeps every message."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for _, m in self.messages]


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Sink, int]]:
    receiver, sink = Receiver(), Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield receiver, sink, port
    finally:
        controller.stop()
        receiver.httpd.shutdown()
        receiver.httpd.server_close()


def cli_json(srv: Server, *args: str) -> Any:
    result = srv.cli(*args, "--json")
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def test_webhook_and_email_receive_a_test_and_a_failed_backup(
        server: Server, receivers: tuple[Receiver, Sink, int], tmp_path: Path) -> None:
    receiver, sink, smtp_port = receivers
    hook = cli_json(server, "notifications", "webhook", receiver.url)
    secret = hook["secret"]
    assert hook["enabled"] and secret
    email = cli_json(server, "notifications", "email", "--host", "127.0.0.1", "--port",
                     str(smtp_port), "--from", "stackhub@example.com", "--to",
                     "ops@example.com", "--no-starttls")
    assert email["recipients"] == ["ops@example.com"] and not email["password_set"]
    bad = server.cli("notifications", "webhook", "ftp://127.0.0.1/hook", "--json")
    assert bad.returncode == 1 and "http://" in json.loads(bad.stdout)["error"]["message"]

    # the "send test" action, once per channel, answered when delivered
    assert cli_json(server, "notifications", "test", "webhook") == {
        "kind": "webhook", "ok": True, "error": None}
    assert cli_json(server, "notifications", "test", "email")["ok"] is True
    headers, body = receiver.posts[0]
    assert headers["x-stackhub-signature"] == "sha256=" + hmac.new(
        secret.encode(), body, hashlib.sha256).hexdigest()
    assert json.loads(body)["kind"] == "test"
    assert sink.subjects() == ["[StackHub] A test notification from StackHub"]
    assert sink.messages[0][0] == ["ops@example.com"]

    # a real producer: a backup that fails (the repository's password is wrong)
    answer = server.api("POST", "/api/instances", json={
        "source": {"kind": "compose", "compose": COMPOSE}, "name": "bell"})
    assert answer.status_code == 202, answer.text
    assert server.wait_operation(answer.json()["operation"]["id"])["state"] == "succeeded"
    secret_file = server.data_dir / "secrets" / "backup" / "local.password"
    assert server.cli("backup", "create", "bell").returncode == 0  # the repository exists
    good = secret_file.read_text()
    secret_file.write_text("not-the-password\n")
    try:
        assert server.cli("backup", "create", "bell").returncode == 1
    finally:
        secret_file.write_text(good)
    wait_for(lambda: any(p["kind"] == "backup_failed" for p in receiver.payloads()),
             "the webhook to receive the failed backup")
    failed = next(p for p in receiver.payloads() if p["kind"] == "backup_failed")
    assert failed["params"]["instance"] == "bell" and failed["link"] == "/backups"
    assert "password" in failed["text"] and not failed["resolved"]
    assert failed["url"].endswith("/backups")
    wait_for(lambda: any("The backup of bell failed" in s for s in sink.subjects()),
             "the e-mail of the failed backup")
    listed = cli_json(server, "notifications")
    bell = [n for n in listed["items"] if n["kind"] == "backup_failed"]
    assert len(bell) == 1 and not bell[0]["read"] and not bell[0]["resolved"]
    assert listed["unread"] >= 1
    human = server.cli("notifications")
    assert human.returncode == 0 and "The backup of bell failed" in human.stdout

    # the next good backup resolves it (and says so by webhook)
    assert server.cli("backup", "create", "bell").returncode == 0
    wait_for(lambda: any(p["kind"] == "backup_failed" and p["resolved"]
                         for p in receiver.payloads()), "the resolution by webhook")
    again = cli_json(server, "notifications")
    assert [n["resolved"] for n in again["items"] if n["kind"] == "backup_failed"] == [True]
    marked = cli_json(server, "notifications", "read", "--all")
    assert marked["marked"] == again["unread"]
    assert cli_json(server, "notifications")["unread"] == 0
    channels = {c["kind"]: c for c in cli_json(server, "notifications", "channels")}
    assert channels["webhook"]["last_ok"] is True and channels["email"]["last_ok"] is True
    assert "secret" not in json.dumps(channels).replace('"secret": null', "").replace(
        "secret_set", "")
