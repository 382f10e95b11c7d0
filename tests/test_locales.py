"""A brief in several locales (issue 13): one set of deliverables per locale, each with its
copy, supers, captions and, where a voice for its language is registered, its voice.

One real render of a short spot in three locales: en-GB spoken by the shipped Piper voice,
fr-FR by a tiny random-weight VITS registered as French (real loading and synthesis; it
speaks noise), de-DE with no German voice, so it ships subtitled (the en-GB voice under
German captions). Checked from the delivered files: names, the SRT text, the audio
streams, and OCR (Tesseract, French) of the French video's burned-in captions and super
and of the French banner."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image
from sqlmodel import Session, select

from studio import db
from tests.ocr import colour_key, ocr, words_in_order

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "briefs" / "launch.yaml"
VIDEO, BANNER = "reels-9x16", "banner-300x250"
LOCALES = ["en-GB", "fr-FR", "de-DE"]
NARRATION = {
    "b01-sunrise": {"en-GB": "Cold at sunrise.", "fr-FR": "Café glacé à l'aube.", "de-DE": "Kalt am Morgen."},
    "b02-trail": {"en-GB": "Still cold tonight.", "fr-FR": "Toujours frais ce soir.", "de-DE": "Noch kalt am Abend."},
}
SUPERS = {"en-GB": "Keeps it cold", "fr-FR": "Été comme hiver", "de-DE": "Immer kalt"}
HEADLINE = {"en-GB": "Cold from dawn", "fr-FR": "Du froid dès l'aube", "de-DE": "Kalt ab Morgengrauen"}
CTA = {"en-GB": "Shop now", "fr-FR": "Découvrir", "de-DE": "Entdecken"}
BEAT = 2.4  # s


def _brief(path: Path) -> Path:
    d = yaml.safe_load(EXAMPLE.read_text())
    d.pop("end_card", None)
    d["beats"] = [dict({k: v for k, v in b.items() if k != "supers"}, duration=BEAT, narration=NARRATION[b["id"]])
                  for b in d["beats"] if b["id"] in NARRATION]
    d["beats"][0]["supers"] = {"headline": SUPERS}
    d.update(candidates=1, channels=[VIDEO, BANNER], hero_beat="b01-sunrise", handles=0, captions=True,
             locales=LOCALES, copy={"headline": HEADLINE, "cta": CTA})
    d.pop("voice", None)
    path.write_text(yaml.safe_dump(d, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, ray_session) -> dict[str, Any]:
    from studio.pipeline import render
    from studio.settings import Settings
    from tests.test_audio_backends import voice_doc
    from tests.tiny_models import build_tiny_vits

    root = tmp_path_factory.mktemp("locales")
    build_tiny_vits(root / "weights" / "vits-fr")
    voices = root / "voices"
    voices.mkdir()
    doc = voice_doc("tiny-vits-fr", language="fr", source={"path": "../weights/vits-fr"},
                    usage_classes=["experiment", "internal"])
    (voices / "tiny-vits-fr.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    settings = Settings(home=root / "home", ray_num_cpus=2, voices_dir=voices)
    brief = _brief(root / "brief.yaml")
    ctx = render(brief, root / "out", settings=settings)
    manifest = json.loads((root / "out" / "manifest.json").read_text())
    return {"root": root, "settings": settings, "ctx": ctx, "manifest": manifest, "out": root / "out",
            "brief": brief}


def _by(manifest: dict[str, Any], spec: str) -> dict[str, dict[str, Any]]:
    return {d["locale"]: d for d in manifest["deliverables"] if d["spec"] == spec}


def _frame(video: Path, t: float) -> Image.Image:
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
                            "-of", "json", str(video)], capture_output=True, text=True, check=True).stdout
    s = json.loads(probe)["streams"][0]
    w, h = int(s["width"]), int(s["height"])
    raw = subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{t:.3f}", "-i", str(video), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return Image.fromarray(np.frombuffer(raw[: w * h * 3], np.uint8).reshape(h, w, 3))


def _pcm(video: Path) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-map", "0:a:0", "-ac", "1", "-ar", "16000",
                          "-f", "s16le", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.int16).astype(np.float64)


def test_one_set_per_locale_with_the_locale_in_each_name(run: dict[str, Any]) -> None:
    import jsonschema

    from studio.inspect import manifest_json_schema

    m = run["manifest"]
    jsonschema.validate(m, manifest_json_schema())
    assert m["brief"]["locales"] == LOCALES
    for spec in (VIDEO, BANNER):
        by = _by(m, spec)
        assert sorted(by) == sorted(LOCALES), by
        for loc, d in by.items():
            assert re.search(rf"_{spec}_{loc}_v\d{{3}}\.(mp4|jpg|png)$", d["path"]), d["path"]
            assert (run["out"] / d["path"]).is_file()
    # what each shows is on its record: the copy, the font and the logo with hashes and rights
    banner, video = _by(m, BANNER)["fr-FR"]["copy_inputs"], _by(m, VIDEO)["fr-FR"]["copy_inputs"]
    assert {"field": "copy.headline", "text": HEADLINE["fr-FR"]} in banner["copy"]
    assert {"field": "copy.cta", "text": CTA["fr-FR"]} in banner["copy"]
    assert {"field": "beats[0].supers.headline", "text": SUPERS["fr-FR"]} in video["copy"]
    for rec in (banner, video):
        assert rec["font"]["file"].endswith(".ttf") and len(rec["font"]["sha256"]) == 64 and rec["font"]["licence"]
        assert rec["logo"]["rights"]["licence"] and len(rec["logo"]["sha256"]) == 64
    # each locale's edit, its voice and how it was spoken
    kinds = {t["kind"] for t in m["timelines"] if t["format"] == "otio_json"}
    assert kinds == {"edit", "edit.fr-FR", "edit.de-DE", "stills"}, kinds
    edits = sorted(Path(t["path"]).name for t in m["timelines"] if t["format"] == "otio_json" and t["kind"] != "stills")
    assert [re.sub(r"_v\d{3}\.otio$", "", n).rsplit("_", 1)[1] for n in edits] == ["de-DE", "en-GB", "fr-FR"]
    passes = {p["locale"]: p for p in m["locales"]}
    assert passes["en-GB"]["mode"] == "voiced" and passes["en-GB"]["voice"] == "joe-us"
    assert passes["fr-FR"]["mode"] == "voiced" and passes["fr-FR"]["voice"] == "tiny-vits-fr"
    assert passes["de-DE"]["mode"] == "subtitled" and passes["de-DE"]["voice"] is None
    assert "no registered voice speaks de" in passes["de-DE"]["why"]
    assert any(w.startswith("locale de-DE: no registered voice speaks de") and "keep the en-GB voice" in w
               for w in m["warnings"]), m["warnings"]


def test_captions_are_each_locales_words(run: dict[str, Any]) -> None:
    by = _by(run["manifest"], VIDEO)
    for loc in LOCALES:
        srt = (run["out"] / by[loc]["captions"]["srt"]).read_text(encoding="utf-8")
        assert f"_{loc}_" in by[loc]["captions"]["srt"]
        text = " ".join(ln for ln in srt.splitlines() if ln and not ln[0].isdigit())
        for beat in NARRATION.values():
            # every word of the locale's line, accents intact, and no other locale's
            assert all(w in text for w in beat[loc].split()), (loc, text)
    # German is subtitled: its captions sit where the English voice speaks
    def times(loc: str) -> list[str]:
        srt = (run["out"] / by[loc]["captions"]["srt"]).read_text(encoding="utf-8")
        return [ln for ln in srt.splitlines() if "-->" in ln]

    assert times("de-DE")[0].split(" --> ")[0] == times("en-GB")[0].split(" --> ")[0]


def test_each_locale_has_its_own_sound(run: dict[str, Any]) -> None:
    """fr-FR is dubbed (its own voice: a different soundtrack); de-DE keeps en-GB's voice."""
    by = _by(run["manifest"], VIDEO)
    en, fr, de = (_pcm(run["out"] / by[loc]["path"]) for loc in LOCALES)
    n = min(len(en), len(fr), len(de))
    en, fr, de = en[:n], fr[:n], de[:n]
    # The same mix for en-GB and de-DE (a master made once, reused): equal to within the
    # encoder's noise; fr-FR carries another voice.
    assert np.sqrt(np.mean((en - de) ** 2)) < 0.05 * np.sqrt(np.mean(en ** 2))
    assert np.sqrt(np.mean((en - fr) ** 2)) > 0.2 * np.sqrt(np.mean(en ** 2))
    with Session(db.make_engine(run["settings"].db_url)) as s:
        lines = s.exec(select(db.AudioAsset).where(db.AudioAsset.run_id == run["ctx"].run_id,
                                                   db.AudioAsset.kind == "voice-line")).all()
    assert sorted((ln.params["voice"], ln.params["text"]) for ln in lines) == sorted(
        [("joe-us", NARRATION[b]["en-GB"]) for b in NARRATION] + [("tiny-vits-fr", NARRATION[b]["fr-FR"]) for b in NARRATION])


