"""Supers and the end card on a video deliverable (issue 13), measured from the delivered
file: a real render of a short spot, frames decoded by ffmpeg, copy read back by
Tesseract, the logo found by cross-correlation, fades and the safe area checked against
the same deliverable rendered without graphics, and the one-encode-pass record."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image
from sqlmodel import Session, select

from studio import db
from studio import layout as L
from studio.brief import Brief
from studio.errors import ManyErrors, StageError
from studio.specs import Catalog
from tests.ocr import colour_key, find_logo, make_logo_png, ocr, words_in_order

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "briefs" / "launch.yaml"
SHIPPED = Path(__file__).resolve().parent.parent / "studio" / "data"
SPEC = "youtube-1080p"
W, H, FPS = 1920, 1080, 30
BEAT = 1.6  # s; three beats: 4.8 s, 144 frames at 30p
CARD = 1.2  # s of end card: from 3.6 s (frame 108)
SUPER1 = {"headline": "Cold at sunrise"}  # 3 words: 1.5 s to read, in its 1.6 s beat
# 4 words, 1.83 s to read: more than its 1.6 s beat, so held on into beat 3 (to 3.43 s),
# still before the end card at 3.6 s.
SUPER2 = {"headline": "Trail ready", "legal": "Terms apply."}
CARD_COPY = {"headline": "Aurora keeps it cold", "cta": "Shop now"}


def _example() -> dict[str, Any]:
    """The example brief without its own supers and end card: each test sets its own."""
    d = yaml.safe_load(EXAMPLE.read_text())
    d.pop("end_card", None)
    d["beats"] = [{k: v for k, v in b.items() if k != "supers"} for b in d["beats"]]
    return d




def _brief(path: Path, graphics: bool = True, super2: dict[str, str] | None = None) -> Path:
    d = _example()
    words = {"b01-sunrise": "Sunrise.", "b02-trail": "Trail.", "b03-city": "City."}
    d["beats"] = [dict(b, duration=BEAT, narration=words[b["id"]]) for b in d["beats"] if b["id"] in words]
    d.update(candidates=1, channels=[SPEC], hero_beat="b03-city", handles=0, style_pack="supers-test",
             captions=False)
    d.pop("copy", None)
    if graphics:
        d["beats"][0]["supers"] = SUPER1
        d["beats"][1]["supers"] = super2 or SUPER2
        d["end_card"] = {"duration": CARD, "copy": CARD_COPY}
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from studio.settings import Settings

    root = tmp_path_factory.mktemp("supers")
    styles = root / "styles"
    styles.mkdir()
    style = yaml.safe_load((SHIPPED / "styles" / "golden-hour.yaml").read_text())
    style["name"] = "supers-test"
    style["finishing"]["lut"] = str((SHIPPED / "luts" / "golden-hour.cube").resolve())
    style["brand"] = {"schema": "BrandKit.1",
                      "logo": {"path": str(make_logo_png(root / "logo.png")),
                               "rights": {"owner": "Studio tests", "licence": "CC0-1.0", "source": "tests"}},
                      "colours": {"primary": "#1d2a44", "text": "#ffffff", "cta_background": "#f6d186",
                                  "cta_foreground": "#1d2a44"}}
    (styles / "supers-test.yaml").write_text(yaml.safe_dump(style))
    settings = Settings(home=root / "home", ray_num_cpus=2, styles_dir=styles)
    return {"root": root, "settings": settings}


def _frame(video: Path, n: int) -> Image.Image:
    res = subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-vf", f"select=eq(n\\,{n})", "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True)
    return Image.fromarray(np.frombuffer(res.stdout[: W * H * 3], np.uint8).reshape(H, W, 3))


def _frames_count(video: Path) -> int:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                          "stream=nb_read_frames", "-of", "csv=p=0", str(video)], capture_output=True, text=True,
                         check=True).stdout
    return int(out.strip())


def _deliverable(settings: Any, run_id: str) -> db.Deliverable:
    with Session(db.make_engine(settings.db_url)) as s:
        rows = s.exec(select(db.Deliverable).where(db.Deliverable.run_id == run_id)).all()
    assert len(rows) == 1 and rows[0].spec == SPEC
    return rows[0]


def _text(words: dict[str, str]) -> str:
    return " ".join(words.values())


def test_supers_and_end_card_in_the_one_encode(setup: dict[str, Any], ray_session) -> None:
    from studio.pipeline import plan, render

    root, settings = setup["root"], setup["settings"]
    brief = _brief(root / "brief.yaml")
    ctx = render(brief, root / "out", settings=settings)
    # `studio plan` computes the deliverable's key with the graphics as the conform did.
    p = plan(brief, settings=settings, out_dir=root / "out")
    assert not p.running() and p.up_to_date and p.up_to_date["run_id"] == ctx.run_id
    row = _deliverable(settings, ctx.run_id)
    video = Path(row.path)
    assert video.is_file(), video
    graphics = row.params["graphics"]["overlays"]
    assert [(g["kind"], g["beat"]) for g in graphics] == [("super", "b01-sunrise"), ("super", "b02-trail"),
                                                          ("end_card", None)]
    s1, s2, card = graphics
    # Timing on the edit: from each beat's start; super 2 held its reading time into beat 3.
    assert (s1["start"], s1["end"]) == (0.0, pytest.approx(BEAT))
    assert s2["start"] == pytest.approx(BEAT) and s2["end"] == pytest.approx(BEAT + 4 / 3 + 0.5, abs=1 / FPS)
    assert card["start"] == pytest.approx(3 * BEAT - CARD) and card["end"] == pytest.approx(3 * BEAT)

    # Exactly the spec's frames, and one encode: every segment encoded by one ffmpeg
    # command that also burns the graphics in; the deliverable joined by stream copy.
    assert _frames_count(video) == round(3 * BEAT * FPS) == row.params["frames"]
    segs = row.params["segments"]
    assert all(s["encoded"] for s in segs)
    encodes = [s["command"] for s in segs]
    assert all(sum(a in ("libx264", "libx265") for a in c) == 1 for c in encodes)
    pngs = {g["png"] for g in graphics}
    assert pngs == {Path(a).name for c in encodes for a in c if a.endswith(".png")}
    assert "copy" in row.params["command"] and "libx264" not in row.params["command"]

    # OCR of the delivered frames: the whole frame, and each text colour alone (white text
    # over a busy city, fading out, is lost in the picture's own edges; the button's navy
    # text on sand is lost to Otsu's threshold of a frame that is mostly navy).
    def reads(n: int, words: str) -> bool:
        frame = _frame(video, n)
        keyed = [ocr(colour_key(frame, c, 90)) for c in ("#ffffff", "#1d2a44")]
        return words_in_order(words, "\n".join([ocr(frame), *keyed]))

    assert reads(30, SUPER1["headline"])
    assert not reads(30, SUPER2["headline"])  # before super 2 appears
    assert reads(66, SUPER2["headline"]) and reads(66, SUPER2["legal"])
    assert reads(97, SUPER2["headline"])  # beat 3 (from frame 96): the super held for its reading time
    assert not reads(106, SUPER2["headline"])  # gone before the end card
    last = _frame(video, 140)
    assert reads(140, CARD_COPY["headline"]) and reads(140, CARD_COPY["cta"])
    # The logo where the layout put it, found in the decoded frame.
    box = card["placement"]["logo"]["box"]
    with Image.open(root / "logo.png") as im:
        logo = im.convert("RGB").resize((box[2] - box[0], box[3] - box[1]), Image.Resampling.LANCZOS)
    x, y, score = find_logo(last, logo)
    assert score > 0.9 and abs(x - box[0]) <= 2 and abs(y - box[1]) <= 2, (x, y, score, box)

    # The same spot without graphics: everything reused up to the conform.
    plain = render(_brief(root / "plain.yaml", graphics=False), root / "out-plain", settings=settings)
    prow = _deliverable(settings, plain.run_id)
    pvideo = Path(prow.path)
    assert "graphics" not in prow.params and _frames_count(pvideo) == _frames_count(video)

    # Nothing drawn outside the safe area, from the decoded pixels: against the same frame
    # without graphics, the frames with a super differ outside the safe area no more than
    # encoder noise, measured on a frame that shows nothing (3.5 s: after super 2, before the
    # end card, which fills the frame by design). Text or a scrim outside would differ by
    # 100 levels or more.
    spec = Catalog().spec(SPEC)
    x0, y0, x1, y1 = spec.safe_rect()

    def outside(n: int) -> tuple[float, float]:
        d = np.abs(np.asarray(_frame(video, n), np.int16) - np.asarray(_frame(pvideo, n), np.int16)).max(axis=2)
        inside = float(d[y0:y1, x0:x1].max())
        d[y0:y1, x0:x1] = 0
        return inside, float(d.max())

    noise_in, noise = outside(105)
    assert noise_in < 60  # nothing shown at 3.5 s
    worst = 0.0
    for n in (10, 30, 66, 97):
        inside, out = outside(n)
        assert inside > 100, n  # the super is there
        worst = max(worst, out)
    assert worst < max(noise, 12) + 30, (worst, noise)

    # Alpha ramp: super 2 fades in from 1.6 s over 0.25 s; frame 52 (1.733 s) is mid-fade.
    bx0, by0, bx1, by1 = s2["box"]
    mid = np.asarray(_frame(video, 52), np.float64)[by0:by1, bx0:bx1]
    none = np.asarray(_frame(pvideo, 52), np.float64)[by0:by1, bx0:bx1]
    # The super's layer drawn again from its recorded placement: the same bytes as the
    # overlay the conform burned in (its sha256 is the PNG's name and the segment key's).
    layer = L.render(L.Placement.from_dict(s2["placement"]))
    bbox = layer.getchannel("A").getbbox()
    assert bbox is not None and (s2["x"], s2["y"]) == (bbox[0] // 2 * 2, bbox[1] // 2 * 2)
    layer = layer.crop((s2["x"], s2["y"], bbox[2], bbox[3]))
    buf = io.BytesIO()
    layer.save(buf, format="PNG", compress_level=6)
    assert hashlib.sha256(buf.getvalue()).hexdigest() == s2["sha256"] == s2["png"].removesuffix(".png")
    full_frame = Image.fromarray(np.asarray(_frame(pvideo, 52))).convert("RGBA")
    full_frame.alpha_composite(layer, dest=(s2["x"], s2["y"]))
    full = np.asarray(full_frame.convert("RGB"), np.float64)[by0:by1, bx0:bx1]
    d_none, d_full = np.abs(mid - none).mean(), np.abs(mid - full).mean()
    span = np.abs(full - none).mean()
    assert d_none > 0.2 * span and d_full > 0.2 * span, (d_none, d_full, span)
    setup["measured"] = {"outside_safe_max_diff": worst, "noise_max_diff": noise,
                         "fade_mid": (d_none / span, d_full / span)}
    print(json.dumps(setup["measured"]))

    # A changed super re-encodes only the segments it shows in (beat 2's, and beat 3's
    # where it is held): beat 1's segment is reused.
    changed_brief = _brief(root / "changed.yaml", super2={"headline": "Trail set", "legal": "Terms apply."})
    assert {(s.stage, s.item) for s in plan(changed_brief, settings=settings).running()} == {("conform", SPEC)}
    again = render(changed_brief, root / "out-changed", settings=settings)
    crow = _deliverable(settings, again.run_id)
    assert [s["encoded"] for s in crow.params["segments"]] == [False, True, True]
    changed = Path(crow.path)
    frame = _frame(changed, 66)
    assert words_in_order("Trail set", ocr(frame) + "\n" + ocr(colour_key(frame, "#ffffff", 90)))


def test_a_super_too_long_to_read_is_refused_with_its_field_and_a_fix() -> None:
    from studio.pipeline import check_brief
    from timelines.graphics import reading_seconds, supers_problems

    d = _example()
    d["beats"] = [dict(b, duration=1.5) for b in d["beats"][:2]]
    d.update(hero_beat=None, channels=[SPEC])
    d["beats"][1]["supers"] = {"headline": "Up the trail the sun climbs with you all day long"}
    brief = Brief.model_validate(d)
    catalog = Catalog()
    (e,) = supers_problems(brief, [catalog.spec(SPEC)])
    assert e.field == "beats[1].supers" and e.shot == "b02-trail"
    assert reading_seconds(brief.beats[1].supers.for_locale("en-GB")) == pytest.approx(11 / 3 + 0.5)
    assert "needs 4.2 s to read but has 1.5 s between its beat's start at 1.5 s and the spot's end at 3.0 s" in e.what
    assert e.fix.startswith("shorten the supers to about 3 words, lengthen the beat")
    with pytest.raises(ManyErrors) as err:
        check_brief(brief, catalog, EXAMPLE.parent)
    assert any(x.field == "beats[1].supers" for x in err.value.errors)
    # No room for even two words: the fix says what makes room, not "about 1 words".
    d["beats"][1]["duration"] = 0.6
    (e,) = supers_problems(Brief.model_validate(d), [catalog.spec(SPEC)])
    assert e.fix == ("lengthen the beat, or move the copy to another beat (the spot's end leaves no time to "
                     "read it)")


# ---------------------------------------------------------------- motion in the conform


def _grey_master(path: Path, level: int, seconds: float) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"color=c=0x{level:02x}{level:02x}{level:02x}:size=320x180:rate=30:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-crf", "0", "-pix_fmt", "yuv420p", str(path)],
                   check=True)
    return path


def _luma(video: Path, box: tuple[int, int, int, int]) -> np.ndarray:
    """Mean luma (8-bit, limited range as coded) of ``box`` in every frame."""
    x0, y0, x1, y1 = box
    res = subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-vf", f"crop={x1 - x0}:{y1 - y0}:{x0}:{y0}",
                          "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True, check=True)
    frames = np.frombuffer(res.stdout, np.uint8).reshape(-1, y1 - y0, x1 - x0)
    return frames.reshape(len(frames), -1).mean(axis=1)


@pytest.mark.parametrize("segmented", [False, True], ids=["one-graph", "segments"])
def test_fades_keep_their_timing_across_a_cut(tmp_path: Path, segmented: bool) -> None:
    """A white overlay fading in over 0.3 s from 0.9 s (across the cut at 1.0 s, where the
    segmented conform starts a new segment) and out over 0.3 s to 1.7 s, measured as
    opacity in each decoded frame of a flat grey picture: the ramp is the same in the
    single-graph and the segmented conform, frame by frame."""
    from types import SimpleNamespace

    from studio.store import Store
    from timelines.conform import ConformClip, VideoJob, conform_videos

    masters = [_grey_master(tmp_path / f"m{i}.mp4", 60, 1.0) for i in range(2)]
    clips = [ConformClip(m, 0, 30, Fraction(30), 320, 180, (0.5, 0.5), f"c{i}") for i, m in enumerate(masters)]
    spec = Catalog().spec(SPEC).model_copy(update={"name": "motion", "width": 320, "height": 180})
    png = tmp_path / "white.png"
    Image.new("RGBA", (64, 32), (255, 255, 255, 255)).save(png)
    ov = SimpleNamespace(path=png, x=128, y=74, start=0.9, end=1.7, fade_in=0.3, fade_out=0.3, motion="fade")
    out = tmp_path / "out.mp4"
    (rec,) = conform_videos(clips, [VideoJob(spec, out, overlays=[ov])], preset="veryfast",
                            store=Store(tmp_path / "store") if segmented else None)
    assert _frames_count(out) == 60
    luma = _luma(out, (136, 80, 184, 100))
    # Opacity from the decoded levels: 0 at the bare picture, 1 on the plateau between the
    # fades (1.2 to 1.4 s), each frame's level between them.
    grey, white = float(luma[:20].mean()), float(luma[37:42].mean())
    assert white - grey > 100
    alpha = (luma - grey) / (white - grey)
    t = np.arange(60) / 30
    k = np.round((t - 0.9) * 30)  # the overlay's own frames
    want = np.where((t >= 0.9 - 1e-6) & (t < 1.7 - 1e-6),
                    np.minimum(np.clip(k / 30 / 0.3, 0, 1), np.clip((0.8 - k / 30) / 0.3, 0, 1)), 0.0)
    assert np.abs(alpha - want).max() < 0.05, str(np.round(np.c_[t, alpha, want][25:52], 2).tolist())
    assert 0.3 < alpha[31] < 0.7  # mid-fade, just after the cut
    if segmented:
        assert len(rec["segments"]) == 2


def test_slide_moves_the_overlay_into_place(tmp_path: Path) -> None:
    """motion slide: the overlay rises into its placed position while it fades in."""
    from types import SimpleNamespace

    from timelines.conform import SLIDE_FRACTION, ConformClip, VideoJob, conform_videos

    m = _grey_master(tmp_path / "m.mp4", 60, 1.0)
    spec = Catalog().spec(SPEC).model_copy(update={"name": "slide", "width": 320, "height": 180})
    png = tmp_path / "white.png"
    Image.new("RGBA", (64, 32), (255, 255, 255, 255)).save(png)
    ov = SimpleNamespace(path=png, x=128, y=74, start=0.2, end=1.0, fade_in=0.4, fade_out=0.0, motion="slide")
    out = tmp_path / "out.mp4"
    conform_videos([ConformClip(m, 0, 30, Fraction(30), 320, 180, (0.5, 0.5), "c")],
                   [VideoJob(spec, out, overlays=[ov])], preset="veryfast")
    # The overlay's top edge per frame: first row (of a column through it) brighter than grey.
    res = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-vf", "crop=2:180:160:0", "-f", "rawvideo",
                          "-pix_fmt", "gray", "-"], capture_output=True, check=True)
    cols = np.frombuffer(res.stdout, np.uint8).reshape(-1, 180, 2)[:, :, 0].astype(int)
    tops = [int(np.argmax(c > c[0] + 8)) if (c > c[0] + 8).any() else None for c in cols]
    d = round(SLIDE_FRACTION * 180)
    assert tops[5] is None  # before 0.2 s
    # Starting about d px low (4:2:0 rounds y to even rows), rising frame by frame.
    rising = tops[7:19]
    assert all(t is not None for t in rising), tops
    assert rising[0] >= 74 + d - 2 and rising == sorted(rising, reverse=True), tops
    assert tops[20] == 74 and tops[29] == 74  # in place once faded in


def test_an_end_card_over_the_picture_is_transparent_with_scrims_where_the_picture_needs_them(
        tmp_path: Path) -> None:
    """background: picture: the end card is the copy and logo alone (transparent round
    them), fitted over the spot's last frames; on a bright picture the white headline gets
    a scrim, and the composite reads back."""
    from timelines.conform import ConformClip
    from timelines.graphics import build_graphics

    m = tmp_path / "bright.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "color=c=0xf0e6c8:size=640x360:rate=30:duration=2", "-c:v", "libx264", "-preset",
                    "ultrafast", "-pix_fmt", "yuv420p", str(m)], check=True)
    d = _example()
    d["beats"] = [dict(b, duration=2.0) for b in d["beats"][:1]]
    d.update(hero_beat=None, channels=[SPEC], end_card={"duration": 1.0, "background": "picture",
                                                        "copy": CARD_COPY})
    brief = Brief.model_validate(d)
    spec = Catalog().spec(SPEC).model_copy(update={"width": 640, "height": 360})
    clips = [ConformClip(m, 0, 60, Fraction(30), 640, 360, (0.5, 0.5), brief.beats[0].id)]
    (card,) = build_graphics(brief, spec, clips, Catalog(), tmp_path / "g")
    assert card.kind == "end_card" and card.field == "end_card.copy"
    assert (card.start, card.end, card.fade_in, card.fade_out) == (1.0, 2.0, 0.5, 0.0)
    with Image.open(card.path) as im:
        layer = im.convert("RGBA")
    assert card.path.name == f"{card.sha256}.png"
    frame = Image.new("RGBA", (640, 360), (240, 230, 200, 255))
    frame.alpha_composite(layer, dest=(card.x, card.y))
    # Transparent away from the copy: the picture shows through in the corners and between.
    assert (np.asarray(layer.getchannel("A")) == 0).mean() > 0.3
    assert frame.getpixel((3, 3)) == frame.getpixel((636, 356)) == (240, 230, 200, 255)
    headline = next(t for t in card.placement["texts"] if t["role"] == "headline")
    assert headline["scrim"] is not None and headline["ratio_before"] < headline["required_ratio"]
    assert headline["ratio_after"] >= headline["required_ratio"]
    x0, y0, x1, y1 = headline["box"]
    under = np.asarray(frame.convert("RGB"))[y0:y1, x0:x1].reshape(-1, 3)
    # WCAG contrast of the white words against the pixels round them (not the glyphs),
    # from the composite's pixels: the bare picture gives about 1.2:1.
    c = under[(under < 200).any(axis=1)] / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4) @ np.array([0.2126, 0.7152, 0.0722])
    assert np.percentile(1.05 / (lin + 0.05), 5) >= headline["required_ratio"]
    assert words_in_order(CARD_COPY["headline"], ocr(frame.convert("RGB")))


def test_supers_and_end_card_stay_above_burned_in_captions(tmp_path: Path) -> None:
    """A channel that burns captions in: the supers' and the end card's pixels (the
    layers' alpha, placed in the frame) end above the captions' top row."""
    from timelines.captions import Cue, render_overlays
    from timelines.conform import ConformClip
    from timelines.graphics import build_graphics

    m = _grey_master(tmp_path / "m.mp4", 90, 3.0)
    d = _example()
    d["beats"] = [dict(b, duration=1.5) for b in d["beats"][:2]]
    d["beats"][0]["supers"] = SUPER2
    d.update(hero_beat=None, channels=["reels-9x16"], end_card={"duration": 1.0, "copy": CARD_COPY})
    brief = Brief.model_validate(d)
    spec = Catalog().spec("reels-9x16").model_copy(update={"width": 360, "height": 640})
    clips = [ConformClip(m, 0, 45, Fraction(30), 320, 180, (0.5, 0.5), b.id) for b in brief.beats]
    clips[1] = ConformClip(m, 45, 45, Fraction(30), 320, 180, (0.5, 0.5), brief.beats[1].id)
    free = build_graphics(brief, spec, clips, Catalog(), tmp_path / "a")
    # Where this channel's captions really go: a two-line caption rendered for it.
    (cap,) = render_overlays([Cue(1, 0.0, 1.5, ("Every day starts", "somewhere new."), brief.beats[0].id)],
                             spec, tmp_path / "captions")
    top = cap.box[1]
    kept = build_graphics(brief, spec, clips, Catalog(), tmp_path / "b", captions_top=top)
    for g in free + kept:
        with Image.open(g.path) as im:
            bbox = im.getchannel("A").getbbox()
        g.bottom = g.y + bbox[3]  # type: ignore[attr-defined]
    assert free[0].bottom > top  # the lower third's legal line sits where captions go
    assert all(g.bottom <= top - 6 for g in kept if g.kind == "super")  # type: ignore[attr-defined]
    card = next(g for g in kept if g.kind == "end_card")
    assert max(t["box"][3] for t in card.placement["texts"]) <= top - 6
    # Set in the area `studio plan` fitted them in: above the highest a caption of this
    # channel can reach (studio.copyfit), not only above this spot's captions.
    from studio.copyfit import captions_reach, video_copy_area

    assert captions_reach(spec) <= top
    assert all(g.placement["safe_rect"] == list(video_copy_area(spec, captions_reach(spec))) for g in kept)
    assert all(g.placement["safe_rect"] == list(spec.safe_rect()) for g in free)


def test_the_legal_line_is_held_the_channels_minimum(tmp_path: Path) -> None:
    """legal_min_seconds: a super with a legal line stays the channel's minimum when that
    is longer than its reading time; too little room for it is refused, naming the field
    and the channel; the edit as cut (an editor's shorter beat) is checked at conform."""
    from timelines.conform import ConformClip
    from timelines.graphics import build_graphics, super_windows, supers_problems

    d = _example()
    d["beats"] = [dict(b, duration=2.0) for b in d["beats"][:3]]
    d["beats"][0]["supers"] = {"headline": "Cold", "legal": "Terms apply."}
    d.update(hero_beat=None, channels=[SPEC])
    brief = Brief.model_validate(d)
    beats = [(b.id, 2.0 * i, 2.0 * (i + 1)) for i, b in enumerate(brief.beats)]
    (w,), _ = super_windows(brief, beats, 6.0)
    assert (w.start, w.end) == (0.0, 2.0)  # 1.5 s to read: the beat's 2 s
    (w,), _ = super_windows(brief, beats, 6.0, legal_min=3.5)
    assert (w.start, w.end) == (0.0, 3.5)  # held into beat 2 for the legal line
    spec = Catalog().spec(SPEC).model_copy(update={"legal_min_seconds": 7.0})
    (e,) = supers_problems(brief, [spec])
    assert e.field == "beats[0].supers"
    assert e.what.startswith(f"needs 7.0 s for its legal line (the channel's legal_min_seconds) in {SPEC} but "
                             "has 6.0 s")
    # An editor cut beat 1 to 0.5 s and beat 2 carries a super: 1.5 s of reading has 0.5 s.
    d["beats"][1]["supers"] = {"headline": "Up"}
    brief = Brief.model_validate(d)
    m = _grey_master(tmp_path / "m.mp4", 90, 2.0)
    clips = [ConformClip(m, 0, n, Fraction(30), 320, 180, (0.5, 0.5), b.id)
             for b, n in zip(brief.beats, (15, 60, 60), strict=True)]
    small = Catalog().spec(SPEC).model_copy(update={"width": 320, "height": 180})
    with pytest.raises(StageError) as err:
        build_graphics(brief, small, clips, Catalog(), tmp_path / "g")
    assert err.value.field == "beats[0].supers" and err.value.stage == "conform"
    assert "has 0.5 s between its beat's start at 0.0 s and the next super, beats[1] (b02-trail), at 0.5 s" in str(err.value)
    # In a run, the editor's cut is honoured: the super is shown as long as the cut allows
    # and the run warns, naming the channel, shot and field.
    said: list[str] = []
    wider = Catalog().spec(SPEC).model_copy(update={"width": 640, "height": 360})  # room for the logo's minimum
    shown = build_graphics(brief, wider, clips, Catalog(), tmp_path / "g2", warn=said.append)
    assert [g.beat for g in shown if g.kind == "super"] == ["b01-sunrise", "b02-trail"]
    (line,) = said
    assert line.startswith(f"{SPEC}: shot b01-sunrise: beats[0].supers: needs ") and "as cut it is shown for 0.5 s" in line


def test_frames_for_the_supers_are_read_in_one_pass_per_master(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """FrameReader.prefetch: the frames of several times read in one ffmpeg per master,
    the very frames a read one by one gives."""
    import timelines.graphics as G
    from timelines.conform import ConformClip

    masters = []
    for i in range(2):
        p = tmp_path / f"m{i}.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=30:duration=2",
                        "-vf", f"hue=h={i * 90}", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                        str(p)], check=True)
        masters.append(p)
    clips = [ConformClip(masters[0], 5, 30, Fraction(30), 160, 90, (0.5, 0.5), "a"),
             ConformClip(masters[1], 12, 30, Fraction(30), 160, 90, (0.5, 0.5), "b")]
    times = [0.0, 0.5, 0.99, 1.0, 1.7]
    calls: list[list[str]] = []
    real = subprocess.run

    def counted(cmd: list[str], **kw: Any) -> Any:
        calls.append(cmd)
        return real(cmd, **kw)

    monkeypatch.setattr(G.subprocess, "run", counted)
    once = G.FrameReader(clips)
    once.prefetch(times)
    assert len(calls) == 2  # one per master
    together = [np.asarray(once.at(t)[1]) for t in times]
    assert len(calls) == 2  # all from memory
    alone = [np.asarray(G.FrameReader(clips).at(t)[1]) for t in times]
    assert len(calls) == 2 + len(times)
    assert all((a == b).all() for a, b in zip(together, alone, strict=True))
    # They are different frames (the comparison is not of one frame with itself).
    assert len({a.tobytes() for a in alone}) == len(times)


def test_an_editors_change_to_the_graphics_track_is_conformed(setup: dict[str, Any], ray_session,
                                                              tmp_path: Path) -> None:
    """The edit carries the supers and end card as titles on a track of their own; an editor
    swaps the two supers (renames their titles) and shortens the end card, and the conform
    of the edited timeline sets them there: read back by OCR from the delivered frames."""
    import opentimelineio as otio

    from studio.conform import conform_edit
    from studio.pipeline import render
    from studio.progress import QuietReporter
    from timelines import graphics as G

    root, settings = setup["root"], setup["settings"]
    ctx = render(_brief(root / "brief.yaml"), tmp_path / "out", settings=settings)  # cached: the first test's
    out = tmp_path / "out"
    timelines = json.loads((out / "manifest.json").read_text())["timelines"]
    edit = next(out / t["path"] for t in timelines if t["kind"] == "edit" and t["format"] == "otio_json")
    tl = otio.adapters.read_from_file(str(edit))
    titles = G.read_titles(tl)
    assert titles is not None
    assert [(t["name"], round(t["start"], 3), round(t["end"], 3)) for t in titles] == [
        ("super b01-sunrise", 0.0, BEAT), ("super b02-trail", BEAT, round(BEAT + 4 / 3 + 0.5, 3)),
        ("end card", round(3 * BEAT - CARD, 3), round(3 * BEAT, 3))]
    # The NLE exports carry them too: FCP7 XML's Text generators read back at the same times.
    xml = next(out / t["path"] for t in timelines if t["kind"] == "edit" and t["format"] == "fcp7_xml")
    fcp7 = G.read_titles(otio.adapters.read_from_file(str(xml), adapter_name="fcp_xml"))
    assert fcp7 is not None and [(t["name"], round(t["start"], 2)) for t in fcp7] == \
        [(t["name"], round(t["start"], 2)) for t in titles]

    # The editor: super 1 now shows beat 2's copy and the other way round; the end card
    # starts 0.4 s later.
    track = next(t for t in tl.video_tracks() if t.name == G.GRAPHICS_TRACK)
    for clip in track.find_clips():
        if clip.name.startswith("super "):
            clip.name = "super b02-trail" if clip.name.endswith("b01-sunrise") else "super b01-sunrise"
    items = list(track)
    card = items[-1]
    assert card.name == "end card"
    shift = otio.opentime.RationalTime(12, FPS)  # 0.4 s
    before = items[-2]
    assert isinstance(before, otio.schema.Gap)
    before.source_range = otio.opentime.TimeRange(before.source_range.start_time,
                                                  before.source_range.duration + shift)
    card.source_range = otio.opentime.TimeRange(card.source_range.start_time, card.source_range.duration - shift)
    edited = tmp_path / "edited.otio"
    otio.adapters.write_to_file(tl, str(edited))

    new_ctx, changes = conform_edit(ctx.run_id, edited, tmp_path / "conformed", settings=settings,
                                    reporter=QuietReporter())
    assert changes["graphics"]["changed"] == ["end card", "super b01-sunrise", "super b02-trail"]
    row = _deliverable(settings, new_ctx.run_id)
    shown = [(g["kind"], g["beat"], round(g["start"], 3), round(g["end"], 3)) for g in row.params["graphics"]["overlays"]]
    assert shown == [("super", "b02-trail", 0.0, BEAT), ("super", "b01-sunrise", BEAT, round(BEAT + 4 / 3 + 0.5, 3)),
                     ("end_card", None, round(3 * BEAT - CARD + 0.4, 3), round(3 * BEAT, 3))]
    # Beat 2's copy (4 words) has 1.6 s where it needs 1.8 s: shown, and the run says so.
    assert any("b02-trail" in w and "shows it for 1.6 s" in w for w in new_ctx.warnings), new_ctx.warnings
    video = Path(row.path)

    def reads(n: int, words: str) -> bool:
        frame = _frame(video, n)
        keyed = [ocr(colour_key(frame, c, 90)) for c in ("#ffffff", "#1d2a44")]
        return words_in_order(words, "\n".join([ocr(frame), *keyed]))

    assert reads(30, SUPER2["headline"]) and not reads(30, SUPER1["headline"])
    assert reads(66, SUPER1["headline"])
    assert not reads(114, CARD_COPY["headline"])  # 3.8 s: the end card starts at 4.0 s now
    assert reads(140, CARD_COPY["headline"])


def test_scrims_hold_on_every_picture_for_every_text(tmp_path: Path) -> None:
    """A super is fitted over three frames of its window; each text gets the scrim the
    frame it reads worst on needs. Here the headline's band is bright in one frame and the
    legal line's in another: both get scrims (taking the single frame with the worst text
    left the other text bare over the other frame's bright band)."""
    from studio.brand import BrandKit
    from timelines import graphics as G

    spec = Catalog().spec(SPEC)
    lay = L.layouts()["lower-third"]
    copy = L.Copy(headline="Cold at sunrise", legal="Terms apply. Up to 24 h cold.")
    brand = BrandKit()
    dark = Image.new("RGB", (W, H), (20, 24, 40))
    plain = G._fit_worst(lay, copy, brand, spec, None, None, [dark], "beats[0].supers")
    boxes = {t.role: t.box for t in plain.texts}
    assert set(boxes) == {"headline", "legal"} and all(t.scrim is None for t in plain.texts)

    def bright_under(role: str) -> Image.Image:
        im = dark.copy()
        x0, y0, x1, y1 = boxes[role]
        im.paste((250, 245, 235), (0, y0 - 10, W, y1 + 10))
        return im

    pictures = [bright_under("headline"), bright_under("legal"), dark]
    fitted = G._fit_worst(lay, copy, brand, spec, None, None, pictures, "beats[0].supers")
    assert {t.role: t.scrim is not None for t in fitted.texts} == {"headline": True, "legal": True}
    # and the scrims hold: measured on each picture with the layer composited
    layer = L.render(fitted)
    for pic in pictures:
        shown = pic.convert("RGBA")
        shown.alpha_composite(layer)
        px = np.asarray(shown.convert("RGB"))
        for t in fitted.texts:
            x0, y0, x1, y1 = t.scrim.box if t.scrim else t.box
            under = px[y0:y1, x0:x1].reshape(-1, 3)
            # the scrim's own pixels (away from the glyphs): dark enough for white text
            assert L.worst_ratio((255, 255, 255), under[np.asarray(L.luminance(under)) < 0.5]) >= t.required_ratio
