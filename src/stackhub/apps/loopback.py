"""A protected app's project files: compose.yaml plus an override binding its web port to 127.0.0.1.

The decision is the apps domain's, not the Compose adapter's: ``proxy/service.py`` records the
choice as a marker (``loopback.json``: ``{"service", "port"}``) in the project folder, and
`project_files` turns marker and current compose file into the list of files every compose run
of the project is given (``ComposeCli(files=project_files)``, the hook proxy's calls). The
override is rewritten from the current compose file at each call, so a port changed later in
the settings is followed.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stackhub import yamlsafe
from stackhub.adapters.compose import COMPOSE_FILE
from stackhub.apps.models import LOOPBACK_FILE
from stackhub.errors import StackHubError

LOOPBACK_OVERRIDE = "compose.loopback.yaml"
"""The override written from the marker and the current compose file."""


def _loopback_port(entry: Any, target: int) -> Any:
    """Return a ``ports`` entry bound to 127.0.0.1 if it publishes container port `target`."""
    if isinstance(entry, dict):
        if str(entry.get("target")) == str(target):
            return {**entry, "host_ip": "127.0.0.1"}
        return entry
    text = str(entry)
    body, slash, protocol = text.partition("/")
    parts = body.rsplit(":", 2) if not body.startswith("[") else [body]
    if len(parts) < 2 or parts[-1] != str(target):
        return entry  # another port, a bare container port (random host port), a range
    long: dict[str, Any] = {"target": target, "published": parts[-2], "host_ip": "127.0.0.1"}
    if slash:
        long["protocol"] = protocol
    return long


def loopback_override(compose: Mapping[str, Any], service: str, target: int) -> str | None:
    """Return an override publishing `service`'s port `target` on 127.0.0.1 only, or None.

    The service's whole ``ports`` list is restated (``!override``: Compose would otherwise
    add the entry beside the original one), taken from the current compose file, so a port
    changed later in the settings is followed; ``${VAR}`` stays for Compose to fill.
    """
    services = compose.get("services")
    spec = services.get(service) if isinstance(services, dict) else None
    ports = spec.get("ports") if isinstance(spec, dict) else None
    if not isinstance(ports, list) or not ports:
        return None
    bound = [_loopback_port(p, target) for p in ports]
    if bound == ports:
        return None
    lines = ["services:", f"  {json.dumps(service)}:", "    ports: !override"]
    lines += [f"      - {json.dumps(p)}" for p in bound]
    return "\n".join(lines) + "\n"


def write_loopback_override(project_dir: Path) -> Path | None:
    """Write the project's loopback override from its marker; return its path, or None."""
    marker, override = project_dir / LOOPBACK_FILE, project_dir / LOOPBACK_OVERRIDE
    try:
        wanted = json.loads(marker.read_text())
        service, target = str(wanted["service"]), int(wanted["port"])
        compose = yamlsafe.load_mapping((project_dir / COMPOSE_FILE).read_bytes(),
                                        what="instance compose file")
    except (OSError, ValueError, KeyError, TypeError, StackHubError):
        with contextlib.suppress(OSError):
            override.unlink()
        return None
    text = loopback_override(compose, service, target)
    if text is None:
        with contextlib.suppress(OSError):
            override.unlink()
        return None
    with contextlib.suppress(OSError):
        if override.read_text() == text:
            return override
    override.write_text(text)
    return override


def project_files(project_dir: Path) -> list[Path]:
    """Return the compose files of a project: compose.yaml, then the loopback override if any."""
    files = [project_dir / COMPOSE_FILE]
    override = write_loopback_override(project_dir)
    if override is not None:
        files.append(override)
    return files
