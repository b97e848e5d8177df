"""Validate every app of the official store: readable, complete, and accepted by Compose."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest

from stackhub import yamlsafe
from stackhub.adapters.compose import ResolvedProject
from stackhub.apps import params, risk
from stackhub.apps.render import env_file_text, render
from stackhub.catalog.models import AppDefinition, Parameter, ParameterType
from stackhub.catalog.readers.stackhub import read_app_dir
from stackhub.platform import PLATFORM_VARS, platform_env

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
STORE = REPO / "store" / "apps"
APP_DIRS = sorted(p for p in STORE.iterdir() if p.is_dir()) if STORE.is_dir() else []
EXAMPLE_DIRS = sorted(p for p in (REPO / "examples" / "apps").glob("*") if p.is_dir())

# Apps allowed to ask for risky options, and exactly which ones they ask for.
EXPECTED_RISKS: dict[str, set[str]] = {
    "portainer": {"docker_socket"},  # manages the local engine
    "dozzle": {"docker_socket"},  # reads container logs from the engine
}
CATEGORIES = {"media", "productivity", "developer", "home-automation", "network", "security",
              "storage", "photos", "finance", "utilities", "monitoring", "communication", "ai"}
ARCHITECTURES = {"amd64", "arm64", "arm"}
LOCALES = ("en", "zh-CN")
# `compose config` runs at once (each mostly waits on the CLI's start; 95 in a row took ~60 s)
COMPOSE_WORKERS = 4
DATA_ROOT = Path("/var/lib/stackhub")
VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|(?<!\$)\$([A-Za-z_][A-Za-z0-9_]*)")
# Long-running services must restart; one-shot helpers (none today) would be listed here.
ONE_SHOT: set[tuple[str, str]] = set()


def _ids(dirs: list[Path]) -> list[str]:
    return [d.name for d in dirs]


def _read(folder: Path) -> AppDefinition:
    return read_app_dir(folder, store="official")


def _sample(param: Parameter) -> str:
    """Return a valid value for a required parameter that has no default."""
    samples = {
        ParameterType.PASSWORD: "Correct-horse-42",
        ParameterType.EMAIL: "admin@example.com",
        ParameterType.URL: "https://app.example.com",
        ParameterType.HOST: "app.example.com",
        ParameterType.PATH: "/srv/sample",
        ParameterType.NUMBER: str(int(param.min or 1)),
        ParameterType.BOOLEAN: "true",
    }
    if param.type is ParameterType.ENUM:
        return param.options[0].value
    return samples.get(param.type, "sample-value")


def _resolve(app: AppDefinition) -> dict[str, str]:
    counter = itertools.count(40000)

    def pick_port(param: Parameter, wanted: int | None, asked: bool) -> int:
        return wanted if wanted is not None else next(counter)

    given = {p.name: _sample(p) for p in app.parameters if p.required and p.default is None}
    return params.resolve(app.parameters, given, {}, pick_port=pick_port)


def _compose_config(folder: Path, compose: dict[str, Any], env: dict[str, str]) -> Any:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "compose.yaml").write_text(yamlsafe.dump(compose))
    (folder / ".env").write_text(env_file_text(env))
    result = subprocess.run(
        ["docker", "compose", "--project-directory", str(folder), "-f",
         str(folder / "compose.yaml"), "--env-file", str(folder / ".env"), "-p", "test",
         "config", "--format", "json"],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"docker compose config failed:\n{result.stderr}"
    assert "variable is not set" not in result.stderr, result.stderr
    return json.loads(result.stdout)


def _render_and_check(folder: Path, tmp_path: Path
                      ) -> tuple[AppDefinition, dict[str, str], dict[str, Any], str]:
    """Resolve, render and run `compose config`; return the app, values, model, data dir."""
    app = _read(folder)
    values = _resolve(app)
    instance = f"t-{app.id.replace('.', '-').replace('_', '-')}"[:40]
    data_dir = DATA_ROOT / "appdata" / instance
    platform = platform_env(instance=instance, app_id=app.id, data_dir=data_dir, tz="Etc/UTC")
    rendered = render(app, instance=instance, values=values, platform=platform,
                      data_dir=data_dir)
    resolved = _compose_config(tmp_path / "project", rendered.compose, rendered.env)
    return app, values, resolved, str(data_dir)


@pytest.fixture(scope="module")
def docker_compose() -> None:
    if shutil.which("docker") is None:
        pytest.fail("the docker CLI is not installed")


Checked = tuple[AppDefinition, dict[str, str], dict[str, Any], str]


@pytest.fixture(scope="module")
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             docker_compose: None) -> dict[Path, Checked | BaseException]:
    """Render and `compose config` every app folder this run's tests ask for, concurrently.

    Each folder's result (or the error it raised) is kept, and its own test reads it back, so a
    failure still names the app.
    """
    asked = {item.callspec.params["folder"] for item in request.session.items
             if isinstance(item, pytest.Function) and item.module is request.module
             and item.originalname in ("test_renders_and_compose_accepts_it",
                                       "test_examples_render_too")}
    folders = [folder for folder in [*APP_DIRS, *EXAMPLE_DIRS] if folder in asked]
    root = tmp_path_factory.mktemp("rendered")

    def check(indexed: tuple[int, Path]) -> Checked | BaseException:
        index, folder = indexed
        try:
            return _render_and_check(folder, root / f"{index}-{folder.name}")
        except Exception as err:  # handed to the app's own test, which raises it
            return err

    with ThreadPoolExecutor(COMPOSE_WORKERS) as pool:
        return dict(zip(folders, pool.map(check, enumerate(folders)), strict=True))


def _checked(rendered: dict[Path, Checked | BaseException], folder: Path) -> Checked:
    """Return one folder's render and `compose config` result, or raise its error."""
    result = rendered[folder]
    if isinstance(result, BaseException):
        raise result
    return result


