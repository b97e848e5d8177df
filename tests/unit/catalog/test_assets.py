"""Icons and screenshots served from a store's snapshot: bounded reads, never through links."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackhub.catalog import service
from stackhub.errors import NotFound

from .storekit import PNG, open_catalog, write_store


def test_asset_is_read_from_the_snapshot_and_bounded(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = open_catalog(tmp_path)
    catalog.add_local("mine", write_store(tmp_path / "src", ["photos"], screenshots=1))
    catalog.sync_store("mine")
    assert catalog.asset("mine", "photos") == (PNG + b"photos", ".png")
    assert catalog.asset("mine", "photos", 0) == (PNG + b"shot 1", ".png")
    with pytest.raises(NotFound, match="has no screenshot 1"):
        catalog.asset("mine", "photos", 1)
    monkeypatch.setattr(service, "MAX_ASSET", len(PNG))
    with pytest.raises(NotFound, match="the icon of mine/photos is too large to serve"):
        catalog.asset("mine", "photos")
