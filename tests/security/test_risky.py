"""Risky compose needs an admin's consent bound to a digest of exactly that content."""

from __future__ import annotations

from typing import Any

from .conftest import MEMBER, Server, bearer

RISKY = """\
services:
  web:
    image: stackhub-test/web:1
    privileged: true
    volumes: ["/var/run/docker.sock:/var/run/docker.sock"]
"""
OTHER_RISKY = RISKY.replace("privileged: true", "privileged: true\n    pid: host")


def body(compose: str, accept: str | None = None) -> dict[str, Any]:
    """An install request for a custom compose app."""
    return {"source": {"kind": "compose", "compose": compose}, "name": "agent",
            "accept_risks": accept}


def _nothing_installed(server: Server) -> None:
    assert server.services.records.find("agent") is None
    assert not server.engine.called("pull")
    assert not (server.paths.instances / "agent").exists()


def test_risky_install_without_consent_is_refused(ready: Server) -> None:
    """428 with the digest and risks; nothing is written or pulled."""
    admin = ready.new_client(headers=ready.admin_headers())
    answer = admin.post("/api/instances", json=body(RISKY))
    assert answer.status_code == 428
    error = answer.json()["error"]
    assert error["code"] == "risk_not_accepted"
    assert error["details"]["digest"].startswith("sha256:")
    assert {r["code"] for r in error["details"]["risks"]} >= {"privileged", "docker_socket"}
    _nothing_installed(ready)


def test_consent_for_different_content_is_refused(ready: Server) -> None:
    """A digest approved for one compose file does not cover another (Portainer GHSA-5fxq)."""
    admin = ready.new_client(headers=ready.admin_headers())
    digest = admin.post("/api/plans", json=body(RISKY)).json()["digest"]
    for accept in (digest, digest.upper(), "sha256:" + "0" * 64, "yes", "true", "*"):
        answer = admin.post("/api/instances", json=body(OTHER_RISKY, accept))
        assert answer.status_code == 428, accept
    _nothing_installed(ready)


def test_admin_consent_with_the_right_digest_installs_and_is_audited(ready: Server) -> None:
    """The exact digest goes through, and the consent is in the audit log."""
    admin = ready.new_client(headers=ready.admin_headers())
    digest = admin.post("/api/plans", json=body(RISKY)).json()["digest"]
    answer = admin.post("/api/instances", json=body(RISKY, digest))
    assert answer.status_code == 202, answer.text
    actions = {(e.action, e.target, e.details.get("digest")) for e in
               ready.services.auth.audit.recent()}
    assert ("risk.consent", "agent", digest) in actions
    assert any(a == "instance.install" for a, _, _ in actions)


def test_member_cannot_consent_even_with_the_right_digest(ready: Server) -> None:
    """Only admins install at all, so only admins accept risks."""
    digest = ready.new_client(headers=ready.admin_headers()).post(
        "/api/plans", json=body(RISKY)).json()["digest"]
    member = ready.new_client(headers=bearer(ready.user_token(ready.signed_in(*MEMBER))))
    assert member.post("/api/plans", json=body(RISKY)).status_code == 403
    assert member.post("/api/instances", json=body(RISKY, digest)).status_code == 403
    _nothing_installed(ready)
    refused = [e for e in ready.services.auth.audit.recent() if e.action == "instance.install"]
    assert not refused  # refused by policy before the handler ran
