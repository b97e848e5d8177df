"""The git adapter against real local repositories: shallow clones, no hooks, local only."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from stackhub.adapters.git import GitCli, check_branch, git_version, pin_option
from stackhub.errors import Invalid, StoreError


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    folder = tmp_path / "repo"
    folder.mkdir()
    git(folder, "init", "-q", "-b", "main")
    (folder / "a.txt").write_text("one")
    git(folder, "add", "a.txt")
    git(folder, "commit", "-qm", "one")
    (folder / "a.txt").write_text("two")
    git(folder, "commit", "-qam", "two")
    git(folder, "checkout", "-qb", "next")
    (folder / "b.txt").write_text("next")
    git(folder, "add", "b.txt")
    git(folder, "commit", "-qm", "next")
    git(folder, "checkout", "-q", "main")
    return folder


def test_remote_head_and_shallow_clone(repo: Path, tmp_path: Path) -> None:
    url = f"file://{repo}"
    cli = GitCli()
    head = cli.remote_head(url, None, local=True)
    assert head == git(repo, "rev-parse", "HEAD")
    assert cli.remote_head(url, "next", local=True) == git(repo, "rev-parse", "next")
    commit = cli.clone(url, "main", tmp_path / "c1", local=True)
    assert commit == head and (tmp_path / "c1" / "a.txt").read_text() == "two"
    assert git(tmp_path / "c1", "rev-list", "--count", "HEAD") == "1", "shallow"
    commit = cli.clone(url, "next", tmp_path / "c2", local=True)
    assert (tmp_path / "c2" / "b.txt").exists()
    with pytest.raises(StoreError, match="no branch"):
        cli.remote_head(url, "missing", local=True)


def test_file_transport_needs_a_local_store(repo: Path, tmp_path: Path) -> None:
    cli = GitCli()
    for url in (f"file://{repo}", str(repo), f"ext::sh -c touch% {tmp_path}/pwned"):
        with pytest.raises(StoreError, match=r"not allowed|failed"):
            cli.clone(url, None, tmp_path / "c", local=False)
    assert not (tmp_path / "pwned").exists()


def test_hooks_never_run(repo: Path, tmp_path: Path) -> None:
    template = tmp_path / "template"
    (template / "hooks").mkdir(parents=True)
    hook = template / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch {tmp_path}/hook-ran\n")
    hook.chmod(0o755)
    subprocess.run(["git", "config", "--file", str(tmp_path / "gitconfig"), "init.templateDir",
                    str(template)], check=True)
    import os

    os.environ["GIT_CONFIG_GLOBAL"] = str(tmp_path / "gitconfig")
    try:
        GitCli().clone(f"file://{repo}", None, tmp_path / "c", local=True)
    finally:
        del os.environ["GIT_CONFIG_GLOBAL"]
    assert not (tmp_path / "hook-ran").exists()


def test_option_injection_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Invalid):
        check_branch("--upload-pack=touch /tmp/x")
    for bad in ("a..b", "-x", "a b", "x.lock", "a//b", "/abs"):
        with pytest.raises(Invalid):
            check_branch(bad)
    assert check_branch("release/1.2") == "release/1.2"
    with pytest.raises(StoreError):
        GitCli().remote_head("--upload-pack=touch /tmp/pwned", None, local=True)
    assert not Path("/tmp/pwned").exists()


def test_timeout(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="longer than"):
        GitCli().clone(f"file://{repo}", None, tmp_path / "c", local=True, timeout=0.001)


def test_clone_is_bounded_in_size_while_it_downloads(repo: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # the watchdog measures the clone on disk while git runs and kills it past the cap
    import stackhub.adapters.git as git_adapter

    monkeypatch.setattr(git_adapter, "WATCH_INTERVAL", 0.0)
    with pytest.raises(StoreError, match="larger than 10 bytes"):
        GitCli().clone(f"file://{repo}", None, tmp_path / "c", local=True, max_bytes=10)


@pytest.mark.parametrize(("url", "address", "option"), [
    ("https://git.example/s.git", "93.184.215.14",
     "http.curloptResolve=git.example:443:93.184.215.14"),
    ("https://git.example:8443/s.git", "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
     "http.curloptResolve=git.example:8443:[2606:2800:21f:cb07:6820:80da:af6b:8b2c]"),
    ("https://bücher.example/s.git", "93.184.215.14",  # curl resolves the ASCII form
     "http.curloptResolve=xn--bcher-kva.example:443:93.184.215.14"),
    ("https://straße.example/s.git", "93.184.215.14",  # IDNA 2008, not 2003's strasse
     "http.curloptResolve=xn--strae-oqa.example:443:93.184.215.14"),
    ("https://93.184.215.14/s.git", "93.184.215.14", None),  # nothing to resolve
    ("https://[2606:4700::1111]/s.git", "2606:4700::1111", None),
])
def test_pin_option(url: str, address: str, option: str | None) -> None:
    assert pin_option(url, address) == option


def test_a_git_too_old_to_pin_is_refused_for_remote_stores(tmp_path: Path) -> None:
    old_git = tmp_path / "git"
    old_git.write_text("#!/bin/sh\necho 'git version 2.34.1'\nexit 0\n")
    old_git.chmod(0o755)
    with pytest.raises(StoreError, match=r"git 2\.34\.1 cannot be told .* needs git 2\.37"):
        GitCli(str(old_git)).remote_head("https://git.example/s.git", None, local=False,
                                         address="93.184.215.14")
    assert git_version() >= (2, 37), "this machine's git pins (Debian 12 has 2.39)"


def _listener() -> tuple[socket.socket, list[bool], threading.Thread]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(15)
    seen: list[bool] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            conn, _ = server.accept()
            seen.append(True)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    return server, seen, thread


@pytest.mark.parametrize("host", ["pinned.invalid", "bücher.invalid", "straße.invalid"])
def test_git_connects_to_the_pinned_address_not_a_new_lookup(host: str) -> None:
    # the name cannot resolve: only the pin can lead git to the listener (DNS rebinding guard)
    server, seen, thread = _listener()
    port = server.getsockname()[1]
    with pytest.raises(StoreError):  # no TLS server there: the point is where git connected
        GitCli().remote_head(f"https://{host}:{port}/store.git", None, local=False,
                             address="127.0.0.1", timeout=15)
    thread.join(15)
    server.close()
    assert seen == [True]


def test_without_a_pin_git_resolves_the_name_itself() -> None:
    server, seen, _ = _listener()
    port = server.getsockname()[1]
    with pytest.raises(StoreError, match="resolve"):
        GitCli().remote_head(f"https://pinned.invalid:{port}/store.git", None, local=False,
                             timeout=15)
    server.close()
    assert seen == []


# -- partial clones: big files (screenshot sources, PSDs) are neither downloaded nor kept ------

@pytest.fixture
def store_with_big_files(tmp_path: Path) -> Path:
    folder = tmp_path / "store"
    (folder / "Apps" / "Blog" / "shots").mkdir(parents=True)
    git(folder, "init", "-q", "-b", "main")
    (folder / "Apps" / "Blog" / "docker-compose.yml").write_text("services: {}\n")
    (folder / "Apps" / "Blog" / "icon.png").write_bytes(b"i" * 500)
    (folder / "Apps" / "Blog" / "shots" / "big [1]*.psd").write_bytes(os.urandom(40_000))
    (folder / "Apps" / "Blog" / "shots" / "#video.mp4").write_bytes(os.urandom(30_000))
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "store")
    return folder


def _kept(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and ".git" not in p.parts}


@pytest.mark.parametrize("server_filters", [True, False])
def test_big_files_are_left_out_of_a_clone(store_with_big_files: Path, tmp_path: Path,
                                           server_filters: bool) -> None:
    git(store_with_big_files, "config", "uploadpack.allowFilter", str(server_filters).lower())
    dest = tmp_path / "clone"
    commit = GitCli().clone(f"file://{store_with_big_files}", None, dest, local=True,
                            max_file=10_000)
    assert commit == git(store_with_big_files, "rev-parse", "HEAD")
    assert _kept(dest) == {"Apps/Blog/docker-compose.yml", "Apps/Blog/icon.png"}
    packed = sum(p.stat().st_size for p in (dest / ".git").rglob("*") if p.is_file())
    if server_filters:  # the 70 kB of big files never came down the wire
        assert packed < 30_000
    else:
        assert packed > 70_000
    assert git(dest, "remote") == "", "no remote is left to fetch missing files from"


def test_the_cap_applies_to_the_files_kept(store_with_big_files: Path, tmp_path: Path) -> None:
    git(store_with_big_files, "config", "uploadpack.allowFilter", "true")
    # the repository holds over 70 kB, but what is kept (about 500 bytes) fits 60 kB
    GitCli().clone(f"file://{store_with_big_files}", None, tmp_path / "a", local=True,
                   max_file=10_000, max_bytes=60_000)
    # 80 kB of text packs into a few hundred bytes: the download fits, the checkout would not
    text = tmp_path / "text"
    text.mkdir()
    git(text, "init", "-q", "-b", "main")
    for name in ("a.txt", "b.txt"):
        (text / name).write_text(name * 8_000)
    git(text, "add", "-A")
    git(text, "commit", "-qm", "text")
    with pytest.raises(StoreError, match="files are larger than 60000 bytes"):
        GitCli().clone(f"file://{text}", None, tmp_path / "b", local=True,
                       max_file=50_000, max_bytes=60_000)
    assert not (tmp_path / "b" / "a.txt").exists()
