"""The steps of backups and restores, run as operations on the apps domain's runner.

A backup stops the instance (if it runs; through the engine's API when the adapter offers
`stop_project`), writes its definition into a staging folder, runs
one `restic backup` of `instances/<name>`, `appdata/<name>` and the staging folder (relative
to the data root, so a snapshot's tree is the same on any machine) plus its named volumes,
and starts the instance again, whatever happened (`start_project` through the API too,
unless a service waits for another's health: Compose waits for that). A volume of the local
driver on a local, rootful engine (StackHub running as root) may be read in place by restic when
`STACKHUB_BACKUP_VOLUMES=in-place` opts in, at its folder's full path
(`<engine root>/volumes/<volume>/_data`, named in the definition); by default, and for any
other volume, a helper container that mounts it read-only copies it into the staging folder
(`volumes/<key>/`, kept between backups: only files whose size or time changed are copied,
a large one rewritten in place where its blocks differ, so restic skips the rest by their
metadata). Where that helper cannot run (no sandbox image,
remote or rootless engine, StackHub in a container, a device node in the volume) or with
`STACKHUB_BACKUP_VOLUMES=tar`, the volume is exported whole as a tar (`volumes/<key>.tar`,
the layout of earlier versions, which restores as before).
An app whose definition has a `backup` section (catalog/backup_spec.py) and runs is not stopped:
its dump command runs in its service (an exec, argument list) and the paths and
volumes it skips are left out. Volume tars also stay in the staging folder between backups
and one is replaced only when its content changed. A restore fetches the snapshot into a
fresh folder, takes the instance down, moves the live folders and volumes aside, swaps the
restored ones in and starts it; any failure (or a crash, at the next start) puts the old data
back. Volumes staged as folders are written by restic straight into their volumes (through a
helper holding them) while the instance stops, and swapped by renames inside each volume.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import tarfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stackhub import faults, fsutil, labels, yamlsafe
from stackhub.adapters.compose import COMPOSE_FILE, ENV_FILE, Compose
from stackhub.adapters.engine import Engine
from stackhub.adapters.exec import EngineExec
from stackhub.adapters.restic import BackupProgress, Node, Repository, Restic, Snapshot
from stackhub.adapters.volumes import MirrorUnsupported, VolumeCopier, VolumeInfo
from stackhub.apps.models import InstanceStatus, OperationRead, PortMapping
from stackhub.apps.service import AppsService
from stackhub.catalog.models import BackupSpec
from stackhub.config import Paths
from stackhub.errors import EngineError, Invalid, NotFound, StackHubError, StorageFull
from stackhub.operations.models import OperationState
from stackhub.operations.runner import OperationKind, Outcome, Run, Runner, register
from stackhub.state.instances import InstanceRecord, Records

log = logging.getLogger(__name__)

BACKUP = register(OperationKind("backup", "the backup", None, None, None,
                                hint="run the backup again (the instance was started again)"))
RESTORE = register(OperationKind("restore", "the restore", None, None, None,
                                 hint="run the restore again (the previous data was put back)"))
HOST = "stackhub"
FORMAT = 1
DEFINITION = "definition.json"
RUNNING_STATES = {"running", "starting", "unhealthy", "partial", "restarting"}
SPACE_MARGIN = 1.1


def tags_of(record: InstanceRecord, kind: str, size: int) -> list[str]:
    """Return a snapshot's tags: instance, app, version, kind and size."""
    return ["stackhub", f"instance={record.name}", f"app={record.app_ref}",
            f"version={record.version}", f"kind={kind}", f"size={size}"]


def definition_of(record: InstanceRecord, volumes: list[VolumeInfo],
                  places: dict[str, Path] | None = None,
                  staged: set[str] | None = None) -> dict[str, Any]:
    """Return what a snapshot says about its instance (secrets included: the repo is encrypted).

    `places` maps the volumes read in place to their folder (its path in the snapshot);
    `staged` names the volumes copied as folders into the staging folder (`"copy": "folder"`,
    at `backups/stage/<name>/volumes/<key>`); any other volume is a tar there (`<key>.tar`).
    """
    data = asdict(record)
    data["ports"] = [p.model_dump() for p in record.ports]
    found, copied = places or {}, staged or set()
    return {"format": FORMAT, "instance": data, "volumes": [
        {**v.model_dump(), **({"path": str(found[v.name])} if v.name in found else {}),
         **({"copy": "folder"} if v.name in copied else {})}
        for v in volumes]}


def check_key(key: str) -> str:
    """Return a volume key usable as a file name in the staging folder (else Invalid)."""
    if not key or not key.replace("-", "").replace("_", "").replace(".", "").isalnum() or \
            key.startswith("."):
        raise Invalid(f"volume key {key!r} cannot be used as a file name")
    return key


def volume_root(source: str) -> re.Pattern[str]:
    """Match where a volume of instance `source` read in place sits in its snapshot."""
    return re.compile(r"(?:/[^/\0]+)*/volumes/" + re.escape(labels.project_name(source) + "_") +
                      r"[^/\0]+/_data")


def volume_place(raw: dict[str, Any], source: str) -> str | None:
    """Return the snapshot path of a volume read in place (None: a tar); Invalid if odd."""
    place = raw.get("path")
    if place is None:
        return None
    if not isinstance(place, str) or not volume_root(source).fullmatch(place) or \
            any(p in (".", "..") for p in place.split("/")):
        raise Invalid(f"the snapshot names {place!r} as a volume's folder, which is not a "
                      "volume of this instance")
    return place


def record_of(definition: dict[str, Any], name: str) -> InstanceRecord:
    """Rebuild an instance record from a snapshot's definition (Invalid if unreadable)."""
    try:
        data = dict(definition["instance"])
        data["ports"] = [PortMapping(**p) for p in data.get("ports", [])]
        data["name"] = name
        return InstanceRecord(**data)
    except (KeyError, TypeError, ValueError) as err:
        raise Invalid(f"the snapshot's instance definition cannot be read ({err})") from err


def check_paths(nodes: list[Node], source: str) -> int:
    """Refuse a snapshot with paths outside the instance's folders; return its bytes.

    Only `/instances/<source>`, `/appdata/<source>`, `/backups/stage/<source>` and the folders
    of the instance's volumes read in place (`.../volumes/stackhub-<source>_<key>/_data`),
    and their parents, may appear, without `..`; links are allowed only inside appdata and
    volumes (read in place or staged as folders, `/backups/stage/<source>/volumes/<key>`;
    restored as links, never followed), devices nowhere.
    """
    pattern = volume_root(source)
    staged = re.compile(re.escape(f"/backups/stage/{source}/volumes/") + r"[A-Za-z0-9_.-]+")
    volumes = [n.path for n in nodes if n.type == "dir" and (
        pattern.fullmatch(n.path) or staged.fullmatch(n.path))]
    allowed = (*volumes, f"/instances/{source}", f"/appdata/{source}",
               f"/backups/stage/{source}")
    parents = {"/instances", "/appdata", "/backups", "/backups/stage"}
    for base in volumes:
        steps = base.split("/")
        parents.update("/".join(steps[:i]) for i in range(2, len(steps)))
    total = 0
    for node in nodes:
        path = node.path
        parts = path.split("/")
        if not path.startswith("/") or any(p in ("", ".", "..") for p in parts[1:]) or \
                "\0" in path:
            raise Invalid(f"the snapshot holds a path StackHub will not restore: {path!r}")
        if path in parents:
            if node.type != "dir":
                raise Invalid(f"the snapshot holds {path!r} as a {node.type}, not a folder")
            continue
        root = next((a for a in allowed if path == a or path.startswith(a + "/")), None)
        if root is None:
            raise Invalid(f"the snapshot holds {path!r}, outside the instance's folders "
                          f"(only {', '.join(allowed)}): refusing to restore it")
        kinds = {"dir", "file", "symlink", "fifo", "socket"} if root in volumes else \
            {"dir", "file", "symlink"} if root == f"/appdata/{source}" else {"dir", "file"}
        if node.type not in kinds:
            raise Invalid(f"the snapshot holds {path!r} as a {node.type}, which StackHub does "
                          "not restore there")
        total += node.size
    return total


