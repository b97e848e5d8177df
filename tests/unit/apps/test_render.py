"""Rendering: labels, data paths, refused options, notes, env files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stackhub import labels
from stackhub.adapters.fakes import parse_env_file
from stackhub.apps.render import env_file_text, render
from stackhub.catalog.models import AppDefinition
from stackhub.errors import Invalid
from stackhub.platform import platform_env

DATA = Path("/var/lib/stackhub/appdata/blog")
STAMP = {labels.MANAGED: "true", labels.INSTANCE: "blog", labels.APP: "local/blog"}


def app_of(compose: dict[str, Any], **kwargs: Any) -> AppDefinition:
    return AppDefinition(id="blog", store="local", name="Blog", compose=compose, **kwargs)


def do_render(compose: dict[str, Any], values: dict[str, str] | None = None,
              **kwargs: Any) -> Any:
    platform = platform_env(instance="blog", app_id="blog", data_dir=DATA, tz="UTC")
    return render(app_of(compose, **kwargs), instance="blog", values=values or {},
                  platform=platform, data_dir=DATA)


def web(**spec: Any) -> dict[str, Any]:
    return {"services": {"web": {"image": "nginx:1", **spec}}}


# -- labels -----------------------------------------------------------------------------------

def test_labels_are_added_to_services_without_labels() -> None:
    out = do_render(web())
    assert out.compose["services"]["web"]["labels"] == STAMP
    assert out.compose["name"] == "stackhub-blog"


def test_dict_labels_are_kept_and_stamped() -> None:
    out = do_render(web(labels={"traefik.enable": "true", "empty": None}))
    assert out.compose["services"]["web"]["labels"] == {"traefik.enable": "true", "empty": "",
                                                        **STAMP}


def test_list_labels_are_turned_into_a_mapping_and_stamped() -> None:
    out = do_render(web(labels=["traefik.enable=true", "flag", "a=b=c"]))
    assert out.compose["services"]["web"]["labels"] == {"traefik.enable": "true", "flag": "",
                                                        "a": "b=c", **STAMP}


@pytest.mark.parametrize("forged", [
    {labels.INSTANCE: "other", labels.MANAGED: "false", "io.stackhub.admin": "yes"},
    [f"{labels.INSTANCE}=other", f"{labels.APP}=evil/app", "io.stackhub.whatever=1"],
])
def test_forged_stackhub_labels_are_stripped(forged: Any) -> None:
    out = do_render(web(labels=forged))
    assert out.compose["services"]["web"]["labels"] == STAMP


def test_labels_of_another_shape_are_invalid() -> None:
    with pytest.raises(Invalid, match="labels must be a mapping or a list"):
        do_render(web(labels="a=b"))


def test_networks_and_volumes_are_labelled_external_ones_untouched() -> None:
    compose = {**web(), "networks": {"front": None, "proxy": {"external": True},
                                     "back": {"labels": ["x=y", f"{labels.INSTANCE}=evil"]}},
               "volumes": {"data": {}, "shared": {"external": True, "name": "shared"}}}
    out = do_render(compose)
    nets, vols = out.compose["networks"], out.compose["volumes"]
    assert nets["front"] == {"labels": STAMP}
    assert nets["proxy"] == {"external": True}
    assert nets["back"]["labels"] == {"x": "y", **STAMP}
    assert vols["data"] == {"labels": STAMP}
    assert vols["shared"] == {"external": True, "name": "shared"}


def test_default_network_is_declared_and_labelled() -> None:
    out = do_render(web())
    assert out.compose["networks"]["default"] == {"labels": STAMP}


def test_declared_default_network_is_labelled_not_replaced() -> None:
    out = do_render({**web(), "networks": {"default": {"driver": "bridge"}}})
    assert out.compose["networks"]["default"] == {"driver": "bridge", "labels": STAMP}


def test_empty_networks_section_is_handled() -> None:
    out = do_render({**web(), "networks": None})
    assert out.compose["networks"]["default"] == {"labels": STAMP}


@pytest.mark.parametrize("section", ["networks", "volumes"])
def test_top_level_sections_must_be_mappings(section: str) -> None:
    with pytest.raises(Invalid, match=f"top-level {section} must be a mapping"):
        do_render({**web(), section: ["a"]})
    with pytest.raises(Invalid, match=f"{section}.a must be a mapping"):
        do_render({**web(), section: {"a": "text"}})


def test_version_key_is_dropped_and_template_untouched() -> None:
    compose = {"version": "3.8", **web(labels={"a": "b"})}
    app = app_of(compose)
    platform = platform_env(instance="blog", app_id="blog", data_dir=DATA, tz="UTC")
    out = render(app, instance="blog", values={}, platform=platform, data_dir=DATA)
    assert "version" not in out.compose
    assert app.compose == compose  # rendering works on a copy


# -- volumes and data paths -------------------------------------------------------------------

@pytest.mark.parametrize(("source", "mapped"), [
    ("./data", f"{DATA}/data"),
    ("./", str(DATA)),
    (".", str(DATA)),
    ("./a/b/../c", None),
    ("./config/app.ini", f"{DATA}/config/app.ini"),
])
def test_relative_binds_map_into_the_data_dir(source: str, mapped: str | None) -> None:
    if mapped is None:
        with pytest.raises(Invalid, match="leaves the data directory"):
            do_render(web(volumes=[f"{source}:/x"]))
        return
    out = do_render(web(volumes=[f"{source}:/x:ro"]))
    assert out.compose["services"]["web"]["volumes"] == [f"{mapped}:/x:ro"]


def test_long_form_relative_bind_is_mapped() -> None:
    volume = {"type": "bind", "source": "./media", "target": "/media", "read_only": True}
    out = do_render(web(volumes=[volume]))
    assert out.compose["services"]["web"]["volumes"] == [{**volume, "source": f"{DATA}/media"}]


def test_long_form_relative_bind_without_dot_is_mapped() -> None:
    volume = {"type": "bind", "source": "data", "target": "/data"}
    out = do_render(web(volumes=[volume]))
    assert out.compose["services"]["web"]["volumes"] == [{**volume, "source": f"{DATA}/data"}]


@pytest.mark.parametrize("volume", ["../escape:/x", "./../escape:/x", "./a/../../escape:/x",
                                    {"type": "bind", "source": "../../etc", "target": "/x"}])
def test_parent_escapes_are_refused(volume: Any) -> None:
    with pytest.raises(Invalid, match="leaves the data directory"):
        do_render(web(volumes=[volume]))


@pytest.mark.parametrize("volume", ["~/.ssh:/keys", "~root:/x",
                                    {"type": "bind", "source": "~/x", "target": "/x"}])
def test_home_binds_are_refused(volume: Any) -> None:
    with pytest.raises(Invalid, match="home directory"):
        do_render(web(volumes=[volume]))


def test_named_absolute_and_anonymous_volumes_pass_through() -> None:
    vols = ["data:/data", "/srv/media:/media", "/cache",
            {"type": "volume", "source": "data", "target": "/d"}]
    out = do_render({**web(volumes=vols), "volumes": {"data": {}}})
    assert out.compose["services"]["web"]["volumes"] == vols


@pytest.mark.parametrize("volumes", ["./data:/data", {"a": "b"}])
def test_volumes_must_be_a_list(volumes: Any) -> None:
    with pytest.raises(Invalid, match="volumes must be a list"):
        do_render(web(volumes=volumes))


def test_volume_entries_must_be_strings_or_mappings() -> None:
    with pytest.raises(Invalid, match="string or a mapping"):
        do_render(web(volumes=[42]))


# -- refused and dropped options ----------------------------------------------------------------

def test_build_is_refused() -> None:
    with pytest.raises(Invalid, match="uses 'build'"):
        do_render({"services": {"web": {"build": ".", "image": "x"}}})


@pytest.mark.parametrize("service", [{}, {"image": ""}, {"image": "  "}, {"image": 3}])
def test_missing_image_is_refused(service: dict[str, Any]) -> None:
    with pytest.raises(Invalid, match="service web has no image"):
        do_render({"services": {"web": service}})


@pytest.mark.parametrize("compose", [{}, {"services": {}}, {"services": ["web"]}])
def test_no_services_is_refused(compose: dict[str, Any]) -> None:
    with pytest.raises(Invalid, match="no services"):
        do_render(compose)


def test_service_must_be_a_mapping() -> None:
    with pytest.raises(Invalid, match="service web must be a mapping"):
        do_render({"services": {"web": "nginx"}})


def test_container_name_is_dropped_with_a_note() -> None:
    out = do_render(web(container_name="blog", restart="always"))
    assert "container_name" not in out.compose["services"]["web"]
    assert out.notes == ["service web: container_name dropped so instances cannot clash"]


# -- env values -------------------------------------------------------------------------------

def test_env_holds_platform_values_and_derived() -> None:
    out = do_render(web(), values={"PASSWORD": "pw", "TZ": "Asia/Tokyo"},
                    derived={"DSN": "postgres://app:${PASSWORD}@db/$APP_INSTANCE?x=$NOPE"})
    assert out.env["APP_INSTANCE"] == "blog"
    assert out.env["APP_ID"] == "blog"
    assert out.env["APP_DATA_DIR"] == str(DATA)
    assert out.env["PUID"] == "1000" and out.env["PGID"] == "1000"
    assert out.env["TZ"] == "UTC"  # platform values win: an app cannot redefine them
    assert out.env["DSN"] == "postgres://app:pw@db/blog?x="


@pytest.mark.parametrize("value", [
    "plain", "with spaces  inside", "it's", "say \"hi\"", "both ' and \"", "$HOME", "${HOME}",
    "it's $HOME", "back\\slash", "it's back\\slash\\", "trailing\\", "'", "\"", "#not comment",
    "a # b", "=eq=", "", "ünïcødé ✓", "tab\there", "$$double", "it's $$double",
    "it's \\$HOME", "it's \\n not a newline",
])
def test_env_file_values_stay_literal(value: str) -> None:
    text = env_file_text({"VALUE": value, "OTHER": "x", "HOME": "/root"})
    assert text.startswith("# Written by StackHub")
    parsed = parse_env_file(text)
    assert parsed["VALUE"] == value


def test_env_file_is_sorted_one_line_per_key() -> None:
    text = env_file_text({"B": "2", "A": "1"})
    assert text.splitlines()[1:] == ["A='1'", "B='2'"]


def test_custom_volume_and_network_names_are_dropped() -> None:
    # a custom name could adopt another instance's (or any) volume, and purge would delete it
    compose = web(volumes=["data:/d"])
    compose["volumes"] = {"data": {"name": "victim"}, "ext": {"name": "x", "external": True}}
    compose["networks"] = {"back": {"name": "stackhub-other_default"}}
    out = do_render(compose)
    assert "name" not in out.compose["volumes"]["data"]
    assert "name" not in out.compose["networks"]["back"]
    assert out.compose["volumes"]["ext"] == {"name": "x", "external": True}
    assert sum("custom name dropped" in note for note in out.notes) == 2


# -- env files: only the instance's data folder, optional until the install writes them -------

def test_env_files_of_the_data_folder_are_kept_and_optional() -> None:
    rendered = do_render(web(env_file=["${APP_DATA_DIR}/settings.env", {
        "path": "${APP_DATA_DIR}/config/prod.env", "required": True}]))
    assert rendered.compose["services"]["web"]["env_file"] == [
        {"path": "${APP_DATA_DIR}/settings.env", "required": False},
        {"path": "${APP_DATA_DIR}/config/prod.env", "required": False}]


@pytest.mark.parametrize("env_file", [
    "./app.env", "/etc/environment", "${APP_DATA_DIR}/../../secrets/admin-token",
    ["${HOME}/.env"], [{"path": "${APP_DATA_DIR}/a/./b.env"}], [{"required": False}],
])
def test_other_env_files_are_refused(env_file: Any) -> None:
    with pytest.raises(Invalid, match="must be a file of the app's data folder"):
        do_render(web(env_file=env_file))
