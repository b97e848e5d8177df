"""Ready listing entries per store and locale, rebuilt when the store is re-indexed."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from stackhub.catalog import index
from stackhub.catalog.models import CatalogAppSummary
from stackhub.state.db import Database

MAX_SETS = 24  # (store, locale) pairs kept (~2 kB an entry); beyond it the cache starts over

# one store's entries in one locale: (the store's index key, entry per app)
_Set = tuple[str, dict[str, CatalogAppSummary]]


class Listing:
    """Listing entries built once per (store, locale, index key) and shared by every query.

    A query asks SQLite only for the matching keys in order (`index.KEY_COLUMNS`); the entries
    come from here. They are shared: callers must not modify them.
    """

    def __init__(self, db: Database) -> None:
        """Read index rows from `db`."""
        self.db = db
        self._sets: dict[tuple[str, str], _Set] = {}
        self._fill = threading.Lock()

    def entries(self, keys: Sequence[Sequence[Any]],
                locale: str) -> list[CatalogAppSummary] | None:
        """Return the entries of `keys` (store, app, index_key) in order, or None if stale.

        None means the index moved on while reading (a store re-indexed in between).
        """
        mine: dict[str, _Set] = {}  # this answer's sets, even if the cache starts over
        out: list[CatalogAppSummary] = []
        for row in keys:
            store, app, key = row[0], row[1], row[2]
            found = mine.get(store) or self._sets.get((store, locale))
            if found is None or found[0] != (key or ""):
                found = self._build(store, locale)
                if found[0] != (key or ""):
                    return None
            mine[store] = found
            entry = found[1].get(app)
            if entry is None:
                return None
            out.append(entry)
        return out

    def _build(self, store: str, locale: str) -> _Set:
        with self._fill:
            rows = self.db.query(
                f"SELECT {index.SUMMARY_COLUMNS} FROM catalog_apps a "  # noqa: S608
                "JOIN stores s ON s.name = a.store WHERE a.store = ?", (store,))
            keys = {r["index_key"] or "" for r in rows}
            if len(keys) > 1:  # cannot happen inside one read; keep nothing to be safe
                return ("\0", {})
            built: _Set = (keys.pop() if keys else "\0",
                           {r["app"]: index.summary(r, locale) for r in rows})
            if len(self._sets) >= MAX_SETS:
                self._sets = {}
            self._sets[(store, locale)] = built
            return built
