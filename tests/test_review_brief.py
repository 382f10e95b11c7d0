"""The review page's brief form (/review/new) in a real headless Chromium against the real
server, and the API it is built from (GET /v1/catalog, GET /v1/schemas/brief).

What it proves: the form's fields come from the brief's JSON Schema and the catalog (every
schema field but ``schema`` has an input labelled with its title; every channel spec and
style pack is offered with its figures); a brief with a problem is refused with the CLI's
own words beside the input the problem names (aria-invalid, aria-describedby, focus on it);
beats are added and reordered with the keyboard-reachable "Move up"/"Move down" buttons,
and the job made keeps that order and the choices made; a YAML upload's problems are
listed with their line numbers; a viewer gets no form; the page passes axe-core's WCAG 2
A/AA rules with and without errors.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from studio import auth, db, jobs
from studio.api.app import create_app
from studio.brief import brief_json_schema
from studio.settings import Settings
from studio.specs import Catalog

from .browser import axe_violations, shot, sign_in
from .conftest import serve

ROOT = Path(__file__).resolve().parents[1]
DURATION_ZERO = "beats[0].duration: 0: input should be greater than 0 — use a larger number"


class Live:
    def __init__(self, home: Path) -> None:
        self.proc, self.base = serve(home, workers=0, log_level="warning")
        self.engine = db.make_engine(Settings(home=home).db_url)
        db.init_db(self.engine)
        self.tokens = {r: auth.create(self.engine, project="aurora", role=r, name=f"{r}-person")[1]
                       for r in auth.ROLES}

    def close(self) -> None:
        self.engine.dispose()
        self.proc.terminate()
        try:
            self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = Live(tmp_path_factory.mktemp("brief-form") / "home")
    try:
        yield server
    finally:
        server.close()


def cli_words(tmp_path: Path, brief: dict[str, Any]) -> str:
    """What `studio plan` prints for ``brief`` written to a file, without the file's name."""
    path = tmp_path / "brief.yaml"
    path.write_text(yaml.safe_dump(brief, sort_keys=False))
    proc = subprocess.run([sys.executable, "-m", "studio", "plan", str(path)], capture_output=True, text=True,
                          cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    return line.split(f"{path}: ", 1)[1]


def field(page: Any, path: str) -> Any:
    return page.locator(f'[data-path="{path}"]')


def described(page: Any, control: Any) -> Any:
    """The element that first describes ``control`` (its aria-describedby)."""
    return page.locator(f'[id="{control.get_attribute("aria-describedby").split()[0]}"]')


def open_form(page: Any, live: Live) -> None:
    sign_in(page, live.base, live.tokens["editor"], "/review/new")
    page.locator('#brief-form[data-ready="true"]').wait_for(timeout=15000)


def test_the_form_comes_from_the_schema_and_the_catalog(live: Live, page: Any) -> None:
    open_form(page, live)
    schema = brief_json_schema()
    for name, prop in schema["properties"].items():
        if name == "schema":
            assert field(page, name).count() == 0  # the document's kind is not the producer's
            continue
        w = field(page, name)
        assert w.count() == 1, name
        # (text_content: the optional fields are in a closed "More options")
        label = w.locator("legend, label").first.text_content()
        assert label.lower().startswith(prop.get("title", name).lower()), (name, label)
        if prop.get("description"):
            assert prop["description"][1:] in w.text_content(), name
    assert page.get_by_label("Project").input_value() == "aurora"
    assert page.get_by_label("Project").get_attribute("readonly") is not None
    # Inputs by type and limits: an integer with its bounds, an enum as a select.
    candidates = page.get_by_label("Candidates", exact=True)
    assert (candidates.get_attribute("type"), candidates.get_attribute("min"), candidates.get_attribute("max")) == (
        "number", "1", "64")
    assert page.get_by_label("Usage class").locator("option").all_text_contents() == [
        "default (internal)", "experiment", "internal", "public"]
    catalog = Catalog()
    for name, spec in catalog.specs.items():
        figures = described(page, page.locator(f'input[type=checkbox][value="{name}"]')).inner_text()
        assert figures.startswith(f"{spec.kind} · {spec.width}×{spec.height}"), (name, figures)
    assert described(page, page.locator('input[value="youtube-1080p"]')).inner_text() == (
        "video · 1920×1080 (16:9) · 30 fps · up to 12 h · -14 LUFS, -1 dBTP · H264 in MP4 · at most 256 GB · "
        "safe area 5%")
    for name, style in catalog.styles.items():
        about = described(page, page.locator(f'input[type=radio][value="{name}"]'))
        assert about.locator(".swatch").count() == len(style.palette)
        assert about.locator(".swatches").get_attribute("aria-label") == "palette " + ", ".join(style.palette)
    assert page.errors == []  # type: ignore[attr-defined]


def test_write_a_brief_see_its_error_reorder_beats_and_submit(live: Live, page: Any, tmp_path: Path) -> None:
    open_form(page, live)
    page.get_by_label("Campaign").fill("spring-launch")
    page.get_by_label("Purpose").fill("Spring launch teaser for the lighthouse range")
    page.get_by_label("youtube-1080p").check()
    page.get_by_label("golden-hour").check()
    beat1 = field(page, "beats[0]")
    assert beat1.get_by_label("Id").input_value() == "b01"
    beat1.get_by_label("Duration").fill("0")
    beat1.get_by_label("Subject").fill("a lighthouse at dawn")
    page.get_by_role("button", name="Submit brief").click()

    # The problem beside its field, in the CLI's words, and the focus on that input.
    error = field(page, "beats[0].duration").locator(".field-error")
    error.wait_for(timeout=15000)
    expected = cli_words(tmp_path, {"project": "aurora", "campaign": "spring-launch", "purpose": "x",
                                    "channels": ["youtube-1080p"], "style_pack": "golden-hour",
                                    "beats": [{"id": "b01", "duration": 0, "subject": "a"}]})
    assert expected == DURATION_ZERO
    assert error.inner_text() == expected
    duration = beat1.get_by_label("Duration")
    assert duration.get_attribute("aria-invalid") == "true"
    assert duration.get_attribute("aria-describedby").split()[0] == error.get_attribute("id")
    assert duration.evaluate("el => el === document.activeElement")
    # The only invalid input on the page is that one.
    assert page.locator('[aria-invalid="true"]').count() == 1
    assert axe_violations(page) == []
    shot(page, "11-brief-errors")

    # Fixed; a second beat added and moved above the first, with the keyboard.
    duration.fill("2")
    assert error.is_hidden() and duration.get_attribute("aria-invalid") is None  # changed: no longer marked
    page.get_by_role("button", name="Add beat").click()
    beat2 = field(page, "beats[1]")
    assert beat2.get_by_label("Id").input_value() == "b02"
    assert beat2.get_by_label("Id").evaluate("el => el === document.activeElement")  # focus on the new beat
    beat2.get_by_label("Duration").fill("3")
    beat2.get_by_label("Subject").fill("the lamp room, close")
    beat2.get_by_label("Narration").fill("Light that finds you.")
    up = page.get_by_role("button", name="Move up (beat 2)")
    up.focus()
    page.keyboard.press("Enter")
    assert field(page, "beats[0]").get_by_label("Id").input_value() == "b02"
    assert field(page, "beats[1]").get_by_label("Id").input_value() == "b01"
    assert field(page, "beats[0]").locator("legend").first.inner_text() == "Beat 1"
    # At the top its "Move up" is off; the focus went to its "Move down".
    assert page.get_by_role("button", name="Move up (beat 1)").is_disabled()
    assert page.get_by_role("button", name="Move down (beat 1)").evaluate("el => el === document.activeElement")
    page.locator("summary", has_text="More options").click()  # the optional fields, folded away
    page.get_by_label("Usage class").select_option("experiment")
    assert axe_violations(page) == []
    shot(page, "10-brief-form")
    page.get_by_role("button", name="Submit brief").click()
    page.wait_for_url("**/review/jobs/job_*", timeout=15000)
    job_id = page.url.rsplit("/", 1)[1]
    job = jobs.get(live.engine, job_id)
    assert job is not None and job.project == "aurora" and job.campaign == "spring-launch"
    assert [b["id"] for b in job.brief["beats"]] == ["b02", "b01"]
    assert job.brief["beats"][0] == {"id": "b02", "duration": 3, "subject": "the lamp room, close",
                                     "narration": "Light that finds you."}
    assert job.brief["channels"] == ["youtube-1080p"]
    assert job.brief["style_pack"] == "golden-hour"
    assert job.brief["usage_class"] == "experiment"
    # Defaults stay defaults: nothing the producer left alone is written into the brief.
    assert set(job.brief) == {"project", "campaign", "purpose", "channels", "style_pack", "beats", "usage_class"}
    assert page.errors == []  # type: ignore[attr-defined]


def test_no_channel_and_a_problem_with_no_field_of_its_own(live: Live, page: Any) -> None:
    open_form(page, live)
    page.get_by_label("Campaign").fill("no-channel")
    page.get_by_label("Purpose").fill("a spot")
    page.get_by_label("nordic-cool").check()
    beat = field(page, "beats[0]")
    beat.get_by_label("Duration").fill("2")
    beat.get_by_label("Subject").fill("a fjord")
    page.get_by_role("button", name="Add beat").click()
    second = field(page, "beats[1]")
    second.get_by_label("Id").fill("b01")  # the same id twice: a problem of the whole brief
    second.get_by_label("Duration").fill("2")
    second.get_by_label("Subject").fill("a boat")
    page.get_by_role("button", name="Submit brief").click()
    channels = field(page, "channels")
    error = channels.locator(".field-error")
    error.wait_for(timeout=15000)
    assert error.inner_text() == (
        "channels: list should have at least 1 item after validation, not 0 — add at least one entry")
    boxes = channels.locator("input[type=checkbox]")
    assert boxes.count() == len(Catalog().specs)
    for i in range(boxes.count()):
        assert boxes.nth(i).get_attribute("aria-invalid") == "true"
        assert boxes.nth(i).get_attribute("aria-describedby").split()[0] == error.get_attribute("id")
    assert boxes.first.evaluate("el => el === document.activeElement")
    assert axe_violations(page) == []

    # A channel chosen, the duplicate id is the problem left (pydantic checks the whole
    # brief once its fields are valid): no field of its own, so it is listed above the
    # form, which has the focus; the channels' error is gone.
    page.get_by_label("feed-1x1").check()
    page.get_by_role("button", name="Submit brief").click()
    top = page.locator("#brief-problems-list")
    top.get_by_text("appears twice").wait_for(timeout=15000)
    assert top.locator("li").first.inner_text() == (
        "(document): beat id 'b01' appears twice; beat ids must be unique — see `studio schema brief`")
    assert page.locator("#brief-problems").evaluate("el => el === document.activeElement")
    assert error.is_hidden() and boxes.first.get_attribute("aria-invalid") is None
    assert page.locator('[aria-invalid="true"]').count() == 0
    assert axe_violations(page) == []


def test_a_yaml_upload_lists_its_problems_with_their_lines(live: Live, page: Any, tmp_path: Path) -> None:
    path = tmp_path / "spot.yaml"
    path.write_text("project: aurora\ncampaign: upload\npurpose: a spot\nchannels: [youtube-1080p]\n"
                    "style_pack: golden-hour\nbeats:\n  - id: b01\n    duration: 2\n    subject: a\n"
                    "  - id: b02\n    duration: -1\n    subject: b\n")
    open_form(page, live)
    page.get_by_label("Brief file (YAML)").set_input_files(str(path))
    page.get_by_role("button", name="Upload and submit").click()
    problems = page.locator("#upload-problems-list li")
    problems.first.wait_for(timeout=15000)
    assert problems.all_inner_texts() == [
        "line 11: beats[1].duration: -1: input should be greater than 0 — use a larger number"]
    assert page.get_by_label("Brief file (YAML)").get_attribute("aria-invalid") == "true"
    assert axe_violations(page) == []
    path.write_text(path.read_text().replace("duration: -1", "duration: 1"))
    page.get_by_label("Brief file (YAML)").set_input_files(str(path))
    page.get_by_role("button", name="Upload and submit").click()
    page.wait_for_url("**/review/jobs/job_*", timeout=15000)
    job = jobs.get(live.engine, page.url.rsplit("/", 1)[1])
    assert job is not None and job.campaign == "upload" and len(job.brief["beats"]) == 2


@pytest.mark.parametrize("role", ["viewer", "approver"])
def test_who_cannot_submit_sees_no_form(live: Live, page: Any, role: str) -> None:
    sign_in(page, live.base, live.tokens[role], "/review/new")
    assert page.locator("#brief-form").count() == 0
    assert "You cannot submit briefs." in page.locator("#cannot-submit").inner_text()
    assert page.get_by_role("link", name="New brief").count() == 0
    jar = {c["name"]: c["value"] for c in page.context.cookies()}
    assert httpx.get(f"{live.base}/review/new", cookies=jar).status_code == 403
    assert axe_violations(page) == []


# -- the API the form reads --------------------------------------------------------------


def test_catalog_and_brief_schema_routes(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    settings.home.mkdir()
    engine = db.make_engine(settings.db_url)
    db.init_db(engine)
    viewer = auth.create(engine, project="aurora", role="viewer")[1]
    try:
        with TestClient(create_app(settings, engine)) as c:
            assert c.get("/v1/catalog").status_code == 401
            headers = {"Authorization": f"Bearer {viewer}"}
            r = c.get("/v1/schemas/brief", headers=headers)
            assert r.status_code == 200
            printed = subprocess.run([sys.executable, "-m", "studio", "schema", "brief"], capture_output=True,
                                     text=True, check=True, cwd=ROOT)
            assert r.json() == json.loads(printed.stdout)  # as `studio schema brief` prints it
            r = c.get("/v1/catalog", headers=headers)
            assert r.status_code == 200
            body = r.json()
    finally:
        engine.dispose()
    data = ROOT / "studio" / "data"
    specs = {s["name"]: s for s in body["specs"]}
    assert set(specs) == {yaml.safe_load(p.read_text())["name"] for p in (data / "specs").glob("*.yaml")}
    for p in (data / "specs").glob("*.yaml"):
        doc = yaml.safe_load(p.read_text())
        out = specs[doc["name"]]
        assert (out["kind"], out["width"], out["height"], out["title"]) == (
            doc["kind"], doc["width"], doc["height"], doc["title"])
        assert out["max_file_size"] == doc.get("max_file_size")
        assert out["safe_area"] == {k: doc.get("safe_area", {}).get(k, 0.0) for k in ("top", "right", "bottom", "left")}
        if doc["kind"] == "video":
            assert out["fps"] == str(doc.get("fps", "30"))
            assert out["loudness_target"] == doc.get("loudness_target")
            assert out["max_duration"] == doc.get("max_duration")
            assert out["container"] == "mp4"
        else:
            assert out["fps"] is None and out["container"] == {"jpeg": "jpg", "png": "png"}[doc["codec"]]
    youtube = specs["youtube-1080p"]
    assert (youtube["aspect"], youtube["codec"]) == ("16:9", "h264")
    styles = {s["name"]: s for s in body["styles"]}
    for p in (data / "styles").glob("*.yaml"):
        doc = yaml.safe_load(p.read_text())
        out = styles[doc["name"]]
        assert out["palette"] == [c.lower() for c in doc["palette"]]
        assert out["description"] == ", ".join(doc["look_tokens"])
        assert out["lut"] == Path(doc["finishing"]["lut"]).name
        assert out["look"]["contrast"] == doc["finishing"]["look"]["contrast"]
    models = {m["id"]: m for m in body["models"]}
    for p in (data / "models").glob("*.yaml"):
        doc = yaml.safe_load(p.read_text())
        assert models[doc["id"]]["usage_classes"] == doc["usage_classes"], p.name
        assert models[doc["id"]]["kind"] == doc["kind"]
        assert models[doc["id"]]["pinned"] is bool(doc.get("weights_sha256"))
    voices = {v["id"]: v for v in body["voices"]}
    for p in (data / "voices").glob("*.yaml"):
        doc = yaml.safe_load(p.read_text())
        assert voices[doc["id"]]["usage_classes"] == doc["usage_classes"], p.name
        assert voices[doc["id"]]["usage_reason"] == " ".join(doc.get("usage_reason", "").split())
