"""`stackhub serve` ends cleanly on SIGTERM and SIGINT: exit 0, and its server.json is gone."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.integration.conftest import Server

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["term", "int"])
def test_a_stop_signal_removes_server_json(tmp_path: Path, sig: signal.Signals) -> None:
    server = Server(tmp_path / "data")
    server.start()
    info = server.data_dir / "server.json"
    assert server.proc is not None
    assert json.loads(info.read_text())["pid"] == server.proc.pid
    server.proc.send_signal(sig)
    code = server.proc.wait(30)
    # uvicorn re-raises the captured signal after shutdown: death by it is the normal end
    assert code in (0, -sig), server.log.read_text()[-2000:]
    assert not info.exists(), "server.json outlived the server: local clients would call a dead URL"
