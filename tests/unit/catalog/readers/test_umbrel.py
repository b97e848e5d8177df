"""The Umbrel reader on fixture apps written for these tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stackhub.apps.params import resolve
from stackhub.catalog.models import (
    AppDefinition,
    AppFormat,
    Parameter,
    ParameterType,
    SecretEncoding,
    WebEntry,
)
from stackhub.catalog.readers import detect, umbrel
from stackhub.errors import Invalid, TooLarge

STORE = Path(__file__).resolve().parents[3] / "fixtures" / "stores" / "umbrel"


def read(name: str, *, installed: frozenset[str] = frozenset()) -> AppDefinition:
    return umbrel.read_app_dir(STORE / name, store="umb", installed=installed.__contains__)


def param(app: AppDefinition, name: str) -> Parameter:
    return next(p for p in app.parameters if p.name == name)


# -- metadata and the app proxy --------------------------------------------------------------------


def test_metadata() -> None:
    app = read("fixture-notes")

    assert (app.id, app.ref, app.format) == ("fixture-notes", "umb/fixture-notes", AppFormat.UMBREL)
    assert app.name == "Fixture Notes" and app.title == {"en": "Fixture Notes"}
    assert app.version == "3.2.0"
    assert app.tagline == {"en": "Notes you keep"}
    assert app.description["en"].startswith("A notes app")
    assert app.category == ["files"]
    assert app.screenshots == ["1.jpg", "2.jpg"]
    assert app.website == "https://notes.example.org"
    assert app.author == "Notes Devs"
    assert app.installable


def test_app_proxy_is_replaced_by_a_published_port() -> None:
    app = read("fixture-notes")
    services = app.compose["services"]

    assert "app_proxy" not in services
    assert app.main == WebEntry(service="web", port=80, path="/login")
    assert services["web"]["ports"] == ["${APP_PORT}:80"]
    port = param(app, "APP_PORT")
    assert (port.type, port.default) == (ParameterType.PORT, 8190)
    assert not any("login in front" in n for n in app.notes)  # PROXY_AUTH_ADD: "false"


def test_proxy_auth_and_lists_are_reported() -> None:
    app = read("fixture-addon", installed=frozenset({"fixture-notes"}))
    assert any("Umbrel puts its own login in front" in n for n in app.notes)
    assert any("whitelist/blacklist" in n for n in app.notes)
    assert app.main == WebEntry(service="addon", port=80)


def test_proxy_environment_in_list_form() -> None:
    app = read("fixture-off")
    assert app.main == WebEntry(service="web", port=80)


def test_proxy_target_by_compose_v2_container_name() -> None:
    assert read("fixture-hooked").main == WebEntry(service="web", port=80)


def test_proxy_target_by_ip_variable() -> None:
    app = read("fixture-node")
    assert app.main == WebEntry(service="server", port=3005)
    assert app.compose["services"]["server"]["ports"] == ["${APP_PORT}:3005"]
    assert param(app, "APP_PORT").default == 8191


def test_proxy_to_a_foreign_container_is_a_problem() -> None:
    app = read("fixture-lostproxy")
    assert app.main is None
    assert any("some-other-app_web_1" in p for p in app.problems)


def test_without_proxy_the_manifest_port_finds_the_main_service() -> None:
    app = read("fixture-direct")
    ports = app.compose["services"]["web"]["ports"]

    assert app.main == WebEntry(service="web", port=8080, path="/admin")
    assert ports == ["${APP_PORT}:8080", "127.0.0.1:${PORT_9100_UDP}:9100/udp"]
    assert param(app, "APP_PORT").default == 8197
    assert param(app, "PORT_9100_UDP").protocol == "udp"


# -- variables -------------------------------------------------------------------------------------


def test_app_password_and_seed_are_generated_secrets() -> None:
    app = read("fixture-notes")
    password, seed = param(app, "APP_PASSWORD"), param(app, "APP_SEED")

    assert password.type is seed.type is ParameterType.SECRET
    assert seed.encoding is SecretEncoding.HEX and seed.length == 64
    values = resolve(app.parameters, {}, {}, pick_port=lambda p, w, a: w or 1)
    again = resolve(app.parameters, {}, values, pick_port=lambda p, w, a: w or 1)
    assert len(values["APP_PASSWORD"]) == 32
    assert len(values["APP_SEED"]) == 64 and int(values["APP_SEED"], 16) >= 0
    assert again["APP_PASSWORD"] == values["APP_PASSWORD"]  # kept across re-renders
    assert any("APP_PASSWORD parameter" in n for n in app.notes)
    assert "default username: umbrel" in app.notes


def test_device_names_and_platform_values() -> None:
    app = read("fixture-notes")
    host = param(app, "DEVICE_HOSTNAME")

    assert (host.type, host.default) == (ParameterType.HOST, "localhost")
    assert app.derived == {"DEVICE_DOMAIN_NAME": "${DEVICE_HOSTNAME}", "APP_VERSION": "3.2.0",
                           "UMBREL_ROOT": "${APP_DATA_DIR}/umbrel", "NETWORK_IP": "172.16.0.0"}
    web = app.compose["services"]["web"]
    assert "${APP_DATA_DIR}/data/web:/data" in web["volumes"]  # APP_DATA_DIR is native
    assert any("UMBREL_ROOT" in n for n in app.notes)
    assert any("permissions" in n and "STORAGE_DOWNLOADS" in n for n in app.notes)


def test_container_names_stay_reachable_as_aliases() -> None:
    services = read("fixture-notes").compose["services"]
    assert services["web"]["environment"]["DB_HOST"] == "fixture-notes_db_1"
    assert services["db"]["networks"] == {"default": {"aliases": ["fixture-notes_db_1"]}}
    assert services["web"]["networks"] == {"default": {"aliases": ["fixture-notes_web_1"]}}


def test_pinned_images_are_kept() -> None:
    db = read("fixture-notes").compose["services"]["db"]
    assert db["image"].endswith("@sha256:" + "0" * 63 + "1")
    assert db["image"].startswith("postgres:16.4-alpine@")


# -- exports.sh ------------------------------------------------------------------------------------


def test_plain_exports_become_derived_values() -> None:
    app = read("fixture-node")
    derived = app.derived

    assert derived["APP_FIXTURE_NODE_DATA_DIR"] == "${APP_DATA_DIR}/data/node"
    assert derived["APP_FIXTURE_NODE_RPC_PORT"] == "8332"
    assert derived["APP_FIXTURE_NODE_P2P_PORT"] == "8333"
    assert derived["APP_FIXTURE_NODE_NAME"] == "node"
    assert derived["APP_FIXTURE_NODE_URL"] == "http://${DEVICE_HOSTNAME}:8332"
    assert derived["APP_FIXTURE_NODE_APP"] == "fixture-node"
    # this app's own fixed service addresses become service names
    assert derived["APP_FIXTURE_NODE_IP"] == "server"
    assert derived["APP_FIXTURE_NODE_NODE_IP"] == "node"
    assert app.installable


def test_fixed_addresses_are_removed() -> None:
    app = read("fixture-node")
    for service in app.compose["services"].values():
        assert "ipv4_address" not in service["networks"]["default"]
    assert any("fixed container IP addresses" in n for n in app.notes)


def test_exported_ports_become_port_parameters() -> None:
    app = read("fixture-node")
    node = app.compose["services"]["node"]

    assert node["ports"] == ["${PORT_8333}:${APP_FIXTURE_NODE_P2P_PORT}", "${PORT_28332}:28332"]
    assert param(app, "PORT_8333").default == 8333


@pytest.mark.parametrize(("text", "expected"), [
    ('export A="1"\nexport B=two\n', {"A": "1", "B": "two"}),
    ("# comment\n\nexport A='x y'\n", {"A": "x y"}),
    ('export A="${EXPORTS_APP_DIR}/d"  # trailing comment\n', {"A": "${EXPORTS_APP_DIR}/d"}),
    ('export A="say \\"hi\\""\n', {"A": 'say "hi"'}),
    ('export A="$(cat /etc/passwd)"\n', None),
    ("export A=`id`\n", None),
    ('export A="\\$HOME"\n', None),
    ("export A='$HOME'\n", None),
    ('A="1"\n', None),
    ("export A=two words\n", None),
    ('if [[ -f x ]]; then\n  export A="1"\nfi\n', None),
    ('export A="unterminated\n', None),
    ("export A=x; rm -rf /\n", None),
])
def test_parse_exports(text: str, expected: dict[str, str] | None) -> None:
    assert umbrel.parse_exports(text) == expected


def test_exports_with_shell_logic_are_carried_for_the_sandbox() -> None:
    app = read("fixture-scripted")
    assert app.installable, app.problems
    exports = (STORE / "fixture-scripted" / "exports.sh").read_text()
    assert app.scripts == {"exports.sh": exports}
    # the plain line is a default; the computed one a placeholder the sandbox run fills
    assert app.derived["APP_FIXTURE_SCRIPTED_PORT"] == "9000"
    assert app.derived["APP_FIXTURE_SCRIPTED_MODE"] == ""
    assert any("store-script sandbox" in n for n in app.notes)
    text = (STORE / "fixture-scripted" / "umbrel-app.yml").read_text()
    needy = umbrel.parse_app(text, "services:\n  web:\n    image: example/x:1\n"
                             "    environment: {X: '${APP_OTHER}'}\n",
                             exports_text="if true; then export A=1; fi\n")
    assert any("does not visibly export: APP_OTHER" in p for p in needy.problems)
    huge = umbrel.parse_app(text, "services:\n  web:\n    image: example/x:1\n",
                            exports_text="if true; then export A=1; fi\n" + "#" * 70000)
    assert any("larger than" in p for p in huge.problems) and not huge.scripts


def test_start_and_install_hooks_are_carried_pre_install_still_blocks(tmp_path: Path) -> None:
    app = tmp_path / "hooky"
    (app / "hooks").mkdir(parents=True)
    (app / "umbrel-app.yml").write_text("manifestVersion: 1\nid: hooky\nname: H\nport: 80\n")
    (app / "docker-compose.yml").write_text("services:\n  web:\n    image: example/x:1\n")
    (app / "hooks" / "pre-start").write_text("#!/bin/bash\nmkdir -p \"$APP_DATA_DIR/x\"\n")
    read_ok = umbrel.read_app_dir(app)
    assert read_ok.installable and list(read_ok.scripts) == ["hooks/pre-start"]
    (app / "hooks" / "pre-start").write_bytes(b"\xff\xfe binary")
    assert any("pre-start hook is not a UTF-8" in p for p in umbrel.read_app_dir(app).problems)
    (app / "hooks" / "pre-start").unlink()
    (app / "hooks" / "post-start").write_text("#!/bin/bash\n")
    (app / "hooks" / "post-install").write_text("#!/bin/bash\n")
    after = umbrel.read_app_dir(app)
    assert after.installable and sorted(after.scripts) == ["hooks/post-install",
                                                           "hooks/post-start"]
    assert any("post-start hook runs in StackHub's store-script sandbox" in n
               for n in after.notes)
    (app / "hooks" / "pre-install").write_text("#!/bin/bash\n")
    assert any("pre-install hook" in p for p in umbrel.read_app_dir(app).problems)


def test_a_long_hook_is_carried_up_to_its_limit(tmp_path: Path) -> None:
    app = tmp_path / "snowy"
    (app / "hooks").mkdir(parents=True)
    (app / "umbrel-app.yml").write_text("manifestVersion: 1\nid: snowy\nname: S\nport: 80\n")
    (app / "docker-compose.yml").write_text("services:\n  web:\n    image: example/x:1\n")
    page = "cat > \"$APP_DATA_DIR/index.html\" <<'EOF'\n" + "<p>x</p>\n" * 15_000 + "EOF\n"
    (app / "hooks" / "pre-start").write_text(page)  # ~120 KiB, as snowflake's
    assert umbrel.read_app_dir(app).scripts["hooks/pre-start"] == page
    (app / "hooks" / "pre-start").write_text(page * 3)
    too_long = umbrel.read_app_dir(app)
    assert not too_long.installable and "hooks/pre-start" not in too_long.scripts
    assert any(f"at most {umbrel.MAX_HOOK_BYTES} bytes" in p for p in too_long.problems)


# -- what cannot be honoured -----------------------------------------------------------------------


def test_tor_only_and_disabled_are_problems() -> None:
    assert any("torOnly" in p for p in read("fixture-tor").problems)
    assert any("disabled" in p for p in read("fixture-off").problems)


def test_a_dependency_is_noted_and_checked_against_the_store() -> None:
    missing = read("fixture-addon")
    assert missing.installable, missing.problems  # the planner installs dependencies first
    assert missing.dependencies == ["fixture-notes"]  # removal of fixture-notes checks these
    assert any("needs the app 'fixture-notes' installed first" in n for n in missing.notes)
    detect.check_dependencies([missing], lambda _: False)
    assert missing.problems == ["needs the app 'fixture-notes', which this store does not "
                                "offer"]
    present = read("fixture-addon")
    detect.check_dependencies([present], frozenset({"fixture-notes"}).__contains__)
    assert present.installable


def test_a_dependency_that_cannot_be_installed_blocks_its_dependents() -> None:
    node, wallet, off = read("fixture-node"), read("fixture-wallet"), read("fixture-off")
    detect.check_dependencies([node, wallet], lambda _: False)
    assert node.installable and wallet.installable
    node.problems.append("the store has disabled this app")
    wallet = read("fixture-wallet")
    detect.check_dependencies([node, wallet, off], lambda _: False)
    assert wallet.problems == ["needs the app 'fixture-node', which cannot be installed"]
    loop_a, loop_b = read("fixture-addon"), read("fixture-wallet")
    loop_a.id, loop_a.dependencies = "fixture-node", ["fixture-wallet"]
    detect.check_dependencies([loop_a, loop_b], lambda _: False)
    assert any("cycle" in p for p in loop_a.problems + loop_b.problems)


def test_values_exported_by_a_dependency_are_imports() -> None:
    wallet = read("fixture-wallet")
    assert wallet.installable, wallet.problems
    assert wallet.imports == {"APP_FIXTURE_NODE_RPC_PORT": "fixture-node"}
    assert wallet.derived["APP_FIXTURE_NODE_RPC_PORT"] == ""  # filled at plan time
    assert any("receives APP_FIXTURE_NODE_RPC_PORT" in n for n in wallet.notes)


def test_services_at_exported_addresses_join_the_link_network() -> None:
    node = read("fixture-node")
    assert node.exposes == {"APP_FIXTURE_NODE_IP": "server", "APP_FIXTURE_NODE_NODE_IP": "node"}
    assert node.compose["networks"][umbrel.LINK_NETWORK] == {}
    services = node.compose["services"]
    assert services["node"]["networks"][umbrel.LINK_NETWORK] == {
        "aliases": ["fixture-node_node_1"]}
    assert "ipv4_address" not in services["node"]["networks"]["default"]
    assert node.derived["APP_FIXTURE_NODE_NODE_IP"] == "node"  # its own services: by name


def test_umbrels_tor_proxy_is_a_needs_tor_problem() -> None:
    text = "manifestVersion: 1\nid: torry\nname: T\nport: 80\n"
    compose = ("services:\n  web:\n    image: example/x:1\n    environment:\n"
               "      P: ${TOR_PROXY_IP}:${TOR_PROXY_PORT}\n    volumes:\n"
               "      - ${TOR_DATA_DIR}:/tor\n")
    app = umbrel.parse_app(text, compose, exports_text="if true; then export A=1; fi\n")
    assert app.problems == ["needs Tor: it uses Umbrel's Tor proxy (TOR_PROXY_IP, "
                            "TOR_PROXY_PORT), which StackHub does not run"]
    assert app.derived["TOR_DATA_DIR"] == "${APP_DATA_DIR}/umbrel/tor/data"
    # the same without exports.sh (robosats, krystal-bull): not a variable "left empty"
    plain = umbrel.parse_app(text, compose)
    assert plain.problems == app.problems
    # an app's own Tor proxy (an address it exports) or a default is not Umbrel's Tor
    own = umbrel.parse_app(text, compose.replace("${TOR_PROXY_IP}:${TOR_PROXY_PORT}",
                                                 "${TOR_PROXY_IP:-none}:9050"))
    assert own.installable, own.problems


def test_a_variable_used_only_with_a_default_is_not_required() -> None:
    text = "manifestVersion: 1\nid: defaulted\nname: D\nport: 80\n"
    compose = ("services:\n  web:\n    image: example/x:1\n    environment:\n"
               "      MODE: ${LATER_FLAG:-unset}\n      OTHER: ${LATER_FLAG-x}\n")
    scripted = "if true; then export A=1; fi\n"
    app = umbrel.parse_app(text, compose, exports_text=scripted)
    assert app.installable, app.problems
    bare = umbrel.parse_app(text, compose + "      BARE: ${LATER_FLAG}\n",
                            exports_text=scripted)
    assert bare.problems == ["the app needs variables its exports.sh does not visibly "
                             "export: LATER_FLAG"]


def test_exports_written_through_an_env_file_are_seen() -> None:
    script = ('echo "export APP_X_RPC_USER=\'u\'" >> "$F"\n'
              "echo \"export APP_X_RPC_PASS='p'\" >> \"$F\"\nsource \"$F\"\n")
    assert umbrel.exported_names(script) == ["APP_X_RPC_USER", "APP_X_RPC_PASS"]


def test_hooks_templates_and_seed_files() -> None:
    app = read("fixture-hooked")
    problems = " | ".join(app.problems)

    assert "pre-install hook" in problems
    assert "torrc" not in problems and "data/config.yml" not in problems  # both are carried
    assert any("post-update hook is not run" in n for n in app.notes)
    assert [(f.path, f.template) for f in app.files] == [("torrc", True),
                                                         ("data/config.yml", False)]
    assert app.files[1].content == "listen: 0.0.0.0\n"
    assert "${APP_HOST}:80" in app.files[0].content
    assert any("torrc.template uses APP_HOST, which StackHub does not set" in n
               for n in app.notes)


UMBREL_MANIFEST = "manifestVersion: 1\nid: seeded\nname: Seeded\nport: 8080\n"
UMBREL_COMPOSE = """\
services:
  web:
    image: example/seeded:1
    ports: ["8080:80"]
    environment:
      PASSWORD: ${APP_PASSWORD}
    volumes:
      - ${APP_DATA_DIR}/data/settings.json:/settings.json
      - ${APP_DATA_DIR}/app.conf:/app.conf
