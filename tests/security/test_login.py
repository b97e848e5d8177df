"""Sign-in: no user enumeration, back-off per IP and per account, TOTP limits and one-time use."""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stackhub.auth import totp
from stackhub.auth.ratelimit import Guard, Policy

from .conftest import ADMIN, MEMBER, Server, csrf

BAD = {"error": {"code": "unauthorized", "message": "invalid username or password",
                 "details": {"reason": "bad_login"}}}


def login(client: TestClient, name: str, password: str) -> Any:
    """POST the login form."""
    return client.post("/api/auth/login", json={"username": name, "password": password})


def from_ip(server: Server, ip: str) -> TestClient:
    """A client whose TCP peer address is `ip`."""
    return server.new_client(client=(ip, 40000))


def test_unknown_user_wrong_password_and_disabled_user_look_the_same(ready: Server) -> None:
    """Same status, body and headers whatever was wrong (CasaOS CVE-2024-24766)."""
    ready.create_user("carol", "carol-long-password")
    ready.client.patch("/api/users/carol", json={"disabled": True}, headers=ready.admin_headers())
    answers = [login(from_ip(ready, f"192.0.2.{i}"), name, password) for i, (name, password) in
               enumerate([("nobody", "whatever-password"), ("alice", "wrong-password-123"),
                          ("carol", "carol-long-password"), ("ALICE ", "wrong-password-123")])]
    for answer in answers:
        assert answer.status_code == 401
        assert answer.json() == BAD
        assert "set-cookie" not in answer.headers
    assert len({tuple(sorted((k, v) for k, v in a.headers.items() if k != "date"))
                for a in answers}) == 1


def test_unknown_user_takes_about_as_long_as_a_wrong_password(ready: Server) -> None:
    """A dummy argon2 check keeps timing similar (Portainer CVE-2024-29296); rough check."""
    loose = Policy(free=10**6, base=1.0)
    ready.services.auth.login_guard = Guard(ip=loose, account=loose, pair=loose)
    client = ready.new_client()

    def timed(name: str) -> float:
        start = time.perf_counter()
        assert login(client, name, "not-the-password-1").status_code == 401
        return time.perf_counter() - start

    timed("alice")
    timed("ghost")
    pairs = [(timed("alice"), timed(f"ghost{i}")) for i in range(15)]  # interleaved: same load
    known = statistics.median(k for k, _ in pairs)
    unknown = statistics.median(u for _, u in pairs)
    assert 0.5 < unknown / known < 2.0, (known, unknown)


def test_password_brute_force_hits_the_account_limit(ready: Server) -> None:
    """Repeated failures on one account back off with 429 and Retry-After."""
    client = from_ip(ready, "198.51.100.20")
    statuses = [login(client, "alice", f"guess-number-{i}").status_code for i in range(8)]
    assert statuses[:5] == [401] * 5
    assert 429 in statuses
    blocked = login(client, *ADMIN)  # even the right password waits while blocked
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) >= 1
    assert blocked.json()["error"]["code"] == "rate_limited"


def test_distributed_guessing_is_stopped_by_the_account_limit(ready: Server) -> None:
    """One guess from each of many addresses still counts against the account."""
    statuses = [login(from_ip(ready, f"203.0.113.{i}"), "bob", f"guess-{i}-xxxx").status_code
                for i in range(10)]
    assert 429 in statuses


def test_one_address_cannot_spray_many_accounts(ready: Server) -> None:
    """The per-IP limit counts failures across accounts."""
    client = from_ip(ready, "198.51.100.30")
    statuses = [login(client, f"user{i}", "spray-password-1").status_code for i in range(25)]
    assert statuses[-1] == 429


def test_owner_is_not_locked_out_by_a_flood_from_elsewhere(ready: Server) -> None:
    """An address that signed in before keeps access while an attacker is blocked."""
    home = from_ip(ready, "192.0.2.10")
    assert login(home, *ADMIN).status_code == 200
    attacker = from_ip(ready, "198.51.100.66")
    statuses = [login(attacker, "alice", f"flood-{i}-xxxxx").status_code for i in range(30)]
    assert statuses[-1] == 429
    assert login(home, *ADMIN).status_code == 200


def test_spoofed_forwarded_for_does_not_reset_the_ip_limit(ready: Server) -> None:
    """X-Forwarded-For from an untrusted peer is ignored, so rotating it gains nothing."""
    client = from_ip(ready, "198.51.100.40")
    statuses = [client.post("/api/auth/login", json={"username": f"u{i}", "password": "x"},
                            headers={"X-Forwarded-For": f"10.9.8.{i}"}).status_code
                for i in range(25)]
    assert statuses[-1] == 429
    ips = {e.ip for e in ready.services.auth.audit.recent(50)
           if e.action == "login" and not e.success}
    assert ips == {"198.51.100.40"}


# -- TOTP ----------------------------------------------------------------------------------

def enable_totp(server: Server, name: str, password: str) -> tuple[str, list[str]]:
    """Enrol and confirm TOTP for a user; return the secret and the recovery codes."""
    client = server.signed_in(name, password)
    secret = client.post("/api/auth/totp/enroll", headers=csrf(client)).json()["secret"]
    code = totp.code_at(secret, time.time() - 30)  # the previous step: ±1 window
    answer = client.post("/api/auth/totp/confirm", json={"code": code}, headers=csrf(client))
    assert answer.status_code == 200, answer.text
    codes = answer.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    return secret, codes


def pending(server: Server, name: str, password: str, ip: str = "192.0.2.50") -> TestClient:
    """A client that passed the password step and now owes a code."""
    client = from_ip(server, ip)
    answer = login(client, name, password)
    assert answer.status_code == 200
    assert answer.json() == {"totp_required": True, "user": None}
    return client


