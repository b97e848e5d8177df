"""The Compose adapter runs a project with the files it is given and decides nothing itself."""

from __future__ import annotations

import json
from pathlib import Path

from stackhub.adapters.compose import ComposeCli


def _files(args: list[str]) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == "-f"]


def test_default_is_the_compose_file_only_marker_ignored(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services: {web: {image: x, ports: ['8080:80']}}\n")
    (tmp_path / "loopback.json").write_text(json.dumps({"service": "web", "port": 80}))
    args = ComposeCli(["docker", "compose"])._project_args("p", tmp_path)
    assert _files(args) == [str(tmp_path / "compose.yaml")]
    assert not (tmp_path / "compose.loopback.yaml").exists()  # the adapter wrote nothing
    assert args[args.index("--env-file") + 1] == str(tmp_path / ".env")


def test_given_files_are_passed_in_order(tmp_path: Path) -> None:
    given = [tmp_path / "compose.yaml", tmp_path / "extra.yaml"]
    cli = ComposeCli(["docker", "compose"], files=lambda folder: given)
    assert _files(cli._project_args("p", tmp_path)) == [str(f) for f in given]
    assert "-f" not in cli._project_args("p", None)  # down by project name: no files
