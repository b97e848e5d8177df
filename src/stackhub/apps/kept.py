"""Data kept after an instance was removed without purging: list it, reuse it, purge it.

A removal that keeps data leaves `appdata/<name>/` and the project's named volumes; the
`kept_data` table remembers which app and version they belonged to and when. Installing again
under the same name reuses them (the plan says so); purging deletes them for good.
"""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

from stackhub import fsutil, labels
from stackhub.adapters.engine import InventoryEngine
from stackhub.apps.models import KeptDataRead, check_name
from stackhub.config import Paths
from stackhub.errors import Conflict, NotFound
from stackhub.state.db import Database, now
from stackhub.state.instances import Records

MAX_WALK = 200_000  # entries counted for a folder's size before it is reported as a floor


def folder_size(root: Path) -> tuple[int, bool]:
    """Return the bytes under `root` (links not followed) and whether the count is complete."""
    total, seen = 0, 0
    stack = [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > MAX_WALK:
                return total, False
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                stack.append(Path(entry.path))
            elif stat.S_ISREG(info.st_mode):
                total += info.st_blocks * 512 if info.st_blocks else info.st_size
    return total, True


class KeptData:
    """The kept-data list: folders and volumes of removed instances, by instance name."""

    def __init__(self, db: Database, paths: Paths, records: Records,
                 engine: InventoryEngine, install: str) -> None:
        """Keep the collaborators; `install` is this data root's id (only its volumes count)."""
        self.db = db
        self.paths = paths
        self.records = records
        self.engine = engine
        self.install = install

    def remember(self, name: str, app_ref: str, version: str) -> None:
        """Note that `name`'s data was kept when it was removed (called by the remove flow)."""
        with self.db.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO kept_data (name, app_ref, version, removed_at) "
                         "VALUES (?, ?, ?, ?)", (name, app_ref, version, now()))

    def _volumes(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for volume in self.engine.all_volumes():
            if volume.labels.get(labels.MANAGED) != "true" or \
                    volume.labels.get(labels.INSTALL) != self.install:
                continue  # another installation's, or not StackHub's: never listed or purged
            instance = labels.instance_of_project(volume.labels.get(labels.COMPOSE_PROJECT, ""))
            if instance:
                found.setdefault(instance, []).append(volume.name)
        return found

    def list(self) -> list[KeptDataRead]:
        """Return the kept data of every name without an instance, newest first."""
        if not self.paths.appdata.is_dir():
            return []
        rows = {r["name"]: r for r in self.db.query("SELECT * FROM kept_data")}
        volumes = self._volumes()
        installed = {r.name for r in self.records.all()}
        found: list[KeptDataRead] = []
        names = {p.name for p in self.paths.appdata.iterdir()
                 if p.is_dir() and not p.is_symlink()} | set(volumes)
        for name in sorted(names - installed):
            folder = self.paths.instance_data(name)
            size, complete = folder_size(folder) if folder.is_dir() else (0, True)
            row = rows.get(name)
            modified = (datetime.fromtimestamp(folder.stat().st_mtime, UTC).isoformat()
                        if folder.is_dir() else None)
            found.append(KeptDataRead(
                name=name, app=row["app_ref"] if row else None,
                version=row["version"] if row else None,
                removed_at=row["removed_at"] if row else None, modified_at=modified,
                size=size, size_complete=complete, folder=folder.is_dir(),
                volumes=sorted(volumes.get(name, []))))
        found.sort(key=lambda k: k.removed_at or k.modified_at or "", reverse=True)
        return found

    def get(self, name: str) -> KeptDataRead:
        """Return one name's kept data, or NotFound."""
        check_name(name)
        for kept in self.list():
            if kept.name == name:
                return kept
        raise NotFound(f"no kept data named {name!r}")

    def purge(self, name: str) -> KeptDataRead:
        """Delete a removed instance's data folder and volumes for good."""
        check_name(name)
        if self.records.find(name) is not None:
            raise Conflict(f"{name!r} is an installed instance: remove it with its data "
                           "(stackhub app remove --purge) instead")
        kept = self.get(name)
        if kept.folder:
            fsutil.remove_tree_inside(self.paths.instance_data(name), self.paths.appdata)
        for volume in kept.volumes:
            self.engine.remove_volume(volume)
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM kept_data WHERE name = ?", (name,))
        return kept
