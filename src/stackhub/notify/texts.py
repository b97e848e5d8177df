"""English texts of notifications (e-mail, webhook, CLI); the console renders its own from
kind + params in the reader's language (web/src/i18n/locales/*: `notify.kinds`)."""

from __future__ import annotations

from typing import Any

from stackhub.notify.models import Kind

TEMPLATES: dict[Kind, str] = {
    Kind.UPDATE_AVAILABLE: "An update of {instance} is available: {version}",
    Kind.UPDATE_FAILED: "The update of {instance} failed and was rolled back: {error}",
    Kind.BACKUP_FAILED: "The backup of {instance} failed: {error}",
    Kind.BACKUP_MISSING: "{instance} has had no good backup for {hours} h",
    Kind.BACKUP_CHECK_FAILED: "The check of backup repository {repository} failed: {error}",
    Kind.SYSTEM_BACKUP_FAILED: "The backup of StackHub itself failed: {error}",
    Kind.SYSTEM_BACKUP_MISSING: "StackHub itself has had no good backup for {hours} h",
    Kind.RECOVERY_FAILED: "{instance} was not restored after restore-system ({error}); "
                          "run `{command}`",
    Kind.CERTIFICATE_EXPIRING: "The certificate of {domain} expires in {days} days",
    Kind.DISK_FULL: "The disk holding {path} is {percent}% full",
    Kind.APP_UNHEALTHY: "{instance} has been {status} for {minutes} min",
    Kind.ENGINE_UNREACHABLE: "The Docker engine is unreachable: {error}",
    Kind.AUTO_UPDATE: "Automatic update of {instance}: {result}. {message}",
    Kind.TEST: "A test notification from StackHub",
}


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def render(kind: Kind, params: dict[str, Any]) -> str:
    """Return a notification's English text (a missing parameter reads "?")."""
    return TEMPLATES[kind].format_map(_Blank(params))
