"""StackHub's own version: what is installed, how two versions compare, the newest release.

The newest release is read from a configured source (``STACKHUB_RELEASE_SOURCE``: an
``https://`` or ``http://`` URL, a ``file://`` URL or a path) holding JSON such as
``{"version": "0.2.0", "url": "https://.../stackhub-0.2.0-py3-none-any.whl", "notes": "..."}``.
With no source configured StackHub never asks anyone.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from stackhub.errors import Invalid, StackHubError

SOURCE_ENV = "STACKHUB_RELEASE_SOURCE"
FETCH_TIMEOUT = 10.0
MAX_BYTES = 64 * 1024
_RELEASE = re.compile(r"^\d+(\.\d+){0,3}([.-]?(a|b|rc|dev|post)\d*)?(\+[\w.]+)?$")


@lru_cache(maxsize=1)
def installed() -> str:
    """Return the installed StackHub version (the package metadata's), e.g. ``0.1.0``."""
    try:
        return metadata.version("stackhub")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def key(version: str) -> tuple[tuple[int, ...], int, int]:
    """Return a sort key: the release numbers, then pre-release (dev < a < b < rc < final)."""
    text = version.strip().lower().lstrip("v").split("+", 1)[0]
    match = re.match(r"^(\d+(?:\.\d+)*)(.*)$", text)
    if not match:
        return (0,), 0, 0
    numbers = tuple(int(n) for n in match.group(1).split("."))
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers = numbers[:-1]
    tail = match.group(2).lstrip(".-")
    rank = {"dev": 0, "a": 1, "b": 2, "rc": 3, "post": 5}
    for word, order in rank.items():
        if tail.startswith(word):
            digits = tail[len(word):]
            return numbers, order, int(digits) if digits.isdigit() else 0
    return numbers, 4, 0


def is_newer(candidate: str, than: str) -> bool:
    """Tell whether version `candidate` is newer than `than`."""
    return key(candidate) > key(than)


def valid(version: str) -> bool:
    """Tell whether `version` looks like a release number (1.2.3, 1.2.3rc1, 1.2.3+local)."""
    return bool(_RELEASE.match(version.strip().lstrip("v")))


class Release(BaseModel):
    """A StackHub release as the release source describes it."""

    version: str = Field(description="Its version, e.g. 0.2.0.")
    url: str | None = Field(default=None, description="Where to get it (a wheel or a page).")
    notes: str | None = Field(default=None, description="What changed, in a sentence or two.")


def source() -> str | None:
    """Return the configured release source, or None when none is configured."""
    return os.environ.get(SOURCE_ENV, "").strip() or None


def fetch_latest(where: str) -> Release:
    """Read the newest release from `where` (an http(s)/file URL or a path)."""
    try:
        if where.startswith(("http://", "https://")):
            request = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
                where, headers={"Accept": "application/json"})
            with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as answer:  # noqa: S310
                body = answer.read(MAX_BYTES + 1)
        else:
            path = Path(where.removeprefix("file://"))
            with path.open("rb") as handle:
                body = handle.read(MAX_BYTES + 1)
    except (OSError, urllib.error.URLError, ValueError) as err:
        raise StackHubError(f"cannot read the release source {where}: {err}") from err
    if len(body) > MAX_BYTES:
        raise Invalid(f"the release source {where} is larger than {MAX_BYTES} bytes")
    try:
        release = Release.model_validate(json.loads(body))
    except (ValueError, ValidationError) as err:
        raise Invalid(f"the release source {where} is not release JSON "
                      '({"version": "X.Y.Z", "url": ..., "notes": ...})') from err
    if not valid(release.version):
        raise Invalid(f"the release source {where} names an invalid version "
                      f"{release.version!r}")
    return release
