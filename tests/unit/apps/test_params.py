"""Parameters: every type's validation, required and unknown values, secrets, kept values."""

from __future__ import annotations

import string
from typing import Any

import pytest

from stackhub.apps import params
from stackhub.catalog.models import Parameter, ParameterType, SecretEncoding
from stackhub.errors import Invalid


def no_ports(param: Parameter, wanted: int | None, asked: bool) -> int:
    raise AssertionError("no port parameter expected")


def resolve_one(param: Parameter, value: str | None = None,
                kept: dict[str, str] | None = None) -> str:
    given = {} if value is None else {param.name: value}
    return params.resolve([param], given, kept or {}, pick_port=no_ports)[param.name]


def p(type_: str = "string", **kwargs: Any) -> Parameter:
    return Parameter(name="X", type=ParameterType(type_), **kwargs)


# -- strings and text checks -----------------------------------------------------------------

def test_string_value_and_default() -> None:
    assert resolve_one(p(default="hello")) == "hello"
    assert resolve_one(p(default="hello"), "given") == "given"
    assert resolve_one(p()) == ""


def test_string_length_limits() -> None:
    param = p(min=3, max=5)
    assert resolve_one(param, "abcd") == "abcd"
    with pytest.raises(Invalid, match="at least 3 characters"):
        resolve_one(param, "ab")
    with pytest.raises(Invalid, match="at most 5 characters"):
        resolve_one(param, "abcdef")


def test_regex_with_custom_message() -> None:
    param = p(regex=r"[a-z]+", regex_error={"en": "lowercase letters only"})
    assert resolve_one(param, "abc") == "abc"
    with pytest.raises(Invalid, match="lowercase letters only") as info:
        resolve_one(param, "ABC")
    assert info.value.details == {"parameter": "X"}


def test_regex_must_match_the_whole_value() -> None:
    with pytest.raises(Invalid, match="must match"):
        resolve_one(p(regex=r"[a-z]+"), "abc1")


def test_error_names_the_parameter_and_its_label() -> None:
    param = Parameter(name="ADMIN", label={"en": "Admin user"}, min=4)
    with pytest.raises(Invalid, match=r"parameter ADMIN \(Admin user\)"):
        resolve_one(param, "ab")


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b", "line\n"])
def test_newlines_and_nul_are_rejected(value: str) -> None:
    with pytest.raises(Invalid, match="single line without control characters"):
        resolve_one(p(), value)


@pytest.mark.parametrize("value", ["a\x1b[31mred", "bell\x07", "del\x7f"])
def test_other_control_characters_are_rejected(value: str) -> None:
    with pytest.raises(Invalid, match="control characters"):
        resolve_one(p(), value)


def test_overlong_value_is_rejected() -> None:
    with pytest.raises(Invalid, match="longer than"):
        resolve_one(p(), "x" * (params.MAX_VALUE_LENGTH + 1))


# -- numbers, ports, booleans, enums -----------------------------------------------------------

@pytest.mark.parametrize(("raw", "canonical"), [("5", "5"), ("5.0", "5"), ("2.5", "2.5"),
                                                ("-3", "-3"), (" 7 ", "7")])
def test_number_canonical_text(raw: str, canonical: str) -> None:
    assert resolve_one(p("number"), raw) == canonical


def test_number_limits_and_garbage() -> None:
    param = p("number", min=1, max=10)
    with pytest.raises(Invalid, match="at least 1"):
        resolve_one(param, "0")
    with pytest.raises(Invalid, match="at most 10"):
        resolve_one(param, "11")
    with pytest.raises(Invalid, match="is not a number"):
        resolve_one(param, "ten")


def test_number_default_from_yaml_int() -> None:
    assert resolve_one(p("number", default=3)) == "3"


@pytest.mark.parametrize(("value", "limits"), [("nan", {"min": 0, "max": 100}), ("nan", {}),
                                               ("inf", {}), ("-inf", {}), ("1e999", {})])
def test_number_rejects_nan_and_infinity(value: str, limits: dict[str, float]) -> None:
    with pytest.raises(Invalid):
        resolve_one(p("number", **limits), value)


@pytest.mark.parametrize("value", ["0", "65536", "80a", "-1", "8.5"])
def test_port_value_out_of_range_or_not_a_number(value: str) -> None:
    param = Parameter(name="PORT", type=ParameterType.PORT)
    with pytest.raises(Invalid, match="port number between 1 and 65535"):
        params.resolve([param], {"PORT": value}, {}, pick_port=lambda *a: 1)


def test_port_value_with_unicode_digit_is_invalid() -> None:
    param = Parameter(name="PORT", type=ParameterType.PORT)
    with pytest.raises(Invalid):
        params.resolve([param], {"PORT": "²"}, {}, pick_port=lambda *a: 1)


def test_port_is_handed_to_the_picker_with_wanted_and_asked() -> None:
    seen: list[tuple[str, int | None, bool]] = []

    def picker(param: Parameter, wanted: int | None, asked: bool) -> int:
        seen.append((param.name, wanted, asked))
        return 9000 + len(seen)

    ps = [Parameter(name="A", type=ParameterType.PORT, default=8080),
          Parameter(name="B", type=ParameterType.PORT, default=8081),
          Parameter(name="C", type=ParameterType.PORT)]
    values = params.resolve(ps, {"B": "8500"}, {"A": "8400"}, pick_port=picker)
    assert seen == [("A", 8400, False), ("B", 8500, True), ("C", None, False)]
    assert values == {"A": "9001", "B": "9002", "C": "9003"}


