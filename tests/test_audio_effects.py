"""Sound effects: the procedural generators, the built-in library, the cue list and the
stem. Positions are measured on the rendered stem decoded by ffmpeg (the envelope peak of
each whoosh, the onset of each hit), lengths with ffprobe."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from audio import effects
from audio.library import MediaLibrary
from audio.music import write_wav
from studio.errors import StageError, StudioError

SR = 48000
BEATS = [("b1", 0.0, 2.5), ("b2", 2.5, 2.5), ("b3", 5.0, 2.5), ("b4", 7.5, 2.5)]


def samples(path: Path) -> int:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
                          "stream=duration_ts,sample_rate,channels", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout.strip()
    rate, channels, n = (int(v) for v in out.split(","))
    assert (rate, channels) == (SR, 2)
    return n


def pcm(path: Path) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "f32le", "-c:a", "pcm_f32le", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, "<f4").reshape(-1, 2).astype(np.float64)


def envelope(x: np.ndarray, window: float = 0.02) -> np.ndarray:
    """RMS over a sliding window, one value per sample (centred)."""
    p = (x ** 2).mean(axis=1)
    w = int(window * SR)
    c = np.concatenate([[0.0], np.cumsum(p)])
    env = np.sqrt((c[w:] - c[:-w]) / w)
    return np.concatenate([np.zeros(w // 2), env, np.zeros(w - w // 2 - 1)])


def centroid(x: np.ndarray) -> float:
    m = x.mean(axis=1)
    spec = np.abs(np.fft.rfft(m))
    f = np.fft.rfftfreq(m.size, 1 / SR)
    return float((spec * f).sum() / spec.sum())


def db(a: float, b: float) -> float:
    return float(20 * np.log10(a / b))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt((x ** 2).mean()))


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> MediaLibrary:
    return effects.builtin_library(tmp_path_factory.mktemp("fx"))


# -- generators and the built-in library --------------------------------------------------


def test_whoosh_sweeps_down_and_across() -> None:
    x = effects.whoosh(0.8)
    assert x.shape == (round(0.8 * SR), 2)
    assert float(np.abs(x).max()) == pytest.approx(10 ** (-1 / 20), rel=1e-6)
    peak = int(np.argmax(envelope(x))) / SR
    assert 0.3 < peak < 0.55  # rising, then falling
    first, last = x[: int(0.3 * SR)], x[-int(0.3 * SR):]
    assert rms(first[:, 0]) > rms(first[:, 1]) and rms(last[:, 1]) > rms(last[:, 0])  # left to right
    assert centroid(first) > 1.3 * centroid(last)  # the band falls through the pass
    assert np.abs(x[[0, -1]]).max() < 1e-6
    assert not np.array_equal(effects.whoosh(0.8, seed=1), effects.whoosh(0.8, seed=2))


def test_hit_drops_in_pitch_and_decays() -> None:
    x = effects.hit(1.2)
    m = x.mean(axis=1)

    def low_peak(seg: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size), n=1 << 16))
        f = np.fft.rfftfreq(1 << 16, 1 / SR)
        sel = (f > 20) & (f < 400)
        return float(f[sel][np.argmax(spec[sel])])

    assert low_peak(m[: int(0.03 * SR)]) > 1.5 * low_peak(m[int(0.1 * SR): int(0.4 * SR)])
    assert db(rms(m[-int(0.2 * SR):]), rms(m[: int(0.1 * SR)])) < -30
    assert int(np.argmax(np.abs(m) > 0.3 * np.abs(m).max())) < int(0.005 * SR)  # the impact is at the top


def test_riser_builds_to_its_end() -> None:
    x = effects.riser(1.5)
    q = x.shape[0] // 4
    assert db(rms(x[-q:]), rms(x[:q])) > 15
    assert centroid(x[-q:]) > centroid(x[q:2 * q])
    assert int(np.argmax(envelope(x))) / SR > 1.3


def test_builtin_library_is_deterministic_and_idempotent(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    lib = effects.builtin_library(a)
    effects.builtin_library(b)
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    assert {"whoosh", "hit", "riser"} <= {t for i in lib.ids() for t in lib.get(i).tags}
    for i in lib.ids():
        rights = lib.get(i).rights
        assert rights.usage_classes == ["experiment", "internal", "public"] and "no third-party" in rights.licence
        assert yaml.safe_load((a / f"{i}.yaml").read_text())["schema"] == "MusicTrack.1"
    before = {n: (a / n).stat().st_mtime_ns for n in names}
    (a / "hit-1.wav").write_bytes(b"damaged")
    effects.builtin_library(a)  # repairs what differs, leaves the rest alone
    assert (a / "hit-1.wav").read_bytes() == (b / "hit-1.wav").read_bytes()
    assert all((a / n).stat().st_mtime_ns == before[n] for n in names if n != "hit-1.wav")


# -- cue list and stem --------------------------------------------------------------------


def test_cue_list_follows_the_cut(lib: MediaLibrary) -> None:
    markers = [("b2: hero", 3.7, "hero"), ("logo", 8.6, "hit"), ("late", 11.0, "hero"), ("early", -0.5, "hero")]
    cues = effects.cue_list(BEATS, markers, lib, "public")
    whooshes = [c for c in cues if c.kind == "whoosh"]
    hits = [c for c in cues if c.kind == "hit"]
    assert [c.at for c in whooshes] == [2.5, 5.0, 7.5]
    assert [c.beat for c in whooshes] == ["b2", "b3", "b4"]
    assert whooshes[0].effect != whooshes[1].effect  # the whooshes take turns
    assert [(c.at, c.beat) for c in hits] == [(3.7, "b2"), (8.6, "b4")]
    assert len(cues) == 5 and all(0 <= c.at <= 10 for c in cues)
    assert all(-20 <= c.gain_db <= -10 for c in cues)
    for c in cues:
        assert c.start == pytest.approx(c.at - lib.peak(lib.get(c.effect)))
        assert c.reason


def test_stem_places_every_cue_on_its_sample(lib: MediaLibrary, tmp_path: Path) -> None:
    cues = effects.cue_list(BEATS, [("b2: hero", 3.7, "hero"), ("logo", 8.6, "hit")], lib, "public")
    out = tmp_path / "effects.wav"
    rec = effects.render_stem(cues, lib, 10.0, out)
    assert samples(out) == 480000 == rec["samples"]
    x = pcm(out)
    env = envelope(x)
    for cut in (2.5, 5.0, 7.5):
        lo, hi = int((cut - 0.3) * SR), int((cut + 0.3) * SR)
        measured = (lo + int(np.argmax(env[lo:hi]))) / SR
        assert abs(measured - cut) < 0.02, (cut, measured)
    for at in (3.7, 8.6):
        lo = int((at - 0.2) * SR)
        seg = np.abs(x[lo:int((at + 0.2) * SR)]).max(axis=1)
        onset = (lo + int(np.argmax(seg > 0.5 * seg.max()))) / SR
        assert abs(onset - at) < 0.005, (at, onset)
    assert float(np.abs(x).max()) < 1.0
    assert [c["id"] for c in rec["cues"]] == [c.id for c in cues]
    assert all(c["placed"] and c["rights"]["usage_classes"] for c in rec["cues"])
    assert set(rec["rights"]) == {c.effect for c in cues}


def test_stem_trims_cues_at_both_ends(lib: MediaLibrary, tmp_path: Path) -> None:
    beats = [("a", 0.0, 0.25), ("b", 0.25, 1.0), ("c", 1.25, 0.2)]
    cues = effects.cue_list(beats, [], lib, "internal")
    assert cues[0].start < 0  # the first whoosh starts before the spot does
    out = tmp_path / "short.wav"
    rec = effects.render_stem(cues, lib, 1.45, out)
    assert samples(out) == round(1.45 * SR)
    first, last = rec["cues"]
    assert first["trimmed_head"] > 0.1 and last["trimmed_tail"] > 0.1
    x = pcm(out)
    assert np.abs(x[0]).max() < 1e-4 and np.abs(x[-1]).max() < 1e-4  # faded, not chopped


def test_empty_cue_list_is_silence_of_the_right_length(lib: MediaLibrary, tmp_path: Path) -> None:
    out = tmp_path / "none.wav"
    effects.render_stem(effects.cue_list([("only", 0.0, 3.0)], [], lib, "public"), lib, 3.0, out)
    assert samples(out) == 3 * SR and not pcm(out).any()


def own_library(folder: Path, usage: list[str], *, peak: bool = True) -> MediaLibrary:
    folder.mkdir()
    write_wav(folder / "swish.wav", effects.whoosh(0.6, seed=9), SR)
    doc = {"schema": "MusicTrack.1", "id": "swish", "file": "swish.wav", "title": "Swish", "kind": "effects",
           "tags": ["whoosh"], "rights": {"licence": "Demo SFX Licence", "owner": "SFX Co",
                                          "source": "a demo pack", "usage_classes": usage}}
    if peak:
        doc["peak"] = 0.2
    (folder / "swish.yaml").write_text(yaml.safe_dump(doc))
    return MediaLibrary(folder, kind="effects")


def test_refuses_effects_not_licensed_for_the_usage_class(tmp_path: Path) -> None:
    lib = own_library(tmp_path / "fx", ["experiment"])
    with pytest.raises(StudioError) as e:
        effects.cue_list(BEATS, [], lib, "public")
    msg = str(e.value)
    assert "stage effects" in msg and "no effects track tagged 'whoosh'" in msg
    assert "licensed for public use (swish: experiment only)" in msg and "change usage_class" in msg
    with pytest.raises(StageError, match="tagged 'hit'"):
        effects.cue_list(BEATS, [("hero", 3.0, "hero")], lib, "experiment")
    with pytest.raises(StageError, match="kind 'sparkle'"):
        effects.cue_list(BEATS, [("x", 3.0, "sparkle")], lib, "experiment")


def test_peak_is_measured_when_the_sidecar_has_none(tmp_path: Path) -> None:
    lib = own_library(tmp_path / "fx", ["public"], peak=False)
    expected = int(np.argmax(envelope(effects.whoosh(0.6, seed=9)))) / SR
    assert lib.peak(lib.get("swish")) == pytest.approx(expected, abs=0.01)
    given = own_library(tmp_path / "fx2", ["public"])
    assert given.peak(given.get("swish")) == 0.2  # the sidecar's figure wins


def test_music_track_in_an_effects_library_is_refused(tmp_path: Path) -> None:
    write_wav(tmp_path / "song.wav", effects.hit(0.5), SR)
    (tmp_path / "song.yaml").write_text(yaml.safe_dump({
        "schema": "MusicTrack.1", "id": "song", "file": "song.wav", "title": "Song", "kind": "music",
        "rights": {"licence": "x", "owner": "y", "source": "z", "usage_classes": ["internal"]}}))
    with pytest.raises(StudioError, match="track 'song' is a music track, in an effects library"):
        MediaLibrary(tmp_path, kind="effects")
