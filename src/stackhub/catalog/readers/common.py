"""Share what the peer-format readers need: bounded file reads, variables, ports, networks.

Nothing here executes store content. Files are read with size limits and without following
symbolic links; compose variables are scanned as text; published host ports become ``port``
parameters so StackHub's allocator can move them when taken.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackhub import yamlsafe
from stackhub.catalog.models import LocalizedText, Parameter, ParameterType
from stackhub.errors import Invalid, TooLarge
from stackhub.platform import (
    DATA_DIR_PREFIX,
    PLATFORM_VARS,
    RESERVED_PREFIXES,
    VarRef,
    data_file,
    env_files,
    scan_vars,
)

MAX_FILE = 512 * 1024

_SLUG = re.compile(r"[^A-Z0-9]+")


# ---------------------------------------------------------------------------------------------
# Files


def read_file(folder: Path, name: str, *, limit: int = MAX_FILE) -> bytes:
    """Read `folder/name` without following links; refuse non-files and files over `limit`."""
    path = folder / name
    try:
        info = path.lstat()
    except FileNotFoundError as err:
        raise Invalid(f"{name} is missing") from err
    except OSError as err:
        raise Invalid(f"{name} cannot be read: {err.strerror}") from err
    if stat.S_ISLNK(info.st_mode):
        raise Invalid(f"{name} is a symbolic link; store files must be regular files")
    if not stat.S_ISREG(info.st_mode):
        raise Invalid(f"{name} is not a regular file")
    if info.st_size > limit:
        raise TooLarge(f"{name} is {info.st_size} bytes; the limit is {limit} bytes")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        raise Invalid(f"{name} cannot be read: {err.strerror}") from err
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"{name} is larger than {limit} bytes")
    return data


def read_optional(folder: Path, name: str, *, limit: int = MAX_FILE) -> bytes | None:
    """Read `folder/name` like `read_file`, or return None when nothing is there."""
    if not os.path.lexists(folder / name):
        return None
    return read_file(folder, name, limit=limit)


def regular_file(folder: Path, name: str) -> bool:
    """Tell whether `folder/name` is a regular file (not a link)."""
    try:
        return stat.S_ISREG((folder / name).lstat().st_mode)
    except OSError:
        return False


def check_folder(folder: Path) -> None:
    """Refuse an app folder that is a symbolic link or not a directory."""
    if folder.is_symlink():
        raise Invalid(f"app folder {folder.name} is a symbolic link")
    if not folder.is_dir():
        raise Invalid(f"app folder {folder.name} is not a directory")


def load_json(data: bytes | str, *, what: str) -> Any:
    """Parse untrusted JSON with the same size, depth and node limits as YAML."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_FILE:
        raise TooLarge(f"{what} is {len(raw)} bytes; the limit is {MAX_FILE} bytes")
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise Invalid(f"{what} is not valid UTF-8") from err
    except json.JSONDecodeError as err:
        raise Invalid(f"{what} is not valid JSON at line {err.lineno}, column {err.colno}: "
                      f"{err.msg}") from err
    except RecursionError as err:
        raise TooLarge(f"{what} is nested too deeply") from err
    yamlsafe.check_tree(parsed, what=what)
    return parsed


def text_of(data: bytes, *, what: str) -> str:
    """Decode UTF-8 text or raise Invalid naming `what`."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise Invalid(f"{what} is not valid UTF-8") from err


# ---------------------------------------------------------------------------------------------
# Compose variables


def var_names(text: str) -> Iterator[VarRef]:
    """Yield every variable reference in `text`, including those nested in defaults."""
    for ref in scan_vars(text):
        yield ref
        if ref.arg:
            yield from var_names(ref.arg)


def only_var(text: str) -> VarRef | None:
    """Return the reference when `text` is exactly one variable reference."""
    refs = scan_vars(text)
    if len(refs) == 1 and refs[0].start == 0 and refs[0].end == len(text):
        return refs[0]
    return None


def iter_strings(node: Any) -> Iterator[str]:
    """Yield every string value in `node` (compose interpolates values, not keys)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from iter_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from iter_strings(item)


