"""Read apps in StackHub's own format: ``stackhub-app.yaml`` plus ``compose.yaml``."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from stackhub import yamlsafe
from stackhub.catalog.backup_spec import check_against
from stackhub.catalog.manifest import COMPOSE_FILE, MANIFEST_FILE, Manifest
from stackhub.catalog.models import AppDefinition, AppFormat
from stackhub.catalog.readers import common
from stackhub.errors import Invalid


def describe_validation(err: ValidationError) -> str:
    """Turn a pydantic error into one readable sentence per problem."""
    parts = []
    for item in err.errors():
        where = ".".join(str(p) for p in item["loc"]) or "document"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_app(manifest_text: str | bytes, compose_text: str | bytes, *,
              store: str | None = None) -> AppDefinition:
    """Build an AppDefinition from the two files of a StackHub-format app."""
    raw = yamlsafe.load_mapping(manifest_text, what="app manifest")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as err:
        raise Invalid(f"app manifest is invalid: {describe_validation(err)}") from err
    compose = yamlsafe.load_mapping(compose_text, what="compose template")
    names = [p.name for p in manifest.parameters]
    if len(set(names)) != len(names):
        raise Invalid("app manifest declares a parameter twice")
    services = compose.get("services")
    if not isinstance(services, dict) or not services:
        raise Invalid("compose template has no services")
    if manifest.main and manifest.main.service not in services:
        raise Invalid(f"main service {manifest.main.service!r} is not in the compose template")
    if manifest.backup is not None:
        check_against(manifest.backup, compose)
    data = manifest.model_dump(exclude={"format"})
    return AppDefinition(**data, compose=compose, store=store, format=AppFormat.STACKHUB)


def read_app_dir(folder: Path, *, store: str | None = None) -> AppDefinition:
    """Read one app folder in StackHub's own format (links refused, files size-limited)."""
    common.check_folder(folder)
    return parse_app(common.read_file(folder, MANIFEST_FILE),
                     common.read_file(folder, COMPOSE_FILE), store=store)
