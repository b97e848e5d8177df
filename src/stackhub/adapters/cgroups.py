"""Read the kernel's counters: the host from /proc, each container from its cgroup.

Cheap by design (the metrics history reads them every 5 s for every running container): a few
small files per container, no engine call once a container's cgroup folder is known. cgroup v2
(the unified hierarchy) first: ``cpu.stat`` ``usage_usec``, ``memory.current`` minus
``inactive_file``, ``io.stat``. Hosts still on cgroup v1 (or the hybrid layout: the unified
hierarchy holds no memory controller) are read from the ``cpuacct``, ``memory`` and ``blkio``
controllers instead. Network counters come from ``/proc/<pid>/net/dev`` of a process inside the
container (its network namespace), the pid read from the cgroup's ``cgroup.procs``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

RETRY_LOOKUP = 60.0
"""Seconds before the engine is asked again for a container whose cgroup was not found."""
VIRTUAL_NICS = ("lo", "veth", "docker", "br-", "virbr", "cni", "flannel", "vxlan")
"""Interfaces that are not the host's own wire: left out of the host's network rates."""


def physical(nic: str) -> bool:
    """Tell whether an interface name is a physical (or the host's own) interface."""
    return not any(nic == p or nic.startswith(p) for p in VIRTUAL_NICS)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _int(path: str) -> int | None:
    raw = _read(path)
    if raw is None:
        return None
    try:
        return int(raw.split()[0])
    except (ValueError, IndexError):
        return None


def _keyed(raw: bytes | None, key: bytes) -> int | None:
    """The value of ``key value`` lines (cpu.stat, memory.stat)."""
    if raw is None:
        return None
    for line in raw.splitlines():
        name, _, value = line.partition(b" ")
        if name == key:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def net_totals(raw: bytes | None, *, only_physical: bool = False) -> tuple[int, int] | None:
    """Sum received and sent bytes of ``/proc/.../net/dev`` (loopback always left out)."""
    if raw is None:
        return None
    rx = tx = 0
    for line in raw.splitlines()[2:]:
        name, _, rest = line.partition(b":")
        nic = name.strip().decode(errors="replace")
        if nic == "lo" or (only_physical and not physical(nic)):
            continue
        fields = rest.split()
        if len(fields) >= 9:
            rx += int(fields[0])
            tx += int(fields[8])
    return rx, tx


def io_v2(raw: bytes | None) -> tuple[int, int] | None:
    """Sum ``rbytes`` and ``wbytes`` over the devices of a v2 ``io.stat``."""
    if raw is None:
        return None
    read = written = 0
    for line in raw.splitlines():
        for item in line.split()[1:]:
            key, _, value = item.partition(b"=")
            if key == b"rbytes":
                read += int(value)
            elif key == b"wbytes":
                written += int(value)
    return read, written


def io_v1(raw: bytes | None) -> tuple[int, int] | None:
    """Sum Read and Write bytes over the devices of ``blkio.throttle.io_service_bytes``."""
    if raw is None:
        return None
    read = written = 0
    for line in raw.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] == b"Read":
            read += int(fields[2])
        elif len(fields) == 3 and fields[1] == b"Write":
            written += int(fields[2])
    return read, written


@dataclass(frozen=True)
class ContainerCounters:
    """One reading of a container's counters (cumulative ones are totals since it started)."""

    cpu_ns: int | None
    memory: int | None
    read_bytes: int | None
    write_bytes: int | None
    rx_bytes: int | None
    tx_bytes: int | None


@dataclass(frozen=True)
class HostCounters:
    """One reading of the host's counters."""

    cpu_busy: float  # seconds of all cores, cumulative
    cpu_total: float
    cpus: int
    memory_total: int
    memory_used: int  # total minus available
    disk_total: int
    disk_used: int
    rx_bytes: int
    tx_bytes: int


