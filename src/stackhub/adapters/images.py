"""Image digests and tags for updates: the registry's digest behind a tag through the engine's
own distribution inspect (it honours mirrors and credentials, and a HEAD of the manifest does
not count as a pull), the local image's repo digests, and re-tagging an image id (rollback)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stackhub.adapters.lazy import LazyModule
from stackhub.errors import EngineError, EngineUnavailable, NotFound

if TYPE_CHECKING:
    import docker
    import docker.errors
    import requests
else:  # imported on first use (lazy.py): an idle server never calls this adapter
    docker = LazyModule("docker")
    requests = LazyModule("requests")


class ImageDigests:
    """A small docker-py client for digests and tags."""

    def __init__(self, base_url: str | None = None) -> None:
        """Connect lazily to `base_url` (default: the environment's engine)."""
        self._base_url = base_url
        self._client: Any = None

    def _api(self) -> Any:
        if self._client is None:
            try:
                self._client = (docker.DockerClient(base_url=self._base_url, version="auto",
                                                    timeout=60) if self._base_url
                                else docker.from_env(version="auto", timeout=60))
            except docker.errors.DockerException as err:
                raise EngineUnavailable(f"the Docker engine is not reachable ({err})") from err
        return self._client.api

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except docker.errors.NotFound as err:
            raise NotFound(str(err.explanation or err)) from err
        except (requests.exceptions.ConnectionError, ConnectionError) as err:
            self._client = None
            raise EngineUnavailable("lost the connection to the Docker engine") from err
        except docker.errors.APIError as err:
            raise EngineError(f"the engine refused: {err.explanation or err}") from err

    def remote_digest(self, ref: str) -> str:
        """The registry's manifest digest for `ref` (no layers are downloaded)."""
        api = self._api()
        data = self._call(lambda: api.inspect_distribution(ref))
        return str(data["Descriptor"]["digest"])

    def local(self, ref: str) -> tuple[str, list[str]]:
        """The local image's id and its repo digests (`repo@sha256:...`)."""
        api = self._api()
        data = self._call(lambda: api.inspect_image(ref))
        return str(data["Id"]), [str(d) for d in data.get("RepoDigests") or []]

    def tag(self, image_id: str, ref: str) -> None:
        """Point `ref` (repo:tag) at `image_id`."""
        repo, _, tag = ref.rpartition(":")
        if not repo or "/" in tag:
            repo, tag = ref, "latest"
        api = self._api()
        self._call(lambda: api.tag(image_id, repo, tag, force=True))
