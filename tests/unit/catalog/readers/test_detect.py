"""Store format detection and whole-store reads: one broken app never breaks a store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stackhub.catalog.models import AppFormat
from stackhub.catalog.readers import detect
from stackhub.errors import StoreError

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
STORES = FIXTURES / "stores"

CASAOS_OK = {"armonly", "builder", "escape", "hostnet", "mediabox", "needsvars", "nometa",
             "oldstyle", "sidecar", "webdash"}
CASAOS_ERRORS = {"AliasBomb", "BadName", "BadYaml", "DeepNest", "EmptyFolder", "NoServices"}
UMBREL_OK = {"fixture-addon", "fixture-direct", "fixture-hooked", "fixture-lostproxy",
             "fixture-node", "fixture-notes", "fixture-off", "fixture-scripted", "fixture-tor",
             "fixture-wallet"}
UMBREL_ERRORS = {"fixture-badyaml", "fixture-bomb", "fixture-nocompose", "fixture-noid"}
RUNTIPI_OK = {"armonly", "dynamic", "formfields", "labelonly", "legacy", "nogui", "unavailable",
              "unknownfield"}
RUNTIPI_ERRORS = {"badcompose", "badjson", "bomb", "deepjson", "nocompose", "noid"}


def stackhub_store(root: Path, *, flat: bool = False) -> Path:
    """Copy the StackHub-format fixture apps into a store layout."""
    target = root if flat else root / "apps"
    shutil.copytree(FIXTURES / "apps", target)
    return root


# -- detection -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("store", "fmt"), [
    ("casaos", AppFormat.CASAOS), ("umbrel", AppFormat.UMBREL), ("runtipi", AppFormat.RUNTIPI),
])
def test_detect_peer_formats(store: str, fmt: AppFormat) -> None:
    assert detect.detect_format(STORES / store) is fmt


def test_casaos_store_inside_an_archive_folder_is_located() -> None:
    root, fmt = detect.locate_store_root(STORES / "casaos")
    assert fmt is AppFormat.CASAOS
    assert root == STORES / "casaos" / "CasaOS-AppStore-main"


def test_detect_stackhub_layouts(tmp_path: Path) -> None:
    nested = stackhub_store(tmp_path / "nested")
    flat = stackhub_store(tmp_path / "flat", flat=True)
    assert detect.locate_store_root(nested) == (nested, AppFormat.STACKHUB)
    assert detect.locate_store_root(flat) == (flat, AppFormat.STACKHUB)


def test_search_goes_three_levels_down_and_no_further(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c"
    (deep / "Apps").mkdir(parents=True)
    assert detect.locate_store_root(tmp_path) == (deep, AppFormat.CASAOS)
    deeper = tmp_path / "x"
    (deeper / "a" / "b" / "c" / "d" / "Apps").mkdir(parents=True)
    with pytest.raises(StoreError, match="no app store found"):
        detect.locate_store_root(deeper)


def test_symlinked_store_folders_are_not_followed(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(STORES / "casaos" / "CasaOS-AppStore-main")
    with pytest.raises(StoreError):
        detect.locate_store_root(tmp_path)


def test_unknown_layouts(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no app store found"):
        detect.detect_format(tmp_path)
    with pytest.raises(StoreError, match="not a directory"):
        detect.detect_format(tmp_path / "missing")


def test_umbrel_store_file_alone_is_enough(tmp_path: Path) -> None:
    (tmp_path / "umbrel-app-store.yml").write_text("id: mine\nname: Mine\n")
    assert detect.detect_format(tmp_path) is AppFormat.UMBREL


# -- whole stores ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("store", "ok", "errors"), [
    ("casaos", CASAOS_OK, CASAOS_ERRORS),
    ("umbrel", UMBREL_OK, UMBREL_ERRORS),
    ("runtipi", RUNTIPI_OK, RUNTIPI_ERRORS),
])
def test_read_store_keeps_going_past_broken_apps(store: str, ok: set[str],
                                                 errors: set[str]) -> None:
    apps, failed = detect.read_store(STORES / store, "s1", arch="amd64")

    assert {a.id for a in apps} == ok
    assert set(failed) == errors
    assert all(failed.values())
    assert all(a.store == "s1" for a in apps)


def test_read_stackhub_store(tmp_path: Path) -> None:
    root = stackhub_store(tmp_path / "store")
    apps, errors = detect.read_store(root, "official", arch="amd64")
    assert {a.id for a in apps} == {"web-app", "two-tier", "slow-health"}
    assert errors == {}
    assert all(a.format is AppFormat.STACKHUB for a in apps)


def test_installed_reaches_the_umbrel_reader() -> None:
    apps, _ = detect.read_store(STORES / "umbrel", "u", arch="amd64",
                                installed=lambda app_id: app_id == "fixture-notes")
    addon = next(a for a in apps if a.id == "fixture-addon")
    assert addon.installable


def test_scan_store_reports_folders() -> None:
    fmt, entries = detect.scan_store(STORES / "runtipi", "t", arch="amd64")
    assert fmt is AppFormat.RUNTIPI
    by_name = {e.folder.name: e for e in entries}
    assert by_name["formfields"].app is not None and by_name["formfields"].error is None
    assert by_name["badjson"].app is None and by_name["badjson"].error
    assert "__tests__" not in by_name  # no config.json: not an app folder


def test_oversized_symlinked_and_duplicate_apps(tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(STORES / "casaos" / "CasaOS-AppStore-main", root)
    huge = root / "Apps" / "Huge"
    huge.mkdir()
    (huge / "docker-compose.yml").write_text("name: huge\n#" + "x" * 600_000 + "\n")
    (root / "Apps" / "Linked").symlink_to(root / "Apps" / "Webdash")
    shutil.copytree(root / "Apps" / "Webdash", root / "Apps" / "Webdash2")
    linked_file = root / "Apps" / "LinkedFile"
    linked_file.mkdir()
    (linked_file / "docker-compose.yml").symlink_to(root / "Apps" / "Webdash" /
                                                    "docker-compose.yml")

    apps, errors = detect.read_store(root, "c", arch="amd64")

    assert {a.id for a in apps} == CASAOS_OK
    assert "limit" in errors["Huge"]
    assert "symbolic link" in errors["Linked"]
    assert "already defines app 'webdash'" in errors["Webdash2"]
    assert "no docker-compose.yml" in errors["LinkedFile"]


def test_app_count_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detect, "MAX_APPS", 3)
    apps, errors = detect.read_store(STORES / "runtipi", "t", arch="amd64")
    assert len(apps) + len(set(errors) - {"*"}) == 3
    assert "only the first 3" in errors["*"]


def test_a_reader_crash_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    from stackhub.catalog.readers import runtipi

    real = runtipi.read_app_dir

    def flaky(folder: Path, **kwargs: object) -> object:
        if folder.name == "legacy":
            raise RuntimeError("boom")
        return real(folder, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runtipi, "read_app_dir", flaky)
    apps, errors = detect.read_store(STORES / "runtipi", "t", arch="amd64")
    assert errors["legacy"] == "cannot read the app (RuntimeError: boom)"
    assert "formfields" in {a.id for a in apps}


def test_umbrel_store_id_prefix(tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(STORES / "umbrel" / "fixture-direct", root / "fixture-direct")
    (root / "umbrel-app-store.yml").write_text("id: other\nname: Other\n")
    apps, _ = detect.read_store(root, "o", arch="amd64")
    assert any("store id 'other'" in n for n in apps[0].notes)
    (root / "umbrel-app-store.yml").write_text("id: ../bad\n")
    apps, errors = detect.read_store(root, "o", arch="amd64")
    assert len(apps) == 1
    assert "no valid id" in errors["umbrel-app-store.yml"]
