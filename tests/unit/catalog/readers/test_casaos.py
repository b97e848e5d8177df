"""The CasaOS reader on fixture apps written for these tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stackhub import yamlsafe
from stackhub.catalog.models import AppDefinition, AppFormat, Parameter, ParameterType, WebEntry
from stackhub.catalog.readers import casaos
from stackhub.catalog.readers.common import locales
from stackhub.errors import Invalid, TooLarge

APPS = (Path(__file__).resolve().parents[3] / "fixtures" / "stores" / "casaos"
        / "CasaOS-AppStore-main" / "Apps")


def read(name: str, *, arch: str = "amd64") -> AppDefinition:
    return casaos.read_app_dir(APPS / name, store="cas", arch=arch)


def param(app: AppDefinition, name: str) -> Parameter:
    return next(p for p in app.parameters if p.name == name)


# -- metadata --------------------------------------------------------------------------------------


def test_new_placement_metadata() -> None:
    app = read("Webdash")

    assert (app.id, app.store, app.format) == ("webdash", "cas", AppFormat.CASAOS)
    assert app.ref == "cas/webdash"
    assert app.version == "2.4.1"
    assert app.title == {"en": "Webdash", "zh-CN": "网页仪表板"}
    assert app.name == "Webdash"
    assert app.tagline == {"en": "A tiny web dashboard", "zh-CN": "一个小型网页仪表板",
                           "pt-BR": "Um pequeno painel"}
    assert app.description["en"].startswith("Webdash shows a web page")
    assert set(app.description) == {"en", "zh-CN", "fr-FR"}
    assert app.category == ["Utilities"]
    assert app.icon == "icon.png"  # the local file wins over the CDN URL
    assert app.screenshots == ["screenshot-1.png",
                               "https://cdn.example.org/Apps/Webdash/screenshot-2.png"]
    assert app.website == "https://webdash.example.org"
    assert app.author == "Webdash Devs"
    assert app.architectures == ["amd64", "arm64"]
    assert app.main == WebEntry(service="webdash", port=80, path="/admin", scheme="https")
    assert app.installable
    assert "before installing: The default login is admin / changeme." in app.notes


def test_locale_keys_of_any_case_are_normalised() -> None:
    assert locales({"en_US": "a", "zh_CN": "b", "de_de": "c"}) == {"en": "a", "zh-CN": "b",
                                                                  "de-DE": "c"}
    assert locales({"en_GB": "gb", "en_US": "us"}) == {"en": "us"}
    assert locales({"en_GB": "gb", "en": "plain"}) == {"en": "plain"}
    assert locales({"EN_us": "x", "ZH-cn": "y"}) == {"en": "x", "zh-CN": "y"}
    assert locales("plain text") == {"en": "plain text"}
    assert locales({"en_US": "", "fr_FR": None, "": "x", "ja_JP": 5}) == {"ja-JP": "5"}
    assert locales(None) == {} and locales(["x"]) == {}


def test_english_fallback_is_first_key() -> None:
    app = read("Webdash")
    assert next(iter(app.tagline)) == "en"


def test_version_falls_back_to_the_image_tag() -> None:
    assert read("MediaBox").version == "10.2.0"


def test_app_without_x_casaos_is_read_with_minimal_metadata() -> None:
    app = read("NoMeta")
    assert app.id == "nometa"  # no top-level name: the folder name
    assert app.title == {"en": "NoMeta"}
    assert app.main == WebEntry(service="web", port=80)
    assert any("no x-casaos block" in n for n in app.notes)


# -- web entry and ports ---------------------------------------------------------------------------


def test_webui_port_variable_becomes_the_web_port_parameter() -> None:
    app = read("Webdash")
    web = param(app, "WEBUI_PORT")

    assert web.type is ParameterType.PORT
    assert web.default == 8080
    port = app.compose["services"]["webdash"]["ports"][0]
    assert port == {"target": 80, "published": "${WEBUI_PORT:-8080}", "protocol": "tcp"}


def test_old_placement_and_fixed_host_ports() -> None:
    app = read("MediaBox")
    ports = app.compose["services"]["server"]["ports"]

    # port_map 8097 is the host port; the web UI listens on container port 8096
    assert app.main == WebEntry(service="server", port=8096, path="/web/index.html",
                                scheme="http")
    assert param(app, "WEBUI_PORT").default == 8097
    assert param(app, "WEBUI_PORT").label == {"en": "Web UI HTTP port"}
    assert param(app, "PORT_8920").default == 8921
    udp = param(app, "PORT_7359_UDP")
    assert (udp.default, udp.protocol, udp.label) == (7359, "udp", {"en": "Discovery port"})
    assert param(app, "PORT_1900").default == 1900
    assert ports == [
        {"target": 8096, "published": "${WEBUI_PORT}", "protocol": "tcp"},
        {"target": 8920, "published": "${PORT_8920}"},
        "${PORT_7359_UDP}:7359/udp",
        "127.0.0.1:${PORT_1900}:1900",
        "9000",
        "6000-6002:6000-6002",
    ]
    assert any("'6000-6002' is kept as written" in n for n in app.notes)


def test_host_network_app_keeps_its_port() -> None:
    app = read("HostNet")
    assert app.main == WebEntry(service="hub", port=8123)
    assert not [p for p in app.parameters if p.type is ParameterType.PORT]
    assert any("host networking" in n for n in app.notes)


def test_port_published_through_a_network_sidecar() -> None:
    app = read("Sidecar")
    services = app.compose["services"]

    assert services["vpn"]["ports"] == ["${WEBUI_PORT}:8090"]
    assert "ports" not in services["app"]
    assert app.main == WebEntry(service="vpn", port=8090)
    assert param(app, "WEBUI_PORT").default == 8090


def test_port_map_as_plain_variable() -> None:
    text = """
