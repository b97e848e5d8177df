"""Shared app texts and helpers for the unit tests (no engine: fakes only)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from stackhub.apps.models import AppDirSource, ComposeSource, InstallRequest, PlanRequest
from stackhub.events import Event

IMAGE = "ghcr.io/stackhub-test/web:1"
DB_IMAGE = "ghcr.io/stackhub-test/db:2"

MANIFEST = """\
format: stackhub/v1
id: blog
name: Blog
version: "1.0"
title: {en: A blog}
main: {service: web, port: 80}
parameters:
  - {name: WEB_PORT, type: port, default: 18080}
  - {name: DB_PASSWORD, type: secret, length: 24}
  - {name: TITLE, type: string, default: My blog}
"""

COMPOSE = f"""\
services:
  web:
    image: {IMAGE}
    ports: ["${{WEB_PORT}}:80"]
    environment:
      DB_PASSWORD: ${{DB_PASSWORD}}
      TITLE: ${{TITLE}}
    volumes: ["./data:/data"]
  db:
    image: {DB_IMAGE}
    environment:
      POSTGRES_PASSWORD: ${{DB_PASSWORD}}
    volumes: ["dbdata:/var/lib/postgresql/data"]
volumes:
  dbdata: {{}}
"""

PLAIN_COMPOSE = f"""\
services:
  web:
    image: {IMAGE}
    ports: ["18090:80"]
"""


def app_request(name: str | None = "blog", values: dict[str, str] | None = None,
                compose: str = COMPOSE, manifest: str = MANIFEST,
                accept: str | None = None) -> InstallRequest:
    """An install request for the StackHub-format test app."""
    return InstallRequest(source=AppDirSource(manifest=manifest, compose=compose), name=name,
                          values=values or {}, accept_risks=accept)


def compose_request(text: str = PLAIN_COMPOSE, name: str | None = "plain",
                    accept: str | None = None) -> InstallRequest:
    """An install request for a plain compose file."""
    return InstallRequest(source=ComposeSource(compose=text), name=name, accept_risks=accept)


def plan_request(request: InstallRequest) -> PlanRequest:
    """The plan part of an install request."""
    return PlanRequest(source=request.source, name=request.name, values=request.values)


def api_body(request: InstallRequest) -> dict[str, Any]:
    """An install request as JSON for the HTTP API."""
    return request.model_dump(mode="json")


def drain(queue: asyncio.Queue[Event], keep: Callable[[Event], bool] = lambda e: True) -> \
        list[Event]:
    """Take every queued event (that `keep` accepts)."""
    events = []
    while not queue.empty():
        event = queue.get_nowait()
        if keep(event):
            events.append(event)
    return events


def instance_record(name: str, *, status: str = "running",
                    ports: list[tuple[str, int, int]] | None = None) -> Any:
    """An InstanceRecord for the records table; ports are (service, host, container)."""
    from stackhub.apps.models import PortMapping
    from stackhub.state.instances import InstanceRecord

    return InstanceRecord(
        name=name, app_ref="local/blog", store="local", format="stackhub", version="1.0",
        revision=1, status=status, main_service="web", main_port=80, main_path="/",
        ports=[PortMapping(service=s, host_port=h, container_port=c) for s, h, c in ports or []],
        parameters={"TITLE": "t", "DB_PASSWORD": "hidden-secret"}, secret_names=["DB_PASSWORD"],
        definition={"id": "blog", "store": "local", "name": "Blog",
                    "compose": {"services": {"web": {"image": IMAGE}}},
                    "main": {"service": "web", "port": 80}},
        error=None, update_available=None, created_at="", updated_at="")


def create_instance(records: Any, record: Any, kind: str = "install") -> Any:
    """Journal `record` as a new instance with its first operation, as an install does."""
    from stackhub.operations.journal import Journal

    return Journal(records.db).start(kind, record.name, status=None,
                                     create=lambda conn: records.insert(conn, record))


class AsgiTransport:
    """The CLI's transport, carried by a TestClient into the app in process (no sockets)."""

    def __init__(self, client: Any, headers: dict[str, str] | None = None) -> None:
        self.client = client
        self.headers = headers or {}

    def request(self, method: str, target: str, body: bytes | None) -> Any:
        from stackhub.cli.transport import Reply

        headers = {**self.headers, **({"Content-Type": "application/json"} if body else {})}
        answer = self.client.request(method, target, content=body, headers=headers)
        return Reply(answer.status_code, answer.content)

    @contextlib.contextmanager
    def stream(self, target: str, read_timeout: float | None = None) -> Iterator[Any]:
        from stackhub.cli.transport import Stream

        with self.client.stream("GET", target, headers=self.headers) as answer:
            yield Stream(answer.status_code, answer.iter_lines(), answer.read)
