"""Notifications: dedupe by key, resolve, per-user read marks and visibility, bus events,
the periodic checks (fake sources and clock), channel validation and secrets."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import pytest

from stackhub.apps.models import InstanceRead
from stackhub.auth.models import Principal, Role
from stackhub.backup.models import BackupHealth, BackupStatusRead
from stackhub.errors import Invalid, NotFound
from stackhub.events import Event, EventBus
from stackhub.notify.channels import check_url
from stackhub.notify.models import ChannelKind, EmailSettings, Kind, WebhookSettings
from stackhub.notify.service import NotifyService
from stackhub.notify.store import Notice
from stackhub.notify.watch import Usage, Watcher, WatchSettings
from stackhub.operations.models import InstanceStatus
from stackhub.proxy.models import DomainKind, DomainRead, DomainState, TlsMode
from stackhub.state.db import Database

ADMIN = Principal(name="alice", role=Role.ADMIN, via="session")
MEMBER = Principal(name="bob", role=Role.MEMBER, via="session")


@pytest.fixture
def service(tmp_path: Path) -> NotifyService:
    db = Database(tmp_path / "stackhub.db")
    (tmp_path / "secrets").mkdir(mode=0o700)
    return NotifyService(db=db, secrets_dir=tmp_path / "secrets", bus=EventBus(),
                         may_see=lambda principal, name: name == "granted")


def backup_failed(name: str, error: str = "repository unreachable") -> Notice:
    return Notice(Kind.BACKUP_FAILED, f"backup_failed:{name}", {"instance": name,
                                                                "error": error},
                  "/backups", instance=name)


def test_one_open_notification_per_key(service: NotifyService) -> None:
    first = service.notify(backup_failed("blog"))
    assert first is not None and first.text == \
        "The backup of blog failed: repository unreachable"
    assert service.notify(backup_failed("blog")) is None  # same key, same params: nothing
    service.mark_read(ADMIN, first.id)
    # changed params without renotify: updated in place, still read
    assert service.notify(backup_failed("blog", "disk full")) is None
    listed = service.listing(ADMIN)
    assert [(n.id, n.params["error"], n.read) for n in listed.items] == \
        [(first.id, "disk full", True)]
    assert listed.unread == 0
    service.notify(backup_failed("wiki"))
    assert service.listing(ADMIN).unread == 1


def test_renotify_makes_it_unread_again(service: NotifyService) -> None:
    def update(version: str) -> Notice:
        return Notice(Kind.UPDATE_AVAILABLE, "update:blog", {"instance": "blog",
                                                             "version": version},
                      "/apps/blog", instance="blog", renotify=True)
    first = service.notify(update("2.0"))
    assert first is not None
    service.mark_read(ADMIN, first.id)
    again = service.notify(update("2.1"))
    assert again is not None and again.id == first.id
    assert service.listing(ADMIN).unread == 1


def test_resolve_closes_and_a_new_one_opens_after(service: NotifyService) -> None:
    first = service.notify(backup_failed("blog"))
    assert first is not None
    assert service.resolve("backup_failed:blog") is True
    assert service.resolve("backup_failed:blog") is False
    second = service.notify(backup_failed("blog"))
    assert second is not None and second.id != first.id
    items = service.listing(ADMIN).items
    assert [(n.id, n.resolved) for n in items] == [(second.id, False), (first.id, True)]


def test_read_marks_are_per_user_and_members_see_only_their_own(
        service: NotifyService) -> None:
    admin_only = service.notify(backup_failed("granted"))
    shared = service.notify(Notice(Kind.APP_UNHEALTHY, "unhealthy:granted",
                                   {"instance": "granted"}, "/apps/granted",
                                   instance="granted", admin_only=False))
    other = service.notify(Notice(Kind.APP_UNHEALTHY, "unhealthy:other", {"instance": "other"},
                                  "/apps/other", instance="other", admin_only=False))
    engine = service.notify(Notice(Kind.ENGINE_UNREACHABLE, "engine", {"error": "x"}, "/",
                                   admin_only=False))
    assert admin_only and shared and other and engine
    assert {n.id for n in service.listing(MEMBER).items} == {shared.id, engine.id}
    assert service.listing(ADMIN).unread == 4
    with pytest.raises(NotFound):
        service.mark_read(MEMBER, admin_only.id)
    with pytest.raises(NotFound):
        service.mark_read(MEMBER, other.id)
    assert service.mark_all_read(MEMBER) == 2
    assert service.listing(MEMBER).unread == 0
    assert service.listing(ADMIN).unread == 4  # bob's marks are bob's
    assert service.mark_all_read(ADMIN) == 4
    assert service.mark_all_read(ADMIN) == 0
    with pytest.raises(NotFound):
        service.mark_read(ADMIN, 999)


def test_bus_events_raise_and_resolve(service: NotifyService) -> None:
    service.handle(Event("engine", "engine", "down", {"error": "connection refused"}))
    service.handle(Event("operation", "blog", "finished",
                         {"op_kind": "backup", "state": "failed", "instance": "blog",
                          "error": "restic: wrong password"}))
    service.handle(Event("operation", "wiki", "finished",
                         {"op_kind": "update", "state": "failed", "instance": "wiki",
                          "error": "rolled back to 1.0: health check failed"}))
    service.handle(Event("operation", "wiki", "step", {"op_kind": "update"}))  # ignored
    kinds = {n.kind: n for n in service.listing(ADMIN).items}
    assert set(kinds) == {Kind.ENGINE_UNREACHABLE, Kind.BACKUP_FAILED, Kind.UPDATE_FAILED}
    assert kinds[Kind.UPDATE_FAILED].link == "/apps/wiki"
    assert kinds[Kind.BACKUP_FAILED].params["error"] == "restic: wrong password"
    service.handle(Event("engine", "engine", "up", {}))
    service.handle(Event("operation", "blog", "finished",
                         {"op_kind": "backup", "state": "succeeded", "instance": "blog"}))
    service.handle(Event("operation", "wiki", "finished",
                         {"op_kind": "remove", "state": "succeeded", "instance": "wiki"}))
    assert all(n.resolved for n in service.listing(ADMIN).items)


def test_each_automatic_update_result_is_told(service: NotifyService) -> None:
    def result(name: str, outcome: str, message: str) -> None:
        service.handle(Event("auto-update", name, outcome,
                             {"instance": name, "result": outcome, "message": message}))

    result("blog", "up-to-date", "blog is up to date (1.0)")  # not news
    assert service.listing(ADMIN).items == []
    service.handle(Event("operation", "blog", "finished",
                         {"op_kind": "update", "state": "failed", "instance": "blog",
                          "error": "rolled back"}))
    result("blog", "updated", "blog: auto-digest")
    result("wiki", "skipped", "not updated automatically: version 2.0 is available")
    result("shop", "rolled-back", "health check failed, rolled back to 1.0")
    found = {(n.kind, n.instance): n for n in service.listing(ADMIN).items}
    assert found[(Kind.AUTO_UPDATE, "blog")].severity == "info"
    assert found[(Kind.UPDATE_FAILED, "blog")].resolved  # the good update closes the failure
    assert "version 2.0" in found[(Kind.AUTO_UPDATE, "wiki")].params["message"]
    shop = found[(Kind.AUTO_UPDATE, "shop")]
    assert shop.severity == "error" and shop.link == "/apps/shop" and not shop.read
    assert "rolled back" in shop.text


async def test_changes_are_published_without_content(service: NotifyService) -> None:
    service.bus.bind(asyncio.get_running_loop())
    sub = service.bus.subscribe(lambda e: e.topic == "notification")
    service.notify(backup_failed("blog"))
    event = sub.queue.get_nowait()
    assert (event.key, event.kind, set(event.data)) == ("notifications", "changed", {"id"})


def instance(name: str, status: InstanceStatus = InstanceStatus.RUNNING,
             update: str | None = None) -> InstanceRead:
    return InstanceRead(name=name, app="local/blog", store="local", format="stackhub",
                        version="1.0", status=status, main=None, ports=[], urls=[],
                        parameters={}, update_available=update is not None,
                        latest_version=update, update_kind="version" if update else None,
                        created_at="", updated_at="")


def backup_status(name: str, health: BackupHealth, **changes: Any) -> BackupStatusRead:
    fields: dict[str, Any] = {
        "instance": name, "health": health, "alert": True, "message": "", "scheduled": True,
        "last_success_at": None, "last_snapshot": None, "last_repository": None,
        "last_failure_at": None, "last_error": None, "next_run_at": None}
    return BackupStatusRead(**{**fields, **changes})


class Sources:
    def __init__(self) -> None:
        self.instances: list[InstanceRead] = []
        self.backups: list[BackupStatusRead] = []
        self.domains: list[DomainRead] = []
        self.usage = Usage(100, 50, 50)
        self.now = 1000.0


def watcher(service: NotifyService, src: Sources, tmp_path: Path) -> Watcher:
    return Watcher(service=service, instances=lambda: src.instances,
                   backups=lambda: src.backups, domains=lambda: src.domains, root=tmp_path,
                   settings=WatchSettings(interval=1, disk_percent=90, unhealthy_after=300),
                   clock=lambda: src.now, usage=lambda _: src.usage)


def open_kinds(service: NotifyService) -> dict[str, dict[str, Any]]:
    return {n.kind.value + ":" + str(n.instance or ""): n.params
            for n in service.listing(ADMIN).items if not n.resolved}


def test_watcher_unhealthy_only_after_five_minutes(service: NotifyService,
                                                   tmp_path: Path) -> None:
    src = Sources()
    watch = watcher(service, src, tmp_path)
    src.instances = [instance("blog", InstanceStatus.UNHEALTHY)]
    watch.tick()
    src.now += 299
    watch.tick()
    assert open_kinds(service) == {}
    src.now += 1
    watch.tick()
    assert open_kinds(service) == {"app_unhealthy:blog": {
        "instance": "blog", "status": "unhealthy", "minutes": 5}}
    src.instances = [instance("blog", InstanceStatus.UNKNOWN)]  # engine away: stays open
    watch.tick()
    assert "app_unhealthy:blog" in open_kinds(service)
    src.instances = [instance("blog", InstanceStatus.RUNNING)]
    watch.tick()
    assert open_kinds(service) == {}
    src.instances = [instance("blog", InstanceStatus.PARTIAL)]  # the clock starts again
    src.now += 10
    watch.tick()
    assert open_kinds(service) == {}


def test_watcher_updates_backups_certificates_disk(service: NotifyService,
                                                   tmp_path: Path) -> None:
    src = Sources()
    watch = watcher(service, src, tmp_path)
    src.instances = [instance("blog", update="2.0"), instance("wiki")]
    src.backups = [
        backup_status("blog", BackupHealth.FAILED, last_error="repository locked"),
        backup_status("wiki", BackupHealth.MISSING)]
    src.domains = [DomainRead(name="blog.example.com", instance="blog",
                              kind=DomainKind.CUSTOM, state=DomainState.ACTIVE,
                              url="https://blog.example.com", tls=TlsMode.ACME,
                              expires_in_days=5, warning="expires in 5 days")]
    src.usage = Usage(100, 95, 5)
    watch.tick()
    found = open_kinds(service)
    assert found == {
        "update_available:blog": {"instance": "blog", "version": "2.0"},
        "backup_failed:blog": {"instance": "blog", "error": "repository locked"},
        "backup_missing:wiki": {"instance": "wiki", "hours": 24},
        "certificate_expiring:": {"domain": "blog.example.com", "days": 5, "instance": "blog"},
        "disk_full:": {"path": str(tmp_path), "percent": 95, "threshold": 90}}
    links = {n.kind: n.link for n in service.listing(ADMIN).items}
    assert links[Kind.DISK_FULL] == "/containers"
    assert links[Kind.CERTIFICATE_EXPIRING] == "/settings/domains"
    watch.tick()  # the same conditions: still one each
    assert len(service.listing(ADMIN).items) == 5
    src.usage = Usage(100, 89, 11)  # within the hysteresis: stays
    watch.tick()
    assert "disk_full:" in open_kinds(service)
    src.instances, src.backups, src.domains = [instance("blog")], [], []
    src.usage = Usage(100, 50, 50)
    watch.tick()
    assert open_kinds(service) == {}


def test_watcher_survives_a_failing_source(service: NotifyService, tmp_path: Path) -> None:
    src = Sources()
    watch = watcher(service, src, tmp_path)

    def broken() -> list[BackupStatusRead]:
        raise RuntimeError("boom")
    watch.backups = broken
    src.usage = Usage(100, 99, 1)
    watch.tick()
    assert "disk_full:" in open_kinds(service)


@pytest.mark.parametrize("url", [
    "ftp://example.com/hook", "javascript:alert(1)", "file:///etc/passwd", "http://",
    "https://user:pw@example.com/", "http://example.com/a b", "example.com/hook",
    "http://example.com:0/", "http://example.com:99999/"])
def test_webhook_url_validation(service: NotifyService, url: str) -> None:
    with pytest.raises(Invalid):
        check_url(url)
    with pytest.raises(Invalid):
        service.set_webhook(WebhookSettings(url=url if len(url) >= 8 else url + "/" * 8))
    assert not service.list_channels()[0].configured
    assert not (service.channels.folder / "webhook-secret").exists()


def test_webhook_secret_shown_once_and_kept(service: NotifyService) -> None:
    made = service.set_webhook(WebhookSettings(url="https://hooks.example.com/x"))
    assert made.secret and made.secret_set
    again = service.set_webhook(WebhookSettings(url="https://hooks.example.com/y"))
    assert again.secret is None and again.url == "https://hooks.example.com/y"
    assert service.channels.get(ChannelKind.WEBHOOK).secret == made.secret
    rotated = service.set_webhook(WebhookSettings(url="https://hooks.example.com/y",
                                                  rotate_secret=True))
    assert rotated.secret and rotated.secret != made.secret
    assert all(c.secret is None for c in service.list_channels())


def email(**changes: Any) -> EmailSettings:
    base: dict[str, Any] = {"host": "smtp.example.com", "port": 587, "sender": "sh@example.com",
                            "recipients": ["ops@example.com"], "username": "sh",
                            "password": "s3cret-pw"}
    return EmailSettings(**{**base, **changes})


def test_smtp_password_stored_0600_and_never_returned(service: NotifyService) -> None:
    read = service.set_email(email())
    assert read.password_set and "s3cret-pw" not in read.model_dump_json()
    path = service.channels.folder / "smtp-password"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(service.channels.folder.stat().st_mode) == 0o700
    assert path.read_text() == "s3cret-pw"
    assert "s3cret-pw" not in str(service.channels.db.query(
        "SELECT config FROM notify_channels")[0]["config"])
    kept = service.set_email(email(password=None, port=2525))
    assert kept.password_set and kept.port == 2525 and path.read_text() == "s3cret-pw"
    cleared = service.set_email(email(password=""))
    assert not cleared.password_set and not path.exists()


@pytest.mark.parametrize("changes", [
    {"recipients": ["not an address"]}, {"recipients": ["a@b.c, d@e.f"]},
    {"ssl": True, "starttls": True}, {"password": "two\nlines"}])
def test_bad_email_settings_change_nothing(service: NotifyService,
                                           changes: dict[str, Any]) -> None:
    service.set_email(email(port=25))
    with pytest.raises(Invalid):
        service.set_email(email(port=26, **changes))
    read = service.channels.get(ChannelKind.EMAIL).read()
    assert read.port == 25 and read.password_set


def test_remove_channel(service: NotifyService) -> None:
    service.set_email(email())
    service.remove_channel(ChannelKind.EMAIL)
    assert not (service.channels.folder / "smtp-password").exists()
    with pytest.raises(NotFound):
        service.remove_channel(ChannelKind.EMAIL)


def test_only_resolved_ones_are_pruned_beyond_the_limit(service: NotifyService) -> None:
    service.store.keep = 3
    for n in range(4):
        service.notify(backup_failed(f"app{n}"))
        service.resolve(f"backup_failed:app{n}")
    service.notify(backup_failed("open1"))
    service.notify(backup_failed("open2"))
    service.notify(backup_failed("open3"))
    service.notify(backup_failed("open4"))
    left = [(n.instance, n.resolved) for n in service.listing(ADMIN).items]
    assert left == [("open4", False), ("open3", False), ("open2", False), ("open1", False)]
