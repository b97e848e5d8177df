"""The CLI: sources, --set, server-not-running, and human/JSON output against a test API."""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from stackhub.adapters.fakes import FakeEngine
from stackhub.cli import apps as cli_apps
from stackhub.cli.apps import parse_sets, source_of
from stackhub.cli.client import Client, ClientError
from stackhub.cli.main import cli

from ..support import COMPOSE, IMAGE, MANIFEST, PLAIN_COMPOSE

runner = CliRunner()


def flat(text: str) -> str:
    return " ".join(text.split())


# -- source_of --------------------------------------------------------------------------------

@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@pytest.mark.parametrize("ref", ["official/whoami", "my-store/app.v2", "s/a_b"])
def test_store_refs(cwd: Path, ref: str) -> None:
    assert source_of(ref) == {"kind": "catalog", "ref": ref}


def test_compose_file(cwd: Path) -> None:
    (cwd / "blog.yaml").write_text(PLAIN_COMPOSE)
    assert source_of("blog.yaml") == {"kind": "compose", "compose": PLAIN_COMPOSE}
    assert source_of(str(cwd / "blog.yaml"))["kind"] == "compose"


def test_app_folder_and_compose_folder(cwd: Path) -> None:
    app = cwd / "blog"
    app.mkdir()
    (app / "stackhub-app.yaml").write_text(MANIFEST)
    (app / "compose.yaml").write_text(COMPOSE)
    assert source_of("blog") == {"kind": "app", "manifest": MANIFEST, "compose": COMPOSE}
    plain = cwd / "plain"
    plain.mkdir()
    (plain / "docker-compose.yml").write_text(PLAIN_COMPOSE)
    assert source_of("plain/") == {"kind": "compose", "compose": PLAIN_COMPOSE}


def test_an_existing_folder_wins_over_a_store_ref(cwd: Path) -> None:
    (cwd / "official" / "whoami").mkdir(parents=True)
    (cwd / "official" / "whoami" / "compose.yaml").write_text(PLAIN_COMPOSE)
    assert source_of("official/whoami")["kind"] == "compose"


@pytest.mark.parametrize("text", ["./missing.yaml", "missing.yml", "official/whoami.yml",
                                  "Official/App", "a/b/c", "/nonexistent/compose.yaml"])
def test_bad_sources(cwd: Path, text: str) -> None:
    with pytest.raises(ClientError, match="neither an existing file or folder") as info:
        source_of(text)
    assert info.value.code == "usage"


def test_empty_folder(cwd: Path) -> None:
    (cwd / "empty").mkdir()
    with pytest.raises(ClientError, match=r"has neither stackhub-app\.yaml nor a compose file"):
        source_of("empty")


def test_oversized_file(cwd: Path) -> None:
    (cwd / "big.yaml").write_text("#" * (cli_apps.MAX_UPLOAD + 1))
    with pytest.raises(ClientError, match="is larger than") as info:
        source_of("big.yaml")
    assert info.value.code == "too_large"


def test_app_folder_without_compose_file(cwd: Path) -> None:
    (cwd / "half").mkdir()
    (cwd / "half" / "stackhub-app.yaml").write_text(MANIFEST)
    with pytest.raises(ClientError):
        source_of("half")


def test_file_that_is_not_utf8(cwd: Path) -> None:
    (cwd / "latin1.yaml").write_bytes("services: {web: {image: caf\xe9}}".encode("latin-1"))
    with pytest.raises(ClientError):
        source_of("latin1.yaml")


# -- --set ------------------------------------------------------------------------------------

def test_parse_sets() -> None:
    assert parse_sets(None) == {}
    assert parse_sets(["A=1", "B=x=y", "C=", "A=2"]) == {"A": "2", "B": "x=y", "C": ""}


@pytest.mark.parametrize("item", ["NOEQ", "=value", ""])
def test_parse_sets_errors(item: str) -> None:
    with pytest.raises(ClientError, match="--set expects KEY=VALUE") as info:
        parse_sets([item])
    assert info.value.code == "usage"


@pytest.mark.parametrize("command", [["app", "plan", "official/x", "-o", "out"],
                                     ["app", "install", "official/x", "--yes"]])
def test_set_errors_exit_2_before_any_request(command: list[str], tmp_path: Path) -> None:
    result = runner.invoke(cli, [*command, "--set", "NOEQ"],
                           env={"STACKHUB_URL": "http://127.0.0.1:9"})
    assert result.exit_code == 2
    assert "--set expects KEY=VALUE, got 'NOEQ'" in flat(result.stderr)


