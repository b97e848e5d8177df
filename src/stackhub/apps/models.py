"""Schemas of the apps domain: sources, plans and instances (operations: `operations/models.py`)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from stackhub.apps.risk import Risk
from stackhub.catalog.models import WebEntry
from stackhub.errors import Invalid
from stackhub.operations.models import (
    Accepted,
    InstanceStatus,
    OperationPage,
    OperationRead,
    OperationState,
    StepRead,
)
from stackhub.state.instances import PortMapping

__all__ = [
    "Accepted", "InstanceStatus", "OperationPage", "OperationRead", "OperationState",
    "PortMapping", "StepRead",
]
"""Shared schemas this module re-exports, so the apps domain's API reads as one module."""

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,38}[a-z0-9]$|^[a-z0-9]$"
_NAME = re.compile(NAME_PATTERN)

LOOPBACK_FILE = "loopback.json"
"""Marker of a project whose web port is published on 127.0.0.1 only ({"service", "port"})."""


def check_name(name: str) -> str:
    """Accept an instance name only if it is a short DNS-style label."""
    if not _NAME.fullmatch(name):
        raise Invalid(f"instance name {name!r} is not allowed: use 1-40 lowercase letters, "
                      "digits and '-', starting and ending with a letter or digit")
    return name


def default_name(app_id: str) -> str:
    """Derive a valid instance name from an app id (`Turbo_Nvidia` gives `turbo-nvidia`)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", app_id.lower()).strip("-")[:40].rstrip("-")
    return slug or "app"


class CatalogSource(BaseModel):
    """Install an app from the catalog, named ``store/app``."""

    kind: Literal["catalog"] = "catalog"
    ref: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}/[a-z0-9][a-z0-9._-]{0,63}$")


class ComposeSource(BaseModel):
    """Install a plain compose file (a custom app)."""

    kind: Literal["compose"] = "compose"
    compose: str = Field(max_length=512 * 1024)


class AppDirSource(BaseModel):
    """Install an app folder in StackHub's format, uploaded as its two files."""

    kind: Literal["app"] = "app"
    manifest: str = Field(max_length=512 * 1024)
    compose: str = Field(max_length=512 * 1024)


Source = Annotated[CatalogSource | ComposeSource | AppDirSource, Field(discriminator="kind")]


class PlanRequest(BaseModel):
    """What to install, under which name, with which parameter values."""

    source: Source
    name: str | None = Field(default=None, description="Instance name; defaults to the app id.")
    values: dict[str, str] = Field(default_factory=dict)


class InstallRequest(PlanRequest):
    """A plan request plus consent to the plan's risks, bound to its digest."""

    accept_risks: str | None = Field(default=None, description="The digest of the risky "
                                     "content the admin accepts.")




class PlanRead(BaseModel):
    """A rendered plan: the project files, ports, risks and the consent digest."""

    instance: str
    app: str
    format: str
    version: str
    project: str
    images: list[str]
    ports: list[PortMapping]
    urls: list[str]
    risks: list[Risk]
    digest: str
    notes: list[str]
    problems: list[str]
    compose_file: str
    env_file: str
    values: dict[str, str] = Field(description="Parameter values; secrets included only here, "
                                   "at creation.")
    reuses_data: bool = Field(default=False, description="Data kept from an earlier install "
                              "under this name (appdata/<name>/) will be reused.")
    subnets: dict[str, list[str]] = Field(
        default_factory=dict, description="The IPv4 subnet(s) of each network the project "
        "creates, by network name (`default` included): chosen by StackHub from its pool, or "
        "set by the app.")
    dependencies: dict[str, str] = Field(
        default_factory=dict, description="The installed instance each dependency (Umbrel's "
        "`dependencies`) is served by, by app id: the app receives its exported values and "
        "joins its link network.")


class EngineState(BaseModel):
    """Whether the Docker engine answers, as StackHub last saw it (the ``engine`` event data)."""

    engine: bool
    error: str | None = None
    since: str | None = None


class ContainerRead(BaseModel):
    """A container of an instance."""

    name: str
    service: str | None
    state: str
    health: str | None
    image: str


