"""The review page's job page (issue 12's "Done when"), in a real headless Chromium against
the real server (uvicorn, one worker) rendering the small gated brief for real
(tests/test_gates.py gated_brief(): selection human, approvals [brand]).

What it proves: an editor writes the brief in the brief form (/review/new), sees the
form refuse a beat of 0 s beside its field, fixes it and submits; the job page opens and
the job reaches awaiting_selection live (no reload); more candidates steered by a note join a beat's sheet live; each beat's sheet is one Tab stop and a candidate is picked with the keyboard
(arrows and Enter; a digit), the pick marked by a visible "Picked" badge and
aria-pressed/aria-current; a candidate is annotated with reason codes and a note; its details panel (a modal
dialog opened by its Details button or D, Escape or Close giving the focus back) shows
the seed, model, prompt and recipe hash the API's details give, the note, and its rights; two are
compared side by side and with a wipe whose range input (keyboard) moves the split (the
halves are the two images); the job resumes and waits at awaiting_approval; an approver
(who sees no pick controls, and whose pick the API refuses) approves as brand; the job
delivers and its deliverables link to their downloads; the editor changes a pick, the job
renders again and the page says "Re-approval needed". The decision records carry each
content hash (picks: the keyframes', the approval: the first release's, no longer
counting). A viewer sees no pick, note, more or sign-off controls and the API refuses
their pick; another project's admin finds no such job (404). axe-core finds no WCAG A/AA violation in any of these states.
"""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from studio import auth, db
from studio.settings import Settings

from .browser import axe_violations, shot, sign_in
from .conftest import serve
from .test_gates import gated_brief

RENDER_S = 240  # a render of the gated brief on a busy machine, with room


class Live:
    def __init__(self, home: Path) -> None:
        self.proc, self.base = serve(home, workers=1, log_level="warning", env={"STUDIO_RAY_NUM_CPUS": "2"})
        self.engine = db.make_engine(Settings(home=home).db_url)
        db.init_db(self.engine)
        self.tokens = {r: auth.create(self.engine, project="gates", role=r, name=f"{r}-person")[1] for r in auth.ROLES}

    def api(self, method: str, path: str, role: str = "editor", **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[role]}", **kw.pop("headers", {})}
        return httpx.request(method, f"{self.base}{path}", headers=headers, timeout=30, **kw)

    def close(self) -> str:
        self.engine.dispose()
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out or ""


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    server = Live(tmp_path / "home")
    try:
        yield server
    finally:
        server.close()


def session_jar(page: Any) -> dict[str, str]:
    return {c["name"]: c["value"] for c in page.context.cookies() if c["name"] == "studio_session"}


def as_page(page: Any, live: Live, path: str, method: str = "POST", **kw: Any) -> httpx.Response:
    """A request as the page makes it: the session cookie and X-Requested-With: studio."""
    return httpx.request(method, f"{live.base}{path}", cookies=session_jar(page),
                         headers={"X-Requested-With": "studio"}, timeout=30, **kw)


def wait_state(page: Any, state: str, timeout_s: float = RENDER_S) -> None:
    page.locator("#job-state", has_text=re.compile(f"^{state}$")).wait_for(timeout=timeout_s * 1000)


def sign_out(page: Any) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/review/login")


def png(data: bytes) -> Any:
    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")


def mean_diff(a: Any, b: Any) -> float:
    from PIL import ImageChops, ImageStat

    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def write_gated_brief(page: Any) -> None:
    """The form filled in as a producer does, for tests/test_gates.py gated_brief(), but
    with beat 2 lasting 0 s: the form must refuse it."""
    brief = gated_brief()
    page.get_by_label("Campaign").fill(brief["campaign"])
    page.get_by_label("Purpose").fill(brief["purpose"])
    page.get_by_label("youtube-1080p").check()
    page.get_by_label("golden-hour").check()
    page.get_by_role("button", name="Add beat").click()
    for i, (beat, duration) in enumerate(zip(brief["beats"], ("1", "0"), strict=True)):
        item = page.locator(f'[data-path="beats[{i}]"]')
        assert item.get_by_label("Id").input_value() == beat["id"]
        item.get_by_label("Duration").fill(duration)
        item.get_by_label("Subject").fill(beat["subject"])
    page.locator("summary", has_text="More options").click()  # the optional fields, folded away
    page.get_by_label("Selection").select_option("human")
    page.get_by_label("Approvals").fill("brand")
    page.get_by_label("Candidates", exact=True).fill("2")
    page.get_by_label("Captions").uncheck()
    page.get_by_label("Handles").fill("0")
    page.locator('[data-path="music"]').get_by_label("Source").fill("none")
    page.locator('[data-path="effects"]').get_by_label("Enabled").uncheck()


