"""Captions checked from the outside: SRT and WebVTT read back with a parser written here,
cue timing against the voice's sentence times, and the burn-in measured on pixels ffmpeg
decodes from a small synthetic video."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from pathlib import Path

import ffmpeg
import numpy as np
import pytest
from PIL import Image

from studio.errors import StageError
from studio.specs import CaptionRules, Catalog, ChannelSpec
from timelines.captions import (
    FONT_CANDIDATES,
    MIN_GAP,
    Cue,
    Line,
    Overlay,
    build_cues,
    burn_in,
    check_glyphs,
    check_reading,
    render_overlays,
    undrawable,
    write_srt,
    write_vtt,
)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog()


def voice(beat: str, *sentences: tuple[str, float, float]) -> Line:
    return Line.from_dict({
        "beat": beat,
        "text": " ".join(s[0] for s in sentences),
        "start": sentences[0][1],
        "end": sentences[-1][2],
        "sentences": [{"text": t, "start": a, "end": b} for t, a, b in sentences],
    })


def parse_subs(text: str, kind: str) -> list[tuple[int, float, float, list[str], str]]:
    """(number, start, end, lines, settings) per cue, strictly: any deviation from the
    format fails the test."""
    sep = "," if kind == "srt" else "."
    stamp = re.compile(r"(\d{2}):(\d{2}):(\d{2})" + re.escape(sep) + r"(\d{3})")

    def secs(m: re.Match[str]) -> float:
        h, mi, s, ms = (int(g) for g in m.groups())
        return h * 3600 + mi * 60 + s + ms / 1000

    blocks = text.split("\n\n")
    if kind == "vtt":
        assert blocks[0] == "WEBVTT", blocks[0]
        blocks = blocks[1:]
    assert text.endswith("\n") and not text.endswith("\n\n\n")
    out = []
    for block in blocks:
        rows = block.strip("\n").split("\n")
        assert len(rows) >= 3, block
        number = int(rows[0])
        m = re.fullmatch(rf"({stamp.pattern}) --> ({stamp.pattern})(?: (.*))?", rows[1])
        assert m, rows[1]
        a = secs(stamp.fullmatch(m.group(1)))  # type: ignore[arg-type]
        b = secs(stamp.fullmatch(m.group(6)))  # type: ignore[arg-type]
        assert all(r.strip() for r in rows[2:]), block
        out.append((number, a, b, rows[2:], m.group(11) or ""))
    return out


# ---------------------------------------------------------------------------- cues


def test_srt_and_vtt_round_trip_sentence_times(tmp_path: Path, catalog: Catalog) -> None:
    spec = catalog.spec("youtube-1080p")
    lines = [
        voice("b01-open", ("Every morning starts here.", 0.2, 1.734),
              ("The kettle, the window & the <light>.", 2.011, 3.9876)),
        voice("b02-road", ("Then the road.", 4.3, 5.4)),
    ]
    cues = build_cues(lines, spec.captions, total=6.0, spec_name=spec.name)
    write_srt(cues, tmp_path / "a.srt")
    write_vtt(cues, tmp_path / "a.vtt", spec=spec)
    # Starts are the sentences'; the second sentence (37 characters in 1.98 s) is held
    # until it reads at the spec's 17 characters per second.
    expected = [(0.2, 1.734), (2.011, 2.011 + 37 / 17), (4.3, 5.4)]
    srt_raw = (tmp_path / "a.srt").read_bytes()
    assert not srt_raw.startswith(b"\xef\xbb\xbf")  # UTF-8 without a BOM
    for kind in ("srt", "vtt"):
        parsed = parse_subs((tmp_path / f"a.{kind}").read_text("utf-8"), kind)
        assert [p[0] for p in parsed] == [1, 2, 3]
        for (n, a, b, rows, settings), (sa, sb) in zip(parsed, expected, strict=True):
            assert abs(a - sa) <= 0.001 and abs(b - sb) <= 0.001, (kind, n, a, b)
            if kind == "vtt":
                # bottom of the cue on the safe area's bottom (5% inset), centred, 90% wide
                assert settings == "line:95%,end position:50%,center size:90% align:center"
                joined = " ".join(rows)
                assert "<" not in joined.replace("&lt;", "")
            else:
                assert settings == ""
        assert " ".join(parsed[1][3]).replace("&amp;", "&").replace("&lt;", "<").replace(
            "&gt;", ">") == "The kettle, the window & the <light>."


def test_long_sentence_is_split_at_a_clause_in_proportion_to_characters() -> None:
    rules = CaptionRules(max_chars_per_line=20, max_lines=2)
    text = ("The harbour lights come on one by one, and the boats turn slowly "
            "towards the open sea")
    cues = build_cues([voice("b04-harbour", (text, 10.0, 16.0))], rules, total=20.0)
    assert len(cues) == 3  # 83 characters, 40 per caption at most
    assert " ".join(" ".join(c.lines) for c in cues) == text  # nothing lost or reordered
    assert cues[0].lines[-1].endswith("one,")  # the comma, not an arbitrary word
    assert cues[0].start == 10.0 and cues[-1].end == 16.0
    for a, b in itertools.pairwise(cues):
        assert a.end == pytest.approx(b.start)  # consecutive, no gap, no overlap
    sizes = [len(" ".join(c.lines)) for c in cues]
    for c, size in zip(cues, sizes, strict=True):
        assert c.end - c.start == pytest.approx(6.0 * size / sum(sizes))
        assert len(c.lines) <= 2 and all(len(x) <= 20 for x in c.lines)
        assert c.beat == "b04-harbour"
    assert [c.index for c in cues] == [1, 2, 3]


def test_lines_are_balanced_and_never_break_words() -> None:
    rules = CaptionRules(max_chars_per_line=32, max_lines=2)
    text = "A quiet morning light spreads over the roofs of the old town"
    (cue,) = build_cues([voice("b01", (text, 0.0, 4.0))], rules, total=4.0)
    assert len(cue.lines) == 2
    assert " ".join(cue.lines) == text
    words = text.split()
    best = min(max(len(" ".join(words[:k])), len(" ".join(words[k:])))
               for k in range(1, len(words)))
    assert max(len(x) for x in cue.lines) == best  # the most even break there is
    assert abs(len(cue.lines[0]) - len(cue.lines[1])) <= 6
    assert all(len(x) <= 32 for x in cue.lines)
    # short enough for one line: stays one line
    (short,) = build_cues([voice("b02", ("Short and sweet.", 0.0, 2.0))], rules, total=2.0)
    assert short.lines == ("Short and sweet.",)


def test_a_word_longer_than_a_line_names_beat_and_word() -> None:
    rules = CaptionRules(max_chars_per_line=12)
    with pytest.raises(StageError) as e:
        build_cues([voice("b07-lab", ("It is supercalifragilistic.", 0.0, 2.0))], rules,
                   total=3.0, spec_name="reels-9x16")
    assert e.value.shot == "b07-lab"
    assert "supercalifragilistic" in str(e.value)
    assert e.value.field == "reels-9x16.captions.max_chars_per_line"


def test_short_cues_are_held_into_silence_and_reported_when_they_cannot_be() -> None:
    rules = CaptionRules(min_duration=1.0)
    lines = [
        voice("b01", ("Go.", 1.0, 1.3), ("Now.", 3.0, 3.2),
              ("Stop before the light changes, and the whole crowd moves off the kerb all at once.",
               3.5, 8.6)),
        voice("b02", ("End.", 9.0, 9.2)),
    ]
    cues = build_cues(lines, rules, total=9.6)
    spans = [(c.start, round(c.end, 6)) for c in cues]
    assert spans[:2] == [
        (1.0, 2.0),  # room after it: held to the minimum
        (3.0, round(3.5 - MIN_GAP, 6)),  # held up to the gap before the next caption, no
                                         # further (too long to join)
    ]
    assert spans[-1] == (9.0, 9.6)  # held up to the end of the edit, no further
    # the long sentence, split in two at its comma, tiles its own time (the second piece
    # held into the pause until it can be read)
    assert len(cues) == 5 and cues[2].start == 3.5 and cues[2].end == cues[3].start
    assert 8.6 <= spans[3][1] <= 9.0
    assert cues[2].text.endswith("changes,")
    warnings = check_reading(cues, rules, "youtube-1080p")
    assert warnings == [
        "youtube-1080p: beat b01, caption 2 'Now.' is on screen 0.43 s, under the 1 s "
        "minimum: leave a pause after the sentence or join it to the next one",
        "youtube-1080p: beat b02, caption 5 'End.' is on screen 0.60 s, under the 1 s "
        "minimum: leave a pause after the sentence or join it to the next one",
    ]


def test_a_short_sentence_shares_a_caption_with_its_neighbour() -> None:
    rules = CaptionRules(min_duration=0.83)
    # the demo's last line: "Aurora." alone would be up 0.6 s
    cues = build_cues([voice("b04", ("Aurora.", 9.2, 9.8), ("Cold from sunrise to city lights.", 10.0, 11.8))],
                      rules, total=12.0)
    assert [(c.start, c.end, c.lines) for c in cues] == [
        (9.2, 11.8, ("Aurora. Cold from sunrise to city lights.",))]
    assert check_reading(cues, rules, "youtube-1080p") == []
    # a short last sentence joins the one before it; other beats' lines are never joined
    cues = build_cues([voice("b01", ("Cold from sunrise to city lights.", 0.2, 2.0), ("Aurora.", 2.2, 2.6)),
                       voice("b02", ("Go.", 3.0, 3.2))], rules, total=3.4)
    assert [(c.beat, c.start) for c in cues] == [("b01", 0.2), ("b02", 3.0)]
    assert cues[0].end == pytest.approx(0.2 + 41 / 17)  # held until 41 characters read at 17/s
    assert cues[0].text.endswith("Aurora.")


def test_cues_never_overlap_or_pass_the_end() -> None:
    rules = CaptionRules(min_duration=0.5)
    lines = [voice("b02", ("Second beat speaks.", 2.5, 4.8)),
             voice("b01", ("First beat runs long.", 0.5, 2.9))]  # overlaps the next
    cues = build_cues(lines, rules, total=4.0)
    assert [c.beat for c in cues] == ["b01", "b02"]
    assert cues[0].end == 2.5 and cues[1].end == 4.0
    with pytest.raises(StageError) as e:
        build_cues([voice("b09", ("Too late.", 4.5, 5.0))], rules, total=4.0)
    assert e.value.shot == "b09"


def test_reading_speed_warning_wording_and_strict_mode() -> None:
    rules = CaptionRules(max_cps=17)
    cues = [Cue(i, 2.0 * i, 2.0 * i + 1.9, ("Fine.",), "b01") for i in (1, 2, 3)]
    cues.append(Cue(4, 8.0, 8.0 + 27 / 21.3, ("And it is still", "raining here"), "b03-city"))
    assert cues[-1].chars == 27  # 15 + 12: the line break is not read
    assert cues[-1].cps == pytest.approx(21.3)
    warnings = check_reading(cues, rules, "reels-9x16")
    assert warnings == [
        "reels-9x16: beat b03-city, caption 4 'And it is still...' reads at 21.3 "
        "characters/s, over the 17 allowed: shorten the narration or lengthen the beat"
    ]
    with pytest.raises(StageError) as e:
        check_reading(cues, rules, "reels-9x16", strict=True)
    assert (e.value.stage, e.value.shot, e.value.field) == ("captions", "b03-city", "reels-9x16")
    assert "21.3 characters/s" in str(e.value) and "lengthen the beat" in str(e.value)
    assert check_reading(cues[:3], rules, "reels-9x16", strict=True) == []


# ---------------------------------------------------------------------------- overlays


def _check_overlay(ov: Overlay, spec: ChannelSpec) -> None:
    x0, y0, x1, y1 = spec.safe_area.rect(spec.width, spec.height)
    with Image.open(ov.path) as im:
        assert im.mode == "RGBA"
        w, h = im.size
        alpha = np.asarray(im.getchannel("A"))
        # white text inside, so the caption is not just a box
        assert (np.asarray(im.convert("RGB")).min(axis=2) > 240).any()
    assert x0 <= ov.x and ov.x + w <= x1 and y0 <= ov.y and ov.y + h <= y1
    ys, xs = np.nonzero(alpha)
    assert ov.box == (ov.x + xs.min(), ov.y + ys.min(), ov.x + xs.max() + 1, ov.y + ys.max() + 1)
    bx0, by0, bx1, by1 = ov.box
    assert x0 <= bx0 < bx1 <= x1 and y0 <= by0 < by1 <= y1
    assert abs(by1 - y1) <= 2  # sits on the bottom of the safe area
    assert abs((bx0 + bx1) / 2 - (x0 + x1) / 2) <= 2  # centred in it


@pytest.mark.parametrize("name", ["reels-9x16", "youtube-1080p"])
def test_overlays_lie_inside_the_safe_area(name: str, catalog: Catalog, tmp_path: Path) -> None:
    spec = catalog.spec(name)
    rules = spec.captions
    text = ("WOMBATS WANDER WIDELY, WHISTLING WHIMSICAL MELODIES WHENEVER "
            "WEATHER WARMS")  # wide capitals: the worst case for width
    lines = [voice("b01", (text, 0.0, 6.0), ("Go.", 6.5, 7.0))]
    cues = build_cues(lines, rules, total=8.0, spec_name=name)
    overlays = render_overlays(cues, spec, tmp_path)
    assert len(overlays) == len(cues)
    for ov, cue in zip(overlays, cues, strict=True):
        _check_overlay(ov, spec)
        assert (ov.start, ov.end) == (cue.start, cue.end)
        assert ov.x % 2 == 0 and ov.y % 2 == 0  # on the 4:2:0 chroma grid
    # the one-word caption is set at the spec's size: its box is about font_size tall
    short = overlays[-1].box
    assert rules.font_size * spec.height <= short[3] - short[1] <= 2 * rules.font_size * spec.height


def test_a_caption_too_wide_even_when_shrunk_is_an_error(catalog: Catalog, tmp_path: Path) -> None:
    spec = catalog.spec("reels-9x16").model_copy(update={"name": "narrow", "width": 240})
    cue = Cue(1, 0.0, 2.0, ("WWWWWWWWWWWWWWWWWWWWWWWWWWWW",), "b05-sign")
    with pytest.raises(StageError) as e:
        render_overlays([cue], spec, tmp_path)
    assert (e.value.shot, e.value.field) == ("b05-sign", "narrow")
    assert "safe area" in str(e.value)
    assert not list(tmp_path.iterdir())  # nothing half-written


# ---------------------------------------------------------------------------- burn-in


def test_burn_in_draws_the_caption_in_its_window_only(catalog: Catalog, tmp_path: Path) -> None:
    w, h, fps, seconds = 320, 568, 30, 2
    spec = catalog.spec("reels-9x16").model_copy(update={"name": "reels-small", "width": w,
                                                         "height": h})
    cue = Cue(1, 0.5, 1.5, ("Hello there",), "b01")
    (ov,) = render_overlays([cue], spec, tmp_path / "png")
    _check_overlay(ov, spec)

    src = ffmpeg.sources.color(color="0x808080", size=f"{w}x{h}", rate=fps, duration=seconds)
    video = burn_in(src.format(pix_fmts="yuv420p"), [ov])
    out = tmp_path / "burnt.mkv"
    # Lossless so any pixel that changed was changed by the overlay, not the codec.
    cmd = (ffmpeg.output(video, filename=str(out),
                         extra_options={"c:v": "ffv1", "pix_fmt": "yuv420p"})
           .global_args(hide_banner=True, loglevel="error", y=True).compile())
    assert cmd[0] == "ffmpeg"
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames", "-of", "json", str(out)],
        capture_output=True, text=True, check=True).stdout)
    assert int(probe["streams"][0]["nb_read_frames"]) == fps * seconds

    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(out), "-vf",
         "scale=in_color_matrix=bt709:in_range=tv", "-f", "rawvideo", "-pix_fmt", "rgb24",
         "-"], capture_output=True, check=True).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3).astype(np.int16)
    assert len(frames) == fps * seconds
    x0, y0, x1, y1 = spec.safe_area.rect(w, h)
    for i, frame in enumerate(frames):
        changed = (np.abs(frame - 128) > 3).any(axis=2)
        if 0.5 <= i / fps < 1.5:
            ys, xs = np.nonzero(changed)
            assert len(xs), f"frame {i} has no caption"
            bbox = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert x0 <= bbox[0] and bbox[2] <= x1 and y0 <= bbox[1] and bbox[3] <= y1
            assert all(abs(a - b) <= 2 for a, b in zip(bbox, ov.box, strict=True)), (i, bbox)
        else:
            assert not changed.any(), f"frame {i} at {i / fps:.3f} s shows a caption"


# ---------------------------------------------------------------------------- other languages

# Punctuation that closes what it follows: no caption and no line may start with it.
CLOSING = tuple("»”\"’)]」』›。、！？")


def _no_closer_starts(cues: list[Cue]) -> None:
    for c in cues:
        for line in c.lines:
            assert not line.startswith(CLOSING), (c.index, c.lines)
            assert not line.rstrip().endswith(("«", "“", "「", "¿", "¡")), (c.index, c.lines)


def test_french_guillemets_stay_with_the_sentence_they_close() -> None:
    rules = CaptionRules(max_chars_per_line=20, max_lines=2)
    # French sets a space inside « » and before ? !; the voice's sentence split (at ". ")
    # leaves the closing » at the start of the next sentence, as here.
    first = "« Le café est prêt, dit-elle."
    second = "» Elle sourit, puis elle part vers la gare « tout de suite » !"
    cues = build_cues([voice("b02-cafe", (first, 0.0, 2.0), (second, 2.3, 6.0))], rules,
                      total=8.0)
    _no_closer_starts(cues)
    assert cues[0].text.endswith("dit-elle. »")
    assert cues[1].start == 2.3 and cues[1].lines[0].startswith("Elle")
    # nothing lost or reordered, the spaces as written
    assert " ".join(" ".join(c.lines) for c in cues) == f"{first} {second}"
    # a long sentence cut into cues and lines: « and » never separated from their words
    text = ("« Le port s'allume lentement » et les bateaux « partent vers la mer » "
            "avant la nuit ?")
    cues = build_cues([voice("b03", (text, 0.0, 8.0))], CaptionRules(max_chars_per_line=12,
                                                                       max_lines=1), total=9.0)
    assert len(cues) > 3
    _no_closer_starts(cues)
    assert " ".join(c.text for c in cues) == text


def test_cjk_sentences_split_at_their_full_stops_without_spaces() -> None:
    rules = CaptionRules(max_chars_per_line=16, max_lines=1)
    text = "彼は「もう行こう」と言った。明日は雨が降るでしょう。"  # no spaces at all
    cues = build_cues([voice("b05-rain", (text, 0.0, 6.0))], rules, total=8.0)
    assert [c.lines for c in cues] == [("彼は「もう行こう」と言った。",), ("明日は雨が降るでしょう。",)]
    assert cues[0].start == 0.0 and cues[0].end == pytest.approx(cues[1].start)
    # narrower lines break between characters, never before 」 。 or a small kana
    cues = build_cues([voice("b05-rain", (text, 0.0, 6.0))],
                      CaptionRules(max_chars_per_line=10, max_lines=2), total=8.0)
    _no_closer_starts(cues)
    assert all(not line.startswith(("っ", "ょ")) for c in cues for line in c.lines)
    assert "".join("".join(c.lines) for c in cues) == text


def test_a_spanish_question_is_a_clause_break() -> None:
    rules = CaptionRules(max_chars_per_line=28, max_lines=1)
    text = "Mañana temprano si hace sol ¿vamos todos juntos a la playa?"
    cues = build_cues([voice("b06", (text, 0.0, 6.0))], rules, total=8.0)
    assert [c.text for c in cues] == ["Mañana temprano si hace sol", "¿vamos todos",
                                      "juntos a la playa?"]


def test_emoji_the_voice_skipped_stay_in_the_caption_files(tmp_path: Path,
                                                           catalog: Catalog) -> None:
    spec = catalog.spec("youtube-1080p")
    # The voice stage drops emoji from what it speaks, so its sentences have none; the
    # line's text is what was written.
    line = Line.from_dict({
        "beat": "b01-hello", "text": "Good morning 👋. Let's go! 🚀", "start": 0.5, "end": 3.0,
        "sentences": [{"text": "Good morning .", "start": 0.5, "end": 1.6},
                      {"text": "Let's go!", "start": 2.0, "end": 3.0}]})
    cues = build_cues([line], spec.captions, total=5.0, spec_name=spec.name)
    assert [c.text for c in cues] == ["Good morning 👋.", "Let's go! 🚀"]
    write_srt(cues, tmp_path / "a.srt")
    write_vtt(cues, tmp_path / "a.vtt", spec=spec)
    for kind in ("srt", "vtt"):
        parsed = parse_subs((tmp_path / f"a.{kind}").read_text("utf-8"), kind)
        assert [p[3] for p in parsed] == [["Good morning 👋."], ["Let's go! 🚀"]]
    # the line edited since (a sentence not in its text): the voice's sentences as given
    edited = Line.from_dict({"beat": "b01", "text": "Something else 🚀", "start": 0.5,
                             "end": 1.6, "sentences": [{"text": "Hello.", "start": 0.5,
                                                        "end": 1.6}]})
    assert [c.text for c in build_cues([edited], spec.captions, total=5.0)] == ["Hello."]


def test_emoji_the_burn_in_font_cannot_draw_are_left_out_and_reported(
        catalog: Catalog, tmp_path: Path) -> None:
    spec = catalog.spec("reels-9x16")
    cues = [Cue(1, 0.0, 2.0, ("Let's go! 🚀",), "b02-launch"),
            Cue(2, 2.0, 4.0, ("Let's go!",), "b02-launch")]
    assert undrawable("Let's go! 🚀 👋") == "🚀👋"  # no text font has these
    with_emoji, without = render_overlays(cues, spec, tmp_path)
    with Image.open(with_emoji.path) as a, Image.open(without.path) as b:
        # the same picture: no "missing glyph" box where the rocket was
        assert a.size == b.size and a.tobytes() == b.tobytes()
    warnings = check_glyphs(cues, "reels-9x16")
    assert len(warnings) == 1
    assert warnings[0].startswith("reels-9x16: beat b02-launch, caption 1 'Let's go! 🚀' has "
                                  "🚀 (rocket), which the caption font (")
    assert "cannot draw; the burned-in caption leaves it out (the SRT and WebVTT keep it)" \
        in warnings[0]
    if FONT_CANDIDATES[0].is_file():  # DejaVu Sans has the emoticons block: drawn, not reported
        smile = [Cue(1, 0.0, 2.0, ("Hi 😀",), "b03"), Cue(2, 2.0, 4.0, ("Hi",), "b03")]
        assert check_glyphs(smile, "reels-9x16") == []
        a, b = render_overlays(smile, spec, tmp_path / "smile")
        with Image.open(a.path) as ia, Image.open(b.path) as ib:
            assert ia.size[0] > ib.size[0]


def test_reading_speed_is_judged_on_the_figure_the_warning_shows() -> None:
    rules = CaptionRules(max_cps=17)
    # Held until readable at 17/s: in floating point that reads 17.000000000000007.
    cues = build_cues([voice("b04", ("Cold from sunrise to city lights.", 7.3, 8.5))], rules,
                      total=12.0)
    assert cues[0].end == pytest.approx(7.3 + 33 / 17)
    assert check_reading(cues, rules, "youtube-1080p") == []
    # Just over: the warning shows a figure over the limit, never "17.0 ... over the 17".
    over = [Cue(1, 0.0, 35 / 17.04, ("Cold from sunrise to", "city lights now"), "b04")]
    assert over[0].chars == 35
    assert check_reading(over, rules, "youtube-1080p") == [
        "youtube-1080p: beat b04, caption 1 'Cold from...' reads at 17.04 "
        "characters/s, over the 17 allowed: shorten the narration or lengthen the beat"]


def test_a_split_sentence_spoken_too_fast_is_held_into_the_pause_after_it() -> None:
    rules = CaptionRules(max_chars_per_line=20, max_lines=2)
    text = ("The harbour lights come on one by one, and the boats turn slowly "
            "towards the open sea")  # 83 characters in 4 s: 20.8 a second
    cues = build_cues([voice("b04", (text, 10.0, 14.0)), voice("b05", ("Next.", 20.0, 21.0))],
                      rules, total=22.0)
    pieces = cues[:3]
    assert len(cues) == 4 and pieces[0].start == 10.0
    for a, b in itertools.pairwise(pieces):
        assert a.end == pytest.approx(b.start)  # still one after the other
    assert all(c.cps <= 17 + 1e-9 for c in pieces)  # every piece, not just the last
    assert 14.0 < pieces[-1].end < 20.0 - MIN_GAP
    assert check_reading(cues, rules, "youtube-1080p") == []
    # Less room: held up to MIN_GAP before the next line, and only what still reads too
    # fast is reported.
    cues = build_cues([voice("b04", (text, 10.0, 14.0)), voice("b05", ("Next.", 14.5, 15.5))],
                      rules, total=22.0)
    assert cues[2].end == pytest.approx(14.5 - MIN_GAP)
    warnings = check_reading(cues, rules, "youtube-1080p")
    assert len(warnings) == 3 and all("characters/s, over the 17 allowed" in w for w in warnings)
    # Never past the end of the spot.
    cues = build_cues([voice("b04", (text, 10.0, 14.0))], rules, total=14.4)
    assert cues[-1].end == 14.4
