"""Read Runtipi apps (``apps/<id>/config.json`` + a compose file + ``metadata/``).

Mapping (see docs/store-formats.md):

- ``config.json``: metadata, ``tipi_version`` -> revision, ``form_fields`` -> typed parameters
  (``random`` -> a ``secret`` generated once and kept, of length ``min`` (default 32) in
  ``hex``/``base64``/alphanumeric), ``port`` -> the ``APP_PORT`` port parameter.
- the compose file, in order of preference: ``docker-compose.yml`` with ``x-runtipi`` (schema
  v2: per service ``is_main``/``internal_port``), ``docker-compose.json`` (dynamic compose:
  ``services[]`` in camelCase, ``addPorts``, ``overrides`` per architecture), or the legacy
  static ``docker-compose.yml`` (Traefik/``runtipi.*`` labels and ``tipi_main_network``
  dropped; StackHub publishes and routes itself).
- the main service publishes ``${APP_PORT}:<internal port>``; other fixed host ports become
  ``port`` parameters defaulting to the original port.
- Runtipi's variables: ``APP_DATA_DIR`` is native; ``APP_HOST`` becomes a ``host`` parameter
  (default ``localhost``: the address users reach the server at) when the app uses it or
  ``APP_DOMAIN``/``LOCAL_DOMAIN``; ``APP_DOMAIN`` = ``${APP_HOST}:${APP_PORT}``,
  ``APP_PROTOCOL`` = ``http``, ``APP_EXPOSED`` = ``false``, ``LOCAL_DOMAIN`` = ``${APP_HOST}``,
  ``ROOT_FOLDER_HOST`` (Runtipi's own folder, whose ``media/`` apps share) =
  ``${APP_DATA_DIR}/runtipi``: nothing outside the instance, as CasaOS's ``/DATA`` folders.
- problems: ``available: false``, ``supported_architectures`` without this host's, a required
  form field of an unknown type, an invalid field variable name, ``build:``, no image.
  Notes: ``deprecated``, ``force_expose``, ``uid``/``gid`` ownership, anything else ignored.
"""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stackhub import yamlsafe
from stackhub.catalog.models import (
    APP_ID,
    PARAM_NAME,
    AppDefinition,
    AppFormat,
    Option,
    Parameter,
    ParameterType,
    SecretEncoding,
    WebEntry,
)
from stackhub.catalog.readers import common
from stackhub.catalog.readers.common import Draft, PortPlan
from stackhub.errors import Invalid
from stackhub.platform import RESERVED_PREFIXES, host_arch

CONFIG_FILE = "config.json"
COMPOSE_JSON = "docker-compose.json"
COMPOSE_YAML = ("docker-compose.yml", "docker-compose.yaml")
DESCRIPTION_FILE = "metadata/description.md"
LOGO_FILE = "metadata/logo.jpg"

_IPV4 = r"^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$"
_TYPES = {
    "text": ParameterType.STRING, "password": ParameterType.PASSWORD,
    "email": ParameterType.EMAIL, "number": ParameterType.NUMBER,
    "fqdn": ParameterType.HOST, "fqdnip": ParameterType.HOST, "ip": ParameterType.STRING,
    "url": ParameterType.URL, "random": ParameterType.SECRET,
    "boolean": ParameterType.BOOLEAN,
}
_SIMPLE_KEYS = {
    "networkMode": "network_mode", "extraHosts": "extra_hosts", "ulimits": "ulimits",
    "capAdd": "cap_add", "capDrop": "cap_drop", "hostname": "hostname", "devices": "devices",
    "entrypoint": "entrypoint", "command": "command", "pid": "pid", "privileged": "privileged",
    "tty": "tty", "user": "user", "workingDir": "working_dir", "shmSize": "shm_size",
    "logging": "logging", "readOnly": "read_only", "securityOpt": "security_opt",
    "stopSignal": "stop_signal", "stopGracePeriod": "stop_grace_period",
    "stdinOpen": "stdin_open", "sysctls": "sysctls", "dns": "dns",
}
_HANDLED_KEYS = {"name", "image", "isMain", "internalPort", "addPorts", "environment",
                 "volumes", "healthCheck", "dependsOn", "deploy", "extraLabels",
                 "addToMainNetwork", *_SIMPLE_KEYS}
