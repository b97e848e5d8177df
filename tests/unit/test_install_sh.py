"""install.sh without installing: --help, usage errors, and each refusal with its exact message
(every machine fact comes from a STACKHUB_INSTALL_* override, so no real machine is needed)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

INSTALL = Path(__file__).resolve().parents[2] / "install.sh"
DEBIAN_12 = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'


@pytest.fixture
def good(tmp_path: Path) -> dict[str, str]:
    """Overrides describing a machine that meets every requirement."""
    os_release = tmp_path / "os-release"
    os_release.write_text(DEBIAN_12)
    return {"STACKHUB_INSTALL_ARCH": "amd64", "STACKHUB_INSTALL_OS_RELEASE": str(os_release),
            "STACKHUB_INSTALL_UID": "0", "STACKHUB_INSTALL_MEM_KIB": str(2 * 1024 * 1024),
            "STACKHUB_INSTALL_DISK_KIB": str(20 * 1024 * 1024), "STACKHUB_INSTALL_BUSY_PORTS": "",
            "STACKHUB_INSTALL_CGROUP": "2", "STACKHUB_INSTALL_OVERLAY": "yes",
            "STACKHUB_INSTALL_SYSTEMD": "no", "STACKHUB_INSTALL_UNIT_DIR": str(tmp_path / "units")}


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run install.sh with a temp prefix and data root, never touching /opt or /var/lib."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("STACKHUB_")}
    return subprocess.run(["bash", str(INSTALL), "--prefix", str(tmp_path / "opt"),
                           "--data-dir", str(tmp_path / "data"), *args],
                          capture_output=True, text=True, env={**base, **env}, timeout=60,
                          stdin=subprocess.DEVNULL, check=False)


def test_help_lists_every_flag(tmp_path: Path) -> None:
    done = run(tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    for flag in ("--port", "--data-dir", "--prefix", "--wheel", "--no-packages", "--check",
                 "--non-interactive", "--uninstall", "--purge", "--yes"):
        assert flag in done.stdout
    assert not (tmp_path / "opt").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--bogus"], "unknown option: --bogus"),
    (["--port", "http"], "--port must be a number from 1 to 65535, not 'http'"),
    (["--port", "70000"], "--port must be from 1 to 65535"),
    (["--purge"], "--purge goes with --uninstall"),
    (["--data-dir", "relative"], "--data-dir must be an absolute path"),
])
def test_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    done = run(tmp_path, *args)
    assert done.returncode == 64
    assert message in done.stderr


def test_a_good_machine_passes_the_checks(tmp_path: Path, good: dict[str, str]) -> None:
    done = run(tmp_path, "--check", **good)
    assert done.returncode == 0, done.stderr
    assert ("machine ok: amd64, Debian GNU/Linux 12 (bookworm), 2048 MiB memory, 20 GiB free, "
            "cgroup v2, overlayfs") in done.stderr


OS_RELEASES = {
    "debian-10": ('ID=debian\nVERSION_ID="10"\nPRETTY_NAME="Debian GNU/Linux 10 (buster)"\n',
                  "Debian GNU/Linux 10 (buster) is not supported"),
    "ubuntu-20.04": ('ID=ubuntu\nVERSION_ID="20.04"\nPRETTY_NAME="Ubuntu 20.04.6 LTS"\n',
                     "Ubuntu 20.04.6 LTS is not supported"),
    "fedora": ('ID=fedora\nVERSION_ID=40\nPRETTY_NAME="Fedora Linux 40"\n',
               "Fedora Linux 40 is not supported"),
}
SUPPORTED = "StackHub installs on Debian 11, 12 or 13, or Ubuntu 22.04 or 24.04"


@pytest.mark.parametrize("name", sorted(OS_RELEASES))
def test_unsupported_systems_are_refused(tmp_path: Path, good: dict[str, str],
                                         name: str) -> None:
    text, message = OS_RELEASES[name]
    Path(good["STACKHUB_INSTALL_OS_RELEASE"]).write_text(text)
    done = run(tmp_path, "--yes", **good)
    assert done.returncode == 2
    assert f"{message}: {SUPPORTED}" in done.stderr


@pytest.mark.parametrize(("override", "message"), [
    ({"STACKHUB_INSTALL_ARCH": "armhf"},
     "architecture armhf is not supported: StackHub installs on amd64 or arm64"),
    ({"STACKHUB_INSTALL_UID": "1000"}, "not running as root: run sudo bash install.sh"),
    ({"STACKHUB_INSTALL_MEM_KIB": "524288"},
     "this machine has 512 MiB of memory: StackHub needs at least 1 GiB"),
    ({"STACKHUB_INSTALL_DISK_KIB": str(3 * 1024 * 1024)}, "only 3072 MiB free in"),
    ({"STACKHUB_INSTALL_BUSY_PORTS": "8420"},
     "port 8420 is in use by another program: free it (sudo ss -ltnp 'sport = :8420' names "
     "the program), or choose another port with --port"),
    ({"STACKHUB_INSTALL_BUSY_PORTS": "443"},
     "port 443 is in use by another program: free it (sudo ss -ltnp 'sport = :443' names "
     "the program)"),
    ({"STACKHUB_INSTALL_CGROUP": "1"}, "the kernel runs cgroup v1: StackHub needs cgroup v2"),
    ({"STACKHUB_INSTALL_OVERLAY": "no"}, "the kernel has no overlay filesystem (overlayfs)"),
])
def test_each_refusal_has_its_message_and_installs_nothing(
        tmp_path: Path, good: dict[str, str], override: dict[str, str], message: str) -> None:
    done = run(tmp_path, "--yes", "--port", "8420", **{**good, **override})
    assert done.returncode == 2, done.stderr
    assert "this machine cannot run StackHub:" in done.stderr
    assert message in done.stderr
    assert done.stderr.count("  - ") == 1, done.stderr
    assert "nothing was installed" in done.stderr
    assert not (tmp_path / "opt").exists() and not (tmp_path / "data").exists()


def test_every_problem_is_listed_at_once(tmp_path: Path, good: dict[str, str]) -> None:
    bad = {"STACKHUB_INSTALL_ARCH": "i386", "STACKHUB_INSTALL_MEM_KIB": "100000",
           "STACKHUB_INSTALL_CGROUP": "1"}
    done = run(tmp_path, **{**good, **bad})
    assert done.returncode == 2
    assert done.stderr.count("  - ") == 3


def test_purge_needs_confirmation(tmp_path: Path, good: dict[str, str]) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "stackhub.db").write_text("")
    refused = run(tmp_path, "--uninstall", "--purge", **good)
    assert refused.returncode == 1
    assert "--purge deletes" in refused.stderr and "confirm with --yes" in refused.stderr
    assert (tmp_path / "data" / "stackhub.db").exists()
    kept = run(tmp_path, "--uninstall", **good)
    assert kept.returncode == 0, kept.stderr
    assert (tmp_path / "data" / "stackhub.db").exists()
    assert "the data root" in kept.stderr and "are kept" in kept.stderr
    purged = run(tmp_path, "--uninstall", "--purge", "--yes", **good)
    assert purged.returncode == 0, purged.stderr
    assert not (tmp_path / "data").exists()


def test_shellcheck_clean() -> None:
    # scripts/test installs shellcheck (Debian); missing, this fails rather than skips
    assert shutil.which("shellcheck"), "shellcheck is not installed: run scripts/test"
    done = subprocess.run(["shellcheck", str(INSTALL)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout


VENV = Path(__file__).resolve().parents[2] / ".venv"


def pools_step(tmp_path: Path, daemon_json: Path) -> subprocess.CompletedProcess[str]:
    """Source install.sh as a library and run only its engine-pools step against `daemon_json`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("STACKHUB_")}
    script = (f'source "{INSTALL}"; VENV="{VENV}"; configure_engine_pools; '
              'echo "written=$POOLS_WRITTEN"')
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                          env={**base, "STACKHUB_INSTALL_LIB": "1",
                               "STACKHUB_INSTALL_DAEMON_JSON": str(daemon_json)},
                          stdin=subprocess.DEVNULL, check=False, cwd=tmp_path)


