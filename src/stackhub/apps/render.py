"""Render an app's compose template into a labelled, self-contained Compose project."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackhub import labels
from stackhub.apps.readiness import one_shot_services
from stackhub.catalog.models import AppDefinition
from stackhub.errors import Invalid
from stackhub.platform import DATA_DIR_PREFIX, RESERVED_PREFIXES, data_file, env_files, substitute


@dataclass
class Rendered:
    """A rendered project: the compose mapping, its env file values, and notes."""

    compose: dict[str, Any]
    env: dict[str, str]
    notes: list[str] = field(default_factory=list)


def _merge_labels(existing: object, extra: dict[str, str], where: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    if isinstance(existing, dict):
        merged.update({str(k): "" if v is None else str(v) for k, v in existing.items()})
    elif isinstance(existing, list):
        for item in existing:
            key, _, value = str(item).partition("=")
            merged[key] = value
    elif existing is not None:
        raise Invalid(f"{where}: labels must be a mapping or a list")
    for key in list(merged):
        if key.startswith(labels.PREFIX + "."):
            del merged[key]  # never let content forge StackHub's own labels
    merged.update(extra)
    return merged


def _bind_source(source: str, data_dir: Path, service: str, *, long_form: bool = False) -> str:
    """Map a relative bind source into the instance's data directory."""
    if source.startswith("~"):
        raise Invalid(f"service {service}: bind mounts from a home directory are not allowed")
    if source.startswith(".") or (long_form and not source.startswith(("/", "$"))):
        parts = [p for p in Path(source).parts if p not in (".", "")]
        if ".." in parts:
            raise Invalid(f"service {service}: bind source {source!r} leaves the data directory")
        return str(data_dir.joinpath(*parts)) if parts else str(data_dir)
    return source


def _map_env_files(service: str, value: object) -> list[dict[str, object]]:
    """Keep env files of the instance's data folder, read when present (see the docstring).

    Compose refuses a missing required env file even in ``compose config``, which the planner
    runs before the data folder exists; the files are written into it at install, before
    ``up``, so they are marked optional rather than left out.
    """
    mapped: list[dict[str, object]] = []
    for path, _ in env_files({"env_file": value}):
        if data_file(path) is None:
            raise Invalid(f"service {service}: env_file {path!r} must be a file of the app's "
                          f"data folder ({DATA_DIR_PREFIX}...); put other values in "
                          "'environment' or in parameters")
        mapped.append({"path": path, "required": False})
    return mapped


def _map_volumes(service: str, volumes: object, data_dir: Path) -> list[Any]:
    if not isinstance(volumes, list):
        raise Invalid(f"service {service}: volumes must be a list")
    mapped: list[Any] = []
    for item in volumes:
        if isinstance(item, str):
            source, sep, rest = item.partition(":")
            mapped.append(f"{_bind_source(source, data_dir, service)}{sep}{rest}" if sep else item)
        elif isinstance(item, dict):
            entry = dict(item)
            if entry.get("type") == "bind" and isinstance(entry.get("source"), str):
                entry["source"] = _bind_source(entry["source"], data_dir, service,
                                               long_form=True)
            mapped.append(entry)
        else:
            raise Invalid(f"service {service}: a volume entry must be a string or a mapping")
    return mapped


def _restart_unless_stopped(services: dict[str, Any], notes: list[str]) -> None:
    """Give every long-running service without a restart policy ``restart: unless-stopped``.

    Apps then come back after the engine (or the host) restarts, and a stopped instance stays
    stopped. One-shot services that others wait for (service_completed_successfully) keep
    theirs: restarting a job that exited 0 would run it again.
    """
    one_shot = one_shot_services({"services": services})
    added = [name for name, service in services.items() if name not in one_shot
             and "restart" not in service
             and not (isinstance(service.get("deploy"), dict)
                      and "restart_policy" in service["deploy"])]
    for name in added:
        services[name]["restart"] = "unless-stopped"
    if added:
        notes.append(f"restart: unless-stopped added to {', '.join(sorted(added))} (no restart "
                     "policy set), so the app comes back after a reboot unless stopped")


