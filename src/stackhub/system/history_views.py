"""HTTP routes of the metrics history: charts of the host or an instance, and what runs now.

Both read what the background sampler left (memory and SQLite); no request samples anything.
Members see only instances granted to them, and never the host.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from stackhub.api.deps import PrincipalDep, ServicesDep
from stackhub.apps.models import check_name
from stackhub.errors import Forbidden, Invalid, NotFound
from stackhub.system.history import HOST, METRICS, Chart, SeriesKey
from stackhub.system.history_models import (
    HistoryRead,
    HostNow,
    InstanceNow,
    MetricSeries,
    Range,
    Scope,
    TopRead,
)

router = APIRouter(prefix="/metrics", tags=["metrics"])


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _series(chart: Chart) -> dict[str, MetricSeries]:
    return {metric: MetricSeries(mean=[_round(a.mean(i)) for a in chart.aggs],
                                 min=[_round(a.mins[i]) for a in chart.aggs],
                                 max=[_round(a.maxs[i]) for a in chart.aggs])
            for i, metric in enumerate(METRICS)}


@router.get("/history", response_model=HistoryRead, summary="Chart a range of metrics")
async def history(services: ServicesDep, principal: PrincipalDep,
                  scope: Annotated[Scope, Query(description="host (admins) or instance")],
                  name: Annotated[str, Query(max_length=64, description="The instance (scope "
                                             "instance)")] = "",
                  range_name: Annotated[Range, Query(alias="range")] = "1h") -> HistoryRead:
    """Return min, max and mean per step of the host's or an instance's metrics."""
    sampler = services.metrics_history
    key: SeriesKey
    if scope == "host":
        if name:
            raise Invalid("the host's history takes no name (use scope=instance for an app)")
        if not principal.is_admin:
            raise Forbidden("only admins may see the host's metrics")
        key = HOST
    else:
        if not name:
            raise Invalid("scope=instance needs the instance's name (name=...)")
        name = check_name(name)
        if not services.auth.accounts.may_see(principal, name):
            raise NotFound(f"no instance named {name!r}")
        key = ("instance", name)
    chart = await asyncio.to_thread(sampler.history.chart, key, range_name)
    if scope == "instance" and not chart.at and services.records.find(name) is None:
        raise NotFound(f"no instance named {name!r}")
    totals = sampler.history.extra.get(HOST, {}) if scope == "host" else {}
    return HistoryRead(scope=scope, name=name, range=range_name, step=chart.step,
                       resolution=chart.resolution, at=chart.at, series=_series(chart),
                       totals=dict(totals))


@router.get("/top", response_model=TopRead, summary="What runs now, busiest first")
async def top(services: ServicesDep, principal: PrincipalDep,
              sort: Annotated[Literal["cpu", "memory", "disk", "name"], Query()] = "cpu",
              limit: Annotated[int | None, Query(ge=1, le=1000)] = None) -> TopRead:
    """Return the latest sample of every running instance (and the host, for admins)."""
    sampler = services.metrics_history
    history = sampler.history
    granted = services.auth.accounts.granted(principal)
    rows: list[InstanceNow] = []
    for scope, name in history.series():
        if scope != "instance" or (granted is not None and name not in granted):
            continue
        values = history.latest_of((scope, name))
        if values is None:
            continue
        cpu, memory, disk, rx, tx, read, write = (_round(v) for v in values)
        count = int(history.extra.get((scope, name), {}).get("containers", 0))
        rows.append(InstanceNow(name=name, containers=count, cpu=cpu, memory=memory, rx=rx,
                                tx=tx, read=read, write=write, disk=disk))
    if sort == "name":
        rows.sort(key=lambda r: r.name)
    else:
        rows.sort(key=lambda r: (-(getattr(r, sort) or 0.0), r.name))
    host = None
    latest = history.latest.get(HOST)
    if principal.is_admin and latest is not None:
        extra = history.extra.get(HOST, {})
        cpu, memory, disk, rx, tx, _, _ = (_round(v) for v in latest[1])
        host = HostNow(cpu=cpu, cpus=int(extra.get("cpus", 1)), memory=memory,
                       memory_total=extra.get("memory_total", 0.0), disk=disk,
                       disk_total=extra.get("disk_total", 0.0), rx=rx, tx=tx)
    return TopRead(enabled=sampler.active, at=latest[0] if latest else None,
                   interval=history.interval, host=host,
                   instances=rows[:limit] if limit else rows, disk_at=sampler.disk_at)
