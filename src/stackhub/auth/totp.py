"""Time-based one-time passwords (RFC 6238) and single-use recovery codes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyotp

# pyotp and segno load on first use: a server nobody enrols holds neither (issue 18, part 4)
ISSUER = "StackHub"
STEP = 30
WINDOW = 1
RECOVERY_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def _totp(secret: str) -> pyotp.TOTP:
    import pyotp

    return pyotp.TOTP(secret, interval=STEP)


def new_secret() -> str:
    """Return a random base32 secret (160 bits)."""
    import pyotp

    return pyotp.random_base32(32)


def otpauth_uri(secret: str, account: str) -> str:
    """Return the ``otpauth://`` URI an authenticator app reads."""
    return _totp(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """Render the URI as an inline SVG QR code."""
    import segno

    return str(segno.make(uri, error="m").svg_inline(scale=4, border=2))


def is_totp_code(code: str) -> bool:
    """Say whether a code looks like a TOTP code (six digits) rather than a recovery code."""
    cleaned = code.replace(" ", "")
    # isdigit() alone also takes fullwidth and other non-ASCII digits
    return len(cleaned) == 6 and cleaned.isascii() and cleaned.isdigit()


def match_step(secret: str, code: str, *, after: int, now: float | None = None) -> int | None:
    """Return the time step the code belongs to (±1 step, later than `after`), else None."""
    cleaned = code.replace(" ", "")
    if not is_totp_code(cleaned):
        return None
    otp = _totp(secret)
    current = int((time.time() if now is None else now) // STEP)
    for step in (current - WINDOW, current, current + WINDOW):
        if step > after and hmac.compare_digest(otp.generate_otp(step).encode(),
                                                cleaned.encode()):
            return step
    return None


def code_at(secret: str, when: float) -> str:
    """Return the code for a moment (for tests and the CLI's self-check)."""
    return _totp(secret).at(int(when))


def new_recovery_codes() -> list[str]:
    """Return ten fresh recovery codes like ``k7m2p-x9qrt`` (about 49 bits each)."""
    def one() -> str:
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        return f"{raw[:5]}-{raw[5:]}"
    return [one() for _ in range(RECOVERY_COUNT)]


def recovery_digest(code: str) -> str:
    """Hash a recovery code, ignoring case, spaces and dashes."""
    cleaned = "".join(c for c in code.lower() if c.isalnum())
    return hashlib.sha256(cleaned.encode()).hexdigest()
