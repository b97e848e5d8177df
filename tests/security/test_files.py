"""The file manager stays inside the instance's data folder, whatever the path or the links.

Links point at a folder outside the data root holding a sentinel (never at the host's real
/etc for anything that could write: a failing test must not damage the machine); links to
/ and /etc are used for listing, reading, downloading and zipping only.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stackhub.tools import files
from stackhub.tools.files import Root

from .conftest import MEMBER, Server, bearer, isolate, running, set_up
from .test_members import install

NAME = "filesec"
SENTINEL = b"outside-must-stay-untouched"


@dataclass(frozen=True)
class Installed:
    """The module's one app with the instance installed, and its data folder as installed."""

    server: Server
    folder: os.stat_result | None  # the data folder right after the install (None: absent)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """One app, its admin, member and instance for the whole module (set up once, not per test)."""
    base = tmp_path_factory.mktemp("files")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(base, monkeypatch)
        with running(base / "data") as server:
            set_up(server)
            install(server, NAME, 18201)
            data = server.paths.instance_data(NAME)
            yield Installed(server, os.stat(data) if data.exists() else None)


def as_installed(state: Installed) -> Path:
    """Put the data folder back as the install left it (contents, trash, owner, mode)."""
    data = state.server.paths.instance_data(NAME)
    if data.is_symlink():
        data.unlink()
    elif data.exists():
        shutil.rmtree(data)  # links inside are removed, never followed
    if state.folder is not None:
        data.mkdir()
        os.chown(data, state.folder.st_uid, state.folder.st_gid)
        os.chmod(data, stat.S_IMODE(state.folder.st_mode))
    return data


@pytest.fixture
def box(installed: Installed, tmp_path: Path) -> Iterator[tuple[Server, TestClient, Path, Path]]:
    """An instance whose data folder holds links to / , /etc and an outside folder."""
    ready = installed.server
    data = as_installed(installed)
    ungranted = ready.client.put(f"/api/users/{MEMBER[0]}/instances", json={"instances": []},
                                 headers=ready.admin_headers())
    assert ungranted.status_code == 200, ungranted.text  # as created: no instance granted
    data.mkdir(exist_ok=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SENTINEL)
    (data / "notes.txt").write_text("hello\n")
    (data / "sub").mkdir()
    (data / "sub" / "a.txt").write_text("a")
    os.symlink("/", data / "root-link")
    os.symlink("/etc", data / "etc-link")
    os.symlink(outside, data / "out-link")
    os.symlink(outside / "secret.txt", data / "secret-link")
    os.symlink(data / "missing", data / "dangling")
    client = ready.new_client(headers=ready.admin_headers())
    yield ready, client, data, outside
    assert (outside / "secret.txt").read_bytes() == SENTINEL
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def url(tail: str = "") -> str:
    return f"/api/instances/{NAME}/files{tail}"


TRAVERSALS = ["..", "../", "../outside", "sub/../../x", "sub/..", "./notes.txt",
              "/etc/passwd", "/", "//etc", "sub//a.txt", "..\\x", "sub\\..\\..\\x",
              "a\x00b", "a\nb", "\x7f", ".stackhub-trash", ".stackhub-trash/x"]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_every_traversal_form_is_refused_everywhere(box: tuple[Server, TestClient, Path, Path],
                                                    path: str) -> None:
    """Each route answers 422 with a message and changes nothing (/ alone is the root)."""
    _, client, data, _ = box
    before = sorted(p.name for p in data.iterdir())
    if path == "/":
        answer = client.get(url(), params={"path": path})
        assert answer.status_code == 200, answer.text
        return
    answers = [
        client.get(url(), params={"path": path}),
        client.get(url("/text"), params={"path": path}),
        client.get(url("/download"), params={"path": path}),
        client.put(url("/upload"), params={"path": path}, content=b"x"),
        client.post(url("/folder"), json={"path": path}),
        client.post(url("/move"), json={"source": "notes.txt", "destination": path}),
        client.post(url("/move"), json={"source": path, "destination": "moved"}),
        client.delete(url(), params={"path": path}),
        client.put(url("/text"), json={"path": path, "content": "x", "etag": None}),
        client.post(url("/chown"), json={"path": path}),
    ]
    for answer in answers:
        assert answer.status_code == 422, (answer.request.method, answer.request.url,
                                           answer.text)
        assert answer.json()["error"]["message"]
    assert sorted(p.name for p in data.iterdir()) == before