def _move(src: Path, dest: Path) -> None:
    """Rename `src` to `dest` (copying across file systems), never following links."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        src.rename(dest)
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
        shutil.move(str(src), str(dest))


def _drop(entry: Path) -> None:
    """Remove a file, link or folder tree (links never followed)."""
    if entry.is_dir() and not entry.is_symlink():
        fsutil.remove_tree_inside(entry, entry.parent)
    else:
        entry.unlink()


def volume_mode() -> str:
    """Return how volumes are copied: `stage` (default), `tar` or `in-place`.

    `STACKHUB_BACKUP_VOLUMES=tar` (or `helper`, its older name) exports each volume whole as
    a tar through a helper on every backup, the layout of earlier versions.
    """
    raw = os.environ.get("STACKHUB_BACKUP_VOLUMES", "").strip().lower()
    return "in-place" if in_place() else "tar" if raw in ("tar", "helper") else "stage"


def in_place() -> bool:
    """Tell whether volumes may be read and written where the engine keeps them.

    Off by default: volumes go through a helper container that mounts them read-only (any
    volume driver, later Swarm), never through the engine's own folders (issue 12's design).
    `STACKHUB_BACKUP_VOLUMES=in-place` opts in on a local rootful engine: faster (restic skips
    unchanged files, no tar), at the cost of depending on the engine's on-disk layout.
    """
    return os.environ.get("STACKHUB_BACKUP_VOLUMES", "").strip().lower() == "in-place" and \
        os.environ.get("STACKHUB_CONTAINER") != "1"


def _move_into(src: Path, dest: Path) -> None:
    """Move a folder into an empty volume folder, with its owner and mode.

    On one file system the folder replaces the empty one in one rename (atomic: a roll-back
    run twice finds it either aside or in place, never half moved); across file systems its
    entries are copied with `cp -a` (owners, modes, times and links kept, never followed).
    """
    if any(dest.iterdir()):
        raise FileExistsError(errno.EEXIST, "the volume's folder is not empty", str(dest))
    with contextlib.suppress(OSError):
        src.rename(dest)  # replaces the empty folder
        return
    info = src.lstat()
    entries = sorted(src.iterdir())
    try:
        for entry in entries:
            entry.rename(dest / entry.name)
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
        subprocess.run(["cp", "-a", "--", f"{src}/.", f"{dest}/"], check=True,
                       capture_output=True)
    os.chown(dest, info.st_uid, info.st_gid)
    dest.chmod(stat.S_IMODE(info.st_mode))
    os.utime(dest, ns=(info.st_atime_ns, info.st_mtime_ns))


def _pack(folder: Path, dest: Path) -> None:
    """Write a folder as a tar with entries under `v/`, as a volume export has them."""
    with tarfile.open(dest, "w") as out:
        out.add(str(folder), arcname="v")


def tree_size(folder: Path) -> int:
    """Sum the sizes of the files below `folder` (links not followed)."""
    return _tree_size(folder)


def _tree_size(folder: Path) -> int:
    """Sum the sizes of the files below `folder` (links not followed)."""
    total = 0
    for base, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(base) / name).lstat().st_size
    return total


def project_files(folder: Path) -> dict[str, bytes]:
    """Read an instance folder's project files (`compose.yaml`, `.env`; links and absent
    files left out)."""
    found: dict[str, bytes] = {}
    for file in (COMPOSE_FILE, ENV_FILE):
        path = folder / file
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink():
                found[file] = path.read_bytes()
    return found


def same_project(live: Path, files: Mapping[str, bytes]) -> bool:
    """Whether project files (a snapshot's, a restored folder's) are byte for byte those of
    the live instance folder `live` (which must have a compose file): its containers were
    made from them, and their risky options are the instance's own."""
    now = project_files(live)
    return COMPOSE_FILE in now and all(now.get(f) == files.get(f)
                                       for f in (COMPOSE_FILE, ENV_FILE))


def inside_names(op_id: str) -> dict[str, str]:
    """Return the hidden folders a restore uses inside a volume (fetched content, aside)."""
    tag = re.sub(r"[^A-Za-z0-9_-]", "", op_id)[:40] or "op"
    return {"new": f".stackhub-restore-{tag}-new", "aside": f".stackhub-restore-{tag}-aside"}


async def together(*steps: Awaitable[Any]) -> None:
    """Run steps side by side; at the first failure cancel the others, wait for them to end
    and raise it (also when the caller is cancelled: nothing is left running)."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


def _set_root(root: Path, meta: list[int]) -> None:
    """Give a volume's root folder an owner, mode and times (uid, gid, mode, atime, mtime)."""
    os.chown(root, meta[0], meta[1], follow_symlinks=False)
    root.chmod(meta[2])
    os.utime(root, ns=(meta[3], meta[4]), follow_symlinks=False)


def _phase(journal: Path, data: dict[str, Any], phase: str) -> None:
    data["phase"] = phase
    fsutil.write_atomic(journal, json.dumps(data))


def _swap_inside(root: Path, journal: Path, content: str) -> None:
    """Move a volume's live entries into its aside folder and the fetched ones up.

    Renames only, inside the volume (held by a helper; `root` reached through it, links
    never followed); the journal's phase says what a roll-back must undo.
    """
    data: dict[str, Any] = json.loads(journal.read_text())
    fresh, aside = root / data["new"], root / data["aside"]
    found = fresh / content
    if found.is_symlink() or not found.is_dir():
        raise Invalid(f"the snapshot lacks the content of volume {data['volume']['key']!r}")
    aside.mkdir(mode=0o700)
    _phase(journal, data, "swapping")
    for entry in sorted(root.iterdir()):
        if entry.name not in (fresh.name, aside.name):
            entry.rename(aside / entry.name)
    _phase(journal, data, "placing")
    for entry in sorted(found.iterdir()):
        entry.rename(root / entry.name)
    info = found.lstat()
    _set_root(root, [info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode), info.st_atime_ns,
                     info.st_mtime_ns])
    _phase(journal, data, "placed")
    fsutil.remove_tree_inside(fresh, root)


def _undo_inside(root: Path, journal: Path) -> None:
    """Put a volume's live entries back from its aside folder (may run twice)."""
    data: dict[str, Any] = json.loads(journal.read_text())
    fresh, aside = root / data["new"], root / data["aside"]
    if data["phase"] in ("placing", "placed"):
        for entry in list(root.iterdir()):  # every old entry is aside: these are fetched ones
            if entry.name not in (fresh.name, aside.name):
                _drop(entry)
    if data["phase"] != "fetching" and aside.is_dir() and not aside.is_symlink():
        for entry in sorted(aside.iterdir()):
            if not os.path.lexists(root / entry.name):
                entry.rename(root / entry.name)
        fsutil.remove_tree_inside(aside, root)
    elif data["phase"] == "fetching" and aside.is_dir() and not aside.is_symlink():
        with contextlib.suppress(OSError):
            aside.rmdir()  # made just before a crash, still empty
    if os.path.lexists(fresh):
        fsutil.remove_tree_inside(fresh, root)
    _set_root(root, data["root"])
    journal.unlink()


