"""Every installable fixture app of the CasaOS, Umbrel and Runtipi stores renders to a project
that the real `docker compose config` accepts, with its main web port published on the host."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stackhub import yamlsafe
from stackhub.apps.params import resolve
from stackhub.apps.render import env_file_text, render
from stackhub.catalog.models import AppDefinition, ParameterType
from stackhub.catalog.readers.detect import read_store
from stackhub.platform import platform_env

pytestmark = pytest.mark.integration

STORES = Path(__file__).resolve().parents[1] / "fixtures" / "stores"
INSTALLED = {"fixture-notes"}


def installable_apps() -> list[AppDefinition]:
    """Read the three fixture stores and keep the apps nothing blocks."""
    apps: list[AppDefinition] = []
    for fmt in ("casaos", "umbrel", "runtipi"):
        found, _ = read_store(STORES / fmt, fmt, arch="amd64", installed=INSTALLED.__contains__)
        apps += [app for app in found if app.installable]
    return apps


APPS = installable_apps()


def compose_config(folder: Path) -> subprocess.CompletedProcess[str]:
    """Run `docker compose config` on a rendered project, with a minimal environment."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME") or k.startswith("DOCKER_")}
    return subprocess.run(
        ["docker", "compose", "-p", "t", "--project-directory", str(folder),
         "-f", str(folder / "compose.yaml"), "--env-file", str(folder / ".env"),
         "config", "--format", "json"],
        capture_output=True, text=True, timeout=120, env=env, check=False)


SAMPLES = {ParameterType.PASSWORD: "correct-horse-battery", ParameterType.EMAIL: "a@example.org",
           ParameterType.URL: "https://example.org", ParameterType.HOST: "example.org",
           ParameterType.NUMBER: "3", ParameterType.BOOLEAN: "true",
           ParameterType.PATH: "/srv/x", ParameterType.STRING: "sample"}


def required_values(app: AppDefinition) -> dict[str, str]:
    """Give the required parameters without a default a valid value, as a user would."""
    return {p.name: SAMPLES[p.type] for p in app.parameters
            if p.required and p.default in (None, "") and p.type in SAMPLES}


def bind_sources(service: dict[str, Any]) -> list[str]:
    return [v["source"] for v in service.get("volumes") or [] if v.get("type") == "bind"]


def test_every_format_has_installable_apps() -> None:
    formats = {app.format.value for app in APPS}
    assert formats == {"casaos", "umbrel", "runtipi"}
    assert len(APPS) >= 12


@pytest.mark.parametrize("app", APPS, ids=lambda a: a.ref)
def test_renders_and_compose_accepts_it(app: AppDefinition, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    data_dir = tmp_path / "data"
    instance = f"t-{app.id}"
    values = resolve(app.parameters, required_values(app), {},
                     pick_port=lambda p, wanted, asked: wanted or 18000)
    platform = platform_env(instance=instance, app_id=app.id, data_dir=data_dir, tz="UTC")
    rendered = render(app, instance=instance, values=values, platform=platform,
                      data_dir=data_dir)
    (project / "compose.yaml").write_text(yamlsafe.dump(rendered.compose))
    (project / ".env").write_text(env_file_text(rendered.env))

    result = compose_config(project)

    assert result.returncode == 0, result.stderr
    if "left empty" not in " ".join(app.notes):
        assert "variable is not set" not in result.stderr, result.stderr
    config = json.loads(result.stdout)
    services = config["services"]
    port_values = {values[p.name] for p in app.parameters if p.type is ParameterType.PORT}
    fixed = {n for n in services if f"service {n}: published port" in " ".join(app.notes)}
    for name, service in services.items():
        for port in service.get("ports") or []:
            if port.get("published") and name not in fixed:
                assert str(port["published"]) in port_values, (name, port)
        for source in bind_sources(service):
            assert not source.startswith("/DATA"), (name, source)
            assert not source.startswith("$"), (name, source)
    if app.main is not None:
        main = services[app.main.service]
        published = [p for p in main.get("ports") or []
                     if p.get("target") == app.main.port and p.get("published")]
        assert published or main.get("network_mode") == "host", main


def test_data_paths_land_in_the_instance_directory(tmp_path: Path) -> None:
    app = next(a for a in APPS if a.id == "mediabox")
    values = resolve(app.parameters, {}, {}, pick_port=lambda p, wanted, asked: wanted or 18000)
    data_dir = tmp_path / "data"
    platform = platform_env(instance="m1", app_id=app.id, data_dir=data_dir, tz="UTC")
    rendered = render(app, instance="m1", values=values, platform=platform, data_dir=data_dir)
    (tmp_path / "compose.yaml").write_text(yamlsafe.dump(rendered.compose))
    (tmp_path / ".env").write_text(env_file_text(rendered.env))

    config = json.loads(compose_config(tmp_path).stdout)

    sources = bind_sources(config["services"]["server"])
    assert f"{data_dir}/config" in sources
    assert f"{data_dir}/data/Media" in sources
    assert f"{data_dir}/data/Media/Movies" in sources
    assert f"{data_dir}/data/Downloads/torrents" in sources
    assert "/etc/localtime" in sources


def test_a_chosen_media_folder_replaces_the_default(tmp_path: Path) -> None:
    app = next(a for a in APPS if a.id == "mediabox")
    values = resolve(app.parameters, {"DATA_MEDIA": "/srv/media"}, {},
                     pick_port=lambda p, wanted, asked: wanted or 18000)
    data_dir = tmp_path / "data"
    platform = platform_env(instance="m2", app_id=app.id, data_dir=data_dir, tz="UTC")
    rendered = render(app, instance="m2", values=values, platform=platform, data_dir=data_dir)
    (tmp_path / "compose.yaml").write_text(yamlsafe.dump(rendered.compose))
    (tmp_path / ".env").write_text(env_file_text(rendered.env))

    config = json.loads(compose_config(tmp_path).stdout)

    sources = bind_sources(config["services"]["server"])
    assert "/srv/media" in sources and "/srv/media/Movies" in sources


def test_reallocated_ports_are_what_compose_publishes(tmp_path: Path) -> None:
    app = next(a for a in APPS if a.id == "jellyfin" or a.id == "mediabox")
    taken = iter(range(20000, 20100))
    values = resolve(app.parameters, {}, {}, pick_port=lambda p, wanted, asked: next(taken))
    data_dir = tmp_path / "data"
    platform = platform_env(instance="m3", app_id=app.id, data_dir=data_dir, tz="UTC")
    rendered = render(app, instance="m3", values=values, platform=platform, data_dir=data_dir)
    (tmp_path / "compose.yaml").write_text(yamlsafe.dump(rendered.compose))
    (tmp_path / ".env").write_text(env_file_text(rendered.env))

    config = json.loads(compose_config(tmp_path).stdout)

    ports = config["services"]["server"]["ports"]
    web = next(p for p in ports if p["target"] == 8096)
    assert web["published"] == values["WEBUI_PORT"]
    assert int(web["published"]) >= 20000
