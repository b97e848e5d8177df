"""Download store archives over HTTPS and unpack them, refusing internal targets and slips."""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
import tarfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Protocol

import httpx

from stackhub.errors import Invalid, StoreError, TooLarge

MAX_DOWNLOAD = 100 * 1024 * 1024
MAX_FILES = 20_000
MAX_EXTRACTED = 300 * 1024 * 1024
MAX_REDIRECTS = 5
DEFAULT_TIMEOUT = 120.0
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


def is_internal(address: IPAddress) -> bool:
    """Tell whether an address is loopback, private, link-local, multicast or reserved."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (address.is_loopback or address.is_private or address.is_link_local
            or address.is_multicast or address.is_reserved or address.is_unspecified
            or not address.is_global)


def ascii_host(url: str) -> str:
    """Return a URL's host in the ASCII form DNS and libcurl use (IDNA 2008 punycode)."""
    try:
        return httpx.URL(url).raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError) as err:
        raise Invalid(f"{url!r} has no valid host") from err


def system_resolve(host: str, port: int) -> list[str]:
    """Resolve a host name to its addresses with the system resolver."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise StoreError(f"cannot resolve {host}: {err}") from err
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_url(url: str, *, local: bool, schemes: tuple[str, ...] = ("https",),
              resolve: Resolver | None = None) -> str | None:
    """Check a remote URL; return the public address to connect to (None when local)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as err:
        raise Invalid(f"{url!r} is not a valid URL") from err
    allowed = (*schemes, "http") if local else schemes
    if parsed.scheme not in allowed:
        hint = "" if local else " (an admin may add a local store with --local to allow more)"
        raise Invalid(f"store URLs must use {' or '.join(allowed)}{hint}",
                      details={} if local else {"reason": "trust_required"})
    if not parsed.host:
        raise Invalid(f"{url!r} has no host")
    if parsed.userinfo:
        raise Invalid("store URLs must not carry credentials")
    if local:
        return None
    try:
        addresses = [str(ipaddress.ip_address(parsed.host))]
    except ValueError:
        # the ASCII (IDNA 2008) form, as curl and git look it up; Python's own idna codec
        # (IDNA 2003) would map e.g. "straße" to another domain than the one contacted
        addresses = (resolve or system_resolve)(ascii_host(url), parsed.port or 443)
    if not addresses:
        raise StoreError(f"{parsed.host} has no address")
    for text in addresses:
        if is_internal(ipaddress.ip_address(text.split("%")[0])):
            raise Invalid(f"{parsed.host} resolves to the internal address {text}; only an "
                          "admin can add a local store (--local) that reaches it",
                          details={"reason": "trust_required", "address": text})
    return addresses[0]