def test_url_encoded_traversal_is_decoded_once_and_refused(
        box: tuple[Server, TestClient, Path, Path]) -> None:
    """%2e%2e%2f arrives as ../ (refused); %252e%252e stays a literal, harmless name."""
    _, client, _, _ = box
    assert client.get(url("/download?path=%2e%2e%2fetc%2fpasswd")).status_code == 422
    assert client.get(url("/download?path=sub%2f..%2f..%2fx")).status_code == 422
    assert client.get(url("/download?path=%5c..%5cx")).status_code == 422
    # decoded once: a literal name '%2e%2e%2fetc%2fpasswd' inside the folder, which is absent
    answer = client.get(url("/download?path=%252e%252e%252fetc%252fpasswd"))
    assert answer.status_code == 404, answer.text
    answer = client.get(url("/download?path=%252e%252e"))
    assert answer.status_code == 404, answer.text


def test_links_are_listed_but_never_followed(box: tuple[Server, TestClient, Path, Path]) -> None:
    """Read, write, delete, download and zip act on the link itself or refuse."""
    _, client, data, outside = box
    listing = client.get(url()).json()
    kinds = {e["name"]: (e["kind"], e["link_target"]) for e in listing["entries"]}
    assert kinds["root-link"] == ("link", "/")
    assert kinds["etc-link"] == ("link", "/etc")
    assert kinds["dangling"][0] == "link"
    for path in ("etc-link", "root-link", "etc-link/", "out-link/secret.txt", "root-link/etc"):
        assert client.get(url(), params={"path": path}).status_code == 422, path
    for path in ("etc-link/passwd", "secret-link", "out-link/secret.txt", "root-link/etc/hosts"):
        assert client.get(url("/text"), params={"path": path}).status_code == 422, path
        assert client.get(url("/download"), params={"path": path}).status_code == 422, path
    # writes through a link (as a folder on the way, or the link as the file) are refused
    assert client.put(url("/upload"), params={"path": "out-link/new.txt"},
                      content=b"x").status_code == 422
    assert client.put(url("/upload"), params={"path": "secret-link"},
                      content=b"x").status_code == 409  # exists: never written through
    assert client.put(url("/upload"), params={"path": "dangling"},
                      content=b"x").status_code == 409  # a dangling link is not a free name
    assert not (data / "missing").exists()
    assert client.put(url("/text"), json={"path": "secret-link", "content": "x",
                                          "etag": files.etag_of(SENTINEL)}).status_code == 422
    assert client.put(url("/text"), json={"path": "dangling", "content": "x",
                                          "etag": None}).status_code == 422  # a link
    assert not (data / "missing").exists()
    assert client.post(url("/folder"), json={"path": "out-link/made"}).status_code == 422
    assert client.post(url("/move"), json={"source": "notes.txt",
                                           "destination": "out-link/n.txt"}).status_code == 422
    assert client.post(url("/chown"), json={"path": "out-link/secret.txt"}).status_code == 422
    before = os.stat(outside / "secret.txt")
    assert client.post(url("/chown"), json={"path": "", "recursive": True}).status_code == 200
    after = os.stat(outside / "secret.txt")
    assert (before.st_uid, before.st_gid) == (after.st_uid, after.st_gid)
    assert os.lstat(data / "secret-link").st_uid == 1000  # the link itself (lchown)
    # deleting a link trashes the link, not its target
    assert client.delete(url(), params={"path": "secret-link"}).status_code == 200
    assert client.delete(url(), params={"path": "out-link/secret.txt"}).status_code == 422
    assert (outside / "secret.txt").read_bytes() == SENTINEL
    # the whole folder as a zip: no links, nothing from outside, no name leaving the root
    answer = client.get(url("/download"), params={"path": ""})
    assert answer.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(answer.content)).namelist()
    assert sorted(names) == ["notes.txt", "sub/", "sub/a.txt"]