def test_store_has_at_least_30_apps() -> None:
    assert len(APP_DIRS) >= 30, [d.name for d in APP_DIRS]


@pytest.mark.parametrize("folder", APP_DIRS, ids=_ids(APP_DIRS))
def test_manifest_is_complete(folder: Path) -> None:
    app = _read(folder)
    assert app.id == folder.name
    assert app.version and app.version != "latest"
    assert app.revision is not None and app.revision >= 1
    for field in (app.title, app.tagline, app.description):
        for locale in LOCALES:
            assert field.get(locale, "").strip(), f"missing {locale} text"
    assert re.search(r"[\u4e00-\u9fff]", app.description["zh-CN"]), "zh-CN text is not Chinese"
    assert app.category and set(app.category) <= CATEGORIES, app.category
    assert app.architectures and set(app.architectures) <= ARCHITECTURES
    assert app.website and app.website.startswith("https://")
    assert app.author
    assert app.main is not None
    assert app.icon, "no icon declared"
    icon = folder / app.icon
    assert icon.is_file() and not icon.is_symlink()
    if icon.suffix == ".svg":
        root = ElementTree.fromstring(icon.read_text())
        assert root.tag.endswith("svg")
        assert icon.stat().st_size < 8 * 1024
    for param in app.parameters:
        for locale in LOCALES:
            assert param.label.get(locale), f"{param.name}: no {locale} label"
        if param.type is ParameterType.PORT:
            assert isinstance(param.default, int), f"{param.name}: ports need a default"
        if param.type is ParameterType.PASSWORD:
            assert (param.min or 0) >= 8, f"{param.name}: passwords need min >= 8"
        if param.type is ParameterType.ENUM:
            assert param.default in [o.value for o in param.options]
        if param.type is ParameterType.PATH and param.default is not None:
            assert str(param.default).startswith("/")


@pytest.mark.parametrize("folder", APP_DIRS, ids=_ids(APP_DIRS))
def test_compose_template_follows_the_rules(folder: Path) -> None:
    app = _read(folder)
    compose = app.compose
    assert "volumes" not in compose, "user data goes under ${APP_DATA_DIR}, not named volumes"
    known = {p.name for p in app.parameters} | PLATFORM_VARS
    text = (folder / "compose.yaml").read_text()
    used = {a or b for a, b in VAR.findall(text)}
    assert used <= known, f"undeclared variables: {sorted(used - known)}"
    declared_ports = {p.name for p in app.parameters if p.type is ParameterType.PORT}
    for name, service in compose["services"].items():
        image = service["image"]
        assert "@" not in image, f"{name}: no digests, pin a tag"
        last = image.rsplit("/", 1)[-1]
        assert ":" in last, f"{name}: image {image} has no tag"
        assert last.split(":", 1)[1] not in ("latest", "stable", "release"), image
        if (app.id, name) not in ONE_SHOT:
            assert service.get("restart") == "unless-stopped", f"{name}: restart policy"
        assert "container_name" not in service
        assert "build" not in service
        for port in service.get("ports") or []:
            published = str(port).split(":")[0]
            assert published.startswith("${") and published[2:-1] in declared_ports, (
                f"{name}: publish through a port parameter, not {port}")
        for volume in service.get("volumes") or []:
            source = str(volume).split(":")[0] if isinstance(volume, str) else volume["source"]
            assert source.startswith(("${APP_DATA_DIR}/", "${", "/var/run/docker.sock")), (
                f"{name}: bind {source} must live under ${{APP_DATA_DIR}} or a path parameter")
        for dep, spec in (service.get("depends_on") or {}).items():
            assert dep in compose["services"]
            assert spec.get("condition") in ("service_healthy", "service_started",
                                              "service_completed_successfully")
    assert app.main is not None
    assert app.main.service in compose["services"]


