"""Rendering gives long-running services `restart: unless-stopped` so apps survive a reboot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stackhub.apps.render import render
from stackhub.catalog.models import AppDefinition
from stackhub.platform import platform_env

DATA = Path("/var/lib/stackhub/appdata/blog")


def do_render(services: dict[str, Any]) -> Any:
    platform = platform_env(instance="blog", app_id="blog", data_dir=DATA, tz="UTC")
    app = AppDefinition(id="blog", store="local", name="Blog", compose={"services": services})
    return render(app, instance="blog", values={}, platform=platform, data_dir=DATA)


def test_services_without_a_policy_get_unless_stopped_with_a_note() -> None:
    out = do_render({"web": {"image": "nginx:1"}, "db": {"image": "postgres:16"}})
    services = out.compose["services"]
    assert services["web"]["restart"] == services["db"]["restart"] == "unless-stopped"
    assert [n for n in out.notes if "restart" in n] == [
        "restart: unless-stopped added to db, web (no restart policy set), so the app comes "
        "back after a reboot unless stopped"]


def test_a_policy_the_definition_sets_is_kept() -> None:
    out = do_render({"web": {"image": "nginx:1", "restart": "always"},
                     "worker": {"image": "busybox:1", "restart": "no"},
                     "swarmish": {"image": "busybox:1",
                                  "deploy": {"restart_policy": {"condition": "on-failure"}}}})
    services = out.compose["services"]
    assert services["web"]["restart"] == "always"
    assert services["worker"]["restart"] == "no"
    assert "restart" not in services["swarmish"]
    assert not [n for n in out.notes if "restart" in n]


def test_one_shot_services_others_wait_for_keep_theirs() -> None:
    out = do_render({
        "migrate": {"image": "busybox:1", "command": ["true"]},
        "web": {"image": "nginx:1", "depends_on": {
            "migrate": {"condition": "service_completed_successfully"}}}})
    services = out.compose["services"]
    assert "restart" not in services["migrate"]
    assert services["web"]["restart"] == "unless-stopped"
    assert [n for n in out.notes if "restart" in n] == [
        "restart: unless-stopped added to web (no restart policy set), so the app comes back "
        "after a reboot unless stopped"]
