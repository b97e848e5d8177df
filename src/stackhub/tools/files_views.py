"""HTTP routes of the file manager: an instance's data folder (admins and granted members)
and, for admins, a local named volume. Every route takes the path as a query or body field
relative to that folder; ``tools/files.py`` does the confined work.

No ``from __future__ import annotations`` here: the routes are defined inside `build` and
FastAPI must see their dependency types as objects, not as names to look up globally.
"""

import asyncio
import os
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from stackhub.api.deps import AuditDep, PrincipalDep, ServicesDep, require_admin
from stackhub.apps.models import check_name
from stackhub.errors import Invalid, NotFound
from stackhub.tools import files
from stackhub.tools.file_models import (
    ChownRequest,
    ChownResult,
    FileEntry,
    FolderRead,
    MoveRequest,
    PathRequest,
    TextRead,
    TextWrite,
    TrashEmptied,
    TrashEntry,
)
from stackhub.tools.file_service import (
    free_reserve,
    instance_root,
    upload_cap,
    volume_root,
)
from stackhub.tools.files import Root

T = TypeVar("T")
PathQuery = Annotated[str, Query(max_length=4096, description="Relative to the data folder; "
                                 "empty for the folder itself.")]
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


async def instance_files(name: str, services: ServicesDep, principal: PrincipalDep) -> Root:
    """The instance's data folder, for admins and members granted the instance."""
    name = check_name(name)
    if not services.auth.accounts.may_see(principal, name):
        raise NotFound(f"no instance named {name!r}")
    return instance_root(services.paths, services.records, name)


async def volume_files(name: str, services: ServicesDep) -> Root:
    """A local named volume's folder (the router requires an admin)."""
    return await asyncio.to_thread(volume_root, services.engine, name)


async def _run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