name: plainvar
services:
  web:
    image: example/x:1
    ports: ["$WEBUI_PORT:3000"]
    environment: {PORT: $WEBUI_PORT}
x-casaos: {main: web, port_map: $WEBUI_PORT}
"""
    app = casaos.parse_app(text, arch="amd64")
    assert param(app, "WEBUI_PORT").default is None  # the allocator picks one
    assert app.main == WebEntry(service="web", port=3000)


# -- variables and data paths ----------------------------------------------------------------------


def test_appid_puid_pgid_tz() -> None:
    app = read("Webdash")
    env = app.compose["services"]["webdash"]["environment"]

    assert app.derived == {"AppID": "${APP_INSTANCE}"}
    assert env["INSTANCE_NAME"] == "$AppID"
    assert (env["PUID"], env["PGID"], env["TZ"]) == ("$PUID", "${PGID}", "$TZ")
    assert not {"PUID", "PGID", "TZ"} & {p.name for p in app.parameters}


def test_own_appdata_maps_into_the_data_directory() -> None:
    webdash = read("Webdash").compose["services"]["webdash"]["volumes"]
    assert webdash[0]["source"] == "${APP_DATA_DIR}/config"
    assert webdash[1] == "${APP_DATA_DIR}/cache:/cache"
    mediabox = read("MediaBox").compose["services"]
    assert mediabox["server"]["volumes"][0] == "${APP_DATA_DIR}/config:/config"  # by app name
    assert mediabox["db"]["volumes"][0]["source"] == "${APP_DATA_DIR}/db"


def test_shared_data_folders_become_optional_path_parameters() -> None:
    app = read("MediaBox")
    volumes = app.compose["services"]["server"]["volumes"]

    assert volumes[1] == "${DATA_MEDIA:-${APP_DATA_DIR}/data/Media}:/media"
    assert volumes[2] == "${DATA_MEDIA:-${APP_DATA_DIR}/data/Media}/Movies:/movies:ro"
    assert volumes[3]["source"] == "${DATA_DOWNLOADS:-${APP_DATA_DIR}/data/Downloads}/torrents"
    assert volumes[4] == "${APP_DATA_DIR}/data/AppData/otherapp/shared:/shared"
    assert volumes[5] == "/etc/localtime:/etc/localtime:ro"
    media = param(app, "DATA_MEDIA")
    assert media.type is ParameterType.PATH
    assert media.default is None and not media.required
    assert media.label == {"en": "Media library", "zh-CN": "媒体库"}
    assert any("otherapp" in n for n in app.notes)


def test_the_whole_data_root_is_one_parameter() -> None:
    app = read("HostNet")
    volumes = app.compose["services"]["hub"]["volumes"]
    assert volumes[1]["source"] == "${DATA_ROOT:-${APP_DATA_DIR}/data}"
    assert param(app, "DATA_ROOT").type is ParameterType.PATH


def test_a_path_leaving_data_is_a_problem() -> None:
    app = read("Escape")
    assert not app.installable
    assert any("leaves /DATA" in p for p in app.problems)


def test_described_envs_become_labelled_parameters() -> None:
    app = read("Webdash")
    env = app.compose["services"]["webdash"]["environment"]

    user = param(app, "ADMIN_USER")
    assert (user.type, user.default) == (ParameterType.STRING, "admin")
    assert user.label == {"en": "Administrator user name", "zh-CN": "管理员用户名"}
    assert param(app, "ADMIN_PASSWORD").type is ParameterType.PASSWORD
    assert param(app, "ADMIN_PASSWORD").label == {"en": "Administrator password"}
    assert param(app, "SITE_NAME").label == {"en": "Site name", "de-DE": "Seitenname"}
    assert env["ADMIN_USER"] == "${ADMIN_USER}"
    assert env["SITE_NAME"] == "${SITE_NAME}"


def test_described_envs_in_list_form() -> None:
    app = read("MediaBox")
    env = app.compose["services"]["server"]["environment"]
    assert "DB_PASSWORD=${DB_PASSWORD}" in env and "CACHE_MB=${CACHE_MB}" in env
    assert "DB_HOST=mediabox-db" in env  # not described: unchanged
    assert param(app, "CACHE_MB").default == "512"
    assert param(app, "POSTGRES_PASSWORD").default == "mediabox"


def test_unknown_variables_are_noted_and_required_ones_block() -> None:
    app = read("NeedsVars")
    assert not app.installable
    assert any("OPENAI_API_KEY" in p for p in app.problems)
    assert any("UNSET_THING" in n for n in app.notes)
    assert not any("OPTIONAL_THING" in n for n in app.notes)  # has a default
    assert app.compose["services"]["app"]["environment"]["LITERAL"] == "costs $$5"


# -- the compose template --------------------------------------------------------------------------


def test_x_casaos_is_removed_and_container_names_stay_reachable() -> None:
    app = read("MediaBox")
    services = app.compose["services"]

    assert "x-casaos" not in app.compose
    assert all("x-casaos" not in s for s in services.values())
    assert services["db"]["networks"] == {"default": {"aliases": ["mediabox-db"]}}
    assert services["server"]["networks"] == {"default": {"aliases": ["mediabox"]}}


def test_aliases_join_named_networks() -> None:
    text = """
