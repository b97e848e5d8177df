"""What a store hook may ask of its own app's containers through the sandbox's compose proxy.

A fixed, small vocabulary, read from the argument lists Umbrel's hooks pass to ``app`` and
``docker`` (``app compose <id> exec -T web php artisan key:generate``, ``docker exec
<id>_db_1 psql ...``), each mapped to a compose command on StackHub's own project of this
instance, with its accepted files: ``exec`` and ``run --rm`` of a command in one of the app's
services, ``up``/``start``/``stop``/``restart`` of its services. No option that would add a
mount, a port, a privilege or another image passes: anything else, and anything naming another
app or a container that is not the app's own, is refused with a message saying why. A hook is
only served once the exported values were risk-checked against the accepted plan (post hooks
after StackHub started the project; a pre-start hook after a first, checked run of
``exports.sh``, apps/flows.py), so nothing a hook asks can start a container before that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stackhub.adapters.sandbox_proxy import Reply, compose_call, refused
from stackhub.apps.loopback import project_files

CALL_TIMEOUT = 300.0
"""Seconds one request may take (and never more than the sandbox run has left)."""
_FLAGS = {"-T", "--no-TTY", "-i", "--interactive", "-t", "--tty", "-it", "-ti", "-iT", "-Ti"}
_VALUED = {"-w": "-w", "--workdir": "-w", "-u": "-u", "--user": "-u", "-e": "-e",
           "--env": "-e"}
_LIFECYCLE = ("start", "stop", "restart")


class Refused(Exception):
    """A request outside the vocabulary (the message says why)."""


@dataclass(frozen=True)
class Call:
    """One checked request: a compose verb on the instance's own project."""

    verb: str
    services: tuple[str, ...]
    command: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def args(self) -> list[str]:
        """Return the compose arguments after the project's own."""
        if self.verb == "exec":
            return ["exec", "-T", *self.options, self.services[0], *self.command]
        if self.verb == "run":
            return ["run", "--rm", "-T", *self.options, self.services[0], *self.command]
        if self.verb == "up":
            return ["up", "--detach", "--pull", "missing", "--quiet-pull", *self.options,
                    *self.services]
        return [self.verb, *self.options, *self.services]

    def describe(self) -> str:
        """Say what ran, without the command's arguments (they may hold passwords)."""
        what = f"{self.verb} {' '.join(self.services) or '(all services)'}"
        if self.command:
            what += f": {Path(self.command[0]).name} ({len(self.command) - 1} arguments)"
        return what


@dataclass(frozen=True)
class Scope:
    """The instance a hook belongs to: its app id, services and container names."""

    app_id: str
    instance: str
    services: frozenset[str]

    def service_of(self, container: str) -> str | None:
        """Return the service a container name means (Umbrel's or StackHub's name), if own."""
        for service in self.services:
            if container in (f"{self.app_id}_{service}_1", f"{self.app_id}-{service}-1",
                             f"stackhub-{self.instance}-{service}-1"):
                return service
        return None


def parse(argv: list[str], scope: Scope) -> Call:
    """Read one argument list (``app ...`` or ``docker ...``) into a Call; raise Refused."""
    if argv[:2] == ["app", "compose"]:
        if len(argv) < 4:
            raise Refused("app compose needs an app id and a command")
        _own(argv[2], scope)
        return _compose(argv[3], argv[4:], scope)
    if argv[:1] == ["app"] and len(argv) >= 2 and argv[1] in _LIFECYCLE:
        if len(argv) != 3:
            raise Refused(f"app {argv[1]} takes one app id")
        _own(argv[2], scope)
        return Call(argv[1], ())
    if argv[:2] == ["docker", "exec"]:
        options, rest = _exec_options(argv[2:])
        if len(rest) < 2:
            raise Refused("docker exec needs a container and a command")
        service = scope.service_of(rest[0])
        if service is None:
            raise Refused(f"container {rest[0]!r} is not one of this app's own containers "
                          f"(a hook may only run commands in {scope.app_id}'s containers)")
        return Call("exec", (service,), tuple(rest[1:]), options)
    shown = " ".join(argv[:3])
    raise Refused(f"{shown}: a hook may only run 'app compose {scope.app_id} "
                  "exec|run|up|start|stop|restart ...' and 'docker exec' in the app's own "
                  "containers; nothing else of app or docker")


