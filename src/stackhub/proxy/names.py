"""Domain names: normalise and validate them, and judge what DNS says about a custom domain."""

from __future__ import annotations

import ipaddress
import re

import idna

from stackhub.adapters.dns import Answer
from stackhub.errors import Invalid
from stackhub.proxy.models import DnsCheck, DnsProblem, DnsRecord, TlsMode

LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
LAN_SUFFIXES = ("lan", "local", "home", "internal", "home.arpa", "localdomain", "intranet",
                "corp", "private", "localhost")
"""Suffixes no public CA issues for: a base under one of them uses the internal CA."""
CONSOLE = "console"
LETS_ENCRYPT_CAA = "letsencrypt.org"


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _lengths(name: str, text: str) -> None:
    if len(name) > 253:
        raise Invalid(f"{_shown(text)} is longer than 253 characters")
    for label in name.split("."):
        if len(label) > 63:
            raise Invalid(f"{_shown(text)}: the label {_shown(label)} is longer than 63 "
                          "characters")


def normalise(text: str, *, what: str = "domain") -> str:
    """Return `text` as a lower-case ASCII (punycode) name, or raise Invalid saying why."""
    name = text.strip().rstrip(".")
    if not name:
        raise Invalid(f"the {what} is empty")
    if "*" in name:
        raise Invalid(f"{_shown(text)}: wildcards are not allowed; bind each name on its own")
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        raise Invalid(f"{_shown(text)} is an IP address; a {what} must be a DNS name")
    if name.isascii():
        _lengths(name, text)
    try:
        name = idna.encode(name, uts46=True).decode("ascii").lower()
    except idna.IDNAError as err:
        raise Invalid(f"{_shown(text)} is not a valid {what}: {err}") from err
    _lengths(name, text)
    labels = name.split(".")
    if len(labels) < 2:
        raise Invalid(f"{_shown(text)} needs at least two labels (like example.com)")
    for label in labels:
        if not LABEL.fullmatch(label):
            raise Invalid(f"{_shown(text)}: the label {label!r} may hold only letters, digits "
                          "and '-' (not at either end)")
    if labels[-1].isdigit():
        raise Invalid(f"{_shown(text)} ends in a number; a {what} must end in a name")
    return name


def under(name: str, base: str) -> bool:
    """Tell whether `name` is `base` or below it."""
    return name == base or name.endswith("." + base)


def tls_for(base: str, mode: str) -> TlsMode:
    """Return the TLS mode of a base: as asked, or internal for LAN suffixes when "auto"."""
    if mode != "auto":
        return TlsMode(mode)
    lan = any(under(base, suffix) for suffix in LAN_SUFFIXES)
    return TlsMode.INTERNAL if lan else TlsMode.ACME


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def expected_records(domain: str, automatic: str | None,
                     box: list[str]) -> list[DnsRecord]:
    """Return the records that would point `domain` at this box."""
    records = []
    if automatic is not None:
        records.append(DnsRecord(type="CNAME", name=domain, value=automatic))
    for address in box:
        ip = _ip(address)
        if ip is not None:
            records.append(DnsRecord(type="A" if ip.version == 4 else "AAAA", name=domain,
                                     value=str(ip)))
    return records


def caa_allows(caa: tuple[str, ...], ca_id: str | None) -> bool:
    """Tell whether CAA ``issue`` records (if any) allow the CA known as `ca_id`."""
    issues = []
    for record in caa:
        parts = record.split(None, 2)
        if len(parts) == 3 and parts[1].lower() == "issue":
            issues.append(parts[2].strip('"').split(";")[0].strip().lower())
    if not issues or ca_id is None:
        return True
    return ca_id.lower() in issues


def judge(domain: str, answer: Answer, *, automatic: str | None, box: list[str],
          ca_id: str | None = LETS_ENCRYPT_CAA) -> DnsCheck:
    """Decide whether `answer` points `domain` at this box; if not, say what to create."""
    expected = expected_records(domain, automatic, box)
    wanted = " or ".join(r.text() for r in expected) or "an A record to this box's address"
    check = DnsCheck(domain=domain, ok=False, cnames=list(answer.cnames),
                     addresses=list(answer.addresses), box_addresses=box, expected=expected,
                     record_name=domain)
    ours = {str(ip) for ip in (_ip(a) for a in box) if ip is not None}
    found = {str(ip) for ip in (_ip(a) for a in answer.addresses) if ip is not None}
    if answer.error is not None:
        check.problem_code, check.lookup_error = DnsProblem.LOOKUP_FAILED, answer.error
        check.problem = f"{answer.error}; StackHub could not check {domain}"
        check.fix = "check the domain's DNS servers, then try again"
        return check
    via = answer.cnames[0] if answer.cnames else None
    if (automatic is not None and automatic in answer.cnames) or (found and found <= ours):
        check.ok = True
    elif not answer.cnames and not found:
        check.problem_code = DnsProblem.NO_RECORD
        check.problem = f"{domain} has no DNS record"
        check.fix = f"create {wanted}"
    elif via is not None and not found & ours:
        check.problem_code = DnsProblem.CNAME_ELSEWHERE
        check.problem = (f"{domain} is a CNAME to {via}, which does not lead to this box "
                         f"({', '.join(sorted(found)) or 'no address'})")
        check.fix = f"change it to {wanted}"
    else:
        stray = sorted(found - ours)
        check.problem_code = DnsProblem.POINTS_ELSEWHERE
        check.problem = (f"{domain} points at {', '.join(stray)}, not at this box "
                         f"({', '.join(box) or 'address unknown'})")
        check.fix = f"change the record to {wanted}"
    if check.ok and not caa_allows(answer.caa, ca_id):
        check.ok = False
        check.problem_code, check.ca = DnsProblem.CAA_FORBIDS, ca_id
        check.problem = (f"a CAA record of {domain} forbids the certificate authority "
                         f"({ca_id}) from issuing for it")
        check.fix = f'add a CAA record: {domain}. CAA 0 issue "{ca_id}"'
    return check
