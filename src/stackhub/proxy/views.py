"""HTTP routes of the proxy domain: base domain, domains, DNS checks, the internal CA's root.

Every route here is admin-only (none is in api/deps.MEMBER_ROUTES), except Caddy's on-demand
``ask`` (`public`), which answers only a caller holding the random token of the loaded config.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from stackhub.api.deps import AuditDep, ServicesDep
from stackhub.apps.models import check_name
from stackhub.errors import NotFound
from stackhub.proxy.models import (
    BaseRead,
    BaseRequest,
    DnsCheck,
    DomainAccepted,
    DomainRead,
    DomainRequest,
    GatewayRead,
)

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
    """Unbind a custom domain from its instance; the gateway stops serving it."""
    services.proxy.unbind(check_name(instance), domain)
    services.proxy.schedule()
    audit("domain.remove", domain, instance=instance)
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
