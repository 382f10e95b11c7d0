"""A music bed from a transformers MusicGen-class model (backend ``musicgen``).

Built from a ``ModelEntry`` of kind ``text-to-music`` (``studio.models``): a local folder
written by ``save_pretrained``/``hf download --local-dir``, or a hub id at a revision read
from the local hub cache (``local_files_only``: a worker never downloads at run time). The
weights hash is computed, and checked against the entry's pin, before the weights load.

* Model: ``MusicgenForConditionalGeneration`` (or the transformers class named by the
  entry's ``pipeline_class``, e.g. ``MusicgenMelodyForConditionalGeneration``: untested)
  and its ``AutoProcessor`` (a T5 tokenizer plus the EnCodec feature extractor).
* Length: MusicGen emits one token per codebook per EnCodec frame with the codebooks
  delayed one step each, so ``duration`` seconds need
  ``ceil(duration * frame_rate) + num_codebooks - 1`` new tokens. The audio is then cut
  to exactly ``duration`` seconds with a short fade-out (or faded and padded with silence
  when the model stopped early). A duration over the entry's ``max_duration`` is refused.
* Sound: written as 16-bit PCM at the model's own rate (32 kHz for the Meta checkpoints)
  with the channels it produced (mono, or stereo for the ``-stereo`` checkpoints); the
  mix stage converts to its 48 kHz stereo. No loudness normalisation here (the mix
  masters the bed); only a bed that would clip is scaled down to ``PEAK_DBFS``.
* Determinism: ``torch.manual_seed(seed)`` before ``generate`` (sampling draws from
  torch's global generator): the same seed gives the same bytes on the CPU; on a GPU
  the same seed gives the same draws, but kernels may differ run to run.

torch and transformers are imported inside methods: importing this module stays cheap.
"""

from __future__ import annotations

import importlib.util
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from audio.transformers_tts import write_wav
from studio.errors import StageError, StudioError
from studio.models import ModelEntry, parse_entry, verify_weights

CODE_VERSION = "musicgen.1"
FADE = 0.05  # seconds of fade-out where the bed is cut: no click at the end
PEAK_DBFS = -1.0


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:300]}" if text else type(e).__name__


def fit_length(audio: np.ndarray, samples: int, fade: int) -> np.ndarray:
    """``audio`` (samples, channels) cut or padded to exactly ``samples``, with a linear
    fade-out over the last ``fade`` samples of the sound."""
    out = audio[:samples].astype(np.float32, copy=True)
    k = min(fade, len(out))
    if k:
        out[len(out) - k:] *= np.linspace(1.0, 0.0, k, dtype=np.float32)[:, None]
    if len(out) < samples:
        out = np.concatenate([out, np.zeros((samples - len(out), out.shape[1]), np.float32)])
    return out


