"""Fetch git repositories with the git CLI: shallow, no hooks, no prompts, bounded in time."""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Protocol

from stackhub.adapters.fetch import ascii_host
from stackhub.errors import Invalid, StoreError

BRANCH = re.compile(r"^(?![-/])(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,200}(?<![./])$")
COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
DEFAULT_TIMEOUT = 120.0
MAX_CLONE_BYTES = 300 * 1024 * 1024
MAX_FILE_BYTES = 2 * 1024 * 1024
"""Files larger than this stay out of a store's clone (screenshot sources, PSDs, videos): the
catalog reads manifests, compose files, descriptions and icons, all far smaller."""
_SPARSE_SPECIAL = re.compile(r"([\\*?\[\]!# ])")
WATCH_INTERVAL = 0.25


def tree_size(root: Path) -> int:
    """Return the bytes under `root` (links not followed), 0 if it does not exist yet."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size  # noqa: PTH118
            except OSError:
                continue
    return total


def check_branch(branch: str | None) -> str | None:
    """Return a branch name that is safe as a git ref, or raise Invalid."""
    if branch is None or branch == "":
        return None
    if not BRANCH.fullmatch(branch) or branch.endswith(".lock"):
        raise Invalid(f"{branch!r} is not a valid branch name")
    return branch


def pin_option(url: str, address: str) -> str | None:
    """Return the git option that makes libcurl connect `url`'s host to `address` only.

    The address is the one StackHub checked (public, see fetch.check_url); without the pin
    git would resolve the name again and could be sent elsewhere (DNS rebinding). A URL whose
    host is an IP address needs no pin (nothing is resolved) and gets None.
    """
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        raise Invalid(f"{url!r} has no host")
    try:
        ipaddress.ip_address(parts.hostname)
        return None
    except ValueError:
        pass
    host = ascii_host(url)  # the IDNA 2008 form curl looks up, as fetch.check_url resolved
    port = parts.port or (443 if parts.scheme == "https" else 80)
    ip = ipaddress.ip_address(address.split("%")[0])
    shown = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"http.curloptResolve={host}:{port}:{shown}"


PIN_MIN_VERSION = (2, 37)
"""git reads http.curloptResolve from 2.37 on; older versions silently ignore it."""


def git_version(binary: str = "git") -> tuple[int, ...]:
    """Return the installed git's version, e.g. (2, 39, 5); (0,) if it cannot be told."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10,
                             check=False, env=_env(), stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.TimeoutExpired):
        return (0,)
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    return tuple(int(g) for g in match.groups() if g is not None) if match else (0,)


def _config(*, local: bool, pin: str | None = None) -> list[str]:
    """Return the ``-c`` options every call gets: only https (plus file/http when local)."""
    options = ["core.hooksPath=/dev/null", "core.symlinks=false", "core.fsmonitor=false",
               "credential.helper=", "protocol.allow=never", "protocol.https.allow=always",
               "submodule.recurse=false", "transfer.fsckObjects=true"]
    if local:
        options += ["protocol.file.allow=always", "protocol.http.allow=always"]
    else:
        # A redirect could lead to an internal address the URL check never saw.
        options += ["http.followRedirects=false"]
    if pin:
        options.append(pin)
    args: list[str] = []
    for option in options:
        args += ["-c", option]
    return args


