"""The web console in a real browser against a real stack with auth required: sign in (a wrong key first), create a
collection, enroll a subject from a file and see its thumbnail, verify a match and a non-match in the playground,
find those decisions in the audit trail, run a stylization job to its result, and read the stack's status. Every
page is saved as a screenshot under build/console-screenshots/ (and the subjects page at phone width too).

Locators go by role and label, so the test also checks that every control has an accessible name."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from argus_up import Stack
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, expect, sync_playwright

REPO = Path(__file__).resolve().parent.parent
CONSOLE_DIST = REPO / "services" / "gateway" / "console" / "dist"
SCREENSHOTS = REPO / "build" / "console-screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE_WIDTH = 375
# A CPU-only machine: an enroll or a stylization takes seconds, the first call of a model longer.
SLOW_MS = 120_000

pytestmark = pytest.mark.timeout(900)


def free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


@dataclass(frozen=True)
class Console:
    url: str
    admin_key: str
    door_key: str  # verify scope only: it may not read the gallery's faces


def create_key(env: dict[str, str], name: str, scope: str) -> str:
    command = [sys.executable, "-m", "argus.cli.main", "keys", "create", name, "--scope", scope, "--json"]
    created = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=True)
    key: str = json.loads(created.stdout)["key"]
    return key


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Console]:
    """The console of a stack that requires keys."""
    if not (CONSOLE_DIST / "index.html").is_file():
        pytest.fail("the console is not built: run `make install` (it builds the console)")
    ports = {name: free_port() for name in ("detector", "embedder", "facedb", "jobs", "gateway")}
    env = {key: value for key, value in os.environ.items() if not key.startswith("ARGUS_")}
    env |= {
        "ARGUS_DATA_DIR": str(tmp_path_factory.mktemp("console") / "data"),
        "ARGUS_MODELS_DIR": str(models_dir),
        "ARGUS_DEVICE": "cpu",
        **{f"ARGUS_{name.upper()}_PORT": port for name, port in ports.items()},
    }
    admin_key = create_key(env, "console-admin", "admin")
    door_key = create_key(env, "front-door", "verify")
    # facedb calls the detector and the embedder with ARGUS_API_KEY.
    stack = Stack(env | {"ARGUS_AUTH": "required", "ARGUS_API_KEY": admin_key})
    try:
        stack.wait_for("Press Ctrl-C to stop.", timeout_s=180)
        url = f"http://127.0.0.1:{ports['gateway']}/"
        announced = [line for line in stack.seen if re.fullmatch(r"\s*console\s+\S+", line)]
        assert announced and announced[-1].split()[-1] == url, "\n".join(stack.seen[-20:])
        yield Console(url, admin_key, door_key)
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"the console test needs Chromium at {CHROMIUM}: install Debian's chromium package")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def screenshot(page: Page, name: str) -> None:
    """Saves the page as it is, and again at phone width, where it must not scroll sideways."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    desktop = page.viewport_size
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 800})
    page.wait_for_function(f"window.innerWidth === {PHONE_WIDTH}")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE_WIDTH, f"the {name} page scrolls sideways at {PHONE_WIDTH} px ({width} px wide)"
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{PHONE_WIDTH}px.png"), full_page=True)
    if desktop is not None:
        page.set_viewport_size(desktop)


def go_to(page: Page, link: str, heading: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=link, exact=True).click()
    expect(page.get_by_role("heading", level=1, name=heading)).to_be_visible()


def wait_until_decoded(page: Page, image_name: str, timeout_ms: float = SLOW_MS) -> int:
    """Waits until the image with this accessible name has loaded; returns its natural width."""
    image = page.get_by_role("img", name=image_name, exact=True)
    expect(image).to_be_visible(timeout=timeout_ms)
    page.wait_for_function("image => image.complete && image.naturalWidth > 0", arg=image.element_handle())
    width: int = image.evaluate("image => image.naturalWidth")
    return width


def sign_in(page: Page, key: str) -> None:
    expect(page.get_by_role("heading", level=1, name="Sign in")).to_be_visible()
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1, name="Collections")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()


