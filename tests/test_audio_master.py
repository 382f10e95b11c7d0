"""Mastering: two-pass normalisation plus true-peak limiting must land within ±0.5 LU of
the target and at/below the true-peak ceiling, for music-like and speech signals, long and
short. Every check measures the output with its own ffmpeg ebur128 call, independent of
audio.master's numbers."""

from __future__ import annotations

import re
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from audio.master import master, measure
from studio.errors import StageError

TARGETS = [(-14.0, -1.0), (-23.0, -1.0), (-24.0, -2.0)]


def ebur128(path: Path) -> tuple[float, float]:
    """Integrated LUFS and true peak dBTP, straight from ffmpeg."""
    err = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af",
                          "ebur128=peak=true", "-f", "null", "-"],
                         capture_output=True, text=True, check=True).stderr
    s = err[err.rfind("Summary:"):]
    i = float(re.search(r"I:\s+(-?[\d.]+) LUFS", s).group(1))  # type: ignore[union-attr]
    tp = float(re.search(r"Peak:\s+(-?[\d.]+) dBFS", s).group(1))  # type: ignore[union-attr]
    return i, tp


def write_wav(path: Path, x: np.ndarray, rate: int) -> Path:
    x = np.atleast_2d(x.T).T if x.ndim == 1 else x
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def music_like(seconds: float, rate: int = 48000) -> np.ndarray:
    """A chord, a noise bed and a kick-like transient every half second: a crest factor
    high enough that -14 LUFS needs the limiter to hold a -1 dBTP ceiling."""
    rng = np.random.default_rng(7)
    t = np.arange(int(seconds * rate)) / rate
    chord = sum(np.sin(2 * np.pi * f * t) for f in (110, 220 * 1.26, 330, 440 * 1.5)) / 4
    noise = rng.standard_normal(t.size) * 0.15 * (0.6 + 0.4 * np.sin(2 * np.pi * 0.2 * t))
    phase = t % 0.5
    kick = np.sin(2 * np.pi * (60 + 120 * np.exp(-phase * 30)) * phase) * np.exp(-phase * 12)
    mono = 0.25 * chord + noise + 0.9 * kick
    left, right = mono, 0.9 * mono + 0.1 * np.roll(mono, 240)
    x = np.stack([left, right], axis=1)
    return x / np.abs(x).max() * 0.95


@pytest.fixture(scope="module")
def signals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from audio.tts import PiperBackend
    from audio.voices import VoiceRegistry

    d = tmp_path_factory.mktemp("master")
    out = {
        "music60": write_wav(d / "music60.wav", music_like(60), 48000),
        "music3": write_wav(d / "music3.wav", music_like(3), 48000),
    }
    piper = PiperBackend(VoiceRegistry().get("joe-us"), deterministic=True)
    text = ("Studio turns a brief into finished video. Every shot is generated, graded and "
            "mixed to the channel's loudness target, then checked before delivery.")
    piper.synthesize(text, d / "speech.wav", beat="m1")
    out["speech"] = d / "speech.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(d / "speech.wav"), "-t", "3",
                    str(d / "speech3.wav")], check=True)
    out["speech3"] = d / "speech3.wav"
    return out


@pytest.mark.parametrize("name", ["music60", "speech", "music3", "speech3"])
@pytest.mark.parametrize(("target", "ceiling"), TARGETS)
def test_master_hits_target_and_ceiling(signals: dict[str, Path], tmp_path: Path, name: str,
                                        target: float, ceiling: float) -> None:
    out = tmp_path / f"{name}.wav"
    r = master(signals[name], out, target_lufs=target, true_peak=ceiling, sample_rate=48000)
    i, tp = ebur128(out)
    assert abs(i - target) <= 0.5, (name, target, i, r)
    assert tp <= ceiling, (name, ceiling, tp, r)
    assert r["within_spec"]
    assert r["output"]["integrated"] == pytest.approx(i, abs=0.05)
    info = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                           "stream=sample_rate,codec_name", "-of", "csv=p=0", str(out)],
                          capture_output=True, text=True, check=True).stdout
    assert info.strip() == "pcm_s24le,48000"


def test_gain_method_matches(signals: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "g.wav"
    r = master(signals["music60"], out, target_lufs=-14, true_peak=-1, method="gain")
    i, tp = ebur128(out)
    assert abs(i + 14) <= 0.5 and tp <= -1.0 and r["method"] == "gain"


def test_limiter_engaged_on_loud_target(signals: dict[str, Path], tmp_path: Path) -> None:
    # The test signal is built so that plain gain to -14 LUFS would overshoot -1 dBTP.
    before = measure(signals["music60"])
    assert before["true_peak"] + (-14 - before["integrated"]) > -1.0


def test_measure_agrees_with_ffmpeg(signals: dict[str, Path]) -> None:
    m = measure(signals["speech"])
    i, tp = ebur128(signals["speech"])
    assert m["integrated"] == i and m["true_peak"] == tp and m["lra"] >= 0
    assert m["duration"] > 5


def test_too_short_or_silent_is_refused(tmp_path: Path) -> None:
    short = write_wav(tmp_path / "short.wav", np.full(4800, 0.1), 48000)  # 0.1 s
    with pytest.raises(StageError, match="integrated loudness needs at least 0.4 s"):
        master(short, tmp_path / "o.wav", target_lufs=-14, true_peak=-1)
    silent = write_wav(tmp_path / "silent.wav", np.zeros(48000), 48000)
    with pytest.raises(StageError, match="above the -70 LUFS gate"):
        master(silent, tmp_path / "o.wav", target_lufs=-14, true_peak=-1)
    assert not (tmp_path / "o.wav").exists()


def test_bad_ceiling_names_field(signals: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(StageError) as e:
        master(signals["music3"], tmp_path / "o.wav", target_lufs=-14, true_peak=1.0)
    assert e.value.field == "true_peak" and "outside -9..0" in str(e.value)
