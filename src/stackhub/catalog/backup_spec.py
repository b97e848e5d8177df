"""Define an app's hot backup: a dump command run inside one service instead of a stop."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stackhub.errors import Invalid

VOLUME_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SKIP_PATH = re.compile(r"^[A-Za-z0-9._@+ -]+(/[A-Za-z0-9._@+ -]+)*$")
MAX_ARG = 4096


class BackupSpec(BaseModel):
    """How to back up an app without stopping it (StackHub format's `backup` section)."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(min_length=1, max_length=63, description=(
        "The compose service the dump command runs in (it must be running)."))
    dump: list[str] = Field(min_length=1, max_length=64, description=(
        "The dump command as an argument list (run like `docker exec`, never through a "
        "shell on the host); it must write its dump into the app's data folder or a named "
        "volume that the backup copies, and exit 0."))
    timeout: int = Field(default=600, ge=1, le=86400, description=(
        "Seconds the dump may run before the backup fails."))
    skip: list[str] = Field(default_factory=list, max_length=64, description=(
        "Paths under the app's data folder (`${APP_DATA_DIR}`) a hot backup does not copy, "
        "e.g. the live database files the dump replaces."))
    skip_volumes: list[str] = Field(default_factory=list, max_length=32, description=(
        "Keys of named volumes (as in the compose file) a hot backup does not copy."))

    @field_validator("dump")
    @classmethod
    def _check_dump(cls, value: list[str]) -> list[str]:
        if not value[0].strip():
            raise ValueError("the dump command's first argument (the program) is empty")
        for arg in value:
            if "\0" in arg or len(arg) > MAX_ARG:
                raise ValueError(f"dump arguments may not hold NUL or exceed {MAX_ARG} chars")
        return value

    @field_validator("skip")
    @classmethod
    def _check_skip(cls, value: list[str]) -> list[str]:
        for path in value:
            parts = path.split("/")
            if not SKIP_PATH.fullmatch(path) or any(p in (".", "..") for p in parts):
                raise ValueError(f"skip path {path!r} must be relative to the app's data "
                                 "folder, without '..', '.', globs or a leading '/'")
        return value

    @field_validator("skip_volumes")
    @classmethod
    def _check_volumes(cls, value: list[str]) -> list[str]:
        for key in value:
            if not VOLUME_KEY.fullmatch(key):
                raise ValueError(f"skip_volumes entry {key!r} is not a volume key")
        return value


def check_against(spec: BackupSpec, compose: dict[str, Any]) -> None:
    """Refuse (Invalid) a backup section naming a service or volume the compose file lacks."""
    services = compose.get("services")
    if not isinstance(services, dict) or spec.service not in services:
        raise Invalid(f"backup: service {spec.service!r} is not in the compose template")
    volumes = compose.get("volumes")
    declared = set(volumes) if isinstance(volumes, dict) else set()
    for key in spec.skip_volumes:
        if key not in declared:
            raise Invalid(f"backup: skip_volumes names {key!r}, which the compose template "
                          "does not declare under `volumes:`")
