"""The route that turns a pasted `docker run` command into a compose file (admins only)."""

from __future__ import annotations

from fastapi import APIRouter

from stackhub import yamlsafe
from stackhub.apps.docker_run import convert
from stackhub.apps.models import DockerRunRead, DockerRunRequest

router = APIRouter(tags=["apps"])


@router.post("/convert/docker-run", response_model=DockerRunRead,
             summary="Convert a docker run command to compose")
async def convert_docker_run(request: DockerRunRequest) -> DockerRunRead:
    """Return the compose file equivalent to one `docker run` command; nothing runs or changes.

    Install it as a compose source: its risky options are shown and need consent as usual.
    """
    result = convert(request.command)
    return DockerRunRead(compose=yamlsafe.dump(result.compose), name=result.name,
                         notes=result.notes)
