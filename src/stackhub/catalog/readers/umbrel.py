"""Read Umbrel apps (``<id>/umbrel-app.yml`` + ``docker-compose.yml``), never running them.

Mapping (see docs/store-formats.md):

- the ``app_proxy`` service is dropped; its ``APP_HOST`` (a container name such as
  ``<id>_web_1``, a service name, or an IP variable from ``exports.sh``) is resolved to a
  service, whose ``APP_PORT`` is published on the ``APP_PORT`` port parameter, defaulting to the
  manifest's ``port``. Without a proxy, the service publishing the manifest port is the main one.
- every service also answers to its Umbrel container name ``<id>_<service>_1`` (a network alias)
  since Umbrel apps address each other that way; fixed ``ipv4_address`` pins are removed (the
  project network has no fixed subnet) and ``exports.sh`` IPs of this app's services become the
  service names.
- ``APP_DATA_DIR`` is native. ``APP_PASSWORD`` and ``APP_SEED`` become ``secret`` parameters
  (generated once, kept); ``DEVICE_HOSTNAME`` a ``host`` parameter (default ``localhost``) and
  ``DEVICE_DOMAIN_NAME``/``APP_DOMAIN`` derived from it; ``APP_VERSION`` the manifest version;
  ``UMBREL_ROOT`` -> ``${APP_DATA_DIR}/umbrel`` (shared storage stays inside the instance);
  ``APP_HIDDEN_SERVICE`` empty (no Tor); ``NETWORK_IP`` ``172.16.0.0``.
- ``exports.sh`` is read as data when it holds only ``export NAME="value"`` lines (values may use
  ``${EXPORTS_APP_DIR}``, earlier exports and the variables above); otherwise (at most 64 KiB)
  it is carried in the app's ``scripts`` and run in StackHub's store-script sandbox at install
  (apps/scripts.py), the names it visibly exports being placeholders until then; it blocks the
  install only if the compose file needs variables nobody supplies, not even visibly.
- files under ``data/`` (seeds) and ``*.template`` files become the app's ``files``, written
  into the instance's data folder when it is created (never over existing files); a template's
  variables are filled from the instance's values, as Umbrel's envsubst would. Only UTF-8 text
  files of at most 64 KiB (512 KiB per app) are carried.
- ``hooks/pre-start`` (UTF-8, at most 256 KiB) is carried in ``scripts`` too and run in the
  sandbox before the project starts (never on the host); ``hooks/post-install`` and
  ``post-start`` likewise, after StackHub started the accepted project, with the compose
  proxy (apps/hookproxy.py: commands in the app's own services only).
- ``dependencies`` are installed first (the planner refuses until they are; the CLI's
  ``--with-deps`` installs them); the ``APP_<DEP>_*`` variables the app uses become
  ``imports``, filled at plan time from the dependency's instance. Services whose fixed IP an
  export names (``ipv4_address: $APP_X_NODE_IP``) join the app's own ``stackhub_link``
  network with their Umbrel container names as aliases (``exposes``); a dependent joins that
  network and gets the alias in place of the IP. detect.py marks an app whose dependency the
  store lacks or cannot install.
- problems: ``torOnly``, ``disabled``, ``hooks/pre-install`` (never executed: the store's
  two edit the host's DNS settings or read its memory and kill the installer), a mounted
  seed or template that is binary or too large, required variables nobody supplies
  (Umbrel's Tor proxy variables: "needs Tor"), ``build:``, no image.
  Notes: other hooks, Umbrel's login in front of the app (``PROXY_AUTH_ADD``), default
  credentials, permissions, seed files not carried, template variables nobody sets.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stackhub import yamlsafe
from stackhub.catalog.models import (
    APP_ID,
    AppDefinition,
    AppFile,
    AppFormat,
    Parameter,
    ParameterType,
    SecretEncoding,
    WebEntry,
)
from stackhub.catalog.readers import common
from stackhub.catalog.readers.common import Draft, PortPlan
from stackhub.errors import Invalid, TooLarge
from stackhub.platform import PLATFORM_VARS, data_file, env_files, substitute

MANIFEST_FILE = "umbrel-app.yml"
COMPOSE_FILE = "docker-compose.yml"
EXPORTS_FILE = "exports.sh"
STORE_FILE = "umbrel-app-store.yml"
PROXY = "app_proxy"
LINK_NETWORK = "stackhub_link"
"""The network an app's dependents join (apps/planner.py names it for them)."""
BLOCKING_HOOKS = frozenset({"pre-install", "post-install", "pre-start", "post-start"})
SANDBOXED_HOOKS = frozenset({"pre-start", "post-install", "post-start"})
"""Hooks StackHub runs in its store-script sandbox (adapters/sandbox.py, apps/scripts.py)."""
MAX_SCRIPT_BYTES = 64 * 1024
MAX_HOOK_BYTES = 256 * 1024
"""A hook may carry more (snowflake's pre-start writes a 117 KiB page with inline CSS)."""
TOR_VARS = frozenset({"TOR_PROXY_IP", "TOR_PROXY_PORT", "TOR_PASSWORD"})
"""Umbrel's system Tor proxy: StackHub runs no Tor, so an app needing these needs Tor."""
MAX_SEED_FILES = 1000
MAX_SEED_BYTES = 64 * 1024  # per file copied into an instance (text only)
MAX_SEED_TOTAL = 512 * 1024  # per app

