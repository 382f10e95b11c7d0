"""The watch page and the review media API (studio/review/watch_page.py,
studio/api/media.py), in a real headless Chromium against the real server.

One small job is rendered once for the module (tests/test_gates.py's gated brief with
``selection: auto`` and no sign-off, through the real worker) to two channels: YouTube
1080p (H.264, plays in Chromium as it is) and a test channel in HEVC (a codec Chromium
does not play: no channel spec shipped in studio/data/specs has one, so the test adds it
through STUDIO_SPECS_DIR). Then: the deliverable plays in the page (currentTime advances,
readyState >= 2); the safe-area overlay is drawn over the picture (its outline's pixels in
the screenshot differ from the same pixels with the overlay off); a note at frame N,
reached with the step buttons, is stored with frame N, the video's fps and its sha256; the
details panel shows the loudness and the spec checks; the edit (edit.otio) carries the note
as a marker on the right clip at the right frame and opentimelineio reads it back; the HEVC
deliverable plays through its H.264 proxy (made once, then cached); the page passes
axe-core's WCAG 2 A/AA rules.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from studio import auth, db, jobs
from studio.settings import Settings
from studio.worker import run_worker

from .browser import ARTIFACTS, axe_violations, shot, sign_in
from .conftest import serve
from .test_gates import gated_brief

HEVC_SPEC = """schema: ChannelSpec.1
name: review-hevc-360p
title: HEVC 640x360 30 fps (a codec Chromium does not play)
kind: video
width: 640
height: 360
fps: "30"
codec: hevc
pix_fmt: yuv420p
crf: 28
safe_area: {top: 0.1, right: 0.1, bottom: 0.1, left: 0.1}
loudness_target: -16
true_peak: -1
source: tests/test_review_watch.py
"""


class Rendered:
    def __init__(self, root: Path) -> None:
        specs = root / "specs"
        specs.mkdir(parents=True)
        (specs / "review-hevc-360p.yaml").write_text(HEVC_SPEC)
        home = root / "home"
        home.mkdir()
        self.settings = Settings(home=home, specs_dir=specs, ray_num_cpus=2)
        self.engine = db.make_engine(self.settings.db_url)
        db.init_db(self.engine)
        self.tokens = {r: auth.create(self.engine, project="gates", role=r, name=f"{r}-person")[1] for r in auth.ROLES}
        brief = gated_brief(selection="auto", approvals=[], channels=["youtube-1080p", "review-hevc-360p"])
        job, _ = jobs.submit(self.engine, brief=brief, project="gates", campaign="spring", brief_sha256="watch",
                             request_sha256="watch")
        assert run_worker(self.settings, once=True, lease_seconds=120, poll_seconds=0.2) == [job.id]
        done = jobs.get(self.engine, job.id)
        assert done is not None and done.state == "succeeded", done
        self.job_id = job.id
        self.proc, self.base = serve(home, workers=0, log_level="warning", env={"STUDIO_SPECS_DIR": str(specs)})

    def get(self, path: str, role: str = "viewer", **kw: Any) -> httpx.Response:
        return httpx.get(f"{self.base}{path}", headers={"Authorization": f"Bearer {self.tokens[role]}",
                                                        **kw.pop("headers", {})}, timeout=60, **kw)

    def post(self, path: str, body: Any, role: str = "editor") -> httpx.Response:
        return httpx.post(f"{self.base}{path}", json=body, headers={"Authorization": f"Bearer {self.tokens[role]}"},
                          timeout=60)

    def outputs(self) -> dict[str, dict[str, Any]]:
        found = self.get(f"/v1/jobs/{self.job_id}/outputs").json()["outputs"]
        return {o["spec"]: o for o in found if o["role"] == "deliverable"}

    def close(self) -> None:
        self.engine.dispose()
        self.proc.terminate()
        try:
            self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rendered]:
    r = Rendered(tmp_path_factory.mktemp("watch"))
    try:
        yield r
    finally:
        r.close()


def wait_js(page: Any, expression: str, timeout: float = 30.0) -> None:
    """Poll ``expression`` in the page until it is true (Playwright's wait_for_function
    evaluates a string, which the page's CSP forbids; page.evaluate goes around it)."""
    import time

    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"never true: {expression}"
        time.sleep(0.05)


def _wait_playing(page: Any) -> None:
    """The video has a frame (readyState >= 2) and, played, its currentTime advances."""
    wait_js(page, "document.getElementById('video').readyState >= 2")
    page.get_by_role("button", name="Play").click()
    wait_js(page, "document.getElementById('video').currentTime > 0.3")
    page.get_by_role("button", name="Pause").click()


def test_watch_a_deliverable_overlay_frame_note_details_and_edit(rendered: Rendered, page: Any) -> None:
    job = rendered.job_id
    youtube = rendered.outputs()["youtube-1080p"]
    sign_in(page, rendered.base, rendered.tokens["editor"], f"/review/jobs/{job}/watch")
    assert page.get_by_role("link", name=f"Back to job {job}").get_attribute("href") == f"/review/jobs/{job}"
    page.get_by_role("button", name="youtube-1080p").click()
    _wait_playing(page)
    # The file itself (H.264 in MP4): no proxy needed.
    r = rendered.get(f"/v1/jobs/{job}/outputs/{youtube['id']}/proxy", headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and r.headers["x-studio-proxy"] == "original"
    assert r.headers["etag"] == f'"{youtube["sha256"]}"'

    # Step to frame 0, then 7 frames on with the buttons.
    page.evaluate("document.getElementById('video').currentTime = 0")
    wait_js(page, "document.getElementById('frame').textContent === '0'")
    for _ in range(7):
        page.get_by_role("button", name="Next frame").click()
    wait_js(page, "document.getElementById('frame').textContent === '7'")
    wait_js(page, "!document.getElementById('video').seeking")
    assert abs(page.evaluate("document.getElementById('video').currentTime") - 7.5 / 30) < 1e-3
    page.get_by_role("button", name="Previous frame").click()
    page.get_by_role("button", name="Next frame").click()
    wait_js(page, "document.getElementById('frame').textContent === '7' && "
                           "!document.getElementById('video').seeking")

    # The safe-area overlay: drawn over the picture, where the spec says (5% insets of 16:9).
    overlay = page.locator("#safe")
    assert overlay.is_visible()
    box = overlay.bounding_box()
    stage = page.locator("#stage").bounding_box()
    assert box is not None and stage is not None
    assert abs(box["x"] - (stage["x"] + 0.05 * stage["width"])) < 3
    assert abs(box["width"] - 0.9 * stage["width"]) < 4
    page.locator("#stage").scroll_into_view_if_needed()
    box = overlay.bounding_box()
    assert box is not None
    path = shot(page, "30-watch-overlay", full_page=False)
    page.get_by_label("Safe-area overlay").uncheck()
    assert not overlay.is_visible()
    off = ARTIFACTS / "30-watch-overlay-off.png"
    page.screenshot(path=str(off))
    page.get_by_label("Safe-area overlay").check()
    with Image.open(path) as on_im, Image.open(off) as off_im:
        on_px, off_px = on_im.convert("RGB"), off_im.convert("RGB")
        y = round(box["y"] + 1)  # the outline's top edge (3 px)
        xs = [round(box["x"] + box["width"] * f) for f in (0.3, 0.4, 0.5, 0.6, 0.7)]
        drawn = [on_px.getpixel((x, y)) for x in xs]
        under = [off_px.getpixel((x, y)) for x in xs]
    assert all(p != q for p, q in zip(drawn, under, strict=True)), (drawn, under)
    assert all(r > 200 and g < 80 and b > 200 for r, g, b in drawn), drawn  # the outline's magenta

    # A note at frame 7.
    page.get_by_label("Note at this frame").fill("logo crowds the title-safe edge")
    page.get_by_label("artefact").check()
    page.get_by_role("button", name="Add a note at this frame").click()
    page.locator('#notes li[data-frame="7"]').wait_for(timeout=15000)
    log = rendered.get(f"/v1/jobs/{job}/decisions").json()["decisions"]
    notes = [d for d in log if d["kind"] == "annotate" and d["frame"] is not None]
    assert [(d["frame"], d["fps"], d["codes"], d["content_sha256"]) for d in notes] == [
        (7, "30/1", ["artefact"], youtube["sha256"])]
    listed = rendered.get(f"/v1/jobs/{job}/notes", params={"target": "deliverable:youtube-1080p"}).json()["notes"]
    assert [(n["target"], n["frame"], n["counts"]) for n in listed] == [("deliverable:youtube-1080p", 7, True)]
    # Clicking a note jumps to its frame.
    page.evaluate("document.getElementById('video').currentTime = 1.5")
    wait_js(page, "document.getElementById('frame').textContent === '45'")
    page.locator('#notes li[data-frame="7"] button').click()
    wait_js(page, "document.getElementById('frame').textContent === '7'")

    # The details panel: loudness against the target, and each spec check.
    page.locator("#checks").wait_for(timeout=15000)
    assert "Integrated" in page.locator("#loudness").inner_text()
    assert "target -14" in page.locator("#loudness").inner_text()
    for check in ("picture size", "codec", "frame rate", "duration"):
        assert page.locator(f'#checks tr[data-check="{check}"] [data-field="result"]').inner_text() == "pass", check
    assert page.locator('#checks tr[data-check="loudness"] [data-field="result"]').inner_text().startswith("n/a")
    assert "usage class" in page.locator("#rights").inner_text().lower()
    assert axe_violations(page) == []
    shot(page, "31-watch-details")
    assert page.errors == []  # type: ignore[attr-defined]

    # The edit with the note as a marker on clip b01 at frame 7 (and opentimelineio reads it).
    import opentimelineio as otio

    r = rendered.get(f"/v1/jobs/{job}/edit.otio")
    assert r.status_code == 200
    tl = otio.adapters.read_from_string(r.text, "otio_json")
    clips = {c.name: c for c in tl.video_tracks()[0].find_clips()}
    found = [m for m in clips["b01"].markers if m.metadata["studio"].get("target")]
    assert len(found) == 1 and not [m for m in clips["b02"].markers if m.metadata["studio"].get("target")]
    m = found[0]
    assert m.marked_range.start_time.to_frames() == 7 and m.comment == "logo crowds the title-safe edge"
    meta = m.metadata["studio"]
    assert (meta["frame"], meta["fps"], list(meta["codes"]), meta["content_sha256"]) == (7, "30/1", ["artefact"],
                                                                                 youtube["sha256"])
    assert meta["who"].endswith(":editor-person")


def test_a_codec_the_browser_cannot_play_gets_a_proxy_that_plays(rendered: Rendered, page: Any) -> None:
    job = rendered.job_id
    hevc = rendered.outputs()["review-hevc-360p"]
    r = rendered.get(f"/v1/jobs/{job}/details", params={"deliverable": hevc["id"]})
    assert r.json()["probe"]["video"]["codec"] == "hevc"
    sign_in(page, rendered.base, rendered.tokens["viewer"], f"/review/jobs/{job}/watch?video=deliverable:review-hevc-360p")
    assert page.get_by_role("button", name="review-hevc-360p").get_attribute("aria-pressed") == "true"
    _wait_playing(page)
    assert page.evaluate("document.getElementById('video').videoWidth") == 640
    assert page.evaluate("document.createElement('video').canPlayType('video/mp4; codecs=\"avc1.640028\"')") != ""
    # Made once, by the first request (the page's), then found in the store by the source's hash.
    r = rendered.get(f"/v1/jobs/{job}/outputs/{hevc['id']}/proxy")
    assert r.status_code == 200 and r.headers["x-studio-proxy"] == "cached"
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
                            "stream=codec_name,nb_read_frames,r_frame_rate", "-of", "csv=p=0", "-"],
                           input=r.content, capture_output=True, check=True)
    assert probe.stdout.decode().strip().split(",") == ["h264", "30/1", "60"]  # every frame, same rate
    # A viewer watches but cannot note.
    assert page.get_by_role("button", name="Add a note at this frame").count() == 0
    assert rendered.post(f"/v1/jobs/{job}/notes", {"target": "deliverable:review-hevc-360p", "frame": 1,
                                                   "fps": "30/1", "note": "x"}, role="viewer").status_code == 403
    assert axe_violations(page) == []
    assert page.errors == []  # type: ignore[attr-defined]


