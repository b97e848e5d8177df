"""Schemas of the metrics history: chart series and the live table of instances."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Range = Literal["1h", "24h", "7d", "90d"]
Scope = Literal["host", "instance"]


class MetricSeries(BaseModel):
    """One metric over the chart's steps (None where nothing was sampled)."""

    mean: list[float | None]
    min: list[float | None]
    max: list[float | None]


class HistoryRead(BaseModel):
    """A range of the host's or an instance's metrics, one point per step."""

    scope: Scope
    name: str = Field(description="The instance; empty for the host.")
    range: Range
    step: int = Field(description="Seconds between points (each point merges its step).")
    resolution: int = Field(description="Seconds per stored sample of the source: 5 (the last "
                            "hour in memory), 60 (1-minute rollups, 48 h) or 3600 (hourly, "
                            "90 days).")
    at: list[int] = Field(description="Unix time of each point's step start.")
    series: dict[str, MetricSeries] = Field(
        description="cpu (percent; host: of all cores, instance: of one core), memory and disk "
        "(bytes), rx, tx, read, write (bytes per second).")
    totals: dict[str, float] = Field(default_factory=dict, description="The host's cpus, "
                                     "memory_total and disk_total (bytes).")


class InstanceNow(BaseModel):
    """An instance's latest sample (rates over the last interval)."""

    name: str
    containers: int = Field(description="Running containers sampled.")
    cpu: float | None = Field(description="Percent of one core (may pass 100).")
    memory: float | None = Field(description="Bytes in use (without the inactive page cache).")
    rx: float | None = Field(description="Network received, bytes per second.")
    tx: float | None = Field(description="Network sent, bytes per second.")
    read: float | None = Field(description="Block I/O read, bytes per second.")
    write: float | None = Field(description="Block I/O written, bytes per second.")
    disk: float | None = Field(description="Bytes on disk: data folder plus named volumes "
                               "(measured every 15 minutes).")


class HostNow(BaseModel):
    """The host's latest sample."""

    cpu: float | None = Field(description="Percent of all cores.")
    cpus: int
    memory: float | None
    memory_total: float
    disk: float | None = Field(description="Used bytes of the file system of the data root.")
    disk_total: float
    rx: float | None
    tx: float | None


class TopRead(BaseModel):
    """What runs now: the host (admins) and every sampled instance, busiest first."""

    enabled: bool = Field(description="The history sampler runs (STACKHUB_METRICS_HISTORY).")
    at: float | None = Field(description="Unix time of the latest round.")
    interval: float
    host: HostNow | None = None
    instances: list[InstanceNow]
    disk_at: float | None = Field(default=None, description="When disk use was last measured.")
