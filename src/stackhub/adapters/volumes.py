"""Copy named volumes to and from tar files or staging folders through helper containers.

A helper container is created (never started) from an image already present, with the
volume mounted at /v (read-only for an export); the engine streams the volume's content as
a tar (`GET /containers/{id}/archive`) or unpacks one into it (`PUT .../archive`), so
owners, modes and links are kept exactly, nothing on the host is written from a
container's tar, and StackHub never reads /var/lib/docker. Works for any volume driver.
`mirror` instead runs StackHub's own copy script in a helper (started, no network) that mounts
the volumes read-only and a staging folder read-write, copying only the files that changed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from pydantic import BaseModel, ConfigDict, Field

from stackhub import labels
from stackhub.adapters.lazy import LazyModule
from stackhub.errors import EngineError, EngineUnavailable, NotFound, StackHubError, StorageFull

if TYPE_CHECKING:
    import docker
    import docker.errors
    import requests
else:  # imported on first use (lazy.py): an idle server never calls this adapter
    docker = LazyModule("docker")
    requests = LazyModule("requests")

MOUNT = "/v"
STAGE = "/s"
MIRROR_CAPS = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID"]
MIRROR_TIMEOUT = 6 * 3600
NO_SPACE, UNSUPPORTED = 28, 3
HELPER = f"{labels.PREFIX}.helper"
CHUNK = 1 << 20
HOLD = "import time\nwhile True:\n    time.sleep(3600)\n"


class VolumeInfo(BaseModel):
    """A named volume of a Compose project: enough to create it again identically."""

    model_config = ConfigDict(extra="ignore")

    name: str
    key: str = Field(description="The volume's key in the compose file")
    driver: str = "local"
    labels: dict[str, str] = Field(default_factory=dict)
    options: dict[str, str] = Field(default_factory=dict)


class MirrorUnsupported(StackHubError):
    """The volume holds an entry the staging copy cannot make (a device node)."""


def _short(err: Exception) -> str:
    return str(getattr(err, "explanation", None) or err)[:300]


class _Reader:
    """A file-like view of the archive stream for `put_archive` (streamed, not loaded)."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.handle.read(CHUNK):
            yield chunk


