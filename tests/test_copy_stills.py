"""The brief's copy on every still (issue 13): checked before anything runs, set on the
conformed picture with the style pack's brand kit, and cached with the still.

A small stills-only brief (the example's copy and hero beat, three still channels, one
candidate) is rendered for real; everything is then measured on the delivered files:
Tesseract reads the headline and the call to action back (tests/ocr.py), the brand's logo
is found by cross-correlation where the placement says, the pixels the copy changed (the
delivered still against the same frame conformed without copy) all lie inside the
channel's safe area, and the file is under the spec's byte limit. A headline too long for
the leaderboard is refused by `studio render` before any work; a changed headline makes
the stills again and nothing else."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image
from sqlmodel import Session, select

from studio import copyfit, db
from studio.brief import Brief, brief_problems
from studio.copyfit import copy_problems, layout_name, still_copies
from studio.progress import QuietReporter
from studio.specs import Catalog

from .conftest import EXAMPLE_BRIEF, ROOT
from .ocr import colour_key, find_logo, ocr, words_in_order

STILLS = ["banner-300x250", "banner-728x90", "social-still-1080"]
CATALOG = Catalog()


class Counts(QuietReporter):
    def __init__(self) -> None:
        super().__init__()
        self.done: dict[str, dict[str, int]] = {}

    def stage_done(self, stage: str, **counts: Any) -> None:
        self.done[stage] = dict(counts)


def _example(**changes: Any) -> dict[str, Any]:
    d = yaml.safe_load(EXAMPLE_BRIEF.read_text())
    d.update(changes)
    return d


def _stills_brief(**copy: str) -> dict[str, Any]:
    d = _example(channels=list(STILLS), candidates=1, campaign="copy-stills")
    d.pop("stills", None)
    d["copy"] = {**d["copy"], **copy}
    return d


def _write(path: Path, d: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(d, sort_keys=False), encoding="utf-8")
    return path


# ---------------------------------------------------------------- before any work (no render)


def test_the_example_brief_has_copy_and_the_golden_hour_pack_a_logo() -> None:
    brief = Brief.model_validate(yaml.safe_load(EXAMPLE_BRIEF.read_text()))
    assert brief.copy_ is not None and brief.copy_.headline == "Cold from sunrise to city lights"
    assert brief.copy_.cta == "Shop Aurora" and brief.copy_.legal == "Keeps drinks cold up to 24 h. Terms apply."
    style = CATALOG.style(brief.style_pack)
    assert style.brand is not None and style.brand.logo is not None
    assert style.brand.logo.rights.licence == "CC0-1.0"
    assert style.brand.logo_file(CATALOG.style_paths[style.name]).is_file()
    specs, errors = brief_problems(brief, CATALOG, EXAMPLE_BRIEF.parent)
    assert errors == []


def test_default_layouts_per_channel_and_role() -> None:
    brief = Brief.model_validate(_example())  # hero b04: "copy space right"
    spec = CATALOG.spec
    assert layout_name(brief, spec("banner-728x90"), "still") == "banner-strip"  # 728/90 >= 4
    # the hero beat keeps its right side free and the frame is not portrait
    assert layout_name(brief, spec("banner-300x250"), "still") == "hero-left-copy-right"
    assert layout_name(brief, spec("youtube-1080p"), "supers") == "lower-third"
    top = Brief.model_validate(_example(hero_beat="b03-city"))  # "copy space top"
    assert layout_name(top, spec("banner-300x250"), "still") == "copy-top"
    named = Brief.model_validate(_example(layouts={"banner-300x250": "end-card-centred"}))
    assert layout_name(named, spec("banner-300x250"), "still") == "end-card-centred"
    card = Brief.model_validate(_example(end_card={"layout": "copy-top"}))
    assert layout_name(card, spec("youtube-1080p"), "end_card") == "copy-top"
    # the copy space follows the beat: the right half of the safe area
    (sc,) = still_copies(brief, spec("banner-300x250"), CATALOG)
    x0, y0, x1, y1 = spec("banner-300x250").safe_rect()
    assert sc.copy_space == ((x0 + x1) // 2, y0, x1, y1)


def _lines(errors: list[Any]) -> list[str]:
    return [e.line() for e in errors]


def test_every_text_each_channel_shows_is_fitted_in_every_locale() -> None:
    long = "Supercalifragilisticexpialidociouslyunbreakablycoldsteelbottles"
    d = _example(locales=["en-GB", "fr-FR"], copy={"headline": {"en-GB": "Cold all day", "fr-FR": long},
                                                   "cta": "Shop"})
    d["beats"][2]["supers"] = {"headline": long}
    d["end_card"] = {"copy": {"headline": long, "cta": "Shop"}}
    brief = Brief.model_validate(d)
    specs = [CATALOG.spec(n) for n in brief.channels]
    lines = _lines(copy_problems(brief, specs, CATALOG, "brief.yaml"))
    # the still copy: only fr-FR overruns, on both banners, named with the locale
    still = [ln for ln in lines if ": copy.headline: " in ln]
    assert {("banner-300x250" in ln, "banner-728x90" in ln) for ln in still} == {(True, False), (False, True)}
    assert all("(locale fr-FR)" in ln and "% too long" in ln for ln in still)
    # a beat's supers on every video channel, in both locales (one text for every locale)
    supers = [ln for ln in lines if "beats[2].supers.headline" in ln]
    assert {c for c in ("youtube-1080p", "reels-9x16", "broadcast-ebu-1080p25") if any(c in ln for ln in supers)} \
        == {"youtube-1080p", "reels-9x16", "broadcast-ebu-1080p25"}
    assert any("(locale en-GB)" in ln for ln in supers) and any("(locale fr-FR)" in ln for ln in supers)
    assert all("layout lower-third" in ln for ln in supers)
    # the end card's own copy, with its layout
    card = [ln for ln in lines if "end_card.copy.headline" in ln]
    assert card and all("layout end-card-centred" in ln for ln in card), lines
    assert all(ln.startswith("brief.yaml: ") and " — shorten the " in ln for ln in lines)
    # the end card without copy of its own shows the brief's: named copy.*
    d2 = _example(copy={"headline": long}, end_card={})
    lines2 = _lines(copy_problems(Brief.model_validate(d2), [CATALOG.spec("youtube-1080p")], CATALOG))
    assert lines2 and all(ln.startswith("copy.headline: ") and "end-card-centred" in ln for ln in lines2), lines2


def test_unknown_layouts_and_layouts_for_other_channels_are_refused() -> None:
    brief = Brief.model_validate(_example(layouts={"feed-1x1": "copy-top", "banner-300x250": "diagonal"},
                                          end_card={"layout": "spiral"}))
    specs = [CATALOG.spec(n) for n in brief.channels]
    lines = _lines(copy_problems(brief, specs, CATALOG))
    assert any(ln.startswith("layouts.feed-1x1: 'feed-1x1' is not one of the brief's channels") for ln in lines)
    assert any(ln.startswith("layouts.banner-300x250: unknown layout 'diagonal' — use one of: banner-strip")
               for ln in lines)
    assert any(ln.startswith("end_card.layout: unknown layout 'spiral'") for ln in lines)
    assert all("`studio layouts`" in ln for ln in lines) and len(lines) == 3


def test_supers_are_fitted_where_the_conform_sets_them_above_burned_in_captions(tmp_path: Path) -> None:
    """On a channel that burns captions in, `studio plan` fits a video's supers (and end
    card copy) in the area the conform sets them in: the safe area above the highest a
    caption can reach, less 1% of the frame. Before, the plan fitted them in the whole safe
    area: a lower third's button ("Shop Aurora") was refused at plan on Reels and feed yet
    fits where the conform puts it (a smaller area has smaller regions and type)."""
    from studio.copyfit import CAPTION_GAP, captions_reach, video_copy_area
    from timelines import captions as tc
    from timelines.captions import Cue, render_overlays

    # The caption geometry copyfit assumes is the captions stage's own ...
    assert (copyfit.CAPTION_FONTS, copyfit.CAPTION_MIN_PX, copyfit.CAPTION_STROKE, copyfit.CAPTION_PAD_Y,
            copyfit.CAPTION_LINE_PITCH) == (tc.FONT_CANDIDATES, tc.MIN_FONT_PX, tc.STROKE, tc.PAD_Y, tc.LINE_PITCH)
    # ... and a caption as tall as the channel allows (its lines, accents and descenders)
    # reaches no higher than captions_reach, which is within 1% of the frame of it.
    for name in ("reels-9x16", "feed-1x1"):
        spec = CATALOG.spec(name)
        lines = tuple(["ÉÇÀ Égypte jpqy"] * spec.captions.max_lines)
        (cap,) = render_overlays([Cue(1, 0.0, 2.0, lines, "b01")], spec, tmp_path / name)
        reach = captions_reach(spec)
        assert 0 <= cap.box[1] - reach <= 0.01 * spec.height, (name, cap.box, reach)
        x0, y0, x1, y1 = spec.safe_rect()
        assert video_copy_area(spec, reach) == (x0, y0, x1, reach - math.ceil(CAPTION_GAP * spec.height))
        assert video_copy_area(spec, None) == spec.safe_rect()

    d = _example(channels=["reels-9x16", "feed-1x1", "youtube-1080p"], hero_beat=None)
    d["beats"][0]["supers"] = {"headline": "Cold from sunrise", "cta": "Shop Aurora"}
    specs = [CATALOG.spec(n) for n in d["channels"]]
    assert copy_problems(Brief.model_validate(d), specs, CATALOG) == []
    # Without captions burned in (captions off, or no narration to caption) the whole safe
    # area is the conform's too, and there the button does not fit: refused on both.
    for change in ({"captions": False}, {"beats": [dict(b, narration="") for b in d["beats"]]}):
        lines = _lines(copy_problems(Brief.model_validate({**d, **change}), specs, CATALOG))
        assert [ln.split(" in channel ")[1].split()[0] for ln in lines] == ["reels-9x16", "feed-1x1"], lines
        assert all(ln.startswith("beats[0].supers.cta: does not fit layout lower-third") for ln in lines)


def test_a_pack_without_brand_gets_the_default_kit(tmp_path: Path) -> None:
    """golden-hour without its brand: the copy is still fitted (DejaVu, no logo)."""
    styles = tmp_path / "styles"
    styles.mkdir()
    pack = yaml.safe_load((ROOT / "studio" / "data" / "styles" / "golden-hour.yaml").read_text())
    pack.pop("brand")
    pack["finishing"].pop("lut")
    (styles / "golden-hour.yaml").write_text(yaml.safe_dump(pack))
    catalog = Catalog(styles_dir=styles)
    brief = Brief.model_validate(_stills_brief())
    copies = still_copies(brief, catalog.spec("banner-300x250"), catalog)
    assert copies[0].brand.logo is None and copies[0].brand.font.path.endswith("DejaVuSans-Bold.ttf")
    assert copies[0].recipe()["logo_sha256"] is None
    assert copy_problems(brief, [catalog.spec(n) for n in STILLS], catalog) == []


def test_a_brand_logo_that_is_missing_is_the_style_packs_error(tmp_path: Path) -> None:
    """golden-hour copied elsewhere without its brand folder: one line, naming the pack's
    file and brand.logo.path, however many channels set the copy."""
    styles = tmp_path / "styles"
    styles.mkdir()
    pack = (ROOT / "studio" / "data" / "styles" / "golden-hour.yaml").read_text()
    (styles / "golden-hour.yaml").write_text(pack.replace("lut: ../luts/", f"lut: {ROOT}/studio/data/luts/"))
    catalog = Catalog(styles_dir=styles)
    brief = Brief.model_validate(_stills_brief())
    lines = _lines(copy_problems(brief, [catalog.spec(n) for n in STILLS], catalog, "brief.yaml"))
    assert lines == [f"{styles / 'golden-hour.yaml'}: brand.logo.path: logo file "
                     f"'{styles / 'brand' / 'aurora-logo.png'}' not found — check the path (relative to the style "
                     "pack file)"], lines


def test_cli_refuses_a_headline_too_long_for_the_leaderboard_before_any_work(tmp_path: Path) -> None:
    word = "Supercalifragilisticexpialidociouslyunbreakablycoldsteelbottles"
    brief = _write(tmp_path / "brief.yaml", _stills_brief(headline=word))
    home, out = tmp_path / "home", tmp_path / "out"
    env = {**os.environ, "STUDIO_HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0"}
    r = subprocess.run([sys.executable, "-m", "studio", "render", str(brief), "--out", str(out)], capture_output=True,
                       text=True, env=env, cwd=ROOT, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == [ln for ln in lines if ln.startswith("studio: error: ")] and "Traceback" not in r.stderr
    line = next(ln for ln in lines if "banner-728x90" in ln)
    m = re.fullmatch(rf"studio: error: {re.escape(str(brief))}: copy\.headline: does not fit layout banner-strip in "
                     r"channel banner-728x90 even at the type scale's smallest size: needs (\d+) px, the region has "
                     r"(\d+) px: (\d+)% too long \(across: the word '(\w+)' at \d+ px is wider than the region and "
                     r"is never broken\) — shorten the headline for banner-728x90 or pick another layout", line)
    assert m, line
    need, have, pct = (int(g) for g in m.groups()[:3])
    assert need > have and pct == math.ceil((need / have - 1) * 100) and m.group(4) == word
    # nothing ran: no output, no run recorded, no store object
    assert not out.exists()
    store = home / "store"
    assert not store.exists() or not any(p.is_file() for p in store.rglob("*"))
    if (home / "studio.db").exists():
        with Session(db.make_engine(f"sqlite:///{home / 'studio.db'}")) as s:
            assert s.exec(select(db.Run)).all() == []


# ---------------------------------------------------------------- a real render, measured


@pytest.fixture(scope="module")
def copy_run(settings, ray_session, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from studio.pipeline import render

    tmp = tmp_path_factory.mktemp("copy-stills")
    counts = Counts()
    out = tmp / "out"
    ctx = render(_write(tmp / "brief.yaml", _stills_brief()), out, settings=settings, reporter=counts)
    manifest = json.loads((out / "manifest.json").read_text())
    with Session(db.make_engine(settings.db_url)) as s:
        rows = s.exec(select(db.Deliverable).where(db.Deliverable.run_id == ctx.run_id)).all()
        params = {r.spec: dict(r.params) for r in rows}
    return {"ctx": ctx, "out": out, "tmp": tmp, "manifest": manifest, "params": params, "counts": counts.done}


def _delivered(run: dict[str, Any], spec: str) -> tuple[Path, dict[str, Any]]:
    (d,) = [d for d in run["manifest"]["deliverables"] if d["spec"] == spec]
    return run["out"] / d["path"], d


def _plain(run: dict[str, Any], spec_name: str, out: Path) -> Image.Image:
    """The same frame conformed for ``spec_name`` without copy (the stills timeline's clip)."""
    from studio.media import url_to_path
    from timelines.conform import conform_still
    from timelines.deliver import still_frames

    ctx = run["ctx"]
    spec = ctx.catalog.spec(spec_name)
    tl = next(t for t in run["manifest"]["timelines"] if t["kind"] == "stills" and t["format"] == "otio_json")
    clip = still_frames(run["out"] / tl["path"], [spec])[spec_name]
    meta = clip.metadata["studio"]
    conform_still(url_to_path(clip.media_reference.target_url), tuple(meta["focus"]), spec, out,
                  sharpen=ctx.style.finishing.sharpen, subject_scale=meta.get("subject_scale"))
    with Image.open(out) as im:
        return im.convert("RGB")


@pytest.mark.parametrize("spec_name", STILLS)
def test_copy_reads_back_logo_is_placed_and_nothing_leaves_the_safe_area(copy_run: dict[str, Any],
                                                                         spec_name: str) -> None:
    path, entry = _delivered(copy_run, spec_name)
    spec = CATALOG.spec(spec_name)
    with Image.open(path) as im:
        picture = im.convert("RGB")
    assert picture.size == (spec.width, spec.height)
    assert entry["size"] == path.stat().st_size <= spec.max_file_size

    placed = copy_run["params"][spec_name]["copy"]
    assert placed["locale"] == "en-GB" and placed["placement"]["channel"] == spec_name
    brief = yaml.safe_load(EXAMPLE_BRIEF.read_text())
    # OCR: the headline and the call to action, from the whole picture, else from the
    # picture keyed to the text's colour, else from the part of the picture the placement
    # put it in (its button for the call to action): where Tesseract's page segmentation
    # drowns in the picture, or the navy text's colour is the sky's too. What is read is
    # the delivered file's pixels either way.
    whole = ocr(picture)
    for role in ("headline", "cta"):
        words = brief["copy"][role]
        placed_text = next(t for t in placed["placement"]["texts"] if t["role"] == role)
        read = whole
        if not words_in_order(words, read):
            read += "\n" + ocr(colour_key(picture, placed_text["colour"]))
        if not words_in_order(words, read):
            bx0, by0, bx1, by1 = (placed_text.get("button") or placed_text)["box"]
            read += "\n" + ocr(picture.crop((max(0, bx0 - 4), max(0, by0 - 4), bx1 + 4, by1 + 4)))
        assert words_in_order(words, read), (spec_name, role, read)

    # the logo, at the placed size, found where the placement says
    x0, y0, x1, y1 = placed["placement"]["logo"]["box"]
    style_file = CATALOG.style_paths["golden-hour"]
    with Image.open(CATALOG.style("golden-hour").brand.logo_file(style_file)) as im:
        logo = im.convert("RGB").resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS)
    fx, fy, score = find_logo(picture, logo)
    assert score > 0.9 and abs(fx - x0) <= 2 and abs(fy - y0) <= 2, (spec_name, (fx, fy, score), (x0, y0))

    # what the copy changed lies inside the safe area: the delivered still against the
    # same frame conformed without copy, compared in luma, which JPEG keeps at full
    # resolution (its chroma is shared by 2x2 pixels, so a sand button's right edge on
    # the safe area's last column tints the column beside it: up to 50 levels measured
    # there, by design). A few levels of difference are the encoder's (at most 8
    # measured outside); text, button, scrim and logo change luma by far more.
    plain = _plain(copy_run, spec_name, copy_run["tmp"] / f"plain-{spec_name}.jpg")
    diff = np.abs(np.asarray(picture.convert("L"), dtype=np.int16) - np.asarray(plain.convert("L"), dtype=np.int16))
    sx0, sy0, sx1, sy1 = spec.safe_rect()
    outside = diff.copy()
    outside[sy0:sy1, sx0:sx1] = 0
    inside = diff[sy0:sy1, sx0:sx1]
    assert (inside > 60).sum() > 0.01 * inside.size, spec_name  # the copy is there
    assert outside.max() <= 20, (spec_name, int(outside.max()), np.argwhere(outside > 20)[:5].tolist())


