"""The Runtipi reader on fixture apps written for these tests."""

from __future__ import annotations

import json
import shutil
import string
from pathlib import Path

import pytest

from stackhub.apps.params import resolve
from stackhub.catalog.models import (
    AppDefinition,
    AppFormat,
    Option,
    Parameter,
    ParameterType,
    SecretEncoding,
    WebEntry,
)
from stackhub.catalog.readers import runtipi
from stackhub.errors import Invalid, TooLarge

APPS = Path(__file__).resolve().parents[3] / "fixtures" / "stores" / "runtipi" / "apps"


def read(name: str, *, arch: str = "amd64") -> AppDefinition:
    return runtipi.read_app_dir(APPS / name, store="tipi", arch=arch)


def param(app: AppDefinition, name: str) -> Parameter:
    return next(p for p in app.parameters if p.name == name)


def values_for(app: AppDefinition, given: dict[str, str] | None = None,
               kept: dict[str, str] | None = None) -> dict[str, str]:
    return resolve(app.parameters, given or {}, kept or {}, pick_port=lambda p, w, a: w or 1)


# -- metadata --------------------------------------------------------------------------------------


def test_metadata() -> None:
    app = read("formfields")

    assert (app.id, app.ref, app.format) == ("formfields", "tipi/formfields", AppFormat.RUNTIPI)
    assert app.name == "Form Fields" and app.title == {"en": "Form Fields"}
    assert app.version == "1.4.0"
    assert app.revision == 7
    assert app.tagline == {"en": "Every form field type"}
    assert app.description["en"].startswith("# Form Fields")  # description.md wins
    assert app.category == ["utilities", "development"]
    assert app.icon == "metadata/logo.jpg"
    assert app.website == "https://formfields.example.org"
    assert app.author == "StackHub fixtures"
    assert app.architectures == ["amd64", "arm64"]
    assert app.main == WebEntry(service="formfields", port=80, path="/app/")
    assert app.installable
    assert any("uid 1000 / gid 1000" in n for n in app.notes)
    assert app.updated_at == "2023-11-14T22:13:20+00:00"  # the store's updated_at, in ms


def test_description_falls_back_to_config() -> None:
    app = runtipi.parse_app(json.dumps({"id": "x", "name": "X", "description": "From config"}),
                            compose_yaml="services: {x: {image: a, x-runtipi: {is_main: true}}}")
    assert app.description == {"en": "From config"}
    assert app.icon is None and app.revision is None


def test_revision_as_text_and_https_scheme() -> None:
    app = read("dynamic")
    assert app.revision == 12
    assert app.main == WebEntry(service="dynamic", port=8443, scheme="https")


# -- form fields -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kind"), [
    ("FF_USER", ParameterType.STRING), ("FF_PASSWORD", ParameterType.PASSWORD),
    ("FF_EMAIL", ParameterType.EMAIL), ("FF_WORKERS", ParameterType.NUMBER),
    ("FF_FQDN", ParameterType.HOST), ("FF_IP", ParameterType.STRING),
    ("FF_FQDNIP", ParameterType.HOST), ("FF_URL", ParameterType.URL),
    ("FF_SECRET", ParameterType.SECRET), ("FF_SIGNUPS", ParameterType.BOOLEAN),
    ("FF_LOG", ParameterType.ENUM),
])
def test_every_field_type(name: str, kind: ParameterType) -> None:
    assert param(read("formfields"), name).type is kind


def test_field_details() -> None:
    app = read("formfields")

    user = param(app, "FF_USER")
    assert (user.required, user.default, user.min, user.max) == (True, "admin", 3, 20)
    assert user.label == {"en": "Username"}
    assert user.help == {"en": "Your login Example: admin"}
    assert param(app, "FF_WORKERS").default == 4
    assert (param(app, "FF_WORKERS").min, param(app, "FF_WORKERS").max) == (1, 16)
    assert param(app, "FF_SIGNUPS").default is True
    assert param(app, "FF_LOG").options == [Option(value="info", label={"en": "Info"}),
                                            Option(value="debug", label={"en": "Debug"})]
    slug = param(app, "FF_SLUG")
    assert slug.regex == "^[a-z0-9-]+$"
    assert slug.regex_error == {"en": "Lowercase letters, digits and dashes"}
    assert param(app, "FF_IP").regex is not None  # an IPv4 pattern
    assert param(app, "FF_JSRE").regex is None
    assert any("FF_JSRE" in n and "regex" in n for n in app.notes)


