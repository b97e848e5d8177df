"""Read CasaOS apps (``Apps/<Name>/docker-compose.yml`` with ``x-casaos`` blocks).

Mapping (see docs/store-formats.md):

- metadata from the top-level ``x-casaos`` (title, tagline, description, tips in any locale-key
  case, normalised to ``en``, ``zh-CN``...); the web entry from ``main`` + ``port_map`` /
  ``index`` / ``scheme``, read from the top level or, for older apps, from the service's own
  ``x-casaos``. ``port_map`` names the *host* port, which is traced back to its container port.
- every fixed host port becomes a ``port`` parameter defaulting to the original port (the web
  one is ``WEBUI_PORT``, as CasaOS calls it), so the allocator can move it when it is taken.
- ``$PUID``, ``$PGID``, ``$TZ`` are StackHub platform variables already; ``$AppID`` becomes a
  derived value equal to ``${APP_INSTANCE}``.
- data paths: ``/DATA/AppData/$AppID/...`` (or the app's own name) -> ``${APP_DATA_DIR}/...``.
  Any other ``/DATA/<Folder>/...`` (Media, Downloads, Gallery, Documents...) becomes
  ``${DATA_<FOLDER>:-${APP_DATA_DIR}/data/<Folder>}/...``: by default it stays inside the
  instance's data directory (so uninstall removes it and instances never share by accident),
  and an optional ``path`` parameter ``DATA_<FOLDER>`` lets the admin point it at a host folder
  such as an existing media library. ``/DATA`` itself is ``DATA_ROOT``.
- per-service ``x-casaos`` ``envs``/``ports``/``volumes`` descriptions label the parameters:
  a described environment variable with a literal value becomes a parameter of that name.
- ``x-casaos`` keys are removed from the compose template; ``container_name`` values stay
  reachable as network aliases (render drops the names themselves).
- problems: an architecture list without this host's, ``build:``, services without image,
  paths escaping ``/DATA``, required variables nobody supplies.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from stackhub import yamlsafe
from stackhub.catalog.models import (
    APP_ID,
    PARAM_NAME,
    AppDefinition,
    AppFormat,
    LocalizedText,
    Parameter,
    ParameterType,
    WebEntry,
)
from stackhub.catalog.readers import common
from stackhub.catalog.readers.common import Draft, PortPlan, locales
from stackhub.errors import Invalid
from stackhub.platform import host_arch

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.yaml", "compose.yml", "compose.yaml")
ICON_FILES = ("icon.png", "icon.svg", "icon.jpg", "icon.jpeg", "icon.webp")
_SECRETISH = re.compile(r"PASS|SECRET|TOKEN|_KEY$|APIKEY", re.IGNORECASE)
_APPID_REFS = ("$AppID", "${AppID}")


def _slug_id(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")[:64]


def _blocks(service: dict[str, Any]) -> list[dict[str, Any]]:
    """Return a service's ``x-casaos`` block and, for the oldest apps, its ``container`` part."""
    block = service.get("x-casaos")
    if not isinstance(block, dict):
        return []
    inner = block.get("container")
    return [block, inner] if isinstance(inner, dict) else [block]


def _descriptions(service: dict[str, Any], key: str) -> list[tuple[str, str, LocalizedText]]:
    """Return (container, protocol, description) for one list of a service's ``x-casaos``."""
    out: list[tuple[str, str, LocalizedText]] = []
    for block in _blocks(service):
        items = block.get(key)
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and item.get("container") is not None:
                out.append((str(item["container"]), str(item.get("protocol") or "tcp"),
                            locales(item.get("description"))))
    return out


