"""Backups and restores with real restic, a real server and the real engine.

Backup, change and delete data (bind folder and named volume), restore: every file
byte-identical with its mode and owner; restore of a removed instance; wrong password and
unreachable repositories fail clearly with nothing changed; a hostile snapshot is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import httpx
import pytest

from tests.integration.conftest import Server, docker, free_port, instance_containers

pytestmark = pytest.mark.integration

IMAGE = os.environ.get("STACKHUB_TEST_IMAGE", "stackhub-test/web:1")
MANIFEST = """\
format: stackhub/v1
id: keeper
name: Keeper
version: "1.0.0"
title: {en: Data keeper}
tagline: {en: Keeps data in a folder and a volume}
category: [utilities]
main: {service: web, port: 80, path: /}
parameters:
  - {name: WEB_PORT, type: port, default: 18150, label: {en: Web port}}
  - {name: ADMIN_TOKEN, type: secret, length: 24}
"""
COMPOSE = f"""\
services:
  web:
    image: {IMAGE}
    ports: ["${{WEB_PORT}}:80"]
    environment:
      ADMIN_TOKEN: ${{ADMIN_TOKEN}}
    volumes:
      - ${{APP_DATA_DIR}}/state:/state
      - db:/db
    stop_grace_period: 1s
volumes:
  db: {{}}
"""
SOURCE = {"kind": "app", "manifest": MANIFEST, "compose": COMPOSE}
VOLUME_LIST = ("cd /v && find . | sort | while read f; do stat -c '%n %a %u %g %s %F' \"$f\"; "
               "[ -f \"$f\" ] && [ ! -L \"$f\" ] && md5sum \"$f\"; done; true")


def install(srv: Server, name: str) -> None:
    """Install the keeper app as `name` and wait until it runs."""
    answer = srv.api("POST", "/api/instances", json={"source": SOURCE, "name": name})
    assert answer.status_code == 202, answer.text
    assert srv.wait_operation(answer.json()["operation"]["id"])["state"] == "succeeded"


def tree(root: Path) -> dict[str, tuple[Any, ...]]:
    """Map every path below `root` to (mode, uid, gid, sha256 or link target)."""
    found: dict[str, tuple[Any, ...]] = {}
    for base, dirs, files in os.walk(root):
        for entry in [*dirs, *files]:
            path = Path(base) / entry
            st = path.lstat()
            if path.is_symlink():
                content = "->" + os.readlink(path)
            elif path.is_file():
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                content = "dir"
            found[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, content)
    return found


def volume_tree(volume: str) -> str:
    """List a volume's entries with mode, owner, size and md5 (through a throwaway container),
    once a restore's clean-up has left it (the old content aside goes after the operation)."""
    root = Path(mountpoint(volume))

    def hidden() -> list[str]:
        return sorted(p.name for p in root.iterdir() if p.name.startswith(".stackhub-restore-"))

    wait_for_settled(lambda: not hidden(), f"the restore's clean-up of {volume}",
                     detail=lambda: f"left in it: {hidden()}")
    result = docker("run", "--rm", "--network", "none", "-v", f"{volume}:/v:ro", IMAGE, "sh",
                    "-c", VOLUME_LIST)
    return result.stdout


def wait_for_settled(done: Any, what: str, timeout: float = 30,
                     detail: Any = lambda: "") -> None:
    """Wait until `done()` (a restore's lingering clean-up is over), or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}; {detail()}"
        time.sleep(0.1)


def work_left(srv: Server) -> bool:
    """Tell whether anything stays in `backups/work` once restores' clean-ups are over."""
    folder = srv.data_dir / "backups" / "work"
    with contextlib.suppress(AssertionError):
        wait_for_settled(lambda: not any(folder.glob("*")), "backups/work to empty", 15)
    return any(folder.glob("*"))


def in_container(name: str, script: str) -> None:
    """Run a shell script in the instance's web container."""
    docker("exec", f"stackhub-{name}-web-1", "sh", "-c", script)


def seed(srv: Server, name: str) -> None:
    """Write files with odd modes and owners into the bind folder and the volume."""
    state = srv.data_dir / "appdata" / name / "state"
    (state / "sub").mkdir(parents=True, exist_ok=True)
    (state / "notes.txt").write_text("first\n")
    (state / "notes.txt").chmod(0o640)
    os.chown(state / "notes.txt", 1000, 1001)
    (state / "sub" / "blob.bin").write_bytes(os.urandom(300_000))
    (state / "sub" / "blob.bin").chmod(0o600)
    (state / "link").symlink_to("sub/blob.bin")
    in_container(name, "head -c 2000000 /dev/urandom > /db/data.bin && chmod 604 /db/data.bin "
                 "&& chown 33:34 /db/data.bin && mkdir -p /db/d && echo x > /db/d/x && "
                 "chmod 700 /db/d")


def mangle(srv: Server, name: str) -> None:
    """Change, add and delete data in both places."""
    state = srv.data_dir / "appdata" / name / "state"
    (state / "notes.txt").write_text("changed\n")
    (state / "sub" / "blob.bin").unlink()
    (state / "new.txt").write_text("new\n")
    in_container(name, "echo changed > /db/data.bin && rm -rf /db/d && echo n > /db/new")


def cli_json(srv: Server, *args: str) -> Any:
    """Run a CLI command with --json and return its decoded output (asserting success)."""
    result = srv.cli(*args, "--json")
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


@pytest.fixture
def keeper(server: Server) -> Iterator[tuple[Server, str]]:
    """A server with the keeper app installed and seeded."""
    install(server, "keeper")
    seed(server, "keeper")
    yield server, "keeper"


