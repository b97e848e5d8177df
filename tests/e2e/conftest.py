"""Fixtures for browser tests: a real server on a temp data root, Debian's Chromium, a local store.

The console must be built first (scripts/build-web; scripts/test does it). Screenshots go to
artifacts/screenshots/ (CI keeps that folder).

A module with a server of its own (`own_server`) defines `signed_in` (`sign_in`) and gets
`open_page` from here; its `errors`/`console` lists and `PIN_LOCALE` flag tune it. Wait for a
condition, never a fixed time; click a button that sends a POST, PUT or DELETE with
`click_until` (a network change can drop it before it leaves). Check robustness with
tests/e2e/churn.sh running beside the suite.

The suite runs on a private dockerd of its own (`e2e_engine`, once per session), never on the
test engine: scripts/test runs tests/integration on that one at the same time, and it stops that
engine (test_outage.py). The servers and every docker CLI call here reach the private one
through DOCKER_HOST; its containers reach the host and the host reaches them (published ports,
the gateway), but they do not reach each other (tests/integration/second_engine.py).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.gateway_env import AcmeLab, running_lab
from tests.integration.second_engine import SecondEngine, second_engine
from tests.leftovers import mark_install

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "web" / "dist" / "index.html"
SHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("STACKHUB_CHROMIUM", "/usr/bin/chromium")
# Chromium fails every request still waiting for a connection with net::ERR_NETWORK_CHANGED
# whenever the host's IP addresses change, which Docker does for each network and container it
# creates or removes (tests/e2e/churn.sh reproduces it). No switch turns that off: the flush
# (HttpStreamPool / TransportClientSocketPool ::OnIPAddressChanged) is governed only by
# HttpNetworkSessionParams.ignore_ip_address_changes, which no command-line switch or policy sets
# on Linux, and the one exemption (kMaintainConnectionsOnIpv6TempAddrChange) covers IPv6
# temporary addresses only. So the console retries what it loads (web/public/boot.js,
# web/src/utils/lazy.ts, GETs in web/src/api/client.ts), navigations retry below
# (`_retry_navigations`), and each test sets up the state it needs.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
NETWORK_CHANGED = "net::ERR_NETWORK_CHANGED"
NAVIGATION_TRIES = 4
START_WAIT = float(os.environ.get("STACKHUB_E2E_START_WAIT", "120"))  # s, for a server to answer
IMAGE = os.environ.get("STACKHUB_TEST_IMAGE", "stackhub-test/web:1")
# the private engine's address space, clear of the test engine's: StackHub's instance networks
# (the test engine's servers take 10.231.0.0/16) and the engine's own pools (churn.sh's networks)
SUBNET_POOL = "10.233.0.0/16"
ENGINE_POOLS = [{"base": "10.234.0.0/16", "size": 24}]
ENGINE_FILE = Path("/tmp/stackhub-e2e-engine")  # the running suite's DOCKER_HOST, for churn.sh
SOURCE_WAIT = 180  # s, for the test engine (test_outage.py may have it stopped) before the copy
COPY_TRIES = 3
STORE = "e2e"
APP = "hello-web"
STORE_APP = {"kind": "catalog", "ref": f"{STORE}/{APP}"}  # the local store's app, as a source
# what the modules with a server of their own share
PASSWORD = "correct horse battery staple"  # every admin's
WAIT = 30_000  # ms, for anything in the browser
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 375, "height": 812}


def t(name: str) -> str:
    """The selector of an element by its data-test name."""
    return f'[data-test="{name}"]'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False,
                          timeout=120)


class Server:
    """A real `stackhub serve` process serving the built console."""

    def __init__(self, data: Path) -> None:
        self.data = data
        mark_install(data)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data.parent / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "STACKHUB_DATA_DIR": str(self.data), "PYTHONUNBUFFERED": "1"}
        stackhub = str(Path(sys.executable).with_name("stackhub"))
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([stackhub, "serve", "--port", str(self.port)], env=env,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        # a loaded CI host (two cores, other suites and containers) can take well over 30 s
        deadline = time.monotonic() + START_WAIT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not start: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    @property
    def admin_token(self) -> str:
        return (self.data / "secrets" / "admin-token").read_text().strip()

    @property
    def setup_token(self) -> str:
        return (self.data / "secrets" / "setup-token").read_text().strip()

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call the API as the built-in admin (the local CLI's credential)."""
        return httpx.request(method, f"{self.url}{path}", timeout=60,
                             headers={"Authorization": f"Bearer {self.admin_token}"}, **kwargs)


