"""The file manager and the engine clean-up preview in a real browser (Chromium), against the
real engine: upload (button and drag and drop), edit with a conflict, download, zip, delete,
trash and restore; in English and Chinese, at 1440 px and 375 px.

The engine test only previews: a real prune would touch other suites' objects on the shared
engine (tests/integration/test_tools_files_engine.py prunes, limited to its own objects).
"""

from __future__ import annotations

import io
import re
import subprocess
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import (
    DESKTOP,
    IMAGE,
    PHONE,
    WAIT,
    Server,
    ensure_instance,
    own_server,
    sign_in,
    t,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "filer"
NAME = f"files-{uuid.uuid4().hex[:6]}"
COMPOSE = f"""services:
  web:
    image: {IMAGE}
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    volumes:
      - ./data:/data
"""
expect.set_options(timeout=WAIT)
errors: list[str] = []


@pytest.fixture(scope="module")
def files_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own with an admin and one instance with a data folder."""
    with own_server(tmp_path_factory, "files", USER, store=False) as srv:
        ensure_instance(srv, NAME, {"kind": "compose", "compose": COMPOSE})
        yield srv


@pytest.fixture(scope="module")
def signed_in(browser: Any, files_server: Server) -> dict[str, Any]:
    return sign_in(browser, files_server, USER)

    assert not errors, errors


def read_text(server: Server, path: str) -> str:
    answer = server.api("GET", f"/api/instances/{NAME}/files/text", params={"path": path})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["content"])


def confirm(page: Any, label: str) -> None:
    page.locator(".n-dialog__action").get_by_role("button", name=label).click()


def test_file_manager_round_trip(open_page: Any, files_server: Server, shots: Path,
                                 tmp_path: Path) -> None:
    page = open_page(DESKTOP, "en-US")
    page.goto(f"{files_server.url}/apps/{NAME}")
    page.click(t("instance-files"))
    page.wait_for_url(re.compile(rf"/apps/{NAME}/files$"))
    expect(page.locator("h1")).to_have_text(f"Files of {NAME}")
    page.click(t("open-data"))
    page.wait_for_url(re.compile(r"\?path=data$"))
    expect(page.locator(t("files-crumbs"))).to_contain_text("data")

    # upload with the button (a hidden file input), then by dropping a file on the list
    source = tmp_path / "notes.txt"
    source.write_text("first line\n")
    page.set_input_files(t("files-input"), str(source))
    expect(page.locator(t("entry-notes.txt"))).to_be_visible()
    page.evaluate("""() => {
        const dt = new DataTransfer()
        dt.items.add(new File(['dropped\\n'], 'dropped.txt', { type: 'text/plain' }))
        document.querySelector('[data-test="files-drop"]').dispatchEvent(
          new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }))
    }""")
    expect(page.locator(t("entry-dropped.txt"))).to_be_visible()
    assert read_text(files_server, "data/dropped.txt") == "dropped\n"
    expect(page.locator(t("files-table"))).to_contain_text(str(time.localtime().tm_year))
    # a new folder, and a file moved into it by a path, then back by renaming
    page.click(t("files-new-folder"))
    page.fill(f'{t("files-ask")} input', "sub")
    page.keyboard.press("Enter")
    expect(page.locator(t("open-sub"))).to_be_visible()
    page.click(t("rename-dropped.txt"))
    page.fill(f'{t("files-ask")} input', "data/sub/moved.txt")
    page.keyboard.press("Enter")
    expect(page.locator(t("entry-dropped.txt"))).to_have_count(0)
    page.click(t("open-sub"))
    expect(page.locator(t("entry-moved.txt"))).to_be_visible()
    page.click(t("rename-moved.txt"))
    page.fill(f'{t("files-ask")} input', "data/dropped.txt")
    page.keyboard.press("Enter")
    expect(page.locator(t("entry-moved.txt"))).to_have_count(0)
    page.locator(t("files-crumbs")).get_by_text("data").click()
    page.wait_for_url(re.compile(r"\?path=data$"))
    expect(page.locator(t("entry-dropped.txt"))).to_be_visible()
    owner = subprocess.run(["stat", "-c", "%u:%g", str(files_server.data / "appdata" / NAME
                                                        / "data" / "notes.txt")],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert owner == "1000:1000"
    page.screenshot(path=str(shots / "60-files.png"))

    # edit and save
    page.click(t("edit-notes.txt"))
    editor = page.locator(t("editor-text")).locator("textarea")
    expect(editor).to_have_value("first line\n")
    editor.fill("first line\nsecond line\n")
    page.click(t("editor-save"))
    expect(page.locator(t("editor-text"))).to_be_hidden()
    assert read_text(files_server, "data/notes.txt") == "first line\nsecond line\n"
    # a save over a file changed meanwhile is refused; the current version can be loaded
    page.click(t("edit-notes.txt"))
    current = files_server.api("GET", f"/api/instances/{NAME}/files/text",
                               params={"path": "data/notes.txt"}).json()
    files_server.api("PUT", f"/api/instances/{NAME}/files/text", json={
        "path": "data/notes.txt", "content": "changed elsewhere\n", "etag": current["etag"]})
    page.locator(t("editor-text")).locator("textarea").fill("mine\n")
    page.click(t("editor-save"))
    expect(page.locator(".n-modal")).to_contain_text("changed since you opened it")
    page.click(t("editor-reload"))
    expect(page.locator(t("editor-text")).locator("textarea")).to_have_value("changed elsewhere\n")
    page.keyboard.press("Escape")
    expect(page.locator(t("editor-text"))).to_be_hidden()
    assert read_text(files_server, "data/notes.txt") == "changed elsewhere\n"

    # download a file, then the folder as a zip
    with page.expect_download() as got:
        page.click(t("download-notes.txt"))
    assert Path(got.value.path()).read_text() == "changed elsewhere\n"
    with page.expect_download() as got:
        page.click(t("files-zip"))
    names = zipfile.ZipFile(io.BytesIO(Path(got.value.path()).read_bytes())).namelist()
    assert sorted(names) == ["dropped.txt", "notes.txt", "sub/"]

    # delete to the trash, see it there, restore it
    page.click(t("delete-notes.txt"))
    confirm(page, "Delete")
    expect(page.locator(t("entry-notes.txt"))).to_have_count(0)
    assert not (files_server.data / "appdata" / NAME / "data" / "notes.txt").exists()
    page.click(t("files-trash"))
    expect(page.locator(t("trash-data/notes.txt"))).to_be_visible()
    page.click(t("restore-data/notes.txt"))
    expect(page.locator(t("trash-empty"))).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator(t("entry-notes.txt"))).to_be_visible()
    assert read_text(files_server, "data/notes.txt") == "changed elsewhere\n"


def test_file_manager_on_a_phone_in_chinese(open_page: Any, files_server: Server,
                                            shots: Path) -> None:
    page = open_page(PHONE, "zh-CN")
    page.goto(f"{files_server.url}/apps/{NAME}/files?path=data")
    expect(page.locator("h1")).to_have_text(f"{NAME} 的文件")
    expect(page.locator(t("files-upload"))).to_contain_text("上传")
    expect(page.locator(t("files-table"))).to_contain_text("dropped.txt")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width}px wide at {PHONE['width']}px"
    page.screenshot(path=str(shots / "61-files-phone-zh.png"))


def test_engine_prune_preview(open_page: Any, files_server: Server, shots: Path) -> None:
    network = f"e2e-files-{uuid.uuid4().hex[:6]}"
    subprocess.run(["docker", "network", "create", network], check=True, capture_output=True)
    try:
        page = open_page(DESKTOP, "en-US")
        page.goto(f"{files_server.url}/containers")
        page.click(t("engine-prune"))
        items = page.locator(t("prune-items"))
        expect(items).to_contain_text(network)
        expect(page.locator(t("prune-summary"))).to_contain_text("object(s)")
        assert f"stackhub-{NAME}" not in items.inner_text()  # the instance's network stays
        page.screenshot(path=str(shots / "62-engine-prune-preview.png"))
        page.get_by_role("button", name="Cancel").click()
        present = subprocess.run(["docker", "network", "inspect", network], capture_output=True)
        assert present.returncode == 0  # a preview changes nothing
        phone = open_page(PHONE, "zh-CN")
        phone.goto(f"{files_server.url}/containers")
        phone.click(t("engine-prune"))
        expect(phone.locator(t("prune-items"))).to_contain_text(network)
        expect(phone.locator(".n-card-header")).to_contain_text("清理引擎")
    finally:
        subprocess.run(["docker", "network", "rm", network], capture_output=True)