def test_a_changed_headline_makes_only_the_stills_again(copy_run: dict[str, Any], settings) -> None:
    from studio.pipeline import render

    first = copy_run["counts"]
    assert first["conform"] == {"reused": 0, "made": len(STILLS)}
    counts = Counts()
    tmp = copy_run["tmp"]
    ctx = render(_write(tmp / "brief2.yaml", _stills_brief(headline="Cold from dawn to dusk")), tmp / "out2",
                 settings=settings, reporter=counts)
    assert counts.done["candidates"] == {"reused": first["candidates"]["made"], "made": 0}
    assert counts.done["conform"] == {"reused": 0, "made": len(STILLS)}
    # the stills show the new headline; their frames are the same keyframes
    m = json.loads((tmp / "out2" / "manifest.json").read_text())
    assert [b["selected_keyframe_sha256"] for b in m["beats"]] == \
        [b["selected_keyframe_sha256"] for b in copy_run["manifest"]["beats"]]
    with Session(db.make_engine(settings.db_url)) as s:
        rows = s.exec(select(db.Deliverable).where(db.Deliverable.run_id == ctx.run_id)).all()
    assert {r.params["copy"]["placement"]["texts"][0]["text"] for r in rows} == {"Cold from dawn to dusk"}
    # the first brief again: every still from the cache, no picture encoded
    again = Counts()
    render(_write(tmp / "brief.yaml", _stills_brief()), tmp / "out3", settings=settings, reporter=again)
    assert again.done["conform"] == {"reused": len(STILLS), "made": 0}