KNOWN_IN_EXPORTS = frozenset({"EXPORTS_APP_DIR", "EXPORTS_APP_ID", "APP_DATA_DIR", "APP_ID",
                              "UMBREL_ROOT", "DEVICE_HOSTNAME", "DEVICE_DOMAIN_NAME"})
"""Variables an ``exports.sh`` line may use and still be read as data at plan time."""
_EXPORT = re.compile(r"^export\s+([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_PLAIN = re.compile(r"^[A-Za-z0-9_./:@%+,={}\-$]*$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_SCRIPT_VAR = re.compile(r"\$\{?(APP_[A-Z0-9_]+)")
_EXPORTED = re.compile(r"(?:^|[ \t;&|(\"'])export[ \t]+([A-Za-z_][A-Za-z0-9_]*)(?=[= \t;]|$)",
                       re.MULTILINE)

Installed = Callable[[str], bool]


# ---------------------------------------------------------------------------------------------
# exports.sh as data


def _shell_value(raw: str) -> str | None:
    """Return the value of a simple shell word, or None when it needs a shell to evaluate."""
    raw = raw.strip()
    if raw.startswith('"'):
        out: list[str] = []
        index = 1
        while index < len(raw):
            char = raw[index]
            if char == "\\" and index + 1 < len(raw):
                nxt = raw[index + 1]
                if nxt in '"\\':
                    out.append(nxt)
                    index += 2
                    continue
                return None  # \$ or \` would need an escape a template cannot express
            if char == '"':
                rest = raw[index + 1 :].strip()
                if rest and not rest.startswith("#"):
                    return None
                value = "".join(out)
                return None if "$(" in value or "`" in value else value
            out.append(char)
            index += 1
        return None
    if raw.startswith("'"):
        end = raw.find("'", 1)
        if end < 0:
            return None
        rest = raw[end + 1 :].strip()
        value = raw[1:end]
        if (rest and not rest.startswith("#")) or "$" in value:
            return None
        return value
    word, _, rest = raw.partition(" ")
    if rest.strip() and not rest.strip().startswith("#"):
        return None
    if not _PLAIN.match(word) or "$(" in word:
        return None
    return word


def parse_exports(text: str) -> dict[str, str] | None:
    """Read ``exports.sh`` as ``NAME -> value`` when it is only plain ``export`` lines."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _EXPORT.match(stripped)
        if not match:
            return None
        value = _shell_value(match.group(2))
        if value is None:
            return None
        values[match.group(1)] = value
    return values


def exported_names(text: str) -> list[str]:
    """Return the names a shell script exports (``export A=...``, ``export A``), in order.

    A static scan: what the sandbox run really exports is read back at install; this only
    tells the reader which variables the script is expected to supply.
    """
    names: list[str] = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for match in _EXPORTED.finditer(line):
            if match.group(1) not in names:
                names.append(match.group(1))
    return names


def plain_exports(text: str) -> dict[str, str]:
    """Return the plain top-level ``export NAME=value`` lines of a script that has logic.

    Values may use the platform's variables and earlier such exports (``${EXPORTS_APP_DIR}``
    and the like), so a folder or port a script exports is known at plan time; the sandbox
    run at install supplies the final values.
    """
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _EXPORT.match(line.strip())
        if match and line[:1] not in (" ", "\t"):
            value = _shell_value(match.group(2))
            # shell variables may be local: only the platform's and earlier exports are known
            if value is not None and all(ref.name in KNOWN_IN_EXPORTS or ref.name in values
                                         for ref in common.var_names(value)):
                values[match.group(1)] = value
    return values


# ---------------------------------------------------------------------------------------------
# the reader


class _Reader:
    """State for reading one Umbrel app."""

    def __init__(self, manifest: dict[str, Any], compose: dict[str, Any], app_id: str) -> None:
        self.manifest = manifest
        self.compose = compose
        self.app_id = app_id
        self.draft = Draft()
        self.services = common.services_of(compose)
        self.exports: dict[str, str] = {}
        self.exports_ok = True
        self.scripts: dict[str, str] = {}  # run in the sandbox at install (apps/scripts.py)
        self.script_vars: list[str] = []
        self.dependencies: list[str] = []
        self.imports: dict[str, str] = {}  # dependency variable -> that app's id
        self.exposes: dict[str, str] = {}  # address variable -> this app's service
        self.texts: dict[str, str | None] = {}  # seed and template files: text, None if unusable
        self.files: list[AppFile] = []

    # -- variables --------------------------------------------------------------------------

    def inline(self, text: str, fixed: dict[str, str]) -> str:
        """Expand references to derived/exported names so a template only uses params."""
        params = {name: "${" + name + "}" for name in (*self.draft.params, *PLATFORM_VARS)}
        return substitute(text, {**params, **self.draft.derived, **fixed}, keep_unknown=True)

    def literal(self, name: str) -> str | None:
        """Return a variable's value when it is a fixed text (exports, derived)."""
        value = self.draft.derived.get(name)
        return value if value is not None and "$" not in value else None

    def platform(self, version: str) -> None:
        """Supply Umbrel's variables the compose file or exports use."""
        texts = list(common.iter_strings(self.compose)) + list(self.exports.values())
        texts += [t for n, t in self.texts.items() if n.endswith(".template") and t]
        used = {ref.name for text in texts for ref in common.var_names(text)}
        if "APP_PASSWORD" in used:
            self.draft.add_param(Parameter(
                name="APP_PASSWORD", type=ParameterType.SECRET, length=32,
                label={"en": "App password"},
                help={"en": "Generated once at install and kept (Umbrel's APP_PASSWORD)."}))
        if "APP_SEED" in used:
            self.draft.add_param(Parameter(
                name="APP_SEED", type=ParameterType.SECRET, length=64,
                encoding=SecretEncoding.HEX, label={"en": "App seed"},
                help={"en": "A random seed generated once at install (Umbrel's APP_SEED)."}))
        if {"DEVICE_HOSTNAME", "DEVICE_DOMAIN_NAME", "APP_DOMAIN"} & used:
            self.draft.add_param(Parameter(
                name="DEVICE_HOSTNAME", type=ParameterType.HOST, default="localhost",
                label={"en": "Address of this server"},
                help={"en": "The host name or IP address users reach this server at; the app "
                            "uses it to build its own links."}))
        fixed = {"DEVICE_DOMAIN_NAME": "${DEVICE_HOSTNAME}", "APP_DOMAIN": "${DEVICE_HOSTNAME}",
                 "APP_VERSION": version.replace("$", ""), "UMBREL_ROOT": "${APP_DATA_DIR}/umbrel",
                 "APP_HIDDEN_SERVICE": "", "NETWORK_IP": "172.16.0.0",
                 "TOR_DATA_DIR": "${APP_DATA_DIR}/umbrel/tor/data"}
        for name, template in fixed.items():
            if name in used:
                self.draft.derived[name] = template
        if "APP_HIDDEN_SERVICE" in used:
            self.draft.note("the app's Tor address (APP_HIDDEN_SERVICE) is empty: StackHub "
                            "does not run Tor")
        if "UMBREL_ROOT" in used:
            self.draft.note("Umbrel's shared storage (UMBREL_ROOT) is kept inside this "
                            "instance's data directory")

    def read_exports(self, text: str | None) -> None:
        if text is None:
            return
        parsed = parse_exports(text)
        if parsed is None:
            self.exports_ok = False
            if len(text.encode()) <= MAX_SCRIPT_BYTES:
                self.scripts[EXPORTS_FILE] = text
                self.script_vars = exported_names(text)
                self.exports = {n: v for n, v in plain_exports(text).items()
                                if n in self.script_vars}
            return
        self.exports = parsed

    def apply_exports(self) -> None:
        """Turn parsed exports into derived values, with service IPs replaced by names."""
        ips = self.service_ips()
        fixed = {"EXPORTS_APP_DIR": "${APP_DATA_DIR}", "EXPORTS_APP_ID": self.app_id}
        for name, value in self.exports.items():
            if common.reserved(name):
                self.draft.problem(f"exports.sh sets {name}, a Compose setting StackHub never "
                                   "lets a store set")
                continue
            if self.draft.taken(name):
                continue
            template = self.inline(value, fixed)
            if template in ips:
                template = ips[template]
            self.draft.derived[name] = template
            fixed[name] = template

    def service_ips(self) -> dict[str, str]:
        """Map each fixed ``ipv4_address`` (resolved through exports) to its service."""
        found: dict[str, str] = {}
        for name, service in self.services.items():
            networks = service.get("networks")
            if not isinstance(networks, dict):
                continue
            for spec in networks.values():
                if isinstance(spec, dict) and isinstance(spec.get("ipv4_address"), str):
                    found[self.resolve_text(spec["ipv4_address"])] = name
        return found

    def resolve_text(self, text: str) -> str:
        """Resolve ``$VAR`` through the raw exports (before IPs become names)."""
        ref = common.only_var(text.strip())
        if ref is not None and ref.name in self.exports:
            return self.exports[ref.name]
        return text.strip()

    def link_addresses(self) -> None:
        """Put the services whose fixed IP an export names on the app's link network.

        Umbrel apps reach a dependency's containers at fixed IPs on one network shared by every
        app. StackHub gives each such app its own ``stackhub_link`` network instead, joined
        only by those services (with their Umbrel container names as aliases) and by the
        instances that depend on it: a dependent reaches its dependencies and nothing else.
        """
        for name, service in self.services.items():
            networks = service.get("networks")
            if not isinstance(networks, dict):
                continue
            for spec in networks.values():
                raw = spec.get("ipv4_address") if isinstance(spec, dict) else None
                if not isinstance(raw, str) or not raw.strip():
                    continue
                ref = common.only_var(raw.strip())
                if ref is not None and ref.name in self.script_vars:
                    self.exposes.setdefault(ref.name, name)
                address = self.resolve_text(raw)
                for var, value in self.exports.items():
                    if value == address:
                        self.exposes.setdefault(var, name)
        if not self.exposes:
            return
        top = self.compose.get("networks")
        top = top if isinstance(top, dict) else {}
        top[LINK_NETWORK] = {}
        self.compose["networks"] = top
        for service_name in sorted(set(self.exposes.values())):
            service = self.services[service_name]
            networks = common.service_networks(service)
            if networks is None:
                continue
            networks[LINK_NETWORK] = {"aliases": [f"{self.app_id}_{service_name}_1"]}
            service["networks"] = networks
        self.draft.note("apps that depend on this one reach "
                        + ", ".join(sorted(set(self.exposes.values())))
                        + " on its own link network (not Umbrel's network shared by all apps)")

    def unpin_addresses(self) -> None:
        pinned = False
        for service in self.services.values():
            networks = service.get("networks")
            if not isinstance(networks, dict):
                continue
            for spec in networks.values():
                if isinstance(spec, dict):
                    pinned = spec.pop("ipv4_address", None) is not None or pinned
                    pinned = spec.pop("ipv6_address", None) is not None or pinned
        if pinned:
            self.draft.note("fixed container IP addresses were removed; services reach each "
                            "other by name")

    # -- app_proxy ---------------------------------------------------------------------------

    def target_service(self, host: str) -> str | None:
        host = self.resolve_text(host)
        if host in self.services:
            return host
        for sep in ("_", "-"):
            prefix = f"{self.app_id}{sep}"
            if host.startswith(prefix):
                rest = re.sub(rf"{sep}\d+$", "", host[len(prefix) :])
                if rest in self.services:
                    return rest
        if _IPV4.match(host):
            return self.service_ips().get(host)
        for name, service in self.services.items():
            if service.get("container_name") == host or service.get("hostname") == host:
                return name
        return None

    def proxy(self) -> tuple[str, int] | None:
        """Drop ``app_proxy``; return the (service, container port) it pointed at."""
        spec = self.services.pop(PROXY, None)
        if spec is None:
            return None
        for service in self.services.values():
            deps = service.get("depends_on")
            if isinstance(deps, list) and PROXY in deps:
                service["depends_on"] = [d for d in deps if d != PROXY]
            elif isinstance(deps, dict):
                deps.pop(PROXY, None)
        env = _env_map(spec.get("environment"))
        host, port_text = env.get("APP_HOST"), env.get("APP_PORT")
        if host is None or port_text is None:
            self.draft.problem("app_proxy does not name APP_HOST and APP_PORT")
            return None
        target = self.target_service(host)
        if target is None:
            self.draft.problem(f"app_proxy points at {host!r}, which is not a service of "
                               "this app")
            return None
        port = self.resolve_text(port_text)
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            self.draft.problem(f"app_proxy port {port_text!r} is not a port number")
            return None
        if env.get("PROXY_AUTH_ADD", "true").strip().lower() != "false":
            self.draft.note("Umbrel puts its own login in front of this app; StackHub "
                            "publishes the app directly, protected by its own login only")
        if any(k.startswith(("PROXY_AUTH_WHITELIST", "PROXY_AUTH_BLACKLIST")) for k in env):
            self.draft.note("app_proxy's auth whitelist/blacklist is not applied")
        return target, int(port)

    def main(self, default_port: int | None, path: str) -> WebEntry | None:
        pointed = self.proxy()
        if pointed is not None:
            service, port = pointed
            self.draft.add_param(common.web_port_param("APP_PORT", default_port, "Web UI port"))
            if not common.publish(self.compose, service, port, "APP_PORT", self.draft):
                self.draft.note("the app uses host networking; its port is the host's")
            return WebEntry(service=common.network_target(self.compose, service), port=port,
                            path=path)
        if default_port is None:
            self.draft.note("the app has no app_proxy and no port: no web UI entry")
            return None
        for entry in common.port_entries(self.compose):
            published = self.resolve_text(entry.published) if entry.published else None
            if published == str(default_port) and entry.target.isdigit():
                plan = PortPlan(resolve=self.literal, names={
                    (entry.service, entry.target, entry.protocol): "APP_PORT"})
                common.parametrize_ports(self.compose, self.draft, plan)
                return WebEntry(service=entry.service, port=int(entry.target), path=path)
        host = [n for n, s in self.services.items() if s.get("network_mode") == "host"]
        if host:
            self.draft.note("the app uses host networking: its port is the host's, StackHub "
                            "cannot move it")
            return WebEntry(service=host[0], port=default_port, path=path)
        self.draft.note(f"no service publishes the app's port {default_port}: no web UI entry")
        return None

    # -- the whole app -----------------------------------------------------------------------

    def checks(self, installed: Installed) -> None:
        manifest = self.manifest
        if manifest.get("torOnly"):
            self.draft.problem("the app works only over Tor (torOnly), which StackHub does "
                               "not provide")
        if manifest.get("disabled"):
            self.draft.problem("the store has disabled this app")
        deps = manifest.get("dependencies")
        self.dependencies = [d for d in deps if isinstance(d, str)] if isinstance(deps, list) \
            else []
        used = set(common.referenced(self.compose))
        for text in [*self.scripts.values(),
                     *(t for n, t in self.texts.items() if n.endswith(".template") and t)]:
            used.update(_SCRIPT_VAR.findall(text))
        for dep in self.dependencies:
            prefix = f"APP_{common.env_slug(dep)}_"
            wired = sorted(n for n in used if n.startswith(prefix) and n not in self.exports
                           and not common.reserved(n))
            for name in wired:
                self.imports.setdefault(name, dep)
            state = "installed" if installed(dep) else "installed first (StackHub offers to)"
            self.draft.note(f"needs the app {dep!r} {state}" + (
                f"; it receives {', '.join(wired)} from it" if wired else ""))
        version = str(manifest.get("manifestVersion", "1"))
        if not version.startswith("1"):
            self.draft.note(f"manifestVersion {version} is newer than StackHub knows")
        for key in ("defaultUsername", "defaultPassword"):
            if manifest.get(key):
                self.draft.note(f"default {key[7:].lower()}: {manifest[key]}")
        if manifest.get("deterministicPassword"):
            self.draft.note("the login password is the generated APP_PASSWORD parameter")
        perms = manifest.get("permissions")
        if isinstance(perms, list) and perms:
            self.draft.note("Umbrel permissions are not granted specially: "
                            + ", ".join(map(str, perms)))

    def files_needed(self, files: frozenset[str], hooks: frozenset[str]) -> None:
        for hook in sorted(hooks):
            if hook in SANDBOXED_HOOKS and f"hooks/{hook}" in self.scripts:
                self.draft.note(f"the {hook} hook runs in StackHub's store-script sandbox (no "
                                "network, no Docker, only this app's folder" + (
                                    "; commands in its own containers go through StackHub)"
                                    if hook != "pre-start" else ")"))
            elif hook in SANDBOXED_HOOKS:
                self.draft.problem(f"the {hook} hook is not a UTF-8 text file of at most "
                                   f"{MAX_HOOK_BYTES} bytes; StackHub cannot run it")
            elif hook in BLOCKING_HOOKS:
                self.draft.problem(f"the app relies on a {hook} hook, which StackHub does not "
                                   "run: the store's pre-install hooks change the host (DNS "
                                   "settings) or check its memory and stop the installer")
            else:
                self.draft.note(f"the {hook} hook is not run (StackHub never runs store "
                                "scripts)")
        sources = set()
        for service in self.services.values():
            for item in service.get("volumes") or []:
                source = item.partition(":")[0] if isinstance(item, str) else (
                    item.get("source") if isinstance(item, dict) else None)
                if isinstance(source, str) and source.startswith("${APP_DATA_DIR}/"):
                    sources.add(source[len("${APP_DATA_DIR}/") :].rstrip("/"))
        rendered: set[str] = set()
        for name in sorted(f for f in files if f.endswith(".template")):
            target = name[: -len(".template")]
            text = self.texts.get(name)
            if text is not None and self.ship(target, text, template=True):
                rendered.add(target)
                self.template_vars(name, text)
            elif target in sources:
                self.draft.problem(f"mounts {target}, which Umbrel renders from {name}; StackHub "
                                   f"renders UTF-8 text templates of at most {MAX_SEED_BYTES} "
                                   "bytes only")
        skipped = []
        for seed in sorted(f for f in files if f.startswith("data/") and f not in rendered
                           and not f.endswith(".template")):
            text = self.texts.get(seed)
            if text is not None and self.ship(seed, text, template=False):
                continue
            if seed in sources:
                self.draft.problem(f"mounts {seed}, a file Umbrel copies from the store; "
                                   f"StackHub copies UTF-8 text files of at most "
                                   f"{MAX_SEED_BYTES} bytes only")
            else:
                skipped.append(seed)
        if skipped:
            self.draft.note(f"{len(skipped)} file(s) under data/ are binary or too large and are "
                            "not copied into the instance: " + ", ".join(skipped[:5]))

    def ship_env_files(self) -> None:
        """Copy the env files the services read from the app's folder into its data folder."""
        shipped = {f.path for f in self.files}
        for service in self.services.values():
            for path, _ in env_files(service):
                relative = data_file(path)
                text = self.texts.get(relative) if relative else None
                if relative and text is not None and relative not in shipped and \
                        self.ship(relative, text, template=False):
                    shipped.add(relative)

    def made_before_start(self) -> frozenset[str]:
        """Return the env files (app-folder paths) a carried pre-start script visibly creates.

        ``exports.sh`` and ``hooks/pre-start`` run in the sandbox before the project starts,
        with the app's data folder writable; a script naming ``${APP_DATA_DIR}/<file>`` (or
        ``${EXPORTS_APP_DIR}/<file>``) is taken to prepare it (e.g. lobe-chat's hook writes
        ``settings.env``). A static scan: if the run does not create it, the service starts
        without it (rendered env files are optional).
        """
        texts = [self.scripts[name] for name in (EXPORTS_FILE, "hooks/pre-start")
                 if name in self.scripts]
        made: set[str] = set()
        for service in self.services.values():
            for path, _ in env_files(service):
                relative = data_file(path)
                if relative is None:
                    continue
                named = re.compile(r"\$\{?(?:APP_DATA_DIR|EXPORTS_APP_DIR)\}?/"
                                   + re.escape(relative) + r"(?![\w./-])")
                if any(named.search(text) for text in texts):
                    made.add(relative)
        return frozenset(made)

    def ship(self, path: str, text: str, *, template: bool) -> bool:
        """Add a file for the instance's data folder; False if its name cannot be used."""
        try:
            self.files.append(AppFile(path=path, content=text, template=template))
        except ValidationError:
            return False
        return True

    def template_vars(self, name: str, text: str) -> None:
        """Note the variables a template uses that nothing supplies (left empty, as envsubst)."""
        unknown = sorted({ref.name for ref in common.var_names(text)
                          if not self.draft.taken(ref.name)
                          and ref.name not in PLATFORM_VARS})
        if unknown:
            self.draft.note(f"{name} uses {', '.join(unknown)}, which StackHub does not set; "
                            "they are left empty, as Umbrel would")

    def read(self, installed: Installed, files: frozenset[str],
             hooks: frozenset[str], version: str) -> WebEntry | None:
        self.checks(installed)
        self.platform(version)
        self.apply_exports()
        raw_port = self.manifest.get("port")
        default_port = common.port_number(raw_port)
        path = str(self.manifest.get("path") or "/")
        web = self.main(default_port, path if path.startswith("/") else "/" + path)
        self.link_addresses()
        self.unpin_addresses()
        for name, service in self.services.items():
            common.add_aliases(service, [f"{self.app_id}_{name}_1"])
        common.alias_container_names(self.compose)
        for name in self.imports:
            if not self.draft.taken(name):
                self.draft.derived[name] = ""  # filled at plan time from the dependency
        common.parametrize_ports(self.compose, self.draft, PortPlan(resolve=self.literal))
        self.files_needed(files, hooks)
        self.ship_env_files()
        common.check_services(self.compose, self.draft,
                              shipped=frozenset(f.path for f in self.files),
                              made=self.made_before_start())
        if not self.exports_ok:
            for name in self.script_vars:
                if not self.draft.taken(name) and not common.reserved(name):
                    self.draft.derived[name] = ""  # filled by the sandbox run at install
        # a name whose every use has a default (``${X:-unset}``) is optional, as on Umbrel
        unknown = sorted(n for n, refs in common.referenced(self.compose).items()
                         if not self.draft.taken(n)
                         and not all(ref.op in (":-", "-") for ref in refs))
        if tor := [n for n in unknown if n in TOR_VARS]:
            # with or without exports.sh: the app talks to Umbrel's system Tor
            self.draft.problem("needs Tor: it uses Umbrel's Tor proxy ("
                               + ", ".join(tor) + "), which StackHub does not run")
        if not self.exports_ok:
            if EXPORTS_FILE not in self.scripts:
                self.draft.problem(f"exports.sh is larger than {MAX_SCRIPT_BYTES} bytes; "
                                   "StackHub does not run it")
            elif tor:
                pass  # said above
            elif unknown:
                self.draft.problem("the app needs variables its exports.sh does not visibly "
                                   "export: " + ", ".join(unknown))
            else:
                self.draft.note("exports.sh computes values: it runs in StackHub's "
                                "store-script sandbox at install, and what it exports is read "
                                "back as data")
        common.check_unknown_vars(self.compose, self.draft, origin="Umbrel")
        return web


