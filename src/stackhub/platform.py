"""What StackHub gives every app: platform variables, reserved names, ``${VAR}``, host arch."""

from __future__ import annotations

import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from stackhub.errors import Invalid

RESERVED_PREFIXES = ("COMPOSE_", "DOCKER_", "BUILDKIT_")
"""Names Compose (or the Docker CLI) reads from a project's env file as its own settings."""

ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
          "armv7l": "arm", "armv6l": "arm", "i686": "386", "i386": "386"}
"""Machine names (``uname -m``, lower case) -> the names engines and app stores use."""

Syntax = Literal["compose", "envsubst"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_OPS = (":-", ":?", ":+", "-", "?", "+")


def platform_env(*, instance: str, app_id: str, data_dir: Path, tz: str) -> dict[str, str]:
    """Return the variables StackHub supplies to every project (an allow-list)."""
    return {
        "APP_INSTANCE": instance,
        "APP_ID": app_id,
        "APP_DATA_DIR": str(data_dir),
        "TZ": tz,
        "PUID": "1000",
        "PGID": "1000",
    }


PLATFORM_VARS = frozenset(platform_env(instance="", app_id="", data_dir=Path("/"), tz=""))
"""Variables StackHub supplies to every project (APP_INSTANCE, APP_ID, APP_DATA_DIR, TZ...)."""


def host_arch() -> str:
    """Name this machine's architecture as engines and app stores do (amd64, arm64, arm...)."""
    machine = platform.machine().lower()
    return ARCHES.get(machine, machine)


@dataclass(frozen=True)
class VarRef:
    """One ``$NAME`` / ``${NAME}`` / ``${NAME<op><arg>}`` reference found in a text."""

    name: str
    op: str
    arg: str
    start: int
    end: int


def _closing_brace(text: str, start: int) -> int:
    """Return the index of the ``}`` matching the ``{`` at `start`, or -1."""
    depth = 0
    for index in range(start, len(text)):
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
    return -1


def scan_vars(text: str, *, syntax: Syntax = "compose") -> list[VarRef]:
    """Find the top-level variable references in `text` (see `substitute` for the syntaxes)."""
    refs: list[VarRef] = []
    index = text.find("$")
    while 0 <= index < len(text):
        if syntax == "compose" and text.startswith("$$", index):
            index = text.find("$", index + 2)
            continue
        if syntax == "compose" and text.startswith("${", index):
            end = _closing_brace(text, index + 1)
            if end < 0:
                break
            inner = text[index + 2 : end]
            match = _NAME.match(inner)
            if match:
                rest = inner[match.end() :]
                op = next((o for o in _OPS if rest.startswith(o)), "")
                if op or not rest:
                    refs.append(VarRef(match.group(), op, rest[len(op) :], index, end + 1))
            index = text.find("$", end + 1)
            continue
        match = _BRACED.match(text, index) or _NAME.match(text, index + 1)
        if match:
            name = match.group(1) if match.re is _BRACED else match.group()
            refs.append(VarRef(name, "", "", index, match.end()))
            index = text.find("$", match.end())
        else:
            index = text.find("$", index + 1)
    return refs


def substitute(text: str, values: Mapping[str, str], *, syntax: Syntax = "compose",
               keep_unknown: bool = False) -> str:
    """Fill the variable references in `text` from `values`.

    ``compose`` syntax (Docker Compose's rules): ``$NAME``, ``${NAME}``; ``${NAME:-default}``
    (unset or empty) and ``${NAME-default}`` (unset); ``${NAME:+alt}`` / ``${NAME+alt}`` (the
    opposite); ``${NAME:?message}`` / ``${NAME?message}`` raise Invalid when missing. Defaults
    and alternatives may hold references themselves. ``$$`` is a literal ``$``.
    ``envsubst`` syntax (GNU envsubst's, for Umbrel's ``*.template`` files): only ``$NAME`` and
    ``${NAME}``; ``$$`` and every other ``$`` stay as written.
    Either way an unknown name becomes empty and text that is no reference stays as written.
    With `keep_unknown` the result is a template again: references to names not in `values`
    stay as written (in compose syntax those with a default take the default) and ``$$`` stays.
    """
    out: list[str] = []
    last = 0
    for ref in scan_vars(text, syntax=syntax):
        out.append(_literal(text[last : ref.start], syntax, keep_unknown))
        last = ref.end
        value = values.get(ref.name)
        if value is None and keep_unknown and ref.op not in (":-", "-"):
            out.append(text[ref.start : ref.end])
            continue
        missing = value is None or (value == "" and ref.op.startswith(":"))
        if ref.op in (":-", "-"):
            out.append(substitute(ref.arg, values, keep_unknown=keep_unknown) if missing
                       else str(value))
        elif ref.op in (":+", "+"):
            out.append("" if missing else substitute(ref.arg, values, keep_unknown=keep_unknown))
        elif ref.op in (":?", "?") and missing:
            raise Invalid(f"required variable {ref.name} is missing a value: {ref.arg}")
        else:
            out.append(value or "")
    out.append(_literal(text[last:], syntax, keep_unknown))
    return "".join(out)


def _literal(text: str, syntax: Syntax, keep: bool) -> str:
    return text.replace("$$", "$") if syntax == "compose" and not keep else text


DATA_DIR_PREFIX = "${APP_DATA_DIR}/"


def env_files(service: dict[str, Any]) -> list[tuple[object, bool]]:
    """Return a service's env files as (path, required), short and long forms alike."""
    raw = service.get("env_file")
    entries = raw if isinstance(raw, list) else [raw] if raw else []
    found: list[tuple[object, bool]] = []
    for entry in entries:
        if isinstance(entry, dict):
            found.append((entry.get("path"), entry.get("required", True) is not False))
        else:
            found.append((entry, True))
    return found


def data_file(path: object) -> str | None:
    """Return the path inside the app's folder that ``${APP_DATA_DIR}/...`` names, or None."""
    if not isinstance(path, str) or not path.startswith(DATA_DIR_PREFIX):
        return None
    relative = path[len(DATA_DIR_PREFIX):]
    parts = relative.split("/")
    if "$" in relative or any(part in ("", ".", "..") for part in parts):
        return None
    return relative
