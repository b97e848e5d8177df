"""A hostile local store: links in its content never make the catalog serve or link a file
outside the store (assets come from the snapshot through `safe_file`; images hard-linked into
it are the store's own regular files)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from stackhub.errors import NotFound
from tests.unit.catalog.storekit import PNG, open_catalog, write_store

SECRET = b"\x89PNG secret of the host"


def _hostile_store(tmp_path: Path) -> tuple[Path, Path]:
    outside = tmp_path / "outside"
    (outside / "app").mkdir(parents=True)
    (outside / "secret.png").write_bytes(SECRET)
    source = write_store(tmp_path / "src", ["alpha", "beta"], screenshots=1)
    alpha = source / "apps" / "alpha"
    (alpha / "icon.png").unlink()
    (alpha / "icon.png").symlink_to(outside / "secret.png")  # a link to a file outside
    (alpha / "shots").symlink_to(outside)  # a folder linked outside
    (alpha / "inside.png").symlink_to("screenshot-1.png")  # even a link within the store
    manifest = json.loads((alpha / "stackhub-app.yaml").read_text())
    manifest["screenshots"] = ["shots/secret.png", "../../../outside/secret.png",
                               "inside.png", "screenshot-1.png"]
    (alpha / "stackhub-app.yaml").write_text(json.dumps(manifest))
    # a whole app folder linked outside: it holds a readable app with the secret as its icon
    for name in ("stackhub-app.yaml", "compose.yaml"):
        (outside / "app" / name).write_bytes((source / "apps" / "beta" / name).read_bytes())
    os.link(outside / "secret.png", outside / "app" / "icon.png")
    (source / "apps" / "gamma").symlink_to(outside / "app")
    return source, outside


def test_links_in_a_store_never_reach_outside_it(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACKHUB_OFFICIAL_STORE", str(tmp_path / "no-official-store"))
    source, outside = _hostile_store(tmp_path)
    catalog = open_catalog(tmp_path)
    catalog.add("evil", str(source), local=True)
    catalog.sync_store("evil")
    assert sorted(a.id for a in catalog.list()) == ["evil/alpha", "evil/beta"]  # no linked folder
    with pytest.raises(NotFound):
        catalog.asset("evil", "alpha")
    served = []
    for n in range(len(catalog.details("evil/alpha").screenshot_urls)):
        served.append(catalog.asset("evil", "alpha", n)[0])
    assert served == [PNG + b"shot 1"]  # only the store's own regular file
    assert catalog.asset("evil", "beta")[0] == PNG + b"beta"
    secret = (outside / "secret.png").stat()
    for path in (tmp_path / "stores").rglob("*"):
        info = path.lstat()
        assert not path.is_symlink(), path
        assert (info.st_dev, info.st_ino) != (secret.st_dev, secret.st_ino), path
