"""The host's packet filter (iptables, as Docker drives it): one rule in Docker's DOCKER-USER.

Docker (20.10 and later releases alike) accepts forwarded packets for a container's
published port addressed straight to the container's IP, even when the port is published on
127.0.0.1 only; so a machine on the same link that routes StackHub's subnet pool through this
box reaches an app's port directly, around the gateway and its sign-in. The rule here drops
forwarded packets to the pool that did not come from a container bridge (``br-*``) and were not
translated by a published port (conntrack state DNAT): published ports, the gateway (Caddy on
the host: output, not forwarded) and containers on their own networks are untouched.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence

CHAIN = "DOCKER-USER"
COMMENT = "stackhub: app containers only through published ports"
Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=20, check=False)


def rule(pool: ipaddress.IPv4Network) -> list[str]:
    """Return the rule's match and target (without the chain command)."""
    return ["-d", str(pool), "!", "-i", "br-+", "-m", "conntrack", "!", "--ctstate", "DNAT",
            "-m", "comment", "--comment", COMMENT, "-j", "DROP"]


class Firewall:
    """Put the pool's rule in place once per call, as iptables allows; never raise."""

    def __init__(self, *, binary: str | None = None, run: Runner = _run,
                 root: Callable[[], bool] = lambda: os.geteuid() == 0,
                 which: Callable[[str], str | None] = shutil.which) -> None:
        """Use `binary` (default: iptables found by `which`) through `run`."""
        self.binary = binary or which("iptables")
        self.run = run
        self.root = root

    def guard(self, pool: ipaddress.IPv4Network) -> str | None:
        """Make sure the rule is in DOCKER-USER; return None when it is, else why not."""
        if not self.root():
            return "StackHub does not run as root"
        if self.binary is None:
            return "iptables is not installed"
        base = [self.binary, "-w", "10"]
        try:
            found = self.run([*base, "-C", CHAIN, *rule(pool)])
            if found.returncode == 0:
                return None
            if "No chain" in found.stderr or "does not exist" in found.stderr:
                return f"Docker's {CHAIN} chain is missing (engine not started, or run " \
                       "without iptables)"
            added = self.run([*base, "-I", CHAIN, "1", *rule(pool)])
        except (OSError, subprocess.SubprocessError) as err:
            return f"iptables failed: {err}"
        if added.returncode != 0:
            return f"iptables refused the rule: {added.stderr.strip() or added.returncode}"
        return None