def test_french_copy_super_and_captions_read_back(run: dict[str, Any]) -> None:
    by = _by(run["manifest"], VIDEO)
    video = run["out"] / by["fr-FR"]["path"]
    frame = _frame(video, 1.2)  # beat 1: its super and its caption
    # white text keyed out too: the super's scrim lies over the sunrise's gradient
    read = ocr(frame, lang="fra") + "\n" + ocr(colour_key(frame, "#ffffff", 90), lang="fra")
    assert words_in_order(SUPERS["fr-FR"], read), read
    assert words_in_order("Café glacé à l'aube", read), read
    en_frame = _frame(run["out"] / by["en-GB"]["path"], 1.2)
    english = ocr(en_frame) + "\n" + ocr(colour_key(en_frame, "#ffffff", 90))
    assert words_in_order(SUPERS["en-GB"], english) and not words_in_order(SUPERS["fr-FR"], english), english
    banner = _by(run["manifest"], BANNER)["fr-FR"]
    with Image.open(run["out"] / banner["path"]) as im:
        read = ocr(im.convert("RGB"), lang="fra")
    assert words_in_order(HEADLINE["fr-FR"], read), read


def test_a_rerender_reuses_every_locale(run: dict[str, Any], tmp_path: Path) -> None:
    """Every locale's steps are cached: the same brief again makes nothing, and `studio
    plan` names each locale's steps."""
    from studio.pipeline import plan, render

    p = plan(run["brief"], settings=run["settings"])
    stages = {s.stage for s in p.steps}
    assert {"voice fr-FR", "mix fr-FR", "conform fr-FR", "conform de-DE"} <= stages, stages
    assert not p.running(), [(s.stage, s.item, s.why) for s in p.running()]
    ctx = render(run["brief"], tmp_path / "again", settings=run["settings"], force=True)
    with Session(db.make_engine(run["settings"].db_url)) as s:
        r = s.get(db.Run, ctx.run_id)
    cache = r.settings["cache"]
    for stage in ("voice fr-FR", "conform fr-FR", "conform de-DE", "conform"):
        assert cache[stage]["made"] == 0, (stage, cache)


