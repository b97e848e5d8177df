"""Connect an app to the installed instances of the apps it depends on (Umbrel ``dependencies``).

A dependency is served by one installed instance of that app id (the one named like the app,
else the first by name). The dependent receives the variables it uses of that instance's
exports (its ``exports.json``, else its ``.env``; never its parameters' secrets unless
exported), and joins the instance's own link network (``<project>_stackhub_link``, created by
the dependency's project; catalog/readers/umbrel.py) where the dependency's services answer to
their Umbrel container names: a variable naming a container (Umbrel's fixed IP) gets that
name. The dependency's data folder becomes an allowed bind root of the dependent (Umbrel apps
mount, for instance, lnd's folder read-only).
"""

from __future__ import annotations

import contextlib
import json

from stackhub import labels
from stackhub.adapters.compose import COMPOSE_FILE, ENV_FILE
from stackhub.apps.render import Rendered, parse_env_file_text
from stackhub.catalog.models import AppDefinition
from stackhub.config import Paths
from stackhub.errors import Invalid
from stackhub.state.instances import InstanceRecord

LINK_NETWORK = "stackhub_link"
"""The link network's key in a dependency's compose file (catalog/readers/umbrel.py)."""


def app_id_of(record: InstanceRecord) -> str:
    """Return the app id an instance was installed from."""
    return str(record.definition.get("id") or record.app_ref.rsplit("/", 1)[-1])


def providers(app: AppDefinition, records: list[InstanceRecord], *, exclude: str,
              strict: bool = True) -> dict[str, InstanceRecord]:
    """Pick the instance serving each dependency; raise Invalid naming the missing ones."""
    found: dict[str, InstanceRecord] = {}
    missing: list[str] = []
    for dep in app.dependencies:
        mine = sorted((r for r in records if r.name != exclude and app_id_of(r) == dep),
                      key=lambda r: (r.name != dep, r.name))
        if mine:
            found[dep] = mine[0]
        else:
            missing.append(dep)
    if missing and strict:
        them = "it" if len(missing) == 1 else "them"
        raise Invalid(f"{app.ref} needs {', '.join(repr(m) for m in missing)} installed first: "
                      f"install {them} first, or install with its dependencies (CLI "
                      "--with-deps)", details={"missing_dependencies": missing})
    return found


def exported(paths: Paths, record: InstanceRecord) -> dict[str, str]:
    """Return what an instance offers its dependents: its .env values, exports over them."""
    folder = paths.instance_dir(record.name)
    values: dict[str, str] = {}
    with contextlib.suppress(OSError):
        values.update(parse_env_file_text((folder / ENV_FILE).read_text()))
    try:
        data = json.loads((folder / "exports.json").read_text())
    except (OSError, ValueError):
        data = {}
    if isinstance(data, dict):
        values.update({str(k): v for k, v in data.items() if isinstance(v, str)})
    return values


def link_network(record: InstanceRecord) -> str:
    """Return the engine name of an instance's link network."""
    return f"{labels.project_name(record.name)}_{LINK_NETWORK}"


def wire(app: AppDefinition, rendered: Rendered, found: dict[str, InstanceRecord], *,
         paths: Paths, values: dict[str, str], platform: dict[str, str]) -> list[str]:
    """Fill the dependency variables and join the link networks; return extra bind roots."""
    roots: list[str] = []
    services = rendered.compose.get("services")
    for dep, record in found.items():
        exposes = record.definition.get("exposes")
        exposes = exposes if isinstance(exposes, dict) else {}
        offered = exported(paths, record)
        given: list[str] = []
        for name, source in app.imports.items():
            if source != dep or name in values or name in platform:
                continue
            if name in exposes:
                rendered.env[name] = f"{dep}_{exposes[name]}_1"
            elif name in offered:
                rendered.env[name] = offered[name]
            else:
                rendered.notes.append(f"{record.name} ({dep}) does not export {name}; it is "
                                      "left empty")
                continue
            given.append(name)
        roots.append(str(paths.instance_data(record.name)))
        if exposes and isinstance(services, dict):
            key = f"{LINK_NETWORK}_{len(roots)}"
            networks = rendered.compose.setdefault("networks", {})
            networks[key] = {"external": True, "name": link_network(record)}
            for service in services.values():
                _join(service, key)
        rendered.notes.append(
            f"uses {record.name} for {dep}" + (f" (receives {', '.join(given)})" if given
                                                 else "")
            + (f"; joins its link network {link_network(record)}" if exposes else ""))
    return roots


def _join(service: object, key: str) -> None:
    """Add a network to a service (not one sharing another's network namespace)."""
    if not isinstance(service, dict) or "network_mode" in service:
        return
    raw = service.get("networks")
    if raw is None:
        service["networks"] = {"default": None, key: None}
    elif isinstance(raw, list):
        service["networks"] = [*raw, key]
    elif isinstance(raw, dict):
        raw[key] = None
    else:
        raise Invalid("a service's networks must be a list or a mapping")


def link_users(paths: Paths, record: InstanceRecord, others: list[InstanceRecord]) -> list[str]:
    """Return the instances whose project joins `record`'s link network."""
    wanted = link_network(record)
    users: list[str] = []
    for other in others:
        compose = paths.instance_dir(other.name) / COMPOSE_FILE
        try:
            text = compose.read_text() if compose.is_file() else ""
        except OSError:
            text = ""
        if wanted in text:
            users.append(other.name)
    return users
