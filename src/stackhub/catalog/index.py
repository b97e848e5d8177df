"""Write and query the catalog index: app rows, categories and the full-text table."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Protocol

from stackhub.catalog.models import AppDefinition, AppFormat, CatalogAppSummary, CategoryRead
from stackhub.state.db import Database, now

MAX_TERMS = 8
_NUMBERS = re.compile(r"\d+")


class RowLike(Protocol):
    """A sqlite3.Row or a dict made from one."""

    def __getitem__(self, key: str, /) -> Any:
        """Return a column value."""
        ...


@dataclass
class IndexEntry:
    """An app ready to index, with its asset paths relative to the store snapshot."""

    app: AppDefinition
    icon: str | None = None
    screenshots: list[str] = field(default_factory=list)
    featured: bool = False


def _joined(text: dict[str, str]) -> str:
    return "\n".join(dict.fromkeys(v for v in text.values() if v))


def replace_store(conn: sqlite3.Connection, store: str, entries: list[IndexEntry]) -> None:
    """Replace every indexed app of one store (inside the caller's transaction).

    An app keeps its `updated_at` while its version stays; a new version (or a new app in a
    store indexed before) is dated now, unless the store gives a date of its own.
    """
    before = {r[0]: (r[1], r[2]) for r in conn.execute(
        "SELECT app, version, updated_at FROM catalog_apps WHERE store = ?", (store,))}
    stamp = now()
    conn.execute("DELETE FROM catalog_fts WHERE store = ?", (store,))
    conn.execute("DELETE FROM catalog_apps WHERE store = ?", (store,))
    apps, categories, texts = [], [], []
    for entry in entries:
        app = entry.app
        cats = sorted({c.strip().lower() for c in app.category if c.strip()})
        known = before.get(app.id)
        updated: str | None
        if app.updated_at:
            updated = app.updated_at
        elif known is not None and known[0] == app.version:
            updated = known[1]
        else:
            updated = stamp if before else None  # a first index knows no dates
        apps.append((store, app.id, app.name, app.format.value, app.version, app.revision,
                     json.dumps(app.title), json.dumps(app.tagline),
                     json.dumps(app.description), json.dumps(cats), int(app.installable),
                     json.dumps(app.problems), app.model_dump_json(), entry.icon,
                     json.dumps(entry.screenshots), int(entry.featured), updated))
        categories += [(store, app.id, c) for c in cats]
        texts.append((store, app.id, f"{app.name}\n{app.id}\n{_joined(app.title)}",
                      _joined(app.tagline), _joined(app.description)))
    conn.executemany("INSERT INTO catalog_apps (store, app, name, format, version, revision, "
                     "title, tagline, description, categories, installable, problems, "
                     "definition, icon, screenshots, featured, updated_at) "
                     "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                     apps)
    conn.executemany("INSERT INTO catalog_categories (store, app, category) VALUES (?,?,?)",
                     categories)
    conn.executemany("INSERT INTO catalog_fts (store, app, title, tagline, description) "
                     "VALUES (?,?,?,?,?)", texts)


def drop_store(conn: sqlite3.Connection, store: str) -> None:
    """Remove a store's rows from the full-text table (app rows cascade with the store)."""
    conn.execute("DELETE FROM catalog_fts WHERE store = ?", (store,))
    conn.execute("DELETE FROM catalog_apps WHERE store = ?", (store,))


def _version_key(version: str) -> tuple[int, ...] | None:
    numbers = _NUMBERS.findall(version)
    return tuple(int(n) for n in numbers) if numbers else None


def is_newer(version: str, revision: int | None, have_version: str,
             have_revision: int | None) -> bool:
    """Tell whether a catalog version/revision is newer than an installed one."""
    if version == have_version:
        return revision is not None and have_revision is not None and revision > have_revision
    new, old = _version_key(version), _version_key(have_version)
    if new is not None and old is not None:
        if new != old:
            return new > old
        return revision is not None and have_revision is not None and revision > have_revision
    if revision is not None and have_revision is not None and revision != have_revision:
        return revision > have_revision
    return True  # labels that cannot be ordered: a different one is worth a look


def flag_updates(conn: sqlite3.Connection, store: str) -> list[str]:
    """Set or clear `update_available` on the store's instances; return the flagged names."""
    rows = conn.execute(
        "SELECT i.name, i.version AS have_version, i.revision AS have_revision, "
        "i.update_available, a.version, a.revision FROM instances i LEFT JOIN catalog_apps a "
        "ON a.store = ? AND i.app_ref = a.store || '/' || a.app WHERE i.store = ?",
        (store, store)).fetchall()
    flagged: list[str] = []
    for row in rows:
        label: str | None = None
        if row["version"] is not None and is_newer(row["version"], row["revision"],
                                                   row["have_version"], row["have_revision"]):
            label = row["version"]
            if row["version"] == row["have_version"]:
                label = f"{row['version']} (revision {row['revision']})"
            flagged.append(row["name"])
        if label != row["update_available"]:
            conn.execute("UPDATE instances SET update_available = ? WHERE name = ?",
                         (label, row["name"]))
    return flagged


def icon_url(row: RowLike) -> str | None:
    """Return the URL of an app's icon: the API route, or an external https URL."""
    icon = row["icon"]
    if not icon:
        return None
    if icon.startswith("https://"):
        return str(icon)
    stamp = (row["store_revision"] or "")[-12:]
    return f"/api/catalog/apps/{row['store']}/{row['app']}/icon?v={stamp}"


def _norm(text: dict[str, str]) -> dict[str, str]:
    return {key.lower().replace("_", "-"): value for key, value in text.items()}


@dataclass(frozen=True)
class Card:
    """The decoded listing data of one app (locale keys normalised)."""

    title: dict[str, str]
    tagline: dict[str, str]
    category: list[str]
    problems: list[str]
    icon_url: str | None


def _card(row: RowLike) -> Card:
    return Card(title=_norm(json.loads(row["title"])), tagline=_norm(json.loads(row["tagline"])),
                category=json.loads(row["categories"]), problems=json.loads(row["problems"]),
                icon_url=icon_url(row))


class Cards:
    """Decoded listing data per app, reused until its store is re-indexed."""

    def __init__(self, limit: int = 20_000) -> None:
        """Keep at most `limit` cards."""
        self.limit = limit
        self._cards: dict[tuple[str, str, str], Card] = {}

    def get(self, row: RowLike) -> Card:
        """Return the card of an index row (keyed by store, app and the store's index key)."""
        key = (row["store"], row["app"], row["index_key"] or "")
        card = self._cards.get(key)
        if card is None:
            if len(self._cards) >= self.limit:
                self._cards.clear()
            card = self._cards[key] = _card(row)
        return card


def _pick(text: dict[str, str], chain: tuple[str, ...]) -> str:
    """Pick text by a locale chain, as `localized` does, from normalised keys."""
    if not text:
        return ""
    for key in chain:
        if key in text:
            return text[key]
    language = chain[1]
    for key, value in text.items():
        if key.startswith(language):
            return value
    return next(iter(text.values()))


def locale_chain(locale: str) -> tuple[str, ...]:
    """Return the fallback keys for a locale: exact, language, English."""
    want = locale.lower().replace("_", "-")
    return (want, want.split("-")[0], "en", "en-us")


def summary(row: RowLike, locale: str, cards: Cards | None = None) -> CatalogAppSummary:
    """Build a listing entry from an index row."""
    card = cards.get(row) if cards is not None else _card(row)
    chain = locale_chain(locale)
    return CatalogAppSummary.model_construct(
        id=f"{row['store']}/{row['app']}", store=row["store"], app=row["app"], name=row["name"],
        format=AppFormat(row["format"]), title=_pick(card.title, chain) or row["name"],
        tagline=_pick(card.tagline, chain), version=row["version"], revision=row["revision"],
        category=list(card.category), installable=bool(row["installable"]),
        problems=list(card.problems), icon_url=card.icon_url,
        featured=bool(row["featured"]), updated_at=row["updated_at"])


SUMMARY_COLUMNS = ("a.store, a.app, a.name, a.format, a.version, a.revision, a.title, "
                   "a.tagline, a.categories, a.installable, a.problems, a.icon, "
                   "a.featured, a.updated_at, "
                   "s.revision AS store_revision, s.index_key")
KEY_COLUMNS = "a.store, a.app, s.index_key"


def _fts_phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def query_apps(db: Database, *, store: str | None = None, category: str | None = None,
               installable: bool | None = None, text: str | None = None,
               featured: bool | None = None, recent: bool = False,
               limit: int = 1000, columns: str = SUMMARY_COLUMNS) -> list[sqlite3.Row]:
    """Return index rows matching the filters, best match first when searching.

    `columns` is SUMMARY_COLUMNS (rows for `summary`) or KEY_COLUMNS (keys for `Listing`).
    """
    if columns not in (SUMMARY_COLUMNS, KEY_COLUMNS):
        raise ValueError("columns must be SUMMARY_COLUMNS or KEY_COLUMNS")
    where: list[str] = []
    params: list[Any] = []
    if store:
        where.append("a.store = ?")
        params.append(store)
    if category:
        where.append("EXISTS (SELECT 1 FROM catalog_categories c WHERE c.store = a.store "
                     "AND c.app = a.app AND c.category = ?)")
        params.append(category.strip().lower())
    if installable is not None:
        where.append("a.installable = ?")
        params.append(int(installable))
    if featured is not None:
        where.append("a.featured = ?")
        params.append(int(featured))
    if recent:
        where.append("a.updated_at IS NOT NULL")
    terms = (text or "").split()[:MAX_TERMS]
    if not terms:
        # only constant SQL fragments are interpolated; values go through parameters
        sql = (f"SELECT {columns} FROM catalog_apps a JOIN stores s ON s.name = a.store"  # noqa: S608
               f"{' WHERE ' + ' AND '.join(where) if where else ''} "
               f"ORDER BY {'a.updated_at DESC, ' if recent else ''}s.position, a.store, a.app "
               "LIMIT ?")
        return db.query(sql, (*params, limit))
    # trigram tokens need three characters; shorter terms (two CJK characters, say) use LIKE
    long_terms = [t[:64] for t in terms if len(t) >= 3]
    for term in (t for t in terms if len(t) < 3):
        where.append("(f.title LIKE ? ESCAPE '\\' OR f.tagline LIKE ? ESCAPE '\\' OR "
                     "f.description LIKE ? ESCAPE '\\')")
        params += [_like(term)] * 3
    rank = "0"
    short = [t for t in terms if len(t) < 3]
    if short:  # without a MATCH there is no bm25: rank title hits, then tagline hits
        rank = ("(CASE WHEN f.title LIKE ? ESCAPE '\\' THEN 0 WHEN f.tagline LIKE ? "
                "ESCAPE '\\' THEN 1 ELSE 2 END)")
    if long_terms:
        where.append("catalog_fts MATCH ?")
        params.append(" AND ".join(_fts_phrase(t) for t in long_terms))
        rank = "bm25(catalog_fts, 0, 0, 10.0, 4.0, 1.0)"
    rank_params = [_like(short[0])] * 2 if short and not long_terms else []
    sql = (f"SELECT {columns}, {rank} AS rank FROM catalog_fts f "  # noqa: S608
           "JOIN catalog_apps a ON a.store = f.store AND a.app = f.app "
           "JOIN stores s ON s.name = a.store WHERE " + " AND ".join(where) +
           " ORDER BY rank, s.position, a.store, a.app LIMIT ?")
    return db.query(sql, (*rank_params, *params, limit))


def categories(db: Database, store: str | None = None) -> list[CategoryRead]:
    """Return every category with its app count, most used first."""
    sql = "SELECT category, COUNT(*) AS n FROM catalog_categories"
    params: tuple[object, ...] = ()
    if store:
        sql += " WHERE store = ?"
        params = (store,)
    rows = db.query(sql + " GROUP BY category ORDER BY n DESC, category", params)
    return [CategoryRead(name=r["category"], count=r["n"]) for r in rows]
