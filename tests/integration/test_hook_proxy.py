"""Post-install and post-start hooks reach their own app's containers through the compose proxy.

Fixture tests/fixtures/sandbox/sbx-posthook (written for StackHub, modelled on the Umbrel
store's hooks that finish setup in their own container, e.g. `php artisan key:generate`): its
post-install hook runs commands in its own services (one with a script on stdin), restarts one,
then tries another installed app's containers, `docker run` with a host mount, `docker rm`, a
privileged exec, a `run -v`, an unknown service, `down` and restarting another app; all of
those must be refused and change nothing. Pre-start hooks get the proxy only after the exported
values were checked: sbx-prehook starts its database in its hook and sees the checked token;
sbx-prerisky starts its app and then makes its exports riskier, which fails the install with the
container never privileged and stopped. One server, four installs.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackhub.apps import scripts
from tests.integration.conftest import Server, docker, free_port, http_text, instance_containers

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sandbox"
PORTS: dict[str, int] = {}
REFUSED = ("other-app", "other-container", "other-instance", "docker-run", "docker-rm",
           "privileged", "mount", "ghost", "down", "restart-other")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("hookproxy")
    store = root / "store"
    for app in ("sbx-hooked", "sbx-posthook", "sbx-prehook", "sbx-prerisky"):
        shutil.copytree(FIXTURES / app, store / app)
        PORTS[app] = free_port()
        for name in ("umbrel-app.yml", "docker-compose.yml"):
            path = store / app / name
            path.write_text(path.read_text().replace("__PORT__", str(PORTS[app])))
    server = Server(root / "data", extra_env={"STACKHUB_SANDBOX_TIMEOUT": "90"})
    server.start()
    added = server.api("POST", "/api/stores", json={"name": "hp", "source": str(store),
                                                     "local": True})
    assert added.status_code == 201, added.text
    try:
        yield server
    finally:
        server.stop()
        server.cleanup_engine()


def test_post_hooks_run_in_their_own_containers_and_nothing_else(srv: Server) -> None:
    other = srv.cli("app", "install", "hp/sbx-hooked", "--name", "hp-hook", "--yes")
    assert other.returncode == 0, other.stderr + other.stdout
    shown = srv.api("GET", "/api/catalog/apps/hp/sbx-posthook").json()
    assert shown["installable"], shown.get("problems")
    done = srv.cli("app", "install", "hp/sbx-posthook", "--name", "hp-post", "--yes",
                   timeout=400)
    assert done.returncode == 0, done.stderr + done.stdout
    www = srv.data_dir / "appdata" / "hp-post" / "data" / "www"
    key = (www / "app-key").read_text().strip()  # written inside the web container
    assert key.startswith("base64:") and len(key) > 20
    assert (www / "from-stdin.txt").read_text() == "ran in the worker with its input\n"
    results = dict(line.split("=") for line in (www / "refusals.txt").read_text().split())
    # 126: refused by StackHub outside the sandbox; 1: refused by the sandbox's own docker
    assert results == {name: "1" if name.startswith("docker-") else "126"
                       for name in REFUSED}, results
    why = (www / "refusals.log").read_text()
    for reason in ("may only act on its own app (sbx-posthook)",
                   "'sbx-hooked_web_1' is not one of this app's own containers",
                   "'stackhub-hp-hook-web-1' is not one of this app's own containers",
                   "docker run --rm -v /:/host stackhub-test/web:1 cat /host/etc/shadow: refused",
                   "option --privileged: not allowed", "option -v: not allowed",
                   "'ghost' is not a service of sbx-posthook",
                   "app compose down: not allowed"):
        assert reason in why, why
    # nothing of the other app changed, nothing new runs
    assert http_text(PORTS["sbx-hooked"]) == "sandboxed\n"
    assert len(instance_containers("hp-hook")) == 1
    assert sorted(c["Names"] for c in instance_containers("hp-post")) == [
        "stackhub-hp-post-web-1", "stackhub-hp-post-worker-1"]
    log = (srv.data_dir / "instances" / "hp-post" / "hooks.log").read_text()
    assert "stackhub: proxy: exec web: sh (2 arguments) -> exit 0" in log
    assert "stackhub: proxy: restart worker -> exit 0" in log
    assert "stackhub: proxy refused: app 'sbx-hooked': a hook may only act on its own app" in log
    assert "pwned" not in http_text(PORTS["sbx-hooked"])
    assert (www / "starts.txt").read_text() == "started\n"  # post-start ran after install
    # Umbrel runs post-start after every start
    again = srv.cli("app", "restart", "hp-post")
    assert again.returncode == 0, again.stderr + again.stdout
    assert (www / "starts.txt").read_text() == "started\nstarted\n"
    assert (srv.data_dir / "instances" / "hp-post" / "hooks.log").stat().st_mode & 0o777 == 0o600


def test_a_pre_start_hook_starts_its_service_with_the_checked_values(srv: Server) -> None:
    done = srv.cli("app", "install", "hp/sbx-prehook", "--name", "hp-pre", "--yes",
                   timeout=400)
    assert done.returncode == 0, done.stderr + done.stdout
    key = scripts.instance_key(scripts.load_seed(srv.data_dir / "secrets"), "hp-pre",
                               "sbx-prehook")
    token = scripts.derive_entropy(key, "app-sbx-prehook-token")
    # the db container the hook started had the exported token, checked before it started
    assert http_text(PORTS["sbx-prehook"]) == f"token={token}\n"
    running = sorted(c["Names"] for c in instance_containers("hp-pre") if c["State"] == "running")
    assert running == ["stackhub-hp-pre-db-1", "stackhub-hp-pre-web-1"]  # StackHub started all
    log = (srv.data_dir / "instances" / "hp-pre" / "hooks.log").read_text()
    for line in ("stackhub: proxy: up db -> exit 0",
                 "stackhub: proxy: exec db: sh (2 arguments) -> exit 0",
                 "stackhub: proxy: stop (all services) -> exit 0"):
        assert line in log, log


def test_exports_made_riskier_by_a_pre_start_hook_fail_and_stop_the_app(srv: Server) -> None:
    done = srv.cli("app", "install", "hp/sbx-prerisky", "--name", "hp-risky", "--yes",
                   timeout=400)
    assert done.returncode != 0
    assert "riskier than the plan" in done.stderr + done.stdout
    made = instance_containers("hp-risky")
    assert [c["Names"] for c in made] == ["stackhub-hp-risky-web-1"]  # the hook's `up`
    assert made[0]["State"] == "exited"  # stopped with the failed install
    privileged = docker("inspect", "--format", "{{.HostConfig.Privileged}}", made[0]["ID"])
    assert privileged.stdout.strip() == "false"  # started with the checked values only
    shown = srv.api("GET", "/api/instances/hp-risky").json()
    assert shown["status"] == "failed"
