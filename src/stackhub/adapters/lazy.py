"""A module imported on first use: the engine adapters' docker SDK and requests (issue 18)."""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """Stands for module `name` and imports it at the first attribute read.

    The idle server reads the engine over its unix socket and never needs docker-py (with
    requests and urllib3, ~6 MB resident); an adapter binds the module name to this instead
    of importing it, so only the first call that does need it pays the import (thread-safe:
    ``importlib.import_module`` holds the import lock).
    """

    def __init__(self, name: str) -> None:
        """Remember the module's name; nothing is imported yet."""
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        """Import the module (once; later reads find it in ``sys.modules``) and read it."""
        return getattr(importlib.import_module(self._name), attribute)