@pytest.mark.parametrize("folder", APP_DIRS, ids=_ids(APP_DIRS))
def test_renders_and_compose_accepts_it(
        folder: Path, rendered: dict[Path, Checked | BaseException]) -> None:
    app, values, resolved, data_dir = _checked(rendered, folder)
    found = risk.analyse(ResolvedProject.parse(resolved), allowed_roots=[data_dir],
                         protected_roots=[str(DATA_ROOT)])
    assert {r.code for r in found} == EXPECTED_RISKS.get(app.id, set()), found
    assert app.main is not None
    main = resolved["services"][app.main.service]
    published = {int(p["target"]) for p in main.get("ports") or []}
    network_mode = str(main.get("network_mode", ""))
    assert app.main.port in published or network_mode == "host", (
        f"main port {app.main.port} of {app.main.service} is not published")
    for service in resolved["services"].values():
        for volume in service.get("volumes") or []:
            if volume["type"] == "bind":
                source = volume["source"]
                assert (source.startswith(data_dir + "/") or source in values.values()
                        or source.endswith("docker.sock")), source
            else:
                pytest.fail(f"{volume['type']} volume {volume} in {app.id}")


def test_every_example_is_checked() -> None:
    """An empty or shrunken glob would parametrize nothing and pass: count the examples."""
    assert {"hello", "static-site", "two-tier"} <= {p.name for p in EXAMPLE_DIRS}, EXAMPLE_DIRS
    assert all((p / "stackhub-app.yaml").is_file() for p in EXAMPLE_DIRS)


@pytest.mark.parametrize("folder", EXAMPLE_DIRS, ids=_ids(EXAMPLE_DIRS))
def test_examples_render_too(folder: Path,
                             rendered: dict[Path, Checked | BaseException]) -> None:
    app, _, resolved, _ = _checked(rendered, folder)
    found = risk.analyse(ResolvedProject.parse(resolved), allowed_roots=[str(DATA_ROOT)],
                         protected_roots=[])
    assert not found
    assert app.main is not None and app.main.service in resolved["services"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_two_tier_example_runs_on_the_engine(tmp_path: Path, docker_compose: None) -> None:
    """The frontend reaches the private backend by service name, with the shared secret."""
    app = read_app_dir(REPO / "examples" / "apps" / "two-tier", store=None)
    port = _free_port()
    values = params.resolve(app.parameters, {"WEB_PORT": str(port), "MESSAGE": "tiers talk"},
                            {}, pick_port=lambda param, wanted, asked: wanted or 0)
    instance = f"t-two-tier-{os.getpid()}"
    data_dir = tmp_path / "data"
    platform = platform_env(instance=instance, app_id=app.id, data_dir=data_dir, tz="Etc/UTC")
    rendered = render(app, instance=instance, values=values, platform=platform,
                      data_dir=data_dir)
    folder = tmp_path / "project"
    _compose_config(folder, rendered.compose, rendered.env)
    base = ["docker", "compose", "--project-directory", str(folder), "-f",
            str(folder / "compose.yaml"), "--env-file", str(folder / ".env"), "-p", instance]
    try:
        up = subprocess.run([*base, "up", "--detach", "--wait", "--wait-timeout", "60"],
                            capture_output=True, text=True, timeout=120, check=False)
        assert up.returncode == 0, up.stderr
        deadline = time.monotonic() + 30
        page = ""
        while time.monotonic() < deadline and "backend says" not in page:
            with contextlib.suppress(httpx.HTTPError):
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text
            time.sleep(0.2)
        assert "backend says: tiers talk at" in page, page
        token_dir = data_dir / "backend" / values["SHARED_TOKEN"]
        assert (token_dir / "status.txt").is_file()
    finally:
        subprocess.run([*base, "down", "--volumes", "--timeout", "1"], capture_output=True,
                       timeout=120, check=False)
