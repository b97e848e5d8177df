"""Recognise a store's format and read every app in it, one broken app at a time.

Layouts (the first match, shallowest directory first, up to three levels below the given root,
so archives with a top folder such as ``CasaOS-AppStore-main/`` work):

- StackHub: ``apps/<id>/stackhub-app.yaml`` (or ``<id>/stackhub-app.yaml``)
- Runtipi:  ``apps/<id>/config.json``
- CasaOS:   ``Apps/<Name>/docker-compose.yml``
- Umbrel:   ``<id>/umbrel-app.yml`` (and optionally ``umbrel-app-store.yml``)

Symbolic links are never followed; at most 2000 apps are read per store.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stackhub.catalog.manifest import MANIFEST_FILE
from stackhub.catalog.models import AppDefinition, AppFormat
from stackhub.catalog.readers import casaos, common, runtipi, umbrel
from stackhub.catalog.readers import stackhub as native
from stackhub.errors import StackHubError, StoreError

MAX_APPS = 2000
MAX_DEPTH = 3
MAX_DIRS_SCANNED = 400
MAX_ENTRIES_CHECKED = 5000

Installed = Callable[[str], bool]


def _dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _children(path: Path) -> list[Path]:
    """List a directory's real subdirectories (no links, no hidden ones), sorted, bounded."""
    out: list[Path] = []
    try:
        entries = sorted(path.iterdir())
    except OSError:
        return out
    for entry in entries[:MAX_ENTRIES_CHECKED]:
        if not entry.name.startswith(".") and _dir(entry):
            out.append(entry)
    return out


def _any_child_has(path: Path, marker: str) -> bool:
    return any(common.regular_file(child, marker) for child in _children(path))


def _format_here(root: Path) -> tuple[Path, AppFormat] | None:
    """Recognise a store whose root is exactly `root`; return where its apps live."""
    apps = root / "apps"
    if _dir(apps):
        if _any_child_has(apps, MANIFEST_FILE):
            return root, AppFormat.STACKHUB
        if _any_child_has(apps, runtipi.CONFIG_FILE):
            return root, AppFormat.RUNTIPI
    if _dir(root / "Apps"):
        return root, AppFormat.CASAOS
    if common.regular_file(root, umbrel.STORE_FILE) or _any_child_has(root, umbrel.MANIFEST_FILE):
        return root, AppFormat.UMBREL
    if _any_child_has(root, MANIFEST_FILE):
        return root, AppFormat.STACKHUB
    return None


def locate_store_root(store_root: Path) -> tuple[Path, AppFormat]:
    """Find the directory holding the store (up to three levels down) and its format."""
    if not _dir(store_root):
        raise StoreError(f"{store_root} is not a directory")
    queue: deque[tuple[Path, int]] = deque([(store_root, 0)])
    scanned = 0
    while queue and scanned < MAX_DIRS_SCANNED:
        path, depth = queue.popleft()
        scanned += 1
        found = _format_here(path)
        if found is not None:
            return found
        if depth < MAX_DEPTH:
            queue.extend((child, depth + 1) for child in _children(path))
    raise StoreError("no app store found: expected apps/<id>/stackhub-app.yaml, "
                     "apps/<id>/config.json (Runtipi), Apps/<Name>/docker-compose.yml (CasaOS) "
                     "or <id>/umbrel-app.yml (Umbrel)")


def detect_format(store_root: Path) -> AppFormat:
    """Return the format of the store under `store_root`."""
    return locate_store_root(store_root)[1]


@dataclass
class StoreEntry:
    """One app folder of a store: the app read from it, or why it could not be read."""

    folder: Path
    app: AppDefinition | None = None
    error: str | None = None


def _app_folders(root: Path, fmt: AppFormat) -> list[Path]:
    """List candidate app folders (those with the format's main file), links included."""
    if fmt is AppFormat.CASAOS:
        base = root / "Apps"
        return [p for p in sorted(base.iterdir()) if not p.name.startswith(".")
                and (p.is_dir() or p.is_symlink())]
    marker = {AppFormat.RUNTIPI: runtipi.CONFIG_FILE, AppFormat.UMBREL: umbrel.MANIFEST_FILE,
              AppFormat.STACKHUB: MANIFEST_FILE}[fmt]
    base = root / "apps" if fmt is not AppFormat.UMBREL and _dir(root / "apps") else root
    return [p for p in sorted(base.iterdir()) if not p.name.startswith(".")
            and (p.is_symlink() or (p.is_dir() and (p / marker).exists()))]


