"""Notifications: the SMTP password and webhook secret never come back, webhook URLs are
http(s) only, members read only what concerns them and change no channel."""

from __future__ import annotations

from stackhub.notify.models import Kind
from stackhub.notify.store import Notice

from .conftest import MEMBER, Server, bearer

EMAIL = {"host": "smtp.example.com", "port": 587, "sender": "sh@example.com",
         "recipients": ["ops@example.com"], "username": "sh",
         "password": "the-smtp-password-9f2"}


def test_smtp_password_and_webhook_secret_never_returned(ready: Server) -> None:
    admin = ready.new_client(headers=ready.admin_headers())
    put = admin.put("/api/notifications/channels/email", json=EMAIL)
    assert put.status_code == 200, put.text
    assert put.json()["password_set"] is True
    hook = admin.put("/api/notifications/channels/webhook",
                     json={"url": "https://hooks.example.com/in"})
    secret = hook.json()["secret"]
    assert secret and len(secret) >= 32
    answers = [put.text, admin.get("/api/notifications/channels").text,
               admin.put("/api/notifications/channels/email",
                         json={**EMAIL, "password": None}).text,
               admin.get("/api/audit").text, admin.get("/api/notifications").text]
    for text in answers:
        assert EMAIL["password"] not in text
    for text in answers[1:]:
        assert secret not in text
    stored = ready.paths.secrets / "notify" / "smtp-password"
    assert stored.read_text() == EMAIL["password"] and stored.stat().st_mode & 0o077 == 0


def test_webhook_url_must_be_http_or_https(ready: Server) -> None:
    admin = ready.new_client(headers=ready.admin_headers())
    for url in ("ftp://example.com/in", "file:///etc/shadow", "gopher://127.0.0.1:6379/_x",
                "javascript:alert(1)//", "http://user:pw@example.com/",
                "https://exa mple.com/", "//example.com/in"):
        answer = admin.put("/api/notifications/channels/webhook", json={"url": url})
        assert answer.status_code == 422, (url, answer.text)
        assert answer.json()["error"]["message"]
    webhook = admin.get("/api/notifications/channels").json()[0]
    assert webhook["kind"] == "webhook" and webhook["configured"] is False
    assert not (ready.paths.secrets / "notify" / "webhook-secret").exists()


def test_members_read_only_their_notifications_and_change_no_channel(ready: Server) -> None:
    notify = ready.services.notify
    secret = notify.notify(Notice(Kind.BACKUP_FAILED, "backup_failed:payroll",
                                  {"instance": "payroll", "error": "x"}, "/backups",
                                  instance="payroll"))
    other = notify.notify(Notice(Kind.APP_UNHEALTHY, "unhealthy:payroll",
                                 {"instance": "payroll"}, "/apps/payroll", instance="payroll",
                                 admin_only=False))
    shared = notify.notify(Notice(Kind.ENGINE_UNREACHABLE, "engine", {"error": "down"}, "/",
                                  admin_only=False))
    assert secret and other and shared
    token = ready.user_token(ready.signed_in(*MEMBER))
    member = ready.new_client(headers=bearer(token))
    listed = member.get("/api/notifications")
    assert listed.status_code == 200
    assert [n["id"] for n in listed.json()["items"]] == [shared.id]
    assert listed.json()["unread"] == 1
    assert member.post(f"/api/notifications/{secret.id}/read").status_code == 404
    assert member.post(f"/api/notifications/{other.id}/read").status_code == 404
    assert member.post("/api/notifications/read-all").json() == {"marked": 1}
    for method, path, body in (
            ("GET", "/api/notifications/channels", None),
            ("PUT", "/api/notifications/channels/webhook", {"url": "https://evil.example/"}),
            ("PUT", "/api/notifications/channels/email", EMAIL),
            ("DELETE", "/api/notifications/channels/webhook", None),
            ("POST", "/api/notifications/channels/webhook/test", None)):
        answer = member.request(method, path, json=body)
        assert answer.status_code == 403, (method, path, answer.text)
    admin = ready.new_client(headers=ready.admin_headers())
    assert admin.get("/api/notifications/channels").json()[0]["configured"] is False
    assert admin.get("/api/notifications").json()["unread"] == 3  # bob's marks are bob's


def test_members_hear_of_changes_without_content_and_see_the_engine(ready: Server) -> None:
    """The `notification` topic carries no content; the list is filtered per reader."""
    token = ready.user_token(ready.signed_in(*MEMBER))
    member = ready.new_client(headers=bearer(token))
    with ready.client.websocket_connect("/api/ws", headers=bearer(token)) as ws:
        assert ws.receive_json()["type"] == "auth_ok"
        ws.send_json({"id": 1, "type": "subscribe", "topic": "notification"})
        assert ws.receive_json()["success"] is True
        ready.engine.available = False  # the engine goes away: a real bus event
        event = ws.receive_json()["event"]
        assert (event["topic"], event["kind"], set(event["data"])) == (
            "notification", "changed", {"id"})
        listed = member.get("/api/notifications").json()["items"]
        assert [(n["kind"], n["resolved"], n["link"]) for n in listed] == [
            ("engine_unreachable", False, "/")]
        ready.engine.available = True
        assert ws.receive_json()["event"]["kind"] == "changed"
        assert member.get("/api/notifications").json()["items"][0]["resolved"] is True
