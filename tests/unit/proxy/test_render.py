"""The gateway's whole config, rendered from a spec: routes, pages, certificates, ask."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from stackhub.adapters.caddy import (
    CHINESE_FIRST,
    IDENTITY_HEADERS,
    LOG_NAME,
    NO_ROUTE,
    PAGE_HEADER,
    SERVER,
    STOPPED,
    UNREACHABLE,
    Acme,
    ForwardAuth,
    GatewaySpec,
    Route,
    render,
)

DELETE_IDENTITY = {"handle": [{"handler": "headers",
                               "request": {"delete": list(IDENTITY_HEADERS)}}]}


def shown(handler: dict[str, Any], chinese: bool = False) -> dict[str, Any]:
    """Return the page a gateway page handler answers with, for an English or Chinese browser."""
    assert handler["handler"] == "subroute"
    first, other = handler["routes"]
    assert first["match"] == [{"header_regexp": {"Accept-Language": {"pattern": CHINESE_FIRST}}}]
    assert first["terminal"] is True and "match" not in other
    return (first if chinese else other)["handle"][0]  # type: ignore[no-any-return]


def spec(**extra: object) -> GatewaySpec:
    base: dict[str, object] = {
        "admin": "unix//data/gateway/admin.sock", "http_port": 8080, "https_port": 8443,
        "storage": Path("/data/gateway/data/caddy"),
        "routes": (Route("app-web", ("web.home.lan", "shop.example.com"), "127.0.0.1:18100"),
                   Route("app-db", ("db.home.lan",), None, "The app db is stopped.")),
        "internal": ("web.home.lan", "db.home.lan"), "acme": ("shop.example.com",),
        "ca": Acme("https://ca.test/dir", "me@example.com", ("/roots.pem",)),
        "ask": "http://127.0.0.1:8420/api/gateway/ask?token=t"}
    base.update(extra)
    return GatewaySpec(**base)  # type: ignore[arg-type]


def test_the_admin_socket_stays_and_nothing_is_persisted() -> None:
    config = render(spec())
    assert config["admin"] == {"listen": "unix//data/gateway/admin.sock",
                               "config": {"persist": False}}
    assert config["storage"] == {"module": "file_system", "root": "/data/gateway/data/caddy"}
    http = config["apps"]["http"]
    assert (http["http_port"], http["https_port"]) == (8080, 8443)
    assert http["servers"][SERVER]["listen"] == [":8443"]


def test_a_system_caddy_gets_a_bounded_log_of_certificate_errors() -> None:
    """StackHub's child logs to its output (read live): no log of its own in the config."""
    assert "logging" not in render(spec())
    config = render(spec(log=Path("/data/gateway/logs/caddy-errors.log")))
    assert config["logging"] == {"logs": {LOG_NAME: {
        "writer": {"output": "file", "filename": "/data/gateway/logs/caddy-errors.log",
                   "roll_size_mb": 1, "roll_keep": 1},
        "encoder": {"format": "json"}, "level": "ERROR", "include": ["tls"]}}}


def test_routes_proxy_to_the_host_port_or_show_a_page() -> None:
    routes = render(spec())["apps"]["http"]["servers"][SERVER]["routes"]
    web, db, fallback = routes
    assert web["@id"] == "stackhub-app-web"
    assert web["match"] == [{"host": ["web.home.lan", "shop.example.com"]}]
    assert web["handle"] == [{"handler": "subroute", "routes": [DELETE_IDENTITY, {"handle": [
        {"handler": "reverse_proxy", "upstreams": [{"dial": "127.0.0.1:18100"}]}]}]}]
    page = shown(db["handle"][0])
    assert page["handler"] == "static_response" and page["status_code"] == 503
    assert "The app db is stopped." in page["body"]
    assert "match" not in fallback and shown(fallback["handle"][0])["status_code"] == 404


