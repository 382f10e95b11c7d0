"""Voices: the registry's licence and consent refusals, Piper narration and its
validation, fitting a line to its beat. Measurements use ffprobe/ffmpeg directly, not
the code under test."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from audio.tts import MAX_CHARS, PiperBackend, fit_to_beat
from audio.voices import Consent, VoiceEntry, VoiceRegistry, check_voice
from studio.errors import StageError, StudioError

LINE = "Meet the new studio. Every frame, every sound, made to measure."


def ffprobe_seconds(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True)
    return float(out.stdout)


def read_wav(path: Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path), "rb") as w:
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


@pytest.fixture(scope="module")
def registry() -> VoiceRegistry:
    return VoiceRegistry()


@pytest.fixture(scope="module")
def piper(registry: VoiceRegistry) -> PiperBackend:
    # Loaded once for the module: the ONNX session is the slow part.
    return PiperBackend(registry.get("joe-us"))


@pytest.fixture(scope="module")
def line_wav(piper: PiperBackend, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("voice") / "beat1.wav"
    return out, piper.synthesize(LINE, out, beat="b1")


# -- registry -----------------------------------------------------------------------------

def test_default_voice_entry_records_licence_and_restriction(registry: VoiceRegistry) -> None:
    joe = registry.get("joe-us")
    assert joe.backend == "piper" and joe.language == "en_US" and joe.sample_rate == 22050
    assert "MIT" in joe.licence and "CC0" in joe.licence and "lessac" in joe.licence
    assert "lessac" in joe.licence_notes and "GPL" in joe.licence_notes
    assert joe.usage_classes == ["experiment", "internal"]
    assert "lessac" in joe.usage_reason
    files = joe.files()
    assert files["model"].is_file() and files["config"].is_file()
    assert "lessac" in files["model_card"].read_text()  # the card still says what we recorded


def test_public_use_refused_before_render(registry: VoiceRegistry) -> None:
    joe = registry.get("joe-us")
    check_voice(joe, "experiment")
    check_voice(joe, "internal")
    with pytest.raises(StudioError) as e:
        check_voice(joe, "public", registry=registry)
    msg = str(e.value)
    assert "voice 'joe-us' is licensed for experiment and internal use only, not public" in msg
    assert "lessac" in msg
    assert "pick a voice licensed for public use or change usage_class" in msg
    assert e.value.stage == "voice" and e.value.field == "usage_class"
    with pytest.raises(StudioError, match="unknown usage class 'broadcast'"):
        check_voice(joe, "broadcast")


def test_unknown_voice_lists_known(registry: VoiceRegistry) -> None:
    with pytest.raises(StudioError, match="unknown voice 'nobody' — use one of: joe-us"):
        registry.get("nobody")


CLONED = """\
schema: Voice.1
id: ceo-clone
title: The CEO, cloned
kind: cloned
backend: piper
source: {path: models, model: ceo.onnx}
language: en_US
sample_rate: 22050
licence: in-house recording
usage_classes: [experiment, internal, public]
"""


def test_cloned_voice_without_consent_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ceo.yaml").write_text(CLONED)
    with pytest.raises(StudioError) as e:
        VoiceRegistry(tmp_path)
    assert "voice 'ceo-clone' is a cloned voice with no consent record — " \
           "add consent: {who, when, scope}" in str(e.value)
    assert "ceo.yaml" in str(e.value)
    # An entry built in code (bypassing validation) is refused at check time, for every class.
    entry = VoiceEntry.model_construct(**{**VoiceEntry.model_validate(
        {**_cloned_dict(), "consent": _consent()}).__dict__, "consent": None})
    with pytest.raises(StudioError) as e2:
        check_voice(entry, "experiment")
    assert "voice 'ceo-clone' is a cloned voice with no consent record" in str(e2.value)
    assert "add consent: {who, when, scope}" in str(e2.value)


def _consent() -> dict:
    return {"who": "Ana Ruiz (CEO)", "when": "2026-10-01", "scope": "company product videos"}


def _cloned_dict() -> dict:
    import yaml

    return yaml.safe_load(CLONED)


def test_cloned_voice_with_consent_loads(tmp_path: Path) -> None:
    import yaml

    doc = {**_cloned_dict(), "consent": _consent()}
    (tmp_path / "ceo.yaml").write_text(yaml.safe_dump(doc))
    reg = VoiceRegistry(tmp_path)
    entry = reg.get("ceo-clone")
    assert isinstance(entry.consent, Consent) and entry.consent.who.startswith("Ana")
    assert entry.source.path == str((tmp_path / "models").resolve())  # relative to the entry
    check_voice(entry, "public")
    assert reg.allowed_for("public") == ["ceo-clone"]


def test_bad_entry_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(CLONED.replace("kind: cloned", "kind: stock")
                                     .replace("language: en_US", "language: English"))
    with pytest.raises(StudioError) as e:
        VoiceRegistry(tmp_path)
    assert "language" in str(e.value) and "x.yaml" in str(e.value)


# -- synthesis ------------------------------------------------------------------------------

def test_synthesize_writes_a_real_wav(line_wav: tuple[Path, dict], piper: PiperBackend) -> None:
    path, info = line_wav
    rate, pcm = read_wav(path)
    assert rate == 22050 == info["sample_rate"]
    assert info["duration"] == pytest.approx(ffprobe_seconds(path), abs=0.01)
    assert 2.0 < info["duration"] < 8.0
    assert info["voice"] == "joe-us" and info["phonemes"] and info["alignment"] is None
    # normalised once to -1 dBFS sample peak (piper's own output peaks at 0 dBFS)
    assert np.abs(pcm).max() == pytest.approx(32767 * 10 ** (-1 / 20), abs=2)
    print(f"\nPiper RTF {info['rtf']:.3f} ({info['seconds']:.2f} s for {info['duration']:.2f} s), "
          f"load {piper.load_seconds:.2f} s")


def test_empty_narration_is_no_voice_line(piper: PiperBackend, tmp_path: Path) -> None:
    for text in ("", "   \n\t "):
        info = piper.synthesize(text, tmp_path / "e.wav", beat="b2")
        assert info["skipped"] and info["wav"] is None and info["duration"] == 0
    assert not (tmp_path / "e.wav").exists()


@pytest.mark.parametrize("text", ["😀🎉🔥", "...!?", "⭐️ ✨"])
def test_nothing_speakable_is_refused(piper: PiperBackend, tmp_path: Path, text: str) -> None:
    with pytest.raises(StageError) as e:
        piper.synthesize(text, tmp_path / "x.wav", beat="b3")
    assert e.value.line().startswith("stage voice: shot b3: narration: ")
    assert "has nothing the voice 'joe-us' can speak" in str(e.value)
    assert not (tmp_path / "x.wav").exists()


@pytest.mark.parametrize("text", ["你好世界", "Привет мир", "Hello 世界"])
def test_other_script_is_refused(piper: PiperBackend, tmp_path: Path, text: str) -> None:
    with pytest.raises(StageError) as e:
        piper.synthesize(text, tmp_path / "x.wav", beat="b4")
    assert "stage voice: shot b4: narration: narration has letters the voice 'joe-us' " \
           "(en_US, Latin script) cannot read" in str(e.value)


def test_emoji_in_a_sentence_are_dropped_not_read(piper: PiperBackend) -> None:
    say, dropped = piper.check_text("Launch day 🚀 is here!", beat="b5")
    assert say == "Launch day  is here!" and dropped == "🚀"
    assert piper.check_text("Café crème, 2026.", beat="b5")[1] == ""  # Latin with accents, digits


def test_enormous_narration_is_refused(piper: PiperBackend, tmp_path: Path) -> None:
    with pytest.raises(StageError) as e:
        piper.synthesize("word " * 400, tmp_path / "x.wav", beat="b6")
    assert f"narration is 2,000 characters; the limit is {MAX_CHARS:,}" in str(e.value)
    assert e.value.shot == "b6" and e.value.field == "narration"


def test_determinism(piper: PiperBackend, tmp_path: Path) -> None:
    """Default synthesis is NOT deterministic (VITS samples noise in the ONNX graph);
    deterministic=True (no noise) is bit-identical run to run."""
    a = piper.synthesize("Same words.", tmp_path / "a.wav", beat="d", deterministic=True)
    piper.synthesize("Same words.", tmp_path / "b.wav", beat="d", deterministic=True)
    assert a["deterministic"] and np.array_equal(read_wav(tmp_path / "a.wav")[1],
                                                 read_wav(tmp_path / "b.wav")[1])
    piper.synthesize("Same words.", tmp_path / "c.wav", beat="d")
    piper.synthesize("Same words.", tmp_path / "e.wav", beat="d")
    same = np.array_equal(read_wav(tmp_path / "c.wav")[1], read_wav(tmp_path / "e.wav")[1])
    print(f"\ndefault piper output identical run to run: {same}")


# -- fit to beat ------------------------------------------------------------------------------

def test_fits_without_change(line_wav: tuple[Path, dict], tmp_path: Path) -> None:
    path, info = line_wav
    r = fit_to_beat(path, info["duration"] + 1.0, beat="b1", out=tmp_path / "f.wav")
    assert not r["stretched"] and r["tempo"] == 1.0 and r["slack"] == pytest.approx(1.0, abs=0.01)
    assert (tmp_path / "f.wav").read_bytes() == path.read_bytes()


def test_small_overrun_is_time_stretched(line_wav: tuple[Path, dict], tmp_path: Path) -> None:
    path, info = line_wav
    beat = info["duration"] / 1.08  # 8% over
    out = tmp_path / "fit.wav"
    r = fit_to_beat(path, beat, beat="b1", out=out)
    assert r["stretched"] and r["tempo"] == pytest.approx(1.08, abs=0.005)
    measured = ffprobe_seconds(out)
    assert measured <= beat + 0.005 and measured > beat - 0.1
    assert read_wav(out)[0] == 22050


def test_large_overrun_names_beat_and_seconds(line_wav: tuple[Path, dict]) -> None:
    path, info = line_wav
    beat = round(info["duration"] - 1.5, 2)
    with pytest.raises(StageError) as e:
        fit_to_beat(path, beat, beat="b7")
    msg = str(e.value)
    assert msg.startswith("stage voice: shot b7: narration: the voice line is ")
    assert f"over the beat's {beat:.2f} s" in msg
    over = info["duration"] - beat
    assert f"{over:.2f} s over" in msg and "more than the 10% allowed" in msg
    assert "shorten the narration, lengthen the beat" in msg
