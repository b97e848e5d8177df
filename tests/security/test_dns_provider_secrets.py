"""DNS provider credentials: never in lego's argv, answers, the journal, the audit or logs."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
from pathlib import Path

import pytest

from .conftest import Server

SECRET = "Zq9-provider-password-51c7e0"


def test_provider_credentials_stay_secret(ready: Server, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    real = shutil.which("lego")
    if real is None:
        pytest.fail("lego is missing (scripts/bootstrap installs it)")
    caplog.set_level(logging.DEBUG)
    # the real lego, behind a wrapper that records what it was given
    wrapper = tmp_path / "lego-wrapper"
    wrapper.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {tmp_path}/argv.txt\n"
                       f"env > {tmp_path}/env.txt\nexec {real} \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("STACKHUB_LEGO_BIN", str(wrapper))
    proxy = ready.services.proxy
    proxy.settings = dataclasses.replace(proxy.settings, switch=None,
                                         acme_ca="https://127.0.0.1:1/dir")
    admin = ready.new_client(headers=ready.admin_headers())

    stored = admin.put("/api/gateway/dns-provider", json={
        "kind": "httpreq", "email": "me@example.com",
        "env": {"HTTPREQ_ENDPOINT": "http://127.0.0.1:1/dns", "HTTPREQ_USERNAME": "stackhub",
                "HTTPREQ_PASSWORD": SECRET}})
    assert stored.status_code == 200, stored.text
    assert stored.json()["keys"] == ["HTTPREQ_ENDPOINT", "HTTPREQ_PASSWORD", "HTTPREQ_USERNAME"]
    path = ready.paths.secrets / "dns-provider.json"
    assert path.stat().st_mode & 0o777 == 0o600

    async def obtain() -> str:
        # in the app's loop but outside a request: TestClient cancels what a request leaves
        accepted = await ready.services.wildcard.obtain("box.example.com")
        await asyncio.gather(*ready.services.runner.tasks.values(), return_exceptions=True)
        return accepted.operation.id

    portal = ready.client.portal
    assert portal is not None
    op_id = portal.call(obtain)
    op = admin.get(f"/api/operations/{op_id}").json()
    assert op["state"] == "failed" and "could not be reached" in op["error"], op["error"]

    argv = (tmp_path / "argv.txt").read_text()
    env = (tmp_path / "env.txt").read_text()
    assert "--dns=httpreq" in argv and SECRET not in argv
    assert f"HTTPREQ_PASSWORD={SECRET}" in env  # the credential reaches lego by env only
    assert "STACKHUB_" not in env  # and nothing of the server's own environment
    answers = [admin.get("/api/gateway/dns-provider"), admin.get(f"/api/operations/{op_id}"),
               admin.get("/api/operations"), admin.get("/api/audit?limit=1000"),
               admin.get("/api/domains/base")]
    for answer in answers:
        assert answer.status_code == 200
        assert SECRET not in answer.text
    assert SECRET not in caplog.text
    assert proxy.base() == (None, None)  # the failed run changed nothing


def test_members_cannot_touch_the_provider(ready: Server) -> None:
    member = ready.new_client()
    from .conftest import MEMBER
    member.post("/api/auth/login", json={"username": MEMBER[0], "password": MEMBER[1]})
    for method, url in (("GET", "/api/gateway/dns-provider"),
                        ("PUT", "/api/gateway/dns-provider"),
                        ("DELETE", "/api/gateway/dns-provider"),
                        ("POST", "/api/gateway/wildcard"),
                        ("GET", "/api/gateway/dns-records"),
                        ("POST", "/api/gateway/dns-records/sync")):
        answer = member.request(method, url, json={}, headers={"Origin": "http://testserver"})
        assert answer.status_code == 403, (method, url, answer.text)


def test_a_provider_run_through_lego_exec_keeps_the_secret_off_argv(
        ready: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    real = shutil.which("lego")
    if real is None:
        pytest.fail("lego is missing (scripts/bootstrap installs it)")
    caplog.set_level(logging.DEBUG)
    # the wrapper says it has only the exec provider (as Debian's lego lacks cloudflare)
    wrapper = tmp_path / "lego-wrapper"
    wrapper.write_text(f"#!/bin/sh\n# providers/dns/exec.NewDNSProvider\n"
                       f"printf '%s\\n' \"$@\" > {tmp_path}/argv.txt\n"
                       f"env > {tmp_path}/env.txt\nexec {real} \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("STACKHUB_LEGO_BIN", str(wrapper))
    proxy = ready.services.proxy
    proxy.settings = dataclasses.replace(proxy.settings, switch=None,
                                         acme_ca="https://127.0.0.1:1/dir")
    admin = ready.new_client(headers=ready.admin_headers())
    stored = admin.put("/api/gateway/dns-provider", json={
        "kind": "cloudflare", "email": "me@example.com", "zone": "example.com",
        "env": {"CF_DNS_API_TOKEN": SECRET}})
    assert stored.status_code == 200, stored.text
    assert stored.json()["via_exec"] is True and SECRET not in stored.text

    async def obtain() -> str:
        accepted = await ready.services.wildcard.obtain("box.example.com")
        await asyncio.gather(*ready.services.runner.tasks.values(), return_exceptions=True)
        return accepted.operation.id

    portal = ready.client.portal
    assert portal is not None
    op_id = portal.call(obtain)
    assert admin.get(f"/api/operations/{op_id}").json()["state"] == "failed"
    argv = (tmp_path / "argv.txt").read_text()
    env = (tmp_path / "env.txt").read_text()
    assert "--dns=exec" in argv and SECRET not in argv
    assert f"CF_DNS_API_TOKEN={SECRET}" in env  # the hook gets it through lego's environment
    assert "STACKHUB_DNS_KIND=cloudflare" in env and "STACKHUB_DNS_ZONE=example.com" in env
    hook = proxy.lego_path / "stackhub-dns-hook"
    assert f"EXEC_PATH={hook}" in env and SECRET not in hook.read_text()
    for answer in (admin.get(f"/api/operations/{op_id}"), admin.get("/api/gateway/dns-records"),
                   admin.get("/api/audit?limit=1000"), admin.get("/api/gateway/dns-providers")):
        assert answer.status_code == 200 and SECRET not in answer.text
    assert SECRET not in caplog.text
