"""GPU audio backends on the CPU: tiny random-weight VITS, SpeechT5, Bark and MusicGen models
built from inline configs (tests/tiny_models.py), saved with ``save_pretrained``, named
by registry entries that point at the folders, and loaded back by the real backends
inside Ray actors (the session's local Ray, ``model_device: cpu``). WAV properties are
measured with ffprobe, not with the code under test. Also: the backend registry, broken
plugins, the Coqui situation and GPU requests without a GPU."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import wave
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from audio.voices import VoiceEntry, VoiceRegistry
from studio.errors import StageError, StudioError
from studio.models import ModelRegistry

ROOT = Path(__file__).resolve().parent.parent
TWO = "Meet the new studio. Every frame, every sound, made to measure!"
BARK_ARGS = {"semantic_min_new_tokens": 8, "semantic_max_new_tokens": 8}
# 8 semantic tokens at 49.9/s make floor(8 * 75 / 49.9) = 12 EnCodec frames of 320 samples.
BARK_SENTENCE = 12 * 320


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                          "stream=codec_name,sample_rate,channels:format=duration", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True).stdout
    info = json.loads(out)
    s = info["streams"][0]
    return {"codec": s["codec_name"], "rate": int(s["sample_rate"]), "channels": int(s["channels"]),
            "duration": float(info["format"]["duration"])}


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def voice_doc(id_: str, **fields: Any) -> dict[str, Any]:
    doc = {"schema": "Voice.1", "id": id_, "title": f"{id_} (random test weights)", "kind": "stock",
           "backend": "transformers-tts", "language": "en", "script": "Latin", "sample_rate": 16000,
           "licence": "test weights (random)", "usage_classes": ["experiment"]}
    doc.update(fields)
    return doc


@pytest.fixture(scope="module")
def audio_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny models, a voices folder and a models folder whose entries name them by
    paths relative to the entry files."""
    from tests.tiny_models import (
        build_tiny_bark,
        build_tiny_musicgen,
        build_tiny_speecht5,
        build_tiny_vits,
        entry_doc,
    )

    root = tmp_path_factory.mktemp("tiny-audio")
    vits = build_tiny_vits(root / "weights" / "vits")
    st5 = build_tiny_speecht5(root / "weights" / "speecht5")
    mg = build_tiny_musicgen(root / "weights" / "musicgen")
    bark = build_tiny_bark(root / "weights" / "bark")
    voices = root / "voices"
    voices.mkdir()
    docs = [
        voice_doc("tiny-vits", source={"path": "../weights/vits"}, gpus=1),
        # Random SpeechT5 weights predict "stop" at once: minlenratio makes it speak.
        voice_doc("tiny-speecht5", gpus=0.5, call_args={"minlenratio": 2.0, "maxlenratio": 4.0},
                  source={"path": "../weights/speecht5/model",
                          "vocoder_path": "../weights/speecht5/vocoder",
                          "speaker_embedding": "../weights/speecht5/speaker.npy"}),
        voice_doc("tiny-speecht5-mute", source={"path": "../weights/speecht5/model",
                                                "vocoder_path": "../weights/speecht5/vocoder"}),
        # Bark's own knobs, through call_args: exactly 8 semantic tokens per sentence (the
        # tiny model's generation config allows up to 16 and may stop on any step).
        voice_doc("tiny-bark", source={"path": "../weights/bark"}, sample_rate=24000, gpus=1,
                  call_args=BARK_ARGS),
        voice_doc("tiny-bark-speaker", source={"path": "../weights/bark"}, sample_rate=24000,
                  voice_preset="v2/tiny_speaker", call_args=BARK_ARGS),
        voice_doc("tiny-bark-hub-preset", source={"path": "../weights/bark"}, sample_rate=24000,
                  voice_preset="v2/en_speaker_6"),
        # Bark's own early stop, through call_args: the end token wins as soon as its
        # probability passes min_eos_p, so at 1e-9 every sentence ends on its first token
        # (any seed: the other tokens are masked before sampling).
        voice_doc("tiny-bark-eos", source={"path": "../weights/bark"}, sample_rate=24000,
                  call_args={"semantic_min_eos_p": 1e-9}),
    ]
    for doc in docs:
        (voices / f"{doc['id']}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    models = root / "models"
    models.mkdir()
    mdoc = entry_doc("tiny-musicgen", kind="text-to-music", backend="musicgen",
                     source={"path": "../weights/musicgen"}, guidance=3.0, max_duration=4,
                     sample_rate=16000, licence="CC-BY-NC 4.0 (as musicgen-small)",
                     usage_classes=["experiment", "internal"])
    (models / "tiny-musicgen.yaml").write_text(yaml.safe_dump(mdoc, sort_keys=False), encoding="utf-8")
    return {"root": root, "vits": vits, "speecht5": st5, "musicgen": mg, "bark": bark,
            "voices": VoiceRegistry(voices), "models": ModelRegistry(models)}


@pytest.fixture(scope="module")
def cpu_settings(settings):
    return settings.model_copy(update={"model_device": "cpu"})


# ------------------------------------------------------------------ registry (no torch)


def test_importing_audio_backends_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import audio.registry, audio.transformers_tts, audio.musicgen, audio.coqui_tts, audio.actors\n"
        "from audio.voices import VoiceRegistry\n"
        "from audio.registry import available_backends\n"
        "VoiceRegistry(); rows = available_backends()\n"
        "assert rows['tts:transformers-tts'].startswith('ok'), rows\n"
        "print(sorted(m for m in ('torch', 'transformers', 'TTS', 'piper') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_available_backends_show_builtins_and_the_coqui_situation() -> None:
    from audio.registry import available_backends

    rows = available_backends()
    assert rows["tts:piper"] == "ok audio.tts:PiperBackend"
    assert rows["tts:transformers-tts"] == "ok audio.transformers_tts:TransformersTTSBackend"
    assert rows["music:musicgen"] == "ok audio.musicgen:MusicGenBackend"
    coqui = rows["tts:coqui"]
    assert coqui.startswith("FAILED audio.coqui_tts:CoquiBackend: ")
    assert "coqui-tts" in coqui and "torch 2.13" in coqui


def _fake_entry_points(monkeypatch: pytest.MonkeyPatch, group: str, name: str, value: str) -> None:
    import audio.registry as registry

    real = registry.entry_points
    plugin = EntryPoint(name=name, value=value, group=group)

    def fake(**kw: Any) -> Any:
        # the installed plugins of every group, plus one more in ``group``
        found = list(real(**kw))
        return [*found, plugin] if kw.get("group") == group else found

    monkeypatch.setattr(registry, "entry_points", fake)


def test_broken_plugin_fails_loudly_naming_the_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    from audio.registry import available_backends, load_backend_class, tts_backend

    _fake_entry_points(monkeypatch, "studio.tts_backends", "acme-voice", "acme_voice_missing.backend:Voice")
    with pytest.raises(StudioError) as e:
        load_backend_class("tts", "acme-voice")
    assert e.value.what == (
        "TTS backend 'acme-voice' (entry point 'acme-voice' in group studio.tts_backends: "
        "acme_voice_missing.backend:Voice) failed to load: ModuleNotFoundError: "
        "No module named 'acme_voice_missing'")
    assert "install what it needs" in e.value.fix and e.value.field == "backend"
    # a voice may name the plugin (it is registered) and fails the same way when used
    entry = VoiceEntry.model_validate(voice_doc("acme", backend="acme-voice", source={"path": "/x"}))
    with pytest.raises(StudioError, match="entry point 'acme-voice'.*ModuleNotFoundError"):
        tts_backend(entry)
    assert available_backends()["tts:acme-voice"].startswith(
        "FAILED acme_voice_missing.backend:Voice: TTS backend 'acme-voice'")


def test_broken_music_plugin_and_unknown_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from audio.registry import load_backend_class

    # a module that imports but lacks the class is broken too
    _fake_entry_points(monkeypatch, "studio.music_backends", "beds", "audio.musicgen:NoSuchBackend")
    with pytest.raises(StudioError) as e:
        load_backend_class("music", "beds")
    assert "music backend 'beds' (entry point 'beds' in group studio.music_backends: " \
           "audio.musicgen:NoSuchBackend) failed to load: AttributeError" in e.value.what
    with pytest.raises(StudioError) as e2:
        load_backend_class("tts", "espeak")
    assert e2.value.what == "unknown TTS backend 'espeak'"
    assert "coqui, piper, transformers-tts" in e2.value.fix


def test_unknown_backend_in_a_voice_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "v.yaml").write_text(yaml.safe_dump(voice_doc("v", backend="espeak", source={"path": "m"})))
    with pytest.raises(StudioError) as e:
        VoiceRegistry(tmp_path)
    msg = str(e.value)
    assert "v.yaml" in msg and "unknown TTS backend 'espeak'" in msg and "transformers-tts" in msg


