"""Read a plain compose file as a custom app (the CasaOS "custom install" path)."""

from __future__ import annotations

import re
from typing import Any

from stackhub import yamlsafe
from stackhub.catalog.models import AppDefinition, AppFormat, WebEntry
from stackhub.errors import Invalid

_SLUG = re.compile(r"[^a-z0-9-]+")


def _first_port(service: dict[str, Any]) -> int | None:
    ports = service.get("ports")
    for item in ports if isinstance(ports, list) else []:
        if isinstance(item, dict) and str(item.get("target", "")).isdecimal():
            return int(item["target"])
        if isinstance(item, str | int):
            text = str(item).split("/")[0]
            target = text.rsplit(":", 1)[-1].split("-")[0]
            if target.isdecimal():
                return int(target)
    return None


def parse_compose(text: str | bytes, *, name_hint: str | None = None) -> AppDefinition:
    """Build an AppDefinition from a plain compose file; fixed ports stay as written."""
    compose = yamlsafe.load_mapping(text, what="compose file")
    services = compose.get("services")
    if not isinstance(services, dict) or not services:
        raise Invalid("the compose file has no services")
    main: WebEntry | None = None
    for service_name, service in services.items():
        if isinstance(service, dict):
            port = _first_port(service)
            if port is not None:
                main = WebEntry(service=str(service_name), port=port)
                break
    raw_name = str(compose.get("name") or name_hint or next(iter(services)))
    app_id = _SLUG.sub("-", raw_name.lower()).strip("-")[:40] or "custom"
    return AppDefinition(id=app_id, name=raw_name, format=AppFormat.COMPOSE, version="custom",
                         title={"en": raw_name}, main=main, compose=compose)