def _reader(fmt: AppFormat, store: str, arch: str,
            installed: Installed) -> Callable[[Path], AppDefinition]:
    if fmt is AppFormat.CASAOS:
        return lambda folder: casaos.read_app_dir(folder, store=store, arch=arch)
    if fmt is AppFormat.RUNTIPI:
        return lambda folder: runtipi.read_app_dir(folder, store=store, arch=arch)
    if fmt is AppFormat.UMBREL:
        return lambda folder: umbrel.read_app_dir(folder, store=store, installed=installed)
    return lambda folder: native.read_app_dir(folder, store=store)


def scan_store(store_root: Path, store: str, *, arch: str,
               installed: Installed = lambda _: False) -> tuple[AppFormat, list[StoreEntry]]:
    """Read every app folder of a store; failures are kept per folder, never raised."""
    root, fmt = locate_store_root(store_root)
    read = _reader(fmt, store, arch, installed)
    folders = _app_folders(root, fmt)
    entries: list[StoreEntry] = []
    prefix: str | None = None
    if fmt is AppFormat.UMBREL:
        try:
            meta = umbrel.read_store_meta(root)
        except StackHubError as err:
            entries.append(StoreEntry(root / umbrel.STORE_FILE, error=err.message))
            meta = None
        prefix = meta["id"] if meta else None
    seen: set[str] = set()
    for folder in folders[:MAX_APPS]:
        entry = StoreEntry(folder)
        entries.append(entry)
        if folder.is_symlink():
            entry.error = "the app folder is a symbolic link; skipped"
            continue
        try:
            app = read(folder)
        except StackHubError as err:
            entry.error = err.message
            continue
        except Exception as err:  # one broken app must never break the store
            entry.error = f"cannot read the app ({type(err).__name__}: {err})"
            continue
        if app.id in seen:
            entry.error = f"another folder already defines app {app.id!r}"
            continue
        seen.add(app.id)
        if prefix and not app.id.startswith(f"{prefix}-"):
            app.notes.append(f"the app id does not start with the store id {prefix!r}")
        entry.app = app
    if len(folders) > MAX_APPS:
        entries.append(StoreEntry(root, error=f"the store has {len(folders)} apps; only the "
                                              f"first {MAX_APPS} were read"))
    check_dependencies([e.app for e in entries if e.app is not None], installed)
    return fmt, entries


CYCLE = "its dependencies form a cycle: "


def check_dependencies(apps: list[AppDefinition], installed: Installed) -> None:
    """Mark apps whose dependencies (transitively) the store lacks or cannot install.

    An installed dependency is fine whatever the store says; a cycle is refused.
    """
    by_id = {app.id: app for app in apps}
    verdict: dict[str, str | None] = {}  # app id -> why it cannot be installed, or None

    def blocked(app_id: str, path: tuple[str, ...]) -> str | None:
        if app_id in verdict:
            return verdict[app_id]
        if app_id in path:
            return CYCLE + " -> ".join((*path, app_id))
        app = by_id[app_id]
        why = "it has problems" if app.problems else None
        for dep in app.dependencies:
            if why is not None:
                break
            if installed(dep):
                continue
            if dep not in by_id:
                why = f"needs the app {dep!r}, which this store does not offer"
            elif (inner := blocked(dep, (*path, app_id))) is not None:
                why = inner if inner.startswith(CYCLE) else (
                    f"needs the app {dep!r}, which cannot be installed")
        verdict[app_id] = why
        return why

    for app in apps:
        if not app.problems and app.dependencies:
            why = blocked(app.id, ())
            if why is not None:
                app.problems.append(why)


def read_store(store_root: Path, store: str, *, arch: str,
               installed: Installed = lambda _: False,
               ) -> tuple[list[AppDefinition], dict[str, str]]:
    """Read a store of any format: its apps, and errors by app folder name ('*' for the store)."""
    root, _ = locate_store_root(store_root)
    _, entries = scan_store(store_root, store, arch=arch, installed=installed)
    apps = [e.app for e in entries if e.app is not None]
    errors: dict[str, str] = {}
    for entry in entries:
        if entry.error is not None:
            key = "*" if entry.folder == root else entry.folder.name
            errors[key] = entry.error
    return apps, errors