name: nets
services:
  web:
    image: example/x:1
    container_name: nets-web
    networks: [front]
    ports: ["8080:80"]
networks: {front: {}}
x-casaos: {main: web, port_map: "8080"}
"""
    app = casaos.parse_app(text, arch="amd64")
    assert app.compose["services"]["web"]["networks"] == {"front": {"aliases": ["nets-web"]}}


def test_the_template_survives_a_yaml_round_trip() -> None:
    app = read("MediaBox")
    assert yamlsafe.load(yamlsafe.dump(app.compose)) == app.compose


# -- what cannot be honoured -----------------------------------------------------------------------


def test_other_architecture_is_a_problem() -> None:
    assert any("not this machine's amd64" in p for p in read("ArmOnly").problems)
    assert read("ArmOnly", arch="arm64").installable


def test_build_and_missing_images_are_problems() -> None:
    app = read("Builder")
    assert any("'build:'" in p for p in app.problems)
    assert any("service helper has no image" in p for p in app.problems)


# -- malformed apps --------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "error", "text"), [
    ("BadYaml", Invalid, "not valid YAML at line"),
    ("NoServices", Invalid, "no services"),
    ("AliasBomb", TooLarge, "alias bomb"),
    ("DeepNest", TooLarge, "nested deeper"),
    ("EmptyFolder", Invalid, "no docker-compose.yml"),
    ("BadName", Invalid, "service name"),
])
def test_malformed_apps_raise_invalid(name: str, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        read(name)


def test_absurd_size_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "Huge"
    folder.mkdir()
    (folder / "docker-compose.yml").write_text("name: huge\n# " + "x" * 600_000 + "\n")
    with pytest.raises(TooLarge, match="limit is 524288 bytes"):
        casaos.read_app_dir(folder)


def test_symlinks_are_refused(tmp_path: Path) -> None:
    real = tmp_path / "Real"
    shutil.copytree(APPS / "Webdash", real)
    linked_file = tmp_path / "LinkedFile"
    linked_file.mkdir()
    (linked_file / "docker-compose.yml").symlink_to(real / "docker-compose.yml")
    with pytest.raises(Invalid, match=r"no docker-compose\.yml"):
        casaos.read_app_dir(linked_file)
    (tmp_path / "LinkedDir").symlink_to(real)
    with pytest.raises(Invalid, match="symbolic link"):
        casaos.read_app_dir(tmp_path / "LinkedDir")


def test_compose_that_is_not_a_mapping() -> None:
    with pytest.raises(Invalid, match="mapping"):
        casaos.parse_app("- a\n- b\n")


def test_files_the_store_would_have_to_ship_are_problems() -> None:
    text = """
