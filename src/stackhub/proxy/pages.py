"""The gateway's own page for an app it cannot reach: titles, and the text in Chinese (the
English text is the failure's).

Caddy shows it to browsers whose first language is Chinese (`adapters.caddy.CHINESE`); the
console words the same codes itself (`web/src/utils/domain-error.ts`).
"""

from __future__ import annotations

from stackhub.proxy.models import DomainError, DomainFailure

TITLES = {"stopped": ("App stopped", "应用已停止"), "other": ("App unavailable", "应用不可用")}
TEXTS_ZH = {
    DomainError.APP_STOPPED: "应用 {name} 已停止。请在 StackHub 中启动它，然后再从这里访问。",
    DomainError.APP_NO_WEB: "应用 {name} 没有网页界面。",
    DomainError.APP_NO_PORT: "应用 {name} 没有为它的网页界面发布端口。",
}


def words(failure: DomainFailure | None, instance: str) -> tuple[str, str, str | None]:
    """Return the page's title in English and in Chinese, and its text in Chinese (None: the
    gateway's general one)."""
    stopped = failure is not None and failure.code == DomainError.APP_STOPPED
    title, title_zh = TITLES["stopped" if stopped else "other"]
    text = TEXTS_ZH.get(failure.code) if failure is not None else None
    return title, title_zh, text.format(name=instance) if text else None
