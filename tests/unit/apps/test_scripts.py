"""Store scripts' output is read as data: hostile environments, emulations' contracts."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
from pathlib import Path

import pytest

from stackhub.adapters import sandbox
from stackhub.adapters.sandbox import Limits, RunResult
from stackhub.apps import scripts
from stackhub.apps.render import env_file_text, parse_env_file_text
from stackhub.catalog.readers import umbrel
from stackhub.errors import ScriptFailed


def test_new_names_are_read_and_given_ones_left_out() -> None:
    data = b"PATH=/usr/bin\0HOME=/tmp\0A=1\0B=two words = ok\0GIVEN=same\0CHANGED=new\0"
    found, skipped = scripts.parse_env(data, {"GIVEN": "same", "CHANGED": "old"})
    assert found == {"A": "1", "B": "two words = ok", "CHANGED": "new"}
    assert skipped == []


@pytest.mark.parametrize("item", [
    b"1BAD=x", b"BAD-NAME=x", b"BAD NAME=x", b"=x", b"no-equals", b"\xff\xfe=x",
    b"N\xc3\xa9=x", b"A" * 200 + b"=x",
])
def test_names_that_are_not_identifiers_are_skipped(item: bytes) -> None:
    found, skipped = scripts.parse_env(item + b"\0OK=1\0", {})
    assert found == {"OK": "1"}
    assert len(skipped) == 1


def test_binary_multiline_and_huge_values_are_skipped() -> None:
    data = (b"BIN=\xff\x00" + b"LINES=a\nb\0" + b"HUGE=" + b"x" * (scripts.MAX_VALUE + 1)
            + b"\0FINE=\xc3\xa9t\xc3\xa9\0")
    found, skipped = scripts.parse_env(data, {})
    assert found == {"FINE": "été"}
    assert [s.split(":")[0] for s in skipped] == ["BIN", "LINES", "HUGE"]


def test_too_many_variables_are_cut() -> None:
    data = b"".join(f"V{i}=x\0".encode() for i in range(scripts.MAX_VARS + 50))
    found, skipped = scripts.parse_env(data, {})
    assert len(found) == scripts.MAX_VARS
    assert "50 more variables" in skipped[-1]


def test_compose_and_stackhub_names_are_never_taken() -> None:
    found, _ = scripts.parse_env(b"COMPOSE_PROJECT_NAME=x\0DOCKER_HOST=tcp://x\0"
                                 b"STACKHUB_URL=x\0IFS=x\0OK=1\0", {})
    assert found == {"OK": "1"}


def _result(stdout: bytes, **kw: object) -> RunResult:
    return RunResult(exit_code=kw.pop("exit_code", 0), stdout=stdout,  # type: ignore[arg-type]
                     log=str(kw.pop("log", "")), **kw)  # type: ignore[arg-type]


def test_platform_values_and_parameters_cannot_be_changed(tmp_path: Path) -> None:
    ctx = scripts.ScriptContext(instance="i", app_id="a", data_dir=tmp_path,
                                env={"APP_PASSWORD": "p"}, protected=frozenset({"APP_PASSWORD"}))
    out = scripts.outcome(_result(b"APP_PASSWORD=other\0APP_DATA_DIR=/\0X=1\0"), ctx, Limits())
    assert out.exports == {"X": "1"}
    assert any("APP_PASSWORD" in s for s in out.skipped)
    assert any("APP_DATA_DIR" in s for s in out.skipped)


@pytest.mark.parametrize(("kw", "words"), [
    ({"timed_out": True, "exit_code": None}, "stopped after 60 s"),
    ({"oom_killed": True, "exit_code": 137}, "MiB"),
    ({"exit_code": 98, "log": "stackhub: exports.sh failed (exit 3)"}, "exit code 98"),
    ({"stdout_overflow": True}, "more than the sandbox reads"),
])
def test_failures_are_clear(tmp_path: Path, kw: dict[str, object], words: str) -> None:
    ctx = scripts.ScriptContext(instance="i", app_id="a", data_dir=tmp_path, env={})
    with pytest.raises(ScriptFailed) as err:
        scripts.outcome(_result(b"", **kw), ctx, Limits())
    assert words in err.value.message
    if kw.get("log"):
        assert "exports.sh failed" in err.value.message  # the script output reaches the log


def test_derive_entropy_matches_umbrels_openssl_pipeline() -> None:
    key = scripts.instance_key(b"\x01" * 32, "inst", "app")
    assert key != scripts.instance_key(b"\x01" * 32, "other", "app")
    assert key != scripts.instance_key(b"\x02" * 32, "inst", "app")
    shown = subprocess.run(["openssl", "dgst", "-sha256", "-hmac", key], input=b"app-x-pass",
                           capture_output=True, check=True).stdout.decode().split()[-1]
    assert scripts.derive_entropy(key, "app-x-pass") == shown
    assert shown == hmac.new(key.encode(), b"app-x-pass", hashlib.sha256).hexdigest()


def test_seed_is_made_once_and_private(tmp_path: Path) -> None:
    seed = scripts.load_seed(tmp_path)
    assert scripts.load_seed(tmp_path) == seed and len(seed) == 32
    assert (tmp_path / scripts.SEED_FILE).stat().st_mode & 0o777 == 0o600
    (tmp_path / scripts.SEED_FILE).write_text("not hex\n")
    with pytest.raises(ScriptFailed, match="keeps it as it is"):
        scripts.load_seed(tmp_path)
    assert (tmp_path / scripts.SEED_FILE).read_text() == "not hex\n"  # never replaced


def test_staged_folder_never_holds_the_seed(tmp_path: Path) -> None:
    runner = scripts.ScriptRunner(object(), secrets_dir=tmp_path / "secrets",  # type: ignore[arg-type]
                                  work_dir=tmp_path / "work", image="x")
    ctx = scripts.ScriptContext(instance="i", app_id="a", data_dir=tmp_path / "d", env={},
                                addresses=["192.168.1.5"], installed=["a", "b"])
    stage = tmp_path / "stage"
    runner.stage(stage, {"exports.sh": "export A=1\n", "evil/../x": "no"}, ctx)
    seed = (tmp_path / "secrets" / scripts.SEED_FILE).read_text().strip()
    texts = [p.read_text() for p in stage.rglob("*") if p.is_file()]
    assert not any(seed in t for t in texts)
    assert not (tmp_path / "x").exists()
    assert (stage / "data" / "key").read_text() == scripts.instance_key(
        bytes.fromhex(seed), "i", "a")
    spec = runner.spec(stage, ctx, "exports")
    writable = [m.target for m in spec.mounts if m.writable]
    assert writable == [str(tmp_path / "d")]


def test_sandbox_settings_are_locked_down() -> None:
    args = sandbox.host_config_args(sandbox.RunSpec(command=["true"]))
    assert args["network_mode"] == "none" and args["read_only"] is True
    assert args["cap_drop"] == ["ALL"]
    assert sorted(args["cap_add"]) == ["CHOWN", "DAC_OVERRIDE", "FOWNER"]
    assert args["security_opt"] == ["no-new-privileges"]
    assert args["pids_limit"] > 0 and args["mem_limit"] > 0 and args["nano_cpus"] > 0
    assert "privileged" not in args and args["binds"] == {}


def test_env_file_round_trip() -> None:
    env = {"A": "plain", "B": "it's \"quoted\" $HOME \\ x", "C": ""}
    assert parse_env_file_text(env_file_text(env)) == env


def test_reader_finds_exported_names() -> None:
    text = ('export A="1"\nif x; then\n  export B="$(derive_entropy b)"\nfi\n'
            "# export NOT=1\nfoo && export C\nexport D=x; export E=y\n")
    assert umbrel.exported_names(text) == ["A", "B", "C", "D", "E"]