def test_one_still_per_locale_with_the_locale_in_its_name(copy_run: dict[str, Any], settings) -> None:
    """locales [en-GB, fr-FR]: each still channel delivers one file per locale, each with
    its locale's copy (read back in French from the French file)."""
    from studio.pipeline import render

    tmp = copy_run["tmp"]
    d = _stills_brief()
    d.update(locales=["en-GB", "fr-FR"])  # the same channels: the same keyframe size, so the same frames
    d["copy"] = {**d["copy"], "headline": {"en-GB": "Cold from sunrise to city lights",
                                           "fr-FR": "Du froid de l'aube aux lumières"},
                 "cta": {"en-GB": "Shop Aurora", "fr-FR": "Découvrir"}}
    counts = Counts()
    ctx = render(_write(tmp / "brief-locales.yaml", d), tmp / "out-locales", settings=settings, reporter=counts)
    # en-GB's stills are the first run's (the same frame, texts, layout and brand)
    assert counts.done["conform"] == {"reused": len(STILLS), "made": len(STILLS)}
    m = json.loads((tmp / "out-locales" / "manifest.json").read_text())
    names = sorted(Path(x["path"]).name for x in m["deliverables"])
    assert [re.sub(r"_v\d{3}\.(jpg|png)$", "", n) for n in names] == \
        sorted(f"aurora_copy-stills_{c}_{loc}" for c in STILLS for loc in ("en-GB", "fr-FR")), names
    with Session(db.make_engine(settings.db_url)) as s:
        rows = s.exec(select(db.Deliverable).where(db.Deliverable.run_id == ctx.run_id,
                                                   db.Deliverable.spec == "banner-300x250")).all()
    by_locale = {r.params["copy"]["locale"]: r for r in rows}
    assert sorted(by_locale) == ["en-GB", "fr-FR"] and re.search(r"_fr-FR_v\d{3}\.jpg$", by_locale["fr-FR"].path)
    with Image.open(by_locale["fr-FR"].path) as im:
        french = im.convert("RGB")
    cta = next(t for t in by_locale["fr-FR"].params["copy"]["placement"]["texts"] if t["role"] == "cta")
    bx0, by0, bx1, by1 = cta["button"]["box"]
    read = ocr(french, lang="fra") + "\n" + ocr(french.crop((bx0 - 4, by0 - 4, bx1 + 4, by1 + 4)), lang="fra")
    assert words_in_order("Du froid de l'aube aux lumières", read), read
    assert words_in_order("Découvrir", read), read


