"""Say in plain words why Caddy could not obtain a certificate by HTTP-01.

Caddy logs the ACME exchange's failures (certmagic's texts with the CA's RFC 8555 problem
types); `explain` reads them and names the cause and the fix: the CA refusing the name, CAA,
the rate limit, port 80 unreachable or leading elsewhere, the CA's DNS lookup, the CA itself
unreachable. Caddy's own text stays at the end, in brackets, for whoever digs further; the
code and the values beside the sentence (`DomainFailure`) let the console word it itself.
"""

from __future__ import annotations

import re

from stackhub.proxy.models import DomainError, DomainErrorDetail, DomainFailure

PROBLEM = re.compile(r"urn:ietf:params:acme:error:(\w+)(?: - (.*?))?(?: \((?:ca|order)=|$)")
DIAL = re.compile(r"dial tcp ([^\s:]+|\[[^\]]+\]):(\d+): (?:connect: )?([^\"(\n]+)")
OBTAIN = ("obtain", "certificate", "acme", "challenge", "authorization")


def _problem(text: str) -> tuple[str, str] | None:
    """Return the ACME problem type and detail in `text`, if any."""
    found = PROBLEM.search(text)
    if found is None:
        return None
    return found.group(1), (found.group(2) or "").strip().rstrip(".")


def _ca_unreachable(text: str) -> bool:
    """Tell whether the failure is reaching the CA's directory or account endpoint."""
    return ("provisioning client" in text or "registering account" in text
            or "fetching directory" in text) and "urn:ietf:params:acme:error" not in text


def _dial(text: str) -> str | None:
    """Return a dial failure in `text` as ``ADDRESS:PORT: WHY``, if any."""
    found = DIAL.search(text)
    return f"{found.group(1)}:{found.group(2)}: {found.group(3).strip()}" if found else None


def _failure(text: str, code: DomainError, **values: str) -> DomainFailure:
    """Return the sentence with its code and the values it is worded with (if any)."""
    return DomainFailure(text, code, DomainErrorDetail.model_validate(values) if values else None)


def explain(domain: str, errors: list[str], ca: str) -> DomainFailure | None:
    """Return why `domain`'s certificate could not be obtained, from Caddy's `errors`.

    None when none of them is about obtaining a certificate. The most specific error wins:
    a failed validation (port 80) says more than certmagic's closing "no solvers available".
    """
    relevant = [e for e in errors if any(word in e.lower() for word in OBTAIN)]
    if not relevant:
        return None
    text = "\n".join(relevant)
    kinds: dict[str, str] = {}
    for line in relevant:
        problem = _problem(line)
        if problem is not None:
            kinds.setdefault(problem[0], problem[1])
    raw = next((e for e in relevant if "urn:ietf:params:acme:error" in e), relevant[0])
    said = f" [Caddy: {raw}]"
    if "rejectedIdentifier" in kinds:
        detail = kinds["rejectedIdentifier"]
        return _failure(f"the certificate authority refuses to issue a certificate for "
                        f"{domain}: its policy forbids this name ({detail}); use another "
                        f"name{said}", DomainError.REJECTED_IDENTIFIER, detail=detail)
    if "caa" in kinds:
        return _failure(f"a CAA record of {domain} (or of a parent domain) forbids the "
                        f"certificate authority: add a CAA record allowing it, or remove the "
                        f"CAA records{said}", DomainError.CAA)
    if "rateLimited" in kinds:
        detail = kinds["rateLimited"]
        return _failure(f"the certificate authority's rate limit is reached for {domain} "
                        f"({detail}): wait (Let's Encrypt allows 5 failed validations per name"
                        f" per hour) and add the domain again{said}", DomainError.RATE_LIMITED,
                        detail=detail)
    connection = kinds.get("connection")
    if connection is None and "challenge failed" in text and _dial(text):
        connection = text  # the validation's own line, before the CA's problem is logged
    if connection is not None:
        where = _dial(connection) or connection
        return _failure(f"the certificate authority could not connect to port 80 of this box "
                        f"at {domain} ({where}): open port 80 in the firewall and forward it "
                        f"to this box on the router; HTTP-01 needs it (or use a DNS provider "
                        f"and tls dns01){said}", DomainError.PORT80_UNREACHABLE, detail=where)
    if "unauthorized" in kinds or "incorrectResponse" in kinds:
        return _failure(f"the certificate authority reached {domain} on port 80, but not this "
                        f"box's gateway (the answer did not match): make sure port 80 is "
                        f"forwarded to this box and not to another server{said}",
                        DomainError.PORT80_ELSEWHERE)
    if "dns" in kinds:
        return _failure(f"the certificate authority could not look up {domain} "
                        f"({kinds['dns']}): check its DNS record (stackhub domain check "
                        f"{domain}){said}", DomainError.CA_DNS, detail=kinds["dns"])
    if _ca_unreachable(text):
        return _unreachable(text, ca, said)
    if kinds:
        kind, detail = next(iter(kinds.items()))
        values = {"problem": kind, **({"detail": detail} if detail else {})}
        return _failure(f"the certificate authority refused the certificate for {domain}: "
                        f"{kind}{f' ({detail})' if detail else ''}{said}",
                        DomainError.CA_REFUSED, **values)
    return _failure(f"the certificate for {domain} could not be obtained: {raw}",
                    DomainError.NOT_OBTAINED, detail=raw)


def _unreachable(text: str, ca: str, said: str) -> DomainFailure:
    """Return the CA unreachable from this box (or its TLS certificate not trusted)."""
    fix = "check STACKHUB_ACME_CA and that the box can open outgoing HTTPS connections"
    if "x509" in text or "certificate signed by unknown authority" in text:
        return _failure(f"the certificate authority {ca} cannot be reached from this box (its "
                        f"TLS certificate is not trusted: set STACKHUB_ACME_CA_ROOT): {fix}"
                        f"{said}", DomainError.CA_UNTRUSTED, ca=ca)
    dial = _dial(text)
    why = f" ({dial})" if dial else ""
    return _failure(f"the certificate authority {ca} cannot be reached from this box{why}: "
                    f"{fix}{said}", DomainError.CA_UNREACHABLE, ca=ca,
                    **({"detail": dial} if dial else {}))
