"""Stage ``voice``: each beat's narration as a voice line, placed on the edit.

The line for a beat is synthesised by the brief's voice (a registry entry: Piper in
process by default, a GPU model on a Ray actor in production), its leading and trailing
silence trimmed so the words start where the line is placed, converted to the stems'
48 kHz, fitted to the beat (``fit_to_beat``: time-stretched up to 10% with the pitch
kept, or refused with the beat and the overrun), and placed ``LEAD`` after the cut. The
sentence times (Piper renders sentence by sentence) travel with the line: captions are
cut from them.

Everything about the voice that can be refused is refused before any work
(``check_voice_plan``, called by the brief checks): an unlicensed voice for the usage
class, a cloned voice without consent, narration the voice cannot read.
"""

from __future__ import annotations

import math
import subprocess
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from audio.voices import VoiceEntry
from studio import db
from studio.brief import Brief
from studio.context import ShotPlan, StageEnv
from studio.errors import StageError, StudioError, quote
from studio.store import MediaRef
from studio.timecode import beat_times

CODE_VERSION = "voice.1"
STEM_RATE = 48000
LEAD = 0.2  # seconds from the cut to the first word: the picture lands before the voice
TAIL = 0.1  # seconds kept clear before the next cut
MIN_ROOM = 0.3  # the shortest room for words a voice line is placed in
MIN_VOICE_BEAT = LEAD + TAIL + MIN_ROOM  # a beat with narration is at least this long
SILENCE_DBFS = -50.0  # below this a Piper line's head and tail are silence
PAD = 0.01  # kept around the words when trimming, so no consonant is clipped


def _language(code: str) -> str:
    """The language part of a locale or voice language: ``fr-FR`` and ``fr_FR`` are ``fr``."""
    return code.replace("_", "-").split("-")[0].lower()


def choose_voice(brief: Any, registry: Any) -> Any:
    """The voice entry the brief's narration uses (None when no beat has narration)."""
    from audio.voices import check_voice

    if not any(b.narration.strip() for b in brief.beats):
        return None
    language = _language(brief.locale)
    if brief.voice:
        entry = registry.get(brief.voice, field="voice")
        check_voice(entry, brief.usage_class, registry=registry)
        if _language(entry.language) != language:
            # A voice reads with its own language's phonemizer: French narration through an
            # English voice comes out as nonsense, with no error from the engine.
            raise StudioError(
                f"voice {entry.id!r} speaks {entry.language} but the brief's locale is "
                f"{brief.locale}: the narration would be read with {entry.language} pronunciation",
                fix=f"name a voice that speaks {language} (`studio voices`), or set locale to the "
                    "narration's language", stage="voice", field="voice")
        return entry
    allowed = [registry.entries[i] for i in registry.allowed_for(brief.usage_class)]
    allowed = [e for e in allowed if e.kind != "cloned" or e.consent is not None]
    same = [e for e in allowed if _language(e.language) == language]
    if same:
        return same[0]
    speakers = [e for e in registry.entries.values() if _language(e.language) == language]
    if speakers:
        # Voices for the language exist but none may be used here: say why, per voice.
        why = "; ".join(
            f"{e.id}: {', '.join(e.usage_classes)} only ({(e.usage_reason or e.licence).strip()})"
            if brief.usage_class not in e.usage_classes else f"{e.id}: cloned without a consent record"
            for e in speakers)
        what = f"no voice for {language} is licensed for {brief.usage_class} use ({why})"
    else:
        spoken: dict[str, list[str]] = {}
        for e in registry.entries.values():
            spoken.setdefault(_language(e.language), []).append(e.id)
        what = (f"no registered voice speaks {language} (locale {brief.locale}); the registered "
                "voices speak " + "; ".join(f"{lang} ({', '.join(ids)})" for lang, ids in sorted(spoken.items())))
    raise StudioError(
        what,
        fix=f"add a Voice entry for {language} licensed for {brief.usage_class} use "
            "(STUDIO_VOICES_DIR) and name it in voice:, change usage_class or locale, or leave "
            "the narration empty",
        stage="voice", field="voice",
    )


