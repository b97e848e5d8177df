"""The read-only settings of an instance, from its stored definition: parameter labels, and each
compose service's image, ports, environment and volumes (what a custom app has instead of
parameters). Cheap and forgiving: a definition it cannot read gives empty results."""

from __future__ import annotations

import re
from typing import Any

from stackhub.apps.models import ServiceSettings

REDACTED = "********"
# environment variables whose values are secrets by their name (custom apps have no secret type)
SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|(^|_)KEY($|_)|PRIVATE|CREDENTIAL", re.IGNORECASE)
MAX_ITEMS = 100  # per list, so an odd definition cannot bloat every instance listing


def parameter_labels(definition: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each parameter's label by language (parameters without one are left out)."""
    out: dict[str, dict[str, str]] = {}
    params = definition.get("parameters")
    for param in params if isinstance(params, list) else []:
        if not isinstance(param, dict) or not isinstance(param.get("name"), str):
            continue
        label = param.get("label")
        if isinstance(label, dict):
            texts = {str(k): str(v) for k, v in label.items() if isinstance(v, str) and v}
            if texts:
                out[param["name"]] = texts
    return out


def _item(value: Any) -> str:
    """A port or volume entry in compose's short form (long forms compacted)."""
    if isinstance(value, dict):
        if "target" in value and ("published" in value or "source" in value):
            source = value.get("published", value.get("source"))
            target = str(value["target"])
            return f"{source}:{target}" if source not in (None, "") else target
        return str(value.get("target", ""))
    return str(value)


def _environment(raw: Any, hidden: set[str]) -> dict[str, str]:
    if isinstance(raw, list):
        pairs = [str(item).partition("=") for item in raw]
        env = {key: value for key, _, value in pairs}
    elif isinstance(raw, dict):
        env = {str(k): "" if v is None else str(v) for k, v in raw.items()}
    else:
        return {}
    return {key: REDACTED if key in hidden or SECRET_NAME.search(key) else value
            for key, value in list(env.items())[:MAX_ITEMS]}


def service_settings(definition: dict[str, Any], secret_names: list[str]) -> list[ServiceSettings]:
    """Each compose service's image, ports, environment and volumes; secret values hidden."""
    compose = definition.get("compose")
    services = compose.get("services") if isinstance(compose, dict) else None
    if not isinstance(services, dict):
        return []
    hidden = set(secret_names)
    out = []
    for name, raw in list(services.items())[:MAX_ITEMS]:
        spec = raw if isinstance(raw, dict) else {}
        ports = spec.get("ports")
        volumes = spec.get("volumes")
        image = spec.get("image")
        out.append(ServiceSettings(
            service=str(name), image=image if isinstance(image, str) else None,
            ports=[_item(p) for p in (ports if isinstance(ports, list) else [])][:MAX_ITEMS],
            environment=_environment(spec.get("environment"), hidden),
            volumes=[_item(v) for v in (volumes if isinstance(volumes, list) else [])][:MAX_ITEMS]))
    return out
