"""The admin client: a load whose connection is closed unanswered (Caddy swapping its admin
server after the previous load) is sent again; a refusal is not."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stackhub.adapters import caddy
from stackhub.adapters.caddy import CaddyAdmin
from stackhub.errors import GatewayUnavailable


async def fake_admin(socket: Path, replies: list[bytes | None]) -> asyncio.AbstractServer:
    """Answer each connection with the next reply; None closes it without a word."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length")), 0)
        await reader.readexactly(length)
        reply = replies.pop(0)
        if reply is not None:
            writer.write(reply)
            await writer.drain()
        writer.close()

    return await asyncio.start_unix_server(handle, path=str(socket))


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
REFUSED = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 20"
           b"\r\nConnection: close\r\n\r\n{\"error\":\"bad json\"}")


async def test_an_unanswered_load_is_sent_again(tmp_path: Path) -> None:
    replies: list[bytes | None] = [None, None, OK]
    server = await fake_admin(tmp_path / "a.sock", replies)
    async with server:
        await CaddyAdmin(tmp_path / "a.sock").load({"apps": {}})
    assert replies == []


async def test_a_load_gives_up_after_three_unanswered_tries(tmp_path: Path) -> None:
    replies: list[bytes | None] = [None, None, None, OK]
    server = await fake_admin(tmp_path / "a.sock", replies)
    async with server:
        with pytest.raises(GatewayUnavailable, match="does not answer"):
            await CaddyAdmin(tmp_path / "a.sock").load({"apps": {}})
    assert replies == [OK]


async def test_a_refused_load_is_not_sent_again(tmp_path: Path) -> None:
    replies: list[bytes | None] = [REFUSED, OK]
    server = await fake_admin(tmp_path / "a.sock", replies)
    async with server:
        with pytest.raises(GatewayUnavailable, match="refused POST /load: bad json"):
            await CaddyAdmin(tmp_path / "a.sock").load({"apps": {}})
    assert replies == [OK]


EMPTY = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 55"
         b"\r\nConnection: close\r\n\r\n"
         b"{\"error\":\"invalid traversal path at: config/apps/http\"}")


async def test_a_caddy_restarted_empty_has_not_loaded_the_config(tmp_path: Path) -> None:
    """Caddy 2.6 answers 400 for the server's path in a config without apps (a system Caddy
    restarted by its service manager): not loaded, so the watcher loads it again."""
    replies: list[bytes | None] = [EMPTY]
    server = await fake_admin(tmp_path / "a.sock", replies)
    async with server:
        assert await CaddyAdmin(tmp_path / "a.sock").loaded() is False
    assert replies == []


async def test_a_silent_admin_socket_is_not_taken_for_an_empty_caddy(tmp_path: Path) -> None:
    replies: list[bytes | None] = [None]
    server = await fake_admin(tmp_path / "a.sock", replies)
    async with server:
        with pytest.raises(GatewayUnavailable, match="does not answer"):
            await CaddyAdmin(tmp_path / "a.sock").loaded()


@pytest.mark.parametrize(("value", "expected"), [
    (None, "400"), ("100", "100"), (" 800 ", "800"), ("0100", "100"), ("24", "400"),
    ("10001", "400"), ("off", "400"), ("-1", "400"), ("1e3", "400"), ("", "400")])
def test_the_gateways_garbage_collector_target(value: str | None, expected: str) -> None:
    env = {} if value is None else {"STACKHUB_GATEWAY_GOGC": value}
    assert caddy.gateway_gogc(env) == expected