def locale_voice(brief: Any, locale: str, registry: Any) -> tuple[Any, str | None]:
    """The voice that speaks ``locale``'s narration, for a locale after the brief's first:
    ``(entry, None)``, or ``(None, why)`` when no voice may speak it and the locale ships
    subtitled (the first locale's voice, this locale's captions). A voice the brief names
    for the locale (``voices``) is never replaced: its problems are the brief's errors."""
    localized = brief.localized(locale)
    if not any(b.narration.strip() for b in localized.beats):
        return None, None
    if localized.voice:
        return choose_voice(localized, registry), None
    try:
        return choose_voice(localized, registry), None
    except StudioError as e:
        return None, e.what


def check_voice_plan(brief: Any, registry: Any, source: str | None = None) -> list[StudioError]:
    """The voice and every beat's narration, checked without rendering anything: in the
    brief's first locale, and in each other locale a voice speaks (``locale_voice``; a
    locale without one ships subtitled and speaks nothing)."""
    locales = brief.all_locales
    per_locale = any(isinstance(b.narration, dict) for b in brief.beats)
    errors = _check_locale_plan(brief.localized(locales[0]), registry, source, locales[0] if per_locale else None)
    for loc in locales[1:]:
        try:
            entry, _why = locale_voice(brief, loc, registry)
        except StudioError as e:
            e.source, e.field = source, f"voices.{loc}"
            errors.append(e)
            continue
        if entry is not None:
            errors += _check_locale_plan(brief.localized(loc), registry, source, loc)
    return errors


def _check_locale_plan(brief: Any, registry: Any, source: str | None, locale: str | None) -> list[StudioError]:
    from audio.tts import MAX_CHARS, speakable

    errors: list[StudioError] = []
    try:
        entry = choose_voice(brief, registry)
    except StudioError as e:
        # Keep going: the narration's own problems are reported in the same pass.
        e.source = source
        errors.append(e)
        entry = None
    if entry is None and not errors:
        return []
    for i, beat in enumerate(brief.beats):
        text = beat.narration.strip()
        if not text:
            continue
        field = f"beats[{i}].narration" + (f".{locale}" if locale else "")
        where = {"stage": "voice", "shot": beat.id, "field": field, "source": source}
        if beat.duration <= MIN_VOICE_BEAT:
            errors.append(StudioError(
                f"the beat is {beat.duration:g} s: too short for a voice line (the words start "
                f"{LEAD:g} s after the cut and end {TAIL:g} s before the next; a line needs more "
                f"than {MIN_VOICE_BEAT:g} s)", fix="lengthen the beat or leave its narration empty",
                **{**where, "field": f"beats[{i}].duration"}))
            continue
        if len(text) > MAX_CHARS:
            errors.append(StudioError(
                f"narration is {len(text):,} characters; the limit is {MAX_CHARS:,} "
                f"(about {MAX_CHARS // 15} s of speech)", fix="split it across beats or shorten it", **where))
            continue
        # Without a voice, only what no voice could speak is checked (the script needs one).
        say, _dropped, foreign = speakable(text, entry.script if entry is not None else "")
        if entry is not None and foreign:
            sample = "".join(dict.fromkeys(foreign))[:12]
            errors.append(StudioError(
                f"narration has letters the voice {entry.id!r} ({entry.language}, {entry.script} "
                f"script) cannot read: {sample!r}", fix="translate it or pick a voice for that language",
                **where))
        elif not any(c.isalnum() for c in say):
            errors.append(StudioError(
                f"narration {quote(text, 40)} has nothing "
                f"{f'the voice {entry.id!r}' if entry is not None else 'a voice'} can speak (no letters "
                "or digits; emoji and symbols are not read)",
                fix="write the line in words, or leave narration empty for no voice line", **where))
    return errors


