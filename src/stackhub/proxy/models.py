"""Schemas of the proxy domain: the base domain, domains, DNS checks and the gateway's state."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from stackhub.apps.models import NAME_PATTERN, OperationRead


class TlsMode(StrEnum):
    """Where the certificates of the base's names come from."""

    INTERNAL = "internal"
    ACME = "acme"
    DNS01 = "dns01"


class DomainKind(StrEnum):
    """An automatic name (``<instance>.<base>``) or a custom domain bound by an admin."""

    AUTOMATIC = "automatic"
    CUSTOM = "custom"


class DomainState(StrEnum):
    """Where a domain stands."""

    ACTIVE = "active"
    PENDING = "pending"
    FAILED = "failed"
    DANGLING = "dangling"


class DnsStatus(StrEnum):
    """What the last DNS check of a name found."""

    OK = "ok"
    MISSING = "missing"
    WRONG = "wrong"
    UNCHECKED = "unchecked"


class DnsProblem(StrEnum):
    """Why a DNS check failed, for clients that word it themselves (`DnsCheck.problem` is
    the English sentence)."""

    LOOKUP_FAILED = "lookup_failed"
    NO_RECORD = "no_record"
    CNAME_ELSEWHERE = "cname_elsewhere"
    POINTS_ELSEWHERE = "points_elsewhere"
    CAA_FORBIDS = "caa_forbids"


class DomainError(StrEnum):
    """Why a domain has its `error`, for clients that word it themselves (`DomainRead.error`
    is the English sentence)."""

    REJECTED_IDENTIFIER = "rejected_identifier"
    CAA = "caa"
    RATE_LIMITED = "rate_limited"
    PORT80_UNREACHABLE = "port80_unreachable"
    PORT80_ELSEWHERE = "port80_elsewhere"
    CA_DNS = "ca_dns"
    CA_UNREACHABLE = "ca_unreachable"
    CA_UNTRUSTED = "ca_untrusted"
    CA_REFUSED = "ca_refused"
    NOT_OBTAINED = "not_obtained"
    HTTPS_TIMEOUT = "https_timeout"
    DNS_TIMEOUT = "dns_timeout"
    DNS_REFUSED = "dns_refused"
    DANGLING = "dangling"
    INTERRUPTED = "interrupted"
    APP_UNAVAILABLE = "app_unavailable"
    APP_NOT_ANSWERING = "app_not_answering"
    INSTANCE_REMOVED = "instance_removed"
    APP_STOPPED = "app_stopped"
    APP_NO_WEB = "app_no_web"
    APP_NO_PORT = "app_no_port"
    GATEWAY_DOWN = "gateway_down"
    GATEWAY_STOPPED = "gateway_stopped"
    GATEWAY_OFF = "gateway_off"


class GatewayRead(BaseModel):
    """The gateway (Caddy) as StackHub sees it."""

    enabled: bool = Field(description="Whether StackHub runs the gateway: STACKHUB_GATEWAY=1, "
                          "or a base domain or a custom domain exists (STACKHUB_GATEWAY=0 "
                          "turns it off).")
    available: bool = Field(description="Whether Caddy is installed (or a system Caddy is "
                            "named by STACKHUB_CADDY_ADMIN).")
    running: bool
    mode: Literal["child", "system"] = Field(description="child: StackHub runs Caddy; system: "
                                             "a Caddy StackHub found through its admin socket.")
    http_port: int
    https_port: int
    restarts: int = Field(description="How often StackHub started Caddy again after it died "
                          "or hung (killed first).")
    error: str | None = Field(default=None, description="The last reason the gateway could "
                              "not be started or loaded.")


class BaseRequest(BaseModel):
    """Set the base domain every instance gets a name under."""

    base: str = Field(min_length=1, max_length=253, description="e.g. box.example.com or "
                      "home.lan")
    tls: Literal["auto", "internal", "acme"] = Field(
        default="auto", description="internal: StackHub's own CA (LAN names; download its "
        "root from GET /api/domains/ca); acme: the ACME CA (public names); auto: internal for "
        "LAN suffixes (.lan, .home, .internal, .local, .home.arpa...), acme otherwise.")