def write_store(root: Path, web_port: int) -> Path:
    """A local store in StackHub's format with one app on the busybox test image."""
    app = root / "apps" / APP
    app.mkdir(parents=True)
    (app / "stackhub-app.yaml").write_text(textwrap.dedent(f"""\
        format: stackhub/v1
        id: {APP}
        name: Hello Web
        version: "1.0.0"
        title: {{en: Hello Web, zh-CN: 你好网页}}
        tagline: {{en: A tiny web page for browser tests, zh-CN: 用于浏览器测试的小网页}}
        description:
          en: |
            # Hello Web
            Serves **one page** from busybox httpd.
            <script>window.__pwned = true</script><img src=x onerror="window.__pwned=true">
          zh-CN: |
            # 你好网页
            用 busybox httpd 提供**一个页面**。
        category: [utilities]
        icon: icon.svg
        main: {{service: web, port: 80, path: /}}
        parameters:
          - name: WEB_PORT
            type: port
            default: {web_port}
            label: {{en: Web port, zh-CN: 网页端口}}
          - name: ADMIN_PASSWORD
            type: secret
            length: 20
            label: {{en: Admin password, zh-CN: 管理员密码}}
          - name: GREETING
            type: string
            default: hello
            regex: "^[a-z ]+$"
            regex_error: {{en: Lowercase letters only}}
            label: {{en: Greeting, zh-CN: 问候语}}
        """))
    (app / "compose.yaml").write_text(textwrap.dedent(f"""\
        services:
          web:
            image: {IMAGE}
            command: ["sh", "-c", "echo greeting=$$GREETING; exec httpd -f -v -p 80 -h /www"]
            ports: ["${{WEB_PORT}}:80"]
            environment:
              GREETING: ${{GREETING}}
              ADMIN_PASSWORD: ${{ADMIN_PASSWORD}}
            stop_grace_period: 1s
        """))
    (app / "icon.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" '
        'height="64" rx="14" fill="#2080f0"/><text x="32" y="42" font-size="30" '
        'text-anchor="middle" fill="#fff">H</text></svg>')
    return root


def remove_instances(srv: Server) -> None:
    """Remove every instance of a test server with its data, waiting up to 60 s."""
    for item in srv.api("GET", "/api/instances").json():
        srv.api("DELETE", f"/api/instances/{item['name']}", params={"purge": "true"})
    deadline = time.monotonic() + 60
    while srv.api("GET", "/api/instances").json() and time.monotonic() < deadline:
        time.sleep(0.2)


def wait_operation(srv: Server, op_id: str, seconds: float = 120) -> dict[str, Any]:
    """Wait for an operation to end and return it."""
    deadline = time.monotonic() + seconds
    while True:
        op: dict[str, Any] = srv.api("GET", f"/api/operations/{op_id}").json()
        if op["state"] != "running":
            return op
        assert time.monotonic() < deadline, f"operation {op_id} still runs: {op}"
        time.sleep(0.1)


def ensure_instance(srv: Server, name: str, source: dict[str, Any],
                    values: dict[str, str] | None = None) -> dict[str, Any]:
    """Install an instance through the API unless it is there and running; return it."""
    found = srv.api("GET", f"/api/instances/{name}")
    if found.status_code == 200 and found.json()["status"] == "running":
        instance: dict[str, Any] = found.json()
        return instance
    if found.status_code == 200:  # stopped, failed...: start afresh
        remove_instance(srv, name)
    done = install_and_wait(srv, name, source, values)
    assert done["state"] == "succeeded", done
    instance = srv.api("GET", f"/api/instances/{name}").json()
    return instance


def install_and_wait(srv: Server, name: str, source: dict[str, Any],
                     values: dict[str, str] | None = None) -> dict[str, Any]:
    """Install an instance through the API and return its operation once it ended, whatever
    its outcome (`ensure_instance` wants it running)."""
    accepted = srv.api("POST", "/api/instances", json={"source": source, "name": name,
                                                       "values": values or {}})
    assert accepted.status_code == 202, accepted.text
    return wait_operation(srv, accepted.json()["operation"]["id"])


