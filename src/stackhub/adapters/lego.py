"""The one lego adapter: DNS-01 certificates from Debian's ``lego`` run as a child process.

lego is given an argument list (never a shell string); the DNS provider's credentials reach it
only through its environment, which holds nothing of the server's own environment. Its output
is translated at the boundary into a reason a user understands (`explain`), with every
credential value masked first. Certificates land in ``<path>/certificates/_.<base>.crt|key``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from stackhub.adapters.compose import _die_with_parent, death_pact
from stackhub.errors import (
    CaRefused,
    DnsPropagationTimeout,
    DnsProviderRefused,
    GatewayUnavailable,
    StackHubError,
)

RENEW_DAYS = 30
"""Renew a certificate when fewer days than this are left (lego's ``renew --days``)."""
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ProviderKind:
    """A DNS provider StackHub offers, as lego names it and the variables it reads."""

    kind: str
    lego: str
    title: str
    required: tuple[tuple[str, ...], ...]
    """Alternatives: one of these sets of keys must be given in full."""
    optional: tuple[str, ...] = ()
    prefix: str = ""
    """The prefix of lego's common tuning variables (_PROPAGATION_TIMEOUT, _TTL...)."""

    def variables(self) -> tuple[str, ...]:
        """Return every key this kind accepts."""
        tuning = tuple(f"{self.prefix}_{s}" for s in (
            "PROPAGATION_TIMEOUT", "POLLING_INTERVAL", "TTL", "SEQUENCE_INTERVAL",
            "HTTP_TIMEOUT")) if self.prefix else ()
        found: list[str] = []
        for key in (*(k for group in self.required for k in group), *self.optional, *tuning):
            if key not in found:
                found.append(key)
        return tuple(found)


KINDS: dict[str, ProviderKind] = {p.kind: p for p in (
    ProviderKind("cloudflare", "cloudflare", "Cloudflare",
                 (("CF_DNS_API_TOKEN",), ("CF_API_EMAIL", "CF_API_KEY")),
                 ("CF_ZONE_API_TOKEN",), "CLOUDFLARE"),
    ProviderKind("alidns", "alidns", "Alibaba Cloud DNS (Aliyun)",
                 (("ALICLOUD_ACCESS_KEY", "ALICLOUD_SECRET_KEY"),),
                 ("ALICLOUD_SECURITY_TOKEN", "ALICLOUD_REGION_ID"), "ALICLOUD"),
    ProviderKind("tencentcloud", "tencentcloud", "Tencent Cloud DNS",
                 (("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"),),
                 ("TENCENTCLOUD_REGION",), "TENCENTCLOUD"),
    ProviderKind("dnspod", "dnspod", "DNSPod", (("DNSPOD_API_KEY",),), (), "DNSPOD"),
    ProviderKind("route53", "route53", "Amazon Route 53",
                 (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),),
                 ("AWS_REGION", "AWS_HOSTED_ZONE_ID"), "AWS"),
    ProviderKind("rfc2136", "rfc2136", "RFC 2136 (BIND, Knot, PowerDNS...)",
                 (("RFC2136_NAMESERVER",),),
                 ("RFC2136_TSIG_KEY", "RFC2136_TSIG_SECRET", "RFC2136_TSIG_ALGORITHM"),
                 "RFC2136"),
    ProviderKind("pdns", "pdns", "PowerDNS API", (("PDNS_API_URL", "PDNS_API_KEY"),),
                 ("PDNS_SERVER_NAME",), "PDNS"),
    ProviderKind("httpreq", "httpreq", "HTTP request (your own endpoint)",
                 (("HTTPREQ_ENDPOINT",),), ("HTTPREQ_MODE", "HTTPREQ_USERNAME",
                                            "HTTPREQ_PASSWORD"), "HTTPREQ"),
    ProviderKind("exec", "exec", "A program of yours (lego's exec provider)",
                 (("EXEC_PATH",),), ("EXEC_MODE",), "EXEC"),
)}
ALIASES = {"dnspod-tencent": "tencentcloud", "aliyun": "alidns", "powerdns": "pdns"}


def binary() -> str | None:
    """Return the lego program's path (STACKHUB_LEGO_BIN, else PATH), or None."""
    return os.environ.get("STACKHUB_LEGO_BIN") or shutil.which("lego")


