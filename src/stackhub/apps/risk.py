"""Find risky options in a fully resolved compose project, in one place for every path."""

from __future__ import annotations

import hashlib
import json
import posixpath
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel

SYSTEM_PATHS = ("/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc",
                "/root", "/run", "/sbin", "/sys", "/usr", "/var", "/var/run", "/var/lib",
                "/var/lib/docker", "/var/log", "/home")
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
HOST_NAMESPACES = ("network_mode", "pid", "ipc", "uts", "userns_mode", "cgroup")


class Risk(BaseModel):
    """One risky option: what, where, and how bad."""

    code: str
    service: str
    detail: str
    severity: str  # "high" or "critical"


def _file_sources(service: dict[str, Any], resolved: dict[str, Any]) -> list[str]:
    """Return host files a service gets through top-level secrets and configs."""
    sources: list[str] = []
    for section in ("secrets", "configs"):
        top = resolved.get(section) or {}
        for entry in service.get(section) or []:
            key = entry.get("source") if isinstance(entry, dict) else entry
            spec = top.get(key) if isinstance(top, dict) else None
            if isinstance(spec, dict) and spec.get("file"):
                sources.append(str(spec["file"]))
    return sources


def _bind_sources(service: dict[str, Any], named: dict[str, Any]) -> list[str]:
    sources: list[str] = []
    for volume in service.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        if volume.get("type") == "bind" and volume.get("source"):
            sources.append(str(volume["source"]))
        elif volume.get("type") == "volume" and volume.get("source") in named:
            opts = (named[volume["source"]] or {}).get("driver_opts") or {}
            if "bind" in str(opts.get("o", "")) or opts.get("type") == "none":
                device = opts.get("device")
                if device:
                    sources.append(str(device))
    return sources


def _within(source: str, roots: list[str]) -> bool:
    path = PurePosixPath(posixpath.normpath(source))
    return any(path == PurePosixPath(r) or PurePosixPath(r) in path.parents for r in roots)


def _contains(source: str, roots: list[str]) -> bool:
    """Tell whether `source` is an ancestor of one of `roots` (mounting it exposes them)."""
    path = PurePosixPath(posixpath.normpath(source))
    return any(path in PurePosixPath(r).parents for r in roots)


def _path_risk(source: str, allowed: list[str], protected: list[str]) -> tuple[str, str] | None:
    path = PurePosixPath(posixpath.normpath(source))
    if str(path) in DOCKER_SOCKETS or path.name == "docker.sock":
        return "docker_socket", "critical"
    if _within(source, allowed):
        return None
    if _within(source, protected) or _contains(source, protected):
        return "stackhub_data", "critical"
    if str(path) in SYSTEM_PATHS or any(str(path).startswith(p + "/") for p in
                                        ("/etc", "/proc", "/sys", "/dev", "/boot", "/root",
                                         "/var/lib/docker", "/run", "/var/run", "/usr")):
        return "system_path", "high"
    return None


def analyse(resolved: dict[str, Any], *, allowed_roots: list[str],
            protected_roots: list[str]) -> list[Risk]:
    """List every risky option of `resolved` (output of ``compose config``)."""
    risks: list[Risk] = []
    named = resolved.get("volumes") or {}
    for name, service in (resolved.get("services") or {}).items():
        def add(code: str, detail: str, severity: str = "high", svc: str = name) -> None:
            risks.append(Risk(code=code, service=svc, detail=detail, severity=severity))

        if service.get("privileged"):
            add("privileged", "runs privileged: full access to the host", "critical")
        for key in HOST_NAMESPACES:
            if str(service.get(key, "")) == "host":
                add(f"host_{key}", f"shares the host's {key.replace('_mode', '')} namespace")
        for cap in service.get("cap_add") or []:
            critical = str(cap).upper() in ("ALL", "CAP_ALL", "SYS_ADMIN", "CAP_SYS_ADMIN")
            add("cap_add", f"adds capability {cap}", "critical" if critical else "high")
        for device in service.get("devices") or []:
            source = device.get("source") if isinstance(device, dict) else str(device)
            add("device", f"gets host device {source}")
        for key in ("network_mode", "pid", "ipc"):
            value = str(service.get(key, ""))
            if value.startswith("container:"):
                add(f"{key}_container", f"joins the {key} namespace of another container "
                    f"({value})")
        for source in service.get("volumes_from") or []:
            if str(source).startswith("container:"):
                add("volumes_from", f"mounts the volumes of another container ({source})")
        for volume in service.get("volumes") or []:
            if isinstance(volume, dict) and volume.get("type") == "volume" and \
                    volume.get("source") in named:
                spec = named[volume["source"]] or {}
                opts = spec.get("driver_opts") or {}
                device = str(opts.get("device", ""))
                if device.startswith("/dev/"):
                    add("device_volume", f"mounts host block device {device}", "critical")
                if spec.get("external"):
                    add("external_volume", f"uses existing volume {spec.get('name')} that this "
                        "app does not own")
        for network in (service.get("networks") or {}):
            spec = (resolved.get("networks") or {}).get(network) or {}
            if spec.get("external"):
                add("external_network", f"joins existing network {spec.get('name')}")
        for opt in service.get("security_opt") or []:
            if "unconfined" in str(opt) or "no-new-privileges:false" in str(opt):
                add("security_opt", f"relaxes confinement: {opt}")
        for source in _bind_sources(service, named) + _file_sources(service, resolved):
            found = _path_risk(source, allowed_roots, protected_roots)
            if found:
                add(found[0], f"bind-mounts host path {source}", found[1])
    return risks


def digest(resolved: dict[str, Any], secret_values: list[str]) -> str:
    """Hash the resolved project with secret values masked, for consent binding."""
    text = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    for value in sorted(secret_values, key=len, reverse=True):
        if len(value) >= 4:
            text = text.replace(value, "<secret>")
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