def _env_map(value: object) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    if isinstance(value, list):
        return {str(i).partition("=")[0]: str(i).partition("=")[2] for i in value}
    return {}


def _text(value: object) -> dict[str, str]:
    return {"en": str(value).strip()} if isinstance(value, str | int | float) and str(
        value).strip() else {}


def parse_app(manifest_text: str | bytes, compose_text: str | bytes | dict[str, Any], *,
              exports_text: str | bytes | None = None, hooks: frozenset[str] = frozenset(),
              files: frozenset[str] = frozenset(), folder_name: str | None = None,
              store: str | None = None, installed: Installed = lambda _: False,
              file_texts: dict[str, str | None] | None = None,
              hook_texts: dict[str, str] | None = None) -> AppDefinition:
    """Build an AppDefinition from one Umbrel app.

    `compose_text` may come parsed already (by yamlsafe, as read_app_dir does); `files` are the
    relative names in its folder; `file_texts` the contents of its seed and template files (None
    where a file is binary or too large).
    """
    manifest = yamlsafe.load_mapping(manifest_text, what=MANIFEST_FILE)
    compose = compose_text if isinstance(compose_text, dict) else yamlsafe.load_mapping(
        compose_text, what=COMPOSE_FILE)
    app_id = manifest.get("id")
    if not isinstance(app_id, str) or not APP_ID.match(app_id):
        raise Invalid(f"{MANIFEST_FILE} has no valid id")
    name = manifest.get("name")
    if not isinstance(name, str) or not name.strip():
        raise Invalid(f"{MANIFEST_FILE} has no name")
    reader = _Reader(manifest, compose, app_id)
    reader.texts = dict(file_texts or {})
    for hook, text in (hook_texts or {}).items():
        if hook in SANDBOXED_HOOKS and hook in hooks:
            reader.scripts[f"hooks/{hook}"] = text
    if folder_name is not None and folder_name != app_id:
        reader.draft.note(f"the manifest id {app_id!r} differs from its folder {folder_name!r}")
    if exports_text is not None:
        reader.read_exports(common.text_of(exports_text, what=EXPORTS_FILE) if isinstance(
            exports_text, bytes) else exports_text)
    version = str(manifest.get("version") or "latest")
    web = reader.read(installed, files, hooks, version)
    draft = reader.draft
    gallery = manifest.get("gallery")
    category = manifest.get("category")
    website = manifest.get("website") or manifest.get("repo")
    icon = manifest.get("icon")
    local_icon = next((f for f in ("icon.svg", "icon.png", "icon.jpg") if f in files), None)
    return AppDefinition(
        id=app_id, store=store, format=AppFormat.UMBREL, name=name.strip(), version=version,
        title={"en": name.strip()}, tagline=_text(manifest.get("tagline")),
        description=_text(manifest.get("description")),
        release_notes=_text(manifest.get("releaseNotes")),
        category=[str(category)] if isinstance(category, str) and category else [],
        icon=str(icon) if isinstance(icon, str) and icon else local_icon,
        screenshots=[str(g) for g in gallery if isinstance(g, str)] if isinstance(
            gallery, list) else [],
        website=str(website) if website else None,
        author=str(manifest["developer"]) if manifest.get("developer") else None,
        main=web, parameters=list(draft.params.values()), derived=draft.derived,
        compose=compose, files=reader.files, problems=draft.problems, notes=draft.notes,
        dependencies=reader.dependencies, scripts=reader.scripts, imports=reader.imports,
        exposes=reader.exposes)