_LABEL_PREFIXES = ("traefik.", "runtipi.")
_MAIN_NETWORK = "tipi_main_network"


# ---------------------------------------------------------------------------------------------
# form_fields


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
    return None


def _default(value: object, kind: ParameterType) -> str | int | float | bool | None:
    if value is None or isinstance(value, dict | list):
        return None
    if kind is ParameterType.BOOLEAN:
        return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes")
    if isinstance(value, bool | int | float):
        return value
    return str(value)


def _python_regex(pattern: str) -> bool:
    """Tell whether a (JavaScript) pattern is also a usable Python pattern."""
    if len(pattern) > 512:
        return False
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return False
    return True


def field_parameter(field: object, draft: Draft) -> Parameter | None:
    """Turn one Runtipi form field into a parameter, recording what cannot be honoured."""
    if not isinstance(field, dict):
        draft.note("a form field that is not an object was ignored")
        return None
    env = field.get("env_variable")
    label_text = str(field.get("label") or env or "field")
    if not isinstance(env, str) or not PARAM_NAME.match(env):
        draft.problem(f"form field {label_text!r} has no valid env_variable")
        return None
    if common.reserved(env):
        draft.problem(f"form field {env}: names starting with "
                      f"{', '.join(RESERVED_PREFIXES)} are Compose settings StackHub "
                      "never lets a store set")
        return None
    if draft.taken(env):
        draft.note(f"form field {env} is declared twice or clashes with a platform variable; "
                   "the first one is kept")
        return None
    raw_type = str(field.get("type") or "text").lower()
    required = bool(field.get("required"))
    kind = _TYPES.get(raw_type)
    if kind is None:
        if required:
            draft.problem(f"required form field {env} has type {raw_type!r}, which StackHub "
                          "does not know")
        else:
            draft.note(f"form field {env} has unknown type {raw_type!r}; asked as text")
        kind = ParameterType.STRING
    options = field.get("options")
    enum: list[Option] = []
    if isinstance(options, list) and options:
        for item in options:
            if isinstance(item, dict) and item.get("value") is not None:
                value = item["value"]
                text = ("true" if value else "false") if isinstance(value, bool) else str(value)
                enum.append(Option(value=text, label=common.locales(item.get("label"))))
            elif isinstance(item, str | int | float):
                enum.append(Option(value=str(item)))
        if enum and kind is not ParameterType.BOOLEAN:
            kind = ParameterType.ENUM
    help_parts = [str(field[k]) for k in ("hint",) if field.get(k)]
    if field.get("placeholder"):
        help_parts.append(f"Example: {field['placeholder']}")
    data: dict[str, Any] = {
        "name": env, "type": kind, "label": {"en": label_text}, "required": required,
        "help": {"en": " ".join(help_parts)} if help_parts else {},
        "default": _default(field.get("default"), kind), "options": enum,
    }
    low, high = _number(field.get("min")), _number(field.get("max"))
    if kind is ParameterType.SECRET:
        length = int(low) if low is not None else 32
        if not 8 <= length <= 256:
            draft.note(f"form field {env}: a random value of length {length} is generated "
                       f"with length {min(max(length, 8), 256)}")
            length = min(max(length, 8), 256)
        data["length"] = length
        encoding = str(field.get("encoding") or "").lower()
        data["encoding"] = {"hex": SecretEncoding.HEX, "base64": SecretEncoding.BASE64}.get(
            encoding, SecretEncoding.ALNUM)
    elif kind is not ParameterType.BOOLEAN and kind is not ParameterType.ENUM:
        data["min"], data["max"] = low, high
    regex = field.get("regex")
    if raw_type == "ip" and not regex:
        regex = _IPV4
    if isinstance(regex, str) and regex:
        if _python_regex(regex):
            data["regex"] = regex
            if field.get("pattern_error"):
                data["regex_error"] = {"en": str(field["pattern_error"])}
        else:
            draft.note(f"form field {env}: its regex is not usable here and is not checked")
    try:
        return Parameter(**data)
    except ValidationError as err:
        draft.problem(f"form field {env} cannot be read: {err.errors()[0]['msg']}")
        return None