@pytest.mark.parametrize(("raw", "result"), [("true", "true"), ("YES", "true"), ("1", "true"),
                                             ("on", "true"), ("false", "false"), ("no", "false"),
                                             ("0", "false"), ("Off", "false")])
def test_boolean_values(raw: str, result: str) -> None:
    assert resolve_one(p("boolean"), raw) == result


def test_boolean_default_from_yaml_bool_and_garbage() -> None:
    assert resolve_one(p("boolean", default=True)) == "true"
    assert resolve_one(p("boolean", default=False)) == "false"
    with pytest.raises(Invalid, match="not true or false"):
        resolve_one(p("boolean"), "maybe")


def test_enum_values() -> None:
    param = p("enum", options=[{"value": "sqlite"}, {"value": "postgres"}], default="sqlite")
    assert resolve_one(param) == "sqlite"
    assert resolve_one(param, "postgres") == "postgres"
    with pytest.raises(Invalid, match="not one of sqlite, postgres"):
        resolve_one(param, "mysql")


# -- path, email, url, host ---------------------------------------------------------------------

@pytest.mark.parametrize("value", ["/srv/media", "/", "/mnt/a b/c"])
def test_path_accepts_absolute_paths(value: str) -> None:
    assert resolve_one(p("path"), value) == value


@pytest.mark.parametrize("value", ["relative/dir", "./x", "/srv/../etc", "/srv/..", "/a/./b",
                                   "~/x"])
def test_path_refuses_relative_and_dot_parts(value: str) -> None:
    with pytest.raises(Invalid, match="absolute path"):
        resolve_one(p("path"), value)


@pytest.mark.parametrize(("kind", "good", "bad"), [
    ("email", "admin@example.org", "admin@example"),
    ("email", "a.b+c@mail.example.org", "two words@example.org"),
    ("url", "https://example.org/path?q=1", "ftp://example.org"),
    ("url", "http://localhost:8080", "https://exa mple.org"),
    ("host", "example.org", "-bad.example.org"),
    ("host", "a-b.c", "exa_mple.org"),
    ("host", "localhost", "a" * 64 + ".org"),
])
def test_email_url_host(kind: str, good: str, bad: str) -> None:
    assert resolve_one(p(kind), good) == good
    with pytest.raises(Invalid, match="is not"):
        resolve_one(p(kind), bad)


# -- required, unknown ---------------------------------------------------------------------------

def test_required_without_value_or_default() -> None:
    with pytest.raises(Invalid, match="is required"):
        resolve_one(p(required=True))
    with pytest.raises(Invalid, match="is required"):
        resolve_one(p("password", required=True))
    assert resolve_one(p(required=True, default="d")) == "d"


def test_unknown_parameters_are_named() -> None:
    with pytest.raises(Invalid, match=r"unknown parameter\(s\): NOPE, ZED; this app takes X"):
        params.resolve([p()], {"NOPE": "1", "ZED": "2"}, {}, pick_port=no_ports)
    with pytest.raises(Invalid, match="no parameters"):
        params.resolve([], {"A": "1"}, {}, pick_port=no_ports)


def test_kept_values_are_not_checked_for_unknown_names() -> None:
    values = params.resolve([p()], {}, {"X": "kept", "GONE": "old"}, pick_port=no_ports)
    assert values == {"X": "kept"}


# -- secrets -------------------------------------------------------------------------------------

ALPHABETS = {
    SecretEncoding.ALNUM: set(string.ascii_letters + string.digits),
    SecretEncoding.HEX: set("0123456789abcdef"),
    SecretEncoding.BASE64: set(string.ascii_letters + string.digits + "+/="),
}


@pytest.mark.parametrize("encoding", list(SecretEncoding))
@pytest.mark.parametrize("length", [8, 17, 32, 256])
def test_generated_secret_length_and_alphabet(encoding: SecretEncoding, length: int) -> None:
    value = resolve_one(p("secret", length=length, encoding=encoding))
    assert len(value) == length
    assert set(value) <= ALPHABETS[encoding]


def test_generated_secrets_differ() -> None:
    param = p("secret")
    assert len({resolve_one(param) for _ in range(5)}) == 5


def test_secret_kept_from_an_earlier_install() -> None:
    assert resolve_one(p("secret"), kept={"X": "kept-secret-value"}) == "kept-secret-value"


def test_secret_given_wins_over_kept() -> None:
    assert resolve_one(p("secret"), "given-secret-val", kept={"X": "kept"}) == "given-secret-val"


def test_secret_length_bounds_are_part_of_the_model() -> None:
    with pytest.raises(ValueError, match="length"):
        p("secret", length=4)
    with pytest.raises(ValueError, match="length"):
        p("secret", length=1024)


def test_password_is_never_generated() -> None:
    assert resolve_one(p("password")) == ""


def test_secret_names() -> None:
    ps = [Parameter(name="A", type=ParameterType.SECRET),
          Parameter(name="B", type=ParameterType.PASSWORD),
          Parameter(name="C", type=ParameterType.STRING)]
    assert params.secret_names(ps) == {"A", "B"}


def test_parameter_names_must_be_env_names() -> None:
    for bad in ("1X", "A-B", "A B", "", "X" * 65):
        with pytest.raises(ValueError, match="environment variable name"):
            Parameter(name=bad)


def test_parameter_name_with_trailing_newline_is_refused() -> None:
    with pytest.raises(ValueError, match="environment variable name"):
        Parameter(name="X\n")
