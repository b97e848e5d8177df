"""Oversized request bodies are refused before anything parses them."""

from __future__ import annotations

from collections.abc import Iterator

from .conftest import Server


def test_declared_oversized_body_is_refused(server: Server) -> None:
    response = server.new_client().post("/api/auth/login", content=b"x" * (2 * 1024 * 1024),
                                        headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_streamed_oversized_body_is_refused(server: Server) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * 65536

    response = server.new_client().post("/api/auth/login", content=chunks(),
                                        headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_installs_may_carry_larger_compose_files(server: Server) -> None:
    body = b'{"source": {"kind": "compose", "compose": "' + b"a" * (1536 * 1024) + b'"}}'
    response = server.client.post("/api/plans", content=body,
                                  headers={"content-type": "application/json",
                                           **server.admin_headers()})
    # past the size cap and the sign-in, refused by validation of the compose text itself
    assert response.status_code == 422, response.text[:300]
    assert response.json()["error"]["code"] == "invalid", response.text[:300]
    small = server.client.post("/api/plans", content=body[:5000] + b'"}}',
                               headers={"content-type": "application/json",
                                        **server.admin_headers()})
    assert small.status_code == 422  # the same refusal as a small file: not about size