# ---------------------------------------------------------------------------------------------
# the three compose shapes


def _environment(value: object, where: str) -> dict[str, str]:
    env: dict[str, str] = {}
    items: list[tuple[object, object]]
    key: object
    val: object
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = []
        for item in value:
            if isinstance(item, dict) and "key" in item:
                items.append((item["key"], item.get("value")))
            elif isinstance(item, str) and "=" in item:
                key, _, val = item.partition("=")
                items.append((key, val))
            else:
                raise Invalid(f"{where}: environment entries must be key/value pairs")
    elif value is None:
        return env
    else:
        raise Invalid(f"{where}: environment must be a mapping or a list")
    for key, val in items:
        if isinstance(val, bool):
            env[str(key)] = "true" if val else "false"
        else:
            env[str(key)] = "" if val is None else str(val)
    return env


def _dynamic_service(spec: dict[str, Any], draft: Draft) -> dict[str, Any]:
    """Convert one dynamic-compose service (camelCase) into a compose service."""
    name = str(spec.get("name"))
    where = f"docker-compose.json service {name}"
    service: dict[str, Any] = {"image": spec.get("image"), "restart": "unless-stopped"}
    for key, target in _SIMPLE_KEYS.items():
        if spec.get(key) is not None:
            service[target] = spec[key]
    env = _environment(spec.get("environment"), where)
    if env:
        service["environment"] = env
    volumes = []
    for item in spec.get("volumes") or []:
        if not isinstance(item, dict) or not item.get("hostPath") or not item.get("containerPath"):
            raise Invalid(f"{where}: volumes need hostPath and containerPath")
        mode = ":ro" if item.get("readOnly") else ""
        volumes.append(f"{item['hostPath']}:{item['containerPath']}{mode}")
    if volumes:
        service["volumes"] = volumes
    ports = []
    for item in spec.get("addPorts") or []:
        if not isinstance(item, dict) or item.get("containerPort") is None:
            raise Invalid(f"{where}: addPorts entries need containerPort and hostPort")
        text = f"{item.get('hostPort')}:{item['containerPort']}"
        if item.get("interface"):
            text = f"{item['interface']}:{text}"
        protocols = [p for p in ("tcp", "udp") if item.get(p)]
        ports += [f"{text}/{p}" for p in protocols] if protocols else [text]
    if ports:
        service["ports"] = ports
    check = spec.get("healthCheck")
    if isinstance(check, dict):
        names = {"test": "test", "interval": "interval", "timeout": "timeout",
                 "retries": "retries", "startInterval": "start_interval",
                 "startPeriod": "start_period"}
        service["healthcheck"] = {names[k]: v for k, v in check.items() if k in names}
    if spec.get("dependsOn") is not None:
        service["depends_on"] = spec["dependsOn"]
    if isinstance(spec.get("deploy"), dict):
        service["deploy"] = _deploy(spec["deploy"])
    labels = spec.get("extraLabels")
    if isinstance(labels, dict):
        service["labels"] = {str(k): str(v).lower() if isinstance(v, bool) else str(v)
                             for k, v in labels.items()}
    ignored = sorted(set(spec) - _HANDLED_KEYS)
    if ignored:
        draft.note(f"{where}: ignored {', '.join(ignored)}")
    return service


def _deploy(deploy: dict[str, Any]) -> dict[str, Any]:
    """Rename the camelCase keys inside ``deploy`` (``deviceIds`` -> ``device_ids``)."""
    out = dict(deploy)
    resources = out.get("resources")
    if isinstance(resources, dict) and isinstance(resources.get("reservations"), dict):
        reservations = dict(resources["reservations"])
        devices = reservations.get("devices")
        if isinstance(devices, list):
            reservations["devices"] = [
                {("device_ids" if k == "deviceIds" else k): v for k, v in d.items()}
                if isinstance(d, dict) else d for d in devices]
        out["resources"] = {**resources, "reservations": reservations}
    return out