def test_field_values_are_checked() -> None:
    app = read("formfields")
    ok = values_for(app, {"FF_PASSWORD": "longenough", "FF_IP": "10.0.0.1"})
    assert ok["FF_IP"] == "10.0.0.1" and ok["FF_USER"] == "admin"
    with pytest.raises(Invalid, match="FF_PASSWORD"):
        values_for(app)  # required, no default
    with pytest.raises(Invalid, match="Lowercase letters"):
        values_for(app, {"FF_PASSWORD": "longenough", "FF_SLUG": "Not A Slug"})
    with pytest.raises(Invalid, match="FF_IP"):
        values_for(app, {"FF_PASSWORD": "longenough", "FF_IP": "999.1.1.1"})
    with pytest.raises(Invalid, match="FF_WORKERS"):
        values_for(app, {"FF_PASSWORD": "longenough", "FF_WORKERS": "17"})


def test_random_fields_are_secrets_generated_once() -> None:
    app = read("formfields")
    hexkey, b64, tiny, default = (param(app, n) for n in ("FF_HEX", "FF_B64", "FF_TINY",
                                                          "FF_SECRET"))
    assert (hexkey.length, hexkey.encoding) == (48, SecretEncoding.HEX)
    assert (b64.length, b64.encoding) == (24, SecretEncoding.BASE64)
    assert (default.length, default.encoding) == (32, SecretEncoding.ALNUM)
    assert tiny.length == 8
    assert any("FF_TINY" in n for n in app.notes)

    first = values_for(app, {"FF_PASSWORD": "longenough"})
    again = values_for(app, {}, first)
    assert len(first["FF_HEX"]) == 48 and set(first["FF_HEX"]) <= set(string.hexdigits)
    assert len(first["FF_B64"]) == 24
    assert len(first["FF_SECRET"]) == 32
    assert again["FF_SECRET"] == first["FF_SECRET"] and again["FF_HEX"] == first["FF_HEX"]


def test_unknown_and_invalid_fields() -> None:
    app = read("unknownfield")
    assert any("UF_COLOR" in p and "'color'" in p for p in app.problems)
    assert any("'Bad name'" in p for p in app.problems)
    assert any("UF_SLIDER" in n and "asked as text" in n for n in app.notes)
    assert any("UF_COLOR is declared twice" in n for n in app.notes)
    assert param(app, "UF_SLIDER").type is ParameterType.STRING


# -- compose shapes --------------------------------------------------------------------------------


def test_schema_v2_compose() -> None:
    app = read("formfields")
    services = app.compose["services"]

    assert "x-runtipi" not in app.compose
    assert all("x-runtipi" not in s for s in services.values())
    assert services["formfields"]["ports"] == ["${APP_PORT}:80"]
    assert param(app, "APP_PORT").default == 8310
    assert services["worker"]["ports"] == ["${PORT_9310}:9310"]
    assert param(app, "PORT_9310").default == 9310


def test_runtipi_variables_are_supplied() -> None:
    app = read("formfields")
    assert param(app, "APP_HOST").type is ParameterType.HOST
    assert param(app, "APP_HOST").default == "localhost"
    assert app.derived == {"APP_DOMAIN": "${APP_HOST}:${APP_PORT}", "APP_PROTOCOL": "http",
                           "APP_EXPOSED": "false", "LOCAL_DOMAIN": "${APP_HOST}"}
    assert "${APP_DATA_DIR}/data:/data" in app.compose["services"]["formfields"]["volumes"]