def referenced(compose: dict[str, Any]) -> dict[str, list[VarRef]]:
    """Map each variable name used in `compose` to its references."""
    found: dict[str, list[VarRef]] = {}
    for text in iter_strings(compose):
        if "$" in text:
            for ref in var_names(text):
                found.setdefault(ref.name, []).append(ref)
    return found


def split_colons(text: str) -> list[str]:
    """Split on ``:`` outside ``${...}`` and ``[...]`` (port and volume short syntax)."""
    parts: list[str] = []
    depth = 0
    bracket = False
    current: list[str] = []
    for index, char in enumerate(text):
        if char == "{" and index > 0 and text[index - 1] == "$":
            depth += 1
        elif char == "}" and depth:
            depth -= 1
        elif char == "[" and not depth:
            bracket = True
        elif char == "]" and not depth:
            bracket = False
        elif char == ":" and not depth and not bracket:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


# ---------------------------------------------------------------------------------------------
# Parameters and the whole-app result


def env_slug(text: str) -> str:
    """Turn a service or folder name into an upper-case environment-name fragment."""
    return _SLUG.sub("_", text.upper()).strip("_") or "X"


@dataclass
class Draft:
    """What a reader accumulates before building the AppDefinition."""

    params: dict[str, Parameter] = field(default_factory=dict)
    derived: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def taken(self, name: str) -> bool:
        """Tell whether a name is a parameter, derived value, platform variable or reserved."""
        return (name in self.params or name in self.derived or name in PLATFORM_VARS
                or reserved(name))

    def add_param(self, param: Parameter) -> Parameter:
        """Add a parameter unless one of that name exists; return the one kept."""
        return self.params.setdefault(param.name, param)

    def problem(self, text: str) -> None:
        """Record a reason the app cannot be installed (once)."""
        if text not in self.problems:
            self.problems.append(text)

    def note(self, text: str) -> None:
        """Record a non-blocking remark (once)."""
        if text not in self.notes:
            self.notes.append(text)


def reserved(name: str) -> bool:
    """Tell whether a store may not define `name` (Compose would read it as a setting)."""
    return name.upper().startswith(RESERVED_PREFIXES)


def check_unknown_vars(compose: dict[str, Any], draft: Draft, *,
                       extra: frozenset[str] = frozenset(),
                       origin: str = "the store's platform") -> None:
    """Note variables nobody supplies; a ``${X?err}`` on one of them blocks the install."""
    unknown: list[str] = []
    for name, refs in sorted(referenced(compose).items()):
        if reserved(name):
            draft.problem(f"the compose file uses variable {name}; names starting with "
                          f"{', '.join(RESERVED_PREFIXES)} are Compose settings StackHub "
                          "never lets a store set")
            continue
        if draft.taken(name) or name in extra:
            continue
        if any(ref.op in (":?", "?") for ref in refs):
            draft.problem(f"the compose file requires variable {name}, which {origin} sets "
                          "and StackHub does not")
        elif not all(ref.op in (":-", "-") for ref in refs):
            unknown.append(name)
    if unknown:
        draft.note("variables not supplied by StackHub are left empty: " + ", ".join(unknown))


# ---------------------------------------------------------------------------------------------
# Services, networks and ports