def test_backup_change_restore_is_byte_identical(keeper: tuple[Server, str]) -> None:
    srv, name = keeper
    volume = f"stackhub-{name}_db"
    data = srv.data_dir / "appdata" / name
    before, before_volume = tree(data), volume_tree(volume)
    assert "data.bin" in before_volume

    created = srv.cli("backup", "create", name)
    assert created.returncode == 0, created.stderr + created.stdout
    assert srv.wait_status(name, {"running"})["status"] == "running"
    listed = cli_json(srv, "backup", "list", name)
    assert len(listed) == 1
    snap = listed[0]
    assert (snap["instance"], snap["version"], snap["kind"], snap["repository"]) == (
        name, "1.0.0", "manual", "local")
    assert snap["app"] == srv.api("GET", f"/api/instances/{name}").json()["app"]
    assert snap["size"] and snap["size"] > 2_000_000
    # the default repository got StackHub's light key, and restic runs open it with that key
    hint = (srv.data_dir / "secrets" / "backup" / "local.key-hint").read_text().strip()
    keys = srv.data_dir / "backups" / "repository" / "keys"
    assert len(hint) == 64 and sorted(p.name for p in keys.iterdir()).count(hint) == 1
    assert len(list(keys.iterdir())) == 2
    ops = srv.api("GET", "/api/operations", params={"instance": name, "kind": "backup"}).json()
    # by default the volume goes through a helper container that mounts it read-only (never
    # the engine's folders) and copies it into a staging folder: no path in the definition;
    # the app starts once restic has read its folder (`finish`: restic still reads the rest)
    names = [s["name"] for s in ops["items"][0]["steps"]]
    assert names[:5] == ["prepare", "stop", "volumes", "snapshot", "start"], names
    assert names[5:] in ([], ["finish"]), names
    stage = srv.data_dir / "backups" / "stage" / name
    assert tree(Path(mountpoint(volume))) == tree(stage / "volumes" / "db")  # owners, modes
    assert not (stage / "volumes" / "db.tar").exists()
    placed = json.loads((stage / "definition.json").read_text())["volumes"]
    assert [(v.get("path"), v.get("copy")) for v in placed] == [(None, "folder")]

    # a page of the large volume file changes: the next backup rewrites only the blocks of
    # the staged copy that differ, found by comparing both files mapped (the app is stopped)
    staged = stage / "volumes" / "db" / "data.bin"
    inode = staged.stat().st_ino
    in_container(name, "printf page | dd of=/db/data.bin bs=1 seek=1500000 conv=notrunc "
                 "2>/dev/null")
    second = srv.cli("backup", "create", name)
    assert second.returncode == 0, second.stderr + second.stdout
    assert srv.wait_status(name, {"running"})["status"] == "running"
    assert staged.stat().st_ino == inode  # updated in place, not copied anew
    assert staged.read_bytes()[1_500_000:1_500_004] == b"page"
    assert tree(Path(mountpoint(volume))) == tree(stage / "volumes" / "db")
    paged = volume_tree(volume)
    assert paged != before_volume

    mangle(srv, name)
    assert tree(data) != before and volume_tree(volume) != before_volume
    restored = srv.cli("backup", "restore", name, snap["short_id"], "--yes")
    assert restored.returncode == 0, restored.stderr + restored.stdout
    assert srv.wait_status(name, {"running"})["status"] == "running"
    assert tree(data) == before
    assert volume_tree(volume) == before_volume
    assert not work_left(srv)  # nothing left aside

    # the instance is gone (data and volume purged): the snapshot brings it back
    removed = srv.cli("app", "remove", name, "--yes", "--purge")
    assert removed.returncode == 0, removed.stderr
    wait_gone(srv, name)
    assert not data.exists()
    again = srv.cli("backup", "restore", name, "latest", "--yes")
    assert again.returncode == 0, again.stderr + again.stdout
    shown = srv.wait_status(name, {"running"})
    assert shown["app"] == snap["app"]
    assert tree(data) == before
    assert volume_tree(volume) == paged  # the latest snapshot: the changed page
    values = json.loads((srv.data_dir / "instances" / name / "values.json").read_text())
    assert len(values["ADMIN_TOKEN"]) == 24  # the generated secret came back


def mountpoint(volume: str) -> str:
    """Return where the engine keeps a volume's files."""
    return docker("volume", "inspect", "-f", "{{.Mountpoint}}", volume).stdout.strip()


def test_helper_and_in_place_snapshots_restore_under_either_mode(
        keeper: tuple[Server, str]) -> None:
    """A volume exported whole as a tar (remote or rootless engines, earlier versions' layout),
    one staged as a folder (the default) and one read in place all restore byte-identical,
    whichever way the restoring server works."""
    srv, name = keeper
    volume = f"stackhub-{name}_db"
    data = srv.data_dir / "appdata" / name
    before, before_volume = tree(data), volume_tree(volume)
    made = srv.cli("backup", "create", name)  # the default: a staged folder
    assert made.returncode == 0, made.stderr + made.stdout
    stage = srv.data_dir / "backups" / "stage" / name
    staged = json.loads((stage / "definition.json").read_text())["volumes"]
    assert [v.get("copy") for v in staged] == ["folder"]  # not a silent fall-back to the tar
    assert (stage / "volumes" / "db").is_dir() and not (stage / "volumes" / "db.tar").exists()
    staged_snap = cli_json(srv, "backup", "list", name)[0]
    srv.stop()
    srv.start(STACKHUB_BACKUP_VOLUMES="helper")
    made = srv.cli("backup", "create", name)
    assert made.returncode == 0, made.stderr + made.stdout
    ops = srv.api("GET", "/api/operations", params={"instance": name, "kind": "backup"}).json()
    assert "volumes" in [s["name"] for s in ops["items"][0]["steps"]]
    assert (srv.data_dir / "backups" / "stage" / name / "volumes" / "db.tar").is_file()
    assert not (srv.data_dir / "backups" / "stage" / name / "volumes" / "db").exists()
    helper_snap = cli_json(srv, "backup", "list", name)[0]

    srv.stop()
    srv.start(STACKHUB_BACKUP_VOLUMES="in-place")
    for snap in (helper_snap, staged_snap):
        mangle(srv, name)
        restored = srv.cli("backup", "restore", name, snap["short_id"], "--yes")
        assert restored.returncode == 0, restored.stderr + restored.stdout
        assert srv.wait_status(name, {"running"})["status"] == "running"
        assert (tree(data), volume_tree(volume)) == (before, before_volume)

    made = srv.cli("backup", "create", name)  # read in place (opted in above)
    assert made.returncode == 0, made.stderr + made.stdout
    placed = json.loads((srv.data_dir / "backups" / "stage" / name / "definition.json")
                        .read_text())["volumes"]
    assert [v.get("path") for v in placed] == [mountpoint(volume)]
    placed_snap = cli_json(srv, "backup", "list", name)[0]
    assert placed_snap["id"] != helper_snap["id"]
    srv.stop()
    srv.start(STACKHUB_BACKUP_VOLUMES="helper")
    mangle(srv, name)
    restored = srv.cli("backup", "restore", name, placed_snap["short_id"], "--yes")
    assert restored.returncode == 0, restored.stderr + restored.stdout
    assert srv.wait_status(name, {"running"})["status"] == "running"
    assert (tree(data), volume_tree(volume)) == (before, before_volume)
    assert not work_left(srv)