def test_dynamic_compose_json_is_preferred_and_converted() -> None:
    app = read("dynamic")
    web = app.compose["services"]["dynamic"]

    assert web["image"] == "example/dynamic:5.1"  # not the legacy file's OLD image
    assert web["restart"] == "unless-stopped"
    assert web["environment"] == {"DB_HOST": "dynamic-db", "DB_PASSWORD": "${DYN_DB_PASSWORD}",
                                  "WORKERS": "4", "DEBUG": "false"}
    assert web["volumes"] == ["${APP_DATA_DIR}/data/config:/config",
                              "/etc/localtime:/etc/localtime:ro"]
    assert web["ports"] == ["${PORT_53}:53/tcp", "${PORT_53_UDP}:53/udp",
                            "127.0.0.1:${PORT_9090}:9090", "${APP_PORT}:8443"]
    assert (param(app, "PORT_53").default, param(app, "PORT_9090").default) == (5353, 9091)
    assert web["healthcheck"] == {"test": "curl -f http://localhost:8443/health",
                                  "interval": "30s", "timeout": "5s", "retries": 3,
                                  "start_period": "10s", "start_interval": "2s"}
    assert web["depends_on"] == {"dynamic-db": {"condition": "service_healthy"}}
    assert web["command"] == ["--serve", "--port", "8443"]
    assert web["entrypoint"] == "/entry.sh"
    for key in ("cap_add", "cap_drop", "ulimits", "extra_hosts", "hostname", "shm_size",
                "stop_grace_period", "stop_signal", "tty", "stdin_open", "read_only",
                "security_opt", "sysctls", "logging", "working_dir", "dns", "user", "deploy"):
        assert key in web, key
    assert web["labels"] == {"com.example.role": "web", "com.example.enabled": "true"}
    assert any("ignored fooBar" in n for n in app.notes)
    db = app.compose["services"]["dynamic-db"]
    assert db["environment"] == {"POSTGRES_PASSWORD": "${DYN_DB_PASSWORD}",
                                 "POSTGRES_DB": "dynamic"}


def test_architecture_overrides() -> None:
    amd = read("dynamic").compose["services"]
    arm = read("dynamic", arch="arm64").compose["services"]
    assert amd["dynamic-db"]["image"] == "postgres:16.4-amd64"
    assert "arm-helper" not in amd
    assert arm["dynamic"]["image"] == "example/dynamic:5.1-arm64"
    assert arm["dynamic-db"]["image"] == "postgres:16.4"
    assert arm["arm-helper"]["image"] == "example/arm-helper:1"


def test_legacy_static_compose() -> None:
    app = read("legacy")
    services = app.compose["services"]
    web = services["legacy"]

    assert app.main == WebEntry(service="legacy", port=3000)
    assert web["ports"] == ["${APP_PORT}:3000", "${PORT_6881}:6881", "${PORT_6881_UDP}:6881/udp"]
    assert web["labels"] == {"com.example.keep": "yes"}
    assert "labels" not in services["legacy-db"]
    assert "networks" not in web and "networks" not in services["legacy-db"]
    assert "networks" not in app.compose
    assert any("exposed on its own domain" in n for n in app.notes)


def test_legacy_main_from_a_traefik_label() -> None:
    app = read("labelonly")
    assert app.main == WebEntry(service="labelonly", port=5000)
    assert app.compose["services"]["labelonly"] == {"image": "example/labelonly:1",
                                                    "ports": ["${APP_PORT}:5000"]}


def test_app_without_gui() -> None:
    app = read("nogui")
    assert app.main is None
    assert "APP_PORT" not in {p.name for p in app.parameters}
    assert app.compose["services"]["nogui"]["network_mode"] == "host"
    assert any("no web interface" in n for n in app.notes)


# -- what cannot be honoured -----------------------------------------------------------------------


def test_architecture_availability_and_deprecation() -> None:
    assert any("not this machine's amd64" in p for p in read("armonly").problems)
    assert read("armonly", arch="arm64").installable
    app = read("unavailable")
    assert app.problems == ["the store marks this app as not available"]
    assert "the store marks this app as deprecated" in app.notes


