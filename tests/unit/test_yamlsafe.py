"""Untrusted YAML: limits on aliases, depth, size and node count; clear messages."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stackhub import yamlsafe
from stackhub.errors import Invalid, TooLarge

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_billion_laughs_is_refused() -> None:
    # PyYAML builds aliases as shared references (cheap); the walk over the built tree
    # refuses the 9**9-node expansion before anything would flatten it
    with pytest.raises(TooLarge, match="alias bomb"):
        yamlsafe.load(BILLION_LAUGHS)


def test_too_many_aliases_is_refused() -> None:
    text = "a: &a x\nb: [" + ", ".join(["*a"] * (yamlsafe.MAX_ALIASES + 1)) + "]\n"
    with pytest.raises(TooLarge, match="aliases"):
        yamlsafe.load(text)


def test_a_few_aliases_are_fine() -> None:
    data = yamlsafe.load("base: &base {image: x}\nweb: *base\nworker: *base\n")
    assert data["web"] == {"image": "x"} and data["worker"] == {"image": "x"}


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(TooLarge):
        yamlsafe.load("a: &a [*a]\n")


@pytest.mark.parametrize("depth", [yamlsafe.MAX_DEPTH + 5, 500])
def test_deep_nesting_is_refused(depth: int) -> None:
    with pytest.raises(TooLarge, match="nested"):
        yamlsafe.load("[" * depth + "]" * depth)


def test_nesting_within_the_limit_is_fine() -> None:
    assert yamlsafe.load("[" * 10 + "]" * 10) == [[[[[[[[[[]]]]]]]]]]


def test_oversized_document_is_refused_before_parsing() -> None:
    text = "a: " + "x" * (yamlsafe.MAX_BYTES + 1)
    with pytest.raises(TooLarge, match="limit is"):
        yamlsafe.load(text, what="compose file")


def test_custom_size_limit_names_the_document() -> None:
    with pytest.raises(TooLarge, match="app manifest is 20 bytes"):
        yamlsafe.load(b"a: bbbbbbbbbbbbbbbbb", what="app manifest", max_bytes=10)


def test_too_many_nodes_is_refused() -> None:
    # few aliases (under MAX_ALIASES), each expanding to many nodes
    text = "a: &a [" + ",".join(["1"] * 300) + "]\nb: [" + ",".join(["*a"] * 200) + "]\n"
    with pytest.raises(TooLarge, match="nodes"):
        yamlsafe.load(text)


@pytest.mark.parametrize(("text", "line"), [
    ("services:\n  web:\n    image: [unclosed\n", 4),
    ("a: 1\nb: 2\n  c: 3\n", 3),
    ("services:\n\tweb: {}\n", 2),
])
def test_invalid_yaml_names_the_line(text: str, line: int) -> None:
    with pytest.raises(Invalid, match=rf"compose file is not valid YAML at line {line}") as info:
        yamlsafe.load(text, what="compose file")
    assert not isinstance(info.value, TooLarge)


def test_two_documents_are_invalid() -> None:
    with pytest.raises(Invalid, match="not valid YAML"):
        yamlsafe.load("a: 1\n---\nb: 2\n")


def test_not_utf8_is_invalid() -> None:
    with pytest.raises(Invalid, match="not valid UTF-8"):
        yamlsafe.load(b"a: \xff\xfe\n", what="compose file")


def test_python_tags_are_refused() -> None:
    with pytest.raises(Invalid):
        yamlsafe.load("a: !!python/object/apply:os.system ['true']\n")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n", ""])
def test_load_mapping_wants_a_mapping(text: str) -> None:
    with pytest.raises(Invalid, match="must be a mapping at the top level"):
        yamlsafe.load_mapping(text, what="compose file")


def test_load_mapping_returns_the_mapping() -> None:
    assert yamlsafe.load_mapping("services: {web: {image: x}}\n", what="compose file") == {
        "services": {"web": {"image": "x"}}}


def test_dump_writes_no_aliases_and_keeps_order() -> None:
    shared = {"image": "x"}
    text = yamlsafe.dump({"z": shared, "a": shared})
    assert "&" not in text and "*" not in text
    assert text.index("z:") < text.index("a:")
    assert yamlsafe.load(text) == {"z": {"image": "x"}, "a": {"image": "x"}}


# -- scalars typed as Compose (go-yaml v3) types them, so a round trip keeps their meaning ----

@pytest.mark.parametrize(("text", "value"), [
    ("yes", "yes"), ("no", "no"), ("on", "on"), ("Off", "Off"), ("y", "y"),
    ("22:22", "22:22"), ("2024-01-01", "2024-01-01"),
    ("true", True), ("FALSE", False), ("~", None), ("null", None),
    ("0755", 0o755), ("0o17", 0o17), ("0x1f", 31), ("0b101", 5), ("1_000", 1000), ("-12", -12),
    ("08", 8.0), (".5", 0.5), ("1e3", 1000.0),
])
def test_scalars_are_typed_as_compose_reads_them(text: str, value: object) -> None:
    loaded = yamlsafe.load(f"k: {text}\n")["k"]
    assert loaded == value and type(loaded) is type(value)


def test_a_compose_command_keeps_yes_and_a_port_pair_through_a_round_trip() -> None:
    source = "services:\n  web:\n    command: [serve, --debug, yes]\n    ports: [22:22]\non: 1\n"
    again = yamlsafe.load(yamlsafe.dump(yamlsafe.load(source)))
    assert again["services"]["web"]["command"] == ["serve", "--debug", "yes"]
    assert again["services"]["web"]["ports"] == ["22:22"]
    assert again["on"] == 1


def test_merge_keys_still_work() -> None:
    assert yamlsafe.load("a: &x {k: 1}\nb:\n  <<: *x\n  j: 2\n")["b"] == {"k": 1, "j": 2}


def test_a_document_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # the limits used to be checked on a first parse, then yaml.load parsed the text again
    made: list[object] = []

    class Counting(yamlsafe._Loader):  # type: ignore[misc,name-defined]
        def __init__(self, stream: str) -> None:
            made.append(stream)
            super().__init__(stream)

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a second parse")

    monkeypatch.setattr(yamlsafe, "_Loader", Counting)
    for name in ("parse", "load", "compose"):
        monkeypatch.setattr(yamlsafe.yaml, name, refuse)
    assert yamlsafe.load("a: &x {k: 1}\nb: [*x, 2]\n") == {"a": {"k": 1}, "b": [{"k": 1}, 2]}
    assert len(made) == 1


def test_merge_aliases_are_counted_before_anything_is_built() -> None:
    # merges of merges grow exponentially when flattened: refused on the alias count first
    lines = ["l0: &l0 {k: v}"] + [f"l{i}: &l{i} {{<<: [*l{i - 1}, *l{i - 1}]}}"
                                  for i in range(1, yamlsafe.MAX_ALIASES // 2 + 2)]
    with pytest.raises(TooLarge, match="aliases"):
        yamlsafe.load("\n".join(lines) + "\n")


@pytest.mark.parametrize("text", ["8e1234", "1e5", "0o17", "0x1F", "1_000", ".5", "0755", "-.inf",
                                  "true", "null", "yes", "22:22", "2024-01-01"])
def test_dump_quotes_text_that_a_core_schema_reader_would_type(text: str) -> None:
    # a hex install id such as 8e1234 read back as the float inf broke labels (CI, 2026-12-02)
    dumped = yamlsafe.dump({"label": text})
    assert yamlsafe.load(dumped) == {"label": text}, dumped


@settings(deadline=None)  # about what reads back, not speed: a loaded box is slow
@given(st.text(alphabet="0123456789abcdefeEoOxX._+-", max_size=12))
def test_every_dumped_string_reads_back_as_the_same_string(text: str) -> None:
    assert yamlsafe.load(yamlsafe.dump({"v": text})) == {"v": text}