class VolumeCopier:
    """Export and import named volumes with helper containers (blocking; call in a thread)."""

    def __init__(self, base_url: str | None = None, *, install: str | None = None) -> None:
        """Connect lazily to the engine; label helpers with this installation's id."""
        self._base_url = base_url
        self._install = install
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()

    def _api(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    self._client = docker.DockerClient(base_url=self._base_url, version="auto",
                                                       timeout=3600) if self._base_url \
                        else docker.from_env(version="auto", timeout=3600)
                except docker.errors.DockerException as err:
                    raise EngineUnavailable("the Docker engine is not reachable; is dockerd "
                                            f"running? ({_short(err)})") from err
            return self._client.api

    @staticmethod
    def _call(what: str, fn: Any) -> Any:
        try:
            return fn()
        except docker.errors.NotFound as err:
            raise NotFound(f"{what}: {_short(err)}") from err
        except (requests.exceptions.ConnectionError, ConnectionError) as err:
            raise EngineUnavailable(f"{what}: lost the connection to the Docker engine") \
                from err
        except docker.errors.APIError as err:
            raise EngineError(f"{what}: the engine refused: {_short(err)}") from err

    def volumes_of(self, project: str) -> list[VolumeInfo]:
        """List the named volumes Compose created for `project`."""
        api = self._api()
        raw = self._call("listing volumes", lambda: api.volumes(
            filters={"label": [f"com.docker.compose.project={project}"]}))
        found: list[VolumeInfo] = []
        for item in (raw or {}).get("Volumes") or []:
            tags = dict(item.get("Labels") or {})
            found.append(VolumeInfo(name=item["Name"], key=tags.get(
                "com.docker.compose.volume", item["Name"]), driver=item.get("Driver") or "local",
                labels=tags, options=dict(item.get("Options") or {})))
        return sorted(found, key=lambda v: v.key)

    def exists(self, name: str) -> bool:
        """Tell whether a volume of that name exists."""
        api = self._api()
        try:
            self._call("inspecting a volume", lambda: api.inspect_volume(name))
        except NotFound:
            return False
        return True

    @contextlib.contextmanager
    def _helper(self, volume: str, image: str, *, read_only: bool) -> Iterator[str]:
        api = self._api()
        tags = {labels.MANAGED: "true", HELPER: "backup"}
        if self._install:
            tags[labels.INSTALL] = self._install
        config = api.create_host_config(binds={volume: {"bind": MOUNT,
                                                        "mode": "ro" if read_only else "rw"}},
                                        network_mode="none")
        created = self._call("creating a helper container", lambda: api.create_container(
            image, command=["true"], name=f"stackhub-helper-{secrets.token_hex(5)}",
            host_config=config, labels=tags, network_disabled=True))
        ident = str(created["Id"])
        try:
            yield ident
        finally:
            with contextlib.suppress(StackHubError, docker.errors.DockerException):
                self._call("removing a helper container",
                           lambda: api.remove_container(ident, force=True))

    def export(self, volume: str, dest: Path, image: str, *, digest: Any = None) -> int:
        """Write the volume's content as a tar (entries under `v/`) to `dest`; return bytes.

        `digest` (a hashlib object), if given, is fed every byte written.
        """
        api = self._api()
        written = 0
        with self._helper(volume, image, read_only=True) as ident:
            stream, _ = self._call(f"reading volume {volume}",
                                   lambda: api.get_archive(ident, MOUNT, chunk_size=CHUNK))
            with dest.open("wb") as out:
                for chunk in stream:
                    out.write(chunk)
                    if digest is not None:
                        digest.update(chunk)
                    written += len(chunk)
        return written

    def can_mirror(self) -> bool:
        """Tell whether a helper may bind this machine's folders: the engine is on a local
        unix socket, not rootless, and StackHub runs as root outside a container."""
        if os.environ.get("STACKHUB_CONTAINER") == "1" or os.geteuid() != 0:
            return False
        api = self._api()
        if not str(getattr(api, "base_url", "")).startswith("http+docker://"):
            return False  # docker-py's name for a unix socket; tcp or ssh: another machine
        options = self._call("asking the engine", api.info).get("SecurityOptions") or []
        return not any("rootless" in str(o) for o in options)

    def image_present(self, image: str) -> bool:
        """Tell whether the engine holds `image`."""
        api = self._api()
        try:
            self._call("inspecting an image", lambda: api.inspect_image(image))
        except NotFound:
            return False
        return True

    def start_mirror(self, volumes: list[tuple[str, str]], stage: Path, image: str,
                     script: str, *, mapped: bool = False) -> str:
        """Start `script` (mirror_tool's text, `--wait`) in a helper that mounts each
        (volume, key) read-only at `/v/<key>` and `stage` read-write at `/s`; return its id.

        The helper runs as root with no network, a read-only root, `no-new-privileges` and
        only the capabilities a faithful copy needs; it copies once `stage/+go` appears
        (`finish_mirror`). `mapped`: nothing writes the volumes meanwhile (the app is
        stopped), so large files may be compared mapped. Remove it with `drop_helper` in any
        case.
        """
        api = self._api()
        tags = {labels.MANAGED: "true", HELPER: "backup"}
        if self._install:
            tags[labels.INSTALL] = self._install
        binds: dict[str, dict[str, str]] = {name: {"bind": f"{MOUNT}/{key}", "mode": "ro"}
                                            for name, key in volumes}
        binds[str(stage)] = {"bind": STAGE, "mode": "rw"}
        config = api.create_host_config(
            binds=binds, network_mode="none", read_only=True,
            cap_drop=["ALL"], cap_add=MIRROR_CAPS, security_opt=["no-new-privileges"])
        created = self._call("creating a helper container", lambda: api.create_container(
            image, entrypoint=["python3"], command=["-I", "-c", script, "--wait",
                                                    *(["--mapped"] if mapped else []),
                                                    *[k for _n, k in volumes]],
            name=f"stackhub-helper-{secrets.token_hex(5)}", user="0:0", host_config=config,
            labels=tags, network_disabled=True))
        ident = str(created["Id"])
        try:
            self._call("starting a helper container", lambda: api.start(ident))
        except BaseException:
            self.drop_helper(ident)
            raise
        return ident

    def start_holder(self, volumes: list[tuple[str, str]], image: str) -> tuple[str, Path]:
        """Start a helper that mounts each (volume, key) read-write at `/v/<key>` and only
        waits; return its id and the host path of its `/v` (`/proc/<pid>/root/v`).

        StackHub (root, on the engine's machine: `can_mirror`) then writes the volumes
        through that path, as the helper sees them, whatever their driver; links found there
        must never be followed (they resolve against the host's root). No network, a
        read-only root, no capabilities. Remove it with `drop_helper` in any case.
        """
        api = self._api()
        tags = {labels.MANAGED: "true", HELPER: "backup"}
        if self._install:
            tags[labels.INSTALL] = self._install
        binds = {name: {"bind": f"{MOUNT}/{key}", "mode": "rw"} for name, key in volumes}
        config = api.create_host_config(
            binds=binds, network_mode="none", read_only=True, cap_drop=["ALL"],
            security_opt=["no-new-privileges"])
        created = self._call("creating a helper container", lambda: api.create_container(
            image, entrypoint=["python3"], command=["-I", "-c", HOLD],
            name=f"stackhub-helper-{secrets.token_hex(5)}", host_config=config,
            labels=tags, network_disabled=True))
        ident = str(created["Id"])
        try:
            self._call("starting a helper container", lambda: api.start(ident))
            state = self._call("inspecting a helper container",
                               lambda: api.inspect_container(ident)).get("State") or {}
            pid = int(state.get("Pid") or 0)
            if pid <= 0 or not state.get("Running"):
                raise EngineError("the helper holding the volumes did not stay running")
            return ident, Path(f"/proc/{pid}/root{MOUNT}")
        except BaseException:
            self.drop_helper(ident)
            raise

    def finish_mirror(self, ident: str, go: Path) -> str:
        """Tell a started mirror helper to copy (write `go`), wait for it; return its output.

        StorageFull on exit code 28, MirrorUnsupported on 3, EngineError on any other failure.
        """
        api = self._api()
        go.write_text("go\n")
        code = int(self._call("waiting for a helper container",
                              lambda: api.wait(ident, timeout=MIRROR_TIMEOUT))
                   .get("StatusCode", 1))
        out: str = self._call("reading a helper's output", lambda: api.logs(
            ident, stdout=True, stderr=True, tail=20)).decode(errors="replace").strip()
        if code == NO_SPACE:
            raise StorageFull(f"no space left on the data disk for the volumes' staging copy "
                              f"({out[-300:]}); the copy needs about as much free space as "
                              "the volumes hold: free some space and try again")
        if code == UNSUPPORTED:
            raise MirrorUnsupported(out[-300:])
        if code != 0:
            raise EngineError(f"the helper copying volumes into the staging folder failed "
                              f"(exit code {code}): {out[-300:]}")
        return out

    def drop_helper(self, ident: str) -> None:
        """Remove a helper container (running or not); errors are ignored."""
        api = self._api()
        with contextlib.suppress(StackHubError, docker.errors.DockerException):
            self._call("removing a helper container",
                       lambda: api.remove_container(ident, force=True))

    def create(self, info: VolumeInfo, name: str | None = None) -> None:
        """Create a volume like `info` (same driver, options and labels), under `name`."""
        api = self._api()
        self._call(f"creating volume {name or info.name}", lambda: api.create_volume(
            name or info.name, driver=info.driver, driver_opts=info.options or None,
            labels=info.labels))

    def remove(self, name: str) -> None:
        """Remove a volume (it must not be in use)."""
        api = self._api()
        self._call(f"removing volume {name}", lambda: api.remove_volume(name))

    def load(self, volume: str, source: Path, image: str) -> None:
        """Unpack a tar written by `export` into the (fresh) volume."""
        api = self._api()
        with self._helper(volume, image, read_only=False) as ident, source.open("rb") as handle:
            ok = self._call(f"writing volume {volume}",
                            lambda: api.put_archive(ident, "/", _Reader(handle)))
            if not ok:
                raise EngineError(f"the engine did not unpack the archive into volume {volume}")

    def load_folder(self, volume: str, folder: Path, image: str) -> None:
        """Fill a (fresh) volume from a host folder: packed as a tar (entries under `v/`,
        owners, modes, times and links kept, never followed) while the engine unpacks it."""
        api = self._api()
        read_fd, write_fd = os.pipe()
        failed: list[BaseException] = []

        def pack() -> None:
            try:
                with os.fdopen(write_fd, "wb", buffering=CHUNK) as pipe, \
                        tarfile.open(fileobj=pipe, mode="w|", bufsize=CHUNK) as out:
                    out.add(str(folder), arcname=MOUNT.strip("/"))
            except BaseException as err:  # handed to the caller below
                failed.append(err)

        packer = threading.Thread(target=pack, name="volume-pack", daemon=True)
        with open(read_fd, "rb", buffering=0) as source:
            packer.start()
            try:
                with self._helper(volume, image, read_only=False) as ident:
                    ok = self._call(f"writing volume {volume}",
                                    lambda: api.put_archive(ident, "/", _Reader(source)))
            finally:
                source.close()  # a writer blocked on a full pipe gets EPIPE and ends
                packer.join()
        if failed:
            raise EngineError(f"cannot pack folder {folder} for volume {volume}: "
                              f"{failed[0]}") from failed[0]
        if not ok:
            raise EngineError(f"the engine did not unpack the archive into volume {volume}")

    def remove_helpers(self) -> int:
        """Remove helper containers a crash left behind; return how many."""
        api = self._api()
        wanted = [f"{HELPER}=backup"] + ([f"{labels.INSTALL}={self._install}"]
                                         if self._install else [])
        raw = self._call("listing helpers", lambda: api.containers(
            all=True, filters={"label": wanted}))
        for item in raw:
            with contextlib.suppress(StackHubError):
                self._call("removing a helper container",
                           lambda item=item: api.remove_container(item["Id"], force=True))
        return len(raw)
