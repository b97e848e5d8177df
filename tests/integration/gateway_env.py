"""A test ACME world on loopback: pebble-challtestsrv as DNS, Pebble as the CA, free ports.

`AcmeLab` starts both (Debian's pebble package), makes Pebble's own TLS certificate with
openssl, and writes one PEM bundle trusted for the CA: Pebble's listener root plus the root it
issues from (it changes per start). `env()` is what a StackHub server needs to use them.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import FIXTURE_APPS, Server, free_port


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _wait(url: str, *, verify: bool | str = True, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, verify=verify, timeout=2)
            return
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


class AcmeLab:
    """Pebble and its mock DNS on loopback high ports, for one test module."""

    def __init__(self, folder: Path, blocklist: tuple[str, ...] = ()) -> None:
        self.folder = folder
        self.blocklist = blocklist  # names Pebble refuses (rejectedIdentifier)
        folder.mkdir(parents=True, exist_ok=True)
        self.dns_port = free_port()
        self.mgmt_port = free_port()
        self.acme_port = free_port()
        self.pebble_mgmt_port = free_port()
        self.http_port = free_port()
        self.https_port = free_port()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.bundle = folder / "acme-roots.pem"

    @staticmethod
    def available() -> str | None:
        """Say what is missing to run the lab, or None."""
        missing = [p for p in ("caddy", "pebble", "pebble-challtestsrv", "openssl")
                   if shutil.which(p) is None]
        return f"missing {', '.join(missing)} (scripts/bootstrap installs them)" if missing \
            else None

    def _spawn(self, argv: list[str], name: str, env: dict[str, str] | None = None) -> None:
        log = (self.folder / f"{name}.log").open("ab")
        self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, env=env))

    def start(self) -> None:
        """Start the DNS, then Pebble, and write the trust bundle."""
        f = self.folder
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                 "/CN=stackhub test wfe root", "-keyout", "wfe-ca.key", "-out", "wfe-ca.pem",
                 cwd=f)
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                 "-keyout", "wfe.key", "-out", "wfe.csr", cwd=f)
        (f / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        _openssl("x509", "-req", "-in", "wfe.csr", "-CA", "wfe-ca.pem", "-CAkey", "wfe-ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "wfe.pem",
                 cwd=f)
        (f / "pebble.json").write_text(json.dumps({"pebble": {
            "listenAddress": f"127.0.0.1:{self.acme_port}",
            "managementListenAddress": f"127.0.0.1:{self.pebble_mgmt_port}",
            "certificate": str(f / "wfe.pem"), "privateKey": str(f / "wfe.key"),
            "httpPort": self.http_port, "tlsPort": self.https_port,
            "ocspResponderURL": "", "externalAccountBindingRequired": False,
            "domainBlocklist": list(self.blocklist)}}))
        self._spawn(["pebble-challtestsrv", "-management", f"127.0.0.1:{self.mgmt_port}",
                     "-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "", "-https01", "",
                     "-tlsalpn01", "", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
                    "challtestsrv")
        _wait(f"http://127.0.0.1:{self.mgmt_port}/")
        env = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0",
               "PEBBLE_AUTHZREUSE": "0", "PATH": "/usr/bin:/bin"}
        self._spawn(["pebble", "-config", str(f / "pebble.json"), "-dnsserver",
                     f"127.0.0.1:{self.dns_port}", "-strict=false"], "pebble", env)
        _wait(f"https://127.0.0.1:{self.pebble_mgmt_port}/roots/0", verify=False)
        issuing = httpx.get(f"https://127.0.0.1:{self.pebble_mgmt_port}/roots/0",
                            verify=False, timeout=10).text
        self.bundle.write_text((f / "wfe-ca.pem").read_text() + issuing)

    def stop(self) -> None:
        """Stop what `start` started."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)

    def env(self) -> dict[str, str]:
        """Return a StackHub server's environment for this lab."""
        return {"STACKHUB_GATEWAY": "1", "STACKHUB_HTTP_PORT": str(self.http_port),
                "STACKHUB_HTTPS_PORT": str(self.https_port),
                "STACKHUB_ACME_CA": f"https://127.0.0.1:{self.acme_port}/dir",
                "STACKHUB_ACME_CA_ROOT": str(self.bundle),
                "STACKHUB_ACME_EMAIL": "admin@example.test",
                "STACKHUB_DNS_RESOLVER": f"127.0.0.1:{self.dns_port}",
                "STACKHUB_PUBLIC_ADDRESS": "127.0.0.1", "STACKHUB_DOMAIN_TIMEOUT": "60"}

    def dns(self, endpoint: str, **body: object) -> None:
        """Call the mock DNS's management API (add-a, set-cname, clear-a, add-caa...)."""
        answer = httpx.post(f"http://127.0.0.1:{self.mgmt_port}/{endpoint}", json=body,
                            timeout=10)
        assert answer.status_code == 200, answer.text