def test_the_gateway_pages_are_in_chinese_for_a_chinese_browser() -> None:
    stopped = Route("app-db", ("db.home.lan",), None, "The app db is stopped.",
                    title="App stopped", page_zh="应用 db 已停止。", title_zh="应用已停止")
    server = render(spec(routes=(stopped,)))["apps"]["http"]["servers"][SERVER]
    db, fallback = server["routes"]
    unreachable = server["errors"]["routes"][0]["handle"][0]
    for handler, status, english, chinese in (
            (db["handle"][0], 503, "The app db is stopped.", "应用 db 已停止。"),
            (fallback["handle"][0], 404, "No app of this StackHub", "此 StackHub 上没有应用"),
            (unreachable, 502, "does not answer", "没有响应")):
        en, zh = shown(handler), shown(handler, chinese=True)
        assert (en["status_code"], zh["status_code"]) == (status, status)
        assert english in en["body"] and '<html lang="en">' in en["body"]
        assert chinese in zh["body"] and '<html lang="zh-CN">' in zh["body"]
        assert "StackHub 网关" in zh["body"] and chinese not in en["body"]
        assert zh["headers"]["Vary"] == ["Accept-Language"]
    untranslated = Route("x", ("x.lan",), None, None)  # no Chinese text given: a general one
    page = render(spec(routes=(untranslated,)))["apps"]["http"]["servers"][SERVER]["routes"][0]
    chinese = shown(page["handle"][0], chinese=True)["body"]
    assert "此应用当前不可用" in chinese and "<title>应用不可用</title>" in chinese


def test_the_first_language_decides_the_pages_language() -> None:
    first = re.compile(CHINESE_FIRST.replace("(?i)", ""), re.IGNORECASE)  # Go's RE2 syntax
    for asked in ("zh-CN,zh;q=0.9,en;q=0.8", "ZH-cn", " zh", "zh-TW,en"):
        assert first.search(asked), asked
    for asked in ("en-US,en;q=0.9,zh;q=0.8", "", "de,zh"):
        assert not first.search(asked), asked


def test_pages_escape_html() -> None:
    routes = render(spec(routes=(Route("x", ("x.lan",), None, "<b>&"),)))
    handler = routes["apps"]["http"]["servers"][SERVER]["routes"][0]["handle"][0]
    body = shown(handler)["body"]
    assert "&lt;b&gt;&amp;" in body and "<b>" not in body


def test_an_unreachable_upstream_gets_a_clear_page() -> None:
    server = render(spec())["apps"]["http"]["servers"][SERVER]
    page = shown(server["errors"]["routes"][0]["handle"][0])
    assert page["status_code"] == 502 and "does not answer" in page["body"]


def test_the_gateway_marks_its_own_pages_and_never_an_app_answer() -> None:
    server = render(spec())["apps"]["http"]["servers"][SERVER]
    web, db, fallback = server["routes"]
    unreachable = server["errors"]["routes"][0]["handle"][0]
    for chinese in (False, True):
        assert shown(db["handle"][0], chinese)["headers"][PAGE_HEADER] == [STOPPED]
        assert shown(unreachable, chinese)["headers"][PAGE_HEADER] == [UNREACHABLE]
        assert shown(fallback["handle"][0], chinese)["headers"][PAGE_HEADER] == [NO_ROUTE]
    assert PAGE_HEADER not in str(web)  # the app's own answers pass through unmarked


def test_lan_names_use_the_internal_ca_and_others_acme_on_demand() -> None:
    tls = render(spec())["apps"]["tls"]
    internal, acme = tls["automation"]["policies"]
    assert internal == {"subjects": ["db.home.lan", "web.home.lan"],
                        "issuers": [{"module": "internal"}]}
    assert acme["subjects"] == ["shop.example.com"] and acme["on_demand"] is True
    issuer = acme["issuers"][0]
    assert issuer["ca"] == "https://ca.test/dir" and issuer["email"] == "me@example.com"
    assert issuer["trusted_roots_pem_files"] == ["/roots.pem"]
    assert issuer["challenges"] == {"tls-alpn": {"disabled": True}}
    assert tls["automation"]["on_demand"]["ask"].endswith("/api/gateway/ask?token=t")
    assert render(spec())["apps"]["pki"]["certificate_authorities"]["local"] == {
        "install_trust": False}


def test_no_acme_hosts_no_acme_policy_and_no_ask() -> None:
    config = render(spec(acme=(), ask=None))
    automation = config["apps"]["tls"]["automation"]
    assert [p["issuers"][0]["module"] for p in automation["policies"]] == ["internal"]
    # no ask, but the rate limit stays: Caddy 2.6.2 panics resetting it (test_gateway_loads)
    assert automation["on_demand"] == {"rate_limit": {"interval": "1m", "burst": 30}}
    assert render(spec())["apps"]["tls"]["automation"]["on_demand"]["rate_limit"] == \
        automation["on_demand"]["rate_limit"]


