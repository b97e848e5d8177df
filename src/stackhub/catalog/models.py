"""Describe an app in the one internal model every store format is read into."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stackhub.catalog.backup_spec import BackupSpec as BackupSpec  # re-exported for other domains
from stackhub.platform import PLATFORM_VARS, RESERVED_PREFIXES

LocalizedText = dict[str, str]
"""Text by locale (``en``, ``zh-CN``...); readers normalise locale keys."""

PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
APP_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class AppFormat(StrEnum):
    """The store format an app was read from."""

    STACKHUB = "stackhub"
    CASAOS = "casaos"
    UMBREL = "umbrel"
    RUNTIPI = "runtipi"
    COMPOSE = "compose"


class ParameterType(StrEnum):
    """The kinds of install parameters an app can ask for."""

    STRING = "string"
    PASSWORD = "password"  # noqa: S105 - a type name, not a password
    SECRET = "secret"  # noqa: S105
    PORT = "port"
    BOOLEAN = "boolean"
    NUMBER = "number"
    ENUM = "enum"
    PATH = "path"
    EMAIL = "email"
    URL = "url"
    HOST = "host"


class SecretEncoding(StrEnum):
    """Alphabets for generated secrets."""

    ALNUM = "alnum"
    HEX = "hex"
    BASE64 = "base64"


class Option(BaseModel):
    """One choice of an enum parameter."""

    model_config = ConfigDict(extra="forbid")

    value: str
    label: LocalizedText = Field(default_factory=dict)


class Parameter(BaseModel):
    """A typed install parameter, passed to the compose project as an environment variable."""

    model_config = ConfigDict(extra="forbid")

    name: str
    type: ParameterType = ParameterType.STRING
    label: LocalizedText = Field(default_factory=dict)
    help: LocalizedText = Field(default_factory=dict)
    default: str | int | float | bool | None = None
    required: bool = False
    min: float | None = None
    max: float | None = None
    regex: str | None = None
    regex_error: LocalizedText = Field(default_factory=dict)
    options: list[Option] = Field(default_factory=list)
    length: int = Field(default=32, ge=8, le=256)
    encoding: SecretEncoding = SecretEncoding.ALNUM
    protocol: str = "tcp"
    init_only: bool = Field(default=False, description="Takes effect only when the app's data "
                            "is first initialised (a database password or user): read-only "
                            "after install.")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not PARAM_NAME.fullmatch(value):
            raise ValueError(f"parameter name {value!r} must be an environment variable name")
        if value in PLATFORM_VARS or value.startswith(RESERVED_PREFIXES):
            raise ValueError(f"parameter name {value!r} is reserved for StackHub or Compose")
        return value

    @field_validator("regex")
    @classmethod
    def _check_regex(cls, value: str | None) -> str | None:
        if value is not None:
            if len(value) > 512:
                raise ValueError("regex is longer than 512 characters")
            try:
                re.compile(value)
            except re.error as err:
                raise ValueError(f"regex is not valid: {err}") from err
        return value


class WebEntry(BaseModel):
    """Where an app's web UI lives: service, container port, path and scheme."""

    model_config = ConfigDict(extra="forbid")

    service: str
    port: int = Field(ge=1, le=65535)
    path: str = "/"
    scheme: str = "http"


class AppFile(BaseModel):
    """A text file an app ships for its data folder, written once when an instance is created.

    Umbrel apps carry seed files under ``data/`` and ``*.template`` files; a template's
    ``${NAME}`` references are filled from the instance's values at install.
    """

    path: str = Field(max_length=255, pattern=r"^[A-Za-z0-9._@+ -]+(/[A-Za-z0-9._@+ -]+)*$")
    content: str
    template: bool = False

    @field_validator("path")
    @classmethod
    def _relative_inside(cls, path: str) -> str:
        """Keep the file inside the data folder: no absolute paths, no '.' or '..' parts."""
        if any(part in (".", "..") for part in path.split("/")):
            raise ValueError(f"file path {path!r} must stay inside the app's data folder")
        return path


class UpdateRules(BaseModel):
    """Upgrade-path rules an app declares for updates to its version."""

    model_config = ConfigDict(extra="forbid")

    min_from: str | None = Field(default=None, min_length=1, max_length=64, description=(
        "The oldest installed version this version can be updated from; an older one must "
        "first be updated to this version (e.g. `1.4.0`)."))

    @field_validator("min_from")
    @classmethod
    def _has_numbers(cls, value: str | None) -> str | None:
        if value is not None and not re.search(r"\d", value):
            raise ValueError("min_from must be a version with numbers, such as 1.4.0")
        return value


