"""Schemas of operations: the journal's records, their steps, and the instance statuses they set."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class InstanceStatus(StrEnum):
    """What an instance is doing, as StackHub sees it."""

    INSTALLING = "installing"
    RUNNING = "running"
    STARTING = "starting"
    PARTIAL = "partial"
    STOPPED = "stopped"
    UNHEALTHY = "unhealthy"
    MISSING = "missing"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    REMOVING = "removing"
    UNKNOWN = "unknown"


class OperationState(StrEnum):
    """Where an operation stands in its journal."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class StepRead(BaseModel):
    """One step of an operation, as journaled: when it began and how long it took."""

    name: str
    started_at: str
    finished_at: str | None = Field(default=None, description="When the next step began, or "
                                    "the operation ended; None while it runs.")
    duration: float | None = Field(default=None, description="Seconds; None while it runs.")


class OperationRead(BaseModel):
    """A journaled operation on an instance (and on a second one, for clone or restore)."""

    id: str
    instance: str
    kind: str
    state: OperationState
    step: str
    progress: float
    error: str | None
    started_at: str
    finished_at: str | None
    target: str | None = Field(default=None, description="The second instance an operation "
                               "writes (clone, restore as a new instance), if any.")
    duration: float | None = Field(default=None, description="Seconds from start to end; None "
                                   "while it runs.")
    steps: list[StepRead] = Field(default_factory=list)


class OperationPage(BaseModel):
    """One page of the operations journal, newest first."""

    items: list[OperationRead]
    total: int = Field(description="How many operations match the filters, in all.")
    limit: int
    offset: int


class Accepted(BaseModel):
    """The answer to a request that started an operation."""

    operation: OperationRead
    instance: str
    app: str = ""
    version: str = ""