class Fetcher(Protocol):
    """What the catalog needs to download an archive."""

    def download(self, url: str, dest: Path, *, local: bool, max_bytes: int = MAX_DOWNLOAD,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        """Save the body at `url` into the file `dest`."""
        ...


class HttpFetcher:
    """The HTTPS adapter: manual redirects, each hop checked and pinned to its address."""

    def __init__(self, *, transport: httpx.BaseTransport | None = None,
                 resolve: Resolver | None = None, verify: bool | str = True) -> None:
        """Use an optional transport and resolver (tests), else the network."""
        self.transport = transport
        self.resolve = resolve
        self.verify = verify

    def download(self, url: str, dest: Path, *, local: bool, max_bytes: int = MAX_DOWNLOAD,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        """Save the body at `url` into `dest`, following at most five checked redirects."""
        deadline = time.monotonic() + timeout
        with httpx.Client(transport=self.transport, trust_env=False, follow_redirects=False,
                          verify=self.verify, timeout=httpx.Timeout(min(timeout, 30.0))) as client:
            for _ in range(MAX_REDIRECTS + 1):
                pinned = check_url(url, local=local, resolve=self.resolve)
                request = _request(client, url, pinned)
                try:
                    response = client.send(request, stream=True)
                except httpx.HTTPError as err:
                    raise StoreError(f"download of {url} failed: {err}") from err
                try:
                    if response.is_redirect:
                        location = response.headers.get("location", "")
                        url = str(httpx.URL(url).join(location))
                        continue
                    if response.status_code != 200:
                        raise StoreError(f"download of {url} failed: HTTP "
                                         f"{response.status_code}")
                    _save(response, dest, max_bytes=max_bytes, deadline=deadline)
                    return
                finally:
                    response.close()
        raise StoreError(f"more than {MAX_REDIRECTS} redirects")


def _request(client: httpx.Client, url: str, pinned: str | None) -> httpx.Request:
    """Build a GET that connects to the checked address while naming the real host."""
    target = httpx.URL(url)
    if pinned is None:
        return client.build_request("GET", target)
    host = target.raw_host.decode("ascii")
    headers = {"Host": target.netloc.decode("ascii")}
    extensions = {"sni_hostname": host} if target.scheme == "https" else {}
    return client.build_request("GET", target.copy_with(host=pinned), headers=headers,
                                extensions=extensions)


def _save(response: httpx.Response, dest: Path, *, max_bytes: int, deadline: float) -> None:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(f"the archive is {declared} bytes; the limit is {max_bytes}")
    size = 0
    with dest.open("xb") as out:
        try:
            for chunk in response.iter_bytes(64 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"the archive is larger than {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise StoreError("the download took too long")
                out.write(chunk)
        except httpx.HTTPError as err:
            raise StoreError(f"download failed: {err}") from err


def _member_path(name: str) -> PurePosixPath:
    """Check an archive member name: relative, no '..', no NUL or backslash."""
    path = PurePosixPath(name)
    if ("\x00" in name or "\\" in name or path.is_absolute() or ".." in path.parts
            or (path.parts and ":" in path.parts[0])):
        raise Invalid(f"the archive has an unsafe member name {name[:200]!r}")
    return path


class _Budget:
    """Count files and bytes written during an extraction."""

    def __init__(self, max_files: int, max_bytes: int) -> None:
        self.files, self.bytes = 0, 0
        self.max_files, self.max_bytes = max_files, max_bytes

    def add(self, size: int) -> None:
        self.files += 1
        self.bytes += size
        if self.files > self.max_files:
            raise TooLarge(f"the archive has more than {self.max_files} files")
        if self.bytes > self.max_bytes:
            raise TooLarge(f"the archive unpacks to more than {self.max_bytes} bytes")


def extract(archive: Path, dest: Path, *, max_files: int = MAX_FILES,
            max_bytes: int = MAX_EXTRACTED) -> None:
    """Unpack a zip or tar(.gz) archive into the empty folder `dest`; links are skipped."""
    with archive.open("rb") as handle:
        magic = handle.read(4)
    dest.mkdir(parents=True, exist_ok=True)
    budget = _Budget(max_files, max_bytes)
    if magic.startswith(b"PK"):
        _extract_zip(archive, dest, budget)
    else:
        _extract_tar(archive, dest, budget)


def _extract_tar(archive: Path, dest: Path, budget: _Budget) -> None:
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                _member_path(member.name)
                if not (member.isfile() or member.isdir()):
                    continue  # links, devices and fifos have no place in a store
                budget.add(member.size)
                tar.extract(member, dest, filter="data")
    except tarfile.FilterError as err:
        raise Invalid(f"the archive has an unsafe member: {err}") from err
    except (tarfile.TarError, EOFError, OSError) as err:
        raise Invalid(f"the archive is not a readable zip or tar file: {err}") from err


def _extract_zip(archive: Path, dest: Path, budget: _Budget) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                relative = _member_path(info.filename)
                if stat.S_ISLNK(info.external_attr >> 16):
                    continue
                target = dest.joinpath(*relative.parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                budget.add(info.file_size)
                target.parent.mkdir(parents=True, exist_ok=True)
                _write_member(zf, info, target)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
        raise Invalid(f"the archive is not a readable zip file: {err}") from err


def _write_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        fd = os.open(target, flags, 0o644)
    except OSError as err:
        raise Invalid(f"the archive member {info.filename[:200]!r} cannot be written: "
                      f"{err.strerror}") from err
    with os.fdopen(fd, "wb") as out, zf.open(info) as src:
        left = info.file_size
        while chunk := src.read(min(64 * 1024, left + 1)):
            left -= len(chunk)
            if left < 0:
                raise TooLarge(f"{info.filename[:200]!r} is larger than it declares")
            out.write(chunk)