def remove_instance(srv: Server, name: str) -> None:
    """Remove one instance with its data, if it exists."""
    answer = srv.api("DELETE", f"/api/instances/{name}", params={"purge": "true"})
    if answer.status_code == 202:
        wait_operation(srv, answer.json()["operation"]["id"])
    deadline = time.monotonic() + 60
    while srv.api("GET", f"/api/instances/{name}").status_code != 404:
        assert time.monotonic() < deadline, f"{name} was not removed"
        time.sleep(0.3)


def click_until(page: Any, target: str, done: Any, *, timeout_ms: float = 30_000,
                tries: int = 3) -> None:
    """Click `target` until the locator `done` shows (or `done()` is true).

    Click again only if the browser dropped a request with ERR_NETWORK_CHANGED meanwhile (it
    never reached the server; a user would see the error and click again). Any other failure
    times out as before.
    """
    dropped: list[str] = []

    def failed(request: Any) -> None:  # GETs the console asks again itself: not a reason
        if NETWORK_CHANGED in (request.failure or "") and request.method not in ("GET", "HEAD"):
            dropped.append(request.url)

    page.on("requestfailed", failed)
    try:
        deadline = time.monotonic() + timeout_ms / 1000
        clicks = 1
        page.click(target)
        while True:
            try:
                if callable(done):  # a condition instead of a locator
                    page.wait_for_timeout(250)
                    if done():
                        return
                    raise TimeoutError
                done.wait_for(timeout=1000)
                return
            except Exception:
                button = page.locator(target).first
                if dropped and clicks < tries and button.is_visible() and button.is_enabled():
                    dropped.clear()
                    clicks += 1
                    page.wait_for_timeout(500)
                    page.click(target)
                elif time.monotonic() > deadline:
                    raise
    finally:
        page.remove_listener("requestfailed", failed)


def signed_in_state(browser: Any, url: str, user: str, password: str,
                    viewport: dict[str, int], wait_ms: int) -> dict[str, Any]:
    """Sign in once and return the browser state (cookies) to reuse.

    It posts the sign-in form's request from the context itself (its cookie jar, its user
    agent) rather than loading the console: the sign-in page has tests of its own
    (test_console.py, test_console_defects.py), and each load of it is seconds on a busy host.
    """
    ctx = browser.new_context(viewport=viewport, locale="en-US")
    try:
        answer = ctx.request.post(f"{url}/api/auth/login", timeout=wait_ms,
                                  data={"username": user, "password": password})
        assert answer.ok, answer.text()
        assert answer.json()["totp_required"] is False, answer.text()
        state: dict[str, Any] = ctx.storage_state()
        assert {c["name"] for c in state["cookies"]} >= {"stackhub_session", "stackhub_csrf"}, state
        return state
    finally:
        ctx.close()


def sign_in(browser: Any, srv: Server, user: str) -> dict[str, Any]:
    """`signed_in_state` for an admin made by `own_server` (desktop size, the usual wait)."""
    return signed_in_state(browser, srv.url, user, PASSWORD, DESKTOP, WAIT)


def add_local_store(srv: Server, root: Path) -> None:
    """Write the local store (`write_store`) at `root` and add it to the server as STORE."""
    store = write_store(root, free_port())
    added = srv.api("POST", "/api/stores", json={"name": STORE, "source": str(store),
                                                 "local": True})
    assert added.status_code == 201, added.text
    assert added.json()["app_count"] == 1, added.text


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmeLab]:
    """Pebble and pebble-challtestsrv for a module whose server runs the gateway on them."""
    yield from running_lab(tmp_path_factory)


def gateway_env(lab: AcmeLab, **extra: str) -> dict[str, str]:
    """An `own_server` environment on the lab: the gateway on its high ports, no base yet."""
    return {**lab.env(), "STACKHUB_GATEWAY": "", **extra}


