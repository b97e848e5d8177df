"""Archive downloads: https only, no internal targets (also after redirects), safe extraction."""

from __future__ import annotations

import io
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from stackhub.adapters.fetch import HttpFetcher, check_url, extract, is_internal
from stackhub.errors import Invalid, StoreError, TooLarge

PUBLIC = "93.184.215.14"


class Recorder(BaseHTTPRequestHandler):
    """Serve fixed routes: 302s to wherever the test says, and a small archive."""

    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        status, headers, body = self.routes.get(self.path, (404, {}, b"missing"))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[tuple[str, type[Recorder]]]:
    handler = type("Handler", (Recorder,), {"routes": {}, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def relay_to(base: str) -> httpx.MockTransport:
    """A transport that sends every request to the local server (stands in for the internet)."""

    def handle(request: httpx.Request) -> httpx.Response:
        with httpx.Client() as client:
            answer = client.get(base + request.url.raw_path.decode())
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    return httpx.MockTransport(handle)


def resolver(mapping: dict[str, str]) -> object:
    return lambda host, port: [mapping.get(host, PUBLIC)]


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1",
                                     "169.254.169.254", "100.64.0.1", "224.0.0.1", "0.0.0.0",
                                     "::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "240.0.0.1"])
def test_internal_addresses_are_refused(address: str) -> None:
    import ipaddress

    assert is_internal(ipaddress.ip_address(address))
    with pytest.raises(Invalid, match="internal address"):
        check_url("https://store.example/a.zip", local=False,
                  resolve=lambda host, port: [address])


def test_public_https_passes_and_other_schemes_fail() -> None:
    assert check_url("https://store.example/a.zip", local=False,
                     resolve=lambda h, p: [PUBLIC]) == PUBLIC
    for url in ("http://store.example/a.zip", "ftp://store.example/a", "file:///etc/passwd",
                "https://user:pw@store.example/a.zip"):
        with pytest.raises(Invalid):
            check_url(url, local=False, resolve=lambda h, p: [PUBLIC])
    assert check_url("http://127.0.0.1:8000/a.zip", local=True) is None
    # one internal address among public ones is enough to refuse
    with pytest.raises(Invalid):
        check_url("https://mixed.example/", local=False,
                  resolve=lambda h, p: [PUBLIC, "127.0.0.1"])


def test_redirect_to_loopback_is_refused(local_server: tuple[str, type[Recorder]],
                                         tmp_path: Path) -> None:
    base, handler = local_server
    port = base.rsplit(":", 1)[1]
    handler.routes["/store.zip"] = (302, {"Location": f"http://127.0.0.1:{port}/secret"}, b"")
    handler.routes["/https-loop.zip"] = (302, {"Location": f"https://127.0.0.1:{port}/secret"},
                                         b"")
    handler.routes["/named.zip"] = (301, {"Location": "https://internal.example/secret"}, b"")
    handler.routes["/secret"] = (200, {}, b"internal data")
    fetcher = HttpFetcher(transport=relay_to(base),
                          resolve=resolver({"internal.example": "10.0.0.5"}))  # type: ignore[arg-type]
    for path, reason in (("/store.zip", "https"), ("/https-loop.zip", "internal address"),
                         ("/named.zip", "internal address")):
        with pytest.raises(Invalid, match=reason):
            fetcher.download(f"https://store.example{path}", tmp_path / path.strip("/"),
                             local=False)
    assert "/secret" not in handler.seen, "the internal target was never contacted"
    assert not list(tmp_path.iterdir())


def test_redirects_are_followed_checked_and_pinned(local_server: tuple[str, type[Recorder]],
                                                  tmp_path: Path) -> None:
    base, handler = local_server
    handler.routes["/a"] = (302, {"Location": "/b"}, b"")
    handler.routes["/b"] = (302, {"Location": "https://cdn.example/c.tar.gz"}, b"")
    handler.routes["/c.tar.gz"] = (200, {}, b"archive bytes")
    sent: list[tuple[str, str, object]] = []
    relay = relay_to(base)

    def spy(request: httpx.Request) -> httpx.Response:
        sent.append((str(request.url), request.headers["host"],
                     request.extensions.get("sni_hostname")))
        return relay.handle_request(request)

    fetcher = HttpFetcher(transport=httpx.MockTransport(spy),
                          resolve=resolver({"cdn.example": "8.8.4.4"}))  # type: ignore[arg-type]
    fetcher.download("https://store.example/a", tmp_path / "out", local=False)
    assert (tmp_path / "out").read_bytes() == b"archive bytes"
    assert sent == [(f"https://{PUBLIC}/a", "store.example", "store.example"),
                    (f"https://{PUBLIC}/b", "store.example", "store.example"),
                    ("https://8.8.4.4/c.tar.gz", "cdn.example", "cdn.example")]


def test_redirect_loops_and_errors_fail(local_server: tuple[str, type[Recorder]],
                                        tmp_path: Path) -> None:
    base, handler = local_server
    handler.routes["/loop"] = (302, {"Location": "/loop"}, b"")
    fetcher = HttpFetcher(transport=relay_to(base), resolve=resolver({}))  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="redirects"):
        fetcher.download("https://store.example/loop", tmp_path / "x", local=False)
    with pytest.raises(StoreError, match="404"):
        fetcher.download("https://store.example/none", tmp_path / "y", local=False)


def test_size_cap(local_server: tuple[str, type[Recorder]], tmp_path: Path) -> None:
    base, handler = local_server
    handler.routes["/big.zip"] = (200, {}, b"x" * 5000)
    with pytest.raises(TooLarge):
        HttpFetcher().download(f"{base}/big.zip", tmp_path / "big", local=True, max_bytes=1000)


def test_local_store_downloads_from_loopback(local_server: tuple[str, type[Recorder]],
                                             tmp_path: Path) -> None:
    base, handler = local_server
    handler.routes["/store.tar.gz"] = (200, {}, tar_gz({"store/apps/a/x.txt": b"hi"}))
    with pytest.raises(Invalid):
        HttpFetcher().download(f"{base}/store.tar.gz", tmp_path / "a", local=False)
    HttpFetcher().download(f"{base}/store.tar.gz", tmp_path / "b", local=True)
    extract(tmp_path / "b", tmp_path / "tree")
    assert (tmp_path / "tree" / "store" / "apps" / "a" / "x.txt").read_bytes() == b"hi"


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil-abs.txt", "a/../../evil.txt",
                                  "a/b\\..\\..\\evil.txt", "C:/evil.txt"])