def dynamic_compose(data: object, arch: str, draft: Draft) -> tuple[dict[str, Any], str | None,
                                                                    int | None]:
    """Build compose from ``docker-compose.json``; return it, the main service and its port."""
    if not isinstance(data, dict) or not isinstance(data.get("services"), list):
        raise Invalid("docker-compose.json must have a services list")
    specs: dict[str, dict[str, Any]] = {}
    for spec in data["services"]:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise Invalid("every docker-compose.json service needs a name")
        if spec["name"] in specs:
            raise Invalid(f"docker-compose.json declares service {spec['name']} twice")
        specs[spec["name"]] = dict(spec)
    for override in data.get("overrides") or []:
        if not isinstance(override, dict):
            continue
        wanted = override.get("architecture")
        if wanted is not None and str(wanted) != arch:
            continue
        for partial in override.get("services") or []:
            if not isinstance(partial, dict) or not isinstance(partial.get("name"), str):
                continue
            if partial["name"] in specs:
                specs[partial["name"]].update(partial)
            elif partial.get("image"):
                specs[partial["name"]] = dict(partial)
    services = {name: _dynamic_service(spec, draft) for name, spec in specs.items()}
    main = next((n for n, s in specs.items() if s.get("isMain")), None)
    port = None
    if main is not None:
        raw = specs[main].get("internalPort")
        port = common.port_number(raw)
    return {"services": services}, main, port


def _drop_runtipi_wiring(compose: dict[str, Any]) -> None:
    """Remove Traefik/runtipi labels and the shared ``tipi_main_network``."""
    for service in common.services_of(compose).values():
        labels = service.get("labels")
        if isinstance(labels, dict):
            kept = {k: v for k, v in labels.items() if not str(k).startswith(_LABEL_PREFIXES)}
        elif isinstance(labels, list):
            kept_list = [x for x in labels if not str(x).startswith(_LABEL_PREFIXES)]
            kept = {str(x).partition("=")[0]: str(x).partition("=")[2] for x in kept_list}
        else:
            kept = None
        if kept is not None:
            if kept:
                service["labels"] = kept
            else:
                service.pop("labels", None)
        networks = service.get("networks")
        if isinstance(networks, list) and _MAIN_NETWORK in networks:
            networks = [n for n in networks if n != _MAIN_NETWORK]
        elif isinstance(networks, dict) and _MAIN_NETWORK in networks:
            networks = {k: v for k, v in networks.items() if k != _MAIN_NETWORK}
        if networks is not None and not networks:
            service.pop("networks", None)
        elif networks is not None:
            service["networks"] = networks
    top = compose.get("networks")
    if isinstance(top, dict):
        top.pop(_MAIN_NETWORK, None)
        if not top:
            compose.pop("networks")


def _v2_main(compose: dict[str, Any]) -> tuple[str | None, int | None]:
    main: str | None = None
    port: int | None = None
    for name, service in common.services_of(compose).items():
        block = service.get("x-runtipi")
        if isinstance(block, dict) and block.get("is_main") and main is None:
            main = name
            port = common.port_number(block.get("internal_port"))
    common.strip_keys(compose, "x-runtipi")
    return main, port


def _has_x_runtipi(doc: dict[str, Any]) -> bool:
    services = doc.get("services")
    return "x-runtipi" in doc or (isinstance(services, dict) and any(
        isinstance(s, dict) and "x-runtipi" in s for s in services.values()))