@contextmanager
def own_server(tmp_path_factory: pytest.TempPathFactory, label: str, user: str, *,
               store: bool = True, env: dict[str, str] | None = None) -> Iterator[Server]:
    """A started server of a module's own (data in a temp folder named after `label`) with the
    admin `user` (password PASSWORD) and, unless told, the local store as STORE; `env` is set
    for the server process only. At the end its instances are removed and it stops."""
    if not DIST.is_file():
        pytest.fail("the web console is not built: run scripts/build-web (scripts/test does)")
    base = tmp_path_factory.mktemp(f"e2e-{label}")
    srv = Server(base / "data")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in (env or {}).items():
            patch.setenv(key, value)
        srv.start()
    try:
        made = srv.api("POST", "/api/auth/setup", json={
            "setup_token": srv.setup_token, "username": user, "password": PASSWORD})
        assert made.status_code in (200, 201), made.text
        if store:
            add_local_store(srv, base / "store")
        yield srv
    finally:
        remove_instances(srv)
        srv.stop()


def page_factory(browser: Any, state: dict[str, Any] | None, request: pytest.FixtureRequest,
                 shots: Path, *, errors: list[str] | None = None,
                 console: list[str] | None = None,
                 pin_locale: bool = False) -> Iterator[Callable[..., Any]]:
    """The body of a module's `open_page` fixture (`yield from page_factory(...)`).

    It yields `make(viewport, locale, *, signed=True)`, which opens a page in a browser context
    of its own: at that size (a phone's, touch and a 2x screen, below 600 px wide) and browser
    language, signed in with `state` unless `signed=False`, downloads accepted. `pin_locale`
    also stores the console language ('stackhub.locale') as a user's choice would. The pages'
    script errors go to `errors`; `console` collects console errors, warnings and failed
    requests, printed when the test fails. A failed test leaves a screenshot of its last page
    (FAILED-<test>.png); the contexts close at the end.
    """
    contexts: list[Any] = []
    pages: list[Any] = []

    def make(viewport: dict[str, int], locale: str, *, signed: bool = True) -> Any:
        phone = viewport["width"] < 600
        ctx = browser.new_context(viewport=viewport, locale=locale,
                                  storage_state=state if signed else None,
                                  is_mobile=phone, has_touch=phone,
                                  device_scale_factor=2 if phone else 1, accept_downloads=True)
        ctx.set_default_timeout(WAIT)
        contexts.append(ctx)
        if pin_locale:
            lang = "zh-CN" if locale.startswith("zh") else "en"
            ctx.add_init_script(f"localStorage.setItem('stackhub.locale', '{lang}')")
        page = ctx.new_page()
        if errors is not None:
            page.on("pageerror", lambda err: errors.append(str(err)))
        if console is not None:
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("requestfailed", lambda r: console.append(f"failed: {r.url} {r.failure}"))
        pages.append(page)
        return page

    try:
        yield make
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed and pages:
            pages[-1].screenshot(path=str(shots / f"FAILED-{request.node.name}.png"))
            if console is not None:
                print("browser console:", *console[-30:], sep="\n  ")
    finally:
        for ctx in contexts:
            ctx.close()


@pytest.fixture
def open_page(browser: Any, signed_in: dict[str, Any], request: pytest.FixtureRequest,
              shots: Path) -> Iterator[Callable[..., Any]]:
    """`page_factory` for a module with a `signed_in` fixture: a module's `errors` list gets its
    pages' script errors, its `console` list their console errors, and `PIN_LOCALE = True`
    stores the console language as a user's choice would."""
    module = request.module
    yield from page_factory(browser, signed_in, request, shots,
                            errors=getattr(module, "errors", None),
                            console=getattr(module, "console", None),
                            pin_locale=getattr(module, "PIN_LOCALE", False))


def no_sideways_scroll(page: Any, width: int = PHONE["width"]) -> None:
    """Neither the page nor the shell's scrolling content area is wider than `width`."""
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"the page is {scroll}px wide at {width}px"
    inner = page.evaluate("""() => [...document.querySelectorAll('.n-layout-scroll-container')]
        .map((el) => el.scrollWidth - el.clientWidth)""")
    assert max(inner, default=0) <= 0, f"a scrolling area overflows sideways by {inner}px"


