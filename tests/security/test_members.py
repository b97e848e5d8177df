"""Members see and open only the instances granted to them, and change nothing."""

from __future__ import annotations

import time

from .conftest import ADMIN, MEMBER, Server, bearer, csrf

COMPOSE = "services:\n  web:\n    image: stackhub-test/web:1\n    ports: ['{port}:80']\n"


def install(server: Server, name: str, port: int) -> None:
    """Install a plain compose app as the admin and wait for it."""
    answer = server.client.post("/api/instances", headers=server.admin_headers(), json={
        "source": {"kind": "compose", "compose": COMPOSE.format(port=port)}, "name": name})
    assert answer.status_code == 202, answer.text
    op_id = answer.json()["operation"]["id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = server.client.get(f"/api/operations/{op_id}",
                                  headers=server.admin_headers()).json()["state"]
        if state != "running":
            assert state == "succeeded"
            return
        time.sleep(0.02)
    raise AssertionError("install did not finish")


def test_member_sees_only_granted_instances(ready: Server) -> None:
    """GET /api/instances is filtered; other instances are 404, not 403 (no disclosure)."""
    install(ready, "wiki", 18101)
    install(ready, "payroll", 18102)
    token = ready.user_token(ready.signed_in(*MEMBER))
    member = ready.new_client(headers=bearer(token))
    assert member.get("/api/instances").json() == []
    assert member.get("/api/instances/wiki").status_code == 404
    ready.client.put("/api/users/bob/instances", json={"instances": ["wiki"]},
                     headers=ready.admin_headers())
    assert [i["name"] for i in member.get("/api/instances").json()] == ["wiki"]
    assert member.get("/api/instances/wiki").status_code == 200
    assert member.get("/api/instances/payroll").status_code == 404
    admin = ready.new_client(headers=ready.admin_headers())
    assert {i["name"] for i in admin.get("/api/instances").json()} == {"wiki", "payroll"}


def test_member_cannot_change_anything(ready: Server) -> None:
    """Even on a granted instance: no start/stop/remove/logs, no grants, no users."""
    install(ready, "wiki", 18103)
    ready.client.put("/api/users/bob/instances", json={"instances": ["wiki"]},
                     headers=ready.admin_headers())
    token = ready.user_token(ready.signed_in(*MEMBER))
    member = ready.new_client(headers=bearer(token))
    for method, path in (("POST", "/api/instances/wiki/stop"), ("DELETE", "/api/instances/wiki"),
                         ("GET", "/api/instances/wiki/logs"), ("PUT", "/api/users/bob/instances"),
                         ("PATCH", "/api/users/bob"), ("GET", "/api/audit"),
                         ("PUT", "/api/settings/security"), ("GET", "/api/operations")):
        answer = member.request(method, path, json={"instances": ["wiki"], "role": "admin"})
        assert answer.status_code == 403, (method, path)
    assert ready.services.auth.users.get("bob").role == "member"
    assert ready.engine.called("pull")  # installs happened; nothing else was touched by bob


def test_member_session_cannot_promote_itself(ready: Server) -> None:
    """Role changes are admin-only whatever the credential."""
    session = ready.signed_in(*MEMBER)
    answer = session.patch("/api/users/bob", json={"role": "admin"}, headers=csrf(session))
    assert answer.status_code == 403
    assert ready.services.auth.users.get("bob").role == "member"


def test_removing_an_instance_drops_its_grants(ready: Server) -> None:
    """A later instance of the same name does not inherit old grants."""
    install(ready, "wiki", 18104)
    ready.client.put("/api/users/bob/instances", json={"instances": ["wiki"]},
                     headers=ready.admin_headers())
    answer = ready.client.delete("/api/instances/wiki", headers=ready.admin_headers())
    assert answer.status_code == 202
    assert ready.services.auth.users.grants("bob") == []


def test_last_admin_cannot_be_removed_or_demoted(ready: Server) -> None:
    """No lock-out by deleting, disabling or demoting the only admin."""
    admin = ready.new_client(headers=ready.admin_headers())
    assert admin.delete("/api/users/alice").status_code == 409
    assert admin.patch("/api/users/alice", json={"disabled": True}).status_code == 409
    assert admin.patch("/api/users/alice", json={"role": "member"}).status_code == 409
    session = ready.signed_in(*ADMIN)
    assert session.delete("/api/users/alice", headers=csrf(session)).status_code == 409
