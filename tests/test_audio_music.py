"""The music bed: the procedural composer and the music library.

Every property is measured on the written file with ffprobe/ffmpeg (sample counts,
peaks, the level of the last 50 ms) or on samples decoded by ffmpeg, never with numbers
the code under test reports about itself. Beds are short (a few seconds to 15 s)."""

from __future__ import annotations

import hashlib
import re
import subprocess
import wave
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml

from audio import music
from audio.library import MediaLibrary
from studio.errors import ManyErrors, StageError, StudioError

SR = 48000


# -- independent measurement --------------------------------------------------------------


def ffprobe(path: Path) -> dict[str, int]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
                          "stream=sample_rate,channels,duration_ts,bits_per_sample", "-of",
                          "default=noprint_wrappers=1", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return {k: int(v) for k, v in (line.split("=") for line in out.split())}


def pcm(path: Path) -> np.ndarray:
    """Samples decoded by ffmpeg, float (n, channels)."""
    ch = ffprobe(path)["channels"]
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "f32le", "-c:a", "pcm_f32le", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, "<f4").reshape(-1, ch).astype(np.float64)


def max_db(path: Path, start_sample: int = 0, end_sample: int | None = None) -> float:
    """ffmpeg volumedetect's max_volume over [start_sample, end_sample)."""
    trim = f"atrim=start_sample={start_sample}" + (f":end_sample={end_sample}" if end_sample else "")
    err = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af", f"{trim},volumedetect",
                          "-f", "null", "-"], capture_output=True, text=True, check=True).stderr
    m = re.search(r"max_volume: (-?[\d.]+|-inf) dB", err)
    assert m, err[-500:]
    return float(m.group(1))


def peak_db(path: Path) -> float:
    err = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af",
                          "astats=measure_perchannel=none", "-f", "null", "-"],
                         capture_output=True, text=True, check=True).stderr
    return float(re.search(r"Peak level dB: (-?[\d.]+)", err).group(1))  # type: ignore[union-attr]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def beat_lag(x: np.ndarray) -> float:
    """The strongest onset periodicity between 0.3 and 0.7 s (10 ms frames)."""
    m = x.mean(axis=1)
    hop, win = 480, 960
    frames = np.lib.stride_tricks.sliding_window_view(m, win)[::hop]
    onset = np.maximum(np.diff(np.log10((frames ** 2).sum(axis=1) + 1e-9)), 0)
    onset -= onset.mean()
    ac = np.correlate(onset, onset, "full")[onset.size - 1:]
    lags = np.arange(ac.size) * hop / SR
    sel = (lags >= 0.3) & (lags <= 0.7)
    return float(lags[sel][np.argmax(ac[sel])])


def chroma(x: np.ndarray) -> np.ndarray:
    """Energy per pitch class (0 = C) between 50 Hz and 2 kHz."""
    m = x.mean(axis=1) * np.hanning(x.shape[0])
    spec = np.abs(np.fft.rfft(m)) ** 2
    f = np.fft.rfftfreq(m.size, 1 / SR)
    sel = (f > 50) & (f < 2000)
    pc = np.round(12 * np.log2(f[sel] / 440) + 69).astype(int) % 12
    return np.bincount(pc, weights=spec[sel], minlength=12)


def write_wav(path: Path, x: np.ndarray, rate: int) -> Path:
    x = x[:, None] if x.ndim == 1 else x
    pcm16 = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(pcm16.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm16.tobytes())
    return path


# -- the composer -------------------------------------------------------------------------


@pytest.mark.parametrize("duration", [0.7, 9.37, 12.0])
def test_exact_length_and_format(tmp_path: Path, duration: float) -> None:
    out = tmp_path / "bed.wav"
    rec = music.compose(music.params_for(["hopeful"], 1), duration, out)
    info = ffprobe(out)
    assert info["duration_ts"] == round(duration * SR) == rec["samples"]
    assert info["sample_rate"] == SR and info["channels"] == 2
    assert info["bits_per_sample"] in (16, 24)
    assert abs(peak_db(out) - (-3.0)) < 0.1  # normalised to about -3 dBFS
    assert rec["sha256"] == sha(out)