def wrong_key(page: Page) -> None:
    key_field = page.get_by_label("API key", exact=True)
    expect(key_field).to_have_attribute("type", "password")
    key_field.fill("argus_nosuchkey_0123456789abcdef")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert").filter(has_text="That API key was not accepted:")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    screenshot(page, "sign-in")


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1, name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def create_collection(page: Page) -> None:
    page.get_by_label("Name", exact=True).fill("lobby")
    expect(page.get_by_label("Profile", exact=True).locator("option")).not_to_have_count(0)
    page.get_by_role("button", name="Create collection").click()
    expect(page.get_by_role("status").filter(has_text="Created collection lobby")).to_be_visible()
    expect(page.get_by_role("link", name="lobby", exact=True)).to_be_visible()

    page.get_by_label("Name", exact=True).fill("scratch")
    page.get_by_role("button", name="Create collection").click()
    expect(page.get_by_role("link", name="scratch", exact=True)).to_be_visible()
    page.get_by_role("button", name="Delete scratch").click()
    dialog = page.get_by_role("dialog", name="Delete scratch?")
    expect(dialog).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(page.get_by_role("button", name="Delete scratch")).to_be_focused()
    page.get_by_role("button", name="Delete scratch").click()
    dialog.get_by_role("button", name="Delete collection").click()
    expect(page.get_by_role("status").filter(has_text="Deleted scratch: 0 subjects, 0 faces.")).to_be_visible()
    expect(page.get_by_role("link", name="scratch", exact=True)).to_have_count(0)
    screenshot(page, "collections")


def enroll_obama(page: Page, faces: Path) -> None:
    page.get_by_role("link", name="lobby", exact=True).click()
    expect(page.get_by_role("heading", level=1, name="Subjects of lobby")).to_be_visible()
    expect(page.get_by_text("0 subjects in lobby.")).to_be_visible()
    page.get_by_label("Subject ID", exact=True).fill("obama")
    page.get_by_label("Display name", exact=True).fill("Barack Obama")
    page.get_by_label("Photos", exact=True).set_input_files(faces / "obama.jpg")
    expect(page.get_by_role("img", name="Photo 1: obama.jpg")).to_be_visible()
    page.get_by_role("button", name="Enroll", exact=True).click()
    outcome = page.get_by_role("status").filter(has_text="Created subject obama: 1 face added.")
    expect(outcome).to_be_visible(timeout=SLOW_MS)
    expect(page.get_by_role("listitem").filter(has_text="Photo 1 (obama.jpg): enrolled as face")).to_be_visible()

    card = page.get_by_role("article", name="Barack Obama")
    expect(card).to_be_visible()
    assert wait_until_decoded(page, "Face 1 of Barack Obama") > 0

    search = page.get_by_role("searchbox", name="Search subjects")
    search.fill("nobody-like-this")
    expect(page.get_by_text("0 subjects match")).to_be_visible()
    expect(card).to_have_count(0)
    search.fill("OBA")
    expect(card).to_be_visible()
    search.fill("")
    expect(page.get_by_text("1 subject in lobby.")).to_be_visible()
    wait_until_decoded(page, "Face 1 of Barack Obama")
    screenshot(page, "subjects")


def verify(page: Page, photo: Path, expected: str) -> None:
    page.get_by_label("Collection", exact=True).select_option("lobby")
    page.get_by_label("Claimed subject ID", exact=True).fill("obama")
    page.get_by_label("Photo", exact=True).set_input_files(photo)
    page.get_by_role("button", name="Verify", exact=True).click()
    result = page.get_by_role("region", name="Result")
    expect(result.get_by_text(expected)).to_be_visible(timeout=SLOW_MS)
    expect(result.get_by_role("img", name="The probe photo with its faces outlined")).to_be_visible()
    expect(result.locator("svg rect")).to_have_count(1)


def playground(page: Page, faces: Path) -> None:
    go_to(page, "Playground", "Playground")
    expect(page.get_by_role("radio", name=re.compile("^Verify"))).to_be_checked()
    verify(page, faces / "obama2.jpg", "This is obama:")
    screenshot(page, "playground")
    verify(page, faces / "biden2.jpg", "This is not obama:")

    page.get_by_role("radio", name=re.compile("^Identify")).check()
    expect(page.get_by_label("Claimed subject ID", exact=True)).to_be_hidden()
    page.get_by_label("Photo", exact=True).set_input_files(faces / "obama2.jpg")
    page.get_by_role("button", name="Identify", exact=True).click()
    result = page.get_by_role("region", name="Result")
    expect(result.get_by_role("listitem").filter(has_text="Face 1: Barack Obama (obama), similarity")).to_be_visible(
        timeout=SLOW_MS
    )


