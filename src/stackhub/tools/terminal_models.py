"""Schemas of the terminals: the control messages a client sends and the host terminal's state.

Data travels in binary frames (server to client: one byte naming the stream, 1 stdout or 2
stderr, then the bytes; client to server: stdin bytes as they are). Control travels in JSON
text frames: these models, plus the server's ``started``, ``exit`` and ``error`` messages.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

SERVICE_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$"
MAX_ROWS = 500
MAX_COLS = 1000


class Resize(BaseModel):
    """Change the terminal's size."""

    type: Literal["resize"]
    rows: int = Field(ge=1, le=MAX_ROWS)
    cols: int = Field(ge=1, le=MAX_COLS)


class ContainerTerminalStart(BaseModel):
    """The first message on a container terminal: what to run and where."""

    type: Literal["start"]
    service: str | None = Field(default=None, pattern=SERVICE_PATTERN, description="The compose "
                                "service; default: the app's main web service, else the first "
                                "running one.")
    command: list[str] | None = Field(default=None, min_length=1, max_length=256,
                                      description="The command; default: bash if the "
                                      "container has it, else sh.")
    tty: bool = Field(default=True, description="Run under a terminal (output is then one "
                      "stream); without, stdout and stderr stay apart and `eof` closes stdin.")
    rows: int = Field(default=24, ge=1, le=MAX_ROWS)
    cols: int = Field(default=80, ge=1, le=MAX_COLS)


class HostTerminalStart(BaseModel):
    """The first message on the host terminal: the caller's password again, and a TOTP code."""

    type: Literal["start"]
    password: str = Field(min_length=1, max_length=1024)
    code: str | None = Field(default=None, max_length=64, description="A TOTP or recovery "
                             "code, required when the account has two-factor authentication.")
    rows: int = Field(default=24, ge=1, le=MAX_ROWS)
    cols: int = Field(default=80, ge=1, le=MAX_COLS)


class HostTerminalRead(BaseModel):
    """Whether the host terminal is available, and its idle timeout."""

    enabled: bool = Field(description="Off unless the server runs with "
                          "STACKHUB_HOST_TERMINAL=1.")
    idle_timeout: int = Field(description="Seconds without input after which a host "
                              "terminal is closed.")