class MusicGenBackend:
    """One MusicGen-class model, loaded once, writing one bed per call."""

    name = "musicgen"
    code_version = CODE_VERSION

    @staticmethod
    def availability() -> str | None:
        missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
        if missing:
            return (f"needs {' and '.join(missing)} (install torch for this machine, then "
                    "pip install -e .[gpu])")
        return None

    def __init__(self, model_entry: ModelEntry | dict[str, Any], *, device: str = "auto",
                 local_files_only: bool = True) -> None:
        entry = parse_entry(model_entry, source="backend options: model")  # type: ignore[arg-type]
        if entry.backend != self.name:
            raise StudioError(f"model {entry.id!r} is a {entry.kind} model for backend "
                              f"{entry.backend!r}, not {self.name!r}",
                              fix="pick a text-to-music model", field="music.source")
        why = self.availability()
        if why:
            raise StageError(f"model {entry.id!r}: the musicgen backend {why}",
                             fix="install the model extras", stage="music", field="music.source")
        import torch
        import transformers

        self.entry = entry
        self.local_files_only = local_files_only
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device in ("", "auto") else device
        # Half precision on the CPU is slow and EnCodec's convolutions lack kernels for it:
        # the entry's dtype applies on GPUs; the record says what actually ran.
        self.dtype = entry.dtype if self.device.startswith("cuda") else "float32"
        torch_dtype = {"float32": torch.float32, "float16": torch.float16,
                       "bfloat16": torch.bfloat16}[self.dtype]
        if self.device.startswith("cuda"):
            torch.backends.cudnn.benchmark = False  # no run-to-run kernel autotuning
        t0 = time.perf_counter()
        self.folder = self._resolve()
        # Hash before loading: unverified weights never run.
        self.weights_sha256 = verify_weights(entry, self.folder)
        name = entry.pipeline_class or "MusicgenForConditionalGeneration"
        cls = getattr(transformers, name, None)
        if cls is None or not hasattr(cls, "from_pretrained"):
            raise StudioError(f"model {entry.id!r}: {name!r} is not a transformers model class "
                              f"(transformers {transformers.__version__})",
                              fix="omit pipeline_class (MusicgenForConditionalGeneration) or name "
                              "a MusicGen-class transformers model", field="pipeline_class")
        try:
            self.model = cls.from_pretrained(str(self.folder), dtype=torch_dtype,
                                             local_files_only=True).to(self.device).eval()
            self.processor = transformers.AutoProcessor.from_pretrained(
                str(self.folder), local_files_only=True)
        except Exception as e:
            raise StudioError(
                f"model {entry.id!r}: loading {name} from {self.folder} failed: {_first_line(e)}",
                fix="check the folder is a complete MusicGen checkpoint with its processor "
                "(tokenizer and feature extractor)", field="source") from e
        self.load_seconds = time.perf_counter() - t0
        audio_cfg = self.model.config.audio_encoder
        self.sample_rate = int(audio_cfg.sampling_rate)
        self.frame_rate = float(audio_cfg.frame_rate)
        self.num_codebooks = int(self.model.decoder.config.num_codebooks)
        self.channels = int(getattr(self.model.decoder.config, "audio_channels", 1) or 1)
        if entry.sample_rate is not None and entry.sample_rate != self.sample_rate:
            raise StudioError(f"model {entry.id!r} says sample_rate {entry.sample_rate} but it "
                              f"writes {self.sample_rate} Hz",
                              fix=f"set sample_rate: {self.sample_rate} in the model entry",
                              field="sample_rate")

    def _resolve(self) -> Path:
        src = self.entry.source
        if src.path is not None:
            folder = Path(src.path)
            if not (folder / "config.json").is_file():
                raise StudioError(
                    f"model {self.entry.id!r}: {folder} is not a transformers model folder (no config.json)",
                    fix="point source.path at a folder written by save_pretrained or "
                    "`hf download --local-dir`", field="source.path")
            return folder
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(src.hub_id, revision=src.revision,
                                          local_files_only=self.local_files_only))
        except Exception as e:
            how = ("it is not in the local hub cache" if self.local_files_only
                   else "it could not be downloaded")
            raise StudioError(
                f"model {self.entry.id!r}: {src.hub_id}@{src.revision} cannot be loaded: {how} "
                f"({_first_line(e)})",
                fix=f"fetch it first (`hf download {src.hub_id} --revision {src.revision}`) on a "
                "machine with hub access, or point source.path at a local copy", field="source",
            ) from e

    def describe(self) -> dict[str, Any]:
        from studio.hf import library_versions

        e = self.entry
        return {
            "backend": self.name, "model_id": e.id, "model_class": type(self.model).__name__,
            "weights_sha256": self.weights_sha256, "weights_pinned": e.pinned,
            "source": e.source.model_dump(mode="json", exclude_none=True),
            "device": self.device, "dtype": self.dtype, "sample_rate": self.sample_rate,
            "frame_rate": self.frame_rate, "code_version": self.code_version,
            "library_versions": library_versions(),
        }

    def tokens_for(self, duration: float) -> int:
        """New tokens for ``duration`` seconds of audio (see the module docstring)."""
        return math.ceil(duration * self.frame_rate) + self.num_codebooks - 1

    def generate(self, prompt: str, duration: float, out_wav: Path, *, seed: int) -> dict[str, Any]:
        """A bed of exactly ``duration`` seconds for ``prompt``, written to ``out_wav``."""
        import torch

        e = self.entry
        prompt = " ".join(str(prompt).split())
        if not prompt:
            raise StageError("the music prompt is empty", stage="music", field="music.prompt",
                             fix="set music.prompt or a mood in the brief")
        limit = float(e.max_duration or 0)
        if not 0 < duration <= limit:
            raise StageError(
                f"model {e.id!r} makes at most {limit:g} s of music per call; the spot needs "
                f"{duration:.2f} s", stage="music", field="music.source",
                fix="use procedural or library music for a longer spot, or a model entry with "
                "a larger max_duration")
        tokens = self.tokens_for(duration)
        kwargs: dict[str, Any] = {"do_sample": True, "guidance_scale": e.guidance,
                                  "max_new_tokens": tokens}
        kwargs.update(e.call_args)  # e.g. top_k, temperature: recorded below
        t0 = time.perf_counter()
        torch.manual_seed(seed)
        inputs = self.processor(text=[prompt], padding=True, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs)
        seconds = time.perf_counter() - t0
        audio = out[0].detach().to("cpu").float().numpy().T  # (samples, channels)
        generated = audio.shape[0] / self.sample_rate
        samples = round(duration * self.sample_rate)
        audio = fit_length(audio, samples, round(min(FADE, duration / 4) * self.sample_rate))
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if not np.isfinite(peak) or peak < 1e-6:
            raise StageError(f"model {e.id!r} produced {'silence' if np.isfinite(peak) else 'NaN'} "
                             f"for {prompt[:40]!r}", stage="music", field="music.prompt",
                             fix="try another prompt or seed; if it persists, check the weights")
        scaled = peak > 1.0
        if scaled:
            audio *= 10 ** (PEAK_DBFS / 20) / peak
        out_wav = Path(out_wav)
        write_wav(out_wav, audio, self.sample_rate)
        return {
            "backend": self.name,
            "model": e.id,
            "model_class": type(self.model).__name__,
            "hub_id": e.source.hub_id,
            "revision": e.source.revision,
            "weights_sha256": self.weights_sha256,
            "weights_pinned": e.pinned,
            "prompt": prompt,
            "seed": seed,
            "guidance": e.guidance,
            "tokens": tokens,
            "frame_rate": self.frame_rate,
            "num_codebooks": self.num_codebooks,
            "call_args": dict(e.call_args),
            "wav": str(out_wav),
            "sample_rate": self.sample_rate,
            "channels": int(audio.shape[1]),
            "duration": samples / self.sample_rate,
            "generated_seconds": generated,
            "padded_seconds": max(0.0, duration - generated),
            "fade_out": min(FADE, duration / 4),
            "scaled_to_peak": scaled,
            "device": self.device,
            "dtype": self.dtype,
            "seconds": seconds,
            "rtf": seconds / duration,
            "code_version": self.code_version,
            "rights": {"licence": e.licence, "licence_url": e.licence_url,
                       "usage_classes": list(e.usage_classes), "provenance": e.provenance},
        }