@pytest.mark.skipif(not (VENV / "bin" / "python").exists(), reason="no .venv")
def test_engine_pools_are_merged_into_daemon_json_as_scripts_up_does(tmp_path: Path) -> None:
    daemon_json = tmp_path / "docker" / "daemon.json"
    done = pools_step(tmp_path, daemon_json)
    assert done.returncode == 0, done.stderr
    assert "written=1" in done.stdout
    assert json.loads(daemon_json.read_text()) == {
        "default-address-pools": [{"base": "172.16.0.0/12", "size": 24}]}
    # an admin's settings are kept, and so are their own pools
    own = {"log-driver": "local", "default-address-pools": [{"base": "10.99.0.0/16", "size": 28}]}
    daemon_json.write_text(json.dumps(own))
    again = pools_step(tmp_path, daemon_json)
    assert again.returncode == 0, again.stderr
    assert "written=0" in again.stdout and "kept as it is" in again.stderr
    assert json.loads(daemon_json.read_text()) == own


@pytest.mark.skipif(not (VENV / "bin" / "python").exists(), reason="no .venv")
def test_a_daemon_json_it_cannot_read_is_a_warning_and_left_alone(tmp_path: Path) -> None:
    daemon_json = tmp_path / "daemon.json"
    daemon_json.write_text("{ not json")
    done = pools_step(tmp_path, daemon_json)
    assert done.returncode == 0, done.stderr
    assert "written=0" in done.stdout
    assert "WARNING" in done.stderr and "is not valid JSON" in done.stderr
    assert daemon_json.read_text() == "{ not json"


