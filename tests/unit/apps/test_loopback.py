"""The loopback override is the apps layer's: a protected app's web port on 127.0.0.1 only."""

from __future__ import annotations

import json
from pathlib import Path

from stackhub.adapters.compose import ComposeCli
from stackhub.apps.loopback import (
    LOOPBACK_FILE,
    LOOPBACK_OVERRIDE,
    loopback_override,
    project_files,
    write_loopback_override,
)
from stackhub.yamlsafe import load_mapping

COMPOSE = {"services": {"web": {"image": "x", "ports": [
    "${WEB_PORT}:80", "0.0.0.0:9000:9000/udp", {"target": 443, "published": "8443"}]},
    "db": {"image": "y"}}}


def test_only_the_web_port_is_bound_to_loopback() -> None:
    text = loopback_override(COMPOSE, "web", 80)
    assert text is not None and "ports: !override" in text
    body = text.replace(" !override", "")
    ports = load_mapping(body, what="override")["services"]["web"]["ports"]
    assert ports == [{"target": 80, "published": "${WEB_PORT}", "host_ip": "127.0.0.1"},
                     "0.0.0.0:9000:9000/udp", {"target": 443, "published": "8443"}]
    long = loopback_override(COMPOSE, "web", 443)
    assert long is not None and '"host_ip": "127.0.0.1"' in long and "${WEB_PORT}:80" in long
    assert loopback_override(COMPOSE, "db", 80) is None  # no ports
    assert loopback_override(COMPOSE, "nope", 80) is None
    assert loopback_override({"services": {"web": {"ports": ["80"]}}}, "web", 80) is None
    tcp = loopback_override({"services": {"web": {"ports": ["8080:80/tcp"]}}}, "web", 80)
    assert tcp is not None and '"protocol": "tcp"' in tcp


def test_protected_project_gets_the_override_unprotected_none(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(json.dumps(COMPOSE))
    assert project_files(tmp_path) == [tmp_path / "compose.yaml"]  # unprotected: no override
    assert not (tmp_path / LOOPBACK_OVERRIDE).exists()
    (tmp_path / LOOPBACK_FILE).write_text(json.dumps({"service": "web", "port": 80}))
    files = project_files(tmp_path)
    assert files == [tmp_path / "compose.yaml", tmp_path / LOOPBACK_OVERRIDE]
    ports = load_mapping(files[1].read_text().replace(" !override", ""),
                         what="override")["services"]["web"]["ports"]
    assert ports[0] == {"target": 80, "published": "${WEB_PORT}", "host_ip": "127.0.0.1"}
    # a port changed later in the settings is followed at the next call
    changed = {"services": {"web": {"image": "x", "ports": ["8081:80"]}}}
    (tmp_path / "compose.yaml").write_text(json.dumps(changed))
    assert '"published": "8081"' in project_files(tmp_path)[1].read_text()
    (tmp_path / LOOPBACK_FILE).unlink()  # protection taken off: the override goes
    assert project_files(tmp_path) == [tmp_path / "compose.yaml"]
    assert not (tmp_path / LOOPBACK_OVERRIDE).exists()


def test_a_bad_marker_binds_nothing(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(json.dumps(COMPOSE))
    (tmp_path / LOOPBACK_FILE).write_text(json.dumps({"service": "web", "port": 80}))
    assert write_loopback_override(tmp_path) is not None
    (tmp_path / LOOPBACK_FILE).write_text("{broken")
    assert write_loopback_override(tmp_path) is None
    assert not (tmp_path / LOOPBACK_OVERRIDE).exists()


def test_the_adapter_runs_the_files_the_apps_layer_gives(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(json.dumps(COMPOSE))
    (tmp_path / LOOPBACK_FILE).write_text(json.dumps({"service": "web", "port": 80}))
    args = ComposeCli(["docker", "compose"], files=project_files)._project_args("p", tmp_path)
    assert args[args.index(str(tmp_path / LOOPBACK_OVERRIDE)) - 1] == "-f"
    assert args.index(str(tmp_path / "compose.yaml")) < args.index(
        str(tmp_path / LOOPBACK_OVERRIDE))
