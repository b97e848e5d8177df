"""Risk analysis of resolved projects, and the consent digest."""

from __future__ import annotations

from typing import Any

import pytest

from stackhub.adapters.compose import ResolvedProject
from stackhub.apps import risk
from stackhub.errors import EngineError

ROOT = "/var/lib/stackhub"
OWN = f"{ROOT}/appdata/blog"


def analyse(service: dict[str, Any], **top: Any) -> list[tuple[str, str]]:
    resolved = {"name": "stackhub-blog", "services": {"web": {"image": "x", **service}}, **top}
    found = risk.analyse(model(resolved), allowed_roots=[OWN], protected_roots=[ROOT])
    assert all(r.service == "web" for r in found)
    return [(r.code, r.severity) for r in found]


def model(data: dict[str, Any]) -> ResolvedProject:
    return ResolvedProject.parse(data)


def bind(source: str) -> dict[str, Any]:
    return {"volumes": [{"type": "bind", "source": source, "target": "/x"}]}


def test_plain_service_has_no_risks() -> None:
    assert analyse({"ports": [{"target": 80, "published": "8080"}],
                    "volumes": [{"type": "volume", "source": "data", "target": "/d"}]},
                   volumes={"data": {"name": "stackhub-blog_data"}}) == []


def test_privileged_is_critical() -> None:
    assert analyse({"privileged": True}) == [("privileged", "critical")]
    assert analyse({"privileged": False}) == []


@pytest.mark.parametrize("key", ["network_mode", "pid", "ipc", "uts", "userns_mode", "cgroup"])
def test_host_namespaces(key: str) -> None:
    assert analyse({key: "host"}) == [(f"host_{key}", "high")]


def test_other_namespace_modes_are_fine() -> None:
    assert analyse({"network_mode": "bridge", "pid": "service:db", "ipc": "shareable"}) == []


def test_cap_add_all_is_critical_others_high() -> None:
    assert analyse({"cap_add": ["NET_ADMIN", "ALL"]}) == [("cap_add", "high"),
                                                          ("cap_add", "critical")]


def test_cap_add_all_in_lower_case_is_critical() -> None:
    assert analyse({"cap_add": ["all"]}) == [("cap_add", "critical")]


def test_devices_short_and_long() -> None:
    found = risk.analyse(model({"services": {"web": {"devices": [
        "/dev/snd:/dev/snd", {"source": "/dev/dri", "target": "/dev/dri"}]}}}),
        allowed_roots=[OWN], protected_roots=[ROOT])
    assert [(r.code, r.detail) for r in found] == [("device", "gets host device /dev/snd"),
                                                  ("device", "gets host device /dev/dri")]


@pytest.mark.parametrize("opt", ["seccomp=unconfined", "apparmor:unconfined",
                                 "systempaths=unconfined", "no-new-privileges:false"])
def test_security_opt_relaxing_confinement(opt: str) -> None:
    assert analyse({"security_opt": [opt]}) == [("security_opt", "high")]


def test_security_opt_tightening_is_fine() -> None:
    assert analyse({"security_opt": ["no-new-privileges:true"]}) == []


@pytest.mark.parametrize("sock", ["/var/run/docker.sock", "/run/docker.sock",
                                  "/home/me/.docker/run/docker.sock"])
def test_docker_socket_is_critical(sock: str) -> None:
    assert analyse(bind(sock)) == [("docker_socket", "critical")]


@pytest.mark.parametrize("path", ["/etc", "/etc/ssl", "/proc", "/sys/fs", "/dev", "/boot",
                                  "/root", "/root/.ssh", "/var/lib/docker/volumes", "/run",
                                  "/var/run/utmp", "/usr", "/home", "/var/log"])
def test_system_paths_are_high(path: str) -> None:
    assert analyse(bind(path)) == [("system_path", "high")]


@pytest.mark.parametrize("path", ["/srv/media", "/mnt/usb", "/home/me/Music", "/opt/app",
                                  "/etcetera", OWN, f"{OWN}/data", f"{OWN}/db/files"])
def test_ordinary_paths_and_own_data_are_fine(path: str) -> None:
    assert analyse(bind(path)) == []


@pytest.mark.parametrize("path", [ROOT, f"{ROOT}/secrets", f"{ROOT}/secrets/admin-token",
                                  f"{ROOT}/appdata", f"{ROOT}/appdata/wiki", f"{ROOT}/stackhub.db",
                                  f"{ROOT}/appdata/blog-old", f"{ROOT}/instances/blog"])
def test_stackhub_data_outside_the_own_dir_is_critical(path: str) -> None:
    assert analyse(bind(path)) == [("stackhub_data", "critical")]


def test_a_parent_of_the_data_root_is_critical() -> None:
    found = risk.analyse(model({"services": {"web": bind("/srv")}}),
                         allowed_roots=["/srv/stackhub/appdata/blog"],
                         protected_roots=["/srv/stackhub"])
    assert [(r.code, r.severity) for r in found] == [("stackhub_data", "critical")]


def test_dot_dot_out_of_the_own_data_dir_is_critical() -> None:
    assert analyse(bind(f"{OWN}/../../secrets")) == [("stackhub_data", "critical")]


@pytest.mark.parametrize("opts", [{"type": "none", "o": "bind", "device": "/etc"},
                                  {"o": "bind,ro", "device": "/etc"},
                                  {"type": "none", "device": "/etc"}])
