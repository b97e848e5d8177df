"""Passwords, TOTP, recovery codes and back-off counters."""

from __future__ import annotations

import time

import pytest

from stackhub.auth import passwords, totp
from stackhub.auth.ratelimit import Backoff, Guard, Policy, RateLimited
from stackhub.errors import Invalid

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.mark.parametrize(("password", "username"), [
    ("short", "bob"), ("password123", "bob"), ("aaaaaaaaaaaaa", "bob"), ("x" * 2000, "bob"),
    ("alice-in-wonderland", "alice-in-wonderland"), ("ALICE-IN-WONDERLAND", "alice-in-wonderland"),
])
def test_policy_refuses_weak_passwords(password: str, username: str) -> None:
    with pytest.raises(Invalid):
        passwords.check_policy(password, username=username)


@pytest.mark.parametrize("password", ["correct horse battery staple", "x7#kQ2!vLp",
                                      "ümlaut-und-ß-sind-ok", "a" * 9 + "bcd"])
def test_policy_accepts_long_uncommon_passwords(password: str) -> None:
    assert passwords.check_policy(password, username="alice") is None
    with pytest.raises(Invalid):  # the same check on the password one character short
        passwords.check_policy(password[:passwords.MIN_LENGTH - 1], username="alice")


def test_hashes_are_argon2id_salted_and_verify() -> None:
    first = passwords.hash_password("correct horse battery staple")
    second = passwords.hash_password("correct horse battery staple")
    assert first.startswith("$argon2id$") and first != second
    assert passwords.verify(first, "correct horse battery staple")
    assert not passwords.verify(first, "correct horse battery stapler")
    assert not passwords.verify("not-a-hash", "anything")
    assert not passwords.needs_rehash(first)
    assert passwords.needs_rehash("not-a-hash")


def test_burn_spends_about_the_time_of_a_real_check() -> None:
    stored = passwords.hash_password("correct horse battery staple")
    passwords.burn("warm-up")  # the dummy hash is made once, on first use
    # this thread's CPU time (argon2 runs here, parallelism 1): wall time on a loaded box
    # counts whatever else the CPUs did meanwhile
    started = time.thread_time()
    for _ in range(3):
        passwords.verify(stored, "wrong guess")
    real = time.thread_time() - started
    started = time.thread_time()
    for text in ("whatever", "", "x" * 1024):
        assert passwords.burn(text) is None
    burned = time.thread_time() - started
    assert burned > real / 3, (burned, real)  # an unknown user is not answered faster


def test_totp_accepts_one_step_either_side_only() -> None:
    now = 1_700_000_000.0
    current = int(now // 30)
    for delta, expected in ((-30, current - 1), (0, current), (30, current + 1)):
        assert totp.match_step(SECRET, totp.code_at(SECRET, now + delta), after=0,
                               now=now) == expected
    for delta in (-90, -60, 60, 90):
        assert totp.match_step(SECRET, totp.code_at(SECRET, now + delta), after=0,
                               now=now) is None


def test_totp_never_accepts_a_step_at_or_before_the_last_used_one() -> None:
    now = 1_700_000_000.0
    current = int(now // 30)
    code = totp.code_at(SECRET, now)
    assert totp.match_step(SECRET, code, after=current, now=now) is None
    assert totp.match_step(SECRET, code, after=current - 1, now=now) == current


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 34 5x",
                                  "\uff11\uff12\uff13\uff14\uff15\uff16", "12345\u0661"])
def test_malformed_codes_never_match(code: str) -> None:
    assert totp.match_step(SECRET, code, after=0) is None


def test_codes_with_spaces_are_accepted() -> None:
    now = 1_700_000_000.0
    code = totp.code_at(SECRET, now)
    assert totp.match_step(SECRET, f"{code[:3]} {code[3:]}", after=0, now=now) is not None


def test_recovery_codes_are_unique_and_normalised() -> None:
    codes = totp.new_recovery_codes()
    assert len(codes) == 10 and len(set(codes)) == 10
    code = codes[0]
    assert totp.recovery_digest(code) == totp.recovery_digest(code.upper().replace("-", " "))
    assert totp.recovery_digest(code) != totp.recovery_digest(codes[1])


def test_enrolment_material() -> None:
    secret = totp.new_secret()
    uri = totp.otpauth_uri(secret, "alice")
    assert uri.startswith("otpauth://totp/StackHub:alice?") and f"secret={secret}" in uri
    svg = totp.qr_svg(uri)
    assert svg.startswith("<svg") and "<script" not in svg


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_after_the_free_failures_and_forgets() -> None:
    clock = Clock()
    counter = Backoff(Policy(free=2, base=1.0, cap=8.0, forget_after=100.0), clock)
    waits = []
    for _ in range(7):
        counter.fail("k")
        waits.append(counter.wait("k"))
    assert waits == [0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 8.0]
    clock.now += 8.0
    assert counter.wait("k") == 0.0
    clock.now += 200.0
    counter.fail("k")
    assert counter.failures("k") == 1


def test_guard_spares_known_addresses_from_the_account_limit() -> None:
    clock = Clock()
    guard = Guard(ip=Policy(free=100, base=1.0), account=Policy(free=2, base=10.0),
                  pair=Policy(free=3, base=10.0), clock=clock)
    guard.succeed("10.0.0.1", "alice")
    for _ in range(5):
        guard.fail("203.0.113.9", "alice")
    with pytest.raises(RateLimited) as caught:
        guard.check("203.0.113.9", "alice")
    assert caught.value.retry_after >= 1
    with pytest.raises(RateLimited):
        guard.check("198.51.100.1", "alice")  # a new address meets the account back-off
    guard.check("10.0.0.1", "alice")  # the owner's known address does not
    for _ in range(4):
        guard.fail("10.0.0.1", "alice")
    with pytest.raises(RateLimited):
        guard.check("10.0.0.1", "alice")  # but its own pair limit still applies