def _wait_for_engine(host: str) -> None:
    """Wait until the engine at `host` answers (the test engine may be restarting)."""
    deadline = time.monotonic() + SOURCE_WAIT
    while subprocess.run(["docker", "-H", host, "info", "--format", "{{.ServerVersion}}"],
                         capture_output=True, check=False, timeout=60).returncode != 0:
        if time.monotonic() > deadline:
            pytest.fail(f"the test engine at {host} did not answer within {SOURCE_WAIT} s: "
                        "run scripts/engine-up")
        time.sleep(1)


@pytest.fixture(scope="session", autouse=True)
def e2e_engine() -> Iterator[SecondEngine]:
    """The suite's private dockerd, with the test images and the store-script sandbox image
    copied from the test engine and the same registry mirror; DOCKER_HOST and the instance
    subnet pool point the whole session at it. Failing to start it fails the suite."""
    from stackhub.adapters.sandbox import image_ref

    source = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    images = (IMAGE, IMAGE.rsplit(":", 1)[0] + ":2", image_ref())
    settings: dict[str, object] = {"default-address-pools": ENGINE_POOLS}
    mirror = os.environ.get("STACKHUB_TEST_MIRROR")
    if mirror:
        settings["registry-mirrors"] = [mirror]
    with ExitStack() as stack:
        for attempt in range(COPY_TRIES):  # test_outage.py may stop the test engine mid-copy
            _wait_for_engine(source)
            try:
                engine = stack.enter_context(second_engine(images, source=source,
                                                           settings=settings))
                break
            except AssertionError:
                if attempt == COPY_TRIES - 1:
                    raise
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        patch.setenv("DOCKER_HOST", engine.host)
        patch.setenv("STACKHUB_SUBNET_POOL", SUBNET_POOL)
        ENGINE_FILE.write_text(engine.host + "\n")
        try:
            yield engine
        finally:
            ENGINE_FILE.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory,
           e2e_engine: SecondEngine) -> Iterator[Server]:
    if not DIST.is_file():
        pytest.fail("the web console is not built: run scripts/build-web (scripts/test does)")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium")
    base = tmp_path_factory.mktemp("e2e")
    srv = Server(base / "data")
    srv.start()
    add_local_store(srv, base / "store")
    try:
        yield srv
    finally:
        remove_instances(srv)
        srv.stop()
        if SHOTS.parent.is_dir():  # the server's log beside the screenshots, for CI
            shutil.copy(srv.log, SHOTS.parent / "e2e-server.log")


def _console_up(page: Any, timeout: float = 8.0) -> bool:
    """Tell whether the console mounted (or the page is not the console) within `timeout` s."""
    try:
        page.wait_for_function("() => { const app = document.getElementById('app'); "
                               "return !app || app.hasChildNodes() }", timeout=timeout * 1000)
        return True
    except Exception:  # timed out, or boot.js reloaded the page meanwhile: not up yet
        return False


def _retry_navigations() -> None:
    """Make page.goto and page.reload try again when a network change aborted the navigation.

    Only that error is retried (a few times, a moment apart): any other failure, and a page
    that loads but breaks, still fails the test.
    """
    from playwright.sync_api import Page

    if getattr(Page.goto, "_retries_network_changes", False):
        return

    def retrying(method: Any) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            for attempt in range(NAVIGATION_TRIES):
                dropped: list[str] = []

                def failed(request: Any, dropped: list[str] = dropped) -> None:
                    if NETWORK_CHANGED in (request.failure or ""):
                        dropped.append(request.url)

                self.on("requestfailed", failed)
                try:
                    answer = method(self, *args, **kwargs)
                    # the page came, but a network change dropped some of its scripts (even
                    # boot.js, which reloads the page otherwise): a blank console, load it again
                    if not dropped or attempt == NAVIGATION_TRIES - 1 or _console_up(self):
                        return answer
                except Exception as err:  # playwright's Error; others pass through
                    if NETWORK_CHANGED not in str(err) or attempt == NAVIGATION_TRIES - 1:
                        raise
                finally:
                    self.remove_listener("requestfailed", failed)
                time.sleep(0.5 * (attempt + 1))
            raise AssertionError("unreachable")
        call._retries_network_changes = True  # type: ignore[attr-defined]
        return call

    Page.goto = retrying(Page.goto)  # type: ignore[method-assign]
    Page.reload = retrying(Page.reload)  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    _retry_navigations()
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember each phase's report on the item, for the failure screenshot."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