name: files
include: [other.yml]
services:
  web:
    image: example/x:1
    env_file: [app.env]
    ports: ["8080:80"]
  more:
    extends: {file: base.yml, service: web}
configs:
  conf: {file: ./conf.yml}
  inline: {content: "x"}
secrets:
  key: {file: /etc/shadow}
x-casaos: {main: web, port_map: "8080"}
"""
    problems = " | ".join(casaos.parse_app(text, arch="amd64").problems)
    assert "env_file" in problems
    assert "extends another file" in problems
    assert "includes other files" in problems
    assert "configs.conf" in problems and "secrets.key" in problems
    assert "configs.inline" not in problems


def test_compose_settings_are_never_parameters() -> None:
    text = """
name: sneaky
services:
  web:
    image: example/x:1
    ports: ["${COMPOSE_PORT:-8080}:80"]
    environment: {COMPOSE_PROFILES: x}
    x-casaos:
      envs: [{container: COMPOSE_PROFILES, description: {en_US: profiles}}]
x-casaos: {main: web, port_map: "${COMPOSE_PORT:-8080}"}
"""
    app = casaos.parse_app(text, arch="amd64")
    web = app.compose["services"]["web"]
    assert not [p for p in app.parameters if p.name.startswith("COMPOSE_")]
    assert web["ports"] == ["${WEBUI_PORT}:80"]  # the store's name is not kept
    # a container variable may keep its name; its parameter gets a safe one
    assert web["environment"] == {"COMPOSE_PROFILES": "${WEB_COMPOSE_PROFILES}"}
    elsewhere = casaos.parse_app(text.replace("environment: {COMPOSE_PROFILES: x}",
                                              "command: ${COMPOSE_FILE:-x}"), arch="amd64")
    assert any("COMPOSE_FILE" in p for p in elsewhere.problems)


def test_oldest_layout_with_metadata_in_the_service() -> None:
    app = read("OldStyle")

    assert app.title == {"en": "Old Style"}
    assert app.tagline == {"en": "Old but gold"}
    assert app.description == {"en": "An app in the oldest CasaOS layout."}
    assert app.category == ["Utilities"] and app.author == "Old Devs"
    assert app.icon == "https://cdn.example.org/Apps/OldStyle/icon.png"
    assert app.screenshots == ["https://cdn.example.org/Apps/OldStyle/screenshot-1.png"]
    assert app.main == WebEntry(service="oldstyle", port=8000, path="/start")
    assert param(app, "WEBUI_PORT").label == {"en": "Web UI (old layout)"}
    assert app.compose["services"]["oldstyle"]["volumes"][0]["source"] == "${APP_DATA_DIR}"
    assert app.version == "3.4.2"