"""


def seeded_app(tmp_path: Path, files: dict[str, bytes]) -> AppDefinition:
    folder = tmp_path / "seeded"
    folder.mkdir(parents=True)
    (folder / "umbrel-app.yml").write_text(UMBREL_MANIFEST)
    (folder / "docker-compose.yml").write_text(UMBREL_COMPOSE)
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return umbrel.read_app_dir(folder, store="umb")


def test_seeds_and_templates_are_carried_and_template_variables_count_as_used(
        tmp_path: Path) -> None:
    app = seeded_app(tmp_path, {"data/settings.json": b'{"a": 1}\n',
                                "app.conf.template": b"seed=${APP_SEED} host=$APP_DOMAIN\n",
                                "data/empty/.gitkeep": b""})
    assert app.installable, app.problems
    assert {f.path: (f.template, f.content) for f in app.files} == {
        "app.conf": (True, "seed=${APP_SEED} host=$APP_DOMAIN\n"),
        "data/empty/.gitkeep": (False, ""),
        "data/settings.json": (False, '{"a": 1}\n')}
    names = {p.name for p in app.parameters}
    assert {"APP_PASSWORD", "APP_SEED", "DEVICE_HOSTNAME"} <= names  # the template's too
    assert app.derived["APP_DOMAIN"] == "${DEVICE_HOSTNAME}"


def test_a_mounted_binary_or_oversized_seed_is_a_problem(tmp_path: Path) -> None:
    binary = seeded_app(tmp_path / "a", {"data/settings.json": b"\xff\xfe\x00",
                                         "app.conf.template": b"x\n"})
    assert any("mounts data/settings.json" in p and "UTF-8 text" in p for p in binary.problems)
    big = seeded_app(tmp_path / "b", {"data/settings.json": b"{}",
                                      "app.conf.template": b"x" * (umbrel.MAX_SEED_BYTES + 1)})
    assert any("mounts app.conf, which Umbrel renders from app.conf.template" in p
               for p in big.problems)


def test_unmounted_unusable_seeds_are_only_noted(tmp_path: Path) -> None:
    app = seeded_app(tmp_path, {"data/settings.json": b"{}", "app.conf.template": b"x\n",
                                "data/logo.png": b"\x89PNG\x00\xff"})
    assert app.installable, app.problems
    assert any("data/logo.png" in n and "not copied" in n for n in app.notes)


def test_harmless_hooks_and_empty_seed_folders_are_notes() -> None:
    app = read("fixture-node")
    assert app.installable
    assert any("pre-stop hook is not run" in n for n in app.notes)
    assert not any("seed files" in n for n in app.notes)  # only .gitkeep


def test_newer_manifest_version_is_noted() -> None:
    app = umbrel.parse_app("manifestVersion: 2\nid: future\nname: Future\nport: 80\n",
                           "services:\n  web:\n    image: example/x:1\n    ports: ['80:80']\n")
    assert any("manifestVersion 2" in n for n in app.notes)
    assert app.main == WebEntry(service="web", port=80)


# -- malformed apps --------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "error", "text"), [
    ("fixture-badyaml", Invalid, "umbrel-app.yml is not valid YAML"),
    ("fixture-nocompose", Invalid, "docker-compose.yml is missing"),
    ("fixture-noid", Invalid, "no valid id"),
    ("fixture-bomb", TooLarge, "alias bomb"),
])
def test_malformed_apps(name: str, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        read(name)


def test_manifest_without_name() -> None:
    with pytest.raises(Invalid, match="no name"):
        umbrel.parse_app("id: x\n", "services: {web: {image: a}}\n")


def test_symlinked_exports_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "fixture-node"
    shutil.copytree(STORE / "fixture-node", folder)
    (folder / "exports.sh").unlink()
    (folder / "exports.sh").symlink_to("/etc/hostname")
    with pytest.raises(Invalid, match="symbolic link"):
        umbrel.read_app_dir(folder)


# -- the store file --------------------------------------------------------------------------------


def test_read_store_meta(tmp_path: Path) -> None:
    assert umbrel.read_store_meta(STORE) == {"id": "fixture", "name": "StackHub fixture store"}
    assert umbrel.read_store_meta(tmp_path) is None
    (tmp_path / "umbrel-app-store.yml").write_text("id: ../x\n")
    with pytest.raises(Invalid, match="no valid id"):
        umbrel.read_store_meta(tmp_path)


def test_exports_cannot_set_compose_settings() -> None:
    app = umbrel.parse_app("id: x\nname: X\n", "services: {web: {image: a}}\n",
                           exports_text='export COMPOSE_FILE="/etc/passwd"\nexport A="1"\n')
    assert "COMPOSE_FILE" not in app.derived
    assert any("COMPOSE_FILE" in p for p in app.problems)


def test_host_network_app_without_proxy() -> None:
    app = umbrel.parse_app("id: hub\nname: Hub\nport: 8123\n",
                           "services:\n  server:\n    image: example/hub:1\n"
                           "    network_mode: host\n")
    assert app.main == WebEntry(service="server", port=8123)
    assert any("host networking" in n for n in app.notes)


# -- env files (9 apps of the real store read one from their own folder) ------------------------

ENV_COMPOSE = """\
services:
  web:
    image: stackhub-test/web:1
    env_file:
      - ${APP_DATA_DIR}/settings.env
      - path: ${APP_DATA_DIR}/config/prod.env
        required: true
      - path: ${APP_DATA_DIR}/optional.env
        required: false
