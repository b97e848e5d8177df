"""Name the container labels StackHub sets, next to Compose's own."""

from __future__ import annotations

PREFIX = "io.stackhub"
MANAGED = f"{PREFIX}.managed"
INSTANCE = f"{PREFIX}.instance"
APP = f"{PREFIX}.app"
INSTALL = f"{PREFIX}.install"  # which StackHub data root owns the object
OPERATION = f"{PREFIX}.operation"

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_ONEOFF = "com.docker.compose.oneoff"

PROJECT_PREFIX = "stackhub-"


def project_name(instance: str) -> str:
    """Return the Compose project name of an instance."""
    return f"{PROJECT_PREFIX}{instance}"


def instance_of_project(project: str) -> str | None:
    """Return the instance name of a StackHub Compose project, or None."""
    if project.startswith(PROJECT_PREFIX):
        return project[len(PROJECT_PREFIX) :]
    return None