def _file_texts(folder: Path, names: frozenset[str]) -> dict[str, str | None]:
    """Read the seed (``data/``) and ``*.template`` files as text, within the size limits."""
    texts: dict[str, str | None] = {}
    total = 0
    for name in sorted(n for n in names if n.startswith("data/") or n.endswith(".template")):
        try:
            data = common.read_file(folder, name, limit=MAX_SEED_BYTES)
            total += len(data)
            texts[name] = data.decode("utf-8") if total <= MAX_SEED_TOTAL else None
        except (Invalid, UnicodeDecodeError):
            texts[name] = None
    return texts


def _env_file_texts(folder: Path, compose: dict[str, Any] | None) -> dict[str, str | None]:
    """Read the env files the (parsed) compose file names in the app's folder (None if
    unusable)."""
    if compose is None:
        return {}  # parse_app reports the compose file itself
    services = compose.get("services")
    texts: dict[str, str | None] = {}
    for service in services.values() if isinstance(services, dict) else []:
        for path, _ in env_files(service) if isinstance(service, dict) else []:
            relative = data_file(path)
            if relative is not None and relative not in texts:
                texts[relative] = _nested_text(folder, relative)
    return texts


def _nested_text(folder: Path, relative: str) -> str | None:
    """Read `relative` (a/b/c) under `folder` as UTF-8, through real folders only, or None."""
    *dirs, name = relative.split("/")
    base = folder
    for part in dirs:
        base = base / part
        try:
            if not stat.S_ISDIR(base.lstat().st_mode):  # a link to a folder is refused too
                return None
        except OSError:
            return None
    try:
        return common.read_file(base, name, limit=MAX_SEED_BYTES).decode("utf-8")
    except (Invalid, TooLarge, UnicodeDecodeError):
        return None


