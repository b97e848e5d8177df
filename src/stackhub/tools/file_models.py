"""Schemas of the file manager (tools domain)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class FileEntry(BaseModel):
    """One file, folder or link as lstat sees it (links are never followed)."""

    name: str
    kind: str = Field(description="file, folder, link or other (socket, device, fifo).")
    size: int
    modified: float = Field(description="Unix time of the last change.")
    mode: str = Field(description="Permission bits in octal, e.g. 0644.")
    uid: int
    gid: int
    link_target: str | None = Field(default=None, description="What a link points to, as "
                                    "text; StackHub never follows it.")


class FolderRead(BaseModel):
    """A folder's entries, folders first."""

    path: str = Field(description="Relative to the data folder; '' is the folder itself.")
    entries: list[FileEntry]
    free: int = Field(description="Free bytes on the folder's file system.")


class TextRead(BaseModel):
    """A text file opened for editing."""

    path: str
    content: str
    etag: str = Field(description="Send it back when saving: a save is refused (409) if the "
                      "file changed since.")
    size: int


class TextWrite(BaseModel):
    """Save a text file (up to 1 MiB)."""

    path: str = Field(max_length=4096)
    content: str
    etag: str | None = Field(default=None, description="The etag read with the file; null "
                             "creates a new file (refused if it exists).")


class PathRequest(BaseModel):
    """A file or folder inside the data folder."""

    path: str = Field(max_length=4096)


class ChownRequest(PathRequest):
    """Give a file or folder to the app's PUID:PGID."""

    recursive: bool = False


class ChownResult(BaseModel):
    """How many entries changed owner."""

    changed: int
    uid: int
    gid: int


class MoveRequest(BaseModel):
    """Rename or move inside the data folder (never replacing anything)."""

    source: str = Field(max_length=4096)
    destination: str = Field(max_length=4096)


class TrashEntry(BaseModel):
    """Something deleted, kept for 7 days."""

    id: str
    path: str = Field(description="Where it was.")
    kind: str
    deleted: float = Field(description="Unix time of the delete.")
    size: int


class TrashEmptied(BaseModel):
    """How many trashed entries were deleted for good."""

    removed: int
