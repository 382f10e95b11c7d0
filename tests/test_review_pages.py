"""The review page's sign-in, sessions, share links and jobs list, in a real headless
Chromium against the real server (uvicorn).

What it proves: a page without a session sends the browser to the sign-in form and back
afterwards; a wrong token is refused beside its field (401) and a right one signs in with an
HttpOnly, SameSite=Strict session cookie (no token in it); the jobs list shows the project's
jobs and updates live from the event stream; the page passes axe-core's WCAG 2 A/AA rules;
signing out ends the session for the API too; a session cookie alone cannot change anything
through the API without the page's own header (a cross-site form cannot send it); a share
link opens one job for one role and nothing else; an editor makes one in the job page (a
number of days out of range refused beside the form first), the reviewer opens it in their
own browser, and the editor revokes it there, which ends the reviewer's session.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from studio import auth, db, jobs
from studio.settings import Settings

from .browser import axe_violations, shot, sign_in
from .conftest import serve


class Live:
    def __init__(self, home: Path) -> None:
        self.proc, self.base = serve(home, workers=0, log_level="warning")
        self.engine = db.make_engine(Settings(home=home).db_url)
        db.init_db(self.engine)
        self.tokens = {r: auth.create(self.engine, project="aurora", role=r, name=f"{r}-person")[1] for r in auth.ROLES}

    def submit(self, campaign: str) -> str:
        job, _ = jobs.submit(self.engine, brief={"project": "aurora", "campaign": campaign, "purpose": f"{campaign} spot"},
                             project="aurora", campaign=campaign, brief_sha256=campaign, request_sha256=campaign)
        return job.id

    def close(self) -> None:
        self.engine.dispose()
        self.proc.terminate()
        try:
            self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = Live(tmp_path_factory.mktemp("review") / "home")
    try:
        yield server
    finally:
        server.close()


def test_sign_in_jobs_list_live_and_sign_out(live: Live, page: Any) -> None:
    first = live.submit("spring")
    page.goto(f"{live.base}/review/jobs")
    assert page.url.endswith("/review/login?next=/review/jobs")
    page.get_by_label("API token").fill("studio_not-a-token-at-all-000000000")
    page.get_by_role("button", name="Sign in").click()
    assert page.locator("#token-error").inner_text().startswith("the token is unknown or revoked")
    assert page.get_by_label("API token").get_attribute("aria-invalid") == "true"
    shot(page, "01-sign-in-refused")

    sign_in(page, live.base, live.tokens["editor"])
    cookie = next(c for c in page.context.cookies() if c["name"] == "studio_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert live.tokens["editor"] not in cookie["value"]
    row = page.locator(f'tr[data-job="{first}"]')
    assert row.locator('[data-field="state"]').inner_text() == "queued"
    assert row.locator('[data-field="waiting"]').inner_text() == "a worker"
    assert axe_violations(page) == []

    # Live: a new job and a state change appear without a reload.
    second = live.submit("summer")
    page.locator(f'tr[data-job="{second}"]').wait_for(timeout=15000)
    jobs.cancel(live.engine, first)
    page.locator(f'tr[data-job="{first}"] [data-field="state"]', has_text="canceled").wait_for(timeout=15000)
    shot(page, "02-jobs")
    assert page.errors == []  # type: ignore[attr-defined]

    # The session cookie reads the API as the token would; without the page's header it
    # changes nothing (what a form on another site could send).
    jar = {cookie["name"]: cookie["value"]}
    assert httpx.get(f"{live.base}/v1/jobs/{second}", cookies=jar).status_code == 200
    r = httpx.post(f"{live.base}/v1/jobs/{second}/cancel", cookies=jar)
    assert r.status_code == 403 and "X-Requested-With: studio" in r.json()["detail"]
    assert jobs.get(live.engine, second).state == "queued"  # type: ignore[union-attr]
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/review/login")
    assert httpx.get(f"{live.base}/v1/jobs/{second}", cookies=jar).status_code == 401


def test_a_share_link_opens_one_job_for_one_role(live: Live, page: Any) -> None:
    mine = live.submit("autumn")
    other = live.submit("winter")
    editor = {"Authorization": f"Bearer {live.tokens['editor']}"}
    r = httpx.post(f"{live.base}/v1/jobs/{mine}/shares", headers=editor,
                   json={"role": "approver", "name": "legal: Jo at the agency", "days": 2})
    assert r.status_code == 201, r.text
    url, share_id = r.json()["url"], r.json()["id"]
    listed = httpx.get(f"{live.base}/v1/jobs/{mine}/shares", headers=editor).json()["shares"]
    assert [x["id"] for x in listed] == [share_id] and "url" not in listed[0]  # the secret is shown once
    viewer = {"Authorization": f"Bearer {live.tokens['viewer']}"}
    assert httpx.post(f"{live.base}/v1/jobs/{mine}/shares", headers=viewer, json={"role": "viewer"}).status_code == 403
    page.goto(f"{live.base}{url}")
    assert page.url.endswith(f"/review/jobs/{mine}") or f"/review/jobs/{mine}" in page.url
    jar = {c["name"]: c["value"] for c in page.context.cookies()}
    r = httpx.get(f"{live.base}/v1/jobs", cookies=jar)
    assert [j["id"] for j in r.json()["jobs"]] == [mine]
    assert httpx.get(f"{live.base}/v1/jobs/{other}", cookies=jar).status_code == 404
    headers = {"X-Requested-With": "studio"}
    assert httpx.post(f"{live.base}/v1/jobs/{mine}/cancel", cookies=jar, headers=headers).status_code == 403  # an approver
    assert httpx.post(f"{live.base}/v1/jobs", cookies=jar, headers=headers, content=b"{}").status_code == 403
    # A session from a link makes no more links; the job's editor revokes it, and it ends.
    r = httpx.post(f"{live.base}/v1/jobs/{mine}/shares", cookies=jar, headers=headers, json={"role": "viewer"})
    assert r.status_code == 403
    r = httpx.post(f"{live.base}/v1/jobs/{mine}/shares/{share_id}/revoke", headers=editor)
    assert r.status_code == 200 and r.json()["revoked_at"]
    assert httpx.get(f"{live.base}/v1/jobs/{mine}", cookies=jar).status_code == 401
    page.goto(f"{live.base}{url}")
    assert "this share link is unknown, expired or revoked" in page.content()


def test_an_editor_makes_and_revokes_a_share_link_in_the_job_page(live: Live, page: Any, browser: Any) -> None:
    mine = live.submit("harvest")
    sign_in(page, live.base, live.tokens["editor"], f"/review/jobs/{mine}")
    share = page.locator("#share")
    share.get_by_role("heading", name="Share with an outside reviewer").wait_for()
    assert share.locator('tr.empty').inner_text() == "No share links yet."
    # A number of days out of range is refused beside the form, and nothing is made.
    share.get_by_label("Role").select_option("approver")
    share.get_by_label("Who it is for").fill("legal: Jo at the agency")
    days = share.get_by_label("Days it works (up to 30)")
    days.fill("45")
    share.get_by_role("button", name="Make a link").click()
    error = page.locator("#share-error")
    assert error.inner_text().startswith("Days it works: 45 is not a number of days from 1 to 30")
    assert days.get_attribute("aria-invalid") == "true" and days.evaluate("el => el === document.activeElement")
    editor = {"Authorization": f"Bearer {live.tokens['editor']}"}
    assert httpx.get(f"{live.base}/v1/jobs/{mine}/shares", headers=editor).json()["shares"] == []
    days.fill("2")
    share.get_by_role("button", name="Make a link").click()
    url_box = share.get_by_label("The link for legal: Jo at the agency (Approver) (shown this once)")
    url_box.wait_for()
    url = url_box.input_value()
    assert url.startswith(f"{live.base}/review/s/") and error.is_hidden()
    row = share.locator("tbody tr").first
    row.locator('[data-field="state"]', has_text="live").wait_for()
    assert row.locator("td").nth(0).inner_text() == "legal: Jo at the agency"
    assert row.locator("td").nth(1).inner_text() == "Approver"
    listed = httpx.get(f"{live.base}/v1/jobs/{mine}/shares", headers=editor).json()["shares"]
    assert [(s["role"], s["name"]) for s in listed] == [("approver", "legal: Jo at the agency")]
    assert axe_violations(page) == []
    shot(page, "03-share-link")

    # The reviewer opens the link in their own browser: this job's page, as an approver,
    # and no share section (a link's session makes no links).
    outside = browser.new_context(viewport={"width": 1360, "height": 900})
    try:
        theirs = outside.new_page()
        theirs.goto(url)
        theirs.wait_for_url(f"**/review/jobs/{mine}")
        assert "approver" in theirs.locator("#who").inner_text()
        assert theirs.locator("#share").count() == 0
        # The editor revokes it in the page; the reviewer's session ends with it.
        row.get_by_role("button", name="Revoke the link for legal: Jo at the agency").click()
        row.locator('[data-field="state"]', has_text="revoked").wait_for()
        assert row.get_by_role("button").count() == 0
        theirs.goto(f"{live.base}/review/jobs/{mine}")
        assert "/review/login" in theirs.url
        theirs.goto(url)
        assert "this share link is unknown, expired or revoked" in theirs.content()
    finally:
        outside.close()
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_viewer_gets_no_share_section(live: Live, page: Any) -> None:
    mine = live.submit("frost")
    sign_in(page, live.base, live.tokens["viewer"], f"/review/jobs/{mine}")
    page.locator("h1").wait_for()
    assert page.locator("#share").count() == 0
    assert page.locator('script[src$="share.js"]').count() == 0