def test_driver_opts_bind_volumes_are_checked(opts: dict[str, str]) -> None:
    volumes = {"data": {"name": "stackhub-blog_data", "driver_opts": opts}}
    service = {"volumes": [{"type": "volume", "source": "data", "target": "/d"}]}
    assert analyse(service, volumes=volumes) == [("system_path", "high")]


def test_driver_opts_bind_into_the_own_dir_is_fine() -> None:
    volumes = {"data": {"driver_opts": {"type": "none", "o": "bind", "device": f"{OWN}/db"}}}
    service = {"volumes": [{"type": "volume", "source": "data", "target": "/d"}]}
    assert analyse(service, volumes=volumes) == []


def test_driver_opts_without_bind_are_fine() -> None:
    volumes = {"data": {"driver_opts": {"type": "nfs", "o": "addr=10.0.0.1", "device": ":/x"}}}
    service = {"volumes": [{"type": "volume", "source": "data", "target": "/d"}]}
    assert analyse(service, volumes=volumes) == []


@pytest.mark.parametrize("section", ["secrets", "configs"])
def test_file_secrets_and_configs_are_binds_too(section: str) -> None:
    top = {section: {"tok": {"name": "stackhub-blog_tok", "file": f"{ROOT}/secrets/admin-token"}}}
    service = {section: [{"source": "tok", "target": "/run/secrets/tok"}]}
    assert analyse(service, **top) == [("stackhub_data", "critical")]


def test_several_services_each_reported() -> None:
    resolved = {"services": {"a": {"privileged": True}, "b": {"network_mode": "host"},
                             "c": {"image": "fine"}}}
    found = risk.analyse(model(resolved), allowed_roots=[OWN], protected_roots=[ROOT])
    assert [(r.service, r.code) for r in found] == [("a", "privileged"), ("b", "host_network_mode")]


# -- digest ------------------------------------------------------------------------------------

def project(secret: str, image: str = "nginx:1") -> ResolvedProject:
    return model({"name": "stackhub-blog", "services": {"web": {
        "image": image, "environment": {"PASSWORD": secret, "DSN": f"pg://u:{secret}@db/x"}}}})


def test_digest_is_stable_when_secrets_are_regenerated() -> None:
    first = risk.digest(project("s3cret-one-AAAA"), ["s3cret-one-AAAA"])
    second = risk.digest(project("another-secret-BBBB"), ["another-secret-BBBB"])
    assert first == second
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 64


def test_digest_changes_when_content_changes() -> None:
    base = risk.digest(project("s3cret-one-AAAA"), ["s3cret-one-AAAA"])
    assert risk.digest(project("s3cret-one-AAAA", image="nginx:2"), ["s3cret-one-AAAA"]) != base
    assert risk.digest(project("s3cret-one-AAAA"), []) != base


def test_digest_ignores_key_order() -> None:
    a = {"services": {"web": {"image": "x", "privileged": True}}, "name": "p"}
    b = {"name": "p", "services": {"web": {"privileged": True, "image": "x"}}}
    assert risk.digest(model(a), []) == risk.digest(model(b), [])


def test_digest_masks_longer_secrets_first_and_skips_tiny_ones() -> None:
    resolved = {"services": {"web": {"environment": {"A": "abcdef", "B": "abc"}}}}
    masked = risk.digest(model(resolved), ["abc", "abcdef"])
    assert masked == risk.digest(model({"services": {"web": {"environment": {
        "A": "<secret>", "B": "abc"}}}}), [])


@pytest.mark.parametrize("path", ["/", "/var/lib"])
def test_system_paths_holding_the_data_root_are_critical(path: str) -> None:
    assert analyse(bind(path)) == [("stackhub_data", "critical")]


def test_block_device_volume_is_critical() -> None:
    volume = {"volumes": [{"type": "volume", "source": "disk", "target": "/d"}]}
    assert analyse(volume, volumes={"disk": {"driver_opts": {"type": "ext4",
                                                             "device": "/dev/sda1"}}}) == [
        ("device_volume", "critical")]


def test_external_volumes_and_networks_are_flagged() -> None:
    service = {"volumes": [{"type": "volume", "source": "shared", "target": "/d"}],
               "networks": {"outside": None}}
    found = analyse(service, volumes={"shared": {"name": "victim", "external": True}},
                    networks={"outside": {"name": "corp", "external": True}})
    assert found == [("external_volume", "high"), ("external_network", "high")]


@pytest.mark.parametrize("key", ["network_mode", "pid", "ipc"])
def test_joining_another_container_is_flagged(key: str) -> None:
    assert analyse({key: "container:victim"}) == [(f"{key}_container", "high")]


def test_volumes_from_another_container_is_flagged() -> None:
    assert analyse({"volumes_from": ["container:victim"]}) == [("volumes_from", "high")]


def test_digest_covers_keys_the_typed_model_does_not_read() -> None:
    # consent binds the whole resolved project, not only the fields the risk analysis reads
    base = risk.digest(project("s3cret-one-AAAA"), [])
    changed = model({**project("s3cret-one-AAAA").raw, "x-extra": {"anything": 1}})
    assert risk.digest(changed, []) != base


def test_an_unreadable_model_is_an_engine_error() -> None:
    with pytest.raises(EngineError, match=r"services\.web\.privileged"):
        model({"services": {"web": {"privileged": {"not": "a flag"}}}})
