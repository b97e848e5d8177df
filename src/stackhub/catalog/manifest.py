"""Define StackHub's own app manifest (``stackhub-app.yaml``) and its JSON Schema."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stackhub.catalog.backup_spec import BackupSpec
from stackhub.catalog.models import APP_ID, LocalizedText, Parameter, UpdateRules, WebEntry

MANIFEST_FILE = "stackhub-app.yaml"
COMPOSE_FILE = "compose.yaml"


class Manifest(BaseModel):
    """The manifest of an app in StackHub's own format; the compose template sits beside it."""

    model_config = ConfigDict(extra="forbid", title="StackHub app manifest")

    format: Literal["stackhub/v1"] = Field(description="Manifest format version.")
    id: str = Field(description="App id, unique in its store: lowercase letters, digits, . _ -")
    name: str = Field(min_length=1, max_length=80, description="Display name.")
    version: str = Field(min_length=1, max_length=64, description="Upstream version label.")
    revision: int = Field(default=1, ge=1, description="Package revision, bumped on each change.")
    title: LocalizedText = Field(default_factory=dict, description="Title by locale.")
    tagline: LocalizedText = Field(default_factory=dict, description="One-line pitch by locale.")
    description: LocalizedText = Field(default_factory=dict, description="Markdown by locale.")
    category: list[str] = Field(default_factory=list, description="Categories, e.g. media.")
    icon: str | None = Field(default=None, description="Icon file in the app folder.")
    screenshots: list[str] = Field(default_factory=list, description="Screenshot files.")
    website: str | None = None
    author: str | None = None
    architectures: list[str] = Field(default_factory=list, description="Empty means any.")
    main: WebEntry | None = Field(default=None, description="The web UI's service and port.")
    parameters: list[Parameter] = Field(default_factory=list)
    backup: BackupSpec | None = Field(default=None, description=(
        "Hot backup: which service runs which dump command (an argument list), and which "
        "paths and volumes a backup then skips; the app is not stopped."))
    release_notes: LocalizedText = Field(default_factory=dict, description="What changed in "
                                         "this version, Markdown by locale.")
    update: UpdateRules | None = Field(default=None, description="Upgrade-path rules, e.g. "
                                       "`{min_from: 1.4.0}`: installs older than that must "
                                       "update to it first.")

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not APP_ID.fullmatch(value):
            raise ValueError("id must be lowercase letters, digits, '.', '_' or '-'")
        return value


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema of the manifest, as published in docs/."""
    schema = Manifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://stackhub.dev/schemas/app-manifest.schema.json"
    return schema
