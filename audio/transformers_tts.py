"""Narration from transformers text-to-speech models (backend ``transformers-tts``).

Built from a ``VoiceEntry`` (``audio.voices``) whose source is a local folder (written by
``save_pretrained`` or ``hf download --local-dir``), an installed package's folder, or a
hub id at a revision. Hub sources resolve through the local hub cache: with
``source.offline: true`` (the default) nothing is downloaded at run time
(``local_files_only``), so fetch the weights onto shared storage ahead of time.

Families, by the checkpoint's ``config.model_type``:

* ``vits`` (VITS, and Meta's MMS-TTS checkpoints such as ``facebook/mms-tts-eng``):
  ``VitsModel`` + its ``AutoTokenizer`` (character vocabulary). ``call_args`` may set the
  model's ``speaking_rate``, ``noise_scale`` and ``noise_scale_duration``. Tested with tiny
  random weights.
* ``speecht5`` (``microsoft/speecht5_tts``): ``SpeechT5ForTextToSpeech``, a
  ``SpeechT5HifiGan`` vocoder (``source.vocoder_path`` or ``vocoder_hub_id``) and the
  speaker's x-vector from ``source.speaker_embedding`` (a ``.npy`` file). The real
  checkpoint's tokenizer is SentencePiece: it needs the ``sentencepiece`` package. Tested
  with tiny random weights (and a tokenizers-backed tokenizer).
* ``bark`` (``suno/bark``, ``suno/bark-small``): ``BarkModel`` + ``AutoProcessor``.
  ``voice_preset`` names a preset in the checkpoint's ``speaker_embeddings_path.json``
  (files under ``speaker_embeddings/``, read from the folder at load, never downloaded) or
  is the path of an ``.npz`` preset; a missing one is refused at load (field
  ``voice_preset``); without one Bark picks a random speaker, fixed by the seed. All
  ``call_args`` go to ``BarkModel.generate``, which hands ``semantic_*``/``coarse_*``/
  ``fine_*`` ones to its sub-models (e.g. ``semantic_max_new_tokens``). Bark may end a
  sentence's semantic tokens at once (its first token is the end token; a low
  ``min_eos_p`` makes it likelier), which leaves EnCodec no frames to decode: that
  sentence is refused with a StageError naming the beat (field ``narration``), not
  EnCodec's own error; ``semantic_min_new_tokens`` in ``call_args`` prevents it. Tested
  with a tiny random-weight Bark (three one-layer sub-models, a 4-codebook EnCodec, a
  word-piece tokenizer and one preset), with and without a preset.
* anything else ``AutoModelForTextToWaveform`` maps (FastSpeech2-Conformer with HiFi-GAN,
  SeamlessM4T text-to-speech, ...): ``AutoProcessor`` (else ``AutoTokenizer``), then
  ``generate`` with all ``call_args`` (else ``forward`` with those its signature
  has). **Untested.** Parler-TTS is not a transformers model (it is the separate
  ``parler-tts`` package, whose latest release, 0.2.3, requires exactly transformers
  4.46.1): it needs a plugin in its own environment.

Every line is checked with the same rules as Piper's (``audio.tts.check_text``), split into
sentences, synthesised sentence by sentence and joined with ``SENTENCE_PAUSE`` of silence,
so each sentence's ``start``/``end`` in the record is where its audio really is. The line is
peak-normalised to ``PEAK_DBFS`` and written as a mono 16-bit WAV at the model's rate.

Determinism: every sentence is synthesised after ``torch.manual_seed(seed + i)``; VITS,
SpeechT5 and Bark draw their noise from torch's global generator, so on the CPU the same
seed gives the same bytes. ``deterministic=True`` uses the entry's ``seed``; otherwise a
fresh seed is drawn and recorded, so any line can be made again. On a GPU the same seed gives
the same noise, but kernels may differ run to run (cuDNN autotuning is switched off).

torch and transformers are imported inside methods: importing this module stays cheap.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import secrets
import time
import wave
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from audio.tts import PEAK_DBFS, check_text
from studio.errors import StageError, StudioError
from studio.store import atomic_output

if TYPE_CHECKING:
    from audio.voices import VoiceEntry

CODE_VERSION = "transformers-tts.1"
# Silence between sentences: the models end a sentence on the last phoneme, with none of
# the pause a reader leaves; 0.25 s reads naturally and captions get a visible gap.
SENTENCE_PAUSE = 0.25
# VITS attributes that change delivery; they are not arguments of its forward().
VITS_ATTRIBUTES = ("speaking_rate", "noise_scale", "noise_scale_duration")

# A sentence ends at . ! ? or an ellipsis (with closing quotes or brackets) followed by
# whitespace or the end of the text: "3.5" and "studio.io" stay whole.
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019\u00bb)\]]*(?=\s|$)")


def split_sentences(text: str) -> list[str]:
    """``text`` as sentences, each with at least one letter or digit (a stray "..." joins
    the sentence before it)."""
    pieces: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        pieces.append(text[start:m.end()].strip())
        start = m.end()
    pieces.append(text[start:].strip())
    out: list[str] = []
    for piece in pieces:
        if not piece:
            continue
        if out and not (any(c.isalnum() for c in piece) and any(c.isalnum() for c in out[-1])):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def join_sentences(pieces: list[tuple[str, np.ndarray]], sample_rate: int,
                   pause: float = SENTENCE_PAUSE) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One line from per-sentence audio: the audio with ``pause`` seconds between
    sentences, and ``{text, start, end}`` of each sentence in seconds within it."""
    gap = np.zeros(round(pause * sample_rate), dtype=np.float32)
    parts: list[np.ndarray] = []
    sentences: list[dict[str, Any]] = []
    t = 0
    for i, (text, audio) in enumerate(pieces):
        if i:
            parts.append(gap)
            t += len(gap)
        parts.append(audio.astype(np.float32, copy=False))
        sentences.append({"text": text, "start": round(t / sample_rate, 4),
                          "end": round((t + len(audio)) / sample_rate, 4)})
        t += len(audio)
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), sentences


