"""Serve the built web console at ``/`` with a single-page-app fallback that never hides /api."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from stackhub.errors import NotFound

ASSET_CACHE = "public, max-age=31536000, immutable"  # file names carry a content hash
INDEX_CACHE = "no-cache"
NOT_BUILT = """<!doctype html><html><head><meta charset="utf-8"><title>StackHub</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:4em auto">
<h1>StackHub</h1><p>The API is running, but the web console has not been built.</p>
<p>Build it with <code>scripts/build-web</code> (or start with <code>scripts/up</code>, which
builds it when needed), then reload this page. The API lives under <code>/api</code>.</p>
</body></html>"""


def console_dir() -> Path | None:
    """Return the built console folder: $STACKHUB_WEB_DIR, the package's copy, or web/dist."""
    candidates = [os.environ.get("STACKHUB_WEB_DIR", "")]
    here = Path(__file__).resolve()
    candidates += [str(here.parents[1] / "_console"), str(here.parents[3] / "web" / "dist")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "index.html").is_file():
            return Path(candidate)
    return None


def _is_api(path: str) -> bool:
    return path == "api" or path.startswith("api/")


class ConsoleFiles(StaticFiles):
    """Static files plus index.html for client-side routes; /api paths stay API 404s."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer HTTP; close any other connection (a websocket to an unknown path)."""
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        await super().__call__(scope, receive, send)

    async def get_response(self, path: str, scope: Scope) -> Response:
        """Serve a file, else the console's index for a route-like path."""
        if _is_api(path.lstrip("/")):
            raise NotFound(f"no API route {scope.get('path', '')}")
        try:
            response = await super().get_response(path, scope)
        except HTTPException as err:
            # a missing file whose name has an extension is a real 404 (a stale asset), not a
            # client-side route
            if err.status_code != 404 or PurePosixPath(path).suffix:
                raise
            response = FileResponse(Path(str(self.directory)) / "index.html")
            response.headers["Cache-Control"] = INDEX_CACHE
            return response
        top = path.lstrip("/").split("/", 1)[0]
        response.headers["Cache-Control"] = ASSET_CACHE if top == "assets" else INDEX_CACHE
        return response


def mount_console(app: FastAPI) -> None:
    """Mount the console at ``/``; call last, after every API route."""
    folder = console_dir()
    if folder is None:
        async def not_built() -> HTMLResponse:
            return HTMLResponse(NOT_BUILT, headers={"Cache-Control": INDEX_CACHE})

        app.add_api_route("/", not_built, include_in_schema=False)
        return
    app.mount("/", ConsoleFiles(directory=folder, html=True), name="console")
