"""Secrets are shown once at creation and never again: not in answers, audit or logs."""

from __future__ import annotations

import logging
import time

import pytest

from .conftest import ADMIN, IMAGE, MEMBER, Server, bearer

MANIFEST = """\
format: stackhub/v1
id: notes
name: Notes
version: "1.0"
main: {service: web, port: 80}
parameters:
  - {name: ADMIN_PASSWORD, type: password, required: true}
  - {name: API_KEY, type: secret, length: 40}
  - {name: TITLE, type: string, default: Team notes}
"""
COMPOSE = f"""\
services:
  web:
    image: {IMAGE}
    ports: ["18201:80"]
    environment:
      ADMIN_PASSWORD: ${{ADMIN_PASSWORD}}
      API_KEY: ${{API_KEY}}
      TITLE: ${{TITLE}}
"""
PASSWORD = "Sup3r-Secret-Admin-Pw"


def test_secret_parameters_are_redacted_after_install(ready: Server,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Plan shows generated secrets once; instances, operations, audit and logs never do."""
    caplog.set_level(logging.DEBUG)
    admin = ready.new_client(headers=ready.admin_headers())
    request = {"source": {"kind": "app", "manifest": MANIFEST, "compose": COMPOSE},
               "name": "notes", "values": {"ADMIN_PASSWORD": PASSWORD}}
    plan = admin.post("/api/plans", json=request)
    assert plan.status_code == 200, plan.text
    api_key = plan.json()["values"]["API_KEY"]
    assert len(api_key) == 40
    request["values"]["API_KEY"] = api_key
    accepted = admin.post("/api/instances", json=request)
    assert accepted.status_code == 202, accepted.text
    deadline = time.monotonic() + 10
    while admin.get("/api/instances/notes").json()["status"] == "installing":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    listed = admin.get("/api/instances")
    shown = next(i for i in listed.json() if i["name"] == "notes")
    assert shown["parameters"]["ADMIN_PASSWORD"] == "********"
    assert shown["parameters"]["API_KEY"] == "********"
    assert shown["parameters"]["TITLE"] == "Team notes"
    ready.client.put("/api/users/bob/instances", json={"instances": ["notes"]},
                     headers=ready.admin_headers())
    member = ready.new_client(headers=bearer(ready.user_token(ready.signed_in(*MEMBER))))
    answers = [listed, admin.get("/api/instances/notes"), admin.get("/api/operations"),
               admin.get("/api/audit"), member.get("/api/instances"),
               member.get("/api/instances/notes")]
    for answer in answers:
        assert answer.status_code == 200
        assert PASSWORD not in answer.text and api_key not in answer.text
    for record in caplog.records:
        assert PASSWORD not in record.getMessage() and api_key not in record.getMessage()


def test_account_secrets_are_never_echoed(ready: Server,
                                          caplog: pytest.LogCaptureFixture) -> None:
    """Password hashes, token secrets, TOTP secrets and session values stay out of answers."""
    caplog.set_level(logging.DEBUG)
    session = ready.signed_in(*ADMIN)
    cookie = session.cookies.get("stackhub_session") or ""
    token = ready.user_token(session)
    api = ready.new_client(headers=bearer(token))
    answers = [api.get("/api/users"), api.get("/api/tokens"), api.get("/api/auth/sessions"),
               api.get("/api/audit?limit=1000"), api.get("/api/auth/status"),
               api.get("/api/settings/security")]
    for answer in answers:
        assert answer.status_code == 200, answer.request.url
        for secret in (token, cookie, ADMIN[1], MEMBER[1], "$argon2"):
            assert secret not in answer.text
    for record in caplog.records:
        message = record.getMessage()
        for secret in (token, cookie, ADMIN[1]):
            assert secret not in message


def test_log_lines_with_secrets_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    """Even a careless log call loses tokens, bearer headers and password fields."""
    from stackhub.api.security import install_log_redaction

    install_log_redaction()
    caplog.set_level(logging.INFO)
    log = logging.getLogger("stackhub.test")
    log.info("header Authorization: Bearer %s", "sht_abcdefghijklmnop")
    log.info("body %s", '{"username": "a", "password": "hunter2-long"}')
    log.info("admin token shk_0123456789abcdef")
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in ("sht_abcdefghijklmnop", "hunter2-long", "shk_0123456789abcdef"):
        assert secret not in text
