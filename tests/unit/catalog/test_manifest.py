"""StackHub's own app format: the manifest model, its JSON Schema, and reading an app."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest

from stackhub import yamlsafe
from stackhub.catalog.manifest import Manifest, json_schema
from stackhub.catalog.models import AppFormat, ParameterType
from stackhub.catalog.readers.stackhub import parse_app
from stackhub.errors import Invalid, TooLarge

from ..support import COMPOSE, MANIFEST

REPO = Path(__file__).resolve().parents[3]


def manifest_with(extra: str = "", **replace: str) -> str:
    text = MANIFEST
    for old, new in replace.items():
        text = text.replace(old, new)
    return text + extra


def test_parse_app() -> None:
    app = parse_app(MANIFEST, COMPOSE, store="local")
    assert (app.id, app.name, app.version, app.store, app.format) == (
        "blog", "Blog", "1.0", "local", AppFormat.STACKHUB)
    assert app.ref == "local/blog" and app.installable
    assert app.main is not None and (app.main.service, app.main.port) == ("web", 80)
    assert [(p.name, p.type) for p in app.parameters] == [
        ("WEB_PORT", ParameterType.PORT), ("DB_PASSWORD", ParameterType.SECRET),
        ("TITLE", ParameterType.STRING)]
    assert app.parameters[1].length == 24
    assert app.title == {"en": "A blog"}
    assert set(app.compose["services"]) == {"web", "db"}


def test_loose_app_ref_is_its_id() -> None:
    assert parse_app(MANIFEST, COMPOSE).ref == "blog"


@pytest.mark.parametrize(("manifest", "message"), [
    (manifest_with("homepage: https://x\n"), "homepage: Extra inputs are not permitted"),
    (manifest_with(**{"format: stackhub/v1": "format: stackhub/v2"}), "format"),
    (manifest_with(**{"id: blog": "id: Blog"}), "id: Value error, id must be lowercase"),
    (manifest_with(**{"id: blog": "id: ../blog"}), "id must be lowercase"),
    (manifest_with(**{"id: blog": "id: -blog"}), "id must be lowercase"),
    (manifest_with(**{'version: "1.0"': "revision: 1"}), "version: Field required"),
    (manifest_with(**{"name: Blog\n": ""}), "name: Field required"),
    (manifest_with(**{"revision": "x"}, extra="revision: 0\n"), "revision"),
    (manifest_with(**{"port: 80}": "port: 70000}"}), "main.port"),
    (manifest_with(**{"length: 24": "length: 4"}), "parameters.1.length"),
    (manifest_with(**{"type: port": "type: colour"}), "parameters.0.type"),
    (manifest_with(**{"name: TITLE": "name: my-title"}), "environment variable name"),
    (manifest_with(**{"type: string, default: My blog": f"regex: '{'a' * 600}'"}),
     "regex is longer than 512"),
])
def test_invalid_manifests_are_explained(manifest: str, message: str) -> None:
    with pytest.raises(Invalid, match="app manifest is invalid") as info:
        parse_app(manifest, COMPOSE)
    assert message in info.value.message


def test_invalid_regex_is_invalid() -> None:
    with pytest.raises(Invalid, match="regex"):
        parse_app(manifest_with(**{"type: string, default: My blog": "regex: '('"}), COMPOSE)


def test_app_id_with_trailing_newline_is_refused() -> None:
    with pytest.raises(Invalid):
        parse_app(manifest_with(**{"id: blog": 'id: "blog\\n"'}), COMPOSE)


def test_duplicate_parameter() -> None:
    text = manifest_with("  - {name: TITLE, type: string}\n")
    with pytest.raises(Invalid, match="declares a parameter twice"):
        parse_app(text, COMPOSE)


def test_main_service_must_exist() -> None:
    with pytest.raises(Invalid, match="main service 'frontend' is not in the compose template"):
        parse_app(manifest_with(**{"service: web": "service: frontend"}), COMPOSE)


@pytest.mark.parametrize("compose", ["services: {}\n", "services: [web]\n", "name: x\n"])
def test_compose_template_needs_services(compose: str) -> None:
    with pytest.raises(Invalid, match="compose template has no services"):
        parse_app(MANIFEST, compose)


def test_bad_yaml_names_the_file_and_line() -> None:
    with pytest.raises(Invalid, match="app manifest is not valid YAML at line 3"):
        parse_app("format: stackhub/v1\nid: blog\nname: a: b\n", COMPOSE)
    with pytest.raises(Invalid, match="compose template is not valid YAML at line"):
        parse_app(MANIFEST, "services:\n  web: {image: [\n")
    with pytest.raises(Invalid, match="app manifest must be a mapping"):
        parse_app("- a\n", COMPOSE)


def test_oversized_or_bomb_files_are_too_large() -> None:
    with pytest.raises(TooLarge):
        parse_app(MANIFEST + "#" * (yamlsafe.MAX_BYTES + 1), COMPOSE)
    bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 10) + "]\n"
        for i in range(6))
    with pytest.raises(TooLarge):
        parse_app(MANIFEST, "services: {web: {image: x}}\n" + bomb)


# -- JSON Schema ------------------------------------------------------------------------------

def test_json_schema_metadata() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("app-manifest.schema.json")
    assert {"format", "id", "name", "version"} <= set(schema["required"])
    assert schema["additionalProperties"] is False
    jsonschema.Draft202012Validator.check_schema(schema)


def test_json_schema_agrees_with_the_model() -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    good = yamlsafe.load_mapping(MANIFEST, what="manifest")
    assert list(validator.iter_errors(good)) == []
    Manifest.model_validate(good)
    for bad in ({**good, "homepage": "x"}, {**good, "format": "stackhub/v2"},
                {k: v for k, v in good.items() if k != "version"}):
        assert list(validator.iter_errors(bad)), bad


def test_published_schema_matches_the_model() -> None:
    published = [p for p in sorted((REPO / "docs").rglob("*.json"))
                 if (lambda d: isinstance(d, dict) and d.get("$id") == json_schema()["$id"])(
                     json.loads(p.read_text()))]
    if not published:
        pytest.skip("the manifest's JSON Schema is not published under docs/ yet")
    for path in published:
        assert json.loads(path.read_text()) == json_schema(), f"{path} is out of date"


def test_every_official_app_reads() -> None:
    apps = REPO / "store" / "apps"
    if not apps.is_dir():
        pytest.xfail("the official store is not in this checkout")
    validator = jsonschema.Draft202012Validator(json_schema())
    folders = sorted(p for p in apps.iterdir() if p.is_dir())
    assert folders
    for folder in folders:
        manifest = (folder / "stackhub-app.yaml").read_text()
        app = parse_app(manifest, (folder / "compose.yaml").read_text(), store="official")
        assert app.id == folder.name, folder
        assert list(validator.iter_errors(yamlsafe.load(manifest))) == [], folder