def running_lab(factory: pytest.TempPathFactory,
                blocklist: tuple[str, ...] = ()) -> Iterator[AcmeLab]:
    """Start a lab, hand it over, stop it (the body of a module fixture; fails if missing)."""
    missing = AcmeLab.available()
    if missing:
        pytest.fail(missing)
    lab = AcmeLab(factory.mktemp("acme"), blocklist)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


GREETING_PAGE = "echo '${GREETING}' >/www/index.html && exec httpd -f -p 80 -h /www"


def web_app_source(script: str = GREETING_PAGE) -> dict[str, str]:
    """The web-app fixture with its container running `script` (by default: serve GREETING)."""
    folder = FIXTURE_APPS / "web-app"
    compose = (folder / "compose.yaml").read_text().replace(
        "    image: stackhub-test/web:1\n",
        f"    image: stackhub-test/web:1\n    command: [\"sh\", \"-c\", {json.dumps(script)}]\n")
    assert "command:" in compose
    return {"kind": "app", "manifest": (folder / "stackhub-app.yaml").read_text(),
            "compose": compose}


def start_web(server: Server, name: str = "web") -> str:
    """Start installing the web-app fixture as `name` (free port, "hello from NAME"); return
    the operation's id."""
    answer = server.api("POST", "/api/instances", json={
        "source": web_app_source(), "name": name,
        "values": {"WEB_PORT": str(free_port()), "GREETING": f"hello from {name}"}})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["operation"]["id"])


def internal_root(srv: Server, folder: Path) -> Path:
    """Save the server's internal CA root (to trust for its LAN names) in `folder`."""
    answer = srv.api("GET", "/api/domains/ca")
    assert answer.status_code == 200, answer.text
    assert answer.text.startswith("-----BEGIN CERTIFICATE-----")
    path = folder / "stackhub-ca.pem"
    path.write_text(answer.text)
    return path


def install_web(server: Server, name: str = "web") -> None:
    """Install the web-app fixture as `name` and wait until it succeeded."""
    assert server.wait_operation(start_web(server, name))["state"] == "succeeded"


@contextlib.contextmanager
def gateway_server(folder: Path, env: dict[str, str], base: str | None = None,
                   install: Callable[[Server], None] | None = install_web) -> Iterator[Server]:
    """Start a server in `folder` with `env`, `install` its apps, set `base`; stop and clean up."""
    server = Server(folder / "data", extra_env=env)
    server.start()
    try:
        if install is not None:
            install(server)
        if base is not None:
            result = server.cli("domain", "base", base)
            assert result.returncode == 0, result.stderr + result.stdout
        yield server
    finally:
        server.stop()
        server.cleanup_engine()


def lab_server(lab: AcmeLab, folder: Path, app: str, **env: str) -> Iterator[Server]:
    """Start a server in `folder` on the lab (`env` over its environment) with the web-app
    fixture as `app`, hand it over, stop it and remove its containers (a module fixture's body)."""
    with gateway_server(folder, {**lab.env(), **env},
                        install=lambda server: install_web(server, app)) as server:
        yield server


class _Address(BaseHTTPRequestHandler):
    """Answers GET with the address in `server.address` (a public-IP page)."""

    def do_GET(self) -> None:
        body = f"{self.server.address}\n".encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Stay quiet."""


def serving_address(address: str) -> Iterator[ThreadingHTTPServer]:
    """Serve a local 'what is my IP' page answering `address` (change `page.address`)."""
    page = ThreadingHTTPServer(("127.0.0.1", 0), _Address)
    page.address = address  # type: ignore[attr-defined]
    thread = threading.Thread(target=page.serve_forever, daemon=True)
    thread.start()
    try:
        yield page
    finally:
        page.shutdown()


def fetch(lab: AcmeLab, host: str, cafile: Path, path: str = "/") -> httpx.Response:
    """GET https://host/path through the gateway on 127.0.0.1, trusting only `cafile`."""
    context = ssl.create_default_context(cafile=str(cafile))
    with httpx.Client(verify=context, timeout=30) as client:
        return client.get(f"https://127.0.0.1:{lab.https_port}{path}", headers={"Host": host},
                          extensions={"sni_hostname": host})


def eventually(call: Any, timeout: float = 20) -> Any:
    """Call until it neither fails an assertion nor an HTTP request, or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except (AssertionError, httpx.HTTPError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
