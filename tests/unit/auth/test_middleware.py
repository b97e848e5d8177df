"""The pure parts of the HTTP hardening: origins, proxies, CSRF decisions, log redaction."""

from __future__ import annotations

from typing import Any

import pytest

from stackhub.api.security import apply_proxy, csrf_problem, origin_allowed, redact
from stackhub.auth.models import SecuritySettings
from stackhub.auth.settings import view_of

VIEW = view_of(SecuritySettings(trusted_proxies=["10.0.0.0/8"],
                                allowed_origins=["https://panel.example.com"]))


def scope(headers: dict[str, str], client: str = "192.0.2.1", **extra: Any) -> dict[str, Any]:
    """An HTTP scope with these headers."""
    return {"type": "http", "scheme": "http", "client": (client, 1234), "path": "/api/users",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()], **extra}


@pytest.mark.parametrize(("origin", "host", "ok"), [
    ("http://panel.lan:8420", "panel.lan:8420", True),
    ("https://panel.lan", "panel.lan:443", True),
    ("http://panel.lan:80", "panel.lan", True),
    ("HTTP://Panel.LAN:8420", "panel.lan:8420", True),
    ("https://panel.example.com", "10.0.0.9:8420", True),
    ("http://panel.lan:8421", "panel.lan:8420", False),
    ("http://panel.lan.evil.example:8420", "panel.lan:8420", False),
    ("null", "panel.lan", False),
    ("file://", "panel.lan", False),
    ("http://[::1", "panel.lan", False),
    ("http://panel.lan:99999", "panel.lan", False),
])
def test_origin_allowed(origin: str, host: str, ok: bool) -> None:
    assert origin_allowed(origin, scope({"Host": host}), VIEW) is ok


def test_proxy_headers_only_from_trusted_peers() -> None:
    untrusted = scope({"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https",
                       "X-Forwarded-Host": "evil.example", "Host": "panel.lan"})
    apply_proxy(untrusted, VIEW)
    assert untrusted["client"][0] == "192.0.2.1" and untrusted["scheme"] == "http"
    assert (b"host", b"panel.lan") in untrusted["headers"]
    trusted = scope({"X-Forwarded-For": "1.2.3.4, 10.0.0.7", "X-Forwarded-Proto": "https",
                     "X-Forwarded-Host": "panel.example.com", "Host": "10.0.0.2"},
                    client="10.0.0.2")
    apply_proxy(trusted, VIEW)
    assert trusted["client"][0] == "1.2.3.4" and trusted["scheme"] == "https"
    assert (b"host", b"panel.example.com") in trusted["headers"]
    weird = scope({"X-Forwarded-Host": "a b/c", "Host": "10.0.0.2"}, client="10.0.0.2")
    apply_proxy(weird, VIEW)
    assert (b"host", b"10.0.0.2") in weird["headers"]


def test_csrf_decisions() -> None:
    cookie = "stackhub_session=shs_x; stackhub_csrf=tok"
    same = {"Host": "panel.lan", "Origin": "http://panel.lan", "Cookie": cookie}
    assert csrf_problem(scope({**same, "X-CSRF-Token": "tok"}), "POST", VIEW) is None
    assert csrf_problem(scope(same), "POST", VIEW) is not None
    assert csrf_problem(scope(same), "GET", VIEW) is None
    assert csrf_problem(scope({**same, "Authorization": "Bearer x"}), "POST", VIEW) is None
    login = scope({"Host": "panel.lan", "Origin": "https://evil.example"},
                  path="/api/auth/login")
    assert csrf_problem(login, "POST", VIEW) is not None
    cli = scope({"Host": "panel.lan"}, path="/api/auth/login")
    assert csrf_problem(cli, "POST", VIEW) is None
    broken = scope({"Host": "panel.lan", "Origin": "http://panel.lan", "Cookie": '"unbalanced',
                    "X-CSRF-Token": "tok"})
    assert csrf_problem(broken, "POST", VIEW) is None  # no session cookie: auth will 401


@pytest.mark.parametrize("line", [
    "Authorization: Bearer sht_AbCdEf0123456789",
    'sent {"password": "hunter2hunter2"}',
    "token=shk_0123456789abcdef&x=1",
    "session shs_abcdefghijkl expired",
])
def test_redact(line: str) -> None:
    cleaned = redact(line)
    for secret in ("sht_AbCdEf0123456789", "hunter2hunter2", "shk_0123456789abcdef",
                   "shs_abcdefghijkl"):
        assert secret not in cleaned
    assert "[redacted]" in cleaned