def peak_normalise(audio: np.ndarray, *, beat: str, what: str) -> np.ndarray:
    """Scale to ``PEAK_DBFS`` sample peak; silence is refused, naming the beat."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if not np.isfinite(peak) or peak < 1e-6:
        raise StageError(f"{what} produced silence" if np.isfinite(peak) else f"{what} produced NaN",
                         stage="voice", shot=beat, field="narration",
                         fix="write the line in words; if it persists, check the voice's weights")
    return (audio * (10 ** (PEAK_DBFS / 20) / peak)).astype(np.float32)


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM WAV, atomically; ``audio`` is float in [-1, 1], (samples,) or
    (samples, channels)."""
    a = audio if audio.ndim == 2 else audio[:, None]
    pcm = np.clip(np.round(a * 32767), -32768, 32767).astype("<i2")
    with atomic_output(Path(path)) as tmp:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(a.shape[1])
            w.setsampwidth(2)
            w.setframerate(int(sample_rate))
            w.writeframes(pcm.tobytes())


class _NoFrames(Exception):
    """Raised before EnCodec decodes no frames at all (see ``_refuse_no_frames``)."""


def _refuse_no_frames(module: Any, args: tuple[Any, ...]) -> None:
    # A forward pre-hook on Bark's EnCodec decoder: with zero frames its first convolution
    # fails with "Kernel size can't be greater than actual input size", which says
    # nothing about the sentence; stop there and let _one say what happened.
    if args and getattr(args[0], "ndim", 0) and args[0].shape[-1] == 0:
        raise _NoFrames


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:300]}" if text else type(e).__name__


def _to_mono(x: Any) -> np.ndarray:
    """A model's waveform (tensor or array, any leading batch axes) as float32 mono."""
    if hasattr(x, "detach"):
        x = x.detach().to("cpu").float().numpy()
    a = np.asarray(x, dtype=np.float32)
    a = np.squeeze(a)
    if a.ndim == 2:
        # (channels, samples) from a stereo model: narration is mono.
        a = a.mean(axis=0 if a.shape[0] < a.shape[1] else 1)
    return a.reshape(-1)


def resolve_device(device: str, entry: VoiceEntry) -> str:
    import torch

    if entry.device == "cpu":
        return "cpu"
    if device and device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


