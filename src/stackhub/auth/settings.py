"""Keep install-wide security settings in SQLite, cached and parsed for every request."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from stackhub.auth.models import SecuritySettings
from stackhub.state.db import Database

KEY = "security"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class SecurityView:
    """The settings in the form the middleware checks them."""

    settings: SecuritySettings
    proxies: tuple[Network, ...]
    origins: frozenset[str]

    def trusted(self, ip: str) -> bool:
        """Say whether a peer address is a configured trusted proxy."""
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in net for net in self.proxies)


def view_of(settings: SecuritySettings) -> SecurityView:
    """Parse settings once."""
    return SecurityView(settings=settings,
                        proxies=tuple(ipaddress.ip_network(p) for p in settings.trusted_proxies),
                        origins=frozenset(settings.allowed_origins))


DEFAULT_VIEW = view_of(SecuritySettings())


class SettingsStore:
    """Read and write the security settings; reads are served from memory."""

    def __init__(self, db: Database) -> None:
        """Load the settings."""
        self.db = db
        self._view = self._load()

    def _load(self) -> SecurityView:
        rows = self.db.query("SELECT value FROM settings WHERE key = ?", (KEY,))
        if not rows:
            return DEFAULT_VIEW
        return view_of(SecuritySettings.model_validate(json.loads(rows[0]["value"])))

    @property
    def view(self) -> SecurityView:
        """Return the parsed settings."""
        return self._view

    def get(self) -> SecuritySettings:
        """Return the settings."""
        return self._view.settings

    def put(self, settings: SecuritySettings) -> SecuritySettings:
        """Replace the settings."""
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) "
                         "DO UPDATE SET value = excluded.value", (KEY, settings.model_dump_json()))
        self._view = view_of(settings)
        return settings