def test_zip_slip_is_refused(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr(name, "gotcha")
    dest = tmp_path / "deep" / "dest"
    with pytest.raises(Invalid, match="unsafe"):
        extract(archive, dest)
    assert not list(tmp_path.rglob("evil*"))


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "device"])
def test_tar_slip_is_refused_or_skipped(tmp_path: Path, kind: str) -> None:
    archive = tmp_path / "a.tar.gz"
    outside = tmp_path / "outside.txt"
    with tarfile.open(archive, "w:gz") as tar:
        ok = tarfile.TarInfo("store/ok.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        if kind in ("dotdot", "absolute"):
            name = "../outside.txt" if kind == "dotdot" else str(outside)
            bad = tarfile.TarInfo(name)
            bad.size = 6
            tar.addfile(bad, io.BytesIO(b"gotcha"))
        else:
            link = tarfile.TarInfo("store/link")
            link.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                         "device": tarfile.CHRTYPE}[kind]
            link.linkname = str(outside)
            tar.addfile(link)
            follow = tarfile.TarInfo("store/link/x.txt")
            follow.size = 6
            tar.addfile(follow, io.BytesIO(b"gotcha"))
    dest = tmp_path / "dest"
    if kind in ("dotdot", "absolute"):
        with pytest.raises(Invalid, match="unsafe"):
            extract(archive, dest)
    else:
        extract(archive, dest)  # links and devices are skipped, the rest unpacks
        assert (dest / "store" / "ok.txt").read_bytes() == b"ok"
    assert not outside.exists()
    assert not (dest / "store" / "link").is_symlink()
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.read_bytes() == b"gotcha"
                and not p.resolve().is_relative_to(dest.resolve())]


def test_extraction_limits(tmp_path: Path) -> None:
    archive = tmp_path / "many.tar.gz"
    archive.write_bytes(tar_gz({f"f{n}.txt": b"x" for n in range(20)}))
    with pytest.raises(TooLarge, match="files"):
        extract(archive, tmp_path / "a", max_files=10)
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\x00" * 2_000_000)
    assert bomb.stat().st_size < 20_000
    with pytest.raises(TooLarge, match="bytes"):
        extract(bomb, tmp_path / "b", max_bytes=1_000_000)
    with pytest.raises(Invalid, match="readable"):
        (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 not really")
        extract(tmp_path / "junk.zip", tmp_path / "c")


def test_international_names_are_resolved_in_the_form_curl_uses() -> None:
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["93.184.215.14"]

    assert check_url("https://straße.example/a.zip", local=False, resolve=resolve) == \
        "93.184.215.14"
    assert asked == ["xn--strae-oqa.example"]  # IDNA 2008; IDNA 2003 would say strasse