def wait_gone(srv: Server, name: str) -> None:
    """Wait until the instance's record is gone."""
    from tests.integration.test_crash import wait_for

    wait_for(lambda: srv.api("GET", f"/api/instances/{name}").status_code == 404,
             what="the instance to be removed")


def test_wrong_password_unreachable_and_hostile_repositories_change_nothing(
        keeper: tuple[Server, str], tmp_path: Path) -> None:
    srv, name = keeper
    assert srv.cli("backup", "create", name).returncode == 0
    key = cli_json(srv, "backup", "repo", "key", "local")
    assert len(key["password"]) >= 32 and "without" in key["warning"]
    secret = srv.data_dir / "secrets" / "backup" / "local.password"
    assert secret.stat().st_mode & 0o777 == 0o600
    good = secret.read_text()
    data = srv.data_dir / "appdata" / name
    before = tree(data)
    secret.write_text("not-the-password\n")
    try:
        failed = srv.cli("backup", "create", name)
        assert failed.returncode == 1
        assert "password" in failed.stderr and "wrong" in failed.stderr, failed.stderr
        listed = srv.cli("backup", "list", name, "--json")
        assert listed.returncode == 1
        assert json.loads(listed.stdout)["error"]["code"] == "repository_error"
        refused = srv.cli("backup", "restore", name, "latest", "--yes")
        assert refused.returncode == 1 and "password" in refused.stderr
    finally:
        secret.write_text(good)
    assert srv.wait_status(name, {"running"})["status"] == "running"  # started again
    assert tree(data) == before

    port = free_port()  # nothing listens there
    for url, extra in ((f"s3:http://127.0.0.1:{port}/bucket",
                        {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}),
                       (f"rest:http://127.0.0.1:{port}/", {})):
        added = srv.cli("backup", "repo", "add", "far", url, "--json", **extra)
        assert added.returncode == 1, added.stdout
        error = json.loads(added.stdout)["error"]
        assert error["code"] == "repository_error" and "cannot be reached" in error["message"]
    names = [r["name"] for r in cli_json(srv, "backup", "repo", "list")]
    assert names == ["local"]
    assert not (srv.data_dir / "secrets" / "backup" / "far.password").exists()

    # a snapshot (made with the right password) holding paths outside the instance's folders
    evil = tmp_path / "evil"
    (evil / "etc").mkdir(parents=True)
    (evil / "etc" / "cron.d").write_text("* * * * * root touch /tmp/pwned\n")
    (evil / "instances" / name).mkdir(parents=True)
    repo = srv.data_dir / "backups" / "repository"
    subprocess.run(["restic", "--repo", str(repo), "--password-file",
                    str(srv.data_dir / "secrets" / "backup" / "local.password"), "backup",
                    "--host", "stackhub", "--tag", "stackhub", "--tag", f"instance={name}",
                    "--tag", "app=custom/keeper", "etc", f"instances/{name}"], cwd=evil,
                   check=True, capture_output=True)
    data = srv.data_dir / "appdata" / name
    before = tree(data)
    refused = srv.cli("backup", "restore", name, "latest", "--yes", "--json")
    assert refused.returncode == 1
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "invalid" and "/etc" in error["message"], error
    assert tree(data) == before
    assert srv.wait_status(name, {"running"})["status"] == "running"


def _wait_port(port: int, what: str) -> None:
    from tests.integration.test_crash import wait_for

    def listening() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, timeout=30, what=what)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts (sshd, moto_server), stopped afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