def test_coqui_is_refused_with_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import audio.coqui_tts as coqui
    from audio.registry import tts_backend

    entry = VoiceEntry.model_validate(voice_doc("coqui-voice", backend="coqui",
                                                source={"path": "/models/coqui", "model": "model.pth",
                                                        "config": "config.json"}))
    with pytest.raises(StageError) as e:  # not installed here
        tts_backend(entry)
    assert e.value.line() == (
        "stage voice: voice: the coqui backend needs the coqui-tts package, which is not "
        "installed; note: coqui-tts 0.28 installs beside torch 2.13 but does not import there "
        "(it needs torchaudio/torchcodec builds that do not load beside it) — use a "
        "transformers-tts voice (VITS/MMS, SpeechT5) or piper; or run Coqui voices in a "
        "separate environment whose torch coqui-tts supports and register it there")
    # installed but failing to import, as beside torch 2.13: a stand-in TTS package whose
    # api module fails the way a torchaudio that does not match torch does
    fake = tmp_path / "site"
    (fake / "TTS").mkdir(parents=True)
    (fake / "TTS" / "__init__.py").write_text("")
    (fake / "TTS" / "api.py").write_text(
        "raise OSError('libtorchaudio.so: undefined symbol: _ZN3c1017RegisterOperators')\n")
    monkeypatch.syspath_prepend(str(fake))
    try:
        with pytest.raises(StageError) as e2:
            tts_backend(entry)
        assert coqui.CoquiBackend.availability() == e2.value.what
    finally:
        for name in ("TTS.api", "TTS"):
            sys.modules.pop(name, None)
    assert e2.value.what == (
        "coqui-tts is installed but cannot be imported (OSError: libtorchaudio.so: undefined "
        "symbol: _ZN3c1017RegisterOperators): coqui-tts 0.28 installs beside torch 2.13 but "
        "does not import there (it needs torchaudio/torchcodec builds that do not load beside it)")
    assert "transformers-tts" in e2.value.fix


