"""Define StackHub's one exception tree; the API maps it to HTTP in one place.

StackHubError
 ├── NotFound            the named thing does not exist
 ├── AlreadyExists       a thing with that name exists already
 ├── Conflict            the request clashes with current state (busy, port taken)
 ├── Invalid             the input is malformed or fails validation
 │    ├── TooLarge       the input exceeds a size, depth or count limit
 │    └── ScriptFailed   a store script failed or was stopped at a sandbox limit
 ├── Unauthorized        no valid credentials
 ├── Forbidden           valid credentials, not allowed
 ├── RiskNotAccepted     risky content needs explicit consent bound to its digest
 ├── EngineUnavailable   the Docker engine cannot be reached
 ├── EngineError         the engine or compose refused an operation
 │    └── ImagePullFailed an image could not be pulled
 ├── StoreError          a store could not be synced or read
 ├── GatewayUnavailable  the gateway (Caddy) is missing, not answering, or refused a config
 │    ├── DnsProviderRefused     the DNS provider did not take the DNS-01 record
 │    ├── DnsPropagationTimeout  the DNS-01 record did not show up in DNS in time
 │    └── CaRefused              the ACME CA refused the order or was unreachable
 └── RepositoryError     a backup repository cannot be reached, opened or written
"""

from __future__ import annotations

from typing import Any


class StackHubError(Exception):
    """Base of every error StackHub raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class NotFound(StackHubError):
    """The named thing does not exist."""

    code = "not_found"


class AlreadyExists(StackHubError):
    """A thing with that name exists already."""

    code = "already_exists"


class Conflict(StackHubError):
    """The request clashes with the current state."""

    code = "conflict"


class Invalid(StackHubError):
    """The input is malformed or fails validation."""

    code = "invalid"


class TooLarge(Invalid):
    """The input exceeds a size, depth or count limit."""

    code = "too_large"


class ScriptFailed(Invalid):
    """A store script (Umbrel exports.sh or hook) failed or was stopped in its sandbox."""


class Unauthorized(StackHubError):
    """No valid credentials were presented."""

    code = "unauthorized"


class Forbidden(StackHubError):
    """The caller is known but not allowed to do this."""

    code = "forbidden"


class RiskNotAccepted(StackHubError):
    """Risky compose content needs consent bound to its digest."""

    code = "risk_not_accepted"


class EngineUnavailable(StackHubError):
    """The Docker engine cannot be reached."""

    code = "engine_unavailable"


class EngineError(StackHubError):
    """The engine or compose refused an operation."""

    code = "engine_error"


class ImagePullFailed(EngineError):
    """An image could not be pulled."""

    code = "image_pull_failed"


class StoreError(StackHubError):
    """A store could not be synced or read."""

    code = "store_error"


class StorageFull(StackHubError):
    """StackHub's data disk is full: nothing was changed, free space and try again."""

    code = "storage_full"


class GatewayUnavailable(StackHubError):
    """The gateway (Caddy) is not installed, does not answer, or refused its config."""

    code = "gateway_unavailable"


class RepositoryError(StackHubError):
    """A backup repository cannot be reached, opened (wrong password) or written."""

    code = "repository_error"


class DnsProviderRefused(GatewayUnavailable):
    """The DNS provider did not take the DNS-01 challenge record (credentials, zone, build)."""

    code = "dns_provider_refused"


class DnsPropagationTimeout(GatewayUnavailable):
    """The DNS-01 challenge record did not show up in DNS in time."""

    code = "dns_propagation_timeout"


class CaRefused(GatewayUnavailable):
    """The ACME CA refused the order, or could not be reached."""

    code = "ca_refused"
