"""The review page's tests drive a real headless Chromium: Debian's ``chromium`` package,
through Playwright's Python package with ``executable_path`` (``playwright install`` is never
run: it downloads a browser). Fixtures here, imported by the tests/test_review_*.py modules:

- ``browser``: one Chromium for the session (skipped, with the reason, where Debian's chromium
  or Playwright is missing; scripts/setup.sh --test installs both);
- ``shot(page, name)``: a screenshot written to ``artifacts/review/NAME.png`` (CI keeps the
  run folder's ``artifacts/``), checked not to be blank, and its path returned;
- ``sign_in(page, base, token)``: through the sign-in form, as a person does;
- ``axe_violations(page)``: axe-core's WCAG 2 A/AA rules run in the page (the rules come from
  the axe-playwright-python package), each violation as "rule: target".
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("STUDIO_ARTIFACTS", ROOT / "artifacts")) / "review"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh --test installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright's Python package is not installed (the test extra has it)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    # Script errors and console errors; a resource's HTTP status is the tests' to check
    # (the sign-in form answers 401 to a wrong token on purpose).
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" and not m.text.startswith(
        "Failed to load resource") else None)
    pg.errors = errors  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        context.close()


def shot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Screenshot ``page`` to artifacts/review/NAME.png and check it is not blank (more than
    one colour across a good part of it); the path."""
    from PIL import Image

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    with Image.open(path) as im:
        small = im.convert("RGB").resize((64, 64))
        colours = len(set(small.getdata()))
    assert colours > 8, f"screenshot {path} is nearly blank ({colours} colours)"
    return path


def sign_in(page: Any, base: str, token: str, next_path: str = "/review/jobs") -> None:
    page.goto(f"{base}{next_path}")
    assert "/review/login" in page.url  # a page needs a session: the form comes first
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    # Compared decoded, and the wanted query as a part of the page's: a page may rewrite its
    # own query at once (the watch page does, with URLSearchParams, which writes ':' as %3A,
    # and adds ?video= for the video it opens), so a literal glob or an equal query would
    # race that rewrite.
    want = urlsplit(next_path)
    page.wait_for_url(lambda url: urlsplit(url).path == want.path
                      and set(parse_qsl(want.query)) <= set(parse_qsl(urlsplit(url).query)))


def axe_violations(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa"]}})
    return [f"{v['id']}: {', '.join(str(n['target']) for n in v['nodes'][:3])}"
            for v in results.response.get("violations", [])]
