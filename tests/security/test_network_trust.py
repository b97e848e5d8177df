"""No trust from the network: X-Forwarded-* only from configured proxies, never authority."""

from __future__ import annotations

from .conftest import ADMIN, Server

PROXY_PEER = ("10.1.2.3", 443)


def _trust(server: Server, *cidrs: str) -> None:
    answer = server.client.put("/api/settings/security", headers=server.admin_headers(), json={
        "require_2fa": False, "trusted_proxies": list(cidrs), "allowed_origins": []})
    assert answer.status_code == 200, answer.text


def _last_login_ip(server: Server) -> str:
    return next(e.ip for e in server.services.auth.audit.recent() if e.action == "login")


def test_localhost_forwarded_for_grants_nothing(ready: Server) -> None:
    """CasaOS CVE-2023-37265: 'from localhost' by header is no credential, trusted or not."""
    spoof = {"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1",
             "X-Forwarded-Host": "localhost", "Forwarded": "for=127.0.0.1"}
    for client in (ready.new_client(), ready.new_client(client=("127.0.0.1", 5000))):
        assert client.get("/api/users", headers=spoof).status_code == 401
    _trust(ready, "10.0.0.0/8", "127.0.0.1/32")
    proxied = ready.new_client(client=PROXY_PEER)
    assert proxied.get("/api/users", headers=spoof).status_code == 401


def test_identity_headers_from_clients_are_ignored(ready: Server) -> None:
    """Cosmos-style identity headers do nothing."""
    headers = {"X-Remote-User": "alice", "X-Forwarded-User": "alice", "Remote-User": "alice",
               "X-StackHub-User": "alice", "X-Auth-Request-User": "alice"}
    assert ready.new_client().get("/api/users", headers=headers).status_code == 401


def test_forwarded_headers_from_untrusted_peers_are_ignored(ready: Server) -> None:
    """Without a configured proxy the peer address, scheme and host stand."""
    client = ready.new_client(client=("198.51.100.5", 5000))
    answer = client.post("/api/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]},
                         headers={"X-Forwarded-For": "203.0.113.99",
                                  "X-Forwarded-Proto": "https"})
    assert answer.status_code == 200
    assert _last_login_ip(ready) == "198.51.100.5"
    assert "strict-transport-security" not in answer.headers
    assert all("Secure" not in c for c in answer.headers.get_list("set-cookie"))


def test_trusted_proxy_headers_are_honoured(ready: Server) -> None:
    """From a configured proxy: the client address, https and the public host are taken."""
    _trust(ready, "10.0.0.0/8")
    client = ready.new_client(client=PROXY_PEER)
    forwarded = {"X-Forwarded-For": "203.0.113.99, 10.1.2.2", "X-Forwarded-Proto": "https",
                 "X-Forwarded-Host": "panel.example.com"}
    answer = client.post("/api/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]},
                         headers={**forwarded, "Origin": "https://panel.example.com"})
    assert answer.status_code == 200
    assert _last_login_ip(ready) == "203.0.113.99"  # the rightmost untrusted hop
    assert "strict-transport-security" in answer.headers
    assert all("Secure" in c for c in answer.headers.get_list("set-cookie"))


def test_leftmost_forwarded_for_is_not_believed(ready: Server) -> None:
    """A client-supplied first hop cannot pick the address the proxy vouches for."""
    _trust(ready, "10.0.0.0/8")
    client = ready.new_client(client=PROXY_PEER)
    client.post("/api/auth/login", json={"username": ADMIN[0], "password": "wrong-password-1"},
                headers={"X-Forwarded-For": "127.0.0.1, 198.51.100.77"})
    failed = next(e for e in ready.services.auth.audit.recent() if e.action == "login")
    assert failed.ip == "198.51.100.77"