# -- server not running -------------------------------------------------------------------------

def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_list_when_the_server_is_not_running() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = runner.invoke(cli, ["app", "list"], env={"STACKHUB_URL": url})
    assert result.exit_code == 1
    assert f"Error: the StackHub server is not running at {url}" in flat(result.stderr)
    assert "Traceback" not in result.output


def test_list_json_when_the_server_is_not_running() -> None:
    result = runner.invoke(cli, ["app", "list", "--json"],
                           env={"STACKHUB_URL": f"http://127.0.0.1:{closed_port()}"})
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["code"] == "server_unavailable"


def test_client_finds_url_and_token_in_the_data_dir(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    (root / "secrets").mkdir(parents=True)
    (root / "server.json").write_text(json.dumps({"url": "http://127.0.0.1:8555/"}))
    (root / "secrets" / "admin-token").write_text("shk_token\n")
    monkeypatch.setenv("STACKHUB_DATA_DIR", str(root))
    client = Client()
    assert (client.url, client.token) == ("http://127.0.0.1:8555", "shk_token")
    monkeypatch.setenv("STACKHUB_URL", "http://other:1")
    monkeypatch.setenv("STACKHUB_TOKEN", "shk_env")
    assert (Client().url, Client().token) == ("http://other:1", "shk_env")


# -- against a test API -------------------------------------------------------------------------


def install(cwd: Path, *extra: str) -> Any:
    app = cwd / "blog"
    app.mkdir(exist_ok=True)
    (app / "stackhub-app.yaml").write_text(MANIFEST)
    (app / "compose.yaml").write_text(COMPOSE)
    return runner.invoke(cli, ["app", "install", "blog", "--yes", *extra])


def test_list_json_shape(api: TestClient, cwd: Path) -> None:
    assert install(cwd).exit_code == 0
    result = runner.invoke(cli, ["app", "list", "--json"])
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    assert isinstance(items, list) and len(items) == 1
    item = items[0]
    assert {"name", "app", "status", "version", "ports", "urls"} <= set(item)
    assert (item["name"], item["app"], item["status"], item["version"]) == (
        "blog", "blog", "running", "1.0")
    assert item["ports"] == [{"service": "web", "host_port": 18080, "container_port": 80,
                              "protocol": "tcp"}]
    assert item["urls"] == ["http://host.test:18080/"]
    assert (item["open_url"], item["last_backup_at"]) == ("http://host.test:18080/", None)
    assert item["parameters"]["DB_PASSWORD"] == "********"


def test_list_human(api: TestClient, cwd: Path) -> None:
    empty = runner.invoke(cli, ["app", "list"])
    assert empty.exit_code == 0 and "No apps installed yet" in empty.stdout
    install(cwd)
    table = runner.invoke(cli, ["app", "list"])
    assert table.exit_code == 0
    assert "blog" in table.stdout and "running" in table.stdout
    assert "18080->web:80" in flat(table.stdout)
    header, row = table.stdout.splitlines()[:2]
    assert header.split()[-2:] == ["LAST", "BACKUP"] and row.split()[-2:] == [
        "http://host.test:18080/", "never"]


def test_install_human_output(api: TestClient, cwd: Path) -> None:
    result = install(cwd)
    assert result.exit_code == 0, result.output
    out = flat(result.stdout)
    assert "Installing blog 1.0 as blog" in out
    assert "blog is running" in out and "open http://host.test:18080/" in out


def test_install_failure_exits_1(api: TestClient, cwd: Path, engine: FakeEngine) -> None:
    engine.pullable.pop(IMAGE)
    result = install(cwd)
    assert result.exit_code == 1
    assert f"could not pull image {IMAGE}" in flat(result.stderr)


def test_install_json(api: TestClient, cwd: Path) -> None:
    result = install(cwd, "--json")
    assert result.exit_code == 0
    body = json.loads(result.stdout)
    assert body["operation"]["state"] == "succeeded" and body["instance"]["name"] == "blog"


def test_risky_install_without_consent(api: TestClient, cwd: Path) -> None:
    (cwd / "risky.yaml").write_text(
        f"services:\n  web:\n    image: {IMAGE}\n    privileged: true\n")
    result = runner.invoke(cli, ["app", "install", "risky.yaml", "--name", "risky", "--yes"])
    assert result.exit_code == 1
    err = flat(result.stderr)
    assert "--accept-risks sha256:" in err and "[critical] web: runs privileged" in err


def test_install_from_a_docker_run_command(api: TestClient, cwd: Path) -> None:
    command = f"docker run -d --rm --name web -p 8080:80 -e MODE=yes {IMAGE}"
    result = runner.invoke(cli, ["app", "install", "--docker-run", command, "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["operation"]["state"] == "succeeded" and body["instance"]["name"] == "web"
    assert "--rm was left out" in flat(result.stderr)
    compose = api.get("/api/instances/web").json()["services"][0]
    assert compose["image"] == IMAGE and compose["environment"]["MODE"] == "yes"
    risky = runner.invoke(cli, ["app", "install", "--docker-run", f"docker run --privileged "
                                f"--name root {IMAGE}", "--yes"])
    assert risky.exit_code == 1 and "runs privileged" in flat(risky.stderr)
    both = runner.invoke(cli, ["app", "install", "x/y", "--docker-run", "docker run nginx"])
    assert both.exit_code != 0 and "not both" in flat(both.stderr)
    assert [i["name"] for i in api.get("/api/instances").json()] == ["web"]


def test_plan_writes_the_project(api: TestClient, cwd: Path) -> None:
    install_dir = cwd / "blog"
    install_dir.mkdir()
    (install_dir / "stackhub-app.yaml").write_text(MANIFEST)
    (install_dir / "compose.yaml").write_text(COMPOSE)
    result = runner.invoke(cli, ["app", "plan", "blog", "-o", "out", "--set", "TITLE=Hi there"])
    assert result.exit_code == 0, result.output
    assert "io.stackhub.instance: blog" in (cwd / "out" / "compose.yaml").read_text()
    env = cwd / "out" / ".env"
    assert "TITLE='Hi there'" in env.read_text()
    assert stat.S_IMODE(env.stat().st_mode) == 0o600


def test_plan_error_is_reported(api: TestClient, cwd: Path) -> None:
    (cwd / "bad.yaml").write_text("services: {web: {image: x}}\nname: [\n")
    result = runner.invoke(cli, ["app", "plan", "bad.yaml", "-o", "out"])
    assert result.exit_code == 1
    assert "compose file is not valid YAML at line" in flat(result.stderr)
    assert not (cwd / "out").exists()


def test_lifecycle_logs_and_remove(api: TestClient, cwd: Path) -> None:
    install(cwd)
    stop = runner.invoke(cli, ["app", "stop", "blog"])
    assert stop.exit_code == 0 and "blog is stopped" in stop.stdout
    start = runner.invoke(cli, ["app", "start", "blog", "--json"])
    assert json.loads(start.stdout)["status"] == "running"
    logs = runner.invoke(cli, ["app", "logs", "blog", "--tail", "5"])
    assert logs.exit_code == 0 and "hello" in logs.stdout
    missing = runner.invoke(cli, ["app", "stop", "nope"])
    assert missing.exit_code == 1 and "no instance named 'nope'" in missing.stderr
    removed = runner.invoke(cli, ["app", "remove", "blog", "--yes"])
    assert removed.exit_code == 0 and "removed blog (data kept)" in removed.stdout
    assert json.loads(runner.invoke(cli, ["app", "list", "--json"]).stdout) == []


def test_op_list_and_show(api: TestClient, cwd: Path) -> None:
    install(cwd)
    assert runner.invoke(cli, ["app", "restart", "blog"]).exit_code == 0
    listed = runner.invoke(cli, ["op", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    page = json.loads(listed.stdout)
    assert page["total"] == 2 and [o["kind"] for o in page["items"]] == ["restart", "install"]
    install_op = page["items"][1]
    assert [s["name"] for s in install_op["steps"]] == ["pull", "start", "wait", "verify"]
    only = json.loads(runner.invoke(cli, ["op", "list", "--kind", "install", "--json"]).stdout)
    assert [o["id"] for o in only["items"]] == [install_op["id"]]
    human = runner.invoke(cli, ["op", "list", "--instance", "blog", "--limit", "1"])
    assert human.exit_code == 0 and "restart" in human.stdout
    assert "1 of 2; more with --offset 1" in flat(human.stdout)
    shown = runner.invoke(cli, ["op", "show", install_op["id"][:12]])
    assert shown.exit_code == 0, shown.output
    out = flat(shown.stdout)
    assert "install of blog: succeeded" in out and "verify" in out
    as_json = json.loads(runner.invoke(cli, ["op", "show", install_op["id"], "--json"]).stdout)
    assert as_json["id"] == install_op["id"] and as_json["duration"] is not None


@pytest.mark.parametrize(("args", "message", "code"), [
    (["op", "show", "zz-not-hex"], "is not an operation id", 2),
    (["op", "show", "0" * 32], "no operation", 1),
    (["op", "list", "--state", "exploded"], "--state must be one of", 2),
])
def test_op_errors(api: TestClient, args: list[str], message: str, code: int) -> None:
    result = runner.invoke(cli, args)
    assert result.exit_code == code and message in flat(result.stderr)


@pytest.mark.parametrize("args", [["store", "remove", "../users/mem"],
                                  ["token", "revoke", "../users/admin"],
                                  ["app", "start", "../stores/x/sync?x="],
                                  ["user", "remove", "a/../../x"]])
def test_names_cannot_reach_other_endpoints(args: list[str]) -> None:
    result = runner.invoke(cli, args)
    assert result.exit_code != 0
    assert "is not a valid name here" in flat(result.stderr)


# -- start-up cost (docs/performance.md) --------------------------------------------------------

def test_a_group_command_builds_only_its_group() -> None:
    from typer.main import get_command

    from stackhub.cli.main import command_tree

    whole = get_command(command_tree()).commands  # type: ignore[attr-defined]
    assert {"serve", "app", "store", "catalog", "user", "token", "login", "logout",
            "audit"} <= set(whole)
    assert sorted(get_command(command_tree("app")).commands) == ["app", "serve"]  # type: ignore[attr-defined]
    # the server process builds no client command (issue 18 part 4); `serve --help` and its
    # errors read the same (test_serve_help_and_errors_read_as_with_the_whole_tree)
    assert sorted(get_command(command_tree("serve")).commands) == ["serve"]  # type: ignore[attr-defined]
    for word in ("login", "--help", "apps"):  # not a group: everything, as before
        assert set(get_command(command_tree(word)).commands) == set(whole)  # type: ignore[attr-defined]


@pytest.mark.parametrize("args", [["serve", "--help"], ["serve", "--bogus"], ["serve", "extra"]])
def test_serve_help_and_errors_read_as_with_the_whole_tree(args: list[str]) -> None:
    from stackhub.cli.main import command_tree

    alone = runner.invoke(command_tree("serve"), args, prog_name="stackhub")
    whole = runner.invoke(command_tree(), args, prog_name="stackhub")
    assert (alone.exit_code, alone.output) == (whole.exit_code, whole.output)
    assert "stackhub serve" in alone.output


INSTALL_PROBE = """
import sys
from stackhub.cli import client
def request(self, method, path, **kwargs):
    print(method, path, sorted(m for m in sys.modules if m.split(".")[0] in ("rich", "httpx")
                               or m in ("stackhub.cli.auth", "stackhub.cli.catalog")))
    raise client.ClientError("stop here", code="usage")
client.Client.request = request
sys.argv = ["stackhub", "app", "install", sys.argv[1], "--name", "probe", "--yes"]
from stackhub.cli.main import main
main()
"""


def test_install_sends_its_request_before_loading_rich_or_other_groups(cwd: Path) -> None:
    import subprocess
    import sys

    (cwd / "compose.yaml").write_text(PLAIN_COMPOSE)
    done = subprocess.run([sys.executable, "-c", INSTALL_PROBE, str(cwd / "compose.yaml")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.splitlines()[0] == "POST /api/instances []", done.stdout + done.stderr
    assert done.returncode == 2 and "stop here" in done.stderr


def test_kept_data_is_listed_and_purged(api: TestClient, cwd: Path) -> None:
    assert install(cwd).exit_code == 0
    removed = runner.invoke(cli, ["app", "remove", "blog", "--yes"])
    assert removed.exit_code == 0, removed.output
    listed = runner.invoke(cli, ["app", "kept", "--json"])
    assert listed.exit_code == 0
    [kept] = json.loads(listed.stdout)
    assert kept["name"] == "blog" and kept["app"] == "blog" and kept["folder"] is True
    human = runner.invoke(cli, ["app", "kept"])
    assert "blog" in human.stdout and "REMOVED" in human.stdout
    refused = runner.invoke(cli, ["app", "purge-data", "blog"])  # no terminal, no --yes
    assert refused.exit_code != 0 and "--yes" in flat(refused.stderr)
    purged = runner.invoke(cli, ["app", "purge-data", "blog", "--yes"])
    assert purged.exit_code == 0 and "deleted the kept data of blog" in flat(purged.stdout)
    assert json.loads(runner.invoke(cli, ["app", "kept", "--json"]).stdout) == []