def _env() -> dict[str, str]:
    """Return an environment without user/system git config, prompts or askpass helpers."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
    keep.update({"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1",
                 "GIT_CONFIG_GLOBAL": os.devnull, "GIT_ASKPASS": "/bin/false",
                 "SSH_ASKPASS": "/bin/false", "GIT_LFS_SKIP_SMUDGE": "1",
                 "HOME": os.devnull})
    return keep


class Git(Protocol):
    """What the catalog needs from git."""

    def remote_head(self, url: str, branch: str | None, *, local: bool,
                    timeout: float = DEFAULT_TIMEOUT, address: str | None = None) -> str:
        """Return the commit the remote branch (or HEAD) points at (connecting to `address`)."""
        ...

    def clone(self, url: str, branch: str | None, dest: Path, *, local: bool,
              timeout: float = DEFAULT_TIMEOUT, address: str | None = None,
              max_bytes: int = MAX_CLONE_BYTES) -> str:
        """Shallow-clone one branch into `dest` (keeping at most `max_bytes`); return its commit."""
        ...


class GitCli:
    """The git adapter: runs ``git`` with argument lists and translates its failures."""

    def __init__(self, binary: str = "git") -> None:
        """Use the named git binary (found on PATH)."""
        self.binary = binary
        self._version: tuple[int, ...] | None = None

    def _pin(self, url: str, address: str | None) -> str | None:
        """Return the pin option for a remote store; refuse a git too old to honour it."""
        if address is None:
            return None
        pin = pin_option(url, address)
        if pin is not None:
            if self._version is None:
                self._version = git_version(self.binary)
            if self._version < PIN_MIN_VERSION:
                shown = ".".join(map(str, self._version))
                raise StoreError(f"git {shown} cannot be told which address to connect to "
                                 "(DNS rebinding guard, needs git 2.37 or newer); update git, "
                                 "or use an https archive store instead")
        return pin

    def _run(self, args: list[str], *, local: bool, timeout: float,
             cwd: Path | None = None, pin: str | None = None) -> str:
        command = [self.binary, *_config(local=local, pin=pin), *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                  env=_env(), cwd=cwd, stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired as err:
            raise StoreError(f"git {args[0]} took longer than {timeout:.0f} s") from err
        except OSError as err:
            raise StoreError(f"git could not be run: {err}") from err
        if done.returncode != 0:
            lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
            reason = lines[-1] if lines else f"exit code {done.returncode}"
            raise StoreError(f"git {args[0]} failed: {reason[:300]}")
        return done.stdout

    def remote_head(self, url: str, branch: str | None, *, local: bool,
                    timeout: float = DEFAULT_TIMEOUT, address: str | None = None) -> str:
        """Return the commit the remote branch (or HEAD) points at, without cloning.

        With `address`, the URL's host is connected to that address only (no new lookup).
        """
        ref = f"refs/heads/{check_branch(branch)}" if branch else "HEAD"
        out = self._run(["ls-remote", "--", url, ref], local=local, timeout=timeout,
                        pin=self._pin(url, address))
        for line in out.splitlines():
            commit, _, name = line.partition("\t")
            if name == ref and COMMIT.fullmatch(commit):
                return commit
        raise StoreError(f"the repository has no {'branch ' + str(branch) if branch else 'HEAD'}")

    def _clone_watched(self, args: list[str], dest: Path, *, local: bool, timeout: float,
                       max_bytes: int, pin: str | None) -> None:
        """Run a clone, killing it as soon as it passes `max_bytes` on disk or `timeout`."""
        command = [self.binary, *_config(local=local, pin=pin), *args]
        try:
            proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    text=True, env=_env(), stdin=subprocess.DEVNULL)
        except OSError as err:
            raise StoreError(f"git could not be run: {err}") from err
        deadline = time.monotonic() + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StoreError(f"git clone took longer than {timeout:.0f} s")
                try:
                    proc.wait(min(WATCH_INTERVAL, remaining))
                    break
                except subprocess.TimeoutExpired:
                    pass
                if tree_size(dest) > max_bytes:
                    raise StoreError(f"the repository is larger than {max_bytes} bytes")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stderr = proc.stderr.read() if proc.stderr else ""
        if tree_size(dest) > max_bytes:  # also when git finished between two checks
            raise StoreError(f"the repository is larger than {max_bytes} bytes")
        if proc.returncode != 0:
            lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
            reason = lines[-1] if lines else f"exit code {proc.returncode}"
            raise StoreError(f"git clone failed: {reason[:300]}")

    def clone(self, url: str, branch: str | None, dest: Path, *, local: bool,
              timeout: float = DEFAULT_TIMEOUT, max_bytes: int = MAX_CLONE_BYTES,
              address: str | None = None, max_file: int = MAX_FILE_BYTES) -> str:
        """Shallow-clone one branch into `dest` (which must not exist) and return its commit.

        A partial clone: files over `max_file` bytes are never downloaded (when the server
        filters; otherwise they are downloaded and left out) nor checked out. The clone is
        bounded while it downloads, in time and in bytes on disk, and what is kept must fit
        `max_bytes`; with `address` it connects to that address only.
        """
        args = ["clone", "--depth", "1", "--single-branch", "--no-tags", "--quiet",
                "--no-checkout", f"--filter=blob:limit={max_file}"]
        if branch:
            args += ["--branch", str(check_branch(branch))]
        self._clone_watched([*args, "--", url, str(dest)], dest, local=local, timeout=timeout,
                            max_bytes=max_bytes, pin=self._pin(url, address))
        commit = self._run(["rev-parse", "HEAD"], local=local, timeout=30, cwd=dest).strip()
        if not COMMIT.fullmatch(commit):
            raise StoreError("git clone gave no commit hash")
        self._check_out_small_files(dest, commit, local=local, max_file=max_file,
                                    max_bytes=max_bytes)
        return commit

    def _check_out_small_files(self, dest: Path, commit: str, *, local: bool, max_file: int,
                               max_bytes: int) -> None:
        """Check out the files of `commit` present in the clone and at most `max_file` bytes."""
        # The remote goes first: a missing object must fail here, never be fetched lazily.
        self._run(["remote", "remove", "origin"], local=local, timeout=30, cwd=dest)
        sizes: dict[str, int] = {}
        present = self._run(["cat-file", "--batch-all-objects", "--batch-check="
                             "%(objectname) %(objecttype) %(objectsize)"],
                            local=local, timeout=60, cwd=dest)
        for line in present.splitlines():
            oid, kind, length = line.split(" ")
            if kind == "blob":
                sizes[oid] = int(length)
        left_out: list[str] = []
        kept = 0
        listing = self._run(["ls-tree", "-r", "-z", "--full-tree", commit], local=local,
                            timeout=60, cwd=dest)
        for entry in filter(None, listing.split("\0")):
            meta, _, path = entry.partition("\t")
            mode, kind, oid = meta.split(" ")
            size = sizes.get(oid)
            if kind != "blob" or mode == "120000" or size is None or size > max_file:
                left_out.append(path)
                continue
            kept += size
        if kept > max_bytes:
            raise StoreError(f"the repository's files are larger than {max_bytes} bytes, "
                             f"even leaving out files over {max_file} bytes")
        patterns = ["/*"] + ["!/" + _SPARSE_SPECIAL.sub(r"\\\1", p) for p in left_out]
        info = dest / ".git" / "info"
        info.mkdir(exist_ok=True)
        (info / "sparse-checkout").write_text("\n".join(patterns) + "\n")
        self._run(["config", "core.sparseCheckout", "true"], local=local, timeout=30, cwd=dest)
        self._run(["read-tree", "-mu", commit], local=local, timeout=120, cwd=dest)


class FakeGit:
    """A git double for unit tests: serves folders as repositories, commits given by hand."""

    def __init__(self) -> None:
        """Start with no repositories."""
        self.repos: dict[str, tuple[Path, str]] = {}
        self.clones = 0
        self.addresses: list[str | None] = []  # the pinned address of every call

    def publish(self, url: str, folder: Path, commit: str) -> None:
        """Make `url` serve a copy of `folder` at `commit`."""
        self.repos[url] = (folder, commit)

    def remote_head(self, url: str, branch: str | None, *, local: bool,
                    timeout: float = DEFAULT_TIMEOUT, address: str | None = None) -> str:
        """Return the published commit of `url`."""
        self.addresses.append(address)
        if url not in self.repos:
            raise StoreError(f"git ls-remote failed: repository {url} not found")
        return self.repos[url][1]

    def clone(self, url: str, branch: str | None, dest: Path, *, local: bool,
              timeout: float = DEFAULT_TIMEOUT, address: str | None = None,
              max_bytes: int = MAX_CLONE_BYTES) -> str:
        """Copy the published folder to `dest`."""
        self.addresses.append(address)
        import shutil

        folder, commit = self.repos.get(url) or (None, "")
        if folder is None:
            raise StoreError(f"git clone failed: repository {url} not found")
        self.clones += 1
        shutil.copytree(folder, dest, symlinks=True)
        return commit
