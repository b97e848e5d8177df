"""Plain compose files as custom apps."""

from __future__ import annotations

import pytest

from stackhub import yamlsafe
from stackhub.catalog.models import AppFormat
from stackhub.catalog.readers.compose import parse_compose
from stackhub.errors import Invalid, TooLarge


def test_plain_compose_becomes_a_custom_app() -> None:
    app = parse_compose("name: Blog\nservices:\n  db: {image: postgres}\n"
                        "  web:\n    image: nginx\n    ports: ['8080:80']\n")
    assert (app.id, app.name, app.format, app.version) == ("blog", "Blog", AppFormat.COMPOSE,
                                                           "custom")
    assert app.title == {"en": "Blog"} and app.parameters == [] and app.store is None
    assert app.main is not None and (app.main.service, app.main.port) == ("web", 80)
    assert app.compose["services"]["web"]["ports"] == ["8080:80"]  # fixed ports stay


@pytest.mark.parametrize(("ports", "target"), [
    (["8080:80"], 80), (["127.0.0.1:8080:80/tcp"], 80), (["80"], 80), ([3000], 3000),
    (["8000-8001:80-81"], 80), ([{"target": 9000, "published": 9001}], 9000),
    (["[::1]:8080:80"], 80),
])
def test_main_entry_from_the_first_port(ports: list[object], target: int) -> None:
    app = parse_compose(yamlsafe.dump({"services": {"web": {"image": "x", "ports": ports}}}))
    assert app.main is not None and app.main.port == target


def test_no_ports_means_no_main_entry() -> None:
    assert parse_compose("services: {web: {image: x}}").main is None
    assert parse_compose("services: {web: {image: x, ports: '8080:80'}}").main is None


def test_port_with_a_variable_target_does_not_crash() -> None:
    app = parse_compose("services:\n  web:\n    image: x\n    ports:\n      - target: ${PORT}\n"
                        "        published: 8080\n")
    assert app.main is None


@pytest.mark.parametrize(("text", "hint", "app_id"), [
    ("services: {web: {image: x}}", None, "web"),
    ("services: {web: {image: x}}", "My Blog", "my-blog"),
    ("name: '../../etc/passwd'\nservices: {web: {image: x}}", None, "etc-passwd"),
    ("name: 'a;rm -rf /'\nservices: {web: {image: x}}", None, "a-rm--rf"),
    ("name: '!!!'\nservices: {web: {image: x}}", None, "custom"),
    ("name: Blög Ünïcode\nservices: {web: {image: x}}", None, "bl-g-n-code"),
    (f"name: {'x' * 60}\nservices: {{web: {{image: x}}}}", None, "x" * 40),
])
def test_app_id_is_a_slug(text: str, hint: str | None, app_id: str) -> None:
    assert parse_compose(text, name_hint=hint).id == app_id


@pytest.mark.parametrize("text", ["services: {}", "services: [web]", "version: '3'",
                                  "services:\n"])
def test_no_services_is_invalid(text: str) -> None:
    with pytest.raises(Invalid, match="has no services"):
        parse_compose(text)


def test_bad_yaml_and_limits() -> None:
    with pytest.raises(Invalid, match="compose file is not valid YAML at line 2"):
        parse_compose("services:\n  web: a: b\n")
    with pytest.raises(Invalid, match="compose file must be a mapping"):
        parse_compose("- web\n")
    with pytest.raises(TooLarge):
        parse_compose("services: {web: {image: x}}\n#" + "x" * 600_000)
