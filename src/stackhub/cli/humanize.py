"""Numbers and times for people: byte sizes, durations, "3 h ago"."""

from __future__ import annotations

from datetime import UTC, datetime


def size(value: float) -> str:
    """Format bytes in binary units ("512 B", "1.5 GiB")."""
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{value} B"  # pragma: no cover (the loop always returns)


def duration(seconds: float) -> str:
    """Format a duration compactly ("45s", "3m 05s", "2h 10m", "3d 4h")."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def ago(stamp: str | None, now: datetime | None = None) -> str:
    """Format an ISO time as how long ago it was ("3 h ago"); "never" for None."""
    if not stamp:
        return "never"
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    if seconds < 60:
        return "just now"
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{int(seconds // length)} {unit} ago"
    return "just now"  # pragma: no cover (covered by the first test)
