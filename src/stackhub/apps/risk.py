"""Find risky options in a fully resolved compose project, in one place for every path."""

from __future__ import annotations

import hashlib
import json
import posixpath
from pathlib import PurePosixPath

from pydantic import BaseModel

from stackhub.adapters.compose import ResolvedProject, ResolvedService, ResolvedVolume

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


def _file_sources(service: ResolvedService, resolved: ResolvedProject) -> list[str]:
    """Return host files a service gets through top-level secrets and configs."""
    sources: list[str] = []
    for used, top in ((service.secrets, resolved.secrets), (service.configs, resolved.configs)):
        for key in used:
            spec = top.get(key)
            if spec is not None and spec.file:
                sources.append(spec.file)
    return sources


def _bind_sources(service: ResolvedService, named: dict[str, ResolvedVolume]) -> list[str]:
    sources: list[str] = []
    for volume in service.volumes:
        if volume.type == "bind" and volume.source:
            sources.append(volume.source)
        elif volume.type == "volume" and volume.source in named:
            opts = named[volume.source].driver_opts
            if "bind" in opts.get("o", "") or opts.get("type") == "none":
                device = opts.get("device")
                if device:
                    sources.append(device)
    return sources


def _namespaces(service: ResolvedService) -> dict[str, str]:
    """Return the namespace options of a service that are set (network_mode, pid...)."""
    values = {"network_mode": service.network_mode, "pid": service.pid, "ipc": service.ipc,
              "uts": service.uts, "userns_mode": service.userns_mode, "cgroup": service.cgroup}
    return {key: value for key, value in values.items() if value}


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


def analyse(resolved: ResolvedProject, *, allowed_roots: list[str],
            protected_roots: list[str], allowed_networks: frozenset[str] = frozenset(),
            ) -> list[Risk]:
    """List every risky option of `resolved` (output of ``compose config``).

    `allowed_networks`: existing networks StackHub itself joins the project to (the link
    networks of its dependencies, apps/deps.py), not a risk.
    """
    risks: list[Risk] = []
    named = resolved.volumes
    for name, service in resolved.services.items():
        def add(code: str, detail: str, severity: str = "high", svc: str = name) -> None:
            risks.append(Risk(code=code, service=svc, detail=detail, severity=severity))

        namespaces = _namespaces(service)
        if service.privileged:
            add("privileged", "runs privileged: full access to the host", "critical")
        for key in HOST_NAMESPACES:
            if namespaces.get(key) == "host":
                add(f"host_{key}", f"shares the host's {key.replace('_mode', '')} namespace")
        for cap in service.cap_add:
            critical = cap.upper() in ("ALL", "CAP_ALL", "SYS_ADMIN", "CAP_SYS_ADMIN")
            add("cap_add", f"adds capability {cap}", "critical" if critical else "high")
        for device in service.devices:
            add("device", f"gets host device {device.source}")
        for key in ("network_mode", "pid", "ipc"):
            value = namespaces.get(key, "")
            if value.startswith("container:"):
                add(f"{key}_container", f"joins the {key} namespace of another container "
                    f"({value})")
        for source in service.volumes_from:
            if source.startswith("container:"):
                add("volumes_from", f"mounts the volumes of another container ({source})")
        for volume in service.volumes:
            if volume.type == "volume" and volume.source in named:
                spec = named[volume.source]
                block = spec.driver_opts.get("device", "")
                if block.startswith("/dev/"):
                    add("device_volume", f"mounts host block device {block}", "critical")
                if spec.external:
                    add("external_volume", f"uses existing volume {spec.name} that this "
                        "app does not own")
        for network in service.networks:
            net = resolved.networks.get(network)
            if net is not None and net.external and net.name not in allowed_networks:
                add("external_network", f"joins existing network {net.name}")
        for opt in service.security_opt:
            if "unconfined" in opt or "no-new-privileges:false" in opt:
                add("security_opt", f"relaxes confinement: {opt}")
        for source in _bind_sources(service, named) + _file_sources(service, resolved):
            found = _path_risk(source, allowed_roots, protected_roots)
            if found:
                add(found[0], f"bind-mounts host path {source}", found[1])
    return risks


def digest(resolved: ResolvedProject, secret_values: list[str]) -> str:
    """Hash the whole resolved project with secret values masked, for consent binding."""
    text = json.dumps(resolved.raw, sort_keys=True, separators=(",", ":"))
    for value in sorted(secret_values, key=len, reverse=True):
        if len(value) >= 4:
            text = text.replace(value, "<secret>")
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
