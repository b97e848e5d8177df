"""The backup domain's pure parts: restic output, error translation, URLs, snapshot paths."""

from __future__ import annotations

import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from stackhub.adapters.restic import (
    BackupProgress,
    BackupSummary,
    Node,
    Repository,
    Snapshot,
    parse_backup_line,
    translate,
)
from stackhub.adapters.volumes import VolumeInfo
from stackhub.apps.models import PortMapping
from stackhub.backup.flows import (
    _move_into,
    _pack,
    check_paths,
    definition_of,
    record_of,
    tags_of,
    volume_place,
)
from stackhub.backup.models import RepositoryCreate, RepositoryKind
from stackhub.backup.repos import Repositories, kind_of_url
from stackhub.config import Paths
from stackhub.errors import AlreadyExists, Conflict, Invalid, RepositoryError, StorageFull
from stackhub.state.db import Database
from stackhub.state.instances import InstanceRecord

REPO = Repository(name="nas", url="sftp:u@h:/r", password_file=Path("/x"))


def test_backup_json_lines_become_typed_events() -> None:
    status = parse_backup_line('{"message_type":"status","percent_done":0.5,"total_bytes":10,'
                               '"bytes_done":5,"seconds_remaining":3}')
    assert isinstance(status, BackupProgress) and status.percent == 50.0
    summary = parse_backup_line('{"message_type":"summary","snapshot_id":"9ce07146",'
                                '"data_added":2124,"total_duration":0.2}')
    assert isinstance(summary, BackupSummary) and summary.snapshot_id == "9ce07146"
    assert parse_backup_line("not json") is None
    assert parse_backup_line('{"message_type":"error"}') is None
    assert parse_backup_line("[1]") is None


@pytest.mark.parametrize(("stderr", "error", "reason"), [
    ("Fatal: wrong password or no key found", RepositoryError, "wrong_password"),
    ("Fatal: unable to open config file: stat /r/config: no such file or directory",
     RepositoryError, "unreachable"),
    ("Fatal: unable to open repository: ssh command exited: exit status 255",
     RepositoryError, "unreachable"),
    ("dial tcp 127.0.0.1:9: connect: connection refused", RepositoryError, "unreachable"),
    ("Fatal: unable to open config file: Stat: The AWS Access Key Id you provided does not "
     "exist in our records.\nIs there a repository at the following location?",
     RepositoryError, "credentials"),
    ("Fatal: create repository at s3:http://h/b failed: client.BucketExists: The request "
     "signature we calculated does not match the signature you provided.", RepositoryError,
     "credentials"),
    ("Fatal: unable to open config file: Stat: Access Denied.", RepositoryError, "credentials"),
    ("Fatal: unable to open config file: InvalidAccessKeyId", RepositoryError, "credentials"),
    ("Fatal: unable to create lock in backend: repository is already locked by PID 3",
     Conflict, "locked"),
    ("Fatal: unable to save snapshot: write /r/data: no space left on device", StorageFull, None),
    ("something odd", RepositoryError, "failed"),
])
def test_restic_failures_are_translated(stderr: str, error: type, reason: str | None) -> None:
    err = translate(stderr, REPO, "the backup")
    assert isinstance(err, error)
    assert err.message.startswith("the backup")
    if reason is not None:
        assert err.details["reason"] == reason
    if reason == "wrong_password":
        assert "password" in err.message and "nothing was changed" in err.message


def test_wrong_s3_keys_are_named_as_the_problem() -> None:
    s3 = Repository(name="cloud", url="s3:https://s3.example.com/b", password_file=Path("/x"))
    err = translate("Fatal: unable to open config file: Stat: The request signature we "
                    "calculated does not match the signature you provided.", s3, "the backup")
    assert "access key id and secret access key" in err.message
    assert "cannot be reached" not in err.message and err.details["reason"] == "credentials"
    down = translate("Fatal: unable to open config file: Stat: dial tcp 127.0.0.1:9: connect: "
                     "connection refused", s3, "the backup")
    assert "cannot be reached" in down.message and "secret access key" not in down.message