def test_pick_compare_annotate_sign_off_and_reapproval(live: Live, page: Any) -> None:
    # -- an editor writes the brief in the form: a field error first, then the job ----
    sign_in(page, live.base, live.tokens["editor"], "/review/new")
    page.locator('#brief-form[data-ready="true"]').wait_for(timeout=15000)
    write_gated_brief(page)
    page.get_by_role("button", name="Submit brief").click()
    error = page.locator('[data-path="beats[1].duration"] .field-error')
    error.wait_for(timeout=15000)
    assert error.inner_text() == "beats[1].duration: 0: input should be greater than 0 — use a larger number"
    duration = page.locator('[data-path="beats[1]"]').get_by_label("Duration")
    assert duration.get_attribute("aria-invalid") == "true"
    assert duration.evaluate("el => el === document.activeElement")  # the focus is on it
    assert live.api("GET", "/v1/jobs").json()["jobs"] == []  # refused: no job
    duration.fill("1")
    page.get_by_role("button", name="Submit brief").click()
    page.wait_for_url("**/review/jobs/job_*", timeout=15000)
    job_id = page.url.rsplit("/", 1)[1]
    job_path = f"/review/jobs/{job_id}"
    assert live.api("GET", f"/v1/jobs/{job_id}").json()["brief"] == gated_brief()  # what the form sent

    # -- the editor is on the job's page; it reaches the selection gate live ----------
    page.evaluate("window.notReloaded = true")
    assert page.locator("h1").inner_text().startswith(f"Job {job_id}")
    wait_state(page, "awaiting_selection")
    assert page.evaluate("window.notReloaded") is True  # the stream moved it, not a reload
    assert "picks for beat b01, b02" in page.locator("#job-waiting").inner_text()
    assert page.locator("#stages li").count() > 3 and page.locator("#job-progress").get_attribute("value") != "0"
    b01 = page.locator('section.beat[data-beat="b01"]')
    b02 = page.locator('section.beat[data-beat="b02"]')
    b01.locator(".cand").nth(1).locator("img").wait_for()
    assert b01.locator(".cand").count() == 2 and b02.locator(".cand").count() == 2

    # More like this: b02 again with a note; the new candidates join its sheet when the job
    # comes back (live), the sheet staying in view while it renders.
    b02.get_by_text("More like this: new candidates for beat b02").click()
    b02.get_by_label("Your note for the new candidates").fill("warmer light, closer")
    b02.get_by_role("button", name="Regenerate this beat with my note").click()
    page.locator("#job-state", has_text=re.compile("^(queued|running)$")).wait_for()
    assert b02.locator(".cand").count() == 2
    b02.locator(".cand").nth(3).wait_for(timeout=RENDER_S * 1000)
    wait_state(page, "awaiting_selection")
    assert b01.locator(".cand").count() == 2 and b02.locator(".cand").count() == 4
    sheet = live.api("GET", f"/v1/jobs/{job_id}/candidates").json()
    cands = {b["beat"]: b["candidates"] for b in sheet["beats"]}
    assert len(cands["b02"]) == 4
    for beat in (b01, b02):
        # One Tab stop per sheet: its active card; the buttons in it are reached by keys and mouse.
        assert beat.locator('.sheet [tabindex="0"]').count() == 1
        assert beat.locator(".sheet button:not([tabindex='-1'])").count() == 0
    b01.locator('.sheet [tabindex="0"]').focus()
    page.keyboard.press("Tab")  # out of the sheet at once, to what follows it on the page
    assert page.evaluate("document.activeElement.textContent") == "Note on a candidate of beat b01"
    for img in page.locator(".cand img").all():  # large enough to judge, and loaded
        img.evaluate("i => i.decode()")
        assert img.bounding_box()["width"] >= 360
        assert img.evaluate("i => i.naturalWidth") > 0
    first = b01.locator(".cand").nth(0)
    assert f"Score {cands['b01'][0]['score']:.2f}" in first.inner_text()
    if cands["b01"][0]["reason"]:
        assert cands["b01"][0]["reason"] in first.inner_text()

    # Keyboard pick, b01: Tab into the sheet, → to candidate 2, Enter.
    b01.locator('.sheet [tabindex="0"]').focus()
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.dataset.i") == "1"
    page.keyboard.press("Enter")
    picked = b01.locator(".cand").nth(1)
    picked.locator(".badge-picked").wait_for(state="visible")
    assert picked.locator(".badge-picked").inner_text() == "Picked"
    assert picked.get_attribute("aria-current") == "true" and "picked" in picked.get_attribute("aria-label")
    assert picked.get_by_role("button", name="Pick candidate 2 of beat b01").get_attribute("aria-pressed") == "true"
    assert b01.locator(".cand").nth(0).locator(".badge-picked").is_hidden()
    page.locator("#job-waiting", has_text="picks for beat b02").wait_for()
    # The mark is the records', not only the page's own: after the refresh and after a reload.
    page.locator('#decisions tr[data-kind="pick"]').wait_for()
    assert picked.locator(".badge-picked").is_visible()
    page.reload()
    picked.locator(".badge-picked").wait_for(state="visible")
    assert b01.locator('[data-field="status"]').inner_text() == "Picked: candidate 2 of 2."
    assert picked.get_attribute("aria-current") == "true"
    assert b01.locator('.sheet [tabindex="0"]').get_attribute("data-i") == "1"  # the tab stop is the pick
    assert axe_violations(page) == []
    shot(page, "20-candidates")

    # Annotate b02's candidate 2: reason codes and a note.
    b02.get_by_role("button", name="Annotate candidate 2 of beat b02").click()
    form = b02.locator("form.annotate")
    assert form.get_by_label("Candidate").input_value() == cands["b02"][1]["id"]
    form.get_by_label("Expression is off").check()
    form.get_by_label("Artefact (glitch, smudge)").check()
    form.get_by_label("Note", exact=True).fill("smudge at the ear")
    form.get_by_role("button", name="Save the note").click()
    b02.locator(".cand").nth(1).locator(".notes", has_text="smudge at the ear").wait_for()
    assert "Expression is off, Artefact" in b02.locator(".cand").nth(1).locator(".notes").inner_text()

    # The details panel of that candidate: what the API's details say, in a modal dialog
    # that takes the focus and gives it back.
    cid = cands["b02"][1]["id"]
    details = live.api("GET", f"/v1/jobs/{job_id}/details?candidate={cid}").json()
    button = b02.get_by_role("button", name="Details of candidate 2 of beat b02")
    button.click()
    page.get_by_role("dialog", name="Details: candidate 2 of beat b02").wait_for()
    panel = page.locator("dialog#details")
    page.locator('#details[data-loaded="true"]').wait_for()
    assert panel.is_visible() and page.evaluate("document.activeElement.id") == "details-h"
    recipe = details["recipe"]

    def shown(name: str) -> str:
        return panel.locator(f'[data-field="{name}"]').inner_text()

    assert shown("seed") == str(recipe["seed"]) and shown("model") == recipe["model_id"]
    assert shown("backend") == recipe["backend"]
    assert shown("steps") == ("none (this backend takes no steps)" if recipe["steps"] is None else str(recipe["steps"]))
    assert shown("positive") == recipe["prompt"]["positive"]
    assert shown("negative") == (recipe["prompt"]["negative"] or "(none)")
    assert shown("size") == f"{recipe['width']}×{recipe['height']}"
    assert panel.locator('[data-field="recipe-hash"] code').get_attribute("title") == recipe["recipe_hash"]
    if recipe["weights_sha256"]:
        assert panel.locator('[data-field="weights"] code').get_attribute("title") == recipe["weights_sha256"]
    if details["score"]:
        assert shown("score") == f"{details['score']['total']:.2f}"
    assert "smudge at the ear" in shown("decisions")  # the note just made
    assert shown("used-by") == "No deliverable uses it yet."  # nothing is delivered yet
    assert shown("usage-class") == details["rights"]["usage_class"]
    assert details["rights"]["models"][0]["id"] in shown("models")
    assert axe_violations(page) == []
    shot(page, "24-details", full_page=False)
    page.keyboard.press("Escape")
    panel.wait_for(state="hidden")
    assert button.evaluate("el => el === document.activeElement")  # back where it was opened
    # D on a card opens it too; Close gives the focus back to the card.
    b01.locator(".cand").nth(0).focus()
    page.keyboard.press("d")
    page.get_by_role("dialog", name="Details: candidate 1 of beat b01").wait_for()
    page.locator('#details[data-loaded="true"]').wait_for()
    assert shown("seed") == str(cands["b01"][0]["seed"])
    panel.get_by_role("button", name="Close").click()
    panel.wait_for(state="hidden")
    assert page.evaluate("document.activeElement.dataset.id") == cands["b01"][0]["id"]

    # Compare b01's candidate 1 with b02's candidate 2: side by side, and a wipe.
    b01.get_by_role("button", name="Compare candidate 1 of beat b01").click()
    b02.locator(".cand").nth(1).focus()
    page.keyboard.press("c")  # the key in a sheet, as the button
    page.locator("#compare-views").wait_for(state="visible")
    assert b02.get_by_role("button", name="Compare candidate 2 of beat b02").get_attribute("aria-pressed") == "true"
    side = page.locator("#side img")
    assert side.count() == 2
    assert [side.nth(i).get_attribute("src") for i in (0, 1)] == [cands["b01"][0]["image_url"],
                                                                   cands["b02"][1]["image_url"]]
    wipe, handle = page.locator("#wipe"), page.get_by_label("Wipe position")
    for img in page.locator("#wipe img, #side img").all():
        img.evaluate("i => i.decode()")
    handle.focus()
    page.keyboard.press("End")
    only_a = png(wipe.screenshot())
    page.keyboard.press("Home")
    only_b = png(wipe.screenshot())
    for _ in range(50):
        page.keyboard.press("ArrowRight")
    assert handle.input_value() == "50" and handle.get_attribute("aria-valuetext") == "50% of A, 50% of B"
    half = png(wipe.screenshot())
    w, h = half.size
    left, right = (0, 0, int(w * 0.45), h), (int(w * 0.55), 0, w, h)
    assert mean_diff(only_a.crop(left), only_b.crop(left)) > 8, "the two candidates look alike: no wipe to see"
    assert mean_diff(half.crop(left), only_a.crop(left)) < 2  # left of the line: A
    assert mean_diff(half.crop(right), only_b.crop(right)) < 2  # right of it: B
    line, box = page.locator("#wipe-line").bounding_box(), wipe.bounding_box()
    assert page.locator("#wipe-line").is_visible() and abs(line["x"] + line["width"] / 2 - (box["x"] + w / 2)) < 3
    assert axe_violations(page) == []
    shot(page, "21-compare-wipe")

    # Keyboard pick, b02: a digit. Every beat is picked: the job goes on to the approval gate.
    b02.locator('.sheet [tabindex="0"]').focus()
    page.keyboard.press("1")
    b02.locator(".cand").nth(0).locator(".badge-picked").wait_for(state="visible")
    wait_state(page, "awaiting_approval")
    release = live.api("GET", f"/v1/jobs/{job_id}").json()["gate"]["content_sha256"]
    page.locator("#signoff").wait_for(state="visible")
    assert page.locator("#release-hash").inner_text() == release[:12]
    assert page.locator("#deliverables li").count() >= 1
    assert page.get_by_role("button", name=re.compile("^(Approve|Reject) as")).count() == 0  # an editor
    r = as_page(page, live, f"/v1/jobs/{job_id}/approvals",
                json={"role": "brand", "decision": "approve", "content_sha256": release})
    assert r.status_code == 403, r.text

    # -- an approver signs off as brand ---------------------------------------------
    sign_out(page)
    sign_in(page, live.base, live.tokens["approver"], job_path)
    page.locator('section.role[data-role="brand"]').wait_for()
    assert page.locator("button.pick, button.annotate, form.annotate, form.more").count() == 0
    assert page.get_by_role("button", name=re.compile("^Pick")).count() == 0
    r = as_page(page, live, f"/v1/jobs/{job_id}/picks", json={"beat": "b01", "candidate": cands["b01"][0]["id"]})
    assert r.status_code == 403, r.text
    brand = page.locator('section.role[data-role="brand"]')
    assert brand.locator(".role-status").inner_text() == "Not signed off on this release yet."
    brand.get_by_label("Note for the brand sign-off").fill("on brand")
    assert axe_violations(page) == []
    shot(page, "22-sign-off")
    brand.get_by_role("button", name="Approve as brand").click()
    wait_state(page, "succeeded")
    link = page.locator("#deliverables a.deliverable").first
    link.wait_for()
    href = link.get_attribute("href")
    assert href and href.startswith(f"/v1/jobs/{job_id}/outputs/")
    got = httpx.get(f"{live.base}{href}", cookies=session_jar(page), timeout=30)
    assert got.status_code == 200 and len(got.content) > 1000
    assert brand.locator(".role-status").inner_text().startswith("Approved by approver-person")
    assert brand.get_by_role("button").count() == 0  # delivered: nothing to sign

    # -- the editor changes a pick: the job renders again and needs re-approval --------
    sign_out(page)
    sign_in(page, live.base, live.tokens["editor"], job_path)
    page.locator("#signoff").wait_for(state="visible")
    wait_state(page, "succeeded", 30)
    b01.locator(".cand").nth(1).locator(".badge-picked").wait_for(state="visible")
    b01.locator('.sheet [tabindex="0"]').focus()
    assert page.evaluate("document.activeElement.dataset.i") == "1"  # the tab stop is the pick
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Enter")
    wait_state(page, "awaiting_approval")
    again = page.locator('section.role[data-role="brand"] .reapproval')
    again.wait_for(state="visible")
    assert again.inner_text().startswith("Re-approval needed")
    assert release[:12] in again.inner_text()
    new_release = live.api("GET", f"/v1/jobs/{job_id}").json()["gate"]["content_sha256"]
    assert new_release != release and page.locator("#release-hash").inner_text() == new_release[:12]
    page.locator('#decisions tr[data-kind="approve"][data-counts="false"]').wait_for()
    assert axe_violations(page) == []
    shot(page, "23-reapproval")
    assert page.errors == []  # type: ignore[attr-defined]

    # -- the records: each decision with its content hash ------------------------------
    log = live.api("GET", f"/v1/jobs/{job_id}/decisions", "viewer").json()["decisions"]
    assert [(d["kind"], d["beat"], d["role"]) for d in log] == [
        ("more", "b02", None), ("pick", "b01", None), ("annotate", "b02", None), ("pick", "b02", None), ("approve", None, "brand"),
        ("pick", "b01", None)]
    assert [d["content_sha256"] for d in log] == [
        hashlib.sha256(b"warmer light, closer").hexdigest(), cands["b01"][1]["sha256"], cands["b02"][1]["sha256"], cands["b02"][0]["sha256"], release,
        cands["b01"][0]["sha256"]]
    assert log[2]["codes"] == ["expression_off", "artefact"] and log[2]["note"] == "smudge at the ear"
    assert log[4]["note"] == "on brand" and log[4]["who"].endswith(":approver-person")
    assert log[4]["counts"] is False and log[5]["counts"] is True
    assert page.locator("#decisions tbody tr").count() == 6

    # -- a viewer: no controls to decide with, and the API refuses ---------------------
    sign_out(page)
    sign_in(page, live.base, live.tokens["viewer"], job_path)
    page.locator("#decisions tbody tr").nth(5).wait_for()
    b01.locator(".cand").first.wait_for()
    assert page.locator("button.pick, button.annotate, form.annotate, form.more, section.role button").count() == 0
    assert page.get_by_role("button", name=re.compile("^(Pick|Annotate|Approve|Reject|Regenerate)")).count() == 0
    assert page.get_by_role("button", name="Compare candidate 1 of beat b01").count() == 1  # reading is theirs
    r = as_page(page, live, f"/v1/jobs/{job_id}/picks", json={"beat": "b01", "candidate": cands["b01"][1]["id"]})
    assert r.status_code == 403, r.text
    r = as_page(page, live, f"/v1/jobs/{job_id}/approvals",
                json={"role": "brand", "decision": "approve", "content_sha256": new_release})
    assert r.status_code == 403, r.text
    assert axe_violations(page) == []
    assert page.errors == []  # type: ignore[attr-defined]


    # -- another project's admin: the job is not there (as an unknown one) ----------------
    sign_out(page)
    other = auth.create(live.engine, project="elsewhere", role="admin", name="other")[1]
    sign_in(page, live.base, other, "/review/jobs")
    for wrong in (job_id, "job_unknown"):
        resp = page.goto(f"{live.base}/review/jobs/{wrong}")
        assert resp is not None and resp.status == 404
        assert page.locator("h1").inner_text() == f"No job {wrong}" and page.locator("#job").count() == 0