def _clear_inside(root: Path, journal: Path) -> None:
    """Remove what a finished restore left inside a volume (the old entries, aside)."""
    data: dict[str, Any] = json.loads(journal.read_text())
    for key in ("new", "aside"):
        if os.path.lexists(root / data[key]):
            fsutil.remove_tree_inside(root / data[key], root)
    journal.unlink()


@dataclass
class RestorePlan:
    """What a restore needs, checked before it is journaled."""

    repo: Repository
    snapshot: Snapshot
    source: str
    definition: dict[str, Any]
    record: InstanceRecord
    existed: bool
    size: int


@dataclass
class CopyPlan:
    """What a restore as a new instance needs, checked and planned before it is journaled."""

    repo: Repository
    snapshot: Snapshot
    source: str
    new: str
    plan: Any  # the apps domain's plan for `new` (AppsService.plan_copy)
    volumes: list[tuple[VolumeInfo, VolumeInfo]]  # (in the snapshot, to create for `new`)


@dataclass
class Snapshotting:
    """Where a backup's restic run stands: the step its progress belongs to (`finish` once
    the app started again beside it), its last progress, whether it still runs."""

    step: str = "snapshot"
    progress: float = 20.0
    reading: bool = True


class BackupFlows:
    """The steps of backup and restore, plus the after-crash half of their recovery."""

    def __init__(self, *, paths: Paths, records: Records, engine: Engine, compose: Compose,
                 apps: AppsService, runner: Runner, restic: Restic,
                 volumes: VolumeCopier, execs: EngineExec | None = None) -> None:
        """Keep the collaborators; register the after-crash hooks with the runner."""
        self.execs = execs or EngineExec()
        self.paths = paths
        self.engine = engine
        self.records = records
        self.compose = compose
        self.apps = apps
        self.runner = runner
        self.restic = restic
        self.volumes = volumes
        self._emptying: set[asyncio.Future[None]] = set()
        runner.after_crash(BACKUP.name, self.after_backup_crash)
        runner.after_crash(RESTORE.name, self.after_restore_crash)

    # -- folders ------------------------------------------------------------------------------
    @property
    def base(self) -> Path:
        """Return the folder of backups' own files (repository, staging, work)."""
        return self.paths.root / "backups"

    def stage(self, name: str) -> Path:
        """Return an instance's staging folder (definition, volume tars)."""
        return self.base / "stage" / name

    def work(self, op_id: str) -> Path:
        """Return a restore's work folder (restored tree, old data kept aside)."""
        return self.base / "work" / op_id

    def fresh(self, folder: Path) -> None:
        """Make `folder` (under backups/) empty and 0700."""
        self._fresh(folder)

    def _fresh(self, folder: Path) -> None:
        if folder.exists():
            fsutil.remove_tree_inside(folder, folder.parent)
        folder.mkdir(parents=True, mode=0o700)
        self.base.chmod(0o700)

    # -- engine helpers -----------------------------------------------------------------------
    async def _running(self, name: str) -> bool:
        return any(state in RUNNING_STATES for state in await self.apps.container_states(name))

    def _images(self, folder: Path) -> list[str]:
        compose = yamlsafe.load_mapping((folder / COMPOSE_FILE).read_bytes(),
                                        what="instance compose file")
        return [str(s["image"]) for s in (compose.get("services") or {}).values()
                if isinstance(s, dict) and s.get("image")]

    async def _take_down(self, name: str) -> None:
        """Stop the instance and remove its containers (they hold its volumes).

        Its networks stay: `compose down` would free their subnets for another installation
        sharing the engine to take before the restored project comes up.
        """
        folder = self.paths.instance_dir(name)
        if (folder / COMPOSE_FILE).is_file():
            await self._stop(name)
        for container in await asyncio.to_thread(self.engine.containers):
            if container.instance == name:
                await asyncio.to_thread(self.engine.remove_container, container.id, force=True)

    async def _stop(self, name: str) -> None:
        """Stop the instance's containers: through the engine's API when the adapter can
        (dependents first, each with its grace period, like `compose stop`), else Compose."""
        stop = getattr(self.engine, "stop_project", None)
        if stop is not None:
            await asyncio.to_thread(stop, labels.project_name(name))
        else:
            await self.compose.lifecycle("stop", labels.project_name(name),
                                         self.paths.instance_dir(name))

    async def _start(self, name: str) -> None:
        """Start the instance's containers again (`_api_start`, else Compose)."""
        if await self._api_start(name) is None:
            await self.compose.lifecycle("start", labels.project_name(name),
                                         self.paths.instance_dir(name))
        await self.apps.refresh()

    async def _api_start(self, name: str) -> int | None:
        """Start the instance's containers through the engine's API when the adapter can and
        no service waits for a condition; return how many, None when Compose must (it waits
        for those conditions)."""
        start = getattr(self.engine, "start_project", None)
        if start is None:
            return None
        started: int | None = await asyncio.to_thread(start, labels.project_name(name))
        return started

    # -- backup -------------------------------------------------------------------------------
    @staticmethod
    def hot_spec(record: InstanceRecord) -> BackupSpec | None:
        """Return the app's hot-backup section (None: stop mode), Invalid if unreadable."""
        raw = (record.definition or {}).get("backup")
        if not raw:
            return None
        try:
            return BackupSpec.model_validate(raw)
        except ValidationError as err:
            raise Invalid(f"the app's backup section cannot be read: {err}") from err

    async def _dump(self, name: str, spec: BackupSpec) -> None:
        """Run the app's dump command in its running service; EngineError if it fails."""
        found = [c for c in await asyncio.to_thread(self.engine.containers)
                 if c.instance == name and c.service == spec.service and c.state == "running"]
        if not found:
            raise EngineError(f"the hot backup needs service {spec.service!r} running to run "
                              "its dump command, and it is not; start the instance and retry "
                              "(nothing was backed up)", details={"reason": "dump_failed"})
        try:
            code, output = await self.execs.run(found[0].id, list(spec.dump),
                                                timeout=float(spec.timeout))
        except TimeoutError as err:
            raise EngineError(f"the dump command in service {spec.service!r} ran longer than "
                              f"{spec.timeout} s and was stopped; nothing was backed up (the "
                              "instance keeps running)",
                              details={"reason": "dump_failed", "timeout": spec.timeout}) \
                from err
        if code != 0:
            tail = " ".join(output.strip().splitlines()[-3:])[-400:] or "no output"
            raise EngineError(f"the dump command in service {spec.service!r} failed (exit code "
                              f"{code}): {tail}; nothing was backed up (the instance keeps "
                              "running)", details={"reason": "dump_failed", "exit_code": code})

    async def _export_volumes(self, name: str, stage: Path, volumes: list[VolumeInfo]) -> None:
        """Export each volume as a tar into the staging folder, kept from the last backup.

        A tar whose content (sha256) did not change since the last backup is left untouched,
        so restic skips it by its unchanged metadata instead of reading it again.
        """
        image = self._images(self.paths.instance_dir(name))[0]
        folder = stage / "volumes"
        for info in volumes:
            check_key(info.key)
            tar, mark = folder / f"{info.key}.tar", folder / f"{info.key}.sha256"
            fresh = folder / f"{info.key}.tar.new"
            digest = hashlib.sha256()
            await asyncio.to_thread(self.volumes.export, info.name, fresh, image,
                                    digest=digest)
            same = tar.is_file() and not tar.is_symlink() and mark.is_file() and \
                mark.read_text().strip() == digest.hexdigest()
            if same:
                fresh.unlink()
            else:
                with contextlib.suppress(FileNotFoundError):
                    mark.unlink()  # a crash between the two renames then forces a new export
                fresh.rename(tar)
                fsutil.write_atomic(mark, digest.hexdigest() + "\n", mode=0o600)

    async def _places(self, name: str, volumes: list[VolumeInfo]) -> dict[str, Path]:
        """Map the volumes restic may read in place to their folders (the others: tars).

        Only folders a restore will accept (`volume_root`) are read in place; only with
        `STACKHUB_BACKUP_VOLUMES=in-place`, never when StackHub runs in a container.
        """
        where = getattr(self.engine, "local_volume_path", None)
        if where is None or not in_place():
            return {}
        found: dict[str, Path] = {}
        for info in volumes:
            path = await asyncio.to_thread(where, info.name)
            if path is not None and volume_root(name).fullmatch(str(path)) and \
                    str(path) == os.path.normpath(path):
                found[info.name] = path
        return found

    def _keep_stage(self, name: str, volumes: list[VolumeInfo],
                    staged: list[VolumeInfo] | None = None) -> Path:
        """Prepare the staging folder, keeping the last backup's volume tars (`volumes`) and
        folder copies (`staged`) of these volumes only."""
        stage = self.stage(name)
        wanted = {f"{v.key}{ext}" for v in volumes for ext in (".tar", ".sha256")}
        folders = {check_key(v.key) for v in staged or []}
        if stage.is_symlink() or not (stage / "volumes").is_dir() or \
                (stage / "volumes").is_symlink():
            self._fresh(stage)
            (stage / "volumes").mkdir()
            return stage
        for entry in list(stage.iterdir()):
            if entry.name != "volumes":
                _drop(entry)
        for entry in list((stage / "volumes").iterdir()):
            kept = entry.is_dir() if entry.name in folders else \
                entry.is_file() if entry.name in wanted else False
            if entry.is_symlink() or not kept:
                _drop(entry)
        self.base.chmod(0o700)
        return stage

    async def _mirror_image(self, volumes: list[VolumeInfo]) -> str | None:
        """Return the image for the staging copy of volumes, or None to export tars.

        The copy needs StackHub's own helper image (the store scripts' sandbox: Debian with
        python3), already built, and a helper that may bind the staging folder (local
        rootful engine, StackHub as root outside a container); `STACKHUB_BACKUP_VOLUMES=tar`
        turns it off.
        """
        if not volumes or volume_mode() != "stage":
            return None
        from stackhub.adapters.sandbox import image_ref

        image = image_ref()
        try:
            ok = await asyncio.to_thread(self.volumes.can_mirror) and \
                await asyncio.to_thread(self.volumes.image_present, image)
        except StackHubError as err:
            log.info("volumes exported as tars: %s", err)
            return None
        return image if ok else None

    async def _start_mirror(self, stage: Path, volumes: list[VolumeInfo], image: str,
                            quiet: bool) -> str:
        """Start the helper that copies the volumes into `stage/volumes/<key>` once told to
        (before the app stops: its start is then not downtime); return its id. `quiet`:
        nothing writes the volumes while it copies (the app is stopped or not running)."""
        from stackhub.backup import mirror_tool

        with contextlib.suppress(FileNotFoundError):
            (stage / "volumes" / mirror_tool.GO).unlink()
        script = Path(mirror_tool.__file__).read_text()
        return await asyncio.to_thread(self.volumes.start_mirror,
                                       [(v.name, check_key(v.key)) for v in volumes],
                                       stage / "volumes", image, script, mapped=quiet)

    async def _stage_volumes(self, stage: Path, helper: str) -> None:
        """Let the started helper copy the volumes (changed files only) and wait for it.

        StorageFull if the data disk fills up (the partial copy is removed by the caller).
        """
        from stackhub.backup import mirror_tool

        out = await asyncio.to_thread(self.volumes.finish_mirror, helper,
                                      stage / "volumes" / mirror_tool.GO)
        log.info("staging copy of the volumes: %s", out[-200:])

    async def backup(self, run: Run, repo: Repository, *, kind: str = "manual",
                     stop: bool = True, restart: bool = True,
                     done: Callable[[str], None] | None = None) -> Outcome:
        """Back up one instance: stop it (or run its dump), copy everything, start it.

        An app whose definition has a `backup` section and that runs is not stopped: its dump
        command runs in its service first, and the paths and volumes it skips are left out.
        `restart=False` (an update's snapshot): the instance is stopped here, never dumped hot,
        and left stopped, also on failure (the caller starts what it needs).
        `done` gets the new snapshot's id once restic has written it.
        """
        name = run.op.instance
        record = self.records.get(name)
        folder = self.paths.instance_dir(name)
        if not (folder / COMPOSE_FILE).is_file():
            raise NotFound(f"instance {name!r} has no project files to back up; retry its "
                           "install first")
        spec = self.hot_spec(record)
        run.step("prepare", 2.0)
        was_running = await self._running(name)
        hot = spec if spec is not None and was_running and restart else None
        volumes = await asyncio.to_thread(self.volumes.volumes_of, labels.project_name(name))
        if hot is not None:
            volumes = [v for v in volumes if v.key not in hot.skip_volumes]
        places = await self._places(name, volumes)
        tarred = [v for v in volumes if v.name not in places]
        image = await self._mirror_image(tarred)
        staged, tarred = (tarred, []) if image is not None else ([], tarred)
        stage = self._keep_stage(name, tarred, staged)
        stopped = False
        ok = False
        helper = None
        early: asyncio.Future[None] | None = None  # the app's start while restic still reads
        phase = Snapshotting()

        def release() -> None:
            """restic no longer reads anything the app can change: start it now."""
            nonlocal early
            if early is None and stopped and restart:
                early = asyncio.ensure_future(self._start_early(run, name, phase))
        # the helper's container starts beside the stop (it copies only once told to go)
        quiet = hot is None and (stop or not was_running)  # no app writes while it copies
        starting = asyncio.ensure_future(self._start_mirror(stage, staged, image, quiet)) \
            if image is not None and staged else None
        try:
            if hot is not None:
                run.step("dump", 5.0)
                await self._dump(name, hot)
            elif stop and (was_running or not restart):
                run.step("stop", 5.0, engine=True)
                stopped = True  # a stop that fails half-way still needs the start
                await self._stop(name)
            if starting is not None:
                try:
                    helper = await starting
                except StackHubError as err:  # e.g. the image went meanwhile: a tar still works
                    log.warning("volumes exported as tars instead: %s", err.message)
                    staged, tarred = [], staged
                starting = None
            await faults.checkpoint("backup-stopped")
            if staged or tarred:
                run.step("volumes", 10.0, engine=True)
            if helper is not None:
                try:
                    await self._stage_volumes(stage, helper)
                except MirrorUnsupported as err:  # a device node: the tar export takes it
                    log.warning("volumes exported as tars instead: %s", err.message)
                    for info in staged:
                        _drop(stage / "volumes" / info.key)
                    staged, tarred = [], staged
                await faults.checkpoint("backup-staged")
            if tarred:
                await self._export_volumes(name, stage, tarred)
            fsutil.write_atomic(stage / DEFINITION, json.dumps(definition_of(
                record, volumes, places, {v.name for v in staged}), indent=2), mode=0o600)
            paths = [f"instances/{name}", f"backups/stage/{name}"]
            data = self.paths.instance_data(name)
            if data.is_dir():
                paths.insert(1, f"appdata/{name}")
            paths += [str(places[v.name]) for v in volumes if v.name in places]
            excludes = [data / p for p in hot.skip] if hot is not None else []
            size = sum(_tree_size(self.paths.root / p) for p in paths)
            # what the app can change: its bind folders and volumes read in place; the rest
            # (its project files, the staged copy of its volumes) is StackHub's alone
            live = [p for p in paths if p == f"appdata/{name}" or p.startswith("/")]
            run.step("snapshot", 20.0, engine=stopped)
            if not live:
                release()
            summary = await self.restic.backup(
                repo, paths, cwd=self.paths.root, tags=tags_of(record, kind, size), host=HOST,
                report=self._reporter(run, phase), excludes=excludes, live=live,
                released=release)
            phase.reading = False  # restic has ended: the start no longer hands back to it
            run.emit("progress", step=phase.step, progress=90.0, percent=100.0,
                     snapshot=summary.snapshot_id, bytes_added=summary.data_added,
                     mode="hot" if hot is not None else "stop")
            if done is not None:
                done(summary.snapshot_id)
            ok = True
        finally:
            if starting is not None:  # the stop failed while the helper was starting
                started = (await asyncio.gather(starting, return_exceptions=True))[0]
                helper = started if isinstance(started, str) else helper
            if helper is not None and not ok:  # it may still wait or copy: gone first
                await asyncio.to_thread(self.volumes.drop_helper, helper)
            with contextlib.suppress(StackHubError, OSError):
                for partial in (stage / "volumes").glob("*.new"):
                    partial.unlink()
                for temp in ("+partial", "+go"):
                    if (stage / "volumes" / temp).exists():
                        _drop(stage / "volumes" / temp)
                if not ok:
                    fsutil.remove_tree_inside(stage, stage.parent)
            try:
                restarted = False
                if early is not None:  # begun while restic read the rest; a failure: retried
                    restarted = (await asyncio.gather(early, return_exceptions=True))[0] is None
                if stopped and restart and not restarted:
                    run.step("start", 92.0, engine=True)
                    await self._start(name)  # raises only after the backup's own error
            finally:
                if helper is not None and ok:  # it has ended: removed after the start
                    await asyncio.to_thread(self.volumes.drop_helper, helper)
        return None

    async def _start_early(self, run: Run, name: str, phase: Snapshotting) -> None:
        """Start the stopped instance while restic finishes the snapshot from StackHub's own
        files (its project files, the staged copy of its volumes), then hand the operation's
        step back to restic (`finish`) unless it has ended meanwhile."""
        run.step("start", phase.progress, engine=True)
        await self._start(name)
        await faults.checkpoint("backup-restarted")
        if phase.reading:
            phase.step = "finish"
            run.step("finish", phase.progress)

    @staticmethod
    def _reporter(run: Run, phase: Snapshotting | None = None) -> Any:
        last = [0.0]
        phase = phase or Snapshotting()

        def report(p: BackupProgress) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.25 or p.percent >= 100.0:
                last[0] = now
                phase.progress = 20.0 + 0.7 * p.percent
                run.emit("progress", step=phase.step, progress=phase.progress,
                         percent=p.percent, bytes_done=p.bytes_done, bytes_total=p.total_bytes,
                         files_done=p.files_done, files_total=p.total_files,
                         seconds_remaining=p.seconds_remaining)

        return report

    async def after_backup_crash(self, op: OperationRead) -> None:
        """Start an instance a killed backup had stopped; drop the staging folder."""
        try:
            await self._after_backup_crash(op)
        except OSError as err:
            raise EngineError(f"cannot clean up after the backup: {err}") from err

    async def _after_backup_crash(self, op: OperationRead) -> None:
        await asyncio.to_thread(self.volumes.remove_helpers)  # first: a copy may still run
        stage = self.stage(op.instance)
        with contextlib.suppress(StackHubError, OSError):
            fsutil.remove_tree_inside(stage, stage.parent)
        record = self.records.find(op.instance)
        prior = self.runner.journal.prior_status(op.id)
        if record is None or prior not in RUNNING_STATES:
            return
        if not await self._running(op.instance):
            await self._start(op.instance)

    # -- restore ------------------------------------------------------------------------------
    def space_check(self, size: int) -> None:
        """Refuse (StorageFull) when the data disk cannot hold the restored copy."""
        self.base.mkdir(parents=True, exist_ok=True)
        stat = os.statvfs(self.base)
        free = stat.f_bavail * stat.f_frsize
        if free < size * SPACE_MARGIN:
            raise StorageFull(f"the restore needs about {size * SPACE_MARGIN / 1e6:.0f} MB free "
                              f"on the data disk but {free / 1e6:.0f} MB are free: free some "
                              "space and try again (nothing was changed)")

    async def restore(self, run: Run, plan: RestorePlan) -> Outcome:
        """Fetch the snapshot fresh, swap it in (old data kept aside until success), start.

        Volumes staged as folders are restored straight into their volumes when a helper may
        hold them (`_restore_inside`); otherwise the whole snapshot is fetched first and the
        volumes are reloaded through helpers (`_restore_copied`).
        """
        inside = await self._inside_plan(plan)
        if inside is not None:
            return await self._restore_inside(run, plan, *inside)
        return await self._restore_copied(run, plan)

    async def _inside_plan(self, plan: RestorePlan) -> tuple[list[VolumeInfo], str] | None:
        """Return the snapshot's volumes and the helper image when every volume is a staged
        folder and a helper may hold them on this machine (else None: the copied path)."""
        raws = [v for v in plan.definition.get("volumes", []) if isinstance(v, dict)]
        if not raws or len(raws) != len(plan.definition.get("volumes", [])) or \
                any(r.get("copy") != "folder" or r.get("path") is not None for r in raws):
            return None
        infos = [VolumeInfo.model_validate(r) for r in raws]
        for info in infos:
            check_key(info.key)
        if len({i.key for i in infos}) != len(infos):
            return None
        image = await self._mirror_image(infos)
        return (infos, image) if image is not None else None

    async def _halt(self, name: str) -> None:
        """Stop the instance's containers (kept: its volumes stay, `up` starts them again)."""
        if (self.paths.instance_dir(name) / COMPOSE_FILE).is_file():
            await self._stop(name)

    async def _restore_inside(self, run: Run, plan: RestorePlan, infos: list[VolumeInfo],
                              image: str) -> Outcome:
        """Restore with each volume's content written by restic straight into its volume.

        The instance stops while restic fetches its folders and, beside that run, a helper
        holds the volumes (see `VolumeCopier.start_holder`) and, once the instance is down,
        restic writes each one's content into a fresh hidden folder inside it; then the live
        entries move into a hidden `aside` folder of the same volume and the fetched ones up
        in its place (renames only); `aside/inside/<key>.json` records each volume's phase,
        so a roll-back (or the next start after a crash) puts the old entries back. The
        asides go once the instance has started.
        """
        name = run.op.instance
        work = self.work(run.op.id)
        self._fresh(work)
        restored, state = work / "restored", work / "state.json"
        journal = work / "aside" / "inside"
        journal.mkdir(parents=True)
        old = self.records.find(name) if plan.existed else None
        volumes = f"/backups/stage/{plan.source}/volumes"
        helper: str | None = None
        mount = Path()
        committed = False
        fsutil.write_atomic(state, json.dumps({
            "phase": "fetching", "existed": plan.existed,
            "record": definition_of(old, [])["instance"] if old else None}))
        try:
            run.step("fetch", 5.0, engine=True)
            run.emit("progress", step="fetch", progress=5.0, bytes_total=plan.size)
            for info in infos:
                if not await asyncio.to_thread(self.volumes.exists, info.name):
                    await asyncio.to_thread(self.volumes.create, info)
            halted = asyncio.ensure_future(
                self._halt(name) if plan.existed else asyncio.sleep(0))

            async def into_volumes() -> None:
                # restic reads share the repository: the volumes fill beside the folders,
                # once the app is down (nothing written beside a running app)
                nonlocal helper, mount
                starting = asyncio.ensure_future(asyncio.to_thread(
                    self.volumes.start_holder, [(i.name, i.key) for i in infos], image))
                try:
                    helper, mount = await asyncio.shield(starting)
                except asyncio.CancelledError:  # the folders' fetch failed meanwhile: the
                    # thread still starts the helper; keep its id, so the roll-back drops it
                    with contextlib.suppress(Exception):
                        helper, mount = await starting
                    raise
                await halted
                for info in infos:
                    await self._fetch_inside(plan, info, mount / info.key, journal, run.op.id)

            await together(halted, into_volumes(), self.restic.restore(
                plan.repo, plan.snapshot.id, restored,
                excludes=[f"{volumes}/{i.key}" for i in infos]))
            await faults.checkpoint("restore-fetched")
            run.step("swap", 55.0, engine=True)
            same = plan.existed and plan.source == name and same_project(
                self.paths.instance_dir(name), project_files(restored / "instances" / name))
            self._swap_folders(plan, work)
            for info in infos:
                _swap_inside(mount / info.key, journal / f"{info.key}.json",
                             f"{volumes.lstrip('/')}/{info.key}")
            self.records.replace(plan.record)
            await faults.checkpoint("restore-swapped")
            run.step("start", 80.0, engine=True)
            if not (same and await self._api_start(name)):
                await self.apps.up(name, adopt=not plan.existed)
            state.unlink()  # done: a crash from here on only clears the asides
            committed = True
            # the old data goes after the operation (the instance's next one waits for it)
            held, helper = helper, None
            assert held is not None
            self.runner.linger(name, self._clear_after(name, run.op.id, held, mount, infos,
                                                       journal, work))
        except BaseException:
            if not committed and state.exists():
                if helper is not None:
                    await asyncio.to_thread(self.volumes.drop_helper, helper)
                    helper = None
                await self._roll_back(name, work)
            raise
        finally:
            if helper is not None:
                await asyncio.to_thread(self.volumes.drop_helper, helper)
        await self.apps.refresh()
        return InstanceStatus.RUNNING

    async def _clear_after(self, name: str, op_id: str, helper: str, mount: Path,
                           infos: list[VolumeInfo], journal: Path, work: Path) -> None:
        """After a restore: remove the old content put aside inside each volume, the helper
        that holds them, then the work folder (a crash before the end: `sweep` at start)."""
        try:
            await faults.checkpoint("restore-clearing")
            for info in infos:
                try:
                    await asyncio.to_thread(_clear_inside, mount / info.key,
                                            journal / f"{info.key}.json")
                except (StackHubError, OSError) as err:  # restored all the same
                    log.warning("%s: the old content of volume %s stays in %s: %s", name,
                                info.name, inside_names(op_id)["aside"], err)
        finally:
            try:
                await asyncio.to_thread(self.volumes.drop_helper, helper)
            except (StackHubError, OSError) as err:
                log.warning("%s: the restore's helper container %s stays: %s", name,
                            helper, err)
            if not any(journal.glob("*.json")):  # else kept for the sweep at the next start
                self._discard(work)

    async def sweep(self) -> list[str]:
        """At start: finish the clean-up of restores that ended before a crash cut it short
        (old content aside in volumes, a holding helper); return their operation ids."""
        folder = self.base / "work"
        if not folder.is_dir():
            return []
        left: list[Path] = []
        for work in sorted(folder.iterdir()):
            if (work / "state.json").exists():
                continue  # an interrupted restore: its own recovery
            try:
                op = self.runner.journal.operation(work.name)
            except StackHubError:
                continue
            if op.state == OperationState.SUCCEEDED:
                left.append(work)
        if not left:
            return []
        await asyncio.to_thread(self.volumes.remove_helpers)  # no operation runs yet
        for work in left:
            inside = work / "aside" / "inside"
            if inside.is_dir() and any(inside.glob("*.json")):
                await self._inside_volumes(sorted(inside.glob("*.json")), _clear_inside)
            self._discard(work)
        return [work.name for work in left]

    def _discard(self, work: Path) -> None:
        """Move a finished restore's work folder (the old data aside) to `backups/trash` and
        delete it in the background, so the restore ends without waiting for the deletion;
        whatever a crash leaves there goes at the next restore."""
        trash = self.base / "trash"
        try:
            trash.mkdir(mode=0o700, exist_ok=True)
            work.rename(trash / work.name)
        except OSError:
            with contextlib.suppress(StackHubError, OSError):
                fsutil.remove_tree_inside(work, work.parent)
            return

        def empty() -> None:
            for entry in list(trash.iterdir()):
                with contextlib.suppress(StackHubError, OSError):
                    fsutil.remove_tree_inside(entry, trash)

        task = asyncio.ensure_future(asyncio.to_thread(empty))
        self._emptying.add(task)
        task.add_done_callback(self._emptying.discard)

    async def _fetch_inside(self, plan: RestorePlan, info: VolumeInfo, root: Path,
                            journal: Path, op_id: str) -> None:
        """Let restic write one volume's content into a fresh hidden folder of the volume."""
        names = inside_names(op_id)
        fresh = root / names["new"]
        info_root = root.lstat()  # before the mkdir changes its times
        fresh.mkdir(mode=0o700)  # fails on anything already there (never reused)
        fsutil.write_atomic(journal / f"{info.key}.json", json.dumps({
            "volume": info.model_dump(), **names, "phase": "fetching",
            "root": [info_root.st_uid, info_root.st_gid, stat.S_IMODE(info_root.st_mode),
                     info_root.st_atime_ns, info_root.st_mtime_ns]}))
        path = f"/backups/stage/{plan.source}/volumes/{info.key}"
        await self.restic.extract(plan.repo, plan.snapshot.id, [path], fresh,
                                  timeout=6 * 3600.0)

    def _swap_folders(self, plan: RestorePlan, work: Path) -> None:
        """Move the live instance and appdata folders aside and the restored ones in."""
        restored, aside = work / "restored", work / "aside"
        aside.mkdir(exist_ok=True)
        for live, fresh, key in self._pairs(plan.record.name, plan.source, restored):
            if live.exists() or live.is_symlink():
                _move(live, aside / key)
            if fresh.is_dir() and not fresh.is_symlink():
                _move(fresh, live)

    async def _restore_copied(self, run: Run, plan: RestorePlan) -> Outcome:
        """Fetch the whole snapshot, take the instance down, swap (volumes reloaded), start."""
        name = run.op.instance
        work = self.work(run.op.id)
        self._fresh(work)
        restored = work / "restored"
        run.step("fetch", 5.0)
        run.emit("progress", step="fetch", progress=5.0, bytes_total=plan.size)
        await self.restic.restore(plan.repo, plan.snapshot.id, restored)
        await faults.checkpoint("restore-fetched")
        state = work / "state.json"
        old = self.records.find(name) if plan.existed else None
        try:
            run.step("stop", 45.0, engine=True)
            if plan.existed:
                await self._take_down(name)
            fsutil.write_atomic(state, json.dumps({
                "phase": "swapping", "existed": plan.existed,
                "record": definition_of(old, [])["instance"] if old else None}))
            run.step("swap", 55.0, engine=True)
            await self._swap(plan, work)
            self.records.replace(plan.record)
            await faults.checkpoint("restore-swapped")
            run.step("start", 80.0, engine=True)
            await self.apps.up(name, adopt=not plan.existed)
        except BaseException:
            if state.exists():
                await self._roll_back(name, work)
            raise
        await self.apps.refresh()
        with contextlib.suppress(StackHubError, OSError):
            fsutil.remove_tree_inside(work, work.parent)
        return InstanceStatus.RUNNING

    def undo_restore(self, plan: RestorePlan) -> Any:
        """Return the undo of a restore: a record the restore created goes again."""
        def undo(run: Run, err: StackHubError) -> bool:
            work = self.work(run.op.id)
            if (work / "state.json").exists():
                return False  # the roll-back did not finish: keep what is aside (next start)
            with contextlib.suppress(StackHubError, OSError):
                fsutil.remove_tree_inside(work, work.parent)
            if plan.existed:
                return False
            self.records.delete(run.op.instance)
            return True

        return undo

    def _pairs(self, name: str, source: str, restored: Path) -> list[tuple[Path, Path, str]]:
        return [(self.paths.instance_dir(name), restored / "instances" / source, "instance"),
                (self.paths.instance_data(name), restored / "appdata" / source, "appdata")]

    async def _swap(self, plan: RestorePlan, work: Path) -> None:
        """Move live folders and volumes aside, then the restored ones in."""
        name = plan.record.name
        restored, aside = work / "restored", work / "aside"
        aside.mkdir(exist_ok=True)
        for live, fresh, key in self._pairs(name, plan.source, restored):
            if live.exists() or live.is_symlink():
                _move(live, aside / key)
            if fresh.is_dir() and not fresh.is_symlink():
                _move(fresh, live)
        raws = [v for v in plan.definition.get("volumes", []) if isinstance(v, dict)]
        if not raws:
            return
        image = await self._image_for(name)
        (aside / "volumes").mkdir(exist_ok=True)
        for raw in raws:
            info = VolumeInfo.model_validate(raw)
            content = self._content(restored, plan.source, info, raw)
            if await asyncio.to_thread(self.volumes.exists, info.name):
                await self._put_aside(info, aside / "volumes", image)
                await asyncio.to_thread(self.volumes.remove, info.name)
            await asyncio.to_thread(self.volumes.create, info)
            await self._load(info.name, content, image)

    async def _local(self, volume: str) -> Path | None:
        """Return a volume's folder when StackHub may use it in place (else None)."""
        where = getattr(self.engine, "local_volume_path", None) if in_place() else None
        return await asyncio.to_thread(where, volume) if where is not None else None

    async def _put_aside(self, info: VolumeInfo, saved: Path, image: str) -> None:
        """Keep a live volume's content aside for a roll-back: its folder renamed (one atomic
        rename, when local and on the data disk) or a tar exported through a helper.

        `<key>.json` is written first: a roll-back finding it without `<key>` or `<key>.tar`
        knows nothing was moved and leaves the volume as it is.
        """
        live = await self._local(info.name)
        meta = saved / f"{info.key}.json"
        if live is not None and live.stat().st_dev == saved.stat().st_dev:
            fsutil.write_atomic(meta, info.model_dump_json())
            try:
                live.rename(saved / info.key)
                return
            except OSError as err:  # another mount of the same disk: nothing was moved
                if err.errno != errno.EXDEV:
                    raise
                meta.unlink()
        await asyncio.to_thread(self.volumes.export, info.name, saved / f"{info.key}.tar", image)
        fsutil.write_atomic(meta, info.model_dump_json())

    @staticmethod
    def _content(restored: Path, source: str, info: VolumeInfo, raw: dict[str, Any]) -> Path:
        """Return a volume's content in a restored snapshot: a folder (read in place, or a
        staging copy: `"copy": "folder"`) or a tar (earlier versions, `tar` mode)."""
        place = volume_place(raw, source)
        staged = restored / "backups" / "stage" / source / "volumes"
        folder = place is not None or raw.get("copy") == "folder"
        found = restored / place.lstrip("/") if place is not None else \
            staged / check_key(info.key) if folder else staged / f"{check_key(info.key)}.tar"
        if found.is_symlink() or not (found.is_dir() if folder else found.is_file()):
            raise Invalid(f"the snapshot lacks the content of volume {info.key!r}")
        return found

    async def _load(self, volume: str, content: Path, image: str) -> None:
        """Fill a fresh volume from a restored folder or tar.

        A folder is moved into the volume when the engine keeps it here (local driver, local
        rootful engine), otherwise packed as a tar streamed into a helper container.
        """
        if content.is_dir():
            dest = await self._local(volume)
            if dest is not None:
                await asyncio.to_thread(_move_into, content, dest)
            else:
                await asyncio.to_thread(self.volumes.load_folder, volume, content, image)
            return
        await asyncio.to_thread(self.volumes.load, volume, content, image)

    async def _image_for(self, name: str) -> str:
        """Return an image for helper containers: the instance's first, pulled if missing."""
        images = self._images(self.paths.instance_dir(name))
        if not images:
            raise EngineError("the instance's compose file names no image for the helper")
        if not await asyncio.to_thread(self.engine.image_present, images[0]):
            await asyncio.to_thread(self.engine.pull, images[0], lambda _p: None)
        return images[0]

    async def _roll_back(self, name: str, work: Path) -> None:
        """Put the data kept aside back (after a failure, or a crash mid-swap), and start it."""
        state = work / "state.json"
        phase: dict[str, Any] = json.loads(state.read_text())
        folder = self.paths.instance_dir(name)
        with contextlib.suppress(StackHubError):
            await self._take_down(name)
        aside = work / "aside"
        for live, _fresh, key in self._pairs(name, "-", work / "restored"):
            kept = aside / key  # still aside: not moved back yet (this may run twice)
            if kept.exists() or kept.is_symlink():
                if live.exists() or live.is_symlink():
                    _move(live, work / "failed" / key)
                _move(kept, live)
            elif not phase.get("existed") and (live.exists() or live.is_symlink()):
                _move(live, work / "failed" / key)  # nothing was there before the restore
        inside = aside / "inside"
        journals = sorted(inside.glob("*.json")) if inside.is_dir() else []
        if journals:
            await self._inside_volumes(journals, _undo_inside)
        saved = aside / "volumes"
        for meta in sorted(saved.glob("*.json")) if saved.is_dir() else []:
            info = VolumeInfo.model_validate_json(meta.read_text())
            tar, kept = meta.with_suffix(".tar"), meta.with_suffix("")
            content = tar if tar.is_file() and not tar.is_symlink() else \
                kept if kept.is_dir() and not kept.is_symlink() else None
            if content is None:
                continue  # nothing was moved aside, or the folder is back in its volume
            if await asyncio.to_thread(self.volumes.exists, info.name):
                await asyncio.to_thread(self.volumes.remove, info.name)
            await asyncio.to_thread(self.volumes.create, info)
            await self._load(info.name, content, await self._image_for(name))
        if phase.get("record"):
            self.records.replace(record_of({"instance": phase["record"]}, name))
        if phase.get("existed") and (folder / COMPOSE_FILE).is_file():
            await self.compose.up(labels.project_name(name), folder)
        state.unlink()

    async def _inside_volumes(self, journals: list[Path],
                              action: Callable[[Path, Path], None]) -> None:
        """Run `action(volume root, journal)` for each journaled volume, through a helper."""
        from stackhub.adapters.sandbox import image_ref

        infos: list[VolumeInfo] = []
        for journal in journals:
            info = VolumeInfo.model_validate(json.loads(journal.read_text())["volume"])
            check_key(info.key)
            if await asyncio.to_thread(self.volumes.exists, info.name):
                infos.append(info)
            else:
                journal.unlink()  # the volume is gone: nothing of it to put back
        if not infos:
            return
        helper, mount = await asyncio.to_thread(
            self.volumes.start_holder, [(i.name, i.key) for i in infos], image_ref())
        try:
            for info in infos:
                await asyncio.to_thread(action, mount / info.key,
                                        journals[0].parent / f"{info.key}.json")
        finally:
            await asyncio.to_thread(self.volumes.drop_helper, helper)

    # -- restore as a new instance ------------------------------------------------------------
    @staticmethod
    def copied_volumes(definition: dict[str, Any], source: str,
                       new: str) -> list[tuple[VolumeInfo, VolumeInfo]]:
        """Pair each volume of a snapshot with the volume a copy named `new` gets."""
        old_project, new_project = labels.project_name(source), labels.project_name(new)
        pairs: list[tuple[VolumeInfo, VolumeInfo]] = []
        for raw in definition.get("volumes", []):
            info = VolumeInfo.model_validate(raw)
            if info.name != f"{old_project}_{info.key}":
                raise Invalid(f"volume {info.name} is not named after its project; StackHub "
                              "cannot copy it for a new instance")
            tags = {k: (new_project if v == old_project else new if v == source else v)
                    for k, v in info.labels.items()}
            pairs.append((info, info.model_copy(update={"name": f"{new_project}_{info.key}",
                                                        "labels": tags})))
        return pairs

    async def restore_as(self, run: Run, copy: CopyPlan) -> Outcome:
        """Fetch the snapshot, place its data under the new name, write the new project, start."""
        new = copy.new
        work = self.work(run.op.id)
        self._fresh(work)
        restored = work / "restored"
        run.step("fetch", 5.0)
        await self.restic.restore(copy.repo, copy.snapshot.id, restored)
        await faults.checkpoint("restore-fetched")
        try:
            run.step("place", 50.0, engine=True)
            data = restored / "appdata" / copy.source
            if data.is_dir() and not data.is_symlink():
                _move(data, self.paths.instance_data(new))
            else:
                self.paths.instance_data(new).mkdir(parents=True)
            self.apps.write_project(copy.plan)
            if copy.volumes:
                image = await self._image_for(new)
                raws = self._restored_volumes(restored, copy.source)
                for info, fresh in copy.volumes:
                    content = self._content(restored, copy.source, info,
                                            raws.get(info.name, {}))
                    await asyncio.to_thread(self.volumes.create, fresh)
                    await self._load(fresh.name, content, image)
            await faults.checkpoint("restore-as-placed")
            run.step("start", 80.0, engine=True)
            await self.apps.up(new)
        except BaseException:
            with contextlib.suppress(StackHubError, OSError):
                await self._drop_copy(new, [fresh.name for _info, fresh in copy.volumes])
            raise
        finally:
            with contextlib.suppress(StackHubError, OSError):
                fsutil.remove_tree_inside(work, work.parent)
        self.records.set_status(new, InstanceStatus.RUNNING.value)
        await self.apps.refresh()
        return None

    @staticmethod
    def _restored_volumes(restored: Path, source: str) -> dict[str, dict[str, Any]]:
        """Map volume names to their entries in a restored snapshot's definition."""
        path = restored / "backups" / "stage" / source / DEFINITION
        try:
            raw = json.loads(path.read_bytes()) if path.is_file() and \
                not path.is_symlink() else {}
        except ValueError as err:
            raise Invalid(f"the snapshot's definition is not JSON ({err})") from err
        volumes = raw.get("volumes") if isinstance(raw, dict) else None
        return {str(v.get("name")): v for v in volumes or [] if isinstance(v, dict)}

    async def _drop_copy(self, new: str, volumes: list[str]) -> None:
        """Remove what a restore as `new` made: containers, networks, volumes, folders."""
        folder = self.paths.instance_dir(new)
        if (folder / COMPOSE_FILE).is_file():
            with contextlib.suppress(StackHubError):
                await self.compose.down(labels.project_name(new), folder, volumes=False)
        for container in await asyncio.to_thread(self.engine.containers):
            if container.instance == new:
                await asyncio.to_thread(self.engine.remove_container, container.id, force=True)
        for volume in volumes:
            if await asyncio.to_thread(self.volumes.exists, volume):
                await asyncio.to_thread(self.volumes.remove, volume)
        for path in (folder, self.paths.instance_data(new)):
            if path.exists() or path.is_symlink():
                fsutil.remove_tree_inside(path, path.parent)

    def undo_restore_as(self, copy: CopyPlan) -> Any:
        """Return the undo of a restore as new: the new instance's record goes (data is gone)."""
        def undo(_run: Run, _err: StackHubError) -> bool:
            self.records.delete(copy.new)
            return True

        return undo

    async def _after_copy_crash(self, op: OperationRead) -> None:
        """A restore as a new instance killed midway: remove the half-made copy entirely."""
        new = str(op.target)
        record = self.records.find(new)
        volumes = [] if record is None else [v.name for v in await asyncio.to_thread(
            self.volumes.volumes_of, labels.project_name(new))]
        await self._drop_copy(new, volumes)
        if record is not None:
            self.records.delete(new)
        work = self.work(op.id)
        if work.is_dir():
            fsutil.remove_tree_inside(work, work.parent)

    async def after_restore_crash(self, op: OperationRead) -> None:
        """Undo a restore a crash interrupted mid-swap, then start the instance."""
        try:
            await self._after_restore_crash(op)
        except OSError as err:
            raise EngineError(f"cannot put the data aside back after the restore: {err}; it "
                              f"is kept in {self.work(op.id)}") from err

    async def _after_restore_crash(self, op: OperationRead) -> None:
        await asyncio.to_thread(self.volumes.remove_helpers)
        if op.target not in (None, op.instance):
            await self._after_copy_crash(op)
            return
        work = self.work(op.id)
        state = work / "state.json"
        record = self.records.find(op.instance)
        prior = self.runner.journal.prior_status(op.id)
        inside = work / "aside" / "inside"
        if state.is_file():
            await self._roll_back(op.instance, work)
        else:
            if inside.is_dir() and any(inside.glob("*.json")):  # restored: clear the asides
                await self._inside_volumes(sorted(inside.glob("*.json")), _clear_inside)
            if record is not None and prior in RUNNING_STATES and \
                    not await self._running(op.instance):
                await self._start(op.instance)
        if prior is None and record is not None and not (
                self.paths.instance_dir(op.instance) / COMPOSE_FILE).is_file():
            self.records.delete(op.instance)  # a restore of a gone instance that never swapped
        if work.is_dir():
            fsutil.remove_tree_inside(work, work.parent)
