"""The loopback override: a protected app's web port published on 127.0.0.1 only."""

from __future__ import annotations

import json
from pathlib import Path

from stackhub.adapters.compose import (
    LOOPBACK_FILE,
    LOOPBACK_OVERRIDE,
    ComposeCli,
    loopback_override,
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


def test_the_override_follows_the_marker(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(json.dumps(COMPOSE))
    cli = ComposeCli(["docker", "compose"])
    assert write_loopback_override(tmp_path) is None
    assert "-f" in cli._project_args("p", tmp_path)
    assert str(tmp_path / LOOPBACK_OVERRIDE) not in cli._project_args("p", tmp_path)
    (tmp_path / LOOPBACK_FILE).write_text(json.dumps({"service": "web", "port": 80}))
    args = cli._project_args("p", tmp_path)
    assert args[args.index(str(tmp_path / LOOPBACK_OVERRIDE)) - 1] == "-f"
    assert args.index(str(tmp_path / "compose.yaml")) < args.index(
        str(tmp_path / LOOPBACK_OVERRIDE))
    assert "127.0.0.1" in (tmp_path / LOOPBACK_OVERRIDE).read_text()
    (tmp_path / LOOPBACK_FILE).write_text("{broken")
    assert write_loopback_override(tmp_path) is None
    assert not (tmp_path / LOOPBACK_OVERRIDE).exists()  # a bad marker binds nothing