def test_the_pools_are_configured_before_the_engine_starts() -> None:
    """The main sequence writes the pools before start_engine, so a fresh dockerd uses them."""
    main = INSTALL.read_text().split("# ---------------------------------------------------"
                                     "--------------- main", 1)[1]
    steps = [line.split()[0] for line in main.splitlines()
             if line and line.split()[0] in {"install_stackhub", "configure_engine_pools",
                                             "start_engine", "install_compose"}]
    assert steps == ["install_stackhub", "configure_engine_pools", "start_engine",
                     "install_compose"]


def test_pid_listens_finds_the_process_holding_a_port(tmp_path: Path) -> None:
    """The check that names the caddy package's own service on 80 reads /proc, not ss."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        script = (f'source "{INSTALL}"; pid_listens {os.getpid()} {port} && echo mine; '
                  f'pid_listens 1 {port} || echo not-pid-1; '
                  f'pid_listens {os.getpid()} 1 || echo not-port-1')
        base = {k: v for k, v in os.environ.items() if not k.startswith("STACKHUB_")}
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                              timeout=60, env={**base, "STACKHUB_INSTALL_LIB": "1"},
                              stdin=subprocess.DEVNULL, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["mine", "not-pid-1", "not-port-1"]


def test_the_caddy_package_service_is_stopped_before_stackhub_starts() -> None:
    """Its stock Caddyfile holds port 80, which StackHub's own Caddy gateway needs."""
    main = INSTALL.read_text().split("# ---------------------------------------------------"
                                     "--------------- main", 1)[1]
    steps = [line.split()[0] for line in main.splitlines()
             if line and line.split()[0] in {"install_packages", "disable_packaged_caddy",
                                             "start_service"}]
    assert steps == ["install_packages", "disable_packaged_caddy", "start_service"]