def services_of(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the services mapping, or raise Invalid when there is none usable."""
    services = compose.get("services")
    if not isinstance(services, dict) or not services:
        raise Invalid("the compose file has no services")
    for name, service in services.items():
        if not isinstance(name, str) or not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name):
            raise Invalid(f"service name {name!r} is not valid")
        if not isinstance(service, dict):
            raise Invalid(f"service {name} must be a mapping")
    return services


def check_services(compose: dict[str, Any], draft: Draft,
                   shipped: frozenset[str] = frozenset(),
                   made: frozenset[str] = frozenset()) -> None:
    """Report what StackHub cannot run: builds, missing images, files from the store.

    `shipped` lists the files (relative to the app's folder) the instance gets from the store:
    an env file among them is read from the instance's data folder, as the store expects.
    `made` lists those a store script creates there before the project starts (a note).
    """
    for name, service in services_of(compose).items():
        if "build" in service:
            draft.problem(f"service {name} is built from source ('build:'); StackHub installs "
                          "prebuilt images only")
        image = service.get("image")
        if not isinstance(image, str) or not image.strip():
            draft.problem(f"service {name} has no image")
        for path, required in env_files(service):
            relative = data_file(path)
            if relative is None:
                draft.problem(f"service {name} reads the env_file {path!r}; StackHub copies "
                              f"env files of the app's own folder ({DATA_DIR_PREFIX}...) only")
            elif relative in made and relative not in shipped:
                draft.note(f"service {name} reads the env_file {path}, which the store's "
                           "pre-start script creates in the sandbox before the project starts")
            elif relative not in shipped and required:
                draft.problem(f"service {name} reads the env_file {path}, which the store "
                              "does not ship")
        extends = service.get("extends")
        if isinstance(extends, dict) and extends.get("file"):
            draft.problem(f"service {name} extends another file; StackHub reads one compose "
                          "file per app")
    if compose.get("include"):
        draft.problem("the compose file includes other files; StackHub reads one compose file "
                      "per app")
    for section in ("configs", "secrets"):
        block = compose.get(section)
        for key, spec in block.items() if isinstance(block, dict) else []:
            if isinstance(spec, dict) and spec.get("file"):
                draft.problem(f"{section}.{key} is read from a file; StackHub does not copy "
                              "store files into the project")


def strip_keys(compose: dict[str, Any], key: str) -> None:
    """Remove an extension key (``x-casaos``...) at the top level and from every service."""
    compose.pop(key, None)
    for service in services_of(compose).values():
        service.pop(key, None)


def service_networks(service: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """Return a service's networks as a mapping (converting the list form), or None."""
    if "network_mode" in service:
        return None
    raw = service.get("networks")
    if raw is None:
        return {"default": {}}
    if isinstance(raw, list):
        return {str(item): {} for item in raw}
    if isinstance(raw, dict):
        return {str(k): (dict(v) if isinstance(v, dict) else {}) for k, v in raw.items()}
    raise Invalid("a service's networks must be a list or a mapping")


def add_aliases(service: dict[str, Any], aliases: list[str]) -> None:
    """Give a service extra DNS names on each of its networks (keeps old container names)."""
    networks = service_networks(service)
    if networks is None or not aliases:
        return
    for spec in networks.values():
        existing = spec.get("aliases")
        current = [str(a) for a in existing] if isinstance(existing, list) else []
        spec["aliases"] = current + [a for a in aliases if a not in current]
    service["networks"] = networks


def alias_container_names(compose: dict[str, Any]) -> None:
    """Keep each ``container_name`` reachable as a network alias (render drops the name)."""
    for name, service in services_of(compose).items():
        container = service.get("container_name")
        if isinstance(container, str) and container and container != name:
            add_aliases(service, [container])


@dataclass
class PortEntry:
    """One published port of a service, in either compose syntax."""

    service: str
    index: int
    host_ip: str | None
    published: str | None
    target: str
    protocol: str
    long_form: bool


def parse_port(service: str, index: int, item: object) -> PortEntry | None:
    """Parse one ``ports`` item; None when it is not understood."""
    if isinstance(item, dict):
        target = item.get("target")
        if target is None:
            return None
        given = item.get("published")
        return PortEntry(service, index, item.get("host_ip"),
                         None if given in (None, "") else str(given), str(target),
                         str(item.get("protocol") or "tcp"), True)
    if isinstance(item, int) and not isinstance(item, bool):
        return PortEntry(service, index, None, None, str(item), "tcp", False)
    if not isinstance(item, str):
        return None
    text, _, proto = item.partition("/")
    # a "/" inside a variable default is unusual enough to ignore
    parts = split_colons(text)
    host_ip: str | None = None
    published: str | None = None
    if len(parts) == 1:
        target = parts[0]
    elif len(parts) == 2:
        published, target = parts
    elif len(parts) == 3:
        host_ip, published, target = parts
    else:
        return None
    return PortEntry(service, index, host_ip, published or None, target, proto or "tcp", False)


def format_port(entry: PortEntry, original: object) -> object:
    """Write an entry back in the syntax it came in."""
    if entry.long_form and isinstance(original, dict):
        updated = dict(original)
        updated["published"] = entry.published
        return updated
    text = entry.target if entry.published is None else f"{entry.published}:{entry.target}"
    if entry.host_ip:
        text = f"{entry.host_ip}:{text}"
    if entry.protocol != "tcp" or (isinstance(original, str) and "/" in original):
        text = f"{text}/{entry.protocol}"
    return text


def port_entries(compose: dict[str, Any]) -> list[PortEntry]:
    """List every understood published port of every service."""
    entries: list[PortEntry] = []
    for name, service in services_of(compose).items():
        ports = service.get("ports")
        if isinstance(ports, list):
            for index, item in enumerate(ports):
                entry = parse_port(name, index, item)
                if entry is not None:
                    entries.append(entry)
    return entries


def port_number(value: object) -> int | None:
    """Return `value` as a port number (1-65535) when it is one, else None."""
    if isinstance(value, bool):
        return None
    text = str(value).strip() if isinstance(value, int | str) else ""
    if text.isdigit() and 1 <= int(text) <= 65535:
        return int(text)
    return None


_number = port_number


@dataclass
class PortPlan:
    """How a reader wants published ports turned into parameters."""

    resolve: Callable[[str], str | None] = lambda _: None
    """Value of a non-parameter variable (exports, derived), to read fixed ports through."""
    labels: dict[tuple[str, str, str], LocalizedText] = field(default_factory=dict)
    """Labels by (service, target, protocol), from the store's descriptions."""
    names: dict[tuple[str, str, str], str] = field(default_factory=dict)
    """Forced parameter names by (service, target, protocol) (the web port, usually)."""


def _port_name(entry: PortEntry, target: str, draft: Draft) -> str:
    suffix = "" if entry.protocol == "tcp" else f"_{env_slug(entry.protocol)}"
    base = f"PORT_{env_slug(target)}{suffix}"
    if not draft.taken(base):
        return base
    candidate = f"PORT_{env_slug(entry.service)}_{env_slug(target)}{suffix}"
    counter = 2
    while draft.taken(candidate):
        candidate = f"PORT_{env_slug(entry.service)}_{env_slug(target)}{suffix}_{counter}"
        counter += 1
    return candidate


def parametrize_ports(compose: dict[str, Any], draft: Draft, plan: PortPlan) -> dict[
        tuple[str, str, str], str]:
    """Turn fixed or store-variable host ports into ``port`` parameters, in place.

    Returns the parameter name chosen for each (service, target, protocol).
    """
    chosen: dict[tuple[str, str, str], str] = {}
    for name, service in services_of(compose).items():
        ports = service.get("ports")
        if ports is None:
            continue
        if not isinstance(ports, list):
            raise Invalid(f"service {name}: ports must be a list")
        for index, item in enumerate(list(ports)):
            entry = parse_port(name, index, item)
            if entry is None or entry.published is None:
                continue
            key = (name, entry.target, entry.protocol)
            target_ref = only_var(entry.target)
            target = (plan.resolve(target_ref.name) if target_ref else None) or entry.target
            ref = only_var(entry.published)
            wanted: int | None
            if ref is not None and ref.name in draft.params:
                param = draft.params[ref.name]
                if param.type is ParameterType.PORT:
                    chosen[key] = ref.name
                continue
            if ref is not None and not draft.taken(ref.name) and plan.resolve(ref.name) is None:
                # a store variable meant to be the host port: make it a parameter of that name
                forced = plan.names.get(key, ref.name)
                wanted = _number(ref.arg) if ref.op in (":-", "-") else None
                wanted = wanted or _number(target)
            else:
                value = plan.resolve(ref.name) if ref is not None else entry.published
                if ref is not None and value is None and ref.op in (":-", "-"):
                    value = ref.arg
                wanted = _number(value)
                if wanted is None:
                    draft.note(f"service {name}: published port {entry.published!r} is kept "
                               "as written (not a single port StackHub can reallocate)")
                    continue
                forced = plan.names.get(key) or _port_name(entry, target, draft)
            label = plan.labels.get(key) or {
                "en": f"Host port for {name} port {target}/{entry.protocol}"}
            draft.add_param(Parameter(name=forced, type=ParameterType.PORT, default=wanted,
                                      label=label, protocol=entry.protocol))
            entry.published = "${" + forced + "}"
            ports[index] = format_port(entry, item)
            chosen[key] = forced
    return chosen


def network_target(compose: dict[str, Any], service: str) -> str:
    """Follow ``network_mode: service:X`` to the service whose ports are reachable."""
    services = services_of(compose)
    seen = {service}
    current = service
    while True:
        mode = services[current].get("network_mode")
        if not (isinstance(mode, str) and mode.startswith("service:")):
            return current
        nxt = mode.split(":", 1)[1]
        if nxt not in services or nxt in seen:
            return current
        seen.add(nxt)
        current = nxt


def publish(compose: dict[str, Any], service: str, target: int, param: str,
            draft: Draft) -> bool:
    """Make sure `service` publishes container port `target` on host port ``${param}``.

    Returns False when the service uses host networking (nothing to publish).
    """
    services = services_of(compose)
    holder = network_target(compose, service)
    spec = services[holder]
    if spec.get("network_mode") == "host":
        return False
    ports = spec.get("ports")
    if ports is None:
        ports = spec["ports"] = []
    if not isinstance(ports, list):
        raise Invalid(f"service {holder}: ports must be a list")
    for index, item in enumerate(ports):
        entry = parse_port(holder, index, item)
        if entry is not None and _number(entry.target) == target and entry.protocol == "tcp":
            entry.published = "${" + param + "}"
            ports[index] = format_port(entry, item)
            return True
    ports.append(f"${{{param}}}:{target}")
    if "network_mode" in spec:
        draft.note(f"service {holder} uses network_mode {spec['network_mode']!r}; "
                   "its web port is published anyway")
    return True


def web_port_param(name: str, default: int | None, label: str) -> Parameter:
    """Build the parameter for an app's main web port."""
    return Parameter(name=name, type=ParameterType.PORT, default=default,
                     label={"en": label}, help={"en": "StackHub picks a free port if this one "
                                                      "is taken."})


# ---------------------------------------------------------------------------------------------
# Metadata


def locales(value: object) -> LocalizedText:
    """Normalise a multilingual map: ``en_US``/``en_us``/``en`` -> ``en``, ``zh_CN`` -> ``zh-CN``.

    A plain string is English. English prefers ``en_US``, then ``en``, then any ``en_*``.
    """
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value).strip()
        return {"en": text} if text else {}
    if not isinstance(value, dict):
        return {}
    out: LocalizedText = {}
    english_rank = 99
    for key, raw in value.items():
        if not isinstance(raw, str | int | float) or isinstance(raw, bool):
            continue
        text = str(raw).strip()
        if not text:
            continue
        lang, _, region = str(key).strip().replace("-", "_").partition("_")
        lang = lang.lower()
        if not lang.isalpha() or len(lang) > 8:
            continue
        if lang == "en":
            rank = {"us": 0, "": 1}.get(region.lower(), 2)
            if rank < english_rank:
                english_rank = rank
                out["en"] = text
            continue
        code = f"{lang}-{region.upper()}" if region else lang
        out.setdefault(code, text)
    if "en" in out:  # keep English first, readers and the catalog fall back to it
        out = {"en": out["en"], **{k: v for k, v in out.items() if k != "en"}}
    return out


def image_tag(image: object) -> str | None:
    """Return the tag of an image reference (``repo:tag@sha256:...`` -> ``tag``)."""
    if not isinstance(image, str):
        return None
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return last.rsplit(":", 1)[1] or None
    return None


def short(text: str, limit: int = 400) -> str:
    """Shorten text for a note."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
