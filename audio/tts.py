"""Narration: text to a WAV per beat with Piper, and fitting a line to its beat.

``PiperBackend`` loads a registry voice's ONNX model once (offline: the model and config
come from the installed voice package, espeak-ng data from the piper-tts wheel) and
renders one line per beat. Validation happens before synthesis and names the beat:

* empty / whitespace narration is not an error: ``synthesize`` returns
  ``{"skipped": True, ...}`` and writes no file — the beat simply has no voice line;
* narration over ``MAX_CHARS`` characters is refused (see below);
* text with nothing the voice can say is refused. espeak-ng does not fail on such text:
  it *spells it out* ("😀" becomes "grinning face", "你好" becomes "Chinese letter
  Chinese letter"), so the check is ours: emoji and other symbols are dropped (and
  reported in ``dropped``), letters of a script other than the voice's are refused, and
  text left with no letter or digit of the voice's script is refused.

Determinism: Piper's VITS model samples noise inside the ONNX graph, and
``onnxruntime.set_seed`` does not reach it (checked with piper-tts 1.8): by default the
same text gives different samples (and lengths) each time. ``deterministic=True`` sets
noise_scale and noise_w to 0, which makes the output bit-identical run to run on one
machine at the cost of a flatter delivery.

Alignment: piper reports per-phoneme sample counts only for a model patched with
``piper.patch_voice_with_alignment`` (or with the optional ``onnx`` package installed);
the shipped joe-us model is not, so results carry the phonemes and ``alignment: None``.
"""

from __future__ import annotations

import re
import subprocess
import time
import unicodedata
import wave
from pathlib import Path
from typing import Any

import numpy as np

from audio.voices import VoiceEntry
from studio.errors import StageError
from studio.store import atomic_output

# One beat's narration. 1000 characters is about 65 s of speech at this voice's
# ~15 characters per second: longer than any beat a short-form video has, and about 15 s
# of synthesis on 2 cores. Longer text is almost always a script pasted into one beat.
MAX_CHARS = 1000
# Piper normalises each sentence to 0 dBFS on its own, which makes sentence levels jump
# and leaves no headroom; we normalise the whole line once, to this sample peak.
PEAK_DBFS = -1.0

# Emoji and pictographs, their modifiers and joiners: dropped, never spoken.
_DROP_CATEGORIES = {"So", "Sk", "Cs", "Co", "Cn", "Cf"}
_DROP_CHARS = {"\ufe0e", "\ufe0f", "\u20e3"}


def _script(ch: str) -> str:
    """The Unicode script of a letter, from its name ("LATIN SMALL LETTER A" -> "Latin").
    Python has no script property; the name's first word is it for the scripts espeak reads."""
    name = unicodedata.name(ch, "")
    first = name.split(" ", 1)[0] if name else "UNKNOWN"
    return first.capitalize()


def speakable(text: str, script: str) -> tuple[str, str, str]:
    """Split ``text`` into (what to speak, dropped symbols, letters of other scripts)."""
    kept: list[str] = []
    dropped: list[str] = []
    foreign: list[str] = []
    for ch in unicodedata.normalize("NFC", text):
        cat = unicodedata.category(ch)
        if cat in _DROP_CATEGORIES or ch in _DROP_CHARS:
            dropped.append(ch)
            continue
        if cat.startswith("L") and _script(ch) != script:
            foreign.append(ch)
        kept.append(ch)
    return "".join(kept), "".join(dropped), "".join(foreign)


def _error(beat: str, what: str, fix: str, field: str = "narration") -> StageError:
    return StageError(what, fix=fix, stage="voice", shot=beat, field=field)