def render(app: AppDefinition, *, instance: str, values: dict[str, str],
           platform: dict[str, str], data_dir: Path, install: str | None = None) -> Rendered:
    """Build the compose mapping and env values of one instance of `app`."""
    compose = copy.deepcopy(app.compose)
    services = compose.get("services")
    if not isinstance(services, dict) or not services:
        raise Invalid("the compose file has no services")
    notes: list[str] = []
    stamp = {labels.MANAGED: "true", labels.INSTANCE: instance, labels.APP: app.ref}
    if install:
        stamp[labels.INSTALL] = install
    compose.pop("version", None)
    if "include" in compose:
        raise Invalid("the compose file uses 'include'; StackHub needs one self-contained file")
    compose["name"] = labels.project_name(instance)
    for name, service in services.items():
        if not isinstance(service, dict):
            raise Invalid(f"service {name} must be a mapping")
        if "build" in service:
            raise Invalid(f"service {name} uses 'build'; StackHub installs prebuilt images only")
        if "env_file" in service:
            service["env_file"] = _map_env_files(name, service["env_file"])
        extends = service.get("extends")
        if isinstance(extends, dict) and "file" in extends:
            raise Invalid(f"service {name} extends another file; StackHub needs one file")
        if not isinstance(service.get("image"), str) or not service["image"].strip():
            raise Invalid(f"service {name} has no image")
        if service.pop("container_name", None) is not None:
            notes.append(f"service {name}: container_name dropped so instances cannot clash")
        service["labels"] = _merge_labels(service.get("labels"), stamp, f"service {name}")
        if "volumes" in service:
            service["volumes"] = _map_volumes(name, service["volumes"], data_dir)
    _restart_unless_stopped(services, notes)
    for section in ("networks", "volumes"):
        block = compose.get(section)
        if block is None:
            continue
        if not isinstance(block, dict):
            raise Invalid(f"top-level {section} must be a mapping")
        for key, spec in list(block.items()):
            spec = {} if spec is None else spec
            if not isinstance(spec, dict):
                raise Invalid(f"{section}.{key} must be a mapping")
            if not spec.get("external"):
                spec["labels"] = _merge_labels(spec.get("labels"), stamp, f"{section}.{key}")
                if spec.pop("name", None) is not None:
                    # a custom name could adopt (and, on purge, delete) another object
                    notes.append(f"{section}.{key}: custom name dropped; it is scoped to the "
                                 "instance")
            block[key] = spec
    networks = compose.get("networks") or {}
    compose["networks"] = networks
    if "default" not in networks:
        networks["default"] = {"labels": dict(stamp)}
    context = {**values, **platform}  # platform values always win over app parameters
    env = dict(context)
    for key, template in app.derived.items():
        if key not in platform:
            env[key] = substitute(template, context)
    for key in [k for k in env if k.startswith(RESERVED_PREFIXES)]:
        del env[key]  # COMPOSE_* and DOCKER_* in .env would reconfigure compose itself
    return Rendered(compose=compose, env=env, notes=notes)


def _quote(value: str) -> str:
    """Quote a value for Compose's .env parser so it stays literal."""
    if "'" not in value:
        return f"'{value}'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def env_file_text(env: dict[str, str]) -> str:
    """Serialise env values as a Compose .env file."""
    lines = ["# Written by StackHub. Values are literal; edit through StackHub to keep them."]
    lines += [f"{key}={_quote(value)}" for key, value in sorted(env.items())]
    return "\n".join(lines) + "\n"


def parse_env_file_text(text: str) -> dict[str, str]:
    """Read back a .env file written by `env_file_text` (StackHub's own quoting only)."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        if len(raw) >= 2 and raw[0] == raw[-1] == "'":
            env[key] = raw[1:-1]
        elif len(raw) >= 2 and raw[0] == raw[-1] == '"':
            out: list[str] = []
            index = 1
            while index < len(raw) - 1:
                char = raw[index]
                if char == "\\" and index + 1 < len(raw) - 1:
                    out.append(raw[index + 1])
                    index += 2
                    continue
                out.append(char)
                index += 1
            env[key] = "".join(out)
        else:
            env[key] = raw
    return env