def audit(page: Page) -> None:
    go_to(page, "Audit", "Audit trail")
    page.get_by_label("Action", exact=True).select_option("verify")
    page.get_by_label("Collection", exact=True).select_option("lobby")
    page.get_by_role("button", name="Apply filters").click()
    rows = page.get_by_role("row").filter(has_text="verify")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="no_match")).to_have_count(1)
    expect(rows.filter(has=page.get_by_role("cell", name="match", exact=True))).to_have_count(1)
    expect(rows.first).to_contain_text("console-admin")
    page.get_by_label("Decision", exact=True).fill("no_match")
    page.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(1)
    screenshot(page, "audit")


def stylize(page: Page, images: Path) -> None:
    go_to(page, "Jobs", "Jobs")
    page.get_by_label("Content image", exact=True).set_input_files(images / "style" / "amber.jpg")
    expect(page.get_by_role("radio", name="A named style")).to_be_checked()
    style = page.get_by_label("Style", exact=True)
    expect(style.locator("option")).not_to_have_count(0)
    style.select_option("udnie")
    page.get_by_label("Max size (px)", exact=True).fill("128")
    page.get_by_role("button", name="Submit stylization").click()
    expect(page.get_by_role("status").filter(has_text="Submitted job")).to_be_visible()
    expect(page.get_by_role("cell", name="SUCCEEDED", exact=True)).to_be_visible(timeout=SLOW_MS)
    expect(page.get_by_role("region", name=re.compile("^Result of job"))).to_be_visible(timeout=SLOW_MS)
    assert wait_until_decoded(page, "After: the stylized result") == 128
    split = page.get_by_label("Before / after split", exact=True)
    split.fill("20")
    expect(split).to_have_attribute("aria-valuetext", "20% before, 80% after")
    screenshot(page, "jobs")


def stack_status(page: Page) -> None:
    go_to(page, "Status", "Stack status")
    for service in ("detector", "embedder", "facedb", "jobs"):
        row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=service, exact=True))
        expect(row).to_contain_text("SERVING")
        expect(row).to_contain_text("required")
    expect(page.get_by_role("row").filter(has_text="ExecutionProvider").first).to_be_visible()
    screenshot(page, "status")


def placeholders_for_a_verify_key(page: Page) -> None:
    page.get_by_role("link", name="lobby", exact=True).click()
    card = page.get_by_role("article", name="Barack Obama")
    expect(card.get_by_role("img", name="Face 1 of Barack Obama (no thumbnail)")).to_be_visible()
    expect(page.get_by_text("Thumbnails need a key with enroll scope")).to_be_visible()
    page.get_by_role("button", name="Delete subject obama").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete subject").click()
    expect(page.get_by_role("dialog").get_by_role("alert")).to_contain_text("Not allowed:")
    page.keyboard.press("Escape")
    expect(card).to_be_visible()


def test_the_console_end_to_end(console: Console, browser: Browser, images_dir: Path) -> None:
    url = console.url
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def note_policy_violation(message: ConsoleMessage) -> None:
        # Refused calls (the wrong key) log failed requests too: only the page's own policy breaches count here.
        if "Content Security Policy" in message.text:
            errors.append(message.text)

    page.on("console", note_policy_violation)
    elsewhere: list[str] = []

    def note_origin(request: Request) -> None:
        if not request.url.startswith((url, "blob:", "data:")):
            elsewhere.append(request.url)

    page.on("request", note_origin)
    try:
        page.goto(url)
        wrong_key(page)
        sign_in(page, console.admin_key)
        create_collection(page)
        enroll_obama(page, images_dir / "faces")
        playground(page, images_dir / "faces")
        audit(page)
        stylize(page, images_dir)
        stack_status(page)
        sign_out(page)
        sign_in(page, console.door_key)
        placeholders_for_a_verify_key(page)
        sign_out(page)
    finally:
        context.close()
    assert not errors, f"the console threw: {errors}"
    assert not elsewhere, f"the console loaded from other origins: {elsewhere}"