def test_the_bilingual_example_fits_every_channel_in_both_locales(tmp_path: Path) -> None:
    """examples/briefs/launch-en-fr.yaml: its French copy, supers and narration pass every
    check (each text fitted to each channel in both locales), and its plan has each
    locale's steps; French goes out subtitled (no French voice ships)."""
    from audio.voices import VoiceRegistry
    from studio.brief import load_brief
    from studio.pipeline import locale_plan, plan
    from studio.settings import Settings

    path = EXAMPLE.parent / "launch-en-fr.yaml"
    brief, _ = load_brief(path)
    assert brief.all_locales == ["en-GB", "fr-FR"]
    settings = Settings(home=tmp_path / "home")
    p = plan(path, settings=settings)
    stages = {s.stage for s in p.steps}
    assert {"conform", "conform fr-FR", "mix fr-FR"} <= stages and "voice fr-FR" not in stages, stages
    (fr,) = locale_plan(brief, VoiceRegistry(settings.voices_dir))
    assert fr["mode"] == "subtitled" and "no registered voice speaks fr" in fr["why"]
    assert any("conform fr-FR" in line for line in p.lines())


def test_a_frame_note_names_each_locales_video() -> None:
    from studio.api.media import TARGET_RE, _target_of
    from studio.api.outputs import _Asset

    def target(locale: str | None) -> str | None:
        return _target_of(_Asset({"role": "deliverable", "kind": "video", "spec": VIDEO, "locale": locale}, None))

    assert target(None) == f"deliverable:{VIDEO}"
    assert target("fr-FR") == f"deliverable:{VIDEO}.fr-FR" != target("en-GB")
    assert re.match(TARGET_RE, target("fr-FR") or "")


def test_each_locales_video_traces_to_its_own_voice(run: dict[str, Any]) -> None:
    """Lineage per locale: the French video reaches the French voice's lines and its own
    mix; the English one the English voice; the subtitled German one the English lines."""
    from studio import lineage

    engine = db.make_engine(run["settings"].db_url)
    by = _by(run["manifest"], VIDEO)

    def reached(loc: str) -> tuple[set[str], set[str]]:
        with Session(engine) as s:
            row = s.exec(select(db.Deliverable).where(db.Deliverable.run_id == run["ctx"].run_id,
                                                      db.Deliverable.sha256 == by[loc]["sha256"])).one()
        found: set[tuple[str, str]] = set()

        def walk(item: dict[str, Any]) -> None:
            found.add((item["kind"], item["id"]))
            for child in item.get("children", []):
                walk(child)

        walk(lineage.lineage(engine, row.id)["tree"])
        return {i for k, i in found if k == "voice"}, {i for k, i in found if k == "mix"}

    (en_voice, en_mix), (fr_voice, fr_mix), (de_voice, de_mix) = (reached(loc) for loc in LOCALES)
    assert en_voice == {"joe-us"} and fr_voice == {"tiny-vits-fr"} and de_voice == {"joe-us"}
    assert len(en_mix | fr_mix | de_mix) == 3 and en_mix != fr_mix != de_mix, (en_mix, fr_mix, de_mix)
