"""Turn a pasted `docker run` command into the equivalent compose project, never running it.

The command is split like a POSIX shell would (quotes, backslash-newlines) but nothing is
expanded or executed: `$VAR` stays text. Every option docker documents for `run` that has a
compose equivalent is mapped; options that only make sense for one interactive run (`-d`,
`-it`, `--rm`) are dropped with a note; anything else is refused by name, so nothing the user
asked for is silently lost. Risky options (`--privileged`, host network, devices...) become the
compose keys the planner's risk analysis already flags.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stackhub.apps.models import default_name
from stackhub.errors import Invalid

MAX_COMMAND = 16 * 1024
_SIZE = re.compile(r"^\d+(\.\d+)?[bkmgBKMG]?$")

Handler = Callable[["_Builder", str], None]


@dataclass
class DockerRun:
    """A converted command: the compose project, the service name, and what was dropped."""

    compose: dict[str, Any]
    name: str
    notes: list[str] = field(default_factory=list)


@dataclass
class _Builder:
    service: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    name: str | None = None
    named_volumes: set[str] = field(default_factory=set)
    networks: set[str] = field(default_factory=set)

    def append(self, key: str, value: Any) -> None:
        self.service.setdefault(key, []).append(value)

    def put(self, key: str, name: str, value: Any) -> None:
        self.service.setdefault(key, {})[name] = value


def _env(b: _Builder, value: str) -> None:
    key, sep, val = value.partition("=")
    if not key:
        raise Invalid(f"-e {value!r}: give NAME=value")
    # `-e NAME` alone passes the caller's variable: there is no caller here, so it is empty
    b.put("environment", key, val if sep else "")
    if not sep:
        b.notes.append(f"-e {key} takes a value from the shell that ran docker; "
                       "set it in the environment of the service")


def _volume(b: _Builder, value: str) -> None:
    parts = value.split(":")
    if len(parts) >= 2 and not parts[0].startswith(("/", ".", "~")) and parts[0]:
        b.named_volumes.add(parts[0])
    if parts[0].startswith("~"):
        raise Invalid(f"-v {value!r}: '~' means the home folder of whoever runs docker; "
                      "give an absolute path")
    b.append("volumes", value)


def _mount(b: _Builder, value: str) -> None:
    fields = dict(item.partition("=")[::2] for item in value.split(","))
    kind = fields.get("type", "volume")
    source = fields.get("source") or fields.get("src")
    target = fields.get("target") or fields.get("destination") or fields.get("dst")
    if not target:
        raise Invalid(f"--mount {value!r}: a target is required")
    entry: dict[str, Any] = {"type": kind, "target": target}
    if source:
        entry["source"] = source
        if kind == "volume":
            b.named_volumes.add(source)
    if "readonly" in fields or "ro" in fields:
        entry["read_only"] = True
    b.append("volumes", entry)


def _label(b: _Builder, value: str) -> None:
    key, _, val = value.partition("=")
    b.put("labels", key, val)


def _network(b: _Builder, value: str) -> None:
    if value in ("host", "none") or value.startswith(("container:", "service:")):
        b.service["network_mode"] = value
    elif value != "bridge":
        b.networks.add(value)
        b.append("networks", value)


def _restart(b: _Builder, value: str) -> None:
    if value.split(":")[0] not in ("no", "always", "unless-stopped", "on-failure"):
        raise Invalid(f"--restart {value!r}: use no, always, unless-stopped or on-failure[:N]")
    b.service["restart"] = value


def _size(key: str) -> Handler:
    def handle(b: _Builder, value: str) -> None:
        if not _SIZE.match(value):
            raise Invalid(f"--{key.replace('_', '-')} {value!r} is not a size such as 512m")
        b.service[key] = value
    return handle


def _gpus(b: _Builder, value: str) -> None:
    device: dict[str, Any] = {"driver": "nvidia", "capabilities": ["gpu"]}
    if value == "all":
        device["count"] = "all"
    elif value.startswith("device="):
        device["device_ids"] = value.removeprefix("device=").split(",")
    else:
        device["count"] = int(value) if value.isdigit() else "all"
    b.service.setdefault("deploy", {}).setdefault("resources", {}).setdefault(
        "reservations", {}).setdefault("devices", []).append(device)


def _cpus(b: _Builder, value: str) -> None:
    try:
        float(value)
    except ValueError as err:
        raise Invalid(f"--cpus {value!r} is not a number") from err
    b.service["cpus"] = value


def _ulimit(b: _Builder, value: str) -> None:
    name, _, limits = value.partition("=")
    soft, _, hard = limits.partition(":")
    if not name or not soft.lstrip("-").isdigit() or (hard and not hard.lstrip("-").isdigit()):
        raise Invalid(f"--ulimit {value!r}: use NAME=SOFT[:HARD]")
    b.put("ulimits", name, {"soft": int(soft), "hard": int(hard)} if hard else int(soft))


def _key_value(key: str) -> Handler:
    def handle(b: _Builder, value: str) -> None:
        name, _, val = value.partition("=")
        b.put(key, name, val)
    return handle


def _health(key: str) -> Handler:
    def handle(b: _Builder, value: str) -> None:
        check = b.service.setdefault("healthcheck", {})
        check[key] = ["CMD-SHELL", value] if key == "test" else (
            int(value) if key == "retries" else value)
    return handle


def _set(key: str) -> Handler:
    def handle(b: _Builder, value: str) -> None:
        b.service[key] = value
    return handle


def _add(key: str) -> Handler:
    def handle(b: _Builder, value: str) -> None:
        b.append(key, value)
    return handle


def _name(b: _Builder, value: str) -> None:
    b.name = value


def _entrypoint(b: _Builder, value: str) -> None:
    b.service["entrypoint"] = [value] if value else []


def _env_file(_: _Builder, value: str) -> None:
    raise Invalid(f"--env-file {value!r} reads a file on the machine that ran docker; paste its "
                  "variables as -e NAME=value instead")


def _note(text: str) -> Handler:
    def handle(b: _Builder, _: str) -> None:
        b.notes.append(text)
    return handle


VALUED: dict[str, Handler] = {
    "-p": _add("ports"), "--publish": _add("ports"),
    "-v": _volume, "--volume": _volume, "--mount": _mount,
    "-e": _env, "--env": _env, "--env-file": _env_file,
    "-l": _label, "--label": _label, "--name": _name,
    "--restart": _restart, "--network": _network, "--net": _network,
    "--network-alias": _note("--network-alias was left out: the service name is its alias"),
    "-h": _set("hostname"), "--hostname": _set("hostname"),
    "-u": _set("user"), "--user": _set("user"),
    "-w": _set("working_dir"), "--workdir": _set("working_dir"),
    "--entrypoint": _entrypoint,
    "--device": _add("devices"), "--cap-add": _add("cap_add"), "--cap-drop": _add("cap_drop"),
    "--security-opt": _add("security_opt"), "--group-add": _add("group_add"),
    "--dns": _add("dns"), "--dns-search": _add("dns_search"), "--add-host": _add("extra_hosts"),
    "--expose": _add("expose"), "--tmpfs": _add("tmpfs"),
    "--sysctl": _key_value("sysctls"), "--ulimit": _ulimit,
    "-m": _size("mem_limit"), "--memory": _size("mem_limit"),
    "--memory-reservation": _size("mem_reservation"), "--memory-swap": _size("memswap_limit"),
    "--shm-size": _size("shm_size"), "--cpus": _cpus, "--cpu-shares": _set("cpu_shares"),
    "--cpuset-cpus": _set("cpuset"), "--gpus": _gpus,
    "--pid": _set("pid"), "--ipc": _set("ipc"), "--uts": _set("uts"),
    "--userns": _set("userns_mode"), "--cgroupns": _set("cgroup"),
    "--stop-signal": _set("stop_signal"), "--stop-timeout": _set("stop_grace_period"),
    "--platform": _set("platform"), "--pull": _set("pull_policy"),
    "--log-driver": _note("--log-driver was left out: StackHub reads the default json logs"),
    "--log-opt": _note("--log-opt was left out with --log-driver"),
    "--health-cmd": _health("test"), "--health-interval": _health("interval"),
    "--health-timeout": _health("timeout"), "--health-retries": _health("retries"),
    "--health-start-period": _health("start_period"),
    "--mac-address": _set("mac_address"), "--ip": _note("--ip was left out: StackHub picks "
                                                        "the instance's subnet"),
}
FLAGS: dict[str, Callable[[_Builder], None]] = {
    "-d": lambda b: None, "--detach": lambda b: None,
    "-i": lambda b: b.service.__setitem__("stdin_open", True),
    "--interactive": lambda b: b.service.__setitem__("stdin_open", True),
    "-t": lambda b: b.service.__setitem__("tty", True),
    "--tty": lambda b: b.service.__setitem__("tty", True),
    "--rm": lambda b: b.notes.append("--rm was left out: an installed app keeps its container"),
    "--privileged": lambda b: b.service.__setitem__("privileged", True),
    "--init": lambda b: b.service.__setitem__("init", True),
    "--read-only": lambda b: b.service.__setitem__("read_only", True),
    "--no-healthcheck": lambda b: b.service.__setitem__("healthcheck", {"disable": True}),
    "-P": lambda b: b.notes.append("-P (publish all) was left out: publish ports with -p"),
    "--publish-all": lambda b: b.notes.append("--publish-all was left out: publish ports "
                                              "with -p"),
}


def _words(command: str) -> list[str]:
    if len(command) > MAX_COMMAND:
        raise Invalid(f"the command is longer than {MAX_COMMAND} characters")
    try:
        words = shlex.split(command.replace("\\\r\n", " ").replace("\\\n", " "), posix=True)
    except ValueError as err:
        raise Invalid(f"the command cannot be read: {err}") from err
    for prefix in (["sudo"], ["docker", "container", "run"], ["docker", "run"],
                   ["podman", "run"]):
        if words[:len(prefix)] == prefix:
            words = words[len(prefix):]
    if not words:
        raise Invalid("give a docker run command with an image")
    if any(sep in words for sep in ("&&", "||", ";", "|")):
        raise Invalid("paste one docker run command (no &&, ;, | or ||)")
    return words


def _split_option(word: str) -> tuple[str, str | None]:
    """Return the option and its attached value (`--name=x`, `-p8080:80`), if any."""
    if word.startswith("--"):
        option, sep, value = word.partition("=")
        return option, value if sep else None
    if word[:2] in VALUED and len(word) > 2:
        return word[:2], word[2:]
    return word, None  # a flag, or bundled flags such as -dit


def convert(command: str) -> DockerRun:
    """Convert one `docker run` command line into a one-service compose project."""
    words = _words(command)
    b = _Builder()
    index = 0
    while index < len(words) and words[index].startswith("-") and words[index] != "-":
        word = words[index]
        index += 1
        option, value = _split_option(word)
        if option in VALUED:
            if value is None:
                if index >= len(words):
                    raise Invalid(f"{option} needs a value")
                value = words[index]
                index += 1
            VALUED[option](b, value)
        elif option in FLAGS and value is None:
            FLAGS[option](b)
        elif option.startswith("-") and not option.startswith("--") and len(option) > 2 and \
                all(f"-{c}" in FLAGS for c in option[1:]):
            for letter in option[1:]:
                FLAGS[f"-{letter}"](b)
        else:
            raise Invalid(f"the option {option} has no compose equivalent StackHub knows; "
                          "remove it or write a compose file")
    if index >= len(words):
        raise Invalid("the command names no image")
    image = words[index]
    service: dict[str, Any] = {"image": image, **b.service}
    if words[index + 1:]:
        service["command"] = words[index + 1:]
    if "restart" not in service:
        service["restart"] = "unless-stopped"
    base = image.rsplit("/", 1)[-1].split("@")[0].split(":")[0]
    name = default_name(b.name or base)
    compose: dict[str, Any] = {"services": {name: service}}
    if b.named_volumes:
        compose["volumes"] = {volume: {} for volume in sorted(b.named_volumes)}
    if b.networks:
        compose["networks"] = {net: {"external": True} for net in sorted(b.networks)}
        b.notes.append("the networks " + ", ".join(sorted(b.networks)) + " must already exist")
    return DockerRun(compose=compose, name=name, notes=b.notes)
