"""Schemas of the admin's engine view: what each object is used by, its size, and prunes."""

from __future__ import annotations

from pydantic import BaseModel, Field

from stackhub.system.models import ImageSummary, NetworkSummary, VolumeSummary


class ImageView(ImageSummary):
    """An image with the StackHub instances that use it."""

    instances: list[str] = Field(default_factory=list, description="Instances whose project "
                                 "or containers use this image.")
    in_use: bool = Field(False, description="A container or a StackHub instance uses it: it "
                         "cannot be removed from here.")


class VolumeView(VolumeSummary):
    """A volume with its size and owner."""

    size: int | None = Field(None, description="Bytes on disk (None if the engine does not "
                             "say).")
    orphaned: bool = Field(False, description="Made by StackHub for an instance that no "
                           "longer exists.")
    in_use: bool = False


class NetworkView(NetworkSummary):
    """A network with its owner."""

    orphaned: bool = False
    in_use: bool = False


class PruneRequest(BaseModel):
    """What a prune may remove; nothing in use by a container or an instance ever is."""

    images: bool = Field(True, description="Dangling (untagged) images.")
    all_images: bool = Field(False, description="Every unused image, tagged ones too.")
    volumes: bool = Field(False, description="Unused volumes not owned by an instance "
                          "(orphaned StackHub volumes included).")
    networks: bool = Field(True, description="Unused networks not owned by an instance.")
    dry_run: bool = Field(True, description="Only say what would go.")
    only: list[str] | None = Field(None, max_length=10_000, description="Remove only these "
                                   "ids/names of a preview (those still unused).")


class PruneItem(BaseModel):
    """One object a prune removes (or would)."""

    kind: str = Field(description="image, volume or network.")
    id: str
    name: str
    size: int = 0
    removed: bool = False
    error: str | None = None


class PrunePlan(BaseModel):
    """A prune's preview, or its outcome."""

    dry_run: bool
    items: list[PruneItem]
    space: int = Field(description="Bytes returned (an upper bound for images sharing "
                       "layers).")