class ServiceSettings(BaseModel):
    """One compose service of an instance as installed (read-only; secret values hidden)."""

    service: str
    image: str | None = None
    ports: list[str] = Field(default_factory=list, description="As in the compose file, e.g. "
                             "\"8080:80\"")
    environment: dict[str, str] = Field(default_factory=dict)
    volumes: list[str] = Field(default_factory=list, description="As in the compose file, e.g. "
                               "\"./data:/data\"")


class InstanceRead(BaseModel):
    """An installed app, as the API shows it (secret values hidden)."""

    name: str
    app: str
    store: str | None
    format: str
    version: str
    status: InstanceStatus
    status_reason: str | None = Field(default=None, description="Why the status is what it is "
                                      "when that is not obvious: \"engine unreachable\" while "
                                      "the status is unknown because the Docker engine is down.")
    main: WebEntry | None
    ports: list[PortMapping]
    urls: list[str]
    parameters: dict[str, str]
    parameter_labels: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Each parameter's label by language (e.g. "
        "`{\"WEB_PORT\": {\"en\": \"Web port\"}}`), from the app's definition.")
    services: list[ServiceSettings] = Field(
        default_factory=list, description="Each compose service's image, ports, environment "
        "and volumes as installed: the settings of a custom app, which has no parameters.")
    containers: list[ContainerRead] = Field(default_factory=list, description="The instance's "
                                            "containers; while the engine is unreachable, the "
                                            "last ones seen, with state \"unknown\".")
    error: str | None = None
    update_available: bool = Field(default=False, description="Whether an update is known "
                                   "(a newer store version or a new image digest; see "
                                   "latest_version and update_kind)")
    latest_version: str | None = Field(default=None, description="The version an update "
                                       "would install (the same one for a digest update)")
    update_kind: str | None = Field(default=None, description="version or digest")
    open_url: str | None = Field(default=None, description="The address to open the app at: "
                                 "its https gateway name (`<instance>.<base>` when a base "
                                 "domain is set, else its first active custom domain); else "
                                 "its first `http://host:port` address; null when it has no "
                                 "web page, or when it is protected and has no gateway name "
                                 "(its port then answers on the box itself only).")
    last_backup_at: str | None = Field(default=None, description="When the instance's last "
                                       "good backup was taken (null: never).")
    created_at: str
    updated_at: str


class LogQuery(BaseModel):
    """Options for reading logs."""

    tail: int | None = Field(default=200, ge=0, le=100_000)
    follow: bool = False


def json_dict(value: Any) -> dict[str, Any]:
    """Coerce a decoded JSON value to a dict."""
    return value if isinstance(value, dict) else {}


class DockerRunRequest(BaseModel):
    """A pasted `docker run` command to turn into a compose file."""

    command: str = Field(min_length=1, max_length=16 * 1024, description="One `docker run` "
                         "command line as a shell would read it; nothing is executed.")


class DockerRunRead(BaseModel):
    """The compose file equivalent to a `docker run` command, to review and install."""

    compose: str = Field(description="The compose file (YAML), ready for a compose source.")
    name: str = Field(description="A suggested instance name.")
    notes: list[str] = Field(description="What was left out or needs attention.")


class KeptDataRead(BaseModel):
    """Data an instance left when it was removed without purging, kept under its name."""

    name: str = Field(description="The instance name; installing again under it reuses the "
                      "data.")
    app: str | None = Field(default=None, description="The app it belonged to (store/app), "
                            "if StackHub removed it.")
    version: str | None = None
    removed_at: str | None = None
    modified_at: str | None = Field(default=None, description="When the data folder last "
                                    "changed.")
    size: int = Field(description="Bytes on disk in the data folder (named volumes not "
                      "counted).")
    size_complete: bool = Field(default=True, description="False when the folder was too "
                                "large to count in full: `size` is then a floor.")
    folder: bool = Field(description="Whether appdata/<name>/ exists.")
    volumes: list[str] = Field(default_factory=list, description="Named volumes of the "
                               "removed project.")
