"""Hold the one-time setup token that creating the first admin requires."""

from __future__ import annotations

import hmac
import logging
import secrets
from pathlib import Path

from stackhub import fsutil

SETUP_PREFIX = "setup_"
# a logger of its own: the announcement must survive the log redaction of secrets
announce_log = logging.getLogger("stackhub.setup")


def setup_token_file(secrets_dir: Path) -> Path:
    """Return where the setup token lives (0600)."""
    return secrets_dir / "setup-token"


def ensure(path: Path) -> str:
    """Return the setup token, creating a random one if there is none."""
    try:
        token = path.read_text().strip()
    except OSError:
        token = ""
    if not token.startswith(SETUP_PREFIX) or len(token) < 40:
        token = SETUP_PREFIX + secrets.token_urlsafe(32)
        fsutil.write_atomic(path, token + "\n", mode=0o600)
    return token


def announce(path: Path, token: str) -> None:
    """Print the setup token to the server console and log."""
    announce_log.warning(
        "\n\n  No admin account exists yet. Open the StackHub console and create the first "
        "admin\n  with this one-time setup token (also stored in %s):\n\n      %s\n", path, token)


def matches(path: Path, presented: str) -> bool:
    """Compare a presented token with the stored one in constant time."""
    try:
        expected = path.read_text().strip()
    except OSError:
        return False
    return bool(expected) and hmac.compare_digest(expected.encode(), presented.strip().encode())


def discard(path: Path) -> None:
    """Delete the setup token after use."""
    path.unlink(missing_ok=True)