# ----------------------------------------------------------------------- entries


def test_voice_entries_resolve_relative_paths_and_check_sources(audio_models: dict[str, Any]) -> None:
    st5 = audio_models["voices"].get("tiny-speecht5")
    paths = audio_models["speecht5"]
    assert st5.source.path == str(paths["model"].resolve())
    assert st5.source.vocoder_path == str(paths["vocoder"].resolve())
    assert st5.source.speaker_embedding == str(paths["speaker"].resolve())
    assert st5.gpus == 0.5 and st5.device == "auto"
    bad = [
        ({"source": {"hub_id": "facebook/mms-tts-eng"}}, "a hub source needs a revision"),
        ({"source": {"path": "m", "hub_id": "a/b", "revision": "main"}}, "give exactly one of module"),
        ({"backend": "piper", "source": {"hub_id": "a/b", "revision": "main"}}, "a piper voice needs source.model"),
        ({"source": {"path": "m"}, "device": "cpu", "gpus": 1}, "device cpu asks for no GPU"),
    ]
    for change, words in bad:
        with pytest.raises(ValueError, match=words):
            VoiceEntry.model_validate(voice_doc("x", **change))


def test_shipped_templates_are_marked_and_licensed() -> None:
    mms = VoiceRegistry().get("mms-tts-eng")
    assert (mms.backend, mms.source.hub_id, mms.source.revision) == ("transformers-tts", "facebook/mms-tts-eng", "main")
    assert mms.source.offline and "CC-BY-NC" in mms.licence and mms.usage_classes == ["experiment"]
    text = (ROOT / "studio" / "data" / "voices" / "mms-tts-eng.yaml").read_text()
    assert "NOT PINNED" in text
    mg = ModelRegistry().get("musicgen-small")
    assert (mg.kind, mg.backend, mg.max_duration, mg.sample_rate) == ("text-to-music", "musicgen", 30, 32000)
    assert "CC-BY-NC" in mg.licence and mg.usage_classes == ["experiment"] and not mg.pinned


