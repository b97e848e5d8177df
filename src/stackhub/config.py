"""Locate StackHub's data root and server address from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 8420
ROOT_DATA_DIR = Path("/var/lib/stackhub")


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
