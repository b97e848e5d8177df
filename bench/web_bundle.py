"""Measure the web console's initial JavaScript: gzipped bytes a first visit downloads.

Run: ``.venv/bin/python bench/web_bundle.py [--build] [--record]``.
``--build`` runs scripts/build-web first; ``--record`` writes the figures into
docs/performance.md under ``## Web console``. Target: initial JS under 250 KB gzipped.

"Initial" is what web/dist/index.html makes the browser fetch before any route renders: the
entry module and every ``modulepreload``. Each route's own chunk loads on navigation; the
largest route (entry excluded) is reported too, as is the first screen a new visitor sees
(the sign-in page, whose chunk loads right after the entry).
"""

from __future__ import annotations

import argparse
import gzip
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DIST = REPO / "web" / "dist"
TARGET_KB = 250.0
IMPORTS = re.compile(rb"""(?:from|import)\s*["'](\./[\w.-]+\.js)["']""")


@dataclass
class Asset:
    """One built file and its compressed size."""

    name: str
    raw: int
    gz: int


def measure(path: Path) -> Asset:
    """Return the raw and gzip -9 size of one file."""
    data = path.read_bytes()
    return Asset(path.name, len(data), len(gzip.compress(data, 9)))


def initial_files(dist: Path) -> tuple[list[Path], list[Path]]:
    """Return the JS and CSS files index.html loads up front."""
    html = (dist / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="/(assets/[^"]+)"', html)
    js = [dist / r for r in refs if r.endswith(".js")]
    css = [dist / r for r in refs if r.endswith(".css")]
    return js, css


def static_closure(start: Path) -> set[Path]:
    """Return `start` and every chunk it imports statically, transitively."""
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        # static imports only: dynamic import("./x.js") calls are route chunks
        text = re.sub(rb"import\(\s*[\"'][^\"']+[\"']\s*\)", b"", path.read_bytes())
        todo += [path.parent / m.decode() for m in IMPORTS.findall(text)]
    return seen


def route_chunk(dist: Path, name: str) -> Path | None:
    """Find the built chunk of a view, e.g. ``login-view``."""
    found = sorted((dist / "assets").glob(f"{name}-*.js"))
    return found[0] if found else None


def kb(n: int) -> float:
    """Bytes to KB (1024)."""
    return n / 1024


def run(build: bool) -> dict[str, object]:
    """Build if asked, then measure."""
    if build:
        subprocess.run(["bash", str(REPO / "scripts" / "build-web")], check=True)
    if not (DIST / "index.html").is_file():
        sys.exit("web/dist is missing: run scripts/build-web (or pass --build)")
    js, css = initial_files(DIST)
    initial = [measure(p) for p in js]
    styles = [measure(p) for p in css]
    first = set(js)
    routes = []
    for path in sorted((DIST / "assets").glob("*-view-*.js")):
        extra = static_closure(path) - first
        size = sum(measure(p).gz for p in extra)
        routes.append((path.name.rsplit("-", 1)[0], size))
    login = route_chunk(DIST, "login-view")
    login_extra = sum(measure(p).gz for p in static_closure(login) - first) if login else 0
    all_js = [measure(p) for p in (DIST / "assets").glob("*.js")]
    return {"initial": initial, "styles": styles, "routes": routes, "login_extra": login_extra,
            "all_js": all_js}


def report(figures: dict[str, object]) -> tuple[str, float]:
    """Render the figures as the ``## Web console`` section; return it and the initial KB."""
    initial: list[Asset] = figures["initial"]  # type: ignore[assignment]
    styles: list[Asset] = figures["styles"]  # type: ignore[assignment]
    routes: list[tuple[str, int]] = figures["routes"]  # type: ignore[assignment]
    all_js: list[Asset] = figures["all_js"]  # type: ignore[assignment]
    login_extra = int(figures["login_extra"])  # type: ignore[call-overload]
    total = sum(a.gz for a in initial)
    verdict = "met" if kb(total) < TARGET_KB else "MISSED"
    largest = max(routes, key=lambda r: r[1]) if routes else ("-", 0)
    top = sorted(initial, key=lambda a: a.gz, reverse=True)[:5]
    lines = [
        "## Web console",
        "",
        "Measured by `bench/web_bundle.py` on the production build (`scripts/build-web`: Vite,",
        "route-level code splitting, Naive UI imported per component). \"Initial\" is what",
        "`web/dist/index.html` loads before any route renders (entry + modulepreloads), gzip -9.",
        "",
        "| Figure | Value | Target |",
        "|---|---|---|",
        f"| Initial JavaScript ({len(initial)} files) | {kb(total):.1f} KB gzipped "
        f"({kb(sum(a.raw for a in initial)):.0f} KB raw) | < {TARGET_KB:.0f} KB ({verdict}) |",
        f"| Initial CSS | {kb(sum(a.gz for a in styles)):.1f} KB gzipped |  |",
        f"| First screen (sign-in page chunk on top of the initial JS) | +{kb(login_extra):.1f} "
        "KB |  |",
        f"| Largest route on top of the initial JS (`{largest[0]}`) | +{kb(largest[1]):.1f} KB "
        "|  |",
        f"| All JavaScript, every route and language ({len(all_js)} files) | "
        f"{kb(sum(a.gz for a in all_js)):.1f} KB gzipped |  |",
        "",
        "Largest initial files: " + ", ".join(f"`{a.name}` {kb(a.gz):.1f} KB" for a in top)
        + ".",
        "The Chinese messages and the markdown renderer (markdown-it + DOMPurify, app pages",
        "only) are separate chunks loaded on demand.",
        "",
    ]
    return "\n".join(lines), kb(total)


def record(section: str, path: Path = REPO / "docs" / "performance.md") -> None:
    """Replace (or add) the ``## Web console`` section of docs/performance.md."""
    text = path.read_text() if path.exists() else "# Performance\n"
    start = text.find("## Web console\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start)
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    path.write_text(text)


def main() -> None:
    """Measure, print, optionally record; exit 1 over budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help="run scripts/build-web first")
    parser.add_argument("--record", action="store_true", help="update docs/performance.md")
    args = parser.parse_args()
    section, initial_kb = report(run(args.build))
    print(section)
    print(f"initial JS: {initial_kb:.1f} KB gzipped (target < {TARGET_KB:.0f} KB)")
    if args.record:
        record(section)
    if initial_kb >= TARGET_KB:
        sys.exit(1)


if __name__ == "__main__":
    main()
