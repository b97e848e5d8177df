"""The platform contract: supplied variables, reserved names, host architecture, ``${VAR}``."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackhub import platform
from stackhub.errors import Invalid
from stackhub.platform import substitute

VALUES = {"A": "1", "B": "2", "EMPTY": ""}


def test_platform_env_and_its_names() -> None:
    env = platform.platform_env(instance="blog", app_id="wp", data_dir=Path("/d"), tz="UTC")
    assert env == {"APP_INSTANCE": "blog", "APP_ID": "wp", "APP_DATA_DIR": "/d", "TZ": "UTC",
                   "PUID": "1000", "PGID": "1000"}
    assert frozenset(env) == platform.PLATFORM_VARS
    assert not any(name.startswith(platform.RESERVED_PREFIXES) for name in env)


@pytest.mark.parametrize(("machine", "arch"), [
    ("x86_64", "amd64"), ("AMD64", "amd64"), ("amd64", "amd64"),
    ("aarch64", "arm64"), ("arm64", "arm64"),
    ("armv7l", "arm"), ("armv6l", "arm"),
    ("i686", "386"), ("i386", "386"),
    ("riscv64", "riscv64"), ("ppc64le", "ppc64le"), ("s390x", "s390x"),
])
def test_host_arch_names_machines_as_engines_and_stores_do(
        monkeypatch: pytest.MonkeyPatch, machine: str, arch: str) -> None:
    monkeypatch.setattr("platform.machine", lambda: machine)
    assert platform.host_arch() == arch


def test_every_machine_maps_to_a_known_engine_name() -> None:
    assert set(platform.ARCHES.values()) == {"amd64", "arm64", "arm", "386"}
    assert all(key == key.lower() for key in platform.ARCHES)


# -- compose syntax (the default): derived values, the fake compose ---------------------------

@pytest.mark.parametrize(("template", "result"), [
    ("${A}", "1"), ("$A-x", "1-x"), ("${A}-$B-${C}", "1-2-"), ("${NOPE}", ""),
    ("${NOPE:-d}", "d"), ("${EMPTY:-d}", "d"), ("${EMPTY-d}", ""), ("${NOPE-d}", "d"),
    ("${A:-d}", "1"), ("${A:+alt}", "alt"), ("${NOPE:+alt}", ""), ("${EMPTY:+alt}", ""),
    ("${EMPTY+alt}", "alt"), ("${A?x}", "1"), ("${EMPTY?x}", ""),
    ("$${A}", "${A}"), ("$$A", "$A"), ("a$$", "a$"), ("$$$A", "$1"), ("100$", "100$"),
    ("${NOPE:-${A}}", "1"), ("${NOPE:-${NADA:-x$B}}", "x2"), ("${NOPE:-$$}", "$"),
    ("$1 ${1} ${A B} ${} $-", "$1 ${1} ${A B} ${} $-"), ("x ${A", "x ${A"),
    ("pg://u:${A}@db/$B?x=$NOPE", "pg://u:1@db/2?x="),
])
def test_compose_syntax(template: str, result: str) -> None:
    assert substitute(template, VALUES) == result


@pytest.mark.parametrize("template", ["${NOPE:?set it}", "${NOPE?set it}", "${EMPTY:?set it}"])
def test_compose_required_variable(template: str) -> None:
    name = template[2:].split(":")[0].split("?")[0]
    with pytest.raises(Invalid, match=f"required variable {name} is missing a value: set it"):
        substitute(template, VALUES)


# -- envsubst syntax: Umbrel's *.template files -----------------------------------------------

@pytest.mark.parametrize(("template", "result"), [
    ("${A}-$B-${C}-$$", "1-2--$$"), ("$$A", "$1"), ("${NOPE:-d}", "${NOPE:-d}"),
    ("${A:+x} ${NOPE:?e}", "${A:+x} ${NOPE:?e}"), ("${A:-${B}}", "${A:-2}"),
    ("server_name $host;", "server_name ;"), ("echo $1 ${", "echo $1 ${"),
])
def test_envsubst_syntax(template: str, result: str) -> None:
    assert substitute(template, VALUES, syntax="envsubst") == result


# -- keep_unknown: rewriting a template into another template (Umbrel's exports) ------------

@pytest.mark.parametrize(("template", "result"), [
    ("${A}/${NOPE}/$NOPE", "1/${NOPE}/$NOPE"), ("${NOPE:-${A}}", "1"), ("${NOPE-x}", "x"),
    ("${NOPE:?e}", "${NOPE:?e}"), ("${NOPE:+x}", "${NOPE:+x}"), ("$$A $$", "$$A $$"),
    ("${A:-d}", "1"), ("${EMPTY:-$NOPE}", "$NOPE"),
])
def test_keep_unknown(template: str, result: str) -> None:
    assert substitute(template, VALUES, keep_unknown=True) == result


def test_replacements_are_not_substituted_again() -> None:
    assert substitute("${A}", {"A": "${B}", "B": "x"}) == "${B}"
    assert substitute("${A}", {"A": "$$"}) == "$$"
