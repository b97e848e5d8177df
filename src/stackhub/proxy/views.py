"""HTTP routes of the proxy domain: base domain, domains, DNS checks, the internal CA's root.

Every route here is admin-only (none is in api/deps.MEMBER_ROUTES), except Caddy's on-demand
``ask`` (`public`), which answers only a caller holding the random token of the loaded config.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response

from stackhub.adapters.caddy import page
from stackhub.api.deps import SESSION_COOKIE, AuditDep, ServicesDep
from stackhub.apps.models import check_name
from stackhub.errors import NotFound
from stackhub.proxy import providers
from stackhub.proxy.forward import COOKIE, GatewayAuth
from stackhub.proxy.models import (
    BaseRead,
    BaseRequest,
    DnsCheck,
    DomainAccepted,
    DomainRead,
    DomainRequest,
    GatewayRead,
    ProtectionRead,
    ProtectionRequest,
    ProviderKindRead,
    ProviderRead,
    ProviderRequest,
    RecheckRead,
    RecordsRead,
    WildcardAccepted,
    WildcardRequest,
)
from stackhub.services import Services

router = APIRouter(tags=["domains"])
public = APIRouter(tags=["domains"])
InstanceQuery = Annotated[str | None, Query(max_length=40, description="Only this instance's")]
DomainPath = Annotated[str, "a domain name"]


@router.get("/domains", response_model=list[DomainRead], summary="List domains")
async def list_domains(services: ServicesDep, instance: InstanceQuery = None) -> list[DomainRead]:
    """List every name the gateway serves: automatic names, then custom domains."""
    return services.proxy.domains(check_name(instance) if instance is not None else None)


@router.get("/domains/base", response_model=BaseRead, summary="Show the base domain")
async def get_base(services: ServicesDep) -> BaseRead:
    """Return the base domain, its TLS mode and the gateway's state."""
    return services.proxy.read_base()


@router.put("/domains/base", response_model=BaseRead, summary="Set the base domain")
async def set_base(request: BaseRequest, services: ServicesDep, audit: AuditDep) -> BaseRead:
    """Give every instance ``<instance>.<base>`` (and the console ``console.<base>``).

    Starts the gateway if needed and loads its config; answers 503 if Caddy is missing or
    cannot take its ports (the message names the program holding them).
    """
    read = await services.proxy.set_base(request.base, request.tls)
    audit("domain.base", read.base or "", tls=read.tls)
    return read


@router.delete("/domains/base", response_model=BaseRead, summary="Remove the base domain")
async def clear_base(services: ServicesDep, audit: AuditDep) -> BaseRead:
    """Remove the base domain: automatic names stop being served."""
    read = await services.proxy.clear_base()
    audit("domain.base", "", cleared=True)
    return read


@router.get("/domains/ca", response_class=Response, summary="Download the internal CA root",
            responses={200: {"content": {"application/x-pem-file": {}},
                             "description": "The root certificate (PEM)"}})
async def ca_root(services: ServicesDep) -> Response:
    """Return the internal CA's root, which signs LAN names (install it on each device)."""
    pem = await services.proxy.ca_root()
    return Response(pem, media_type="application/x-pem-file",
                    headers={"Content-Disposition": 'attachment; filename="stackhub-ca.crt"'})


@router.get("/domains/check", response_model=DnsCheck, summary="Diagnose a domain's DNS")
async def check_domain(services: ServicesDep,
                       domain: Annotated[str, Query(min_length=1, max_length=300)],
                       instance: InstanceQuery = None) -> DnsCheck:
    """Look the domain up and say whether it reaches this box; if not, the record to create."""
    return await services.proxy.check(domain, check_name(instance) if instance else None)


@router.post("/domains", response_model=DomainAccepted, status_code=202,
             summary="Bind a custom domain")
async def add_domain(request: DomainRequest, services: ServicesDep,
                     audit: AuditDep) -> DomainAccepted:
    """Check DNS (422 naming the record to create), then start the `domain` operation."""
    accepted = await services.domains.add(check_name(request.instance), request.domain)
    audit("domain.add", accepted.domain, instance=accepted.instance,
          operation=accepted.operation.id)
    return accepted


@router.delete("/domains/{domain}", status_code=204, response_class=Response,
               summary="Remove a custom domain")
async def remove_domain(domain: DomainPath, services: ServicesDep, audit: AuditDep,
                        instance: Annotated[str, Query(max_length=40)]) -> Response:
    """Unbind a custom domain from its instance; the gateway stops serving it.

    A record StackHub created for it at the DNS provider is deleted too.
    """
    deleted = await services.domains.remove(check_name(instance), domain)
    audit("domain.remove", domain, instance=instance, dns_deleted=deleted)
    return Response(status_code=204)


