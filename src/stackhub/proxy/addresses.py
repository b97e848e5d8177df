"""The address "Open" uses for each instance: its https gateway name, else its plain port."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from stackhub.apps.models import InstanceRead
from stackhub.proxy.models import DomainState

if TYPE_CHECKING:
    from stackhub.proxy.service import ProxyService


def https_url(host: str, https_port: int) -> str:
    """Return the gateway's https address of `host` (the port only when not 443)."""
    return f"https://{host}" + ("" if https_port == 443 else f":{https_port}")


def has_web_page(inst: InstanceRead) -> bool:
    """Tell whether the app has a web page the gateway can route to (a published tcp port)."""
    main = inst.main
    return main is not None and any(
        p.service == main.service and p.container_port == main.port and p.protocol == "tcp"
        for p in inst.ports)


def open_url(inst: InstanceRead, *, base: str | None, custom: Sequence[str], protected: bool,
             https_port: int) -> str | None:
    """Choose the address to open an app at.

    The automatic name `<instance>.<base>` first, then the first active custom domain (both
    https through the gateway); else the app's first plain address, unless the app is
    protected: its port then answers on the box itself only, so there is nothing to open.
    """
    if not has_web_page(inst):
        return None
    if base:
        return https_url(f"{inst.name}.{base}", https_port)
    if custom:
        return https_url(custom[0], https_port)
    if protected:
        return None
    return inst.urls[0] if inst.urls else None


class OpenAddresses:
    """Fill `open_url` into instance views, with one read of the gateway's settings."""

    def __init__(self, proxy: ProxyService) -> None:
        """Read the base, custom domains and protection through the proxy service."""
        self.proxy = proxy

    def __call__(self, views: Sequence[InstanceRead]) -> None:
        """Set each view's `open_url` (never calls back into the apps service)."""
        base = self.proxy.base()[0]
        custom: dict[str, list[str]] = {}
        if base is None:
            for row in self.proxy.records.all():  # by name
                if row.state == DomainState.ACTIVE:
                    custom.setdefault(row.instance, []).append(row.name)
        protected = self.proxy.records.protected()
        port = self.proxy.settings.https_port
        for view in views:
            view.open_url = open_url(view, base=base, custom=custom.get(view.name, ()),
                                     protected=view.name in protected, https_port=port)
