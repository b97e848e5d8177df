"""Release notes from every format that has them, and the upgrade-path rule (min_from)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stackhub.catalog.models import AppDefinition, UpdateRules
from stackhub.catalog.readers import casaos, umbrel
from stackhub.catalog.readers.stackhub import parse_app
from stackhub.errors import Invalid
from stackhub.updates.service import path_rule

from ..support import COMPOSE, MANIFEST

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "stores"


def app_with(min_from: str | None, version: str = "2.0.0") -> AppDefinition:
    return AppDefinition(id="keeper", store="upd", name="Keeper", version=version,
                         compose={"services": {"web": {"image": "x"}}},
                         update=UpdateRules(min_from=min_from) if min_from else None)


def test_stackhub_manifest_reads_release_notes_and_min_from() -> None:
    text = MANIFEST + ('release_notes: {en: "Adds **sharing**", zh-CN: "新增分享"}\n'
                       'update: {min_from: "1.4.0"}\n')
    app = parse_app(text, COMPOSE, store="local")
    assert app.release_notes == {"en": "Adds **sharing**", "zh-CN": "新增分享"}
    assert app.update is not None and app.update.min_from == "1.4.0"
    plain = parse_app(MANIFEST, COMPOSE, store="local")
    assert (plain.release_notes, plain.update) == ({}, None)


@pytest.mark.parametrize(("extra", "message"), [
    ('update: {min_from: "latest"}\n', "min_from must be a version with numbers"),
    ('update: {min_from: ""}\n', "update.min_from"),
    ('update: {minimum: "1.0"}\n', "update.minimum"),
    ("release_notes: [one, two]\n", "release_notes"),
])
def test_bad_update_rules_are_refused_with_the_reason(extra: str, message: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_app(MANIFEST + extra, COMPOSE, store="local")
    assert message in caught.value.message


def test_umbrel_release_notes() -> None:
    app = umbrel.read_app_dir(FIXTURES / "umbrel" / "fixture-notes", store="umb")
    assert app.release_notes == {"en": "Bug fixes."}


def test_casaos_release_notes_in_any_locale_key(tmp_path: Path) -> None:
    source = FIXTURES / "casaos" / "CasaOS-AppStore-main" / "Apps" / "Webdash"
    assert casaos.read_app_dir(source, store="cas", arch="amd64").release_notes == {
        "en": "Fixes."}
    folder = tmp_path / "Webdash"
    shutil.copytree(source, folder)
    compose = folder / "docker-compose.yml"
    text = compose.read_text()
    marker = "  release_notes:\n    en_US: Fixes.\n"
    assert marker in text
    compose.write_text(text.replace(marker, "  release_notes:\n"
                                    "    EN_us: Faster pages.\n    zh_CN: 页面更快。\n"))
    app = casaos.read_app_dir(folder, store="cas", arch="amd64")
    assert app.release_notes == {"en": "Faster pages.", "zh-CN": "页面更快。"}


def test_min_from_allows_that_version_and_later() -> None:
    assert path_rule(app_with("1.4.0"), "k", "1.4.0") is None
    assert path_rule(app_with("1.4.0"), "k", "v1.10.2") is None
    assert path_rule(app_with(None), "k", "0.1") is None


def test_min_from_refuses_older_and_names_the_intermediate_version() -> None:
    found = path_rule(app_with("1.4.0"), "mine", "1.3.9")
    assert found is not None
    assert "upd/keeper 2.0.0" in found and "mine runs 1.3.9" in found
    assert "intermediate version 1.4.0, then to 2.0.0" in found
    assert "nothing was changed" in found
    # an installed label without numbers cannot be shown to be new enough
    assert path_rule(app_with("1.4.0"), "mine", "latest") is not None