@router.get("/gateway", response_model=GatewayRead, summary="Show the gateway")
async def gateway(services: ServicesDep) -> GatewayRead:
    """Return whether the gateway runs, its ports, restarts and last error."""
    return services.proxy.gateway_read()


@public.get("/api/gateway/ask", include_in_schema=False)
async def ask(services: ServicesDep, domain: Annotated[str, Query(max_length=300)] = "",
              token: Annotated[str, Query(max_length=100)] = "") -> Response:
    """Answer Caddy's on-demand TLS question: 200 if StackHub serves `domain`, else 404."""
    if not services.proxy.allows(domain, token):
        raise NotFound("not a domain of this box")
    return Response(status_code=200)


@router.post("/domains/recheck", response_model=RecheckRead, summary="Re-check domains now")
async def recheck(services: ServicesDep, audit: AuditDep) -> RecheckRead:
    """Look every custom domain up again (flagging dangling ones) and list expiring certificates.

    The server does this by itself every STACKHUB_DOMAIN_RECHECK seconds (6 h by default).
    """
    read = await services.proxy.recheck()
    audit("domain.recheck", "", dangling=read.dangling, expiring=read.expiring)
    return read


@router.get("/domains/recheck", response_model=RecheckRead | None,
            summary="Show the last re-check")
async def last_recheck(services: ServicesDep) -> RecheckRead | None:
    """Return the outcome of the last re-check (None before the first since the start)."""
    return services.proxy.last_recheck


@router.get("/instances/{name}/protection", response_model=ProtectionRead,
            summary="Show whether an app is behind the sign-in")
async def get_protection(name: str, services: ServicesDep) -> ProtectionRead:
    """Say whether StackHub's sign-in guards the app's gateway names."""
    return services.proxy.protection(check_name(name))


@router.put("/instances/{name}/protection", response_model=ProtectionRead,
            summary="Put an app behind the sign-in, or take it out")
async def set_protection(name: str, request: ProtectionRequest, services: ServicesDep,
                         audit: AuditDep) -> ProtectionRead:
    """Guard the app's gateway names with StackHub's sign-in (forward auth), or stop.

    Only signed-in users who may see the app (admins, members granted it) get through; the
    app receives ``Remote-User`` and ``Remote-Groups`` (whatever a client sends under those
    names is deleted first). A `protect` operation (steps route, publish; in the activity
    list); the answer comes when it has finished, and names it.
    """
    read = await services.proxy.protect(check_name(name), request.protected)
    audit("app.protect", name, protected=request.protected, operation=read.operation)
    return read


def _gate(request: Request, services: Services) -> GatewayAuth:
    gate: GatewayAuth | None = getattr(request.app.state, "gateway_auth", None)
    if gate is None or gate.proxy is not services.proxy:
        gate = GatewayAuth(services.proxy, services.auth)
        request.app.state.gateway_auth = gate
    return gate


def _html(request: Request, status: int, english: tuple[str, str],
          chinese: tuple[str, str]) -> Response:
    """A small page in Chinese for a browser that asks for it first, else in English."""
    zh = request.headers.get("accept-language", "").lstrip().lower().startswith("zh")
    return Response(page(*chinese, lang="zh-CN") if zh else page(*english), status_code=status,
                    media_type="text/html", headers={"Cache-Control": "no-store",
                                                     "Vary": "Accept-Language"})


@public.get("/api/auth/forward", include_in_schema=False)
async def forward(request: Request, services: ServicesDep,
                  token: Annotated[str, Query(max_length=100)] = "") -> Response:
    """Answer the gateway's forward-auth question for a request to a protected app."""
    headers = request.headers
    host = (headers.get("x-forwarded-host") or headers.get("host") or "").split(",")[0].strip()
    decision = _gate(request, services).check(
        token=token, host=host, uri=headers.get("x-forwarded-uri", "/"),
        method=headers.get("x-forwarded-method", "GET"),
        cookie=request.cookies.get(COOKIE))
    if decision.status in (401, 403):
        signed_out = decision.status == 401
        return _html(request, decision.status,
                     ("Sign-in required" if signed_out else "Not allowed", decision.text),
                     ("需要登录" if signed_out else "无权访问", decision.text_zh or decision.text))
    response = Response(status_code=decision.status, headers=decision.headers)
    if decision.cookie is not None:
        value, age = decision.cookie
        response.set_cookie(COOKIE, value, max_age=age, path="/", secure=True, httponly=True,
                            samesite="lax")
    response.headers["Cache-Control"] = "no-store"
    return response