def test_a_main_path_is_redirected_to_and_https_apps_are_proxied_over_tls() -> None:
    config = render(spec(routes=(Route("app-x", ("x.lan",), "127.0.0.1:9443", path="/admin/",
                                       tls=True),)))
    steps = config["apps"]["http"]["servers"][SERVER]["routes"][0]["handle"][0]["routes"]
    delete, redirect, proxy = steps
    assert delete == DELETE_IDENTITY
    assert redirect["match"] == [{"path": ["/"]}]
    assert redirect["handle"][0]["headers"] == {"Location": ["/admin/"]}
    assert proxy["handle"][0]["transport"] == {"protocol": "http",
                                               "tls": {"insecure_skip_verify": True}}


def _steps(route: Route) -> list[dict[str, Any]]:
    config = render(spec(routes=(route,)))
    handle = config["apps"]["http"]["servers"][SERVER]["routes"][0]["handle"][0]
    assert handle["handler"] == "subroute"
    return list(handle["routes"])


def test_a_protected_app_deletes_identity_headers_then_asks_then_proxies() -> None:
    guard = ForwardAuth(dial="127.0.0.1:8420", uri="/api/auth/forward?token=t")
    steps = _steps(Route("app-x", ("x.lan",), "127.0.0.1:9000", path="/admin/", auth=guard))
    delete, ask, strip, redirect, proxy = (s["handle"][0] for s in steps)
    assert delete == DELETE_IDENTITY["handle"][0]
    assert ask["handler"] == "reverse_proxy" and ask["upstreams"] == [{"dial": "127.0.0.1:8420"}]
    assert ask["rewrite"] == {"method": "GET", "uri": "/api/auth/forward?token=t"}
    assert set(ask["headers"]["request"]["set"]) == {"X-Forwarded-Method", "X-Forwarded-Uri"}
    copied = ask["handle_response"][0]
    assert copied["match"] == {"status_code": [2]}
    assert copied["routes"][0]["handle"][0]["request"]["set"]["Remote-User"] == [
        "{http.reverse_proxy.header.Remote-User}"]
    cookie = strip["request"]["replace"]["Cookie"][0]
    assert "stackhub_gw" in cookie["search_regexp"] and cookie["replace"] == ""
    assert redirect["headers"] == {"Location": ["/admin/"]}
    assert proxy["upstreams"] == [{"dial": "127.0.0.1:9000"}]


def test_a_protected_stopped_app_still_asks_before_its_page() -> None:
    guard = ForwardAuth(dial="127.0.0.1:8420", uri="/api/auth/forward?token=t")
    steps = _steps(Route("app-x", ("x.lan",), None, "stopped", auth=guard))
    assert steps[1]["handle"][0]["rewrite"]["uri"] == "/api/auth/forward?token=t"
    assert shown(steps[-1]["handle"][0])["status_code"] == 503


def test_a_container_address_falls_back_to_the_published_port() -> None:
    spec = GatewaySpec(admin="unix//tmp/a.sock", http_port=80, https_port=443,
                       storage=Path("/tmp/s"), routes=(
                           Route(id="app-web", hosts=("web.box.lan",), upstream="10.231.0.2:80",
                                 fallback="127.0.0.1:8080"),
                           Route(id="app-tls", hosts=("tls.box.lan",), upstream="10.231.0.66:443",
                                 fallback="127.0.0.1:8443", tls=True),
                           Route(id="app-port", hosts=("port.box.lan",),
                                 upstream="127.0.0.1:9090", fallback="127.0.0.1:9090")))
    found = {r["@id"]: r["handle"][0]["routes"][-1]["handle"][0]
             for r in render(spec)["apps"]["http"]["servers"][SERVER]["routes"] if "@id" in r}
    web = found["stackhub-app-web"]
    assert [u["dial"] for u in web["upstreams"]] == ["10.231.0.2:80", "127.0.0.1:8080"]
    assert web["load_balancing"] == {"selection_policy": {"policy": "first"}, "retries": 1,
                                     "try_interval": "10ms"}
    assert web["health_checks"] == {"passive": {"fail_duration": "2s", "max_fails": 1}}
    assert "transport" not in web  # Caddy's own dial timeout (3 s): a SYN the app dropped
    assert found["stackhub-app-tls"]["transport"] == {  # is retried at 1 s, not given up
        "protocol": "http", "tls": {"insecure_skip_verify": True}}
    assert len(found["stackhub-app-tls"]["upstreams"]) == 2
    same = found["stackhub-app-port"]  # a fallback equal to the upstream adds nothing
    assert same["upstreams"] == [{"dial": "127.0.0.1:9090"}] and "load_balancing" not in same