def _legacy_main(compose: dict[str, Any], app_id: str) -> tuple[str | None, int | None]:
    """Find the service that publishes ``${APP_PORT}`` (or a Traefik port label)."""
    for entry in common.port_entries(compose):
        ref = common.only_var(entry.published) if entry.published else None
        if ref is not None and ref.name == "APP_PORT":
            return entry.service, int(entry.target) if entry.target.isdigit() else None
    services = common.services_of(compose)
    for name, service in services.items():
        labels = service.get("labels")
        if isinstance(labels, dict):
            for key, value in labels.items():
                if re.fullmatch(r"traefik\.http\.services\.[^.]+\.loadbalancer\.server\.port",
                                str(key)) and str(value).isdigit():
                    return name, int(value)
    return (app_id if app_id in services else None), None


# ---------------------------------------------------------------------------------------------
# the app


def _platform(compose: dict[str, Any], draft: Draft) -> None:
    """Supply Runtipi's variables that the compose file uses."""
    refs = common.referenced(compose)
    if {"APP_HOST", "APP_DOMAIN", "LOCAL_DOMAIN"} & set(refs) and not draft.taken("APP_HOST"):
        draft.add_param(Parameter(
            name="APP_HOST", type=ParameterType.HOST, default="localhost",
            label={"en": "Address of this server"},
            help={"en": "The host name or IP address users reach this server at; the app "
                        "uses it to build its own links."}))
    defaults = {"APP_DOMAIN": "${APP_HOST}:${APP_PORT}", "APP_PROTOCOL": "http",
                "APP_EXPOSED": "false", "LOCAL_DOMAIN": "${APP_HOST}",
                "ROOT_FOLDER_HOST": "${APP_DATA_DIR}/runtipi"}
    for name, template in defaults.items():
        if name in refs and not draft.taken(name):
            draft.derived[name] = template
    if "ROOT_FOLDER_HOST" in draft.derived:
        draft.note("Runtipi's root folder (ROOT_FOLDER_HOST, with its shared media folder) is "
                   "kept inside this instance's data directory")


