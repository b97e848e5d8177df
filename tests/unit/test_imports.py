"""The package's import graph: no circles; domains meet only at each other's service and models.

Every ``import`` counts, at module level or inside a function (a deferred import is still a
dependency and still a circle at run time); imports under ``if TYPE_CHECKING:`` do not.
Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``, so those count too.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

import stackhub

PACKAGE = Path(stackhub.__file__).resolve().parent

def module_names(root: Path) -> dict[str, Path]:
    """Map every module of the package under `root` to its file."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Yield every import statement below `node`, skipping ``if TYPE_CHECKING:`` bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _type_checking(child):
            for item in child.orelse:
                yield from _import_nodes(item)
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from _import_nodes(child)


def direct_imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Return the package modules `name` imports (``from a import b`` is ``a.b`` if a module)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        found.update(t for t in targets if t in modules)
    found.discard(name)
    return found


def import_graph(root: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Return the direct imports of each module, and the same plus the packages they run."""
    modules = module_names(root)
    direct = {name: direct_imports(name, path, modules) for name, path in modules.items()}
    graph: dict[str, set[str]] = {}
    for name, targets in direct.items():
        edges = set(targets)
        for target in targets:
            parts = target.split(".")
            edges.update(".".join(parts[:i]) for i in range(1, len(parts)))
        own = name.split(".")
        edges -= {".".join(own[:i]) for i in range(1, len(own) + 1)}  # its own packages
        graph[name] = edges
    return direct, graph


@functools.cache
def package_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Return `import_graph(PACKAGE)`, built once for the tests that read it (parsing is slow)."""
    return import_graph(PACKAGE)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected groups of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                group.append(item)
                if item == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


DOMAINS = ("apps", "auth", "backup", "catalog", "notify", "proxy", "system", "tools",
           "updates")
"""The domain packages: each keeps its logic behind its service and its models."""

PUBLIC = ("models", "service")
"""The modules another domain may import from a domain; the rest is private to it."""


INTERFACES = ("stackhub.api", "stackhub.cli", "stackhub.services", "stackhub.server")
"""The outer layers that assemble and serve the domains, and so may import any of them."""


def domain_of(name: str) -> str | None:
    """Return the domain a module belongs to, or None for shared layers (adapters, state...)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in DOMAINS else None


def domain_violations(direct: dict[str, set[str]]) -> list[str]:
    """List imports that cross into another domain's private modules (or catalog into apps)."""
    wrong: list[str] = []
    for name, targets in sorted(direct.items()):
        source = domain_of(name)
        for target in sorted(targets):
            owner = domain_of(target)
            if owner is None or owner == source:
                continue
            if source is None:
                if not name.startswith(INTERFACES):
                    wrong.append(f"{name} -> {target} (a shared layer never imports a domain)")
            elif source == "catalog" and owner == "apps":
                wrong.append(f"{name} -> {target} (the catalog never imports apps)")
            elif len(target.split(".")) != 3 or target.split(".")[2] not in PUBLIC:
                wrong.append(f"{name} -> {target} (another domain may use only "
                             f"{owner}.{' and '.join(PUBLIC)})")
    return wrong


def test_the_package_has_no_import_circle() -> None:
    _, graph = package_graph()
    assert len(graph) > 50  # the walk found the package
    assert cycles(graph) == []


def test_domains_meet_only_at_each_others_service_and_models() -> None:
    direct, _ = package_graph()
    assert "stackhub.catalog.service" in direct["stackhub.apps.planner"]  # the walk sees imports
    assert domain_violations(direct) == []


# -- the checker itself ------------------------------------------------------------------------

def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in {"__init__.py": "", **files}.items():
        path = root / "stackhub" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "stackhub"


def test_a_deferred_import_closes_a_circle(tmp_path: Path) -> None:
    pkg = _tree(tmp_path, {
        "a.py": "from stackhub import b\n",
        "b.py": "def f():\n    from stackhub.a import x\n",
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from stackhub import a\n",
    })
    _, graph = import_graph(pkg)
    assert cycles(graph) == [["stackhub.a", "stackhub.b"]]
    assert graph["stackhub.c"] == set()


def test_a_package_init_counts_and_relative_imports_resolve(tmp_path: Path) -> None:
    pkg = _tree(tmp_path, {
        "d/__init__.py": "from .e import y\n",
        "d/e.py": "from .. import f\n",
        "f.py": "import stackhub.d.e\n",
    })
    direct, graph = import_graph(pkg)
    assert direct["stackhub.d.e"] == {"stackhub.f"}
    assert cycles(graph) == [["stackhub.d", "stackhub.d.e", "stackhub.f"]]


@pytest.mark.parametrize(("name", "text", "wrong"), [
    ("catalog/readers/x.py", "from stackhub.apps.render import platform_env\n", True),
    ("catalog/x.py", "from stackhub.apps import models\n", True),
    ("apps/x.py", "from stackhub.catalog.readers.compose import parse_compose\n", True),
    ("apps/x.py", "from stackhub.catalog.service import Catalog\n", False),
    ("apps/x.py", "from stackhub.catalog import models\n", False),
    ("backup/x.py", "from stackhub.apps.render import platform_env\n", True),
    ("backup/x.py", "from stackhub.apps.models import x\n", False),
    ("state/x.py", "from stackhub.apps import models\n", True),
    ("api/x.py", "from stackhub.apps.render import platform_env\n", False),
])
def test_domain_rule(tmp_path: Path, name: str, text: str, wrong: bool) -> None:
    pkg = _tree(tmp_path, {
        "apps/__init__.py": "", "apps/models.py": "", "apps/render.py": "",
        "catalog/__init__.py": "", "catalog/models.py": "", "catalog/service.py": "",
        "catalog/readers/__init__.py": "", "catalog/readers/compose.py": "",
        "backup/__init__.py": "", "state/__init__.py": "", "api/__init__.py": "", name: text,
    })
    direct, _ = import_graph(pkg)
    assert bool(domain_violations(direct)) is wrong


DOMAIN_PACKAGES = tuple(f"stackhub.{name}" for name in DOMAINS)
LOWER = ("stackhub.adapters", "stackhub.state", "stackhub.operations")


def layer_violations(direct: dict[str, set[str]]) -> list[str]:
    """List imports against docs/architecture.md's layer rules (views are the interface)."""
    found = []
    for source, targets in direct.items():
        is_view = source.rsplit(".", 1)[-1].endswith("views")
        for target in targets:
            if (source.startswith(DOMAIN_PACKAGES) and target.startswith("stackhub.api")
                    and not is_view):
                found.append(f"{source} -> {target} (only a domain's views may use the API)")
            if source.startswith(LOWER) and target.startswith((*DOMAIN_PACKAGES, "stackhub.api")):
                found.append(f"{source} -> {target} (shared layers import no domain)")
    return sorted(found)


def test_only_views_reach_up_and_adapters_never_do() -> None:
    direct, _ = package_graph()
    assert "stackhub.api.deps" in direct["stackhub.apps.views"]  # the walk sees these imports
    assert layer_violations(direct) == []
    wrong = {"stackhub.apps.service": {"stackhub.api.deps"},
             "stackhub.adapters.engine": {"stackhub.apps.models"}}
    assert len(layer_violations(wrong)) == 2


# -- what the server process loads (issue 18 part 4: idle memory) -------------------------------

SERVE_PROBE = """
import json, sys
from stackhub.cli.main import command_tree
command_tree("serve")  # what `stackhub serve` builds before it imports the server
import stackhub.server
print(json.dumps(sorted(name for name, module in sys.modules.items() if module is not None)))
"""

NOT_AT_START = ("docker", "requests", "urllib3", "charset_normalizer", "pydantic.v1",
                "cryptography.x509", "dns.resolver", "pyotp", "segno", "argon2", "rich",
                "watchfiles", "httpx._main")
"""Packages `stackhub serve` must not import to start: each is loaded by the first request
that needs it (docs/performance.md, "Scale and load": ~15 MB resident together)."""


def test_the_server_starts_without_the_heavy_packages_it_needs_later() -> None:
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", SERVE_PROBE], capture_output=True, text=True,
                          check=True, timeout=120)
    loaded = set(json.loads(done.stdout))
    assert {"stackhub.server", "stackhub.api.app", "stackhub.adapters.engine", "fastapi",
            "uvicorn"} <= loaded  # the probe did import the server
    assert sorted(name for name in loaded
                  if name in NOT_AT_START or name.startswith(tuple(f"{p}." for p in NOT_AT_START))
                  ) == []
    assert sorted(name for name in loaded if name.startswith("stackhub.cli.")) == [
        "stackhub.cli.main"]  # no client command group