def test_plan_and_the_api_refuse_it_with_the_clis_lines(tmp_path: Path) -> None:
    """`studio plan` and POST /v1/jobs run the same copy checks: the API's problems are the
    CLI's lines (less the file name), each pointing at the brief's line for the field."""
    from click.testing import CliRunner
    from fastapi.testclient import TestClient

    from studio import auth
    from studio.api.app import create_app
    from studio.cli import main
    from studio.settings import Settings

    word = "Supercalifragilisticexpialidociouslyunbreakablycoldsteelbottles"
    d = _stills_brief(headline=word)
    d["layouts"] = {"youtube-1080p": "lower-third"}  # not a channel of this brief
    text = yaml.safe_dump(d, sort_keys=False)
    brief = tmp_path / "bad.yaml"
    brief.write_text(text)
    settings = Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'studio.db'}")
    cli = CliRunner().invoke(main, ["plan", str(brief)],
                             env={"STUDIO_HOME": str(settings.home), "STUDIO_DATABASE_URL": settings.db_url})
    assert cli.exit_code == 2, cli.output
    cli_lines = [ln for ln in cli.stderr.splitlines() if ln.startswith("studio: error: ")]
    assert len(cli_lines) == 1 + len(STILLS), cli.stderr  # the layouts key, then each channel's overrun
    assert cli_lines[0] == (f"studio: error: {brief}: layouts.youtube-1080p: 'youtube-1080p' is not one of the "
                            f"brief's channels ({', '.join(STILLS)}) — add it to channels or remove it from "
                            "layouts (`studio layouts` lists them)")
    assert all(f"copy.headline: does not fit layout {layout_name(Brief.model_validate(d), CATALOG.spec(c), 'still')} "
               f"in channel {c} " in ln for c, ln in zip(STILLS, cli_lines[1:], strict=True))

    settings.home.mkdir(parents=True)
    engine = db.make_engine(settings.db_url)
    db.init_db(engine)
    secret = auth.create(engine, project="aurora", role="editor", name="test")[1]
    with TestClient(create_app(settings, engine), headers={"Authorization": f"Bearer {secret}"}) as client:
        r = client.post("/v1/jobs", content=text, headers={"content-type": "application/yaml"})
        assert r.status_code == 422, r.text
        problems = r.json()["problems"]
        assert [f"studio: error: {brief}: {p['text']}" for p in problems] == cli_lines
        lines = text.splitlines()
        headline = next(p for p in problems if p["field"] == "copy.headline")
        assert lines[headline["line"] - 1].strip() == f"headline: {word}"
        assert client.get("/v1/jobs").json()["jobs"] == []
    engine.dispose()