def test_a_link_swapped_in_mid_operation_is_not_followed(
        box: tuple[Server, TestClient, Path, Path]) -> None:
    """A folder replaced by a link after the upload began, or while zipping, leads nowhere."""
    server, _, data, outside = box
    root = Root(path=data, owner=None)
    job = files.Upload(root, "sub/new.txt", declared=3, overwrite=False)
    (data / "sub").rename(data / "sub-moved")
    os.symlink(outside, data / "sub")
    job.write(b"abc")
    job.commit()
    assert (data / "sub-moved" / "new.txt").read_bytes() == b"abc"  # where it was opened
    assert not (outside / "new.txt").exists()
    # a later call sees the link and refuses
    with pytest.raises(files.Invalid):
        files.Upload(root, "sub/other.txt", declared=1, overwrite=False)
    # zip: "b" becomes a link after the archive started (sorted: "a" comes first)
    (data / "sub").unlink()
    (data / "a").mkdir()
    (data / "a" / "x.txt").write_text("x")
    (data / "b").mkdir()
    (data / "b" / "y.txt").write_text("y")
    stream = files.zip_folder(root, "")
    chunks = [next(stream)]
    (data / "b").rename(data / "b-moved")
    os.symlink(outside, data / "b")
    chunks += list(stream)
    names = zipfile.ZipFile(io.BytesIO(b"".join(chunks))).namelist()
    assert "a/x.txt" in names
    assert not any(n.startswith("b/") or "secret" in n for n in names)
    # a text save whose folder is swapped after the read still writes where it read
    text = files.read_text(root, "a/x.txt")
    (data / "a").rename(data / "a-moved")
    os.symlink(outside, data / "a")
    with pytest.raises(files.Invalid):
        files.write_text(root, "a/x.txt", "changed", text.etag)
    assert server.paths.root.exists()


def test_upload_over_the_cap_or_the_free_space_changes_nothing(
        box: tuple[Server, TestClient, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """413 over the cap (declared or streamed), 507 beyond the free space; no temp file left."""
    _, client, data, _ = box
    before = sorted(p.name for p in data.iterdir())
    monkeypatch.setenv("STACKHUB_UPLOAD_MAX", "1000")
    answer = client.put(url("/upload"), params={"path": "big.bin"}, content=b"x" * 1001)
    assert answer.status_code == 413, answer.text

    def chunked() -> Iterator[bytes]:  # no Content-Length: caught while streaming
        for _ in range(4):
            yield b"y" * 400

    answer = client.put(url("/upload"), params={"path": "big.bin"}, content=chunked())
    assert answer.status_code == 413, answer.text
    assert client.put(url("/upload"), params={"path": "ok.bin"},
                      content=b"z" * 1000).status_code == 201
    monkeypatch.delenv("STACKHUB_UPLOAD_MAX")
    disk = os.statvfs(data).f_blocks * os.statvfs(data).f_frsize
    monkeypatch.setenv("STACKHUB_UPLOAD_RESERVE", str(disk))  # more than could ever be free
    answer = client.put(url("/upload"), params={"path": "full.bin"}, content=b"x" * 10)
    assert answer.status_code == 507, answer.text
    assert "free space" in answer.json()["error"]["message"]
    answer = client.put(url("/upload"), params={"path": "full.bin"}, content=chunked())
    assert answer.status_code == 507, answer.text
    after = sorted(p.name for p in data.iterdir())
    assert after == sorted([*before, "ok.bin"])  # no temp files, no partial uploads


def test_zip_of_a_folder_with_a_link_loop_ends(box: tuple[Server, TestClient, Path, Path]) -> None:
    """Links to the folder itself and its parent are left out; the archive completes."""
    _, client, data, _ = box
    loop = data / "loop"
    loop.mkdir()
    (loop / "f.txt").write_text("f")
    os.symlink(".", loop / "self")
    os.symlink("..", loop / "up")
    os.symlink(loop, loop / "abs")
    answer = client.get(url("/download"), params={"path": "loop"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(answer.content)).namelist() == ["f.txt"]


def test_a_member_needs_the_grant(box: tuple[Server, TestClient, Path, Path]) -> None:
    """Without the grant: 404 on every file route; with it: allowed; volumes stay admin-only."""
    server, _, _, _ = box
    member = server.new_client(headers=bearer(server.user_token(server.signed_in(*MEMBER))))
    refused = [
        member.get(url()), member.get(url("/text"), params={"path": "notes.txt"}),
        member.get(url("/download"), params={"path": "notes.txt"}),
        member.put(url("/upload"), params={"path": "m.txt"}, content=b"m"),
        member.delete(url(), params={"path": "notes.txt"}),
        member.post(url("/folder"), json={"path": "m"}),
        member.get(url("/trash")),
    ]
    assert [a.status_code for a in refused] == [404] * len(refused)
    server.client.put("/api/users/bob/instances", json={"instances": [NAME]},
                      headers=server.admin_headers())
    assert member.get(url()).status_code == 200
    assert member.put(url("/upload"), params={"path": "m.txt"}, content=b"m").status_code == 201
    assert member.get("/api/system/volumes/anything/files").status_code == 403
