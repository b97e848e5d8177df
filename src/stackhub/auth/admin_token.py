"""Create and check the install's admin API token (stored 0600 in the data directory)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from stackhub import fsutil

TOKEN_PREFIX = "shk_"  # noqa: S105 - a prefix, not a secret


def ensure_admin_token(path: Path) -> str:
    """Return the admin token, creating a random one on first start."""
    if path.is_file():
        token = path.read_text().strip()
        if token.startswith(TOKEN_PREFIX) and len(token) > 40:
            return token
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    fsutil.write_atomic(path, token + "\n", mode=0o600)
    return token


def token_digest(token: str) -> str:
    """Hash a token for comparison without keeping it around."""
    return hashlib.sha256(token.encode()).hexdigest()


def matches(presented: str, expected_digest: str) -> bool:
    """Compare a presented token with a stored digest in constant time."""
    return hmac.compare_digest(token_digest(presented), expected_digest)