"""


def env_app(tmp_path: Path, files: dict[str, bytes], compose: str = ENV_COMPOSE) -> AppDefinition:
    folder = tmp_path / "enved"
    folder.mkdir(parents=True)
    (folder / "umbrel-app.yml").write_text(UMBREL_MANIFEST)
    (folder / "docker-compose.yml").write_text(compose)
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return umbrel.read_app_dir(folder, store="umb")


def test_env_files_of_the_apps_folder_are_shipped(tmp_path: Path) -> None:
    app = env_app(tmp_path, {"settings.env": b"MODE=prod\n", "config/prod.env": b"LEVEL=3\n"})
    assert app.installable, app.problems
    assert {f.path: (f.template, f.content) for f in app.files} == {
        "settings.env": (False, "MODE=prod\n"), "config/prod.env": (False, "LEVEL=3\n")}


def test_a_missing_or_unsafe_env_file_is_a_problem(tmp_path: Path) -> None:
    missing = env_app(tmp_path / "a", {"settings.env": b"MODE=prod\n"})
    assert not missing.installable
    assert any("config/prod.env, which the store does not ship" in p for p in missing.problems)
    foreign = env_app(tmp_path / "c", {}, compose=(
        "services:\n  web:\n    image: x\n    env_file: [/etc/environment, "
        "'${APP_DATA_DIR}/../../secrets.env']\n"))
    assert sum("copies env files of the app's own folder" in p for p in foreign.problems) == 2


def test_an_env_file_behind_a_folder_link_is_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "prod.env").write_text("SECRET=stolen\n")
    folder = tmp_path / "enved"
    folder.mkdir()
    (folder / "umbrel-app.yml").write_text(UMBREL_MANIFEST)
    (folder / "docker-compose.yml").write_text(ENV_COMPOSE)
    (folder / "settings.env").write_text("A=1\n")
    (folder / "config").symlink_to(outside)
    app = umbrel.read_app_dir(folder, store="umb")
    assert all("stolen" not in f.content for f in app.files)
    assert any("config/prod.env, which the store does not ship" in p for p in app.problems)


HOOK_WRITES_ENV = """#!/usr/bin/env bash
ENV_FILE="${APP_DATA_DIR}/settings.env"
touch "${ENV_FILE}"
"""


def test_an_env_file_a_pre_start_script_creates_is_a_note(tmp_path: Path) -> None:
    compose = ("services:\n  web:\n    image: x\n    env_file:\n"
               "      - ${APP_DATA_DIR}/settings.env\n")
    folder = tmp_path / "enved"
    (folder / "hooks").mkdir(parents=True)
    (folder / "umbrel-app.yml").write_text(UMBREL_MANIFEST)
    (folder / "docker-compose.yml").write_text(compose)
    (folder / "hooks" / "pre-start").write_text(HOOK_WRITES_ENV)
    app = umbrel.read_app_dir(folder, store="umb")
    assert app.installable, app.problems
    assert any("settings.env, which the store's pre-start script creates" in n
               for n in app.notes)
    assert "hooks/pre-start" in app.scripts and not app.files
    # naming another file, or only a post-start hook, does not count
    (folder / "hooks" / "pre-start").write_text(HOOK_WRITES_ENV.replace("settings.env",
                                                                        "settings.env.bak"))
    assert any("settings.env, which the store does not ship" in p
               for p in umbrel.read_app_dir(folder, store="umb").problems)
    (folder / "hooks" / "pre-start").unlink()
    (folder / "hooks" / "post-start").write_text(HOOK_WRITES_ENV)
    assert any("settings.env, which the store does not ship" in p
               for p in umbrel.read_app_dir(folder, store="umb").problems)
    (folder / "hooks" / "post-start").unlink()
    (folder / "exports.sh").write_text(
        'if true; then touch "${EXPORTS_APP_DIR}/settings.env"; fi\n')
    assert umbrel.read_app_dir(folder, store="umb").installable
