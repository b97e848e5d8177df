"""Pause at named points of an operation so crash tests can kill the server there."""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV_POINT = "STACKHUB_FAULT_PAUSE"
ENV_MARKER = "STACKHUB_FAULT_MARKER"


def checkpoint(point: str) -> None:
    """If tests asked to pause at `point`, write the marker file and wait to be killed."""
    if os.environ.get(ENV_POINT) != point:
        return
    marker = os.environ.get(ENV_MARKER)
    if marker:
        Path(marker).write_text(point)
    while True:  # the test kills the process with SIGKILL here
        time.sleep(0.5)
