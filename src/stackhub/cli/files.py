"""``stackhub files ...``: browse, download and upload an instance's data folder.

Transfers stream through the API (the server confines every path to the instance's folder);
long ones show a progress bar on a terminal. Downloads land in a temp file next to DEST and are
renamed into place once complete.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer

from stackhub.cli.client import Client, ClientError, check_path, error_of, query
from stackhub.cli.output import console, emit_json, escape, fail, table
from stackhub.cli.transport import CONNECT_TIMEOUT, READ_TIMEOUT, HttpTransport

app = typer.Typer(help="Browse, download and upload files of an app's data folder.",
                  no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
CHUNK = 1024 * 1024
PROGRESS_FROM = 8 * 1024 * 1024  # bytes: smaller transfers finish before a bar helps


def split_target(target: str, *, need_path: bool) -> tuple[str, str]:
    """Split NAME[:PATH] into the instance name and the path inside its data folder."""
    name, colon, path = target.partition(":")
    if not name:
        raise ClientError(f"{target!r}: give NAME:PATH (the instance, then a path inside its "
                          "data folder)", code="usage")
    if need_path and not colon:
        raise ClientError(f"{target!r}: give NAME:PATH, e.g. {name}:config/app.ini",
                          code="usage")
    return name, path.strip("/") if path not in ("", "/") else ""


def _base(name: str) -> str:
    return check_path(f"/api/instances/{name}/files")


def _size(value: int) -> str:
    step = 1024.0
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < step or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= step
    return str(value)


@app.command("ls")
def ls_cmd(target: Annotated[str, typer.Argument(metavar="NAME[:PATH]",
                                                 help="The instance, and a folder inside its "
                                                 "data folder.")],
           as_json: JsonOpt = False) -> None:
    """List a folder: mode, owner, size, date, name (links with their target, never followed)."""
    try:
        name, path = split_target(target, need_path=False)
        read = Client().request("GET", _base(name), params={"path": path})
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(read)
        return
    out = table("Mode", "Owner", "Size", "Modified", "Name")
    for entry in read["entries"]:
        shown = escape(entry["name"]) + ("/" if entry["kind"] == "folder" else "")
        if entry["kind"] == "link":
            shown += f" -> {escape(entry['link_target'] or '?')}"
        modified = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry["modified"]))
        size = "" if entry["kind"] == "folder" else _size(entry["size"])
        out.add_row(entry["mode"], f"{entry['uid']}:{entry['gid']}", size, modified, shown)
    console.print(out)
    console.print(f"{len(read['entries'])} entries, {_size(read['free'])} free")


class _Bar:
    """A rich progress bar on stderr for long transfers, nothing otherwise."""

    def __init__(self, label: str, total: int | None) -> None:
        self.progress: Any = None
        if total is not None and total >= PROGRESS_FROM and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.progress = Progress("[progress.description]{task.description}", BarColumn(),
                                     DownloadColumn(), TransferSpeedColumn(),
                                     TimeRemainingColumn(), transient=True)
            self.progress.start()
            self.task = self.progress.add_task(label, total=total)

    def advance(self, count: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, count)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _connection(transport: HttpTransport) -> http.client.HTTPConnection:
    if transport.tls:
        import ssl

        return http.client.HTTPSConnection(transport.host, transport.port,
                                           timeout=CONNECT_TIMEOUT,
                                           context=ssl.create_default_context())
    return http.client.HTTPConnection(transport.host, transport.port, timeout=CONNECT_TIMEOUT)


@contextlib.contextmanager
def _download(client: Client, target: str) -> Iterator[tuple[int | None, Iterator[bytes]]]:
    """Open a download; yield (length or None, chunks)."""
    transport = client.transport
    if not isinstance(transport, HttpTransport):  # in-process tests: one whole answer
        reply = transport.request("GET", target, None)
        if reply.status >= 400:
            raise error_of(reply.status, reply.body)
        yield len(reply.body), iter([reply.body])
        return
    conn = _connection(transport)
    try:
        try:
            conn.request("GET", transport.prefix + target, headers=transport.headers)
            if conn.sock is not None:
                conn.sock.settimeout(READ_TIMEOUT)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as err:
            raise ClientError(f"talking to {client.url} failed: {err}") from err
        if response.status >= 400:
            raise error_of(response.status, response.read())

        def chunks() -> Iterator[bytes]:
            try:
                while chunk := response.read1(CHUNK):
                    yield chunk
            except (OSError, http.client.HTTPException) as err:
                raise ClientError(f"the download broke off: {err}") from err

        yield response.length, chunks()
    finally:
        conn.close()


@app.command("get")
def get_cmd(source: Annotated[str, typer.Argument(metavar="NAME:PATH",
                                                  help="A file (or a folder, fetched as a zip) "
                                                  "in the instance's data folder.")],
            dest: Annotated[Path, typer.Argument(help="Where to save it (a folder: under the "
                                                 "same name).")]) -> None:
    """Download a file, or a folder as a .zip."""
    try:
        name, path = split_target(source, need_path=False)
        client = Client()
        listing: Any = None
        with contextlib.suppress(ClientError):  # a folder lists; a file answers 422
            listing = client.request("GET", _base(name), params={"path": path})
        leaf = (path.rsplit("/", 1)[-1] if path else name) + (".zip" if listing else "")
        final = dest / leaf if dest.is_dir() else dest
        temp = final.with_name(f".{final.name}.part")
        target = _base(name) + "/download" + query({"path": path})
        written = 0
        with _download(client, target) as (length, chunks), temp.open("wb") as out:
            bar = _Bar(f"get {leaf}", length)
            try:
                for chunk in chunks:
                    out.write(chunk)
                    written += len(chunk)
                    bar.advance(len(chunk))
            finally:
                bar.close()
            if length is not None and written != length:
                raise ClientError(f"the download ended after {written} of {length} bytes")
        temp.replace(final)
    except ClientError as err:
        with contextlib.suppress(UnboundLocalError, OSError):
            temp.unlink(missing_ok=True)
        fail(err)
    except OSError as err:
        fail(ClientError(f"cannot write {dest}: {err.strerror or err}", code="usage"))
    console.print(f"Saved {escape(str(final))} ({_size(written)})")


def _send(client: Client, target: str, source: BinaryIO, length: int,
          progress: Callable[[int], None]) -> Any:
    transport = client.transport
    if not isinstance(transport, HttpTransport):
        reply = transport.request("PUT", target, source.read())
        if reply.status >= 400:
            raise error_of(reply.status, reply.body)
        return json.loads(reply.body)
    conn = _connection(transport)
    try:
        try:
            conn.putrequest("PUT", transport.prefix + target, skip_accept_encoding=True)
            for key, value in transport.headers.items():
                conn.putheader(key, value)
            conn.putheader("Content-Type", "application/octet-stream")
            conn.putheader("Content-Length", str(length))
            conn.endheaders()
            if conn.sock is not None:
                conn.sock.settimeout(READ_TIMEOUT)
            while chunk := source.read(CHUNK):
                conn.send(chunk)
                progress(len(chunk))
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as err:
            raise ClientError(f"the upload to {client.url} broke off: {err}") from err
        if response.status >= 400:
            raise error_of(response.status, body)
        return json.loads(body)
    finally:
        conn.close()


@app.command("put")
def put_cmd(source: Annotated[Path, typer.Argument(help="A local file.")],
            dest: Annotated[str, typer.Argument(metavar="NAME:PATH",
                                                help="Where in the data folder (a folder: "
                                                "under the same name).")],
            overwrite: Annotated[bool, typer.Option("--overwrite",
                                                    help="Replace an existing file.")]
            = False) -> None:
    """Upload a file (streamed; the server checks its size cap and free space first)."""
    try:
        name, path = split_target(dest, need_path=False)
        if not source.is_file():
            raise ClientError(f"{source} is not a file (upload folders file by file or as a "
                              "zip)", code="usage")
        client = Client()
        folder = not path or dest.endswith("/")
        if not folder:
            with contextlib.suppress(ClientError):
                client.request("GET", _base(name), params={"path": path})
                folder = True
        remote = f"{path}/{source.name}".strip("/") if folder else path
        length = source.stat().st_size
        target = _base(name) + "/upload" + query({"path": remote, "overwrite": overwrite})
        bar = _Bar(f"put {source.name}", length)
        try:
            with source.open("rb") as handle:
                result = _send(client, target, handle, length, bar.advance)
        finally:
            bar.close()
    except ClientError as err:
        fail(err)
    except OSError as err:
        fail(ClientError(f"cannot read {source}: {err.strerror or err}", code="usage"))
    console.print(f"Uploaded {escape(name)}:{escape(result['name'])} ({_size(result['size'])})")
