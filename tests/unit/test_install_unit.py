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


def refuse(data: Path, wheel: str) -> subprocess.CompletedProcess[str]:
    """Run install.sh's own refuse_downgrade (with db_version, log and die) on a data root."""
    script = ('for f in db_version refuse_downgrade; do '
              'eval "$(sed -n "/^$f() {/,/^}/p" "$1")"; done; '
              'eval "$(grep -E "^(log|die)\\(\\)" "$1")"; DATA_DIR="$2"; refuse_downgrade "$3"; '
              'echo passed')
    return subprocess.run(["bash", "-c", script, "bash", str(INSTALL), str(data), wheel],
                          capture_output=True, text=True, check=False, timeout=30)


def test_an_older_wheel_than_the_database_is_refused(tmp_path: Path) -> None:
    import sqlite3

    data = tmp_path / "data"
    data.mkdir()
    assert refuse(data, "/w/stackhub-0.1.0-py3-none-any.whl").stdout.strip() == "passed"
    with sqlite3.connect(data / "stackhub.db") as conn:
        conn.execute("CREATE TABLE stackhub_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO stackhub_meta VALUES ('version', '0.2.0')")
    conn.close()
    before = (data / "stackhub.db").read_bytes()
    older = refuse(data, "/w/stackhub-0.1.0-py3-none-any.whl")
    assert older.returncode == 1 and "passed" not in older.stdout
    assert ("stackhub.db was last used by StackHub 0.2.0; stackhub-0.1.0-py3-none-any.whl is "
            "the older 0.1.0") in older.stderr
    assert "Nothing was installed" in older.stderr
    assert (data / "stackhub.db").read_bytes() == before
    for same_or_newer in ("0.2.0", "0.2.0.post1", "0.10.0"):
        done = refuse(data, f"/w/stackhub-{same_or_newer}-py3-none-any.whl")
        assert done.stdout.strip() == "passed", (same_or_newer, done.stderr)