def test_deterministic_from_seed(tmp_path: Path) -> None:
    p = music.params_for(["energetic"], 42)
    a, b, c = tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "c.wav"
    music.compose(p, 6, a)
    music.compose(p, 6, b)
    music.compose(music.params_for(["energetic"], 43), 6, c)
    assert sha(a) == sha(b)
    assert sha(a) != sha(c)


@pytest.mark.parametrize("mood,duration", [("calm", 9.0), ("energetic", 8.5), ("epic", 2.0)])
def test_ending_rings_out_to_silence(tmp_path: Path, mood: str, duration: float) -> None:
    out = tmp_path / "bed.wav"
    rec = music.compose(music.params_for([mood], 5), duration, out)
    n = round(duration * SR)
    assert max_db(out, n - round(0.05 * SR)) < -60  # the last 50 ms
    x = pcm(out)
    assert x.shape[0] == n and np.all(x[-1] == 0)
    assert max_db(out, 0, 96) < -40  # a fade-in, not a click, at the start
    # A real ending: the tonic is struck on a bar line and is loud at first, then decays.
    start = round(rec["ending_start"] * SR)
    assert rec["ending_start"] * SR == pytest.approx(start)
    assert rec["ending_start"] == pytest.approx(rec["bars"] * rec["bar_seconds"])
    assert max_db(out, start, start + round(0.3 * SR)) > -12
    assert duration - rec["ending_start"] >= min(duration, 1.5) - 1e-9


@pytest.mark.parametrize("key,mode", [("D", "major"), ("F# minor", "minor"), ("Bb", "major"), ("E minor", "minor")])
def test_key_and_mode_are_heard_in_the_final_chord(tmp_path: Path, key: str, mode: str) -> None:
    out = tmp_path / "bed.wav"
    p = music.params_for(["premium"], 5, key=key)
    assert p.mode == mode
    rec = music.compose(p, 8, out)
    s = round((rec["ending_start"] + 0.1) * SR)
    c = chroma(pcm(out)[s:s + SR])
    tonic = music.pitch_class(p.key)
    third = (tonic + (3 if mode == "minor" else 4)) % 12
    assert int(np.argmax(c)) == tonic
    assert set(np.argsort(c)[::-1][:3].tolist()) == {tonic, third, (tonic + 7) % 12}


def test_tempo_sets_bar_length_and_pulse(tmp_path: Path) -> None:
    for tempo in (120.0, 150.0):
        out = tmp_path / f"t{tempo:g}.wav"
        rec = music.compose(music.params_for(["energetic"], 3, tempo=tempo), 10, out)
        assert rec["bar_seconds"] == pytest.approx(240 / tempo, abs=1 / SR)
        assert rec["params"]["tempo"] == tempo
        # The kick and hats put the beat in the audio itself.
        assert beat_lag(pcm(out)) == pytest.approx(60 / tempo, abs=0.015)


def test_loop_region_repeats_sample_for_sample(tmp_path: Path) -> None:
    out = tmp_path / "loop.wav"
    rec = music.compose(music.params_for(["energetic"], 9, tempo=220), 15, out)
    loop = rec["loop"]
    assert loop is not None and loop["bars"] >= 8
    bar = rec["bar_seconds"]
    assert loop["start"] / bar == pytest.approx(round(loop["start"] / bar))
    assert loop["end"] <= rec["ending_start"]
    x = pcm(out)
    a, b = loop["start_sample"], loop["end_sample"]
    half = (b - a) // 2  # two cycles in the region: the second must equal the first
    assert np.array_equal(x[a:a + half], x[a + half:b])
    # Bars 0-1 are not part of it: bar 0 has no drums, so they differ from a cycle later.
    cycle = half
    assert not np.array_equal(x[:a], x[cycle:cycle + a])


def test_mood_words_and_overrides() -> None:
    calm, energetic = music.params_for(["calm"], 1), music.params_for(["energetic"], 1)
    assert calm.tempo < energetic.tempo
    assert music.params_for(["dark", "tense"], 1).mode == "minor"
    assert music.params_for(["hopeful, warm"], 1).mood == "hopeful+warm"
    assert music.params_for(["sparkly"], 1).mood == "neutral"
    p = music.params_for(["calm"], 1, tempo=150, key="Bb minor")
    assert (p.tempo, p.key, p.mode) == (150.0, "Bb", "minor")
    assert music.params_for(["dark"], 1, key="G").mode == "minor"  # a key without a mode keeps the mood's
    assert music.params_for(["calm"], 1) == music.params_for(["calm"], 1)


