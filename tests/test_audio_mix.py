"""audio/mix.py on synthetic stems, measured on the samples it writes: the bed ducks under
the voice, the mix is the sum of the stems as written, every output is exactly the spot's
length, and the edit's audio clips land where the timeline puts them."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import pytest

from audio import loudness
from audio.mix import DUCK, FADE_IN, FADE_OUT, RATE, mix_stems, stems_from_timeline
from studio.errors import StageError


def write_wav(path: Path, x: np.ndarray) -> Path:
    """16-bit stereo at 48 kHz."""
    x = np.atleast_2d(x.T).T if x.ndim == 1 else x
    if x.shape[1] == 1:
        x = np.repeat(x, 2, axis=1)
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return path


def read_wav(path: Path) -> np.ndarray:
    """Samples as float (n, channels), read by the meter's own WAV reader (it takes the
    WAVE_FORMAT_EXTENSIBLE headers ffmpeg writes for 24-bit)."""
    with open(path, "rb") as f:
        info = loudness.read_wav_header(f)
        return info.decode(f.read())


def wav_format(path: Path) -> tuple[int, int, int, int]:
    """(frames, rate, channels, bits) from the header."""
    with open(path, "rb") as f:
        info = loudness.read_wav_header(f)
    frames = info.data_bytes // (info.channels * info.bits // 8)
    return frames, info.rate, info.channels, info.bits


def db_rms(x: np.ndarray) -> float:
    return 20 * math.log10(float(np.sqrt(np.mean(x ** 2))) + 1e-12)


def span(x: np.ndarray, a: float, b: float) -> np.ndarray:
    return x[round(a * RATE): round(b * RATE)]


DURATION = 8.0
VOICE_ON = [(1.0, 3.0), (5.0, 7.0)]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("mix")
    t = np.arange(round(DURATION * RATE)) / RATE
    voice = np.zeros_like(t)
    for a, b in VOICE_ON:  # 'speech': a 300 Hz tone at about -15 dBFS RMS
        on = (t >= a) & (t < b)
        voice[on] = 0.25 * np.sin(2 * np.pi * 300 * t[on])
    music = 0.25 * np.sin(2 * np.pi * 110 * t) + 0.1 * np.sin(2 * np.pi * 660 * t)
    effects = np.zeros_like(t)
    effects[round(4.0 * RATE): round(4.1 * RATE)] = 0.3
    stems = {"voice": d / "v.out.wav", "music": d / "m.out.wav", "effects": d / "e.out.wav"}
    params = mix_stems(write_wav(d / "v.wav", voice), write_wav(d / "m.wav", music),
                       write_wav(d / "e.wav", effects), d / "mix.wav", stems,
                       duration=DURATION, music_gain_db=0.0)
    return {"mix": d / "mix.wav", **stems, "raw_music": d / "m.wav", "params": params}  # type: ignore[dict-item]


def test_bed_ducks_under_the_voice_and_recovers(mixed) -> None:
    bed = read_wav(mixed["music"])
    raw = read_wav(mixed["raw_music"])
    # Under speech (after the attack), against the same bed before any speech and after
    # the release: the key at -15 dBFS is 15 dB over the -30 dBFS threshold; ratio 6 takes
    # 5/6 of that off, about 12 dB, less the knee.
    under = db_rms(span(bed, 1.5, 2.9))
    free_before = db_rms(span(bed, 0.2, 0.95))
    free_after = db_rms(span(bed, 3.0 + 1.5, 4.9))  # 1.5 s: several release times later
    assert free_before - under >= 8.0, (free_before, under)
    assert abs(free_after - free_before) <= 1.0, (free_after, free_before)
    # and where there is no voice the bed is the raw bed, level for level
    assert abs(free_before - db_rms(span(raw, 0.2, 0.95))) <= 0.2
    assert mixed["params"]["duck"] == DUCK


def test_mix_is_the_sum_of_the_stems_as_written(mixed) -> None:
    mix = read_wav(mixed["mix"])
    total = read_wav(mixed["voice"]) + read_wav(mixed["music"]) + read_wav(mixed["effects"])
    inner = slice(round((FADE_IN + 0.01) * RATE), round((DURATION - FADE_OUT - 0.01) * RATE))
    err = np.abs(mix[inner] - total[inner]).max()
    assert err < 1e-3, err  # 16-bit stems, 24-bit mix: rounding only
    # the fades: silent at the very ends
    assert np.abs(mix[:16]).max() < 0.01 and np.abs(mix[-16:]).max() < 0.01


def test_every_output_is_exactly_the_spots_length(mixed) -> None:
    n = round(DURATION * RATE)
    for key in ("mix", "voice", "music", "effects"):
        assert wav_format(mixed[key]) == (n, RATE, 2, 24), key


def test_without_voice_the_bed_is_not_ducked(tmp_path: Path) -> None:
    t = np.arange(2 * RATE) / RATE
    music = write_wav(tmp_path / "m.wav", 0.2 * np.sin(2 * np.pi * 220 * t))
    params = mix_stems(None, music, None, tmp_path / "mix.wav", {"music": tmp_path / "mo.wav"},
                       duration=2.0, music_gain_db=-6.0)
    assert params["duck"] is None and params["stems"] == ["music"]
    got = db_rms(span(read_wav(tmp_path / "mo.wav"), 0.5, 1.5))
    assert got == pytest.approx(db_rms(span(read_wav(music), 0.5, 1.5)) - 6.0, abs=0.1)


def test_missing_stem_is_refused_by_name_and_nothing_written(tmp_path: Path) -> None:
    with pytest.raises(StageError) as e:
        mix_stems(tmp_path / "gone.wav", None, None, tmp_path / "mix.wav", {}, duration=1.0, music_gain_db=0)
    assert e.value.line() == (f"stage mix: voice: the voice stem {tmp_path / 'gone.wav'} is missing — "
                              "re-run the stage that makes it")
    assert not (tmp_path / "mix.wav").exists()


def test_stems_follow_the_timeline(tmp_path: Path) -> None:
    import opentimelineio as otio

    rate = 24
    tone = write_wav(tmp_path / "tone.wav", 0.5 * np.ones(3 * RATE))  # 3 s of DC at 0.5
    tl = otio.schema.Timeline(name="t")
    track = otio.schema.Track(name="voice", kind=otio.schema.TrackKind.Audio)
    tl.tracks.append(track)
    track.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(
        otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(24, rate))))  # 1 s gap
    ref = otio.schema.ExternalReference(target_url=tone.as_uri(), available_range=otio.opentime.TimeRange(
        otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(72, rate)))
    track.append(otio.schema.Clip(name="line", media_reference=ref, source_range=otio.opentime.TimeRange(
        otio.opentime.RationalTime(12, rate), otio.opentime.RationalTime(24, rate))))  # 0.5 s in, 1 s long
    stems = stems_from_timeline(tl, 3.0, tmp_path)
    x = read_wav(stems["voice"])
    assert len(x) == 3 * RATE
    assert np.abs(span(x, 0.0, 0.99)).max() == 0.0
    assert np.allclose(span(x, 1.01, 1.99), 0.5, atol=1e-4)
    assert np.abs(span(x, 2.01, 3.0)).max() == 0.0
