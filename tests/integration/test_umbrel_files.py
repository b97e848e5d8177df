"""An Umbrel app's seed files and templates reach its containers (real store, engine, httpd)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import Server, free_port, http_text

pytestmark = pytest.mark.integration


def umbrel_store(root: Path, port: int) -> Path:
    """A local Umbrel store with one app that mounts a seed file and a rendered template."""
    app = root / "seeded"
    (app / "data").mkdir(parents=True)
    (app / "umbrel-app.yml").write_text(
        f"manifestVersion: 1\nid: seeded\nname: Seeded\nversion: '1.0'\nport: {port}\n")
    (app / "docker-compose.yml").write_text(f"""
services:
  web:
    image: stackhub-test/web:1
    ports: ["{port}:80"]
    volumes:
      - ${{APP_DATA_DIR}}/data/index.html:/www/index.html:ro
      - ${{APP_DATA_DIR}}/greeting.txt:/www/greeting.txt:ro
    stop_grace_period: 1s
""")
    (app / "data" / "index.html").write_text("seeded page\n")
    (app / "greeting.txt.template").write_text("hello ${DEVICE_HOSTNAME} from ${APP_ID}\n")
    return root


def test_seed_files_and_templates_are_in_the_container(server: Server, tmp_path: Path) -> None:
    port = free_port()
    store = umbrel_store(tmp_path / "umbrel-store", port)
    added = server.api("POST", "/api/stores", json={"name": "umb", "source": str(store),
                                                     "local": True})
    assert added.status_code == 201, added.text
    shown = server.api("GET", "/api/catalog/apps/umb/seeded").json()
    assert shown["installable"], shown.get("problems")
    result = server.cli("app", "install", "umb/seeded", "--name", "t-seeded", "--yes",
                        "--set", "DEVICE_HOSTNAME=box.lan")
    assert result.returncode == 0, result.stderr + result.stdout
    assert http_text(port, path="/index.html") == "seeded page\n"
    assert http_text(port, path="/greeting.txt") == "hello box.lan from seeded\n"
    data = server.data_dir / "appdata" / "t-seeded"
    assert (data / "data" / "index.html").is_file()  # a file, not a folder Docker made up
    # the user's edits survive a reinstall under the same name (data is kept by default)
    (data / "data" / "index.html").write_text("edited\n")
    assert server.cli("app", "remove", "t-seeded", "--yes").returncode == 0
    again = server.cli("app", "install", "umb/seeded", "--name", "t-seeded", "--yes")
    assert again.returncode == 0, again.stderr
    assert http_text(port, path="/index.html") == "edited\n"


def install_from_local_store(server: Server, app: Path, store: str, name: str) -> None:
    """Add `app`'s folder as a local store, check the app is installable, install it as `name`."""
    added = server.api("POST", "/api/stores", json={"name": store, "source": str(app.parent),
                                                    "local": True})
    assert added.status_code == 201, added.text
    shown = server.api("GET", f"/api/catalog/apps/{store}/{app.name}").json()
    assert shown["installable"], shown.get("problems")
    result = server.cli("app", "install", f"{store}/{app.name}", "--name", name, "--yes")
    assert result.returncode == 0, result.stderr + result.stdout


def test_env_files_from_the_apps_folder_reach_the_container(server: Server,
                                                           tmp_path: Path) -> None:
    port = free_port()
    app = tmp_path / "umbrel-env" / "enved"
    (app / "config").mkdir(parents=True)
    (app / "umbrel-app.yml").write_text(
        f"manifestVersion: 1\nid: enved\nname: Enved\nversion: '1.0'\nport: {port}\n")
    (app / "docker-compose.yml").write_text(f"""
services:
  web:
    image: stackhub-test/web:1
    ports: ["{port}:80"]
    env_file:
      - ${{APP_DATA_DIR}}/settings.env
      - path: ${{APP_DATA_DIR}}/config/prod.env
    command: ["sh", "-c", "echo $$MODE $$LEVEL > /www/env.txt && exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
""")
    (app / "settings.env").write_text("MODE=prod\n")
    (app / "config" / "prod.env").write_text("LEVEL=3\n")
    install_from_local_store(server, app, "umbenv", "t-enved")
    assert http_text(port, path="/env.txt") == "prod 3\n"
    data = server.data_dir / "appdata" / "t-enved"
    assert (data / "config" / "prod.env").read_text() == "LEVEL=3\n"
    assert server.cli("app", "remove", "t-enved", "--yes", "--purge").returncode == 0


def test_an_env_file_its_pre_start_hook_writes_reaches_the_container(server: Server,
                                                                    tmp_path: Path) -> None:
    # as lobe-chat's hook does: the store ships no settings.env, its pre-start hook writes it
    port = free_port()
    app = tmp_path / "umbrel-made" / "made"
    (app / "hooks").mkdir(parents=True)
    (app / "umbrel-app.yml").write_text(
        f"manifestVersion: 1\nid: made\nname: Made\nversion: '1.0'\nport: {port}\n")
    (app / "docker-compose.yml").write_text(f"""
services:
  web:
    image: stackhub-test/web:1
    ports: ["{port}:80"]
    env_file:
      - ${{APP_DATA_DIR}}/settings.env
    command: ["sh", "-c", "echo $$MODE > /www/env.txt && exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
""")
    (app / "hooks" / "pre-start").write_text(
        '#!/usr/bin/env bash\nset -euo pipefail\nENV_FILE="${APP_DATA_DIR}/settings.env"\n'
        '[[ -f "${ENV_FILE}" ]] || echo "MODE=made-by-hook" > "${ENV_FILE}"\n')
    install_from_local_store(server, app, "umbmade", "t-made")
    assert http_text(port, path="/env.txt") == "made-by-hook\n"
    assert server.cli("app", "remove", "t-made", "--yes", "--purge").returncode == 0
