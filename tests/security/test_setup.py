"""First-run setup needs the console's one-time token; the first visitor is not admin."""

from __future__ import annotations

import json
import stat

from .conftest import ADMIN, Server


def _setup(server: Server, token: str, name: str = "mallory") -> int:
    return server.new_client().post("/api/auth/setup", json={
        "setup_token": token, "username": name, "password": "mallory-long-password"}).status_code


def test_setup_token_is_private_and_status_says_setup_is_needed(server: Server) -> None:
    """The token file is 0600; status reports setup_required without revealing anything."""
    path = server.paths.secrets / "setup-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    status = server.client.get("/api/auth/status").json()
    assert status == {"setup_required": True, "authenticated": False, "user": None,
                      "require_2fa": False}
    assert server.setup_token not in json.dumps(server.client.app.openapi())  # type: ignore[attr-defined]
    assert server.client.get("/api/openapi.json").status_code == 401  # the schema needs a sign-in


def test_setup_without_or_with_a_wrong_token_creates_nothing(server: Server) -> None:
    """The first visitor does not become admin (Portainer CVE-2018-19367)."""
    for token in ("", "setup_", "x" * 40, server.setup_token[:-1], server.setup_token + "x"):
        assert _setup(server, token) in (401, 422)
    assert not server.services.auth.users.all()
    assert server.client.get("/api/auth/status").json()["setup_required"] is True


def test_setup_creates_the_admin_signs_in_and_cannot_be_replayed(server: Server) -> None:
    """Setup works once; the token file is deleted; a replay with the same token is 403."""
    token = server.setup_token
    client = server.new_client()
    response = client.post("/api/auth/setup", json={
        "setup_token": token, "username": ADMIN[0], "password": ADMIN[1]})
    assert response.status_code == 201
    assert response.json() == {"user": {"name": "alice", "role": "admin", "totp_enabled": False}}
    assert client.get("/api/auth/status").json()["authenticated"] is True
    assert not (server.paths.secrets / "setup-token").exists()
    assert _setup(server, token, "mallory") == 403
    assert [u.name for u in server.services.auth.users.all()] == ["alice"]
    actions = [(e.action, e.success) for e in server.services.auth.audit.recent()]
    assert ("setup", False) in actions and ("setup", True) in actions


def test_weak_password_is_refused_at_setup(server: Server) -> None:
    """The password policy applies to the first admin too."""
    response = server.new_client().post("/api/auth/setup", json={
        "setup_token": server.setup_token, "username": "alice", "password": "short"})
    assert response.status_code == 422
    assert not server.services.auth.users.all()


def test_no_unauthenticated_password_reset_route_exists(server: Server) -> None:
    """Reset is only in the server CLI (Runtipi CVE-2026-31881): no route mentions reset."""
    paths = server.client.app.openapi()["paths"]  # type: ignore[attr-defined]
    assert not [p for p in paths if "reset" in p or "forgot" in p]