def test_notes_are_refused_past_the_last_frame_at_another_rate_or_on_no_video(rendered: Rendered) -> None:
    job = rendered.job_id
    url = f"/v1/jobs/{job}/notes"
    r = rendered.post(url, {"target": "review:animatic", "frame": 60, "fps": "30/1", "note": "late cut"})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "frame"
    assert "frame 60 is past the end of review:animatic (60 frames at 30/1: 0 to 59)" in r.json()["detail"]
    r = rendered.post(url, {"target": "review:animatic", "frame": 3, "fps": "30000/1001", "note": "x"})
    assert r.status_code == 422 and "is not review:animatic's rate (30/1)" in r.json()["detail"]
    r = rendered.post(url, {"target": "deliverable:reels-9x16", "frame": 3, "fps": "30", "note": "x"})
    assert r.status_code == 422 and "has no video deliverable:reels-9x16" in r.json()["detail"]
    r = rendered.post(url, {"target": "review:animatic", "frame": 3, "fps": "30"})
    assert r.status_code == 422 and "needs a reason code or some text" in r.json()["detail"]
    r = rendered.post(url, {"target": "review:animatic", "frame": 59, "fps": "30", "codes": ["good_for_alt"]})
    assert r.status_code == 201 and r.json()["note"]["fps"] == "30/1", r.text
    r = rendered.get(f"/v1/jobs/{job}/details", params={"candidate": "cand_nope"})
    assert r.status_code == 404
    assert rendered.get(f"/v1/jobs/{job}/details").status_code == 422