class BaseRead(BaseModel):
    """The base domain and the gateway."""

    base: str | None
    tls: TlsMode | None
    console: str | None = Field(description="The console's name under the base "
                                "(console.<base>).")
    gateway: GatewayRead
    wildcard: WildcardRead | None = Field(default=None, description="The wildcard certificate "
                                          "(tls dns01 only).")
    dns: DnsCheck | None = Field(default=None, description="Whether the *.<base> record "
                                 "reaches this box, as last checked (tls acme only: HTTP-01 "
                                 "needs it; a base can be set before DNS is ready, so a "
                                 "wrong record is a warning with the record to create).")


class DnsRecord(BaseModel):
    """A DNS record to create."""

    type: Literal["CNAME", "A", "AAAA"]
    name: str
    value: str

    def text(self) -> str:
        """Return the record in zone-file form."""
        return f"{self.name}. {self.type} {self.value}{'.' if self.type == 'CNAME' else ''}"


class DnsCheck(BaseModel):
    """What DNS says about a domain, whether it reaches this box, and the fix if not."""

    domain: str
    ok: bool
    cnames: list[str] = Field(description="The CNAME chain found, in order.")
    addresses: list[str] = Field(description="The A/AAAA addresses at the end of the chain.")
    box_addresses: list[str] = Field(description="This box's addresses (STACKHUB_PUBLIC_"
                                     "ADDRESS, else its interfaces').")
    expected: list[DnsRecord] = Field(description="Records that would make the domain reach "
                                      "this box (one of them is enough).")
    problem: str | None = Field(default=None, description="Why the domain does not reach "
                                "this box, in English.")
    fix: str | None = Field(default=None, description="What to do about it, in English, with "
                            "the exact record to create.")
    problem_code: DnsProblem | None = Field(
        default=None, description="The problem as a code (None when ok): lookup_failed "
        "(lookup_error says why; nothing is known about the records), no_record, "
        "cname_elsewhere (cnames[0] does not lead to box_addresses), points_elsewhere "
        "(addresses that are not box_addresses), caa_forbids (a CAA record forbids the CA "
        "`ca`; the fix is the CAA record `<domain>. CAA 0 issue \"<ca>\"`). With the other "
        "fields it lets a client word problem and fix in its own language.")
    record_name: str | None = Field(default=None, description="The name the problem is "
                                    "about, as people know it: the domain, or *.<base> for "
                                    "the wildcard check (whose `domain` is a probe under it).")
    lookup_error: str | None = Field(default=None, description="Why the lookup failed "
                                     "(lookup_failed only; the resolver's English text).")
    ca: str | None = Field(default=None, description="The CA a CAA record forbids "
                           "(caa_forbids only), e.g. letsencrypt.org.")


class DomainErrorDetail(BaseModel):
    """The values a domain's error is worded with (each code uses a few; the rest are None)."""

    detail: str | None = Field(default=None, description="The certificate authority's own "
                               "words (rejected_identifier, rate_limited, ca_dns, ca_refused),"
                               " the failed connection as ADDRESS:PORT: WHY "
                               "(port80_unreachable, ca_unreachable) or the gateway's reason "
                               "(gateway_down), verbatim.")
    ca: str | None = Field(default=None, description="The certificate authority's directory "
                           "URL (ca_unreachable, ca_untrusted).")
    problem: str | None = Field(default=None, description="The ACME problem type the CA "
                                "answered, e.g. badCSR (ca_refused).")
    seconds: int | None = Field(default=None, description="How long StackHub waited "
                                "(https_timeout, dns_timeout).")
    record: str | None = Field(default=None, description="The record StackHub created at the "
                               "DNS provider, in zone-file form (dns_timeout).")
    status: str | None = Field(default=None, description="The gateway page's status line "
                               "(app_unavailable, app_not_answering).")
    dns: DnsCheck | None = Field(default=None, description="The DNS check that failed "
                                 "(dangling, dns_timeout, dns_refused): its problem_code and "
                                 "values word the DNS part.")


@dataclass(frozen=True)
class DomainFailure:
    """A domain's error: the English sentence, its code and the values it is worded with."""

    text: str
    code: DomainError
    detail: DomainErrorDetail | None = None


