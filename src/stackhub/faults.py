"""Test-only fault points: pause at a named point of an operation so a test can kill the server.

`STACKHUB_FAULT_PAUSE=<point>` (with `STACKHUB_FAULT_MARKER=<file>`, written when the point is
reached) exists for the crash tests (`tests/integration/test_crash*.py`, `test_backup.py`,
`test_power_loss.py`) and nothing else: it is not a setting, and a production server never has
it set. The pause awaits, so only the operation stops there; the rest of the server (other
requests, the status cache, health) keeps answering until the test sends SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

ENV_POINT = "STACKHUB_FAULT_PAUSE"
ENV_MARKER = "STACKHUB_FAULT_MARKER"


async def checkpoint(point: str) -> None:
    """If a test asked to pause at `point`, write the marker file and wait to be killed."""
    if os.environ.get(ENV_POINT) != point:
        return
    marker = os.environ.get(ENV_MARKER)
    if marker:
        await asyncio.to_thread(Path(marker).write_text, point)
    while True:  # the test kills the process with SIGKILL here; the event loop runs on
        await asyncio.sleep(0.5)