@public.get("/api/auth/gateway", include_in_schema=False)
async def gateway_sign_in(request: Request, services: ServicesDep,
                          rd: Annotated[str, Query(max_length=2000)] = "") -> Response:
    """Send a signed-in console user back to a protected app with a one-time ticket."""
    gate = _gate(request, services)
    gate.target(rd)  # 422 before anything else: never a redirect to a foreign place
    cookie = request.cookies.get(SESSION_COOKIE)
    principal = services.auth.session_principal(cookie) if cookie else None
    if principal is None:
        here = f"/api/auth/gateway?rd={quote(rd, safe='')}"
        return Response(status_code=302, headers={
            "Location": f"/login?next={quote(here, safe='')}", "Cache-Control": "no-store"})
    url = gate.ticket(principal, rd)
    if url is None:
        return _html(request, 403, ("Not allowed", f"{principal.name} may not open this app: "
                                    "ask an admin to grant it."),
                     ("无权访问", f"{principal.name} 无权打开此应用：请让管理员授予权限。"))
    return Response(status_code=302, headers={"Location": url, "Cache-Control": "no-store"})


# -- DNS provider and the DNS-01 wildcard ---------------------------------------------------
@router.get("/gateway/dns-providers", response_model=list[ProviderKindRead],
            summary="List DNS provider kinds")
async def provider_kinds() -> list[ProviderKindRead]:
    """List the DNS providers lego can use, their keys, and whether the installed lego has them."""
    return providers.kinds()


@router.get("/gateway/dns-provider", response_model=ProviderRead,
            summary="Show the DNS provider")
async def get_provider(services: ServicesDep) -> ProviderRead:
    """Return the DNS provider's kind and which keys are set (never their values)."""
    return providers.read(services.proxy.providers.get())


@router.put("/gateway/dns-provider", response_model=ProviderRead,
            summary="Set the DNS provider")
async def set_provider(request: ProviderRequest, services: ServicesDep,
                       audit: AuditDep) -> ProviderRead:
    """Store the DNS provider's credentials (0600 under secrets/), replacing any other.

    Bad input (unknown kind, a key the provider does not read, a missing key, a newline in a
    value) is refused with nothing stored.
    """
    stored = services.proxy.providers.set(request.kind, request.env, request.email,
                                          request.zone)
    audit("domain.provider", stored.kind.kind, keys=sorted(stored.env), zone=stored.zone)
    return providers.read(stored)


@router.delete("/gateway/dns-provider", status_code=204, response_class=Response,
               summary="Remove the DNS provider")
async def remove_provider(services: ServicesDep, audit: AuditDep) -> Response:
    """Forget the DNS provider's credentials (a DNS-01 base then cannot renew)."""
    services.proxy.providers.remove()
    audit("domain.provider", "", removed=True)
    return Response(status_code=204)


@router.post("/gateway/wildcard", response_model=WildcardAccepted, status_code=202,
             summary="Use a base with a DNS-01 wildcard")
async def wildcard(request: WildcardRequest, services: ServicesDep,
                   audit: AuditDep) -> WildcardAccepted:
    """Obtain ``*.<base>`` + ``<base>`` by DNS-01 through the provider, then switch to the base.

    An operation (kind ``wildcard``; steps challenge, load, serve, records). Nothing changes if
    it fails.
    """
    accepted = await services.wildcard.obtain(request.base)
    audit("domain.wildcard", accepted.base, operation=accepted.operation.id)
    return accepted


@router.post("/gateway/wildcard/renew", response_model=WildcardAccepted, status_code=202,
             summary="Renew the DNS-01 wildcard now")
async def renew_wildcard(services: ServicesDep, audit: AuditDep) -> WildcardAccepted:
    """Renew the base's wildcard now if it is due (``lego renew``), as the daily check would.

    409 when the base has no DNS-01 wildcard or it is not due (30 days before expiry).
    """
    accepted = services.wildcard.renew_now()
    audit("domain.wildcard", accepted.base, operation=accepted.operation.id, renew=True)
    return accepted


@router.get("/gateway/dns-records", response_model=RecordsRead,
            summary="Show the DNS records StackHub manages")
async def dns_records(services: ServicesDep) -> RecordsRead:
    """Return the records StackHub keeps at the DNS provider and the box's public address."""
    return services.dns_records.read()


@router.post("/gateway/dns-records/sync", response_model=RecordsRead,
             summary="Write the DNS records now")
async def sync_dns_records(services: ServicesDep, audit: AuditDep) -> RecordsRead:
    """Learn the public address, then create or update the records at the provider now.

    409 when no provider that StackHub can write records with is set; 503 when the public
    address cannot be learnt or the provider refuses (the reason is kept in ``error``).
    """
    read = await services.dns_records.sync()
    audit("domain.records", read.zone or "", public_ip=read.public_ip,
          records=len(read.records))
    return read