def test_hub_voice_not_in_cache_is_refused_clearly() -> None:
    from audio.registry import tts_backend

    # offline (the default): the hub cache is read with local_files_only, never the network
    entry = VoiceEntry.model_validate(voice_doc("hub", source={"hub_id": "nobody/no-voice", "revision": "main"}))
    with pytest.raises(StudioError) as e:
        tts_backend(entry, device="cpu")
    assert "voice 'hub': model nobody/no-voice@main cannot be loaded: it is not in the local hub cache" \
        in e.value.what
    assert "hf download nobody/no-voice --revision main" in e.value.fix


def test_transformers_voice_checks_text_like_piper(audio_models: dict[str, Any], tmp_path: Path) -> None:
    from audio.registry import tts_backend

    backend = tts_backend(audio_models["voices"].get("tiny-vits"), device="cpu")
    assert backend.family == "vits" and backend.sample_rate == 16000
    assert backend.synthesize("  ", tmp_path / "x.wav", beat="b0")["skipped"] is True
    with pytest.raises(StageError) as e:
        backend.check_text("Привет, мир", beat="b4")
    assert str(e.value) == ("stage voice: shot b4: narration: narration has letters the voice "
                            "'tiny-vits' (en, Latin script) cannot read: 'Приветм' — translate it "
                            "or pick a voice for that language")
    with pytest.raises(StageError, match="has nothing the voice 'tiny-vits' can speak"):
        backend.check_text("🚀🌄", beat="b1")
    assert backend.check_text("Go 🚀 now.", beat="b1") == ("Go  now.", "🚀")


def test_split_sentences() -> None:
    from audio.transformers_tts import split_sentences

    assert split_sentences(TWO) == ["Meet the new studio.", "Every frame, every sound, made to measure!"]
    assert split_sentences('It costs 3.5 euros at studio.io. "Really?" Yes... ok') == [
        "It costs 3.5 euros at studio.io.", '"Really?"', "Yes...", "ok"]
    assert split_sentences("Hello ... world") == ["Hello ...", "world"]
    assert split_sentences("...") == ["..."]


# -------------------------------------------------------- GPU requests without a GPU


def test_gpu_voice_without_gpu_is_refused(audio_models: dict[str, Any], settings, ray_session,
                                          tmp_path: Path) -> None:
    from audio.actors import generate_music, synthesize_lines

    assert settings.model_device is None
    entry = audio_models["voices"].get("tiny-vits")  # gpus: 1
    with pytest.raises(StageError) as e:
        synthesize_lines(entry, [("b1", TWO, tmp_path / "b1.wav")], settings=settings, deterministic=True)
    assert e.value.line() == (
        "stage voice: voice: voice 'tiny-vits' needs 1 GPU per actor but the Ray cluster has 0 "
        "— run on a GPU cluster (RAY_ADDRESS), or set STUDIO_MODEL_DEVICE=cpu to run it on the "
        "CPU (slow)")
    model = audio_models["models"].get("tiny-musicgen")  # num_gpus: 1 (the default)
    with pytest.raises(StageError, match="model 'tiny-musicgen' needs 1 GPU per actor but the Ray cluster has 0"):
        generate_music(model, "calm piano", 1.0, tmp_path / "bed.wav", seed=1, settings=settings)
    assert not list(tmp_path.iterdir())


def test_music_longer_than_the_model_makes_is_refused_before_loading(
        audio_models: dict[str, Any], cpu_settings, tmp_path: Path) -> None:
    from audio.actors import generate_music

    with pytest.raises(StageError) as e:
        generate_music(audio_models["models"].get("tiny-musicgen"), "calm piano", 12.0,
                       tmp_path / "bed.wav", seed=1, settings=cpu_settings)
    assert "model 'tiny-musicgen' makes at most 4 s of music per call; the spot needs 12.00 s" in e.value.what
    assert e.value.stage == "music"


