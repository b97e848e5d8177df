"""Request and read models of updates."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ImageUpdate(BaseModel):
    """One image whose registry digest differs from the local one."""

    image: str
    local: str | None = Field(default=None, description="The local repo digest, if any")
    remote: str


class UpdateRead(BaseModel):
    """What update an instance has, as last checked."""

    instance: str
    current_version: str
    update_available: bool
    latest_version: str | None = None
    update_kind: str | None = Field(default=None, description="version or digest")
    images: list[ImageUpdate] = Field(default_factory=list)
    blocked: str | None = Field(default=None, description="Why it is not applied "
                                "automatically (a database image's major version changes)")
    errors: list[str] = Field(default_factory=list, description="Images that could not be "
                              "checked, with the reason")


class UpdateRequest(BaseModel):
    """Options of an update."""

    force: bool = Field(default=False, description="Apply the current definition again even "
                        "when nothing newer is known (pulls the tags again)")
    allow_database_major: bool = Field(default=False, description="Accept a change of a "
                                       "database image's major version (read the app's "
                                       "upgrade notes first)")
    stability: float | None = Field(default=None, ge=0, le=3600, description="Seconds the "
                                    "new version must run without a restart or failed health "
                                    "check (default: STACKHUB_UPDATE_STABILITY or 60)")