def _meta_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def parse_app(config_text: str | bytes, *, compose_json: str | bytes | None = None,
              compose_yaml: str | bytes | None = None, description_md: str | bytes | None = None,
              files: frozenset[str] = frozenset(), folder_name: str | None = None,
              store: str | None = None, arch: str | None = None) -> AppDefinition:
    """Build an AppDefinition from the files of one Runtipi app (`files`: relative names)."""
    arch = arch or host_arch()
    config = common.load_json(config_text, what="config.json")
    if not isinstance(config, dict):
        raise Invalid("config.json must be an object")
    app_id = config.get("id")
    if not isinstance(app_id, str) or not APP_ID.match(app_id):
        raise Invalid("config.json has no valid id")
    name = config.get("name")
    if not isinstance(name, str) or not name.strip():
        raise Invalid("config.json has no name")
    draft = Draft()
    if folder_name is not None and folder_name != app_id:
        draft.note(f"config.json id {app_id!r} differs from its folder {folder_name!r}")
    if config.get("available") is False:
        draft.problem("the store marks this app as not available")
    if config.get("deprecated"):
        draft.note("the store marks this app as deprecated")
    archs = config.get("supported_architectures")
    if isinstance(archs, list) and archs and arch not in [str(a) for a in archs]:
        draft.problem(f"the app supports {', '.join(map(str, archs))}, not this machine's {arch}")
    if config.get("force_expose"):
        draft.note("Runtipi requires this app to be exposed on its own domain with HTTPS")
    if config.get("uid") is not None or config.get("gid") is not None:
        draft.note(f"Runtipi gives the data folder to uid {config.get('uid')} / gid "
                   f"{config.get('gid')}; StackHub does not change ownership")
    port = _meta_int(config.get("port"))
    no_gui = bool(config.get("no_gui"))
    draft.add_param(common.web_port_param("APP_PORT", port,
                                          "Main port" if no_gui else "Web UI port"))
    fields = config.get("form_fields")
    for field in fields if isinstance(fields, list) else []:
        param = field_parameter(field, draft)
        if param is not None:
            draft.add_param(param)

    compose: dict[str, Any]
    main: str | None
    internal: int | None
    yaml_doc = yamlsafe.load_mapping(compose_yaml, what="docker-compose.yml") if (
        compose_yaml is not None) else None
    is_v2 = yaml_doc is not None and _has_x_runtipi(yaml_doc)
    if yaml_doc is not None and is_v2:
        compose = yaml_doc
        common.services_of(compose)
        main, internal = _v2_main(compose)
    elif compose_json is not None:
        compose, main, internal = dynamic_compose(
            common.load_json(compose_json, what="docker-compose.json"), arch, draft)
    elif yaml_doc is not None:
        compose = yaml_doc
        common.services_of(compose)
        main, internal = _legacy_main(compose, app_id)
    else:
        raise Invalid("the app has no docker-compose.yml or docker-compose.json")
    _drop_runtipi_wiring(compose)
    common.alias_container_names(compose)

    web: WebEntry | None = None
    if main is None or internal is None:
        if not no_gui:
            draft.note("no main service with an internal port is declared; no web UI entry")
    else:
        common.publish(compose, main, internal, "APP_PORT", draft)
        suffix = config.get("url_suffix")
        path = "/" + str(suffix).lstrip("/") if suffix else "/"
        if not no_gui:
            web = WebEntry(service=common.network_target(compose, main), port=internal,
                           path=path, scheme="https" if config.get("https") else "http")
    if no_gui:
        draft.note("the app has no web interface")
    common.parametrize_ports(compose, draft, PortPlan())
    _platform(compose, draft)
    common.check_services(compose, draft)
    common.check_unknown_vars(compose, draft, origin="Runtipi")
    if "APP_PORT" not in common.referenced(compose) and not any(
            "APP_PORT" in template for template in draft.derived.values()):
        draft.params.pop("APP_PORT", None)

    if isinstance(description_md, str):
        description = description_md
    elif description_md is not None:
        description = common.text_of(description_md, what="description.md")
    else:
        description = str(config.get("description") or "")
    categories = config.get("categories")
    website = config.get("website") or config.get("source")
    return AppDefinition(
        id=app_id, store=store, format=AppFormat.RUNTIPI, name=name.strip(),
        version=str(config.get("version") or "latest"),
        revision=_meta_int(config.get("tipi_version")),
        title={"en": name.strip()}, tagline=common.locales(config.get("short_desc")),
        description={"en": description} if description.strip() else {},
        category=[str(c) for c in categories] if isinstance(categories, list) else [],
        icon=LOGO_FILE if LOGO_FILE in files else None,
        website=str(website) if website else None,
        author=str(config["author"]) if config.get("author") else None,
        architectures=[str(a) for a in archs] if isinstance(archs, list) else [],
        main=web, parameters=list(draft.params.values()), derived=draft.derived,
        compose=compose, problems=draft.problems, notes=draft.notes,
        updated_at=_epoch_ms(config.get("updated_at")))


def read_app_dir(folder: Path, *, store: str | None = None,
                 arch: str | None = None) -> AppDefinition:
    """Read one ``apps/<id>`` folder."""
    common.check_folder(folder)
    yaml_name = next((n for n in COMPOSE_YAML if common.regular_file(folder, n)), None)
    files = frozenset(n for n in (LOGO_FILE,) if common.regular_file(folder, n)
                      and not (folder / "metadata").is_symlink())
    metadata_ok = not (folder / "metadata").is_symlink()
    return parse_app(
        common.read_file(folder, CONFIG_FILE),
        compose_json=common.read_optional(folder, COMPOSE_JSON),
        compose_yaml=common.read_file(folder, yaml_name) if yaml_name else None,
        description_md=common.read_optional(folder, DESCRIPTION_FILE) if metadata_ok else None,
        files=files, folder_name=folder.name, store=store, arch=arch)


def _epoch_ms(value: object) -> str | None:
    """Turn Runtipi's `updated_at` (milliseconds since 1970) into an ISO time, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 10**14:
        return None
    return datetime.fromtimestamp(value / 1000, UTC).isoformat(timespec="seconds")