@pytest.mark.parametrize("kwargs,field,words", [
    ({"tempo": 30}, "music.tempo", "tempo 30"),
    ({"tempo": 300.0}, "music.tempo", "40-220"),
    ({"key": "H"}, "music.key", "'H' is not a key"),
    ({"key": "F## minor"}, "music.key", "not a key"),
])
def test_bad_tempo_or_key(kwargs: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(StageError) as e:
        music.params_for(["calm"], 1, **kwargs)  # type: ignore[arg-type]
    assert e.value.stage == "music" and e.value.field == field
    assert words in str(e.value) and e.value.fix


@pytest.mark.parametrize("duration", [0, -1.0, 600.5])
def test_bad_duration(tmp_path: Path, duration: float) -> None:
    with pytest.raises(StageError, match=r"stage music: duration: duration .* outside 0-600 s"):
        music.compose(music.params_for(["calm"], 1), duration, tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()


def test_record_and_speed(tmp_path: Path) -> None:
    out = tmp_path / "bed.wav"
    rec = music.compose(music.params_for(["hopeful", "warm"], 7), 30, out)  # speed: bench/bench_stages.py
    assert rec["rights"] == {"licence": "generated by Studio's procedural composer; no third-party material",
                             "owner": "the project", "usage_classes": ["experiment", "internal", "public"]}
    assert rec["params"]["mood"] == "hopeful+warm" and rec["sample_rate"] == SR and rec["duration"] == 30
    assert len(rec["progression"]) == 4 and rec["bars"] >= 8
    assert not list(tmp_path.glob(".*"))  # no temp files left beside the output


# -- the library --------------------------------------------------------------------------


def sidecar(folder: Path, track_id: str, file: str, *, tags: list[str] | None = None,
            usage: list[str] | None = None, bpm: float | None = None, **rights: object) -> Path:
    doc: dict[str, object] = {
        "schema": "MusicTrack.1", "id": track_id, "file": file, "title": track_id.title(),
        "tags": tags or [],
        "rights": {"licence": "Test Library Licence 1.0", "owner": "Test Music Ltd",
                   "source": "https://example.invalid/tracks", "usage_classes": usage or ["internal"],
                   **rights},
    }
    if bpm:
        doc["bpm"] = bpm
    path = folder / f"{track_id}.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def clicks(seconds: float, rate: int, bpm: float) -> np.ndarray:
    """A tone with a loud click on every beat: the grid is audible in the samples."""
    t = np.arange(round(seconds * rate)) / rate
    x = 0.2 * np.sin(2 * np.pi * 220 * t)
    beat = round(60 / bpm * rate)
    for i in range(0, t.size, beat):
        x[i:i + 48] += 0.7
    return x


@pytest.fixture()
def good_track(tmp_path: Path) -> Path:
    folder = tmp_path / "lib"
    folder.mkdir()
    write_wav(folder / "pulse.wav", clicks(5.3, 44100, 120), 44100)  # mono, 44.1 kHz
    sidecar(folder, "pulse", "pulse.wav", tags=["calm", "warm"], bpm=120, usage=["internal", "public"])
    return folder


def test_missing_file_is_named(tmp_path: Path) -> None:
    sidecar(tmp_path, "ghost", "audio/ghost.wav")
    with pytest.raises(StudioError) as e:
        MediaLibrary(tmp_path)
    msg = str(e.value)
    assert "track 'ghost'" in msg and str(tmp_path / "audio" / "ghost.wav") in msg
    assert "does not exist" in msg and "put the audio file there" in msg
    assert e.value.stage == "music" and e.value.field == "file" and "stage music: file: " in msg


@pytest.mark.parametrize("damage", ["garbage", "truncated", "not-audio"])
def test_corrupt_audio_is_refused_when_loading(tmp_path: Path, damage: str) -> None:
    bad = tmp_path / "bad.wav"
    if damage == "garbage":
        bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    elif damage == "truncated":
        write_wav(tmp_path / "whole.wav", clicks(3, 48000, 100), 48000)
        bad.write_bytes((tmp_path / "whole.wav").read_bytes()[:50001])
        (tmp_path / "whole.wav").unlink()
    else:
        bad.write_text("hello, not audio")
    sidecar(tmp_path, "bad", "bad.wav")
    with pytest.raises(StudioError) as e:
        MediaLibrary(tmp_path)
    msg = str(e.value)
    assert f"track 'bad': {bad} is not readable audio" in msg
    if damage == "truncated":
        assert "truncated or corrupt" in msg
    assert "replace it with a good audio file" in msg


def test_sidecar_rights_are_checked(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", clicks(1, 48000, 120), 48000)
    sidecar(tmp_path, "odd-class", "a.wav", usage=["broadcast"])
    sidecar(tmp_path, "old", "a.wav", expires=(date.today() - timedelta(days=1)).isoformat())
    with pytest.raises(ManyErrors) as e:
        MediaLibrary(tmp_path)
    lines = e.value.lines()
    assert len(lines) == 2
    assert any("odd-class.yaml" in ln and "rights.usage_classes[0]" in ln and "'broadcast'" in ln for ln in lines)
    assert any("track 'old': its rights expired on" in ln and "renew the licence" in ln for ln in lines)


def test_pick_and_usage(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", clicks(1, 48000, 120), 48000)
    sidecar(tmp_path, "b-calm", "a.wav", tags=["calm", "warm"], usage=["internal", "public"])
    sidecar(tmp_path, "a-calm", "a.wav", tags=["Calm", "piano"], usage=["internal", "public"])
    sidecar(tmp_path, "z-dark", "a.wav", tags=["dark"], usage=["experiment"])
    lib = MediaLibrary(tmp_path)
    assert lib.pick(["calm", "warm"], "public").id == "b-calm"  # most tags in common
    assert lib.pick(["calm"], "public").id == "a-calm"  # a tie goes to the first id
    assert lib.pick(["dark"], "public").id == "a-calm"  # z-dark is not cleared for public
    with pytest.raises(StudioError) as e:
        lib.check_usage(lib.get("z-dark"), "public")
    assert "music track 'z-dark' is licensed for experiment use only, not public" in str(e.value)
    assert "Test Library Licence 1.0" in str(e.value) and "a-calm" in e.value.fix
    with pytest.raises(StudioError, match="unknown usage class 'press'"):
        lib.pick(["calm"], "press")


def test_pick_refuses_when_nothing_is_licensed(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", clicks(1, 48000, 120), 48000)
    sidecar(tmp_path, "demo", "a.wav", usage=["experiment"])
    with pytest.raises(StudioError) as e:
        MediaLibrary(tmp_path).pick(["calm"], "public")
    assert "no music track" in str(e.value) and "licensed for public use (demo: experiment only)" in str(e.value)
    assert "change usage_class" in e.value.fix


def test_fit_mono_44k_to_48k_stereo_on_whole_bars(tmp_path: Path, good_track: Path) -> None:
    lib = MediaLibrary(good_track)
    out = tmp_path / "bed.wav"
    rec = lib.fit(lib.get("pulse"), 12.5, out)
    info = ffprobe(out)
    assert info == {**info, "sample_rate": 48000, "channels": 2, "duration_ts": 600000}
    assert any("resampled from 44100 Hz to 48000 Hz" in d for d in rec["done"])
    assert any("mono copied" in d for d in rec["done"])
    assert rec["looped"] == 2 and rec["loop_unit"] == "2 whole bars at 120 bpm"
    assert rec["rights"]["usage_classes"] == ["internal", "public"]
    x = pcm(out)
    assert np.array_equal(x[:, 0], x[:, 1])
    assert max_db(out, 600000 - 2400) < -40  # faded out to the end
    # Whole-bar loops keep the beat grid: a click on every 0.5 s, across the seams too.
    onsets = np.flatnonzero(np.diff((np.abs(x[:, 0]) > 0.6).astype(int)) == 1) / 48000
    onsets = onsets[onsets < 12.5 - 1.5]  # before the fade-out
    assert onsets.size >= 20
    assert np.allclose(onsets, np.round(onsets * 2) / 2, atol=0.002)


def test_fit_rejects_bad_duration(good_track: Path, tmp_path: Path) -> None:
    lib = MediaLibrary(good_track)
    with pytest.raises(StageError, match="duration"):
        lib.fit(lib.get("pulse"), 0, tmp_path / "x.wav")
