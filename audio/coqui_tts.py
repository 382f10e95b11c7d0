"""Coqui TTS (the ``coqui-tts`` package, import name ``TTS``) as an optional backend
(``coqui``).

The situation, measured on Studio's reference machine (Python 3.11, torch 2.13 CPU):
``pip install coqui-tts`` (0.28) succeeds, but ``import TTS.api`` fails: it needs
torchaudio/torchcodec builds that do not load beside torch 2.13. The original Coqui
``TTS`` package is abandoned and needs Python < 3.12. So this backend is a plugin that
works only in an environment where ``coqui-tts`` imports (an older torch, in its own
image or worker pool); here it refuses with a clear error instead of pretending.

Where it does import, a voice entry's ``source`` names a local Coqui model folder
(``model``: the checkpoint, ``config``: its ``config.json``); Coqui model *names*
(``tts_models/...``) are not accepted because Coqui downloads them at run time. Licences
vary by model: XTTS-v2 is under the Coqui Public Model License (non-commercial).
**Untested**: no environment here can import it.

``TTS`` is imported only when a voice asks for this backend.
"""

from __future__ import annotations

import importlib.util
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from audio.transformers_tts import join_sentences, peak_normalise, split_sentences, write_wav
from audio.tts import check_text
from studio.errors import StageError, StudioError

if TYPE_CHECKING:
    from audio.voices import VoiceEntry

CODE_VERSION = "coqui-tts.1"
WHY = ("coqui-tts 0.28 installs beside torch 2.13 but does not import there (it needs "
       "torchaudio/torchcodec builds that do not load beside it)")
WHAT_TO_DO = ("use a transformers-tts voice (VITS/MMS, SpeechT5) or piper; or run Coqui voices "
              "in a separate environment whose torch coqui-tts supports and register it there")


def _find_spec(name: str) -> Any:
    return importlib.util.find_spec(name)


def import_tts() -> Any:
    """``TTS.api.TTS``, or a StageError saying why Coqui cannot run here and what to do."""
    if _find_spec("TTS") is None:
        raise StageError(f"the coqui backend needs the coqui-tts package, which is not "
                         f"installed; note: {WHY}", fix=WHAT_TO_DO, stage="voice", field="voice")
    try:
        from TTS.api import TTS
    except Exception as e:
        text = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        raise StageError(f"coqui-tts is installed but cannot be imported ({type(e).__name__}: "
                         f"{text}): {WHY}", fix=WHAT_TO_DO, stage="voice", field="voice") from e
    return TTS


class CoquiBackend:
    """One Coqui TTS voice from a local model folder (untested: see the module docstring)."""

    name = "coqui"
    code_version = CODE_VERSION

    @staticmethod
    def availability() -> str | None:
        try:
            import_tts()
        except StageError as e:
            return e.what
        return None

    def __init__(self, entry: VoiceEntry, *, deterministic: bool = False, device: str = "auto") -> None:
        if entry.backend != self.name:
            raise StudioError(f"voice {entry.id!r} runs on {entry.backend!r}, not {self.name}",
                              fix=f"use backend {entry.backend!r} for it", stage="voice", field="voice")
        tts_cls = import_tts()
        import torch

        if entry.source.hub_id is not None:
            raise StudioError(f"voice {entry.id!r}: the coqui backend loads local model folders only",
                              fix="set source.path, source.model and source.config", stage="voice",
                              field="source")
        files = entry.files()
        for p in (files["model"], files["config"]):
            if p is None or not Path(p).exists():
                raise StudioError(f"voice {entry.id!r}: {p} is missing", stage="voice",
                                  field="source", fix="fix source.path/model/config")
        self.entry = entry
        self.deterministic = deterministic
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device in ("", "auto") else device
        if entry.device == "cpu":
            self.device = "cpu"
        self.tts = tts_cls(model_path=str(files["model"]), config_path=str(files["config"])).to(self.device)
        self.sample_rate = int(self.tts.synthesizer.output_sample_rate)

    def check_text(self, text: str, *, beat: str) -> tuple[str, str]:
        return check_text(text, self.entry, beat=beat)

    def synthesize(self, text: str, out_wav: Path, *, beat: str,
                   deterministic: bool | None = None) -> dict[str, Any]:
        import torch

        if not text or not text.strip():
            return {"skipped": True, "reason": "empty narration", "beat": beat,
                    "voice": self.entry.id, "duration": 0.0, "wav": None}
        say, dropped = self.check_text(text, beat=beat)
        det = self.deterministic if deterministic is None else deterministic
        seed = self.entry.seed if det else secrets.randbelow(2**31)
        t0 = time.perf_counter()
        pieces = []
        for i, sentence in enumerate(split_sentences(say)):
            torch.manual_seed(seed + i)
            kwargs = {k: v for k, v in self.entry.call_args.items()}
            pieces.append((sentence, np.asarray(self.tts.tts(text=sentence, **kwargs), np.float32)))
        seconds = time.perf_counter() - t0
        audio, sentences = join_sentences(pieces, self.sample_rate)
        audio = peak_normalise(audio, beat=beat, what=f"voice {self.entry.id!r}")
        write_wav(Path(out_wav), audio, self.sample_rate)
        duration = len(audio) / self.sample_rate
        return {"skipped": False, "beat": beat, "wav": str(out_wav), "voice": self.entry.id,
                "backend": self.name, "duration": duration, "sample_rate": self.sample_rate,
                "sentences": sentences, "phonemes": None, "alignment": None, "dropped": dropped,
                "deterministic": det, "seed": seed, "device": self.device, "seconds": seconds,
                "rtf": seconds / duration if duration else None}