def _own(app: str, scope: Scope) -> None:
    if app != scope.app_id:
        raise Refused(f"app {app!r}: a hook may only act on its own app ({scope.app_id})")


def _compose(verb: str, rest: list[str], scope: Scope) -> Call:
    if verb in ("exec", "run"):
        options, tail = _exec_options(rest, run=verb == "run")
        if len(tail) < 2:
            raise Refused(f"app compose {verb} needs a service and a command")
        return Call(verb, (_service(tail[0], scope),), tuple(tail[1:]), options)
    if verb == "up":
        return _up(rest, scope)
    if verb in _LIFECYCLE:
        flags: list[str] = []
        services: list[str] = []
        items = iter(rest)
        for item in items:
            if item in ("-t", "--timeout") and verb != "start":
                flags += ["-t", _seconds(next(items, ""))]
            elif item.startswith("-"):
                raise Refused(f"app compose {verb} {item}: option not allowed")
            else:
                services.append(_service(item, scope))
        return Call(verb, tuple(services), (), tuple(flags))
    raise Refused(f"app compose {verb}: not allowed (only exec, run, up, start, stop, "
                  "restart of the app's own services)")


def _up(rest: list[str], scope: Scope) -> Call:
    options: list[str] = []
    services: list[str] = []
    items = iter(rest)
    for item in items:
        if item in ("-d", "--detach", "--remove-orphans"):
            continue  # always detached
        if item in ("--wait", "--no-deps"):
            options.append(item)
        elif item == "--wait-timeout" or item.startswith("--wait-timeout="):
            value = item.partition("=")[2] if "=" in item else next(items, "")
            options += ["--wait-timeout", _seconds(value)]
        elif item.startswith("-"):
            raise Refused(f"app compose up {item}: option not allowed (StackHub starts the "
                          "accepted project as it is)")
        else:
            services.append(_service(item, scope))
    return Call("up", tuple(services), (), tuple(options))


def _exec_options(rest: list[str], *, run: bool = False) -> tuple[tuple[str, ...], list[str]]:
    """Split allowed exec/run options from the service (or container) and command."""
    options: list[str] = []
    index = 0
    while index < len(rest) and rest[index].startswith("-"):
        item = rest[index]
        name, eq, value = item.partition("=")
        if item in _FLAGS or (run and item in ("--rm", "--no-deps")):
            if item == "--no-deps":
                options.append(item)
            index += 1
            continue
        if name in _VALUED:
            if not eq:
                index += 1
                if index >= len(rest):
                    raise Refused(f"option {item} needs a value")
                value = rest[index]
            options += [_VALUED[name], value]
            index += 1
            continue
        raise Refused(f"option {item}: not allowed (no new mounts, ports, privileges or "
                      "images)")
    return tuple(options), rest[index:]


def _service(name: str, scope: Scope) -> str:
    if name not in scope.services:
        raise Refused(f"{name!r} is not a service of {scope.app_id} (services: "
                      f"{', '.join(sorted(scope.services))})")
    return name


def _seconds(value: str) -> str:
    if not value.isdigit() or not 0 < int(value) <= 600:
        raise Refused(f"{value!r}: a time limit must be 1 to 600 seconds")
    return value


class HookProxy:
    """Answer a hook's requests on this instance's project; log each one."""

    def __init__(self, scope: Scope, *, compose_argv: list[str], project: str,
                 project_dir: Path) -> None:
        """Keep what every call needs."""
        self.scope = scope
        self.compose_argv = compose_argv
        self.project = project
        self.project_dir = project_dir
        self.log: list[str] = []
        self.acted = False
        """Whether a request reached Compose (containers may have changed)."""

    def __call__(self, argv: list[str], stdin: bytes, left: float) -> Reply:
        """Check one request and run it, or refuse it; either way one line in the log."""
        try:
            call = parse(argv, self.scope)
        except Refused as err:
            self.log.append(f"stackhub: proxy refused: {err}")
            return refused(str(err))
        if stdin and call.verb not in ("exec", "run"):
            stdin = b""
        self.acted = True
        reply = compose_call(self.compose_argv, self.project, self.project_dir, call.args(),
                             stdin=stdin, timeout=min(CALL_TIMEOUT, left - 0.5),
                             project_files=project_files(self.project_dir))
        self.log.append(f"stackhub: proxy: {call.describe()} -> exit {reply.code}")
        return reply
