"""Run the HTTP server and record where it listens."""

from __future__ import annotations

import json
import logging
import os
import sys

# httpx imports its command-line tool (rich, click, pygments: 3.5 MB resident) whenever those
# are installed, as they are for StackHub's CLI; the server never uses it (issue 18, part 4)
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # a failed import

import uvicorn  # noqa: E402

from stackhub import fsutil  # noqa: E402
from stackhub.api.app import create_app  # noqa: E402
from stackhub.config import Paths  # noqa: E402
from stackhub.state import versioning  # noqa: E402


def serve(paths: Paths, *, host: str, port: int, public_host: str | None = None) -> None:
    """Serve the API until interrupted; write server.json for local clients."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    paths.ensure()
    try:  # a database a newer StackHub used: say so plainly, not as a start-up traceback
        versioning.check_file(paths.db)
    except versioning.NewerDatabase as err:
        raise SystemExit(f"StackHub refuses to start: {err.message}") from None
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    url = f"http://{local}:{port}"
    fsutil.write_atomic(paths.server_info, json.dumps({"url": url, "pid": os.getpid()}),
                        mode=0o644)
    app = create_app(paths, public_host=public_host or os.environ.get("STACKHUB_PUBLIC_HOST")
                     or local)
    try:
        # proxy headers are honoured only from configured trusted proxies (api/security.py)
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=False,
                    proxy_headers=False, server_header=False)
    finally:
        paths.server_info.unlink(missing_ok=True)
