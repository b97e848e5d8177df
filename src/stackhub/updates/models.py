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
    release_notes: dict[str, str] = Field(default_factory=dict, description="What the new "
                                          "version changes, Markdown by locale, when the "
                                          "store gives it (version updates only)")
    min_from: str | None = Field(default=None, description="The oldest version the new one "
                                 "can be updated from, if the app declares one")
    blocked_code: str | None = Field(default=None, description="What holds it back: "
                                     "`min_from` or `database_major`")
    blocked: str | None = Field(default=None, description="Why it is not applied "
                                "automatically (a database image's major version changes) or "
                                "cannot be applied (an intermediate version is required)")
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


class AutoUpdateRequest(BaseModel):
    """Turn an instance's automatic updates on or off, and when and what they apply."""

    enabled: bool = Field(description="Apply updates automatically inside the window")
    window: str | None = Field(default=None, max_length=64, description=(
        "When updates may start, in the server's time zone: days then a start time and an "
        "optional end, e.g. `sun 04:00`, `daily 03:00-05:00`, `sat,sun 02:30-04:00` (without "
        "an end the window lasts 2 hours; default `sun 04:00`)"))
    kind: str | None = Field(default=None, pattern="^(digest|version)$", description=(
        "`digest` (default): only new images behind the same tags; `version`: new store "
        "versions too. A database image changing its major version is never applied"))


class AutoUpdateRead(BaseModel):
    """An instance's automatic update setting and its last result."""

    instance: str
    enabled: bool
    window: str
    kind: str
    next_window: str | None = Field(default=None, description="When the next window opens "
                                    "(ISO 8601, server time zone); None while off")
    last_at: str | None = None
    last_result: str | None = Field(default=None, description="up-to-date, updated, skipped "
                                    "or failed")
    last_message: str | None = None
    last_operation: str | None = None


class ReplacedImageRead(BaseModel):
    """An image an update replaced, kept 7 days for a rollback, then pruned."""

    image_id: str
    ref: str
    instance: str
    replaced_at: str
    prune_after: str