class _Reader:
    """State for reading one CasaOS app."""

    def __init__(self, compose: dict[str, Any], app_id: str, arch: str) -> None:
        self.compose = compose
        self.app_id = app_id
        self.arch = arch
        self.draft = Draft()
        self.services = common.services_of(compose)
        meta = compose.get("x-casaos")
        self.meta: dict[str, Any] = meta if isinstance(meta, dict) else {}
        if not isinstance(meta, dict):
            self.draft.note("the compose file has no x-casaos block; metadata is minimal")
        self.volume_labels: dict[str, LocalizedText] = {}

    # -- data paths ------------------------------------------------------------------------

    def _own_dir(self, part: str) -> bool:
        return part in _APPID_REFS or part.lower() in {self.app_id.lower(),
                                                      str(self.compose.get("name", "")).lower()}

    def map_path(self, source: str, target: str) -> str:
        """Map a ``/DATA`` host path into the instance's data directory (see module doc)."""
        if source != "/DATA" and not source.startswith("/DATA/"):
            return source
        parts = [p for p in source[len("/DATA") :].split("/") if p not in ("", ".")]
        if ".." in parts:
            self.draft.problem(f"bind source {source!r} leaves /DATA")
            return source
        if len(parts) >= 2 and parts[0] == "AppData" and self._own_dir(parts[1]):
            return "/".join(["${APP_DATA_DIR}", *parts[2:]])
        if parts and parts[0] == "AppData":
            self.draft.note(f"{source} belongs to another CasaOS app; this instance gets its "
                            "own copy under its data directory")
            return "/".join(["${APP_DATA_DIR}/data", *parts])
        top = parts[0] if parts else ""
        name = f"DATA_{common.env_slug(top)}" if top else "DATA_ROOT"
        inside = "${APP_DATA_DIR}/data" + (f"/{top}" if top else "")
        if name not in self.draft.params:
            shown = f"/DATA/{top}" if top else "/DATA"
            label = self.volume_labels.get(target) or {"en": f"Host folder for {shown}"}
            self.draft.add_param(Parameter(
                name=name, type=ParameterType.PATH, label=label,
                help={"en": f"An absolute host folder to use for {shown}. Leave empty to keep "
                            "it inside the app's data directory."}))
        return "/".join(["${" + name + ":-" + inside + "}", *parts[1:]])

    def map_volumes(self) -> None:
        for service in self.services.values():
            volumes = service.get("volumes")
            if not isinstance(volumes, list):
                continue
            for index, item in enumerate(volumes):
                if isinstance(item, str):
                    parts = common.split_colons(item)
                    if len(parts) >= 2:
                        parts[0] = self.map_path(parts[0], parts[1])
                        volumes[index] = ":".join(parts)
                elif isinstance(item, dict) and isinstance(item.get("source"), str):
                    entry = dict(item)
                    entry["source"] = self.map_path(entry["source"], str(entry.get("target")))
                    volumes[index] = entry
        top = self.compose.get("volumes")
        for spec in top.values() if isinstance(top, dict) else []:
            opts = spec.get("driver_opts") if isinstance(spec, dict) else None
            if isinstance(opts, dict) and isinstance(opts.get("device"), str):
                opts["device"] = self.map_path(opts["device"], "")

    # -- environment -------------------------------------------------------------------------

    def env_params(self, service_name: str, service: dict[str, Any],
                   described: list[tuple[str, str, LocalizedText]]) -> None:
        """Turn described environment variables with literal values into parameters."""
        env = service.get("environment")
        labels = {key: text for key, _, text in described}
        if isinstance(env, dict):
            for key, value in list(env.items()):
                new = self._env_param(service_name, str(key), value, labels)
                if new is not None:
                    env[key] = new
        elif isinstance(env, list):
            for index, item in enumerate(env):
                if isinstance(item, str) and "=" in item:
                    key, _, value = item.partition("=")
                    new = self._env_param(service_name, key, value, labels)
                    if new is not None:
                        env[index] = f"{key}={new}"

    def _env_param(self, service: str, key: str, value: object,
                   labels: dict[str, LocalizedText]) -> str | None:
        if key not in labels or value is None or isinstance(value, dict | list):
            return None
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if "$" in text or "\n" in text:
            return None
        kind = ParameterType.PASSWORD if _SECRETISH.search(key) else ParameterType.STRING
        for name in (key, f"{common.env_slug(service)}_{key}"):
            if not PARAM_NAME.match(name):
                continue
            existing = self.draft.params.get(name)
            if existing is not None and existing.default == text and existing.type is kind:
                return "${" + name + "}"
            if not self.draft.taken(name):
                self.draft.add_param(Parameter(name=name, type=kind, default=text,
                                               label=labels[key] or {"en": key}))
                return "${" + name + "}"
        return None

    # -- web entry and ports ---------------------------------------------------------------

    def web_settings(self, main: str) -> tuple[object, str, str]:
        """Return port_map, index and scheme, new placement first, then the old ones."""
        blocks: list[dict[str, Any]] = [self.meta]
        for name in [main, *self.services]:
            blocks += _blocks(self.services[name])

        def pick(key: str) -> object:
            return next((b[key] for b in blocks if b.get(key) not in (None, "")), None)

        index = pick("index")
        scheme = pick("scheme")
        return (pick("port_map"), str(index) if index else "/",
                str(scheme).lower() if scheme else "http")

    def main_service(self) -> str:
        main = self.meta.get("main", self.meta.get("main_app"))
        if isinstance(main, str) and main in self.services:
            return main
        if main is not None:
            self.draft.note(f"x-casaos main {main!r} is not a service; guessing the main one")
        for name, service in self.services.items():
            if any(b.get("port_map") is not None for b in _blocks(service)):
                return name
        return next(iter(self.services))

    def merge_service_metadata(self, main: str) -> None:
        """Oldest apps keep title, icon... in the main service's block: use them as defaults."""
        blocks = _blocks(self.services[main])
        if blocks:
            defaults = {k: v for k, v in blocks[0].items() if k not in ("container", "envs",
                                                                          "ports", "volumes")}
            self.meta = {**defaults, **self.meta}

    def ports_and_web(self, main: str, port_labels: dict[tuple[str, str, str], LocalizedText],
                      ) -> WebEntry | None:
        port_map, index, scheme = self.web_settings(main)
        wanted: int | None = None
        var: str | None = None
        if port_map is not None:
            text = str(port_map).strip()
            ref = common.only_var(text)
            if ref is not None:
                var = ref.name
                wanted = int(ref.arg) if ref.op in (":-", "-") and ref.arg.isdigit() else None
            elif text.isdigit():
                wanted = int(text)
        if var is not None and not self.draft.taken(var):
            self.draft.add_param(common.web_port_param(var, wanted, "Web UI port"))
        entries = common.port_entries(self.compose)
        holder = common.network_target(self.compose, main)
        ordered = sorted(entries, key=lambda e: (e.service not in (main, holder),))
        web: common.PortEntry | None = None
        for entry in ordered:
            ref = common.only_var(entry.published) if entry.published else None
            if (var is not None and ref is not None and ref.name == var) or (
                    wanted is not None and entry.published == str(wanted)):
                web = entry
                break
        if web is None and wanted is not None:
            web = next((e for e in ordered if e.service in (main, holder)
                        and e.target == str(wanted) and e.published), None)
        if web is None and port_map is None:
            web = next((e for e in ordered if e.service in (main, holder) and e.published
                        and e.protocol == "tcp"), None)
        plan = PortPlan(labels=port_labels)
        if web is not None and (var is None or var not in self.draft.params):
            plan.names[(web.service, web.target, web.protocol)] = "WEBUI_PORT"
        common.parametrize_ports(self.compose, self.draft, plan)
        if web is not None and web.target.isdigit():
            return WebEntry(service=web.service, port=int(web.target), path=index, scheme=scheme)
        if web is not None:
            self.draft.note(f"the web port of service {web.service} is {web.target!r}; "
                            "StackHub assumes it is the published port")
            if wanted:
                return WebEntry(service=web.service, port=wanted, path=index, scheme=scheme)
            return None
        if wanted is None:
            self.draft.note("no web UI port is declared (x-casaos port_map)")
            return None
        if self.services[holder].get("network_mode") == "host":
            self.draft.note("the app uses host networking: its port is the host's, "
                            "StackHub cannot move it")
            return WebEntry(service=main, port=wanted, path=index, scheme=scheme)
        name = var or "WEBUI_PORT"
        self.draft.add_param(common.web_port_param(name, wanted, "Web UI port"))
        common.publish(self.compose, main, wanted, name, self.draft)
        self.draft.note(f"port_map {wanted} is not published by the compose file; StackHub "
                        f"publishes container port {wanted} of {main}")
        return WebEntry(service=holder, port=wanted, path=index, scheme=scheme)

    # -- the whole app ---------------------------------------------------------------------

    def read(self) -> tuple[str, WebEntry | None]:
        main = self.main_service()
        self.merge_service_metadata(main)
        archs = self.meta.get("architectures")
        if isinstance(archs, list) and archs and self.arch not in [str(a) for a in archs]:
            self.draft.problem(f"the app supports {', '.join(map(str, archs))}, not this "
                               f"machine's {self.arch}")
        port_labels: dict[tuple[str, str, str], LocalizedText] = {}
        for name, service in self.services.items():
            for container, _, text in _descriptions(service, "volumes"):
                if text:
                    self.volume_labels.setdefault(container, text)
            for container, proto, text in _descriptions(service, "ports"):
                if text:
                    port_labels.setdefault((name, container, proto), text)
            self.env_params(name, service, _descriptions(service, "envs"))
        self.map_volumes()
        web = self.ports_and_web(main, port_labels)
        refs = common.referenced(self.compose)
        if "AppID" in refs:
            self.draft.derived["AppID"] = "${APP_INSTANCE}"
        if "WEBUI_PORT" in refs and not self.draft.taken("WEBUI_PORT"):
            self.draft.add_param(common.web_port_param("WEBUI_PORT", None, "Web UI port"))
        common.strip_keys(self.compose, "x-casaos")
        common.alias_container_names(self.compose)
        common.check_services(self.compose, self.draft)
        common.check_unknown_vars(self.compose, self.draft, origin="CasaOS")
        tips = self.meta.get("tips")
        before = locales(tips.get("before_install")) if isinstance(tips, dict) else {}
        if before.get("en"):
            self.draft.note("before installing: " + common.short(before["en"]))
        return main, web


