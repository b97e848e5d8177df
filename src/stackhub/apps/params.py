"""Resolve install parameters: validate given values, keep old ones, generate secrets."""

from __future__ import annotations

import base64
import math
import re
import secrets
import string
from collections.abc import Callable, Mapping

from stackhub.catalog.models import Parameter, ParameterType, SecretEncoding, localized
from stackhub.errors import Invalid

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URL = re.compile(r"^https?://[^\s]+$")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
MAX_VALUE_LENGTH = 4096

PortPicker = Callable[[Parameter, int | None, bool], int]
"""Given a port parameter, a wanted port and whether the user asked for it, return a port."""


def generate_secret(length: int, encoding: SecretEncoding) -> str:
    """Generate a random secret of `length` characters in the given alphabet."""
    if encoding is SecretEncoding.HEX:
        return secrets.token_hex((length + 1) // 2)[:length]
    if encoding is SecretEncoding.BASE64:
        return base64.b64encode(secrets.token_bytes(length)).decode()[:length]
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _fail(param: Parameter, why: str) -> Invalid:
    label = localized(param.label) or param.name
    return Invalid(f"parameter {param.name} ({label}): {why}", details={"parameter": param.name})


def _check_text(param: Parameter, value: str) -> str:
    if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
        raise _fail(param, "must be a single line without control characters")
    if len(value) > MAX_VALUE_LENGTH:
        raise _fail(param, f"is longer than {MAX_VALUE_LENGTH} characters")
    if param.min is not None and len(value) < param.min and param.type not in _NUMERIC:
        raise _fail(param, f"must be at least {int(param.min)} characters long")
    if param.max is not None and len(value) > param.max and param.type not in _NUMERIC:
        raise _fail(param, f"must be at most {int(param.max)} characters long")
    if param.regex is not None and value and not re.fullmatch(param.regex, value):
        raise _fail(param, localized(param.regex_error) or f"must match {param.regex}")
    return value


_NUMERIC = {ParameterType.NUMBER, ParameterType.PORT}


def _number(param: Parameter, value: str) -> str:
    try:
        number = float(value)
    except ValueError as err:
        raise _fail(param, f"{value!r} is not a number") from err
    if not math.isfinite(number):
        raise _fail(param, f"{value!r} is not a finite number")
    if param.min is not None and number < param.min:
        raise _fail(param, f"must be at least {param.min:g}")
    if param.max is not None and number > param.max:
        raise _fail(param, f"must be at most {param.max:g}")
    return str(int(number)) if number.is_integer() else str(number)


def _convert(param: Parameter, value: str) -> str:
    """Validate one value against its parameter's type and return its canonical text."""
    value = _check_text(param, value)
    kind = param.type
    if kind is ParameterType.BOOLEAN:
        lowered = value.strip().lower()
        if lowered not in _TRUE | _FALSE:
            raise _fail(param, f"{value!r} is not true or false")
        return "true" if lowered in _TRUE else "false"
    if kind is ParameterType.NUMBER:
        return _number(param, value)
    if kind is ParameterType.PORT:
        if not re.fullmatch(r"[0-9]{1,5}", value) or not 1 <= int(value) <= 65535:
            raise _fail(param, f"{value!r} is not a port number between 1 and 65535")
        return _number(param, value)
    if kind is ParameterType.ENUM:
        allowed = [o.value for o in param.options]
        if value not in allowed:
            raise _fail(param, f"{value!r} is not one of {', '.join(allowed)}")
    elif kind is ParameterType.PATH:
        if not value.startswith("/") or "/../" in f"{value}/" or "/./" in f"{value}/":
            raise _fail(param, "must be an absolute path without '.' or '..' parts")
    elif kind is ParameterType.EMAIL and value and not _EMAIL.match(value):
        raise _fail(param, f"{value!r} is not an e-mail address")
    elif kind is ParameterType.URL and value and not _URL.match(value):
        raise _fail(param, f"{value!r} is not an http(s) URL")
    elif kind is ParameterType.HOST and value and not _HOST.match(value):
        raise _fail(param, f"{value!r} is not a host name")
    return value


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def resolve(params: list[Parameter], given: Mapping[str, str], kept: Mapping[str, str], *,
            pick_port: PortPicker) -> dict[str, str]:
    """Return a value for every parameter: given, else kept, else default or generated."""
    known = {p.name for p in params}
    unknown = sorted(set(given) - known)
    if unknown:
        raise Invalid(f"unknown parameter(s): {', '.join(unknown)}; this app takes "
                      f"{', '.join(sorted(known)) or 'no parameters'}")
    values: dict[str, str] = {}
    for param in params:
        asked = param.name in given
        raw = given.get(param.name, kept.get(param.name))
        if raw is None:
            raw = _text(param.default)
        if param.type is ParameterType.PORT:
            wanted = int(_convert(param, raw)) if raw not in (None, "") else None
            values[param.name] = str(pick_port(param, wanted, asked))
            continue
        if raw in (None, "") and param.type is ParameterType.SECRET:
            raw = generate_secret(param.length, param.encoding)
        if raw in (None, ""):
            if param.required:
                raise _fail(param, "is required")
            values[param.name] = ""
            continue
        values[param.name] = _convert(param, str(raw))
    return values


def secret_names(params: list[Parameter]) -> set[str]:
    """Name the parameters whose values must never be shown after creation."""
    hidden = {ParameterType.SECRET, ParameterType.PASSWORD}
    return {p.name for p in params if p.type in hidden}

