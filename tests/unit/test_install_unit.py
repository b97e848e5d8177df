"""The systemd unit install.sh writes: ordered after the engine, never bound to it, restarted.

StackHub must come back after a reboot whichever of it and the engine starts first, and keep
running while the engine restarts (it reports the outage and reconnects by itself), so the unit
wants and orders after docker.service but does not Require/BindsTo it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

INSTALL = Path(__file__).resolve().parents[2] / "install.sh"


def unit_text(venv: Path) -> str:
    """Run install.sh's own unit_text function (only it) with example values."""
    script = ('eval "$(sed -n \'/^unit_text() {/,/^}/p\' "$1")"; '
              'VENV="$2" DATA_DIR=/var/lib/stackhub PORT=8420; unit_text')
    done = subprocess.run(["bash", "-c", script, "bash", str(INSTALL), str(venv)],
                          capture_output=True, text=True, check=True, timeout=30)
    return done.stdout


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            found.setdefault(f"{section}.{key}", []).extend(value.split())
    return found


def test_the_unit_follows_the_engine_without_being_bound_to_it(tmp_path: Path) -> None:
    unit = directives(unit_text(tmp_path))
    assert "docker.service" in unit["Unit.Wants"]
    assert "docker.service" in unit["Unit.After"]
    for binding in ("Unit.Requires", "Unit.BindsTo", "Unit.PartOf", "Unit.Requisite"):
        assert not any("docker" in v for v in unit.get(binding, [])), binding
    assert unit["Service.Restart"] == ["always"]
    assert unit["Unit.StartLimitIntervalSec"] == ["0"]  # systemd never gives up on it
    assert unit["Install.WantedBy"] == ["multi-user.target"]
    assert unit["Service.ExecStart"][0] == f"{tmp_path}/bin/stackhub"


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    stackhub = tmp_path / "bin" / "stackhub"
    stackhub.parent.mkdir()
    stackhub.write_text("#!/bin/sh\n")
    stackhub.chmod(0o755)
    path = tmp_path / "stackhub.service"
    path.write_text(unit_text(tmp_path))
    if analyze is None:  # scripts/bootstrap installs systemd; say so rather than pass silently
        raise AssertionError("systemd-analyze is missing: cannot check the unit")
    done = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0 and "stackhub.service" not in done.stderr, done.stderr