def _app_id(compose: dict[str, Any], folder_name: str | None) -> str:
    raw = compose.get("name")
    if isinstance(raw, str) and APP_ID.match(raw.strip()):
        return raw.strip()
    candidates = [raw if isinstance(raw, str) else None, folder_name]
    for candidate in candidates:
        if candidate and APP_ID.match(_slug_id(candidate)):
            return _slug_id(candidate)
    raise Invalid("the compose file has no usable top-level name (the CasaOS app id)")


def _local_or_url(value: object, files: frozenset[str]) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    base = value.rsplit("/", 1)[-1]
    return base if base in files else value.strip()


def parse_app(compose_text: str | bytes, *, folder_name: str | None = None,
              files: frozenset[str] = frozenset(), store: str | None = None,
              arch: str | None = None) -> AppDefinition:
    """Build an AppDefinition from a CasaOS compose file (`files`: names beside it)."""
    compose = yamlsafe.load_mapping(compose_text, what="compose file")
    app_id = _app_id(compose, folder_name)
    reader = _Reader(compose, app_id, arch or host_arch())
    main, web = reader.read()
    meta = reader.meta
    title = locales(meta.get("title")) or {"en": str(compose.get("name") or folder_name or app_id)}
    icon = next((f for f in ICON_FILES if f in files), None) or _local_or_url(
        meta.get("icon"), files)
    shots = meta.get("screenshot_link")
    screenshots = [s for s in (_local_or_url(x, files) for x in shots) if s] if isinstance(
        shots, list) else []
    version = meta.get("version")
    category = meta.get("category")
    archs = meta.get("architectures")
    author = meta.get("developer") or meta.get("author")
    website = meta.get("website") or meta.get("repo")
    draft = reader.draft
    return AppDefinition(
        id=app_id, store=store, format=AppFormat.CASAOS,
        name=title.get("en") or next(iter(title.values())),
        version=str(version) if version not in (None, "") else (
            common.image_tag(reader.services[main].get("image")) or "latest"),
        title=title, tagline=locales(meta.get("tagline")),
        description=locales(meta.get("description")),
        release_notes=locales(meta.get("release_notes")),
        category=[str(c) for c in category] if isinstance(category, list) else (
            [str(category)] if category else []),
        icon=icon, screenshots=screenshots,
        website=str(website) if website else None, author=str(author) if author else None,
        architectures=[str(a) for a in archs] if isinstance(archs, list) else [],
        main=web, parameters=list(draft.params.values()), derived=draft.derived,
        compose=compose, problems=draft.problems, notes=draft.notes)


def compose_file(folder: Path) -> str:
    """Name the compose file of a CasaOS app folder."""
    for name in COMPOSE_FILES:
        if common.regular_file(folder, name):
            return name
    raise Invalid("the app folder has no docker-compose.yml")


def read_app_dir(folder: Path, *, store: str | None = None,
                 arch: str | None = None) -> AppDefinition:
    """Read one ``Apps/<Name>`` folder."""
    common.check_folder(folder)
    name = compose_file(folder)
    files = frozenset(p.name for p in folder.iterdir() if common.regular_file(folder, p.name))
    return parse_app(common.read_file(folder, name), folder_name=folder.name, files=files,
                     store=store, arch=arch)