class DomainRead(BaseModel):
    """A name the gateway serves."""

    name: str
    instance: str
    kind: DomainKind
    state: DomainState
    url: str
    target: str | None = Field(default=None, description="Where the gateway sends requests "
                               "(127.0.0.1:<host port>); None while the app is stopped or has "
                               "no web port.")
    tls: TlsMode
    issuer: str | None = Field(default=None, description="The certificate's issuer, as last "
                               "checked.")
    expires_at: str | None = Field(default=None, description="When the certificate expires, "
                                   "as last checked (ISO 8601 UTC).")
    checked_at: str | None = None
    error: str | None = Field(default=None, description="Why the domain does not serve the "
                              "app, in English (the last failure, or the app's or gateway's "
                              "state).")
    error_code: DomainError | None = Field(
        default=None, description="The error as a code, None when there is no error (or for "
        "an error recorded before codes existed: show `error`). Certificates (HTTP-01): "
        "rejected_identifier (the CA's policy forbids the name), caa, rate_limited, "
        "port80_unreachable, port80_elsewhere (port 80 leads to another server), ca_dns (the "
        "CA could not look the name up), ca_unreachable, ca_untrusted (the CA's TLS "
        "certificate is not trusted: STACKHUB_ACME_CA_ROOT), ca_refused (another ACME "
        "problem), not_obtained (Caddy's failure, not recognised), https_timeout; DNS: "
        "dns_timeout (a record StackHub created did not lead here in time), dns_refused, "
        "dangling (the DNS no longer reaches this box); interrupted (StackHub stopped while "
        "binding); the app: app_unavailable, app_not_answering (bound, but the gateway shows "
        "its own page), instance_removed, app_stopped, app_no_web, app_no_port; the gateway: "
        "gateway_down (detail says why), gateway_stopped, gateway_off (off until a domain "
        "exists). With error_detail and the domain's name and instance it lets a client word "
        "the error in its own language.")
    error_detail: DomainErrorDetail | None = Field(default=None, description="The values "
                                                   "error_code is worded with.")
    created_at: str | None = None
    expires_in_days: int | None = Field(default=None, description="Whole days until the "
                                        "certificate expires (negative once expired).")
    warning: str | None = Field(default=None, description="Set when the certificate expires "
                                "within 14 days (or has expired): renewals are automatic, "
                                "so this means they are failing.")
    protected: bool = Field(default=False, description="Whether StackHub's sign-in guards "
                            "this name (stackhub app protect).")
    dns_status: DnsStatus | None = Field(default=None, description="What the last DNS "
                                         "check found: ok (leads to this box), missing (no "
                                         "record), wrong (points elsewhere, or CAA forbids the "
                                         "CA), unchecked (not looked up, or the lookup failed). "
                                         "For automatic names: the *.<base> record's check, "
                                         "None when it was never checked.")
    record: DnsRecord | None = Field(default=None, description="The record to create when "
                                     "dns_status is missing or wrong (a CNAME to the app's "
                                     "automatic name when a base is set, else an A/AAAA "
                                     "record to this box's address).")


class DomainRequest(BaseModel):
    """Bind a custom domain to an instance."""

    instance: str = Field(pattern=NAME_PATTERN, max_length=40)
    domain: str = Field(min_length=1, max_length=300, description="e.g. cloud.example.com; "
                        "IDN names are converted to punycode, case is ignored.")


class DomainAccepted(BaseModel):
    """The answer to a domain request: the operation obtaining the certificate."""

    operation: OperationRead
    instance: str
    domain: str


class ProtectionRequest(BaseModel):
    """Put an app behind StackHub's sign-in, or take it out."""

    protected: bool = Field(description="true: only signed-in users allowed to see the app "
                            "(admins, members granted it) reach it through the gateway.")


class ProtectionRead(BaseModel):
    """Whether an app is behind StackHub's sign-in, and where that applies."""

    instance: str
    protected: bool
    hosts: list[str] = Field(description="The gateway names the sign-in guards.")
    warning: str | None = Field(default=None, description="What the sign-in does not cover "
                                "(e.g. no gateway name yet; the app's own port).")
    local_port: int | None = Field(default=None, description="The app's web port, now "
                                   "published on 127.0.0.1 only (not reachable from other "
                                   "machines without the gateway's sign-in).")
    operation: str | None = Field(default=None, description="The `protect` operation that "
                                  "made this change (in the activity list); None when read.")