@pytest.mark.parametrize(("url", "kind"), [
    ("/mnt/disk/restic", RepositoryKind.LOCAL),
    ("sftp:backup@nas.lan:/srv/restic", RepositoryKind.SFTP),
    ("sftp://backup@nas.lan:2222//srv/restic", RepositoryKind.SFTP),
    ("s3:https://s3.example.com/bucket", RepositoryKind.S3),
    ("rest:http://127.0.0.1:8000/", RepositoryKind.REST),
])
def test_repository_urls(url: str, kind: RepositoryKind) -> None:
    assert kind_of_url(url) == kind


@pytest.mark.parametrize("url", ["relative/path", "-o=x", "sftp:-v@h:/x", "sftp:u@-h:/x",
                                 "s3:ftp://h/b", "/a/../b", "/a\n/b", "rclone:x:y", "sftp:h"])
def test_bad_repository_urls_are_refused(url: str) -> None:
    with pytest.raises(Invalid):
        kind_of_url(url)


def _node(path: str, kind: str = "file", size: int = 0) -> Node:
    return Node(path=path, type=kind, size=size)


def test_snapshot_paths_stay_inside_the_instance() -> None:
    good = [_node("/instances", "dir"), _node("/instances/web", "dir"),
            _node("/instances/web/compose.yaml", size=10), _node("/appdata", "dir"),
            _node("/appdata/web/link", "symlink", 0), _node("/backups", "dir"),
            _node("/backups/stage", "dir"), _node("/backups/stage/web/definition.json", size=5)]
    assert check_paths(good, "web") == 15
    for bad in (_node("/etc/cron.d"), _node("/appdata/other/x"), _node("/appdata/web/../x"),
                _node("/appdata/webx/y"), _node("/instances/web/l", "symlink"),
                _node("/appdata/web/dev", "dev"), _node("relative"), _node("/appdata", "file"),
                _node("/backups/stage/web/volumes/v.tar", "symlink")):
        with pytest.raises(Invalid):
            check_paths([*good, bad], "web")


def test_volumes_read_in_place_are_allowed_only_at_their_own_folders() -> None:
    root = "/srv/engine/volumes/stackhub-web_db/_data"
    good = [_node("/instances/web/compose.yaml", size=10), _node("/srv", "dir"),
            _node("/srv/engine", "dir"), _node("/srv/engine/volumes", "dir"),
            _node("/srv/engine/volumes/stackhub-web_db", "dir"), _node(root, "dir"),
            _node(f"{root}/pg/base", "dir"), _node(f"{root}/pg/base/1", size=7),
            _node(f"{root}/link", "symlink", 0), _node(f"{root}/pg/.s.PGSQL", "socket", 0)]
    assert check_paths(good, "web") == 17
    for bad in (_node("/srv/engine/volumes/stackhub-web_db/other"),  # beside the folder
                _node("/srv/engine/volumes/stackhub-blog_db/_data/x"),  # another instance's
                _node("/srv/engine/x"), _node("/srv", "file"), _node(f"{root}/dev", "dev"),
                _node(f"{root}/../../x")):
        with pytest.raises(Invalid):
            check_paths([*good, bad], "web")
    # another instance's volume folder is not a root of this one
    with pytest.raises(Invalid, match="outside"):
        check_paths([_node("/v/volumes/stackhub-blog_db/_data", "dir"),
                     _node("/v/volumes/stackhub-blog_db/_data/x")], "web")


def test_volume_places_in_definitions_are_checked() -> None:
    assert volume_place({"name": "stackhub-web_db"}, "web") is None  # a tar (older backups)
    assert volume_place({"path": "/var/lib/docker/volumes/stackhub-web_db/_data"}, "web") == \
        "/var/lib/docker/volumes/stackhub-web_db/_data"
    for bad in ("/etc", "/var/lib/docker/volumes/stackhub-blog_db/_data", "relative/_data",
                "/x/../volumes/stackhub-web_db/_data", 7):
        with pytest.raises(Invalid):
            volume_place({"path": bad}, "web")


def test_definitions_name_the_folders_of_volumes_read_in_place() -> None:
    record = InstanceRecord(
        name="web", app_ref="official/web", store="official", format="stackhub", version="1.2",
        revision=3, status="running", main_service="web", main_port=80, main_path="/",
        ports=[], parameters={}, secret_names=[], definition={"id": "web"}, error=None,
        update_available=None, created_at="t", updated_at="t")
    tarred = VolumeInfo(name="stackhub-web_cache", key="cache")
    placed = VolumeInfo(name="stackhub-web_db", key="db")
    found = definition_of(record, [tarred, placed],
                          {placed.name: Path("/var/lib/docker/volumes/stackhub-web_db/_data")})
    assert [v.get("path") for v in found["volumes"]] == [
        None, "/var/lib/docker/volumes/stackhub-web_db/_data"]
    assert VolumeInfo.model_validate(found["volumes"][1]) == placed


