"""Parse untrusted YAML with size, depth, node-count and alias limits, typed as Compose reads it."""

from __future__ import annotations

import re
from typing import Any

import yaml

from stackhub.errors import Invalid, TooLarge

MAX_BYTES = 512 * 1024
MAX_DEPTH = 48
MAX_NODES = 50_000
MAX_ALIASES = 256


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# The scalars Compose (go-yaml v3) gives a type to: YAML 1.2 core booleans and nulls, ints in
# Go's base-prefixed forms (0x, 0o, 0b, and 0755 as octal, as go-yaml v3 still reads it),
# floats. Everything else, YAML 1.1's `yes`/`on`/`no`, sexagesimal `22:22` and dates, is text.
_CORE_RESOLVERS: list[tuple[str, re.Pattern[str], str]] = [
    ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
     "tTfF"),
    ("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), "~nN"),
    ("tag:yaml.org,2002:int", re.compile(
        r"^[-+]?(?:0[bB][01_]+|0[oO][0-7_]+|0[xX][0-9a-fA-F_]+|0[0-7_]*|[1-9][0-9_]*)$"),
     "-+0123456789"),
    ("tag:yaml.org,2002:float", re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), "-+0123456789."),
]
_BOOLS = {"true": True, "false": False}


def _core_int(text: str) -> int:
    """Read an int as go-yaml v3 does (underscores dropped, a leading 0 means octal)."""
    plain = text.replace("_", "")
    sign, digits = (-1, plain[1:]) if plain[:1] == "-" else (1, plain.lstrip("+"))
    if digits[:2].lower() in ("0b", "0o", "0x"):
        return sign * int(digits, 0)
    if len(digits) > 1 and digits.startswith("0"):
        return sign * int(digits, 8)
    return sign * int(digits, 10)


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """A safe loader (libyaml's parser when present) typing scalars as Compose does."""

    yaml_implicit_resolvers: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {}

    def construct_yaml_bool(self, node: yaml.ScalarNode) -> bool:
        """Return a YAML 1.2 boolean."""
        return _BOOLS[str(self.construct_scalar(node)).lower()]

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """Return an int read the way go-yaml v3 reads it."""
        return _core_int(str(self.construct_scalar(node)))


for _tag, _pattern, _first in _CORE_RESOLVERS:
    _Loader.add_implicit_resolver(_tag, _pattern, list(_first))
_Loader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])
_Loader.add_constructor("tag:yaml.org,2002:bool", _Loader.construct_yaml_bool)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


class _NoAliasDumper(_Dumper):  # type: ignore[valid-type,misc]
    """A safe dumper (libyaml's when present) that writes repeated objects out in full."""

    def ignore_aliases(self, data: Any) -> bool:
        """Never emit anchors and aliases."""
        return True


# Quote any text a YAML 1.2 core reader (Compose) would type, not only what YAML 1.1 would:
# an install id such as `8e1234` must stay a string for Compose and for `load` above.
for _tag, _pattern, _first in _CORE_RESOLVERS:
    _NoAliasDumper.add_implicit_resolver(_tag, _pattern, list(_first))


def _check_nodes(root: yaml.Node) -> None:
    """Count aliases and nesting on the composed node graph, before anything is constructed.

    An alias is a second reference to a node already seen (merge keys included); merges are
    flattened, and alias bombs expanded, only by the construction this check precedes. The
    walk is iterative: it never recurses, whatever the nesting.
    """
    seen: set[int] = set()
    aliases = 0
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            aliases += 1
            if aliases > MAX_ALIASES:
                raise TooLarge(f"YAML uses more than {MAX_ALIASES} aliases")
            continue
        seen.add(id(node))
        if isinstance(node, yaml.CollectionNode):
            if depth > MAX_DEPTH:
                raise TooLarge(f"YAML is nested deeper than {MAX_DEPTH} levels")
            # children pushed reversed: nodes are first reached in document order, i.e. at
            # their anchor, so the depth is the text's nesting, not a path through aliases
            items = [i for pair in node.value for i in pair] if isinstance(
                node, yaml.MappingNode) else list(node.value)
            stack.extend((item, depth + 1) for item in reversed(items))


def _load_checked(text: str) -> Any:
    """Parse and compose once (libyaml when present), check the nodes, then construct.

    It used to parse every document twice: a scan of the event stream for aliases and
    nesting, then ``yaml.load`` parsing the text again (libyaml also refuses nesting past its
    own limit while parsing).
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def check_tree(data: Any, *, what: str = "the document") -> None:
    """Walk a parsed tree (YAML or JSON), aliases expanded, enforcing depth and node limits."""
    budget = [MAX_NODES]

    def walk(node: Any, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise TooLarge(f"{what} is nested deeper than {MAX_DEPTH} levels")
        budget[0] -= 1
        if budget[0] < 0:
            raise TooLarge(f"{what} expands to more than {MAX_NODES} nodes (alias bomb?)")
        if isinstance(node, dict):
            for key, value in node.items():
                walk(key, depth + 1)
                walk(value, depth + 1)
        elif isinstance(node, list):
            for item in node:
                walk(item, depth + 1)

    walk(data, 0)


def load(text: str | bytes, *, what: str = "YAML document", max_bytes: int = MAX_BYTES) -> Any:
    """Parse one YAML document safely, or raise Invalid/TooLarge naming `what`."""
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > max_bytes:
        raise TooLarge(f"{what} is {len(raw)} bytes; the limit is {max_bytes} bytes")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise Invalid(f"{what} is not valid UTF-8") from err
    try:
        data = _load_checked(decoded)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise Invalid(f"{what} is not valid YAML{where}: {problem}") from err
    except RecursionError as err:
        raise TooLarge(f"{what} is nested too deeply") from err
    check_tree(data, what=what)
    return data


def load_mapping(text: str | bytes, *, what: str, max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """Parse YAML that must be a mapping at the top."""
    data = load(text, what=what, max_bytes=max_bytes)
    if not isinstance(data, dict):
        raise Invalid(f"{what} must be a mapping at the top level")
    return data


def dump(data: Any) -> str:
    """Serialise data as block-style YAML without aliases, keys in given order."""
    return yaml.dump(data, Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False)