class RecheckRead(BaseModel):
    """The outcome of re-checking custom domains (DNS) and certificates."""

    checked: int
    dangling: list[str] = Field(description="Custom domains whose DNS no longer reaches this "
                                "box (or whose app is gone).")
    expiring: list[str] = Field(description="Names whose certificate expires within 14 days.")
    checked_at: str


class ProviderKindRead(BaseModel):
    """A DNS provider StackHub can use, and the variables lego reads for it."""

    kind: str
    lego: str = Field(description="lego's name for the provider.")
    title: str
    required: list[list[str]] = Field(description="One of these sets of keys must be given.")
    keys: list[str] = Field(description="Every key the provider accepts.")
    available: bool = Field(description="Whether DNS-01 works with this provider here (in "
                            "the installed lego, or through its exec provider and lexicon).")
    via_exec: bool = Field(default=False, description="DNS-01 runs through lego's exec "
                           "provider and StackHub's lexicon hook (this lego lacks it).")
    records: bool = Field(default=False, description="StackHub can create and update DNS "
                          "records with this provider (dns-lexicon).")


class ProviderRequest(BaseModel):
    """Set the DNS provider (replacing any other) and its credentials."""

    kind: str = Field(min_length=1, max_length=40, description="cloudflare, alidns, "
                      "tencentcloud, dnspod, route53, rfc2136, pdns, httpreq or exec.")
    env: dict[str, str] = Field(max_length=20, description="The provider's variables "
                                "(e.g. CF_DNS_API_TOKEN); stored 0600, never shown again.")
    email: str | None = Field(default=None, max_length=320, description="The account email "
                              "at the CA (default: STACKHUB_ACME_EMAIL).")
    zone: str | None = Field(default=None, max_length=253, description="The DNS zone the "
                             "provider manages (default: the base domain's last two labels).")


class ProviderRead(BaseModel):
    """The DNS provider: its kind and which keys are set (never their values)."""

    kind: str | None
    lego: str | None
    keys: list[str]
    email: str | None
    updated_at: str | None
    zone: str | None = Field(default=None, description="The DNS zone the provider manages.")
    records: bool = Field(default=False, description="StackHub creates and updates DNS "
                          "records with this provider (dns-lexicon).")
    via_exec: bool = Field(default=False, description="DNS-01 runs through lego's exec "
                           "provider and StackHub's lexicon hook.")


class WildcardRequest(BaseModel):
    """Use `base` with one wildcard certificate obtained by DNS-01 through the provider."""

    base: str = Field(min_length=1, max_length=253, description="e.g. box.example.com")


class WildcardRead(BaseModel):
    """The wildcard certificate of the base."""

    names: list[str]
    issuer: str | None = None
    expires_at: str | None = None
    expires_in_days: int | None = None
    renew_from: str | None = Field(default=None, description="When the daily check renews "
                                   "it (30 days before expiry).")
    warning: str | None = None
    records: list[DnsRecord] = Field(default_factory=list, description="The records to "
                                     "create at the DNS provider so the names reach this "
                                     "box (StackHub does not create them itself).")
    error: str | None = Field(default=None, description="The last renewal's error.")
    dns: DnsCheck | None = Field(default=None, description="Whether a name under the base "
                                 "reaches this box, as last checked (after obtaining it).")


class WildcardAccepted(BaseModel):
    """The answer to a wildcard request: the operation obtaining it."""

    operation: OperationRead
    base: str
BaseRead.model_rebuild()


class PublishedRecord(BaseModel):
    """One DNS record StackHub keeps at the DNS provider."""

    name: str
    type: str = Field(description="A, AAAA or CNAME.")
    content: str
    published: bool = Field(description="Whether the provider has it as shown (last sync).")


class RecordsRead(BaseModel):
    """The DNS records StackHub manages at the provider, and the box's public address."""

    managed: bool = Field(description="Whether the DNS provider lets StackHub manage records.")
    zone: str | None
    public_ip: str | None = Field(description="The public address last learnt.")
    source: str = Field(description="Where the public address is learnt "
                        "(STACKHUB_PUBLIC_IP_URL).")
    checked_at: str | None
    synced_at: str | None
    records: list[PublishedRecord]
    error: str | None