def _speech_bounds(wav: Path) -> tuple[float, float, float]:
    """(first, last) second of speech in a 16-bit mono WAV, and its length."""
    with wave.open(str(wav), "rb") as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
    length = len(pcm) / rate
    # 10 ms RMS windows: a single click does not count as speech.
    win = max(1, rate // 100)
    n = len(pcm) // win
    if n == 0:
        return 0.0, length, length
    rms = np.sqrt(np.mean(pcm[: n * win].reshape(n, win) ** 2, axis=1) + 1e-12)
    loud = np.nonzero(20 * np.log10(rms) > SILENCE_DBFS)[0]
    if loud.size == 0:
        return 0.0, length, length
    first = max(0.0, loud[0] * win / rate - PAD)
    last = min(length, (loud[-1] + 1) * win / rate + PAD)
    return first, last, length


def _trim_resample(src: Path, dst: Path, start: float, end: float) -> None:
    args = ["ffmpeg", "-hide_banner", "-nostats", "-v", "error", "-y", "-i", str(src),
            "-af", f"atrim=start={start:.6f}:end={end:.6f},asetpts=PTS-STARTPTS",
            "-ar", str(STEM_RATE), "-ac", "1", "-c:a", "pcm_s16le", str(dst)]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise StageError(f"ffmpeg could not trim {src.name}: {proc.stderr.strip()[-200:]}",
                         stage="voice", fix="check the voice's output WAV")


def _pad_to(src: Path, dst: Path, seconds: float) -> None:
    """Pad with silence to exactly ``seconds`` (a whole number of edit frames)."""
    samples = round(seconds * STEM_RATE)
    args = ["ffmpeg", "-hide_banner", "-nostats", "-v", "error", "-y", "-i", str(src),
            "-af", f"apad=whole_len={samples},atrim=end_sample={samples}",
            "-ar", str(STEM_RATE), "-ac", "1", "-c:a", "pcm_s16le", str(dst)]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise StageError(f"ffmpeg could not pad {src.name}: {proc.stderr.strip()[-200:]}",
                         stage="voice", fix="check the voice line WAV")


def place_line(raw: dict[str, Any], *, beat: str, text: str, beat_start: Fraction, beat_duration: Fraction,
               rate: Fraction, work: Path) -> tuple[Path, dict[str, Any]]:
    """Trim, resample, fit and place one synthesised line. Returns the line's WAV (padded
    to whole edit frames) and its placement: start/end of the words on the edit and the
    sentence times, all in seconds on the edit."""
    from audio.tts import fit_to_beat

    src = Path(raw["wav"])
    first, last, _length = _speech_bounds(src)
    trimmed = work / f"{beat}.trim.wav"
    _trim_resample(src, trimmed, first, last)
    # The line starts LEAD after the cut, on a frame, so an NLE shows it where we mix it.
    lead_frames = min(math.ceil(LEAD * rate), max(0, int(beat_duration * rate) - 1))
    lead = Fraction(lead_frames) / rate
    room = float(beat_duration - lead) - TAIL
    if room <= MIN_ROOM:
        raise StageError(f"the beat is {float(beat_duration):.2f} s: too short for a voice line",
                         stage="voice", shot=beat, field="duration",
                         fix="lengthen the beat or leave its narration empty")
    fit = fit_to_beat(trimmed, room, beat=beat)
    spoken = float(fit.get("duration_after") or fit["duration"])
    tempo = float(fit["tempo"])
    frames = math.ceil(spoken * rate)
    line_wav = work / f"{beat}.line.wav"
    _pad_to(trimmed, line_wav, frames / rate)
    start = beat_start + lead
    sentences = raw.get("sentences") or [{"text": text, "start": first, "end": last}]
    placed = []
    for s in sentences:
        a = min(max((float(s["start"]) - first) / tempo, 0.0), spoken)
        b = min(max((float(s["end"]) - first) / tempo, a), spoken)
        placed.append({"text": s["text"], "start": round(float(start) + a, 4), "end": round(float(start) + b, 4)})
    if placed:
        # Sentence edges come from chunk lengths, which include Piper's own pauses: the
        # first sentence starts with the words and the last ends with them.
        placed[0]["start"] = round(float(start), 4)
        placed[-1]["end"] = round(float(start) + spoken, 4)
    return line_wav, {
        "start": float(start), "end": float(start) + spoken, "start_frame": int(start * rate),
        "frames": frames, "spoken": spoken, "tempo": tempo, "stretched": bool(fit["stretched"]),
        "trimmed": [round(float(first), 4), round(float(last), 4)], "sentences": placed,
        "slack": round(room - spoken, 4),
    }


def voice_stem(lines: list[dict[str, Any]], store: Any, total: Fraction, out: Path) -> None:
    """All lines on one mono 48 kHz stem of the spot's length. pydub reads and checks
    each segment; placement is by sample (lines start on frames, which at 30 or 29.97 fps
    are not whole milliseconds, pydub's unit)."""
    from pydub import AudioSegment

    n = round(total * STEM_RATE)
    pcm = np.zeros(n, dtype=np.int32)
    for line in lines:
        seg = AudioSegment.from_wav(store.path(line["ref"]))
        if seg.frame_rate != STEM_RATE or seg.channels != 1 or seg.sample_width != 2:
            raise StageError(f"voice line {line['beat']} is {seg.frame_rate} Hz × {seg.channels}, "
                             f"not {STEM_RATE} Hz mono 16-bit", stage="voice", shot=line["beat"],
                             fix="re-run the voice stage")
        at = round(line["start"] * STEM_RATE)
        add = np.frombuffer(seg.raw_data, dtype="<i2")[: max(0, n - at)]
        pcm[at: at + len(add)] += add
    stem = AudioSegment(np.clip(pcm, -32768, 32767).astype("<i2").tobytes(), frame_rate=STEM_RATE,
                        sample_width=2, channels=1)
    from studio.store import atomic_output

    with atomic_output(out) as tmp:
        stem.export(tmp, format="wav")


def voice_identity(entry: Any) -> dict[str, Any]:
    """What about a voice changes its lines: the entry (less where its files lie) and the
    content of its model files. A voice whose files cannot be named (a hub id) is named by
    its id and revision."""
    from studio.cache import file_digest, folder_digest

    # where it runs (device, GPUs per actor) is not what it says, nor are its ledger terms
    doc = entry.model_dump(mode="json", by_alias=True, exclude={"device", "gpus", "rights"})
    doc["source"] = {k: v for k, v in doc["source"].items() if k != "path"}
    files: dict[str, str | None] = {}
    for name, path in entry.files().items():
        if path is None or not Path(path).exists():
            files[name] = None
        else:
            files[name] = folder_digest(path) if Path(path).is_dir() else file_digest(path)
    return {"entry": doc, "files": files}


def voice_recipe(brief: Any, shots: list[Any], rate: Fraction, entry: Any) -> dict[str, Any]:
    """The voice stage's content inputs: each narrated beat's text and its place on the
    edit, and the voice. What the action key of the stage is made from (studio.cache)."""
    beats = {b.id: b for b in brief.beats}
    return {
        "voice": voice_identity(entry) if entry is not None else None,
        "lines": [{"beat": b, "text": beats[b].narration.strip(), "start": str(start), "duration": str(dur)}
                  for b, start, dur in beat_times(shots, rate)],
        "stem_rate": STEM_RATE, "lead": LEAD, "tail": TAIL,
    }


@dataclass
class VoiceInputs:
    brief: Brief
    shots: list[ShotPlan]
    edit_rate: Fraction
    voice: VoiceEntry | None  # None when no beat has narration


@dataclass
class VoiceOutputs:
    voice_lines: list[dict[str, Any]]  # placed lines, by beat order
    voice_stem: MediaRef  # every line on one stem of the spot's length
    voice_key: str  # the stage's action key: the music's premix is keyed by it
    counts: dict[str, int]


def voice_over(env: StageEnv, inputs: VoiceInputs) -> VoiceOutputs:
    """The stage: one line per beat with narration, then the voice stem. Made once per
    recipe (studio.cache.memo): the same lines by the same voice are reused, recorded for
    this run as they were made."""
    from studio.cache import ActionCache, memo

    doc = voice_recipe(inputs.brief, inputs.shots, inputs.edit_rate, inputs.voice)
    out, reused_from, key = memo(ActionCache(env.engine, env.store), "voice", CODE_VERSION, doc,
                                 lambda: _make_voice(env, inputs), env.run_id)
    env.recipes["voice"] = {"spot": {"key": key, "doc": doc}}
    lines = _apply_voice(env, inputs, out, reused_from)
    return VoiceOutputs(voice_lines=lines, voice_stem=MediaRef.from_dict(out["stem"]), voice_key=key,
                        counts={"reused": int(reused_from is not None), "made": int(reused_from is None)})


def _make_voice(env: StageEnv, inputs: VoiceInputs) -> dict[str, Any]:
    from audio.actors import synthesize_lines

    entry = inputs.voice
    rate = inputs.edit_rate
    times = beat_times(inputs.shots, rate)
    total = sum((d for _, _, d in times), Fraction(0))
    beats = {b.id: b for b in inputs.brief.beats}
    work = env.scratch_dir / "voice"
    work.mkdir(parents=True, exist_ok=True)
    jobs = [(beat_id, beats[beat_id].narration.strip(), work / f"{beat_id}.raw.wav")
            for beat_id, _, _ in times if beats[beat_id].narration.strip()]
    lines: list[dict[str, Any]] = []
    warnings: list[str] = []
    if entry is not None and jobs:
        records = synthesize_lines(entry, jobs, settings=env.settings, deterministic=True)
        by_beat = {r["beat"]: r for r in records}
        for beat_id, start, dur in times:
            raw = by_beat.get(beat_id)
            if raw is None or raw.get("skipped"):
                continue
            text = beats[beat_id].narration.strip()
            wav, placed = place_line(raw, beat=beat_id, text=text, beat_start=start,
                                     beat_duration=dur, rate=rate, work=work)
            ref = env.store.put_file(wav, ".wav")
            if placed["stretched"]:
                warnings.append(f"voice: beat {beat_id}: the line ran {100 * (placed['tempo'] - 1):.1f}% "
                                "over its beat and was sped up to fit (pitch kept)")
            params = {k: v for k, v in raw.items() if k not in ("wav", "beat")}
            lines.append({"beat": beat_id, "text": text, "voice": entry.id, "ref": ref.to_dict(), **placed,
                          "synthesis": params})
    stem = work / "voice.stem.wav"
    voice_stem([{**ln, "ref": MediaRef.from_dict(ln["ref"])} for ln in lines], env.store, total, stem)
    return {"lines": lines, "stem": env.store.put_file(stem, ".wav").to_dict(), "warnings": warnings}


def _apply_voice(env: StageEnv, inputs: VoiceInputs, out: dict[str, Any],
                 reused_from: str | None) -> list[dict[str, Any]]:
    """The stage's placed lines, and its records in the database, alike whether the lines
    were made now or reused (then ``reused_from`` names the run that made them)."""
    entry = inputs.voice
    for message in out["warnings"]:
        env.warn(message)
    lines = [{**ln, "ref": MediaRef.from_dict(ln["ref"])} for ln in out["lines"]]
    with env.session() as s:
        for line in lines:
            assert entry is not None  # lines are made only by a voice
            placed = {k: v for k, v in line.items() if k not in ("beat", "text", "voice", "ref", "synthesis")}
            s.add(db.AudioAsset(
                id=db.new_id("vl"), run_id=env.run_id, kind="voice-line", name=line["beat"],
                beat_id=line["beat"], sha256=line["ref"].sha256, start=line["start"], duration=line["spoken"],
                code_version=CODE_VERSION,
                params={"text": line["text"], "voice": entry.id, "backend": entry.backend, **placed,
                        **({"locale": env.locale} if env.locale else {}),
                        "synthesis": line["synthesis"],
                        **({"reused_from": reused_from} if reused_from else {})},
                rights=entry.ledger_rights(),  # what studio.rights makes the voice's record of
            ))
    for beat_id, _, _ in beat_times(inputs.shots, inputs.edit_rate):
        env.reporter.advance("voice", shot=beat_id)
    return lines