def check_text(text: str, entry: VoiceEntry, *, beat: str) -> tuple[str, str]:
    """The text to speak and the symbols dropped, or a StageError naming the beat.

    Shared by every TTS backend (audio.registry), so a line is refused in the same words
    whichever voice reads it."""
    if len(text) > MAX_CHARS:
        raise _error(beat, f"narration is {len(text):,} characters; the limit is "
                     f"{MAX_CHARS:,} (about {MAX_CHARS // 15} s of speech)",
                     "split it across beats or shorten it")
    say, dropped, foreign = speakable(text, entry.script)
    if foreign:
        sample = "".join(dict.fromkeys(foreign))[:12]
        raise _error(beat, f"narration has letters the voice {entry.id!r} "
                     f"({entry.language}, {entry.script} script) cannot read: "
                     f"{sample!r}", "translate it or pick a voice for that language")
    if not any(unicodedata.category(c)[0] in "LN" for c in say):
        shown = text.strip()[:40]
        raise _error(beat, f"narration {shown!r} has nothing the voice {entry.id!r} "
                     "can speak (no letters or digits; emoji and symbols are not read)",
                     "write the line in words, or leave narration empty for no voice line")
    return say.strip(), dropped


class PiperBackend:
    """One Piper voice, loaded once, rendering one WAV per beat."""

    def __init__(self, voice_entry: VoiceEntry, *, deterministic: bool = False) -> None:
        if voice_entry.backend != "piper":
            raise _error("-", f"voice {voice_entry.id!r} runs on {voice_entry.backend!r}, not piper",
                         "use a piper voice", field="voice")
        from piper import PiperVoice  # imported here: listing voices must not load onnxruntime

        self.entry = voice_entry
        self.deterministic = deterministic
        files = voice_entry.files()
        model, config = files["model"], files["config"]
        for p in (model, config):
            if p is None or not p.is_file():
                raise StageError(f"voice {voice_entry.id!r}: {p} is missing", stage="voice",
                                 field="voice", fix="reinstall the voice package or fix source")
        t0 = time.perf_counter()
        self.voice = PiperVoice.load(model, config_path=config)
        self.load_seconds = time.perf_counter() - t0
        self.sample_rate = int(self.voice.config.sample_rate)

    def _config(self, deterministic: bool) -> Any:
        from piper import SynthesisConfig

        if deterministic:
            return SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, normalize_audio=False)
        return SynthesisConfig(normalize_audio=False)

    def check_text(self, text: str, *, beat: str) -> tuple[str, str]:
        """The text to speak and the symbols dropped, or a StageError naming the beat."""
        return check_text(text, self.entry, beat=beat)

    def synthesize(self, text: str, out_wav: Path, *, beat: str,
                   deterministic: bool | None = None) -> dict[str, Any]:
        """Render ``text`` to a mono 16-bit WAV at the voice's rate, atomically."""
        if not text or not text.strip():
            # The documented graceful path: a beat with no narration has no voice line.
            return {"skipped": True, "reason": "empty narration", "beat": beat,
                    "voice": self.entry.id, "duration": 0.0, "wav": None}
        say, dropped = self.check_text(text, beat=beat)
        det = self.deterministic if deterministic is None else deterministic
        t0 = time.perf_counter()
        chunks = list(self.voice.synthesize(say, syn_config=self._config(det)))
        seconds = time.perf_counter() - t0
        if not chunks:
            raise _error(beat, f"piper produced no phonemes for {say[:40]!r}",
                         "write the line in words the voice's language can read")
        audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if peak < 1e-6:
            raise _error(beat, "piper produced silence", "write the line in words")
        audio *= 10 ** (PEAK_DBFS / 20) / peak
        pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype("<i2")
        out_wav = Path(out_wav)
        with atomic_output(out_wav) as tmp:
            with wave.open(str(tmp), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(self.sample_rate)
                w.writeframes(pcm.tobytes())
        duration = len(pcm) / self.sample_rate
        sentences = _sentence_times(say, [c.audio_float_array for c in chunks], self.sample_rate)
        alignment = None
        if all(c.phoneme_alignments for c in chunks):
            alignment = [[a.phoneme, a.num_samples] for c in chunks
                         for a in (c.phoneme_alignments or [])]
        return {
            "skipped": False,
            "beat": beat,
            "wav": str(out_wav),
            "voice": self.entry.id,
            "duration": duration,
            "sample_rate": self.sample_rate,
            "phonemes": ["".join(c.phonemes) for c in chunks],
            "alignment": alignment,
            "sentences": sentences,
            "dropped": dropped,
            "deterministic": det,
            "seconds": seconds,
            "rtf": seconds / duration if duration else None,
        }


_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+")


def _sentence_times(text: str, chunks: list[np.ndarray], rate: int) -> list[dict[str, Any]]:
    """Where each sentence is spoken, in seconds from the line's start. Piper renders one
    chunk per sentence; the words within a chunk are found by level (10 ms RMS over
    -50 dBFS), so a sentence starts at its first word, not at the previous one's pause.
    When our sentence split and Piper's disagree, the line is one sentence."""
    texts = [t.strip() for t in _SENTENCE_END.split(text.strip()) if t.strip()]
    spans: list[tuple[float, float]] = []
    t0 = 0
    for a in chunks:
        win = max(1, rate // 100)
        n = len(a) // win
        lo, hi = 0, len(a)
        if n:
            rms = np.sqrt(np.mean(a[: n * win].reshape(n, win).astype(np.float64) ** 2, axis=1) + 1e-12)
            peak = float(np.max(np.abs(a))) or 1.0
            loud = np.nonzero(20 * np.log10(rms / peak) > -50)[0]
            if loud.size:
                lo, hi = int(loud[0] * win), int(min(len(a), (loud[-1] + 1) * win))
        spans.append(((t0 + lo) / rate, (t0 + hi) / rate))
        t0 += len(a)
    if len(texts) != len(spans) or not spans:
        return [{"text": " ".join(text.split()), "start": round(spans[0][0], 4) if spans else 0.0,
                 "end": round(spans[-1][1], 4) if spans else t0 / rate}]
    return [{"text": t, "start": round(a, 4), "end": round(b, 4)} for t, (a, b) in zip(texts, spans, strict=True)]


def probe_duration(path: Path) -> float:
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=False)
    try:
        return float(proc.stdout.strip())
    except ValueError:
        raise StageError(f"ffprobe cannot read {path.name}", stage="voice", source=str(path),
                         fix="check the file is a WAV") from None


def fit_to_beat(wav: Path, beat_seconds: float, *, beat: str, max_stretch: float = 0.10,
                out: Path | None = None) -> dict[str, Any]:
    """Make the voice line fit its beat: leave it if it fits; if it overruns by at most
    ``max_stretch`` (0.10 = 10% faster), speed it up with ffmpeg ``atempo`` (which keeps
    the pitch); otherwise refuse, naming the beat and the overrun in seconds.

    Writes to ``out`` (default: replaces ``wav``), atomically."""
    wav = Path(wav)
    if beat_seconds <= 0:
        raise _error(beat, f"beat length {beat_seconds} s is not positive", "fix the beat's duration",
                     field="duration")
    duration = probe_duration(wav)
    result: dict[str, Any] = {"beat": beat, "beat_seconds": beat_seconds, "duration": duration,
                              "tempo": 1.0, "stretched": False, "wav": str(out or wav)}
    if duration <= beat_seconds:
        if out is not None and Path(out) != wav:
            with atomic_output(Path(out)) as tmp:
                tmp.write_bytes(wav.read_bytes())
        result["slack"] = beat_seconds - duration
        return result
    tempo = duration / beat_seconds
    overrun = duration - beat_seconds
    if tempo - 1 > max_stretch:
        raise _error(beat, f"the voice line is {duration:.2f} s, {overrun:.2f} s over the beat's "
                     f"{beat_seconds:.2f} s; fitting it needs {100 * (tempo - 1):.0f}% faster "
                     f"speech, more than the {100 * max_stretch:.0f}% allowed",
                     "shorten the narration, lengthen the beat, or allow a larger max_stretch")
    # atrim guards against atempo's frame rounding leaving the line a few ms long.
    with atomic_output(Path(out or wav)) as tmp:
        proc = subprocess.run(
            ["ffmpeg", "-hide_banner", "-nostats", "-v", "error", "-y", "-i", str(wav),
             "-af", f"atempo={tempo:.6f},atrim=end={beat_seconds:.6f}", "-c:a", "pcm_s16le",
             str(tmp)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise StageError(f"ffmpeg atempo failed: {proc.stderr.strip()[-200:]}", stage="voice",
                             shot=beat, field="narration", fix="check the WAV")
        new = probe_duration(tmp)
    result.update(tempo=tempo, stretched=True, overrun=overrun, duration_after=new)
    return result
