"""Where voice lines and model music are rendered: Piper in this process (CPU, fast,
loaded once per run); GPU backends on a Ray actor (see the GPU backend modules)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def synthesize_lines(entry: Any, lines: list[tuple[str, str, Path]], *, settings: Any,
                     deterministic: bool) -> list[dict[str, Any]]:
    """Render ``(beat, text, out_wav)`` lines with ``entry``'s voice; records in order."""
    from audio.tts import PiperBackend

    backend = PiperBackend(entry, deterministic=deterministic)
    return [backend.synthesize(text, out, beat=beat) for beat, text, out in lines]