@functools.cache
def _built_in(path: str, mtime: float) -> frozenset[str]:
    del mtime  # part of the cache key: a replaced binary is read again
    try:
        data = Path(path).read_bytes()
    except OSError:
        return frozenset()
    if b"providers/dns/" not in data:  # not a Go build we can read (a wrapper): lego will say
        return frozenset(k.lego for k in KINDS.values())
    return frozenset(k.lego for k in KINDS.values()
                     if f"providers/dns/{k.lego}.New".encode() in data)


def supported(kind: ProviderKind, program: str | None = None) -> bool:
    """Tell whether the installed lego was built with `kind`'s provider.

    Debian's lego 4.9.1 leaves out providers whose Go libraries Debian does not package
    (cloudflare, alidns, tencentcloud, dnspod); a provider compiled in leaves its package
    path in the binary.
    """
    program = program or binary()
    if program is None:
        return False
    with contextlib.suppress(OSError):
        return kind.lego in _built_in(program, Path(program).stat().st_mtime)
    return False


@dataclass(frozen=True)
class Request:
    """One lego run: obtain (``run``) or renew a wildcard for `base`."""

    base: str
    email: str
    ca: str
    path: Path
    provider: str
    """lego's provider name (`ProviderKind.lego`)."""
    resolvers: tuple[str, ...] = ()
    propagation_check: bool = True
    renew: bool = False
    renew_days: int = RENEW_DAYS


def arguments(request: Request) -> list[str]:
    """Return lego's argument list (without the program): user values as ``--flag=value``."""
    args = ["--accept-tos", f"--email={request.email}", f"--server={request.ca}",
            f"--path={request.path}", "--key-type=ec256", f"--dns={request.provider}"]
    args += [f"--dns.resolvers={r}" for r in request.resolvers]
    if not request.propagation_check:
        args.append("--dns.disable-cp")
    args += [f"--domains=*.{request.base}", f"--domains={request.base}"]
    if request.renew:
        args += ["renew", f"--days={request.renew_days}", "--no-random-sleep"]
    else:
        args.append("run")
    return args