def start_sshd(tmp_path: Path, public_key: str, started: list[subprocess.Popen[bytes]]) -> int:
    """Run Debian's sshd on a loopback port, accepting only StackHub's key (as root)."""
    folder = tmp_path / "sshd"
    folder.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(folder / "host_key")], check=True)
    (folder / "authorized_keys").write_text(public_key + "\n")
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\n"
                      f"AuthorizedKeysFile {folder / 'authorized_keys'}\n"
                      "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                      "UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
                      "PidFile none\nSubsystem sftp internal-sftp\n")
    Path("/run/sshd").mkdir(exist_ok=True)
    started.append(subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    _wait_port(port, "sshd")
    return port


def start_moto(started: list[subprocess.Popen[bytes]]) -> int:
    """Run moto's S3 server on a loopback port."""
    port = free_port()
    binary = Path(sys.executable).parent / "moto_server"
    started.append(subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    _wait_port(port, "moto_server")
    return port


def test_remote_repositories_round_trip_and_outage(
        keeper: tuple[Server, str], tmp_path: Path,
        services: list[subprocess.Popen[bytes]]) -> None:
    srv, name = keeper
    for kind in ("sftp", "s3"):
        remote_round_trip(srv, name, kind, tmp_path, services)
    s3_wrong_keys(srv, name, services)


def start_moto_with_keys(started: list[subprocess.Popen[bytes]]) -> tuple[int, str, str]:
    """Run moto's S3 server checking credentials (IAM); return its port and one good key."""
    port = free_port()
    binary = Path(sys.executable).parent / "moto_server"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}  # then every request is checked
    started.append(subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    _wait_port(port, "moto_server")
    iam = boto3.client("iam", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                       aws_access_key_id="setup", aws_secret_access_key="setup")
    iam.create_user(UserName="stackhub")
    key = iam.create_access_key(UserName="stackhub")["AccessKey"]
    iam.put_user_policy(UserName="stackhub", PolicyName="all", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    return port, key["AccessKeyId"], key["SecretAccessKey"]


def s3_wrong_keys(srv: Server, name: str, started: list[subprocess.Popen[bytes]]) -> None:
    """Wrong S3 keys are named as the problem (not "cannot be reached"); nothing is recorded."""
    port, key_id, secret = start_moto_with_keys(started)
    url = f"s3:http://127.0.0.1:{port}/stackhub-keys"
    for key, value in ((key_id, "not-the-secret"), ("AKIAWRONGWRONGWRONG0", secret)):
        added = srv.cli("backup", "repo", "add", "keys", url, "--json",
                        AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=value)
        assert added.returncode == 1, added.stdout
        error = json.loads(added.stdout)["error"]
        assert error["code"] == "repository_error", error
        assert "access key id and secret access key" in error["message"], error
        assert "cannot be reached" not in error["message"]
        assert error["details"]["reason"] == "credentials"
    assert "keys" not in [r["name"] for r in cli_json(srv, "backup", "repo", "list")]
    assert not (srv.data_dir / "secrets" / "backup" / "keys.password").exists()

    # the right keys work; once they are revoked, the repository says so
    added = srv.cli("backup", "repo", "add", "keys", url, AWS_ACCESS_KEY_ID=key_id,
                    AWS_SECRET_ACCESS_KEY=secret)
    assert added.returncode == 0, added.stderr + added.stdout
    assert cli_json(srv, "backup", "list", name, "--repo", "keys") == []
    iam = boto3.client("iam", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                       aws_access_key_id=key_id, aws_secret_access_key=secret)
    iam.delete_access_key(UserName="stackhub", AccessKeyId=key_id)
    listed = srv.cli("backup", "list", name, "--repo", "keys", "--json")
    assert listed.returncode == 1
    error = json.loads(listed.stdout)["error"]
    assert "access key id and secret access key" in error["message"], error
    removed = srv.cli("backup", "repo", "remove", "keys", "--yes")
    assert removed.returncode == 0, removed.stderr


def remote_round_trip(srv: Server, name: str, kind: str, tmp_path: Path,
                      services: list[subprocess.Popen[bytes]]) -> None:
    """Back up to and restore from a repository of `kind`, then lose its server."""
    extra: dict[str, str] = {}
    if kind == "sftp":
        key = cli_json(srv, "backup", "repo", "ssh-key")["public_key"]
        assert key.startswith("ssh-ed25519 ")
        port = start_sshd(tmp_path, key, services)
        url = f"sftp://root@127.0.0.1:{port}/{tmp_path / 'sftp-repo'}"
    else:
        port = start_moto(services)
        url = f"s3:http://127.0.0.1:{port}/stackhub-backups"
        extra = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret"}
    added = srv.cli("backup", "repo", "add", kind, url, **extra)
    assert added.returncode == 0, added.stderr + added.stdout
    repos = {r["name"]: r for r in cli_json(srv, "backup", "repo", "list")}
    assert repos[kind]["kind"] == kind and not repos[kind]["default"]
    assert "testing-secret" not in json.dumps(repos)

    volume = f"stackhub-{name}_db"
    data = srv.data_dir / "appdata" / name
    before, before_volume = tree(data), volume_tree(volume)
    created = srv.cli("backup", "create", name, "--repo", kind)
    assert created.returncode == 0, created.stderr + created.stdout
    snap = cli_json(srv, "backup", "list", name, "--repo", kind)[0]
    assert snap["repository"] == kind
    mangle(srv, name)
    restored = srv.cli("backup", "restore", name, snap["id"], "--repo", kind, "--yes")
    assert restored.returncode == 0, restored.stderr + restored.stdout
    assert srv.wait_status(name, {"running"})["status"] == "running"
    assert tree(data) == before
    assert volume_tree(volume) == before_volume
    checked = cli_json(srv, "backup", "repo", "check", kind)
    assert checked["ok"] is True

    services[-1].terminate()  # the repository's server goes away
    services[-1].wait(10)
    failed = srv.cli("backup", "create", name, "--repo", kind)
    assert failed.returncode == 1
    assert "cannot be reached" in failed.stderr, failed.stderr
    refused = srv.cli("backup", "restore", name, snap["id"], "--repo", kind, "--yes")
    assert refused.returncode == 1 and "cannot be reached" in refused.stderr
    assert srv.wait_status(name, {"running"})["status"] == "running"
    assert tree(data) == before


def _locks_of(srv: Server, pid: int) -> list[str]:
    """Return the ids of the local repository's locks held by process `pid`."""
    base = ["restic", "--repo", str(srv.data_dir / "backups" / "repository"), "--no-lock",
            "--password-file", str(srv.data_dir / "secrets" / "backup" / "local.password")]
    ids = subprocess.run([*base, "list", "locks"], capture_output=True, text=True,
                         check=False).stdout.split()
    mine = []
    for lock in ids:
        shown = subprocess.run([*base, "cat", "lock", lock], capture_output=True, text=True,
                               check=False)
        if shown.returncode == 0 and json.loads(shown.stdout).get("pid") == pid:
            mine.append(lock)
    return mine


def _restore_paused_at(srv: Server, name: str, point: str, tmp_path: Path) -> None:
    """Restart the server to pause at fault `point`, restore `name`'s latest snapshot and
    wait until the restore has reached that point."""
    from tests.integration.test_crash import wait_for
    from tests.integration.test_crash_kinds import _send

    srv.stop()
    marker = tmp_path / point
    srv.start(STACKHUB_FAULT_PAUSE=point, STACKHUB_FAULT_MARKER=str(marker))
    _send(srv, "POST", f"/api/backups/instances/{name}/snapshots/latest/restore", None)
    wait_for(marker.exists, what=f"the restore to reach {point}")


def test_killed_backup_and_restore_leave_the_instance_running_with_its_data(
        crash_server: Server, tmp_path: Path) -> None:
    from tests.integration.test_crash import wait_for
    from tests.integration.test_crash_kinds import _send

    name = "killed"
    marker = tmp_path / "paused"
    crash_server.start(STACKHUB_FAULT_PAUSE="backup-stopped", STACKHUB_FAULT_MARKER=str(marker))
    install(crash_server, name)
    seed(crash_server, name)
    _send(crash_server, "POST", f"/api/backups/instances/{name}", None)
    wait_for(marker.exists, what="the backup to stop the instance")
    assert {c["State"] for c in instance_containers(name)} == {"exited"}
    crash_server.kill9()
    crash_server.start()
    assert crash_server.wait_status(name, {"running"})["status"] == "running"  # nobody asked

    # a restic run killed while it holds the repository's lock leaves a stale lock behind
    repo = crash_server.data_dir / "backups" / "repository"
    holder = subprocess.Popen(
        ["restic", "--repo", str(repo), "--password-file",
         str(crash_server.data_dir / "secrets" / "backup" / "local.password"), "backup",
         "--stdin", "--stdin-filename", "x"], stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        found: list[str] = []

        def locked() -> bool:
            found[:] = _locks_of(crash_server, holder.pid)
            return bool(found)

        wait_for(locked, what="restic's lock")
        stale = found[0]
    finally:
        holder.kill()
        holder.wait(10)
    assert (repo / "locks" / stale).exists()
    again = crash_server.cli("backup", "create", name)  # a backup's shared lock coexists
    assert again.returncode == 0, again.stderr + again.stdout
    checked = crash_server.cli("backup", "repo", "check", "local", "--json")  # exclusive lock
    assert checked.returncode == 0, checked.stderr + checked.stdout
    assert json.loads(checked.stdout)["ok"] is True
    # the stale lock was cleared (a read the server runs now may hold a live lock of its own)
    assert not (repo / "locks" / stale).exists()

    # a restore killed after the swap: the data it found comes back, and the instance runs
    data, volume = crash_server.data_dir / "appdata" / name, f"stackhub-{name}_db"
    saved, saved_volume = tree(data), volume_tree(volume)  # as in the latest snapshot
    mangle(crash_server, name)
    before, before_volume = tree(data), volume_tree(volume)
    _restore_paused_at(crash_server, name, "restore-swapped", tmp_path)
    assert tree(data) != before
    crash_server.kill9()
    crash_server.start()
    assert crash_server.wait_status(name, {"running"})["status"] == "running"
    assert tree(data) == before
    root = Path(mountpoint(volume))
    try:  # the roll-back at start put the old entries back: nothing of the restore is left
        wait_for_settled(lambda: not any(p.name.startswith(".stackhub-restore-")
                                         for p in root.iterdir()), "the roll-back")
    except AssertionError as err:
        raise AssertionError(f"{err}: {sorted(p.name for p in root.iterdir())}; server log: "
                             f"{crash_server.log.read_text()[-3000:]}") from None
    assert volume_tree(volume) == before_volume
    assert not any((crash_server.data_dir / "backups" / "work").iterdir())

    # a server killed after a restore ended, while the old content left its volume: the
    # next start finishes that clean-up (nothing of it stays in the volume, no helper)
    _restore_paused_at(crash_server, name, "restore-clearing", tmp_path)

    def restored() -> bool:  # the clean-up is no part of the operation
        return bool(crash_server.api("GET", "/api/operations", params={
            "instance": name, "kind": "restore"}).json()["items"][0]["state"] == "succeeded")

    wait_for(restored, what="the restore to succeed while its clean-up waits")
    assert tree(data) == saved
    assert any(p.name.startswith(".stackhub-restore-") for p in root.iterdir())
    crash_server.kill9()
    helpers = ("ps", "-aq", "--filter", "label=io.stackhub.helper=backup", "--filter",
               f"volume={volume}")
    assert docker(*helpers).stdout.strip()  # the helper holding the volume outlived the server
    crash_server.start()
    assert crash_server.wait_status(name, {"running"})["status"] == "running"
    wait_for(lambda: not any(p.name.startswith(".stackhub-restore-") for p in root.iterdir()),
             what="the old content to leave the volume")
    assert volume_tree(volume) == saved_volume
    assert not docker(*helpers).stdout.strip()
    assert not any((crash_server.data_dir / "backups" / "work").iterdir())


def _compose(srv: Server, name: str) -> Path:
    return srv.data_dir / "instances" / name / "compose.yaml"


def test_restore_refuses_risky_options_the_instance_did_not_have(
        keeper: tuple[Server, str]) -> None:
    import yaml

    srv, name = keeper
    live = _compose(srv, name)
    original = live.read_bytes()
    risky = yaml.safe_load(original)
    risky["services"]["web"]["cap_add"] = ["CHOWN"]  # a default capability: it still runs
    risky["services"]["web"]["volumes"].append("/etc:/host-etc:ro")
    live.write_text(yaml.safe_dump(risky))  # as if the repository's copy had been tampered
    try:
        created = srv.cli("backup", "create", name)
        assert created.returncode == 0, created.stderr + created.stdout
    finally:
        live.write_bytes(original)
    data = srv.data_dir / "appdata" / name
    before, ops_before = tree(data), srv.api("GET", "/api/operations").json()["total"]

    refused = srv.cli("backup", "restore", name, "latest", "--yes", "--json")
    assert refused.returncode == 1
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "risk_not_accepted", error
    codes = {r["code"] for r in error["details"]["risks"]}
    assert codes == {"cap_add", "system_path"}, error
    digest = error["details"]["digest"]
    assert digest.startswith("sha256:")
    text = srv.cli("backup", "restore", name, "latest", "--yes")
    assert text.returncode == 1 and f"--accept-risks {digest}" in text.stderr, text.stderr
    wrong = srv.api("POST", f"/api/backups/instances/{name}/snapshots/latest/restore",
                    json={"accept_risks": "sha256:" + "0" * 64})
    assert wrong.status_code == 428, wrong.text
    # nothing was changed or journaled by the refusals
    assert live.read_bytes() == original and tree(data) == before
    assert srv.api("GET", "/api/operations").json()["total"] == ops_before
    assert srv.wait_status(name, {"running"})["status"] == "running"

    accepted = srv.cli("backup", "restore", name, "latest", "--yes", "--accept-risks", digest)
    assert accepted.returncode == 0, accepted.stderr + accepted.stdout
    assert yaml.safe_load(live.read_text())["services"]["web"]["cap_add"] == ["CHOWN"]

    # a snapshot with no more risks than the instance has now restores without consent
    plain = srv.cli("backup", "create", name)
    assert plain.returncode == 0, plain.stderr
    again = srv.cli("backup", "restore", name, "latest", "--yes")
    assert again.returncode == 0, again.stderr + again.stdout


def test_restore_as_a_new_instance_beside_the_original(keeper: tuple[Server, str]) -> None:
    srv, name = keeper
    copy = "keeper-copy"
    volume, copy_volume = f"stackhub-{name}_db", f"stackhub-{copy}_db"
    data = srv.data_dir / "appdata" / name
    before, before_volume = tree(data), volume_tree(volume)
    assert srv.cli("backup", "create", name).returncode == 0
    mangle(srv, name)
    mangled, mangled_volume = tree(data), volume_tree(volume)

    # bad names: nothing is journaled or created
    ops_before = srv.api("GET", "/api/operations").json()["total"]
    same = cli_json_error(srv, "backup", "restore", name, "latest", "--as", name)
    assert same["code"] == "invalid" and "other than" in same["message"]
    taken = cli_json_error(srv, "backup", "restore", name, "latest", "--as", name.upper())
    assert taken["code"] == "invalid"
    install(srv, "keeper-taken")
    clash = cli_json_error(srv, "backup", "restore", name, "latest", "--as", "keeper-taken")
    assert clash["code"] == "already_exists" and "keeper-taken" in clash["message"]
    assert srv.api("GET", "/api/operations").json()["total"] == ops_before + 1  # the install
    assert not (srv.data_dir / "instances" / copy).exists()

    made = srv.cli("backup", "restore", name, "latest", "--as", copy, "--json")
    assert made.returncode == 0, made.stderr + made.stdout
    op = json.loads(made.stdout)["operation"]
    assert (op["instance"], op["target"], op["kind"]) == (name, copy, "restore")
    shown = srv.wait_status(copy, {"running"})
    original = srv.api("GET", f"/api/instances/{name}").json()
    assert original["status"] == "running" and shown["app"] == original["app"]
    assert shown["ports"][0]["host_port"] != original["ports"][0]["host_port"]
    assert tree(srv.data_dir / "appdata" / copy) == before  # the snapshot's data
    assert volume_tree(copy_volume) == before_volume
    assert tree(data) == mangled and volume_tree(volume) == mangled_volume  # untouched

    def values(instance: str) -> dict[str, str]:
        path = srv.data_dir / "instances" / instance / "values.json"
        loaded: dict[str, str] = json.loads(path.read_text())
        return loaded

    assert values(copy)["ADMIN_TOKEN"] == values(name)["ADMIN_TOKEN"]  # same secrets
    assert values(copy)["WEB_PORT"] != values(name)["WEB_PORT"]
    env = docker("inspect", "-f", "{{json .Config.Env}}", f"stackhub-{copy}-web-1").stdout
    assert f"ADMIN_TOKEN={values(name)['ADMIN_TOKEN']}" in env
    labels_ = json.loads(docker("volume", "inspect", copy_volume).stdout)[0]["Labels"]
    assert labels_.get("com.docker.compose.project") == f"stackhub-{copy}"
    again = cli_json_error(srv, "backup", "restore", name, "latest", "--as", copy)
    assert again["code"] == "already_exists"


def cli_json_error(srv: Server, *args: str) -> dict[str, Any]:
    """Run a CLI command expected to fail with --json; return its error object."""
    result = srv.cli(*args, "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    error: dict[str, Any] = json.loads(result.stdout)["error"]
    return error


def test_a_killed_system_backup_is_interrupted_and_the_next_one_succeeds(
        crash_server: Server, tmp_path: Path) -> None:
    """The crash scenario of the `system-backup` kind (tests/integration/test_crash_kinds.py):
    SIGKILL after the database copy is staged; after the restart the operation reads
    interrupted, the staged copy is gone, and `backup system` succeeds (with progress)."""
    from tests.integration.test_crash import wait_for
    from tests.integration.test_crash_kinds import _send

    marker = tmp_path / "paused"
    crash_server.start(STACKHUB_FAULT_PAUSE="system-backup-staged",
                       STACKHUB_FAULT_MARKER=str(marker))
    _send(crash_server, "POST", "/api/backups/system", None)
    wait_for(marker.exists, what="the system backup to stage the database")
    busy = crash_server.api("POST", "/api/backups/system")
    assert busy.status_code == 409, busy.text  # one system backup at a time
    stage = crash_server.data_dir / "backups" / "stage" / "_system"
    assert (stage / "stackhub.db").is_file()
    crash_server.kill9()
    crash_server.start()
    ops = crash_server.api("GET", "/api/operations", params={"instance": "@system"}).json()
    assert [(o["kind"], o["state"]) for o in ops["items"]] == [("system-backup", "interrupted")]
    assert "StackHub stopped" in ops["items"][0]["error"]
    wait_for(lambda: not stage.exists(), what="the after-crash clean-up of the staged copy")
    again = crash_server.cli("backup", "system")
    assert again.returncode == 0, again.stderr + again.stdout
    assert "StackHub's state is backed up as" in again.stdout
    latest = crash_server.api("GET", "/api/operations", params={"instance": "@system"}).json()
    assert latest["items"][0]["state"] == "succeeded"
    assert [s["name"] for s in latest["items"][0]["steps"]] == ["database", "snapshot",
                                                                "check"]
    assert not stage.exists()


MEMBER_PASSWORD = "correct horse battery staple"


def _old_box_state(srv: Server, name: str, tmp_path: Path) -> None:
    """Give the old box a member, a store, a base and a custom domain, and a setting."""
    import sqlite3

    made = srv.api("POST", "/api/users", json={"username": "alice", "password": MEMBER_PASSWORD,
                                               "role": "member"})
    assert made.status_code == 201, made.text
    store = tmp_path / "store" / "hello"
    store.mkdir(parents=True)
    (store / "stackhub-app.yaml").write_text(MANIFEST.replace("id: keeper", "id: hello"))
    (store / "compose.yaml").write_text(COMPOSE)
    added = srv.cli("store", "add", "mine", str(tmp_path / "store"), "--local")
    assert added.returncode == 0, added.stderr + added.stdout
    security = srv.api("PUT", "/api/settings/security", json={
        "require_2fa": False, "trusted_proxies": ["10.9.8.0/24"],
        "allowed_origins": ["https://console.example.test"]})
    assert security.status_code == 200, security.text
    # the gateway is off in tests (STACKHUB_GATEWAY=0): its rows are written as it would
    stamp = "2026-01-01T00:00:00Z"
    with contextlib.closing(sqlite3.connect(srv.data_dir / "stackhub.db")) as conn, conn:
        conn.executemany("INSERT OR REPLACE INTO gateway_settings (key, value) VALUES (?,?)",
                         [("base", "home.lan"), ("tls", "internal")])
        conn.execute("INSERT INTO domains (name, instance, state, created_at, updated_at) "
                     "VALUES (?,?,?,?,?)", ("keeper.example.test", name, "active", stamp, stamp))


def test_system_backup_brings_stackhub_back_on_a_fresh_data_root(
        keeper: tuple[Server, str], tmp_path: Path) -> None:
    from tests.integration.conftest import STACKHUB, http_text
    from tests.integration.test_crash import wait_for

    srv, name = keeper
    data = srv.data_dir / "appdata" / name
    _old_box_state(srv, name, tmp_path)
    before, before_volume = tree(data), volume_tree(f"stackhub-{name}_db")
    values = (srv.data_dir / "instances" / name / "values.json").read_text()
    assert srv.cli("backup", "create", name).returncode == 0
    system = cli_json(srv, "backup", "system")
    assert system["operation"]["state"] == "succeeded"
    assert (system["operation"]["kind"], system["operation"]["instance"]) == (
        "system-backup", "@system")
    assert (system["snapshot"]["kind"], system["snapshot"]["app"]) == ("system", "stackhub")
    kit = cli_json(srv, "backup", "repo", "key", "local")
    assert kit["kit"].startswith("StackHub backup repository: local")
    assert f"Password: {kit['password']}" in kit["kit"]
    removed = srv.cli("app", "remove", name, "--yes", "--purge")  # the old box is lost
    assert removed.returncode == 0, removed.stderr
    wait_gone(srv, name)
    srv.stop()

    (tmp_path / "fresh").mkdir()
    fresh = Server(tmp_path / "fresh" / "data")  # a freshly installed box
    fresh.start()
    try:
        # refused while its server runs, and with a wrong kit; nothing changed
        password_file = tmp_path / "password.txt"
        password_file.write_text("wrong password\n")
        alias = [*STACKHUB, "backup", "restore-system", kit["url"], "--password-file",
                 str(password_file), "--json"]
        running = subprocess.run(alias, env=fresh.env, capture_output=True, text=True)
        assert running.returncode == 2 and "stop it first" in running.stdout, running.stdout
        fresh.stop()
        wrong = subprocess.run(alias, env=fresh.env, capture_output=True, text=True)
        assert wrong.returncode == 1 and "password" in wrong.stdout, wrong.stdout
        assert not (fresh.data_dir / "instances" / name).exists()
        kit_file = tmp_path / "stackhub-recovery-kit-local.txt"  # as the console downloads it
        kit_file.write_text(kit["kit"])
        args = [*STACKHUB, "restore-system", "--kit", str(kit_file), "--json"]
        done = subprocess.run(args, env=fresh.env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout)
        assert report["instances"] == [name] and report["by_hand"] == {}
        assert list(report["restoring"]) == [name]
        fresh.start()  # restores each instance from its latest snapshot
        wait_for(lambda: any(o["kind"] == "restore" and o["state"] != "running" for o in
                             fresh.api("GET", "/api/operations", params={
                                 "instance": name}).json()["items"]),
                 what="the restore of the instance at the first start")
        restore = fresh.api("GET", "/api/operations", params={"instance": name}).json()
        assert restore["items"][0]["state"] == "succeeded", restore["items"][0]
        shown = fresh.wait_status(name, {"running"})
        assert shown["status"] == "running"
        assert tree(fresh.data_dir / "appdata" / name) == before
        assert volume_tree(f"stackhub-{name}_db") == before_volume
        assert (fresh.data_dir / "instances" / name / "values.json").read_text() == values
        assert http_text(shown["ports"][0]["host_port"], timeout=30)  # the app answers
        # users: the member signs in with the old password (and the admin token is the old one)
        with httpx.Client(base_url=fresh.url, timeout=30) as member:
            signed = member.post("/api/auth/login", json={"username": "alice",
                                                          "password": MEMBER_PASSWORD})
            assert signed.status_code == 200, signed.text
        stores = {s["name"] for s in fresh.api("GET", "/api/stores").json()}
        assert "mine" in stores
        base = fresh.api("GET", "/api/domains/base").json()
        assert (base["base"], base["tls"]) == ("home.lan", "internal"), base
        domains = {d["name"]: d["instance"] for d in fresh.api("GET", "/api/domains").json()}
        assert domains.get("keeper.example.test") == name
        security = fresh.api("GET", "/api/settings/security").json()
        assert security["trusted_proxies"] == ["10.9.8.0/24"]
        assert security["allowed_origins"] == ["https://console.example.test"]
        system_ops = fresh.api("GET", "/api/operations", params={"instance": "@system"}).json()
        assert [o["state"] for o in system_ops["items"]] == ["succeeded"]  # not interrupted
        assert not (fresh.data_dir / "backups" / "recovery.json").exists()
        twice = subprocess.run(args, env={**fresh.env, "STACKHUB_URL": "http://127.0.0.1:9"},
                               capture_output=True, text=True)
        assert twice.returncode == 1 and "already has instances" in twice.stdout
    finally:
        fresh.stop()
        fresh.cleanup_engine()


@pytest.mark.parametrize("kind", ["sftp", "s3"])
def test_restore_system_from_a_remote_repository_needs_only_the_kit(
        keeper: tuple[Server, str], tmp_path: Path, services: list[subprocess.Popen[bytes]],
        kind: str) -> None:
    """The kit holds what a new box needs to reach the repository (the SFTP key StackHub
    generated, the S3 keys): restore-system with it alone brings the box and the app back."""
    from tests.integration.conftest import STACKHUB
    from tests.integration.test_crash import wait_for

    srv, name = keeper
    extra: dict[str, str] = {}
    if kind == "sftp":
        key = cli_json(srv, "backup", "repo", "ssh-key")["public_key"]
        url = f"sftp://root@127.0.0.1:{start_sshd(tmp_path, key, services)}/" \
              f"{tmp_path / 'sftp-repo'}"
    else:
        port, key_id, secret = start_moto_with_keys(services)  # keys are checked
        url = f"s3:http://127.0.0.1:{port}/stackhub-kit"
        extra = {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret}
    added = srv.cli("backup", "repo", "add", "far", url, **extra)
    assert added.returncode == 0, added.stderr + added.stdout
    before = tree(srv.data_dir / "appdata" / name)
    assert srv.cli("backup", "create", name, "--repo", "far").returncode == 0
    assert cli_json(srv, "backup", "system", "--repo", "far")["snapshot"]["repository"] == "far"
    kit = cli_json(srv, "backup", "repo", "key", "far")
    if kind == "sftp":
        assert kit["ssh_private_key"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
        assert "SSH private key:" in kit["kit"] and kit["access_key_id"] is None
    else:
        assert (kit["access_key_id"], kit["secret_access_key"]) == (key_id, secret)
        assert f"S3 secret access key: {secret}" in kit["kit"] and kit["ssh_private_key"] is None
    assert srv.cli("app", "remove", name, "--yes", "--purge").returncode == 0
    wait_gone(srv, name)
    srv.stop()

    fresh = Server(tmp_path / "fresh" / "data")  # nothing of the old box but the kit
    try:
        kit_file = tmp_path / "kit.txt"
        kit_file.write_text(kit["kit"])
        env = {k: v for k, v in fresh.env.items() if not k.startswith("AWS_")}
        done = subprocess.run([*STACKHUB, "restore-system", "--kit", str(kit_file), "--json"],
                              env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        assert list(json.loads(done.stdout)["restoring"]) == [name]
        assert not list((fresh.data_dir / "backups" / "work").glob("kit-*"))  # secrets gone
        fresh.start()
        wait_for(lambda: any(o["kind"] == "restore" and o["state"] != "running" for o in
                             fresh.api("GET", "/api/operations", params={
                                 "instance": name}).json()["items"]),
                 what="the restore of the instance at the first start")
        assert fresh.wait_status(name, {"running"})["status"] == "running"
        assert tree(fresh.data_dir / "appdata" / name) == before
    finally:
        fresh.stop()
        fresh.cleanup_engine()


def _db_and_web(folder: Path, *, db_extra: str, depends_on: str) -> None:
    """Write a project of two sleeping services, web depending on db as `depends_on` says."""
    (folder / "compose.yaml").write_text(f"""\
services:
  db:
    image: {IMAGE}
    command: ["sleep", "100000"]
    stop_grace_period: 1s{db_extra}
    labels: {{io.stackhub.managed: "true"}}
  web:
    image: {IMAGE}
    command: ["sleep", "100000"]
    stop_grace_period: 1s
    depends_on: {depends_on}
    labels: {{io.stackhub.managed: "true"}}
""")


def test_the_engine_stops_a_project_dependents_first(tmp_path: Path) -> None:
    """A backup's stop goes through the engine API: dependents before what they depend on,
    each container with its own grace period, only this project's running containers."""
    from stackhub.adapters.engine import DockerEngine

    project = f"h3stop{os.getpid()}"
    _db_and_web(tmp_path, db_extra="", depends_on="[db]")
    compose = ["compose", "-p", project, "--project-directory", str(tmp_path)]
    docker(*compose, "up", "-d")
    try:
        assert DockerEngine().stop_project(project) == 2
        finished = {}
        for service in ("db", "web"):
            state = json.loads(docker("inspect", f"{project}-{service}-1").stdout)[0]["State"]
            assert state["Status"] == "exited"
            finished[service] = state["FinishedAt"]
        assert finished["web"] < finished["db"]  # `sleep` ignores SIGTERM: 1 s grace each
        assert DockerEngine().stop_project(project) == 0  # nothing running: nothing to do
        # the start after the backup: what web depends on first, both running again
        assert DockerEngine().start_project(project) == 2
        started = {}
        for service in ("db", "web"):
            state = json.loads(docker("inspect", f"{project}-{service}-1").stdout)[0]["State"]
            assert state["Running"] is True
            started[service] = state["StartedAt"]
        assert started["db"] < started["web"]
        assert DockerEngine().start_project(project) == 2  # running already: still fine
    finally:
        docker(*compose, "down", "-v", "--timeout", "1", check=False)


def test_the_engine_leaves_a_start_with_conditions_to_compose(tmp_path: Path) -> None:
    """A service waiting for another's health: `start_project` starts nothing (Compose,
    which waits for the condition, does it)."""
    from stackhub.adapters.engine import DockerEngine

    project = f"h3cond{os.getpid()}"
    _db_and_web(tmp_path, db_extra='\n    healthcheck: {test: ["CMD", "true"], interval: 1s}',
                depends_on="{db: {condition: service_healthy}}")
    compose = ["compose", "-p", project, "--project-directory", str(tmp_path)]
    docker(*compose, "up", "-d")
    try:
        assert DockerEngine().stop_project(project) == 2
        assert DockerEngine().start_project(project) is None
        for service in ("db", "web"):
            state = json.loads(docker("inspect", f"{project}-{service}-1").stdout)[0]["State"]
            assert state["Status"] == "exited", service
    finally:
        docker(*compose, "down", "-v", "--timeout", "1", check=False)