class TransformersTTSBackend:
    """One transformers TTS voice, loaded once, rendering one WAV per beat."""

    name = "transformers-tts"
    code_version = CODE_VERSION

    @staticmethod
    def availability() -> str | None:
        missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
        if missing:
            return (f"needs {' and '.join(missing)} (install torch for this machine, then "
                    "pip install -e .[gpu])")
        return None

    def __init__(self, entry: VoiceEntry, *, deterministic: bool = False, device: str = "auto") -> None:
        if entry.backend != self.name:
            raise StudioError(f"voice {entry.id!r} runs on {entry.backend!r}, not {self.name}",
                              fix=f"use backend {entry.backend!r} for it", stage="voice", field="voice")
        why = self.availability()
        if why:
            raise StageError(f"voice {entry.id!r}: the transformers-tts backend {why}",
                             fix="install the model extras", stage="voice", field="voice")
        import torch

        self.entry = entry
        self.deterministic = deterministic
        self.device = resolve_device(device, entry)
        # Half precision on the CPU is slow and some audio ops lack kernels for it: the
        # entry's dtype applies on GPUs; the record says what actually ran.
        self.dtype = entry.dtype if self.device.startswith("cuda") else "float32"
        self._torch_dtype = {"float32": torch.float32, "float16": torch.float16,
                             "bfloat16": torch.bfloat16}[self.dtype]
        if self.device.startswith("cuda"):
            torch.backends.cudnn.benchmark = False  # no run-to-run kernel autotuning
        t0 = time.perf_counter()
        self.folder = self._resolve(entry.source.hub_id, entry.source.revision,
                                    None if entry.source.hub_id else entry.files()["model"],
                                    what="model", field="source")
        import transformers

        from studio.models import weights_hash

        # Which weights spoke a line, in the record (as for image models).
        self.weights_sha256 = weights_hash(self.folder)
        config = self._load("config", lambda: transformers.AutoConfig.from_pretrained(
            str(self.folder), local_files_only=True))
        self.family = str(config.model_type)
        self.vocoder: Any = None
        self.vocoder_sha256: str | None = None
        self.speaker: Any = None
        self.processor: Any = None
        self.voice_preset: Any = None  # Bark: the speaker preset's arrays
        loader = {"vits": self._load_vits, "speecht5": self._load_speecht5,
                  "bark": self._load_bark}.get(self.family, self._load_generic)
        loader()
        self.model.eval()
        self.load_seconds = time.perf_counter() - t0
        if self.sample_rate != entry.sample_rate:
            raise StudioError(
                f"voice {entry.id!r} says sample_rate {entry.sample_rate} but its model "
                f"writes {self.sample_rate} Hz",
                fix=f"set sample_rate: {self.sample_rate} in the voice entry", stage="voice",
                field="sample_rate")

    # -- loading -------------------------------------------------------------------------

    def _resolve(self, hub_id: str | None, revision: str | None, folder: Path | None, *,
                 what: str, field: str) -> Path:
        """A local folder holding a checkpoint (from the hub cache for hub sources)."""
        e = self.entry
        if hub_id is None:
            assert folder is not None
            if not (Path(folder) / "config.json").is_file():
                raise StudioError(
                    f"voice {e.id!r}: {folder} is not a transformers {what} folder (no config.json)",
                    fix="point the source at a folder written by save_pretrained or "
                    "`hf download --local-dir`", stage="voice", field=field)
            return Path(folder)
        from huggingface_hub import snapshot_download

        offline = e.source.offline
        try:
            return Path(snapshot_download(hub_id, revision=revision, local_files_only=offline))
        except Exception as err:
            how = "it is not in the local hub cache" if offline else "it could not be downloaded"
            raise StudioError(
                f"voice {e.id!r}: {what} {hub_id}@{revision} cannot be loaded: {how} ({_first_line(err)})",
                fix=f"fetch it first (`hf download {hub_id} --revision {revision}`) on a machine "
                "with hub access, or point the source at a local copy", stage="voice", field=field,
            ) from err

    def _load(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except StudioError:
            raise
        except Exception as err:
            hint = ("; SpeechT5's own tokenizer needs `pip install sentencepiece`"
                    if "sentencepiece" in str(err).lower() else "")
            raise StageError(
                f"voice {self.entry.id!r}: loading the {what} from {self.folder} failed: "
                f"{_first_line(err)}{hint}",
                fix="check the folder is a complete checkpoint of a supported family "
                "(see docs/audio-backends.md)", stage="voice", field="source") from err

    def _from(self, cls: Any, folder: Path | None = None) -> Any:
        return cls.from_pretrained(str(folder or self.folder), dtype=self._torch_dtype,
                                   local_files_only=True).to(self.device)

    def _load_vits(self) -> None:
        import transformers as tf

        self.model = self._load("model", lambda: self._from(tf.VitsModel))
        self.tokenizer = self._load("tokenizer", lambda: tf.AutoTokenizer.from_pretrained(
            str(self.folder), local_files_only=True))
        if getattr(self.tokenizer, "is_uroman", False):
            # MMS checkpoints for non-Latin scripts read romanised text (uroman); Studio
            # does not romanise, and unromanised text would be dropped character by
            # character without a word of warning.
            raise StudioError(
                f"voice {self.entry.id!r}: this MMS checkpoint reads uroman-romanised text, "
                "which Studio does not produce", fix="use a checkpoint for a Latin-script "
                "language or a plugin that romanises", stage="voice", field="source")
        for key in VITS_ATTRIBUTES:
            if key in self.entry.call_args:
                setattr(self.model, key, float(self.entry.call_args[key]))
        self.sample_rate = int(self.model.config.sampling_rate)

    def _load_speecht5(self) -> None:
        import torch
        import transformers as tf

        from studio.models import weights_hash

        src = self.entry.source
        self.model = self._load("model", lambda: self._from(tf.SpeechT5ForTextToSpeech))
        self.tokenizer = self._load("tokenizer", lambda: tf.AutoTokenizer.from_pretrained(
            str(self.folder), local_files_only=True))
        if src.vocoder_path is None and src.vocoder_hub_id is None:
            raise StudioError(f"voice {self.entry.id!r}: SpeechT5 makes spectrograms and needs a vocoder",
                              fix="set source.vocoder_path (or vocoder_hub_id + vocoder_revision), "
                              "e.g. microsoft/speecht5_hifigan", stage="voice", field="source.vocoder_path")
        vfolder = self._resolve(src.vocoder_hub_id, src.vocoder_revision,
                                Path(src.vocoder_path) if src.vocoder_path else None,
                                what="vocoder", field="source.vocoder_path")
        self.vocoder_sha256 = weights_hash(vfolder)
        self.vocoder = self._load("vocoder", lambda: self._from(tf.SpeechT5HifiGan, vfolder))
        if src.speaker_embedding is None:
            raise StudioError(f"voice {self.entry.id!r}: SpeechT5 needs the speaker's x-vector",
                              fix="set source.speaker_embedding to a .npy file of "
                              f"{self.model.config.speaker_embedding_dim} floats",
                              stage="voice", field="source.speaker_embedding")
        try:
            vec = np.load(src.speaker_embedding).astype(np.float32).reshape(-1)
        except (OSError, ValueError) as err:
            raise StudioError(f"voice {self.entry.id!r}: cannot read the speaker embedding "
                              f"{src.speaker_embedding}: {err}", fix="give a .npy file",
                              stage="voice", field="source.speaker_embedding") from err
        want = int(self.model.config.speaker_embedding_dim)
        if vec.size != want:
            raise StudioError(f"voice {self.entry.id!r}: the speaker embedding has {vec.size} "
                              f"values; the model takes {want}", fix="use an x-vector of the "
                              "model's size", stage="voice", field="source.speaker_embedding")
        self.speaker = torch.from_numpy(vec)[None].to(self.device, self._torch_dtype)
        self.sample_rate = int(self.vocoder.config.sampling_rate)

    def _load_bark(self) -> None:
        import transformers as tf

        self.processor = self._load("processor", lambda: tf.AutoProcessor.from_pretrained(
            str(self.folder), local_files_only=True))
        # Read once, before the weights: a preset that is not on disk stops the load, not
        # the first line.
        self.voice_preset = (None if self.entry.voice_preset is None
                             else self._bark_preset(self.entry.voice_preset))
        self.model = self._load("model", lambda: self._from(tf.BarkModel))
        self.model.codec_model.decoder.register_forward_pre_hook(_refuse_no_frames)
        self.sample_rate = int(self.model.generation_config.sample_rate)

    def _bark_preset(self, name: str) -> dict[str, np.ndarray]:
        """The speaker preset's arrays: a preset listed in the checkpoint's
        ``speaker_embeddings_path.json`` (read from the folder, never downloaded), or an
        ``.npz`` file."""
        proc = self.processor
        known = proc.available_voice_presets
        try:
            if name in known:
                arrays = proc._load_voice_preset(name, local_files_only=True)
            elif name.endswith(".npz") and Path(name).is_file():
                with np.load(name) as npz:
                    arrays = {k: npz[k] for k in npz.files}
            else:
                listed = (f"it lists {', '.join(sorted(known)[:6])}{', ...' if len(known) > 6 else ''}"
                          if known else "it has no speaker_embeddings_path.json")
                raise FileNotFoundError(f"not a preset of {self.folder} ({listed}) nor an .npz file")
        except Exception as err:
            raise StudioError(
                f"voice {self.entry.id!r}: the Bark voice preset {name!r} is not available "
                f"locally: {_first_line(err)}",
                fix="fetch the whole checkpoint with its speaker_embeddings/ folder (e.g. `hf "
                "download suno/bark --local-dir ...`), give the absolute path of a preset .npz "
                "file, or leave voice_preset unset (a random speaker, fixed by the seed)",
                stage="voice", field="voice_preset") from err
        try:
            proc._validate_voice_preset_dict(arrays)
        except (TypeError, ValueError) as err:
            raise StudioError(
                f"voice {self.entry.id!r}: {name!r} is not a Bark voice preset: {_first_line(err)}",
                fix="use a preset with semantic_prompt (1-D), coarse_prompt and fine_prompt "
                "(2-D) arrays, made for this checkpoint", stage="voice", field="voice_preset") from err
        return arrays

    def _load_generic(self) -> None:
        import transformers as tf
        from transformers.models.auto import modeling_auto

        if self.family in modeling_auto.MODEL_FOR_TEXT_TO_SPECTROGRAM_MAPPING_NAMES:
            raise StudioError(
                f"voice {self.entry.id!r}: {self.family} makes spectrograms; this backend "
                "pairs only SpeechT5 with a vocoder", fix="use the family's checkpoint with a "
                "built-in vocoder (e.g. *_with_hifigan) or a plugin", stage="voice", field="source")
        if self.family not in modeling_auto.MODEL_FOR_TEXT_TO_WAVEFORM_MAPPING_NAMES:
            raise StudioError(
                f"voice {self.entry.id!r}: {self.family!r} is not a transformers text-to-speech "
                "model", fix="use a VITS/MMS, SpeechT5, Bark or other text-to-waveform "
                "checkpoint", stage="voice", field="source")
        self.model = self._load("model", lambda: self._from(tf.AutoModelForTextToWaveform))
        try:
            self.processor = tf.AutoProcessor.from_pretrained(str(self.folder), local_files_only=True)
        except Exception:
            # Some checkpoints ship only a tokenizer.
            self.processor = self._load("tokenizer", lambda: tf.AutoTokenizer.from_pretrained(
                str(self.folder), local_files_only=True))
        cfg = self.model.config
        rate = (getattr(cfg, "sampling_rate", None)
                or getattr(self.model.generation_config, "sample_rate", None)
                or getattr(getattr(self.processor, "feature_extractor", None), "sampling_rate", None))
        if not rate:
            raise StudioError(f"voice {self.entry.id!r}: cannot tell the sampling rate of {self.family}",
                              fix="use a supported family (docs/audio-backends.md)", stage="voice",
                              field="source")
        self.sample_rate = int(rate)

    # -- the protocol --------------------------------------------------------------------

    def check_text(self, text: str, *, beat: str) -> tuple[str, str]:
        """The text to speak and the symbols dropped, or a StageError naming the beat."""
        return check_text(text, self.entry, beat=beat)

    def describe(self) -> dict[str, Any]:
        from studio.hf import library_versions

        src = self.entry.source
        return {
            "backend": self.name, "voice": self.entry.id, "family": self.family,
            "model_class": type(self.model).__name__,
            "source": src.model_dump(mode="json", exclude_none=True),
            "weights_sha256": self.weights_sha256,
            "vocoder_sha256": self.vocoder_sha256,
            "device": self.device, "dtype": self.dtype, "code_version": self.code_version,
            "library_versions": library_versions(),
        }

    def _kwargs(self, fn: Any) -> dict[str, Any]:
        """The entry's call_args that ``fn`` takes (VITS attributes were set at load)."""
        params = inspect.signature(fn).parameters
        return {k: v for k, v in self.entry.call_args.items()
                if k in params and k not in VITS_ATTRIBUTES}

    def _one(self, sentence: str, beat: str) -> np.ndarray:
        """One sentence's waveform (float32 mono at ``sample_rate``)."""
        import torch

        with torch.inference_mode():
            if self.family == "vits":
                inputs = self.tokenizer(sentence, return_tensors="pt").to(self.device)
                ids = inputs["input_ids"]
                pad = getattr(self.tokenizer, "pad_token_id", None)
                if ids.shape[-1] == 0 or bool((ids == pad).all()):
                    raise StageError(f"the voice {self.entry.id!r} has no characters for "
                                     f"{sentence[:40]!r}", stage="voice", shot=beat,
                                     field="narration", fix="write the line in the voice's language")
                out = self.model(**inputs, **self._kwargs(self.model.forward)).waveform
            elif self.family == "speecht5":
                ids = self.tokenizer(sentence, return_tensors="pt")["input_ids"].to(self.device)
                out = self.model.generate_speech(ids, self.speaker, vocoder=self.vocoder,
                                                 **self._kwargs(self.model.generate_speech))
            elif self.family == "bark":
                inputs = self.processor(sentence, voice_preset=self.voice_preset,
                                        return_tensors="pt").to(self.device)
                # BarkModel.generate takes **kwargs and routes them to its sub-models
                # (semantic_*, coarse_*, fine_* prefixes): a signature filter drops them all.
                try:
                    out = self.model.generate(**inputs, **self.entry.call_args)
                except _NoFrames:
                    out = None
                if out is None or out.shape[-1] == 0:
                    raise StageError(
                        f"the voice {self.entry.id!r} produced no audio for {sentence[:40]!r}: "
                        "Bark's semantic model ended the sentence at once (its first token was "
                        "the end token), leaving EnCodec no frames to decode",
                        stage="voice", shot=beat, field="narration",
                        fix="set call_args semantic_min_new_tokens (e.g. 8) in the voice entry, "
                        "or re-run with another seed (the voice's seed when deterministic); a "
                        "low min_eos_p in call_args ends sentences early")
            else:
                inputs = self.processor(text=sentence, return_tensors="pt").to(self.device)
                if hasattr(self.model, "generate"):
                    out = self.model.generate(**inputs, **self.entry.call_args)
                else:
                    out = self.model(**inputs, **self._kwargs(self.model.forward))
                out = getattr(out, "waveform", out)
                if isinstance(out, (tuple, list)):
                    out = out[0]
        return _to_mono(out)

    def synthesize(self, text: str, out_wav: Path, *, beat: str,
                   deterministic: bool | None = None) -> dict[str, Any]:
        """Render ``text`` to a mono 16-bit WAV at the model's rate, atomically."""
        import torch

        if not text or not text.strip():
            # The documented graceful path: a beat with no narration has no voice line.
            return {"skipped": True, "reason": "empty narration", "beat": beat,
                    "voice": self.entry.id, "duration": 0.0, "wav": None}
        say, dropped = self.check_text(text, beat=beat)
        det = self.deterministic if deterministic is None else deterministic
        seed = self.entry.seed if det else secrets.randbelow(2**31)
        if det and self.device.startswith("cuda"):
            torch.backends.cudnn.deterministic = True
        t0 = time.perf_counter()
        pieces = []
        for i, sentence in enumerate(split_sentences(say)):
            torch.manual_seed(seed + i)  # per sentence: a line's sentences do not shift each other
            pieces.append((sentence, self._one(sentence, beat)))
        seconds = time.perf_counter() - t0
        audio, sentences = join_sentences(pieces, self.sample_rate)
        audio = peak_normalise(audio, beat=beat, what=f"voice {self.entry.id!r}")
        out_wav = Path(out_wav)
        write_wav(out_wav, audio, self.sample_rate)
        duration = len(audio) / self.sample_rate
        return {
            "skipped": False,
            "beat": beat,
            "wav": str(out_wav),
            "voice": self.entry.id,
            "backend": self.name,
            "duration": duration,
            "sample_rate": self.sample_rate,
            "sentences": sentences,
            "sentence_pause": SENTENCE_PAUSE,
            "phonemes": None,
            "alignment": None,
            "dropped": dropped,
            "deterministic": det,
            "seed": seed,
            "family": self.family,
            "weights_sha256": self.weights_sha256,
            "device": self.device,
            "dtype": self.dtype,
            "call_args": dict(self.entry.call_args),
            "seconds": seconds,
            "rtf": seconds / duration if duration else None,
        }