class AppDefinition(BaseModel):
    """An app as StackHub understands it, whatever format it came from."""

    id: str
    store: str | None = None
    format: AppFormat = AppFormat.STACKHUB
    name: str
    version: str = "latest"
    revision: int | None = None
    title: LocalizedText = Field(default_factory=dict)
    tagline: LocalizedText = Field(default_factory=dict)
    description: LocalizedText = Field(default_factory=dict)
    category: list[str] = Field(default_factory=list)
    dependencies: list[str] = Field(default_factory=list, description="Ids of apps that must "
                                    "be installed first (Umbrel's `dependencies`).")
    updated_at: str | None = Field(default=None, description="When the store last changed "
                                   "this app, if the store says (Runtipi's updated_at).")
    icon: str | None = None
    screenshots: list[str] = Field(default_factory=list)
    website: str | None = None
    author: str | None = None
    architectures: list[str] = Field(default_factory=list)
    main: WebEntry | None = None
    parameters: list[Parameter] = Field(default_factory=list)
    derived: dict[str, str] = Field(default_factory=dict)
    compose: dict[str, Any]
    files: list[AppFile] = Field(default_factory=list)
    imports: dict[str, str] = Field(default_factory=dict, description="Variables a "
                                    "dependency exports that this app uses, as name -> that "
                                    "app's id; filled at plan time from its installed "
                                    "instance.")
    exposes: dict[str, str] = Field(default_factory=dict, description="Variables naming one "
                                    "of this app's containers (Umbrel's fixed IPs), as name -> "
                                    "service; dependents get that service's name on the "
                                    "app's link network.")
    scripts: dict[str, str] = Field(default_factory=dict, description="Store scripts StackHub "
                                    "runs in its sandbox at install, by name (Umbrel's "
                                    "`exports.sh` with logic, `hooks/pre-start`).")
    release_notes: LocalizedText = Field(default_factory=dict, description="What changed in "
                                         "this version, Markdown by locale (Umbrel's "
                                         "`releaseNotes`, CasaOS's `release_notes`).")
    update: UpdateRules | None = Field(default=None, description="Upgrade-path rules for "
                                       "updates to this version.")
    backup: BackupSpec | None = Field(default=None, description="Hot backup: the dump "
                                      "command run inside a service instead of a stop.")
    problems: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    @property
    def ref(self) -> str:
        """Return the catalog name ``store/app`` (or just the id for loose apps)."""
        return f"{self.store}/{self.id}" if self.store else self.id

    @property
    def installable(self) -> bool:
        """Tell whether nothing blocks installing this app."""
        return not self.problems

    def text(self, field: LocalizedText, locale: str = "en") -> str:
        """Pick the text for a locale, falling back to English, then anything."""
        return localized(field, locale)


def localized(field: LocalizedText, locale: str = "en") -> str:
    """Pick text for a locale with fallback: exact, language, English, any."""
    if not field:
        return ""
    lowered = {key.lower().replace("_", "-"): text for key, text in field.items()}
    want = locale.lower().replace("_", "-")
    for key in (want, want.split("-")[0], "en", "en-us"):
        if key in lowered:
            return lowered[key]
    for key, text in lowered.items():
        if key.startswith(want.split("-")[0]):
            return text
    return next(iter(lowered.values()))


class StoreKind(StrEnum):
    """Where a store's content comes from."""

    GIT = "git"
    ARCHIVE = "archive"
    LOCAL = "local"


class StoreCreate(BaseModel):
    """A store to add: a git repository, an archive URL or (local only) a directory."""

    name: str = Field(pattern=APP_ID.pattern, description="Store name, used in `store/app`.")
    source: str = Field(min_length=1, max_length=2048, description="URL or absolute path.")
    branch: str | None = Field(default=None, max_length=200, description="Git branch.")
    kind: StoreKind | None = Field(default=None, description="Guessed from the source if unset.")
    local: bool = Field(default=False, description="Trust a local source: file paths, http and "
                        "internal addresses are allowed (admins only).")
    sync: bool = Field(default=True, description="Sync right after adding.")
    max_size_mb: int | None = Field(default=None, ge=1, le=4096, description="The most a sync "
                                    "may keep of this store, in MiB (default 300); files over "
                                    "2 MiB in a git store are never fetched.")


class StoreRead(BaseModel):
    """A configured store and the state of its last sync."""

    name: str
    kind: StoreKind
    source: str
    branch: str | None = None
    position: int
    local: bool
    max_size_mb: int = Field(description="The most a sync may keep of this store, in MiB.")
    last_sync: str | None = None
    last_attempt: str | None = None
    last_error: str | None = None
    revision: str | None = None
    app_count: int = 0
    app_errors: list[str] = Field(default_factory=list)


class SyncResult(BaseModel):
    """What one store sync did."""

    store: str
    changed: bool
    revision: str | None = None
    app_count: int = 0
    app_errors: list[str] = Field(default_factory=list)
    updates: list[str] = Field(default_factory=list, description="Instances flagged for update.")
    error: str | None = None
    seconds: float = 0.0


class CatalogAppSummary(BaseModel):
    """One catalog app in a listing, text in the requested locale."""

    id: str = Field(description="The catalog name `store/app`.")
    store: str
    app: str
    name: str
    format: AppFormat
    title: str
    tagline: str
    version: str
    revision: int | None = None
    category: list[str] = Field(default_factory=list)
    installable: bool
    problems: list[str] = Field(default_factory=list)
    icon_url: str | None = None
    featured: bool = Field(default=False, description="The store features this app (CasaOS "
                           "featured-apps.json).")
    updated_at: str | None = Field(default=None, description="When the app last changed: the "
                                   "store's date where it has one, else when a sync first saw "
                                   "this version (null: unknown, e.g. since the first sync).")


class CatalogAppRead(CatalogAppSummary):
    """One catalog app in full, localized text plus every language present."""

    description: str
    title_i18n: LocalizedText = Field(default_factory=dict)
    tagline_i18n: LocalizedText = Field(default_factory=dict)
    description_i18n: LocalizedText = Field(default_factory=dict)
    locales: list[str] = Field(default_factory=list)
    website: str | None = None
    author: str | None = None
    architectures: list[str] = Field(default_factory=list)
    main: WebEntry | None = None
    parameters: list[Parameter] = Field(default_factory=list)
    screenshot_urls: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    compose: dict[str, Any] = Field(default_factory=dict)


class CategoryRead(BaseModel):
    """A category and how many catalog apps carry it."""

    name: str
    count: int
