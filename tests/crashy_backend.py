"""A test-only keyframe backend whose worker process dies on its first call, so the
tests can check that Ray restarts the actor, retries the task, and Studio records each
candidate exactly once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from shots.backends import Keyframe
from shots.backends.procedural import ProceduralBackend


class CrashOnceBackend(ProceduralBackend):
    name = "crash-once"

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = Path(marker)

    def generate(self, prompt: dict[str, Any], seed: int, width: int, height: int) -> Keyframe:
        if not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os._exit(1)  # the whole actor process dies mid-task, as an OOM kill would
        return super().generate(prompt, seed, width, height)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "backend": "crash-once"}