def host_counters(disk_path: Path, proc: str = "/proc") -> HostCounters:
    """Read the host's CPU times, memory, network totals and the data root's file system."""
    stat = _read(f"{proc}/stat") or b""
    busy = total = 0.0
    cpus = 0
    tick = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
    for line in stat.splitlines():
        if line.startswith(b"cpu "):
            values = [float(v) for v in line.split()[1:]]
            total = sum(values[:8]) / tick  # guest time is already inside user
            idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
            busy = total - idle / tick
        elif line.startswith(b"cpu"):
            cpus += 1
    meminfo = _read(f"{proc}/meminfo") or b""
    fields: dict[bytes, int] = {}
    for line in meminfo.splitlines():
        key, _, rest = line.partition(b":")
        parts = rest.split()
        if parts:
            fields[key] = int(parts[0]) * 1024
    mem_total = fields.get(b"MemTotal", 0)
    available = fields.get(b"MemAvailable", fields.get(b"MemFree", 0))
    vfs = os.statvfs(disk_path)
    rx, tx = net_totals(_read(f"{proc}/net/dev"), only_physical=True) or (0, 0)
    return HostCounters(cpu_busy=busy, cpu_total=total, cpus=max(cpus, 1),
                        memory_total=mem_total, memory_used=max(0, mem_total - available),
                        disk_total=vfs.f_blocks * vfs.f_frsize,
                        disk_used=(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize,
                        rx_bytes=rx, tx_bytes=tx)


class CgroupReader:
    """Find each container's cgroup once (cached by id) and read its counters."""

    def __init__(self, root: str = "/sys/fs/cgroup", proc: str = "/proc",
                 pid_of: Callable[[str], int | None] | None = None) -> None:
        """Read under `root`; `pid_of` (the engine's inspect) finds cgroups in odd places."""
        self.root = root
        self.proc = proc
        self.pid_of = pid_of
        self.v2 = Path(root, "cgroup.controllers").exists()
        self._paths: dict[str, str | None] = {}  # container id -> cgroup path (relative)
        self._misses: dict[str, float] = {}  # container id -> when the engine was last asked

    @property
    def version(self) -> int:
        """Return 2 on the unified hierarchy, 1 on a v1 or hybrid host."""
        return 2 if self.v2 else 1

    def _probe_dir(self, relative: str) -> str:
        return f"{self.root}/{relative}" if self.v2 else f"{self.root}/memory/{relative}"

    def locate(self, container_id: str) -> str | None:
        """Return the container's cgroup path relative to a hierarchy's root (cached)."""
        if container_id in self._paths:
            return self._paths[container_id]
        found: str | None = None
        for relative in (f"system.slice/docker-{container_id}.scope", f"docker/{container_id}"):
            if Path(self._probe_dir(relative)).is_dir():
                found = relative
                break
        missed = self._misses.get(container_id)
        if found is None and self.pid_of is not None and (
                missed is None or time.monotonic() - missed >= RETRY_LOOKUP):
            try:
                pid = self.pid_of(container_id)
            except Exception:  # gone, or the engine is down: looked up again later
                pid = None
            raw = _read(f"{self.proc}/{pid}/cgroup") if pid else None
            for line in (raw or b"").splitlines():
                number, _, rest = line.partition(b":")
                controllers, _, path = rest.partition(b":")
                if (self.v2 and number == b"0") or (not self.v2 and b"memory" in
                                                    controllers.split(b",")):
                    found = path.decode().strip("/") or None
        if found is not None:
            self._paths[container_id] = found
            self._misses.pop(container_id, None)
        elif missed is None or time.monotonic() - missed >= RETRY_LOOKUP:
            self._misses[container_id] = time.monotonic()  # no engine call every round
        return found

    def forget(self, keep: set[str]) -> None:
        """Drop the cached paths of containers not in `keep` (gone ones)."""
        for cid in [c for c in self._paths if c not in keep]:
            del self._paths[cid]
        for cid in [c for c in self._misses if c not in keep]:
            del self._misses[cid]

    def read(self, container_id: str) -> ContainerCounters | None:
        """Read one running container's counters; None when its cgroup is not found."""
        relative = self.locate(container_id)
        if relative is None:
            return None
        if self.v2:
            base = f"{self.root}/{relative}"
            usec = _keyed(_read(f"{base}/cpu.stat"), b"usage_usec")
            cpu = None if usec is None else usec * 1000
            current = _int(f"{base}/memory.current")
            inactive = _keyed(_read(f"{base}/memory.stat"), b"inactive_file") or 0
            io = io_v2(_read(f"{base}/io.stat"))
            procs = _read(f"{base}/cgroup.procs")
        else:
            cpu = _int(f"{self.root}/cpuacct/{relative}/cpuacct.usage")
            memory_dir = f"{self.root}/memory/{relative}"
            current = _int(f"{memory_dir}/memory.usage_in_bytes")
            inactive = _keyed(_read(f"{memory_dir}/memory.stat"), b"total_inactive_file") or 0
            io = io_v1(_read(f"{self.root}/blkio/{relative}/blkio.throttle.io_service_bytes"))
            procs = _read(f"{memory_dir}/cgroup.procs")
        if cpu is None and current is None:
            self._paths.pop(container_id, None)  # gone (or moved): look again next time
            return None
        net = None
        pids = (procs or b"").split()
        if pids:
            net = net_totals(_read(f"{self.proc}/{int(pids[0])}/net/dev"))
        return ContainerCounters(
            cpu_ns=cpu, memory=None if current is None else max(0, current - inactive),
            read_bytes=None if io is None else io[0], write_bytes=None if io is None else io[1],
            rx_bytes=None if net is None else net[0], tx_bytes=None if net is None else net[1])
