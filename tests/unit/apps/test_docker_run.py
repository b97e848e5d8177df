"""`docker run` commands as people paste them, converted to compose without running anything."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from stackhub import yamlsafe
from stackhub.api.app import create_app
from stackhub.apps.docker_run import convert
from stackhub.config import Paths
from stackhub.errors import Invalid
from stackhub.services import Services

JELLYFIN = r"""docker run -d \
  --name=jellyfin \
  -e PUID=1000 -e PGID=1000 -e TZ=Etc/UTC \
  -p 8096:8096 -p 7359:7359/udp \
  -v /srv/jellyfin/config:/config -v media:/data/media:ro \
  --device /dev/dri:/dev/dri \
  --restart unless-stopped \
  lscr.io/linuxserver/jellyfin:latest"""


def test_a_typical_linuxserver_command() -> None:
    result = convert(JELLYFIN)
    assert result.name == "jellyfin"
    service = result.compose["services"]["jellyfin"]
    assert service == {
        "image": "lscr.io/linuxserver/jellyfin:latest",
        "environment": {"PUID": "1000", "PGID": "1000", "TZ": "Etc/UTC"},
        "ports": ["8096:8096", "7359:7359/udp"],
        "volumes": ["/srv/jellyfin/config:/config", "media:/data/media:ro"],
        "devices": ["/dev/dri:/dev/dri"],
        "restart": "unless-stopped",
    }
    assert result.compose["volumes"] == {"media": {}}


def test_command_arguments_flags_and_attached_values() -> None:
    result = convert("sudo docker container run -dit --rm -p8080:80 --name=web "
                     "--entrypoint /bin/sh -w /app --memory 512m --cpus 1.5 "
                     "--ulimit nofile=1024:2048 --health-cmd 'curl -f localhost' "
                     "nginx:1.25 -c 'echo $HOME; sleep 1'")
    service = result.compose["services"]["web"]
    assert service["stdin_open"] is True and service["tty"] is True
    assert service["ports"] == ["8080:80"] and service["entrypoint"] == ["/bin/sh"]
    assert service["command"] == ["-c", "echo $HOME; sleep 1"], "nothing is expanded"
    assert service["mem_limit"] == "512m" and service["cpus"] == "1.5"
    assert service["ulimits"] == {"nofile": {"soft": 1024, "hard": 2048}}
    assert service["healthcheck"] == {"test": ["CMD-SHELL", "curl -f localhost"]}
    assert service["restart"] == "unless-stopped"  # an installed app comes back after reboot
    assert any("--rm" in note for note in result.notes)


def test_risky_options_reach_the_planners_risk_analysis() -> None:
    result = convert("docker run --privileged --network host --cap-add NET_ADMIN "
                     "-v /var/run/docker.sock:/var/run/docker.sock --pid host --gpus all "
                     "ghcr.io/example/agent")
    service = result.compose["services"]["agent"]
    assert service["privileged"] is True and service["network_mode"] == "host"
    assert service["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "capabilities": ["gpu"], "count": "all"}]
    text = yamlsafe.dump(result.compose)
    assert yamlsafe.load(text) == result.compose, "the YAML reads back the same"


def test_a_custom_network_is_external_and_named() -> None:
    result = convert("docker run --net proxy --label a=b traefik/whoami")
    assert result.compose["networks"] == {"proxy": {"external": True}}
    assert result.compose["services"]["whoami"]["labels"] == {"a": "b"}
    assert any("proxy" in note for note in result.notes)


@pytest.mark.parametrize(("command", "message"), [
    ("docker run", "with an image"),
    ("docker run -d", "names no image"),
    ("docker run --volumes-from db nginx", "--volumes-from has no compose equivalent"),
    ("docker run --env-file ./.env nginx", "reads a file on the machine"),
    ("docker run -p", "-p needs a value"),
    ("docker run nginx && rm -rf /", "one docker run command"),
    ("docker run 'unterminated nginx", "cannot be read"),
    ("docker run --restart sometimes nginx", "use no, always"),
    ("docker run -m lots nginx", "not a size"),
    ("docker run -v ~/data:/data nginx", "home folder"),
    ("docker run " + "x" * 17_000, "longer than"),
])
def test_bad_commands_get_a_clear_error(command: str, message: str) -> None:
    with pytest.raises(Invalid, match=message):
        convert(command)


@pytest.fixture
def api(services: Services, paths: Paths) -> Iterator[TestClient]:
    with TestClient(create_app(paths, services=services)) as client:
        client.headers["Authorization"] = f"Bearer {paths.admin_token.read_text().strip()}"
        yield client


def test_the_route_converts_and_changes_nothing(api: TestClient) -> None:
    answer = api.post("/api/convert/docker-run", json={"command": JELLYFIN})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["name"] == "jellyfin" and "lscr.io/linuxserver/jellyfin:latest" in body["compose"]
    assert yamlsafe.load(body["compose"])["services"]["jellyfin"]["devices"]
    bad = api.post("/api/convert/docker-run", json={"command": "docker run --volumes-from x y"})
    assert bad.status_code == 422 and "--volumes-from" in bad.json()["error"]["message"]
    assert api.get("/api/instances").json() == []