def _folder_files(folder: Path) -> frozenset[str]:
    """List regular files at the top and under ``data/`` (bounded, links skipped)."""
    names = {p.name for p in folder.iterdir() if common.regular_file(folder, p.name)}
    data = folder / "data"
    if data.is_dir() and not data.is_symlink():
        count = 0
        for root, dirs, filenames in os.walk(data):  # os.walk does not follow links
            base = Path(root)
            for filename in sorted(filenames):
                if common.regular_file(base, filename):
                    names.add((base / filename).relative_to(folder).as_posix())
                    count += 1
                    if count >= MAX_SEED_FILES:
                        return frozenset(names)
            dirs.sort()
    return frozenset(names)


def read_app_dir(folder: Path, *, store: str | None = None,
                 installed: Installed = lambda _: False) -> AppDefinition:
    """Read one Umbrel app folder."""
    common.check_folder(folder)
    hooks_dir = folder / "hooks"
    hooks: frozenset[str] = frozenset()
    if hooks_dir.is_dir() or hooks_dir.is_symlink():
        hooks = frozenset(p.name for p in hooks_dir.iterdir()) if hooks_dir.is_dir() else (
            frozenset({"hooks"}))
    files = _folder_files(folder)
    compose_raw = common.read_file(folder, COMPOSE_FILE)
    try:  # parsed once, here: the env files it names are read before parse_app
        compose: bytes | dict[str, Any] = yamlsafe.load_mapping(compose_raw, what=COMPOSE_FILE)
    except (Invalid, TooLarge):
        compose = compose_raw  # parse_app raises the same error for it
    env_texts = _env_file_texts(folder, compose if isinstance(compose, dict) else None)
    return parse_app(common.read_file(folder, MANIFEST_FILE), compose,
                     exports_text=common.read_optional(folder, EXPORTS_FILE), hooks=hooks,
                     files=files | frozenset(env_texts), folder_name=folder.name, store=store,
                     installed=installed,
                     file_texts={**_file_texts(folder, files), **env_texts},
                     hook_texts=_hook_texts(hooks_dir, hooks))


def _hook_texts(hooks_dir: Path, hooks: frozenset[str]) -> dict[str, str]:
    """Read the hooks StackHub runs in its sandbox, as UTF-8 text of at most MAX_HOOK_BYTES."""
    texts: dict[str, str] = {}
    for hook in sorted(hooks & SANDBOXED_HOOKS):
        try:
            texts[hook] = common.read_file(hooks_dir, hook, limit=MAX_HOOK_BYTES).decode()
        except (Invalid, UnicodeDecodeError):
            continue
    return texts


def read_store_meta(root: Path) -> dict[str, str] | None:
    """Read ``umbrel-app-store.yml`` (a community store's ``id`` and ``name``), if present."""
    raw = common.read_optional(root, STORE_FILE)
    if raw is None:
        return None
    data = yamlsafe.load_mapping(raw, what=STORE_FILE)
    store_id, name = data.get("id"), data.get("name")
    if not isinstance(store_id, str) or not APP_ID.match(store_id):
        raise Invalid(f"{STORE_FILE} has no valid id")
    return {"id": store_id, "name": str(name) if name else store_id}