def _disposition(filename: str) -> str:
    ascii_name = re.sub(r"[^A-Za-z0-9._-]", "_", filename)[:100] or "download"
    return (f"attachment; filename=\"{ascii_name}\"; "
            f"filename*=UTF-8''{urllib.parse.quote(filename, safe='')}")


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Parse a single `bytes=a-b` range; None for the whole file, Invalid(416) if unusable."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None  # several ranges or another unit: answer with the whole file (allowed)
    first, last = match.group(1), match.group(2)
    if not first:
        length = int(last)
        if length == 0:
            raise _Unsatisfiable(size)
        return max(size - length, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise _Unsatisfiable(size)
    return start, end


class _Unsatisfiable(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def build(root_dep: Callable[..., Awaitable[Root]], *, scope: str) -> APIRouter:
    """The file routes over one kind of folder (`scope` names it in summaries)."""
    router = APIRouter(tags=["files"])
    RootDep = Annotated[Root, Depends(root_dep)]  # noqa: N806 - a type alias

    @router.get("", response_model=FolderRead, summary=f"List a folder of {scope}")
    async def list_folder(root: RootDep, path: PathQuery = "") -> FolderRead:
        """List a folder: sizes, dates, owners, modes; links shown with their target, never
        followed."""
        return await _run(files.listing, root, path)

    @router.get("/download", response_class=StreamingResponse,
                responses={200: {"content": {"application/octet-stream": {}}},
                           206: {"description": "Part of the file (Range)"},
                           416: {"description": "The range is outside the file"}},
                summary=f"Download a file (Range) or a folder as a zip, from {scope}")
    async def download(root: RootDep, request: Request, path: PathQuery = "") -> Response:
        """A file is sent as it is (one byte range allowed); a folder as a streamed ZIP64 of
        its regular files and folders (links and odd names are left out)."""
        if await _run(files.is_folder, root, path):
            parts = files.split_path(path)
            name = (parts[-1] if parts else root.label.split(" ")[-1]) + ".zip"
            chunks: Iterator[bytes] = files.zip_folder(root, path)
            return StreamingResponse(chunks, media_type="application/zip",
                                     headers={"Content-Disposition": _disposition(name)})
        fd, st = await _run(files.open_file, root, path)
        size = st.st_size
        try:
            wanted = _byte_range(request.headers.get("range"), size)
        except _Unsatisfiable:
            os.close(fd)
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        headers = {"Content-Disposition": _disposition(files.split_path(path)[-1]),
                   "Accept-Ranges": "bytes", "X-Content-Type-Options": "nosniff"}
        start, end = wanted if wanted else (0, size - 1)
        headers["Content-Length"] = str(max(end - start + 1, 0))
        status = 200
        if wanted:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return StreamingResponse(files.read_range(fd, start, end), status_code=status,
                                 media_type="application/octet-stream", headers=headers)

    @router.put("/upload", response_model=FileEntry, status_code=201,
                openapi_extra={"requestBody": {"required": True, "content": {
                    "application/octet-stream": {"schema": {"type": "string",
                                                            "format": "binary"}}}}},
                summary=f"Upload a file into {scope}")
    async def upload(root: RootDep, request: Request, audit: AuditDep, path: PathQuery,
                     overwrite: bool = False) -> FileEntry:
        """Stream the request body into a temp file next to the target, then rename it into
        place. Refused before anything is written when the declared size is over the cap
        (413) or the free space (507); checked again while bytes arrive."""
        declared_text = request.headers.get("content-length", "")
        declared = int(declared_text) if declared_text.isdigit() else None
        job = await _run(files.Upload, root, path, declared=declared, overwrite=overwrite,
                         cap=upload_cap(), reserve=free_reserve())
        buffer = bytearray()
        try:
            async for chunk in request.stream():
                buffer += chunk
                if len(buffer) >= files.CHUNK:
                    await _run(job.write, bytes(buffer))
                    buffer.clear()
            if buffer:
                await _run(job.write, bytes(buffer))
            if declared is not None and job.written != declared:
                raise Invalid("the upload ended early (nothing was kept)")
            result = await _run(job.commit)
        except BaseException:
            await _run(job.abort)
            raise
        audit("files.upload", root.label, path=result.name, size=result.size)
        return result

    @router.post("/folder", response_model=FileEntry, status_code=201,
                 summary=f"Create a folder in {scope}")
    async def new_folder(root: RootDep, body: PathRequest) -> FileEntry:
        """Create one folder (its parent must exist), owned by the app's user."""
        return await _run(files.make_folder, root, body.path)

    @router.post("/move", response_model=FileEntry, summary=f"Rename or move in {scope}")
    async def move(root: RootDep, body: MoveRequest, audit: AuditDep) -> FileEntry:
        """Rename or move a file, folder or link (the link itself); never replaces anything."""
        result = await _run(files.move, root, body.source, body.destination)
        audit("files.move", root.label, source=body.source, destination=body.destination)
        return result

    @router.delete("", response_model=TrashEntry, summary=f"Delete into the trash of {scope}")
    async def delete(root: RootDep, audit: AuditDep, path: PathQuery) -> TrashEntry:
        """Move a file, folder or link (the link itself) to the trash (kept 7 days)."""
        result = await _run(files.delete, root, path)
        audit("files.delete", root.label, path=result.path)
        return result

    @router.get("/text", response_model=TextRead, summary=f"Open a text file of {scope}")
    async def read_text(root: RootDep, path: PathQuery) -> TextRead:
        """Read a UTF-8 text file up to 1 MiB, with the etag a save must send back."""
        return await _run(files.read_text, root, path)

    @router.put("/text", response_model=TextRead, summary=f"Save a text file in {scope}")
    async def write_text(root: RootDep, body: TextWrite, audit: AuditDep) -> TextRead:
        """Save a text file; 409 if it changed since it was read (its etag differs)."""
        result = await _run(files.write_text, root, body.path, body.content, body.etag)
        audit("files.edit", root.label, path=result.path, size=result.size)
        return result

    @router.post("/chown", response_model=ChownResult,
                 summary=f"Give files of {scope} to the app's user")
    async def chown(root: RootDep, body: ChownRequest, audit: AuditDep) -> ChownResult:
        """Set the owner to the app's PUID:PGID (links themselves, never their targets)."""
        changed = await _run(files.chown, root, body.path, recursive=body.recursive)
        uid, gid = root.owner or (0, 0)
        audit("files.chown", root.label, path=body.path, recursive=body.recursive)
        return ChownResult(changed=changed, uid=uid, gid=gid)

    @router.get("/trash", response_model=list[TrashEntry], summary=f"List the trash of {scope}")
    async def trash(root: RootDep) -> list[TrashEntry]:
        """What was deleted in the last 7 days (older entries are emptied on the way)."""
        return await _run(files.trash_list, root)

    @router.post("/trash/{item}/restore", response_model=FileEntry,
                 summary=f"Restore from the trash of {scope}")
    async def restore(root: RootDep, item: str, audit: AuditDep) -> FileEntry:
        """Put a trashed entry back where it was (409 if that name is taken again)."""
        result = await _run(files.restore, root, item)
        audit("files.restore", root.label, path=result.name)
        return result

    @router.delete("/trash", response_model=TrashEmptied, summary=f"Empty the trash of {scope}")
    async def empty(root: RootDep, audit: AuditDep,
                    item: Annotated[str | None, Query(max_length=64)] = None) -> TrashEmptied:
        """Delete one trashed entry, or all of them, for good."""
        removed = await _run(files.empty_trash, root, item)
        audit("files.trash.empty", root.label, item=item or "all", removed=removed)
        return TrashEmptied(removed=removed)

    return router


router = APIRouter()
router.include_router(build(instance_files, scope="an instance"),
                      prefix="/instances/{name}/files")
router.include_router(build(volume_files, scope="a volume"),
                      prefix="/system/volumes/{name}/files",
                      dependencies=[Depends(require_admin)])