# -- malformed apps --------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "error", "text"), [
    ("badjson", Invalid, "config.json is not valid JSON"),
    ("noid", Invalid, "no valid id"),
    ("nocompose", Invalid, "no docker-compose"),
    ("badcompose", Invalid, "services list"),
    ("bomb", TooLarge, "alias bomb"),
    ("deepjson", TooLarge, "nested too deeply"),
])
def test_malformed_apps(name: str, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        read(name)


@pytest.mark.parametrize(("config", "text"), [
    ("[]", "must be an object"),
    ('{"id": "x"}', "no name"),
    ('{"id": "Bad Id", "name": "x"}', "no valid id"),
    (b'{"id": "x", "name": "\xff"}', "UTF-8"),
])
def test_bad_configs(config: str | bytes, text: str) -> None:
    with pytest.raises(Invalid, match=text):
        runtipi.parse_app(config, compose_yaml="services: {x: {image: a}}")


def test_bad_dynamic_services() -> None:
    config = '{"id": "x", "name": "X"}'
    with pytest.raises(Invalid, match="needs a name"):
        runtipi.parse_app(config, compose_json='{"services": [{"image": "a"}]}')
    with pytest.raises(Invalid, match="twice"):
        runtipi.parse_app(config, compose_json='{"services": [{"name": "a", "image": "a"},'
                                               '{"name": "a", "image": "b"}]}')
    with pytest.raises(Invalid, match="hostPath"):
        runtipi.parse_app(config, compose_json='{"services": [{"name": "a", "image": "a", '
                                               '"volumes": [{"hostPath": "/x"}]}]}')


def test_absurd_description_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "formfields"
    shutil.copytree(APPS / "formfields", folder)
    (folder / "metadata" / "description.md").write_text("x" * 600_000)
    with pytest.raises(TooLarge):
        runtipi.read_app_dir(folder)


def test_symlinked_metadata_is_ignored(tmp_path: Path) -> None:
    folder = tmp_path / "formfields"
    shutil.copytree(APPS / "formfields", folder)
    shutil.rmtree(folder / "metadata")
    (folder / "metadata").symlink_to(APPS / "formfields" / "metadata")
    app = runtipi.read_app_dir(folder)
    assert app.icon is None
    assert app.description == {"en": "Short description from config.json."}


def test_compose_settings_cannot_be_form_fields() -> None:
    config = json.dumps({"id": "x", "name": "X", "form_fields": [
        {"type": "text", "label": "p", "env_variable": "COMPOSE_PROJECT_NAME"},
        {"type": "text", "label": "h", "env_variable": "DOCKER_HOST"}]})
    app = runtipi.parse_app(config, compose_yaml="services: {x: {image: a, command: "
                            "'${COMPOSE_PROFILES}', x-runtipi: {is_main: true}}}")
    names = {p.name for p in app.parameters}
    assert not names & {"COMPOSE_PROJECT_NAME", "DOCKER_HOST", "COMPOSE_PROFILES"}
    problems = " | ".join(app.problems)
    assert "COMPOSE_PROJECT_NAME" in problems and "DOCKER_HOST" in problems
    assert "COMPOSE_PROFILES" in problems


@pytest.mark.parametrize("value", [None, "yesterday", True, -5, 10**15, 1.5e20])
def test_an_unusable_updated_at_is_no_date(value: object) -> None:
    assert runtipi._epoch_ms(value) is None


def test_runtipis_root_folder_stays_inside_the_instance() -> None:
    config = json.dumps({"id": "rooted", "name": "Rooted", "port": 8080, "available": True,
                         "tipi_version": 1, "version": "1"})
    compose = ("services:\n  rooted:\n    image: example/rooted:1\n    ports:\n"
               "      - ${APP_PORT}:80\n    volumes:\n      - ${ROOT_FOLDER_HOST}:/backups\n"
               "      - ${ROOT_FOLDER_HOST}/media/data/books:/books\n")
    app = runtipi.parse_app(config, compose_yaml=compose, arch="amd64")
    assert app.installable, app.problems
    assert app.derived["ROOT_FOLDER_HOST"] == "${APP_DATA_DIR}/runtipi"
    assert any("ROOT_FOLDER_HOST" in n and "inside" in n for n in app.notes)
