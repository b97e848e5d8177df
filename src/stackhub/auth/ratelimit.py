"""Count failed attempts per IP and per account, with exponential back-off."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from stackhub.errors import StackHubError

Clock = Callable[[], float]
MAX_KEYS = 20_000
KNOWN_IPS = 16


class RateLimited(StackHubError):
    """Too many failed attempts; try again later."""

    code = "rate_limited"

    def __init__(self, retry_after: float) -> None:
        """Say how long to wait."""
        seconds = max(1, math.ceil(retry_after))
        super().__init__(f"too many failed attempts; try again in {seconds} s",
                         details={"retry_after": seconds})
        self.retry_after = seconds


@dataclass
class _Entry:
    failures: int = 0
    last: float = 0.0
    blocked_until: float = 0.0


@dataclass(frozen=True)
class Policy:
    """How many failures are free, the first delay after them, the longest delay."""

    free: int
    base: float
    cap: float = 900.0
    forget_after: float = 3600.0


class Backoff:
    """Failures per key; past the free ones each failure doubles the wait (up to a cap)."""

    def __init__(self, policy: Policy, clock: Clock = time.monotonic) -> None:
        """Start empty."""
        self.policy = policy
        self.clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def wait(self, key: str) -> float:
        """Return the seconds the key must still wait (0 when free to try)."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        now = self.clock()
        if now - entry.last > self.policy.forget_after:
            del self._entries[key]
            return 0.0
        return max(0.0, entry.blocked_until - now)

    def fail(self, key: str) -> None:
        """Count a failure."""
        now = self.clock()
        entry = self._entries.pop(key, None) or _Entry()
        if now - entry.last > self.policy.forget_after:
            entry = _Entry()
        entry.failures += 1
        entry.last = now
        over = entry.failures - self.policy.free
        if over > 0:
            entry.blocked_until = now + min(self.policy.cap, self.policy.base * 2 ** (over - 1))
        self._entries[key] = entry
        while len(self._entries) > MAX_KEYS:
            self._entries.popitem(last=False)

    def failures(self, key: str) -> int:
        """Return the failures counted for a key."""
        entry = self._entries.get(key)
        return entry.failures if entry else 0

    def reset(self, key: str) -> None:
        """Forget a key's failures."""
        self._entries.pop(key, None)


class Guard:
    """Back-off per IP, per account and per (account, IP) pair.

    An account's own back-off does not apply to IPs that signed in to it successfully before,
    so a flood against the owner's account from elsewhere does not lock the owner out; the
    pair limit still applies to them.
    """

    def __init__(self, *, ip: Policy, account: Policy, pair: Policy,
                 clock: Clock = time.monotonic) -> None:
        """Create the three counters."""
        self.ip = Backoff(ip, clock)
        self.account = Backoff(account, clock)
        self.pair = Backoff(pair, clock)
        self._known: OrderedDict[str, list[str]] = OrderedDict()

    def _known_ip(self, account: str, ip: str) -> bool:
        return ip in self._known.get(account, [])

    def check(self, ip: str, account: str | None = None) -> None:
        """Raise RateLimited if this IP or account must wait."""
        waits = [self.ip.wait(ip)]
        if account is not None:
            waits.append(self.pair.wait(f"{account}\0{ip}"))
            if not self._known_ip(account, ip):
                waits.append(self.account.wait(account))
        longest = max(waits)
        if longest > 0:
            raise RateLimited(longest)

    def fail(self, ip: str, account: str | None = None) -> None:
        """Count a failed attempt."""
        self.ip.fail(ip)
        if account is not None:
            self.pair.fail(f"{account}\0{ip}")
            if not self._known_ip(account, ip):
                self.account.fail(account)

    def succeed(self, ip: str, account: str) -> None:
        """Clear the account's counters and remember the IP as known for it."""
        self.pair.reset(f"{account}\0{ip}")
        self.account.reset(account)
        known = self._known.pop(account, [])
        self._known[account] = ([ip] + [k for k in known if k != ip])[:KNOWN_IPS]
        while len(self._known) > MAX_KEYS:
            self._known.popitem(last=False)


def login_guard(clock: Clock = time.monotonic) -> Guard:
    """Return the guard for passwords (and the setup token)."""
    return Guard(ip=Policy(free=20, base=1.0), account=Policy(free=5, base=2.0),
                 pair=Policy(free=5, base=1.0), clock=clock)


def code_guard(clock: Clock = time.monotonic) -> Guard:
    """Return the guard for TOTP and recovery codes (10^6 codes: few tries allowed)."""
    return Guard(ip=Policy(free=20, base=1.0), account=Policy(free=5, base=4.0),
                 pair=Policy(free=5, base=2.0), clock=clock)
