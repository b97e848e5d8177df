"""A directory store's images are hard-linked into its snapshot, never a path out of it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from stackhub.catalog import snapshot, sync
from stackhub.catalog.snapshot import copy_tree, safe_file, safe_file_in, stat_fingerprint
from stackhub.errors import TooLarge
from tests.unit.catalog.storekit import PNG, no_official_store, open_catalog, write_store

__all__ = ["no_official_store"]


def _snapshot_file(tmp_path: Path, store: str, relative: str) -> Path:
    found = [p for p in (tmp_path / "stores" / store).glob(f"*/{relative}")]
    assert len(found) == 1, found
    return found[0]


def test_images_are_linked_and_definitions_copied(tmp_path: Path) -> None:
    source = write_store(tmp_path / "src", ["alpha"], screenshots=1)
    catalog = open_catalog(tmp_path)
    catalog.add("mine", str(source), local=True)
    first = catalog.sync_store("mine")
    icon = _snapshot_file(tmp_path, "mine", "apps/alpha/icon.png")
    compose = _snapshot_file(tmp_path, "mine", "apps/alpha/compose.yaml")
    assert icon.stat().st_ino == (source / "apps/alpha/icon.png").stat().st_ino
    assert compose.stat().st_ino != (source / "apps/alpha/compose.yaml").stat().st_ino
    assert catalog.asset("mine", "alpha") == (PNG + b"alpha", ".png")
    assert catalog.asset("mine", "alpha", 0) == (PNG + b"shot 1", ".png")
    # the same content hash as a plain copy, so the stored revision means the same thing
    assert first.revision == snapshot.content_hash(source)


def test_linking_keeps_the_unchanged_resync_free_of_hashing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_store(tmp_path / "src", ["alpha", "beta"], screenshots=2)
    revision, seen = copy_tree(source, tmp_path / "copy")
    assert revision == snapshot.content_hash(source)
    assert seen == stat_fingerprint(source), "links change ctimes: recorded after linking"
    catalog = open_catalog(tmp_path)
    catalog.add("mine", str(source), local=True)
    first = catalog.sync_store("mine")

    def no_hash(root: Path) -> str:
        raise AssertionError(f"{root} was hashed again")

    monkeypatch.setattr(sync, "content_hash", no_hash)
    again = catalog.sync_store("mine")
    assert not again.changed and again.revision == first.revision


@pytest.mark.parametrize("code", [errno.EXDEV, errno.EPERM, errno.EMLINK])
def test_images_are_copied_when_links_are_refused(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  code: int) -> None:
    calls: list[str] = []

    def refuse(src: object, dst: object, **kwargs: object) -> None:
        calls.append(str(src))
        raise OSError(code, os.strerror(code))

    source = write_store(tmp_path / "src", ["alpha", "beta"])
    monkeypatch.setattr(os, "link", refuse)
    revision, _ = copy_tree(source, tmp_path / "copy")
    assert revision == snapshot.content_hash(tmp_path / "copy") == snapshot.content_hash(source)
    icon = tmp_path / "copy" / "apps/alpha/icon.png"
    assert icon.read_bytes() == PNG + b"alpha"
    assert icon.stat().st_ino != (source / "apps/alpha/icon.png").stat().st_ino
    # another file system: tried once, then every file is copied; other errors: tried per file
    assert len(calls) == (1 if code == errno.EXDEV else 2)


def test_an_image_swapped_for_a_link_after_opening_is_copied_not_linked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"root password")
    source = write_store(tmp_path / "src", ["alpha"])
    real_link = os.link

    def swap_then_link(src: str | Path, dst: str | Path, **kwargs: bool) -> None:
        os.replace(src, f"{src}.old")
        os.symlink(secret, src)  # the attacker's move between the open and the link
        real_link(src, dst, **kwargs)

    monkeypatch.setattr(os, "link", swap_then_link)
    copy_tree(source, tmp_path / "copy")
    icon = tmp_path / "copy" / "apps/alpha/icon.png"
    assert not icon.is_symlink() and icon.stat().st_ino != secret.stat().st_ino
    assert icon.read_bytes() == PNG + b"alpha"  # the file opened, read through its descriptor


def test_linked_images_count_against_the_size_cap(tmp_path: Path) -> None:
    source = write_store(tmp_path / "src", ["alpha"])
    (source / "apps/alpha/big.png").write_bytes(b"p" * 4096)
    with pytest.raises(TooLarge, match="larger than 3000 bytes"):
        copy_tree(source, tmp_path / "copy", max_bytes=3000)


def test_removing_a_store_removes_its_fingerprint(tmp_path: Path) -> None:
    source = write_store(tmp_path / "src", ["alpha"])
    catalog = open_catalog(tmp_path)
    catalog.add("mine", str(source), local=True)
    catalog.add("other", str(source), local=True)
    catalog.sync_store("mine")
    catalog.sync_store("other")
    marker = tmp_path / "stores" / ".stat-mine"
    assert marker.is_file()
    catalog.remove("mine")
    assert not marker.exists() and not (tmp_path / "stores" / "mine").exists()
    assert (tmp_path / "stores" / ".stat-other").is_file(), "only the removed store's marker"
    assert (source / "apps/alpha/icon.png").read_bytes() == PNG + b"alpha", "source untouched"


def test_safe_file_refuses_links_and_escapes_at_any_depth(tmp_path: Path) -> None:
    base = tmp_path / "tree"
    (base / "apps/alpha").mkdir(parents=True)
    (base / "apps/alpha/icon.png").write_bytes(PNG)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"secret")
    (base / "apps/linked").symlink_to(outside)
    (base / "apps/alpha/link.png").symlink_to(outside / "secret.png")
    (base / "apps/alpha/inner.png").symlink_to("icon.png")  # even a link inside the tree
    real = base.resolve()
    assert safe_file(base, "apps/alpha/icon.png") == real / "apps/alpha/icon.png"
    assert safe_file_in(real, "apps/./alpha/icon.png") == real / "apps/alpha/icon.png"
    for ref in ("apps/linked/secret.png", "apps/alpha/link.png", "apps/alpha/inner.png",
                "apps/alpha/../alpha/icon.png", "/etc/passwd", "apps\\alpha\\icon.png",
                "apps/alpha", "apps/alpha/icon.png/x", "apps/alpha/missing.png",
                "apps/alpha/icon.png\x00", "", "."):
        assert safe_file(base, ref) is None, ref
        assert safe_file_in(real, ref) is None, ref
    assert safe_file(tmp_path / "missing", "apps/alpha/icon.png") is None