def test_definition_round_trip_and_tags() -> None:
    record = InstanceRecord(
        name="web", app_ref="official/web", store="official", format="stackhub", version="1.2",
        revision=3, status="running", main_service="web", main_port=80, main_path="/",
        ports=[PortMapping(service="web", container_port=80, host_port=18100)],
        parameters={"TOKEN": "s3cret"},
        secret_names=["TOKEN"], definition={"id": "web"}, error=None, update_available=None,
        created_at="t", updated_at="t")
    data = json.loads(json.dumps(definition_of(record, [])))
    back = record_of(data, "web2")
    assert back.name == "web2" and back.parameters == {"TOKEN": "s3cret"}
    assert back.ports == record.ports
    assert "instance=web" in tags_of(record, "manual", 7) and "size=7" in tags_of(
        record, "manual", 7)
    with pytest.raises(Invalid):
        record_of({"format": 1}, "web")
    snap = Snapshot(id="ab" * 32, time="t", tags=["instance=web", "app=a/b"])
    assert snap.tag("app") == "a/b" and snap.tag("kind") is None


def test_repositories_keep_secrets_in_private_files(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "root")
    paths.ensure()
    repos = Repositories(Database(paths.db), paths)
    repos.ensure_default()
    repos.ensure_default()
    assert [r.name for r in repos.all()] == ["local"]
    password = paths.secrets / "backup" / "local.password"
    assert password.stat().st_mode & 0o777 == 0o600
    assert (paths.secrets / "backup").stat().st_mode & 0o777 == 0o700
    assert len(repos.password("local")) >= 32
    added = repos.add(RepositoryCreate(name="s3", url="s3:https://h/bucket", access_key_id="k",
                                       secret_access_key="S3-KEY-VALUE"))
    assert added.kind == RepositoryKind.S3 and not added.default
    handle = repos.handle("s3")
    assert handle.env == {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "S3-KEY-VALUE"}
    assert "S3-KEY-VALUE" not in " ".join(handle.args())
    assert (paths.secrets / "backup" / "s3.env.json").stat().st_mode & 0o777 == 0o600
    with pytest.raises(AlreadyExists):
        repos.add(RepositoryCreate(name="s3", url="/x"))
    with pytest.raises(Invalid):
        repos.add(RepositoryCreate(name="s4", url="s3:https://h/bucket"))
    with pytest.raises(Invalid):
        repos.forget("local")
    repos.forget("s3")
    assert not (paths.secrets / "backup" / "s3.password").exists()
    assert [r.name for r in repos.all()] == ["local"]


def test_a_folder_moves_into_an_empty_volume_folder_whole(tmp_path: Path) -> None:
    src, dest = tmp_path / "restored" / "_data", tmp_path / "volume" / "_data"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_text("x")
    (src / "l").symlink_to("d/f")
    src.chmod(0o700)
    os.chown(src, 999, 998)
    dest.mkdir(parents=True)
    _move_into(src, dest)
    assert not src.exists()
    assert (dest / "d" / "f").read_text() == "x" and os.readlink(dest / "l") == "d/f"
    st = dest.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o700, 999, 998)
    with pytest.raises(OSError):  # never over a volume that holds data
        (tmp_path / "other").mkdir()
        _move_into(tmp_path / "other", dest)


def test_a_folder_packs_as_a_volume_tar(tmp_path: Path) -> None:
    src = tmp_path / "_data"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_text("x")
    os.chown(src / "d" / "f", 33, 34)
    (src / "l").symlink_to("/etc/passwd")
    _pack(src, tmp_path / "v.tar")
    with tarfile.open(tmp_path / "v.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {"v", "v/d", "v/d/f", "v/l"}
    assert (members["v/d/f"].uid, members["v/d/f"].gid) == (33, 34)
    assert members["v/l"].issym() and members["v/l"].linkname == "/etc/passwd"