def environment(credentials: Mapping[str, str], *, roots: tuple[str, ...] = (),
                home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return lego's whole environment: a fixed PATH, HOME, the CA roots, the credentials.

    `extra` holds settings that are not secret (the exec hook's path, kind and zone).
    """
    env = {"PATH": SAFE_PATH, "HOME": str(home), "LANG": "C.UTF-8"}
    if roots:
        env["LEGO_CA_CERTIFICATES"] = os.pathsep.join(roots)
    env.update(extra or {})
    env.update(credentials)
    return env


def mask(text: str, secrets: Mapping[str, str]) -> str:
    """Replace every credential value (4 characters or more) in `text` with ***."""
    for value in sorted(secrets.values(), key=len, reverse=True):
        if len(value) >= 4:
            text = text.replace(value, "***")
    return text


_LOG = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (?P<text>.*)$")
_TAGGED = re.compile(r"^\[(INFO|WARN|ERROR|DEBUG)\]")
_ACME = re.compile(r"urn:ietf:params:acme:error:(?P<type>[A-Za-z]+) :: (?P<detail>.+)$")



def _lines(output: str) -> list[str]:
    found = []
    for raw in output.splitlines():
        line = raw.strip()
        match = _LOG.match(line)
        found.append(match.group("text").strip() if match else line)
    return [line for line in found if line]


def _said(lines: list[str]) -> list[str]:
    """Return what the provider's own program printed (exec: lines lego did not tag)."""
    noise = ("No key found", "Saved key", "Could not obtain", "error:", "[", "Your account",
             "configuration directory", "You should make", "backups of this", "!!!!")
    return [line for line in lines if not _TAGGED.match(line)
            and not line.startswith(noise) and "acme:" not in line]


def explain(output: str, provider: str) -> StackHubError:
    """Turn lego's output (a failed run) into the error a user understands."""
    lines = _lines(output)
    text = "\n".join(lines)
    unknown = re.search(r"unrecognized DNS provider: (\S+)", text)
    if unknown:
        return DnsProviderRefused(
            f"this lego was built without the {unknown.group(1)} provider (Debian's lego "
            "4.9.1 lacks cloudflare, alidns, tencentcloud and dnspod): install lego from "
            "https://github.com/go-acme/lego/releases and set STACKHUB_LEGO_BIN, or use "
            "rfc2136, route53, pdns, httpreq or exec")
    missing = re.search(r"some credentials information are missing: (\S+)", text)
    if missing:
        return DnsProviderRefused(f"the {provider} provider needs {missing.group(1)}: set "
                                  "it with `stackhub domain provider set`")
    for line in lines:
        if "time limit exceeded" in line:
            detail = line.split("last error:", 1)[-1].strip()
            return DnsPropagationTimeout(
                "the challenge TXT record did not appear in DNS in time (propagation "
                f"timeout): {detail}; check that the provider manages this zone, or raise "
                f"the provider's _PROPAGATION_TIMEOUT")
    for line in lines:
        acme = _ACME.search(line)
        if acme:
            kind, detail = acme.group("type"), acme.group("detail").strip()
            hint = {"rateLimited": "; wait before trying again",
                    "caa": "; a CAA record of the domain forbids this CA",
                    "unauthorized": "; the CA did not see the expected TXT record",
                    "dns": "; the CA could not resolve the challenge record"}.get(kind, "")
            return CaRefused(f"the CA refused the certificate ({kind}): {detail}{hint}")
    for line in lines:
        if "error presenting token" in line:
            detail = line.split("error presenting token:", 1)[-1].strip()
            said = _said(lines)
            extra = f" ({'; '.join(dict.fromkeys(said))[:300]})" if said else ""
            return DnsProviderRefused(f"the DNS provider ({provider}) refused to create the "
                                      f"challenge TXT record: {detail}{extra}")
    for line in lines:
        if line.startswith("Could not create client") or "get directory at" in line:
            return CaRefused(f"the CA could not be reached: {line.split(': ', 1)[-1]}")
    last = lines[-1] if lines else "no output"
    return CaRefused(f"lego failed: {last}")


@dataclass(frozen=True)
class Outcome:
    """A finished lego run."""

    code: int
    output: str


async def run(request: Request, credentials: Mapping[str, str], *, roots: tuple[str, ...] = (),
              timeout: float = 600.0, program: str | None = None,
              extra: Mapping[str, str] | None = None) -> Outcome:
    """Run lego for `request` with the credentials in its environment only; return its output.

    Raises GatewayUnavailable when lego is missing or does not finish in `timeout` seconds.
    The output has every credential value masked.
    """
    program = program or binary()
    if program is None:
        raise GatewayUnavailable("lego is not installed (apt-get install lego, or set "
                                 "STACKHUB_LEGO_BIN): it obtains wildcard certificates by "
                                 "DNS-01")
    request.path.mkdir(parents=True, exist_ok=True)
    request.path.chmod(0o700)
    pact = death_pact()
    try:
        proc = await asyncio.create_subprocess_exec(
            *pact, program, *arguments(request), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=environment(credentials, roots=roots, home=request.path, extra=extra),
            cwd=str(request.path), preexec_fn=None if pact else _die_with_parent)
    except OSError as err:
        raise GatewayUnavailable(f"cannot run {program}: {err}") from err
    try:
        raw, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    return Outcome(code=proc.returncode or 0,
                   output=mask(raw.decode(errors="replace"), credentials))


def files(path: Path, base: str) -> tuple[Path, Path]:
    """Return where lego keeps the wildcard's certificate (full chain) and key."""
    stem = path / "certificates" / f"_.{base}"
    return stem.with_name(stem.name + ".crt"), stem.with_name(stem.name + ".key")


@dataclass(frozen=True)
class Pair:
    """A certificate (full chain, PEM) and its key, with what the leaf says."""

    certificate: str
    key: str
    issuer: str
    not_before: datetime
    not_after: datetime
    names: tuple[str, ...]


def read(path: Path, base: str) -> Pair | None:
    """Return the wildcard lego obtained for `base`, or None."""
    crt, key = files(path, base)
    try:
        chain, secret = crt.read_text(), key.read_text()
        from cryptography import x509  # 7.7 MB resident: only once there is a certificate

        leaf = x509.load_pem_x509_certificate(chain.encode())
    except (OSError, ValueError):
        return None
    issuer = ", ".join(str(a.value) for a in leaf.issuer if a.oid in (
        x509.NameOID.COMMON_NAME, x509.NameOID.ORGANIZATION_NAME))
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = tuple(san.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    return Pair(chain, secret, issuer, leaf.not_valid_before_utc, leaf.not_valid_after_utc,
                names)
