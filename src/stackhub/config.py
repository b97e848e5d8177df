"""Locate StackHub's data root and server address from the environment."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stackhub.errors import Invalid

DEFAULT_PORT = 8420
ROOT_DATA_DIR = Path("/var/lib/stackhub")
SUBNET_POOL_ENV = "STACKHUB_SUBNET_POOL"
FIREWALL_ENV = "STACKHUB_FIREWALL"
"""``0`` leaves the host's packet filter alone (no rule for the subnet pool; docs/security.md)."""
SUBNET_PREFIX_ENV = "STACKHUB_SUBNET_PREFIX"
DEFAULT_SUBNET_POOL = "10.231.0.0/16"
DEFAULT_SUBNET_PREFIX = 26
"""1024 blocks of 62 addresses: 250 instances with up to 4 networks each."""
PRIVATE_RANGES = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12",
                                                          "192.168.0.0/16"))
"""RFC 1918: the only ranges StackHub will carve networks from."""


def firewall_enabled(env: Mapping[str, str] | None = None) -> bool:
    """Tell whether STACKHUB_FIREWALL lets the server guard the subnet pool (on unless 0)."""
    env = os.environ if env is None else env
    return env.get(FIREWALL_ENV, "").strip().lower() not in ("0", "false", "off", "no")


def default_data_dir() -> Path:
    """Return ``$STACKHUB_DATA_DIR``, else /var/lib/stackhub as root, else a per-user folder."""
    env = os.environ.get("STACKHUB_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    if os.geteuid() == 0:
        return ROOT_DATA_DIR
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "stackhub"


@dataclass(frozen=True)
class Paths:
    """Where everything lives under one data root."""

    root: Path

    @property
    def db(self) -> Path:
        """Return the SQLite database file."""
        return self.root / "stackhub.db"

    @property
    def instances(self) -> Path:
        """Return the folder holding each instance's rendered project."""
        return self.root / "instances"

    @property
    def appdata(self) -> Path:
        """Return the folder holding each instance's bind-mounted data."""
        return self.root / "appdata"

    @property
    def stores(self) -> Path:
        """Return the folder holding synced store sources."""
        return self.root / "stores"

    @property
    def secrets(self) -> Path:
        """Return the folder holding keys and tokens (0700)."""
        return self.root / "secrets"

    @property
    def admin_token(self) -> Path:
        """Return the admin API token file (0600)."""
        return self.secrets / "admin-token"

    @property
    def server_info(self) -> Path:
        """Return the file where a running server records its URL."""
        return self.root / "server.json"

    def instance_dir(self, name: str) -> Path:
        """Return the project folder of one instance."""
        return self.instances / name

    def instance_data(self, name: str) -> Path:
        """Return the data folder of one instance."""
        return self.appdata / name

    def ensure(self) -> None:
        """Create the folder tree with private permissions."""
        for folder in (self.root, self.instances, self.appdata, self.stores, self.secrets):
            folder.mkdir(parents=True, exist_ok=True)
        for folder in (self.root, self.secrets, self.instances):
            folder.chmod(0o700)
        self.appdata.chmod(0o711)


@dataclass(frozen=True)
class SubnetPool:
    """The private IPv4 range StackHub carves instance networks from, and the block size."""

    network: ipaddress.IPv4Network
    prefix: int

    @property
    def blocks(self) -> int:
        """Return how many blocks the range holds."""
        return 1 << (self.prefix - self.network.prefixlen)


def subnet_pool(env: Mapping[str, str] | None = None) -> SubnetPool:
    """Read $STACKHUB_SUBNET_POOL and $STACKHUB_SUBNET_PREFIX; raise Invalid if unusable."""
    env = os.environ if env is None else env
    text = env.get(SUBNET_POOL_ENV, "").strip() or DEFAULT_SUBNET_POOL
    raw_prefix = env.get(SUBNET_PREFIX_ENV, "").strip().lstrip("/") or str(DEFAULT_SUBNET_PREFIX)
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as err:
        raise Invalid(f"{SUBNET_POOL_ENV}={text!r} is not a network such as "
                      f"{DEFAULT_SUBNET_POOL} ({err})") from err
    if not isinstance(network, ipaddress.IPv4Network) or \
            not any(network.subnet_of(private) for private in PRIVATE_RANGES):
        raise Invalid(f"{SUBNET_POOL_ENV}={text!r} must be a private IPv4 range (10.0.0.0/8, "
                      "172.16.0.0/12 or 192.168.0.0/16)")
    if not raw_prefix.isdigit() or not 16 <= int(raw_prefix) <= 28:
        raise Invalid(f"{SUBNET_PREFIX_ENV}={raw_prefix!r} must be a prefix length from 16 to 28")
    prefix = int(raw_prefix)
    if network.prefixlen > prefix:
        raise Invalid(f"{SUBNET_POOL_ENV}={text} is smaller than one /{prefix} block: widen it "
                      f"or raise {SUBNET_PREFIX_ENV}")
    return SubnetPool(network=network, prefix=prefix)