def test_password_alone_does_not_sign_in_when_totp_is_on(ready: Server) -> None:
    """The pending session cannot reach anything but the code step."""
    enable_totp(ready, *MEMBER)
    client = pending(ready, *MEMBER)
    assert client.get("/api/auth/sessions").status_code == 401
    assert client.get("/api/instances").status_code == 401
    assert client.get("/api/auth/status").json()["authenticated"] is False


def test_totp_completes_sign_in_rotates_the_session_and_codes_are_single_use(
        ready: Server) -> None:
    """A right code finishes the sign-in with a new session id; the same code fails next time."""
    secret, _ = enable_totp(ready, *MEMBER)
    client = pending(ready, *MEMBER)
    before = client.cookies.get("stackhub_session")
    code = totp.code_at(secret, time.time())
    answer = client.post("/api/auth/totp", json={"code": code}, headers=csrf(client))
    assert answer.status_code == 200
    assert answer.json()["user"]["totp_enabled"] is True
    assert client.cookies.get("stackhub_session") != before
    assert client.get("/api/auth/sessions").status_code == 200
    again = pending(ready, *MEMBER, ip="192.0.2.51")
    reuse = again.post("/api/auth/totp", json={"code": code}, headers=csrf(again))
    assert reuse.status_code == 401


def test_totp_step_needs_the_csrf_token(ready: Server) -> None:
    """The code step rides on a cookie, so it is CSRF-protected like any other."""
    secret, _ = enable_totp(ready, *MEMBER)
    client = pending(ready, *MEMBER)
    answer = client.post("/api/auth/totp", json={"code": totp.code_at(secret, time.time())})
    assert answer.status_code == 403


def test_totp_brute_force_is_cut_off(ready: Server) -> None:
    """Five wrong codes end the pending sign-in; the next round is refused by the back-off."""
    secret, _ = enable_totp(ready, *MEMBER)
    client = pending(ready, *MEMBER)
    wrong = [f"{i:06d}" for i in range(6) if f"{i:06d}" != totp.code_at(secret, time.time())]
    statuses = [client.post("/api/auth/totp", json={"code": code},
                            headers=csrf(client)).status_code for code in wrong[:5]]
    assert statuses == [401] * 5
    gone = client.post("/api/auth/totp", json={"code": totp.code_at(secret, time.time())},
                       headers=csrf(client))
    assert gone.status_code == 401 and "no sign-in is waiting" in gone.json()["error"]["message"]
    again = pending(ready, *MEMBER)  # the attacker knows the password and starts over
    statuses = [again.post("/api/auth/totp", json={"code": code},
                           headers=csrf(again)).status_code for code in wrong[:2]]
    assert statuses == [401, 429]  # the sixth failure for the account starts the back-off
    right = again.post("/api/auth/totp", json={"code": totp.code_at(secret, time.time())},
                       headers=csrf(again))
    assert right.status_code == 429  # even the right code waits
    failures = [e for e in ready.services.auth.audit.recent(100)
                if e.action == "totp.check" and not e.success]
    assert len(failures) == 6


def test_recovery_codes_work_once(ready: Server) -> None:
    """A recovery code signs in once, then never again."""
    _, codes = enable_totp(ready, *MEMBER)
    first = pending(ready, *MEMBER)
    ok = first.post("/api/auth/totp", json={"code": codes[0].upper()}, headers=csrf(first))
    assert ok.status_code == 200
    second = pending(ready, *MEMBER, ip="192.0.2.52")
    again = second.post("/api/auth/totp", json={"code": codes[0]}, headers=csrf(second))
    assert again.status_code == 401


@pytest.mark.parametrize("require", [True])
def test_required_2fa_confines_unenrolled_users(ready: Server, require: bool) -> None:
    """With 2FA required, a user without it may only enrol (and manage their own sign-in)."""
    ready.client.put("/api/settings/security", headers=ready.admin_headers(),
                     json={"require_2fa": require, "trusted_proxies": [], "allowed_origins": []})
    client = ready.signed_in(*MEMBER)
    assert client.get("/api/auth/status").json()["require_2fa"] is True
    assert client.get("/api/instances").status_code == 403
    assert client.post("/api/auth/totp/enroll", headers=csrf(client)).status_code == 200


@pytest.mark.parametrize("code", ["\uff11\uff12\uff13\uff14\uff15\uff16", "12345\u0661", "\x00" * 6,
                                  "' OR 1=1 --", "9" * 64])
def test_odd_codes_are_plain_failures(ready: Server, code: str) -> None:
    """Non-ASCII digits and junk are a 401, never a 500."""
    enable_totp(ready, *MEMBER)
    client = pending(ready, *MEMBER)
    answer = client.post("/api/auth/totp", json={"code": code}, headers=csrf(client))
    assert answer.status_code == 401


def test_user_names_cannot_forge_log_or_audit_lines(ready: Server,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """A login name with newlines is stored and logged on one line."""
    caplog.set_level("INFO")
    forged = "x\nINFO stackhub.audit: audit login ok actor=alice"
    assert login(ready.new_client(), forged, "whatever-password").status_code == 401
    entry = ready.services.auth.audit.recent(1)[0]
    assert "\n" not in entry.actor
    assert all("\n" not in r.getMessage() for r in caplog.records if r.name == "stackhub.audit")


def test_parallel_guesses_do_not_slip_past_the_limit(ready: Server) -> None:
    """A burst of simultaneous guesses is counted one by one."""
    from concurrent.futures import ThreadPoolExecutor

    def guess(i: int) -> int:
        client = from_ip(ready, "198.51.100.90")
        return int(login(client, "alice", f"parallel-guess-{i}").status_code)

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(guess, range(24)))
    assert statuses.count(401) <= 6
    assert statuses.count(429) >= 18