# ------------------------------------------------------------- synthesis on Ray actors


def _check_sentences(record: dict[str, Any], texts: list[str]) -> None:
    sents = record["sentences"]
    assert [s["text"] for s in sents] == texts
    t = 0.0
    for s in sents:
        assert t <= s["start"] < s["end"], sents
        t = s["end"]
    assert sents[0]["start"] == 0.0 and sents[-1]["end"] == pytest.approx(record["duration"], abs=1e-3)


def _peak(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return float(np.abs(pcm).max()) / 32767


def test_vits_voice_on_a_ray_actor(audio_models: dict[str, Any], cpu_settings, ray_session,
                                   tmp_path: Path) -> None:
    from audio.actors import synthesize_lines

    entry = audio_models["voices"].get("tiny-vits")
    lines = [("b1", TWO, tmp_path / "b1.wav"), ("b2", "", tmp_path / "b2.wav"),
             ("b3", TWO, tmp_path / "b3.wav")]
    records = synthesize_lines(entry, lines, settings=cpu_settings, deterministic=True)
    assert [r["beat"] for r in records] == ["b1", "b2", "b3"]
    assert records[1]["skipped"] is True and not (tmp_path / "b2.wav").exists()
    r = records[0]
    assert r["skipped"] is False and r["wav"] == str((tmp_path / "b1.wav").resolve())
    assert r["worker"].split(":")[-1] != str(os.getpid())  # it ran in the actor
    assert (r["voice"], r["backend"], r["family"], r["device"], r["dtype"]) == (
        "tiny-vits", "transformers-tts", "vits", "cpu", "float32")
    assert r["deterministic"] is True and r["seed"] == 0 and r["seconds"] > 0
    from studio.models import weights_hash

    assert r["weights_sha256"] == weights_hash(audio_models["vits"])
    info = ffprobe(tmp_path / "b1.wav")
    assert info == {"codec": "pcm_s16le", "rate": 16000, "channels": 1,
                    "duration": pytest.approx(r["duration"], abs=1e-3)}
    assert r["duration"] > 0.25  # two sentences and the pause between them
    assert _peak(tmp_path / "b1.wav") == pytest.approx(10 ** (-1 / 20), abs=1e-3)
    _check_sentences(r, ["Meet the new studio.", "Every frame, every sound, made to measure!"])
    gap = r["sentences"][1]["start"] - r["sentences"][0]["end"]
    assert gap == pytest.approx(r["sentence_pause"], abs=1e-3)
    # same seed, same bytes (a fresh actor is checked with MusicGen below)
    assert sha(tmp_path / "b1.wav") == sha(tmp_path / "b3.wav")
    assert records[2]["sentences"] == r["sentences"]


def test_speecht5_voice_on_a_ray_actor(audio_models: dict[str, Any], cpu_settings, ray_session,
                                       tmp_path: Path) -> None:
    from audio.actors import synthesize_lines

    entry = audio_models["voices"].get("tiny-speecht5")
    text = "Cold from sunrise. To city lights? Yes."
    records = synthesize_lines(entry, [("b4", text, tmp_path / "b4.wav"), ("b5", text, tmp_path / "b5.wav")],
                               settings=cpu_settings, deterministic=True)
    r = records[0]
    assert (r["family"], r["sample_rate"], r["call_args"]) == (
        "speecht5", 16000, {"minlenratio": 2.0, "maxlenratio": 4.0})
    info = ffprobe(tmp_path / "b4.wav")
    assert (info["rate"], info["channels"], info["codec"]) == (16000, 1, "pcm_s16le")
    assert info["duration"] == pytest.approx(r["duration"], abs=1e-3) and r["duration"] > 0
    _check_sentences(r, ["Cold from sunrise.", "To city lights?", "Yes."])
    assert sha(tmp_path / "b4.wav") == sha(tmp_path / "b5.wav")


def test_bark_voice_on_a_ray_actor(audio_models: dict[str, Any], cpu_settings, ray_session,
                                   tmp_path: Path) -> None:
    from audio.actors import synthesize_lines
    from studio.models import weights_hash

    entry = audio_models["voices"].get("tiny-bark")  # no voice preset
    records = synthesize_lines(entry, [("b1", TWO, tmp_path / "b1.wav"), ("b2", TWO, tmp_path / "b2.wav")],
                               settings=cpu_settings, deterministic=True)
    r = records[0]
    assert r["skipped"] is False and r["wav"] == str((tmp_path / "b1.wav").resolve())
    assert r["worker"].split(":")[-1] != str(os.getpid())  # it ran in the actor
    assert (r["voice"], r["backend"], r["family"], r["device"], r["dtype"], r["sample_rate"]) == (
        "tiny-bark", "transformers-tts", "bark", "cpu", "float32", 24000)
    assert r["deterministic"] is True and r["seed"] == 0 and r["call_args"] == BARK_ARGS
    assert r["weights_sha256"] == weights_hash(audio_models["bark"])
    info = ffprobe(tmp_path / "b1.wav")
    assert info == {"codec": "pcm_s16le", "rate": 24000, "channels": 1,
                    "duration": pytest.approx(r["duration"], abs=1e-3)}
    # the call_args reached the semantic model: each sentence is exactly 12 frames long
    pause = round(r["sentence_pause"] * 24000)
    with wave.open(str(tmp_path / "b1.wav"), "rb") as w:
        assert w.getnframes() == 2 * BARK_SENTENCE + pause
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    _check_sentences(r, ["Meet the new studio.", "Every frame, every sound, made to measure!"])
    assert [s["end"] - s["start"] for s in r["sentences"]] == pytest.approx([BARK_SENTENCE / 24000] * 2, abs=1e-4)
    assert _peak(tmp_path / "b1.wav") == pytest.approx(10 ** (-1 / 20), abs=1e-3)
    first, second = pcm[:BARK_SENTENCE], pcm[-BARK_SENTENCE:]
    assert not pcm[BARK_SENTENCE:BARK_SENTENCE + pause].any()  # the pause is silence
    assert first.std() > 100 and not np.array_equal(first, second)  # the codes reach the codec
    assert sha(tmp_path / "b1.wav") == sha(tmp_path / "b2.wav")  # same seed, same bytes


def test_bark_sentence_with_no_audio_names_the_beat(audio_models: dict[str, Any], cpu_settings,
                                                    ray_session, tmp_path: Path) -> None:
    """A sentence whose semantic tokens end at once leaves EnCodec no frames: refused as
    a StageError naming the beat and the fix, through the actor, not EnCodec's own
    "Kernel size can't be greater than actual input size"."""
    from audio.actors import synthesize_lines
    from audio.registry import tts_backend

    entry = audio_models["voices"].get("tiny-bark-eos")
    with pytest.raises(StageError) as e:
        synthesize_lines(entry, [("b3", TWO, tmp_path / "b3.wav")], settings=cpu_settings,
                         deterministic=True)
    assert e.value.line() == (
        "stage voice: shot b3: narration: the voice 'tiny-bark-eos' produced no audio for "
        "'Meet the new studio.': Bark's semantic model ended the sentence at once (its first "
        "token was the end token), leaving EnCodec no frames to decode — set call_args "
        "semantic_min_new_tokens (e.g. 8) in the voice entry, or re-run with another seed (the "
        "voice's seed when deterministic); a low min_eos_p in call_args ends sentences early")
    assert not (tmp_path / "b3.wav").exists()
    # the fix it gives works: the same voice with semantic_min_new_tokens speaks
    fixed = entry.model_copy(update={"call_args": {**entry.call_args, **BARK_ARGS}})
    r = tts_backend(fixed, device="cpu").synthesize("Hello there.", tmp_path / "fixed.wav", beat="b3",
                                                    deterministic=True)
    assert r["duration"] == pytest.approx(BARK_SENTENCE / 24000, abs=1e-4)


def test_bark_voice_presets_are_read_at_load(audio_models: dict[str, Any], tmp_path: Path) -> None:
    """In process (the Ray path is the test above): presets are read when the voice loads,
    from the checkpoint folder or an .npz file, and one that is not there is refused."""
    from audio.registry import tts_backend

    entry = audio_models["voices"].get("tiny-bark-hub-preset")  # a suno/bark preset name
    with pytest.raises(StudioError) as e:
        tts_backend(entry, device="cpu")
    assert (e.value.stage, e.value.field) == ("voice", "voice_preset")
    assert e.value.what.startswith("voice 'tiny-bark-hub-preset': the Bark voice preset "
                                   "'v2/en_speaker_6' is not available locally: ")
    assert "(it lists v2/tiny_speaker)" in e.value.what
    assert "speaker_embeddings/" in e.value.fix and "leave voice_preset unset" in e.value.fix
    # a preset the checkpoint lists (speaker_embeddings/) conditions all three sub-models:
    # same seed, same length, other audio than no preset
    listed = tts_backend(audio_models["voices"].get("tiny-bark-speaker"), device="cpu")
    arrays = listed.voice_preset
    assert sorted(arrays) == ["coarse_prompt", "fine_prompt", "semantic_prompt"]
    r0 = tts_backend(audio_models["voices"].get("tiny-bark"), device="cpu").synthesize(
        "Hello there.", tmp_path / "none.wav", beat="b1", deterministic=True)
    r1 = listed.synthesize("Hello there.", tmp_path / "listed.wav", beat="b1", deterministic=True)
    assert r0["duration"] == r1["duration"] == pytest.approx(BARK_SENTENCE / 24000, abs=1e-4)
    assert sha(tmp_path / "none.wav") != sha(tmp_path / "listed.wav")
    # the same preset saved as an .npz file (what the processor also takes) speaks the same
    np.savez(tmp_path / "speaker.npz", **arrays)
    doc = voice_doc("npz", source={"path": str(audio_models["bark"])}, sample_rate=24000,
                    voice_preset=str(tmp_path / "speaker.npz"), call_args=BARK_ARGS)
    backend = tts_backend(VoiceEntry.model_validate(doc), device="cpu")
    backend.synthesize("Hello there.", tmp_path / "npz.wav", beat="b1", deterministic=True)
    assert sha(tmp_path / "npz.wav") == sha(tmp_path / "listed.wav")
    doc["voice_preset"] = str(tmp_path / "nowhere.npz")
    with pytest.raises(StudioError, match="preset '.*nowhere.npz' is not available locally"):
        tts_backend(VoiceEntry.model_validate(doc), device="cpu")
    np.savez(tmp_path / "flat.npz", **{k: v.reshape(-1) for k, v in arrays.items()})
    doc["voice_preset"] = str(tmp_path / "flat.npz")
    with pytest.raises(StudioError, match="flat.npz' is not a Bark voice preset: ValueError: coarse_prompt"):
        tts_backend(VoiceEntry.model_validate(doc), device="cpu")
    # a preset the checkpoint lists, with its files missing (only the weights were fetched)
    partial = tmp_path / "partial"
    shutil.copytree(audio_models["bark"], partial)
    (partial / "speaker_embeddings" / "v2" / "tiny_speaker_fine_prompt.npy").unlink()
    doc.update(source={"path": str(partial)}, voice_preset="v2/tiny_speaker")
    with pytest.raises(StudioError) as e2:
        tts_backend(VoiceEntry.model_validate(doc), device="cpu")
    assert e2.value.field == "voice_preset" and "tiny_speaker_fine_prompt.npy" in e2.value.what
    assert "'v2/tiny_speaker' is not available locally: ValueError: " in e2.value.what


def test_a_voice_that_cannot_load_says_why(audio_models: dict[str, Any], cpu_settings, ray_session,
                                           tmp_path: Path) -> None:
    """The model loads in the actor's constructor: its StudioError reaches the caller as
    itself, not as a Ray traceback."""
    from audio.actors import synthesize_lines

    entry = audio_models["voices"].get("tiny-speecht5-mute")  # no speaker embedding
    with pytest.raises(StudioError) as e:
        synthesize_lines(entry, [("b1", TWO, tmp_path / "b1.wav")], settings=cpu_settings,
                         deterministic=True)
    assert "SpeechT5 needs the speaker's x-vector" in str(e.value)
    assert "speaker_embedding" in str(e.value) and "Traceback" not in str(e.value)


def test_piper_runs_in_process(cpu_settings, tmp_path: Path) -> None:
    from audio.actors import synthesize_lines

    entry = VoiceRegistry().get("joe-us")
    records = synthesize_lines(entry, [("b1", "Hello there.", tmp_path / "b1.wav")],
                               settings=cpu_settings, deterministic=True)
    assert "worker" not in records[0] and records[0]["deterministic"] is True
    assert ffprobe(tmp_path / "b1.wav")["rate"] == 22050


def test_musicgen_on_a_ray_actor(audio_models: dict[str, Any], cpu_settings, ray_session,
                                 tmp_path: Path) -> None:
    from audio.actors import generate_music
    from studio.models import weights_hash

    entry = audio_models["models"].get("tiny-musicgen")
    out = tmp_path / "bed.wav"
    r = generate_music(entry, "  upbeat   synth pop ", 1.3, out, seed=7, settings=cpu_settings)
    info = ffprobe(out)
    assert (info["codec"], info["rate"], info["channels"]) == ("pcm_s16le", 16000, 1)
    assert info["duration"] == pytest.approx(1.3, abs=1e-6)  # exactly the duration asked for
    pcm = _pcm(out)
    assert len(pcm) == 20800
    # Faded out, no click at the cut: the 50 ms before the fade (800 samples at 16 kHz)
    # are loud (the tiny codec's output sits near -0.37 of full scale), the last samples
    # are not, so the tail is quiet because of the fade, not because the bed is.
    assert np.abs(pcm[-1600:-800]).max() > 8000 and np.abs(pcm[-8:]).max() < 2000
    # 50 frames/s, 2 codebooks delayed one step: ceil(1.3 * 50) + 1 new tokens
    assert r["tokens"] == math.ceil(1.3 * 50) + 1 == 66
    assert (r["model"], r["revision"], r["prompt"], r["seed"], r["guidance"]) == (
        "tiny-musicgen", None, "upbeat synth pop", 7, 3.0)
    assert (r["sample_rate"], r["channels"], r["duration"], r["device"]) == (16000, 1, 1.3, "cpu")
    assert r["generated_seconds"] > 0 and r["worker"].split(":")[-1] != str(os.getpid())
    assert r["weights_sha256"] == weights_hash(audio_models["musicgen"])
    assert r["rights"] == {"licence": "CC-BY-NC 4.0 (as musicgen-small)", "licence_url": None,
                           "usage_classes": ["experiment", "internal"],
                           "provenance": "random weights built by tests/tiny_models.py"}
    again = tmp_path / "again.wav"
    generate_music(entry, "upbeat synth pop", 1.3, again, seed=7, settings=cpu_settings)
    assert sha(again) == sha(out)  # same seed, same bytes (on a fresh actor)
    # ... and another seed, other audio: the codes reach the codec (with all-zero
    # codebooks every code decodes alike and every seed gives the same bytes). More than
    # rounding: the two beds differ by over 16 LSB somewhere (~200 for these seeds).
    other = tmp_path / "other.wav"
    generate_music(entry, "upbeat synth pop", 1.3, other, seed=8, settings=cpu_settings)
    assert _differ(_pcm(other), pcm) > 16


def _pcm(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def _differ(a: np.ndarray, b: np.ndarray) -> int:
    """The largest sample difference of two equally long 16-bit beds."""
    assert a.shape == b.shape
    return int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())


def test_musicgen_prompt_reaches_the_audio(audio_models: dict[str, Any], tmp_path: Path) -> None:
    """In process (the Ray path is the test above): the same seed with another prompt
    gives other audio, the text conditioning reaches the codes and the codes the codec."""
    from audio.musicgen import MusicGenBackend

    backend = MusicGenBackend(audio_models["models"].get("tiny-musicgen"), device="cpu")
    backend.generate("upbeat synth pop", 1.3, tmp_path / "pop.wav", seed=7)
    backend.generate("calm piano", 1.3, tmp_path / "piano.wav", seed=7)
    # ~70 LSB for these prompts: the tiny decoder's text conditioning is weak.
    assert _differ(_pcm(tmp_path / "pop.wav"), _pcm(tmp_path / "piano.wav")) > 16
