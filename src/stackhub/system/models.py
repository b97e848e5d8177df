"""Schemas of the system domain: engine inventory and host metrics."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PortRead(BaseModel):
    """A container port, published on the host or not."""

    container_port: int
    protocol: str = "tcp"
    host_ip: str | None = None
    host_port: int | None = None


class ContainerSummary(BaseModel):
    """One container of the engine, as the containers list shows it."""

    id: str
    short_id: str
    name: str
    image: str
    state: str
    status: str
    health: str | None = None
    created: int = Field(description="Unix time of creation.")
    ports: list[PortRead] = Field(default_factory=list)
    networks: list[str] = Field(default_factory=list)
    managed: bool = Field(description="Created by StackHub for an instance.")
    instance: str | None = None
    project: str | None = None
    service: str | None = None


class MountRead(BaseModel):
    """A volume or bind mount of a container."""

    type: str
    source: str
    destination: str
    name: str | None = None
    read_only: bool = False


class EnvVar(BaseModel):
    """An environment variable; values of secret-looking names are redacted."""

    name: str
    value: str
    redacted: bool = False


class ContainerNetwork(BaseModel):
    """A network a container is attached to."""

    name: str
    ip_address: str = ""


class ContainerDetail(ContainerSummary):
    """The inspect view of one container (secret-looking values redacted)."""

    image_id: str = ""
    command: list[str] = Field(default_factory=list)
    entrypoint: list[str] = Field(default_factory=list)
    env: list[EnvVar] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    mounts: list[MountRead] = Field(default_factory=list)
    attached: list[ContainerNetwork] = Field(default_factory=list)
    restart_policy: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    restart_count: int = 0


class ImageSummary(BaseModel):
    """One image of the engine."""

    id: str
    short_id: str
    tags: list[str] = Field(default_factory=list)
    size: int
    created: int
    containers: int = Field(description="Containers (any state) created from this image.")
    managed: bool = Field(description="Used by at least one StackHub instance.")
    dangling: bool


class VolumeSummary(BaseModel):
    """One volume of the engine."""

    name: str
    driver: str
    mountpoint: str = ""
    created: str | None = None
    containers: int = 0
    managed: bool = False
    instance: str | None = None


class NetworkSummary(BaseModel):
    """One network of the engine."""

    id: str
    short_id: str
    name: str
    driver: str
    scope: str = "local"
    internal: bool = False
    builtin: bool = Field(description="One of the engine's own networks (bridge, host, none).")
    containers: int = 0
    managed: bool = False
    instance: str | None = None


class PruneResult(BaseModel):
    """What an image prune deleted."""

    deleted: list[str] = Field(default_factory=list)
    space_reclaimed: int = 0


class CpuSample(BaseModel):
    """Processor use over the sampling interval."""

    percent: float
    count: int
    load: list[float] = Field(default_factory=list, description="1, 5 and 15 minute load.")


class MemorySample(BaseModel):
    """Memory use in bytes."""

    total: int
    used: int
    available: int
    percent: float


class DiskSample(BaseModel):
    """Use of the file system holding StackHub's data root, in bytes."""

    path: str
    total: int
    used: int
    free: int
    percent: float


class NetSample(BaseModel):
    """Network throughput of the host's physical interfaces, in bytes per second."""

    rx_rate: float
    tx_rate: float
    rx_total: int
    tx_total: int


class MetricsSample(BaseModel):
    """One sample of the host's resources."""

    at: float = Field(description="Unix time of the sample.")
    cpu: CpuSample
    memory: MemorySample
    disk: DiskSample
    net: NetSample


class MetricsRead(BaseModel):
    """A fresh sample plus recent history while a live view is open."""

    sample: MetricsSample
    history: list[MetricsSample] = Field(default_factory=list)
    interval: float
