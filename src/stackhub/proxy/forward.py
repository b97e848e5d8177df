"""StackHub's sign-in in front of an app (forward auth), behind the gateway.

The gateway asks ``GET /api/auth/forward?token=...`` before every request to a protected app
(Caddy's forward_auth, expanded; identity headers from the client were deleted before). The
answer: 200 with ``Remote-User``/``Remote-Groups`` for a signed-in user allowed to see the app
(admins, members granted it); otherwise a redirect into the sign-in, or 403.

Cookies are per app host (Umbrel-style hand-off), never shared by the base domain: an app
cannot read a cookie that opens another app or the console, and custom domains work the same
way. The hand-off: the app's host sends the browser to the console's
``/api/auth/gateway?rd=<url>``; a signed-in console session there gets a one-time ticket
(60 s, bound to the host) and goes to ``https://<host>/.stackhub/auth?ticket=...``, which the
forward check answers with a redirect to the page asked for and the gateway cookie
(HttpOnly, Secure, SameSite=Lax, host-only). The gateway cookie dies with the console
session it came from (sign-out, expiry, revocation), and is removed from the requests the
app gets.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote, urlsplit

from stackhub.auth.models import Principal
from stackhub.auth.service import AuthService
from stackhub.errors import Invalid
from stackhub.proxy.service import ProxyService

COOKIE = "stackhub_gw"
HANDOFF = "/.stackhub/auth"
TICKET_TTL = 60.0


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Ticket:
    """A one-time pass from the console's session to one app host."""

    username: str
    session_id: str
    host: str
    path: str
    expires: float


@dataclass
class Decision:
    """The forward check's answer."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    cookie: tuple[str, int] | None = None
    """(value, max-age) of the gateway cookie to set."""
    text: str = ""
    text_zh: str = ""
    """`text` in Chinese, for a browser that asks for Chinese first."""


class GatewayAuth:
    """Decide whether a request through the gateway may reach a protected app."""

    def __init__(self, proxy: ProxyService, auth: AuthService) -> None:
        """Use the proxy's routes and the auth domain's sessions."""
        self.proxy = proxy
        self.auth = auth
        self._tickets: dict[str, Ticket] = {}

    # -- the console side -------------------------------------------------------------------
    def target(self, rd: str) -> tuple[str, str, str]:
        """Return (instance, host, path) of a return URL, refusing anything but our apps."""
        try:
            parts = urlsplit(rd)
            port = parts.port
        except ValueError as err:
            raise Invalid("rd must be the https URL of a protected app of this box") from err
        host = (parts.hostname or "").lower()
        instance = self.proxy.protected_hosts().get(host)
        expected = self.proxy.settings.https_port
        if parts.scheme != "https" or instance is None or (port or 443) != expected \
                or parts.username is not None or parts.password is not None:
            raise Invalid("rd must be the https URL of a protected app of this box")
        path = parts.path or "/"
        # browsers read a backslash as a slash: `/\evil.example` would leave the box
        if not path.startswith("/") or path[1:2] in ("/", "\\"):
            path = "/"
        return instance, host, path + (f"?{parts.query}" if parts.query else "")

    def ticket(self, principal: Principal, rd: str) -> str | None:
        """Return the hand-off URL for a signed-in caller, or None if they may not see the app."""
        instance, host, path = self.target(rd)
        if principal.session_id is None or principal.needs_enrolment or \
                not self.auth.accounts.may_see(principal, instance):
            return None
        now = time.monotonic()
        self._tickets = {k: v for k, v in self._tickets.items() if v.expires > now}
        secret = secrets.token_urlsafe(24)
        self._tickets[_digest(secret)] = Ticket(principal.name, principal.session_id, host,
                                                path, now + TICKET_TTL)
        netloc = urlsplit(rd).netloc.rsplit("@", 1)[-1]
        return f"https://{netloc}{HANDOFF}?ticket={quote(secret)}"

    def sign_in_url(self, host: str, uri: str) -> str:
        """Return where the browser signs in for `host` (the console's gateway route)."""
        port = self.proxy.settings.https_port
        back = f"https://{host}" + ("" if port == 443 else f":{port}") + (uri or "/")
        return f"{self.proxy.console_url()}/api/auth/gateway?rd={quote(back, safe='')}"

    # -- the gateway side -------------------------------------------------------------------
    def check(self, *, token: str, host: str, uri: str, method: str,
              cookie: str | None) -> Decision:
        """Answer the gateway's question for one request."""
        if not secrets.compare_digest(token.encode(), self.proxy.ask_token.encode()):
            return Decision(403, text="not the gateway", text_zh="此请求并非来自网关。")
        name = host.rsplit(":", 1)[0].lower() if not host.startswith("[") else host
        instance = self.proxy.protected_hosts().get(name)
        if instance is None:
            return Decision(403, text="this name is not served by StackHub",
                            text_zh="StackHub 不为这个名称提供服务。")
        if uri.startswith(HANDOFF + "?") or uri == HANDOFF:
            return self._redeem(name, uri)
        if cookie:
            user = self._session(cookie, name)
            if user is not None:
                if user.needs_enrolment or not self.auth.accounts.may_see(user, instance):
                    return Decision(403, text=f"{user.name} may not open {instance}: ask an "
                                    "admin to grant it",
                                    text_zh=f"{user.name} 无权打开 {instance}："
                                    "请让管理员授予权限。")
                return Decision(200, headers={"Remote-User": user.name,
                                              "Remote-Groups": str(user.role)})
        if method.upper() not in ("GET", "HEAD"):
            return Decision(401, text="sign in to StackHub first", text_zh="请先登录 StackHub。")
        return Decision(302, headers={"Location": self.sign_in_url(name, uri)})

    def _redeem(self, host: str, uri: str) -> Decision:
        query = parse_qs(urlsplit(uri).query)
        secret = (query.get("ticket") or [""])[0]
        ticket = self._tickets.pop(_digest(secret), None) if secret else None
        if ticket is None or ticket.host != host or ticket.expires < time.monotonic():
            return Decision(302, headers={"Location": self.sign_in_url(host, "/")})
        parent = next((s for s in self.auth.sessions.of_user(ticket.username)
                       if s.id == ticket.session_id), None)
        if parent is None:
            return Decision(302, headers={"Location": self.sign_in_url(host, ticket.path)})
        value = "shg_" + secrets.token_urlsafe(32)
        self.proxy.records.add_gateway_session(_digest(value), session_id=ticket.session_id,
                                               username=ticket.username, host=host,
                                               expires_at=parent.expires_at)
        age = int((datetime.fromisoformat(parent.expires_at) - datetime.now(UTC))
                  .total_seconds())
        return Decision(302, headers={"Location": ticket.path}, cookie=(value, max(age, 60)))

    def _session(self, cookie: str, host: str) -> Principal | None:
        if not cookie.startswith("shg_") or len(cookie) > 128:
            return None
        digest = _digest(cookie)
        row = self.proxy.records.gateway_session(digest)
        if row is None:
            return None
        session_id, username, bound, expires = row
        if bound != host or datetime.fromisoformat(expires) <= datetime.now(UTC):
            self.proxy.records.drop_gateway_session(digest)
            return None
        parent = next((s for s in self.auth.sessions.of_user(username) if s.id == session_id),
                      None)
        user = self.auth.users.find(username)
        if parent is None or user is None or user.disabled:
            self.proxy.records.drop_gateway_session(digest)
            return None
        return self.auth.principal(user, via="session", session=parent)
