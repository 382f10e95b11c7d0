"""A keyframe backend for benchmarks only: it sleeps instead of computing.

Not registered in pyproject: ``bench/bench_actors.py`` adds it to ``shots.backends.BUILTIN``
at run time, in its own process and (through a Ray worker setup hook) in every Ray worker,
so product runs can never pick it by accident.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from shots.backends import Keyframe


class SleepBackend:
    """Sleeps ``delay`` seconds per keyframe (a stand-in for a model's GPU time, which also
    leaves the CPU free), then returns a small flat image whose colour depends on the seed,
    so every candidate is a distinct file in the content-addressed store."""

    name = "bench-sleep"
    code_version = "bench-sleep.1"

    def __init__(self, delay: float = 1.0) -> None:
        self.delay = float(delay)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model_id": f"sleep-{self.delay:g}s", "weights_sha256": None,
                "device": "cpu"}

    def generate(self, prompt: dict[str, Any], seed: int, width: int, height: int) -> Keyframe:
        t0 = time.perf_counter()
        if self.delay > 0:
            time.sleep(self.delay)
        rgb = np.array([seed & 0xFF, (seed >> 8) & 0xFF, (seed >> 16) & 0xFF], dtype=np.uint8)
        image = np.broadcast_to(rgb, (height, width, 3)).copy()
        # The worker records "seconds" around this call; params carry our own measure too.
        return Keyframe(image=image, params={"delay": self.delay,
                                             "generator_seconds": time.perf_counter() - t0})
