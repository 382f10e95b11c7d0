"""Where voice lines and model music are rendered.

* Piper voices run in this process: CPU, fast, loaded once per call of
  ``synthesize_lines`` (about 1.7 s), no Ray round trip.
* Every other TTS backend (``transformers-tts``, plugins) runs on one Ray actor per voice,
  and a text-to-music model on one actor per model: the weights load once, in the actor's
  constructor; lines go in as text plus an output path, and only records (small dicts
  with file paths) come back, never audio. The output paths must be on storage the actor
  can write (the run's work folder: local Ray, or shared storage on a cluster, as for
  keyframes).

Resources follow shots' keyframe actors: ``gpus`` from the voice entry (``num_gpus`` from
the model entry) when the Ray cluster has them; otherwise the run stops with an error,
unless ``STUDIO_MODEL_DEVICE=cpu`` (``settings.model_device``) says to run on the CPU.
Actors follow the one policy of ``studio.actors``: they restart after a crash and retry
the task in flight; on a cluster (``RAY_ADDRESS``) with ``keep_actors_warm`` they are
detached and named by voice or model id plus a hash of the entry, so the next run finds
the model loaded; otherwise they are the run's (named for it) and killed when the call
returns, however it returns. A StudioError raised in the actor reaches the caller as itself.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.actors import ActorGroup, entry_key, keep_warm
from studio.errors import StageError, StudioError

if TYPE_CHECKING:
    from audio.voices import VoiceEntry
    from studio.models import ModelEntry

IN_PROCESS_TTS = ("piper",)  # CPU backends not worth a Ray round trip


class TTSWorker:
    """A voice held by a Ray actor (see ``_actor``); a plain class for direct use."""

    def __init__(self, entry: dict[str, Any], device: str, deterministic: bool) -> None:
        from audio.registry import tts_backend
        from audio.voices import VoiceEntry

        self.backend = tts_backend(VoiceEntry.model_validate(entry), deterministic=deterministic,
                                   device=device)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def synthesize(self, beat: str, text: str, out_wav: str, deterministic: bool) -> dict[str, Any]:
        record = self.backend.synthesize(text, Path(out_wav), beat=beat, deterministic=deterministic)
        return {**record, "worker": self.worker}

    def describe(self) -> dict[str, Any]:
        d = getattr(self.backend, "describe", None)
        return {**(d() if callable(d) else {}), "worker": self.worker}


class MusicWorker:
    """A text-to-music model held by a Ray actor."""

    def __init__(self, entry: dict[str, Any], device: str) -> None:
        from audio.registry import music_backend
        from studio.models import parse_entry

        self.backend = music_backend(parse_entry(entry, source="music actor"), device=device)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def generate(self, prompt: str, duration: float, out_wav: str, seed: int) -> dict[str, Any]:
        record = self.backend.generate(prompt, duration, Path(out_wav), seed=seed)
        return {**record, "worker": self.worker}


def plan_resources(gpus: float, settings: Any, *, what: str, stage: str, field: str) -> tuple[dict[str, float], str]:
    """Per-actor resources and the device the backend should use.

    ``gpus`` > 0 asks for GPUs: granted when the Ray cluster has them, refused unless
    ``settings.model_device`` is "cpu" (the same rule as shots' keyframe models)."""
    import ray

    forced = (settings.model_device or "").strip()
    if gpus <= 0 or forced == "cpu":
        return {"num_cpus": 1}, "cpu"
    have = float(ray.cluster_resources().get("GPU", 0))
    if have >= gpus:
        return {"num_cpus": 1, "num_gpus": gpus}, forced if forced.startswith("cuda") else "cuda"
    raise StageError(
        f"{what} needs {gpus:g} GPU per actor but the Ray cluster has {have:g}",
        fix="run on a GPU cluster (RAY_ADDRESS), or set STUDIO_MODEL_DEVICE=cpu to run it on "
        "the CPU (slow)", stage=stage, field=field,
    )


def synthesize_lines(entry: VoiceEntry, lines: list[tuple[str, str, Path]], *, settings: Any,
                     deterministic: bool, run_id: str | None = None) -> list[dict[str, Any]]:
    """Render ``(beat, text, out_wav)`` lines with ``entry``'s voice; records in order.
    ``run_id`` names the actor for its run (default: the current run, studio.actors)."""
    if not lines:
        return []
    if entry.backend in IN_PROCESS_TTS:
        from audio.registry import tts_backend

        backend = tts_backend(entry, deterministic=deterministic, device="cpu")
        return [backend.synthesize(text, Path(out), beat=beat, deterministic=deterministic)
                for beat, text, out in lines]

    from studio.ray_runtime import ensure_ray

    ensure_ray(settings)
    gpus = 0.0 if entry.device == "cpu" else entry.gpus
    resources, device = plan_resources(gpus, settings, what=f"voice {entry.id!r}", stage="voice",
                                       field="voice")
    doc = entry.model_dump(mode="json", by_alias=True)
    with ActorGroup("voice", run_id=run_id, keep=keep_warm(settings)) as group:
        actor = group.start(TTSWorker, doc, device, deterministic, prefix=f"tts-{entry.id}",
                            key=entry_key([doc, device, deterministic]), resources=resources)
        refs = [actor.synthesize.remote(beat, text, str(Path(out).resolve()), deterministic)
                for beat, text, out in lines]
        return group.get(refs, what=f"voice {entry.id!r}",
                         fix="see the worker log (ray logs) and the entry's settings")


def generate_music(entry: ModelEntry, prompt: str, duration: float, out_wav: Path, *, seed: int,
                   settings: Any, run_id: str | None = None) -> dict[str, Any]:
    """A bed of exactly ``duration`` seconds from a text-to-music model, on a Ray actor."""

    from studio.ray_runtime import ensure_ray

    if entry.kind != "text-to-music":
        raise StudioError(f"model {entry.id!r} is {entry.kind}, not text-to-music",
                          fix="pick a text-to-music model or use procedural music",
                          stage="music", field="music.source")
    limit = float(entry.max_duration or 0)
    if not 0 < duration <= limit:
        # Refused here, before an actor loads the weights (the backend checks it again).
        raise StageError(
            f"model {entry.id!r} makes at most {limit:g} s of music per call; the spot needs "
            f"{duration:.2f} s", stage="music", field="music.source",
            fix="use procedural or library music for a longer spot, or a model entry with "
            "a larger max_duration")
    ensure_ray(settings)
    resources, device = plan_resources(float(entry.num_gpus), settings, what=f"model {entry.id!r}",
                                       stage="music", field="music.source")
    doc = entry.dump()
    with ActorGroup("music", run_id=run_id, keep=keep_warm(settings)) as group:
        actor = group.start(MusicWorker, doc, device, prefix=f"music-{entry.id}",
                            key=entry_key([doc, device]), resources=resources)
        ref = actor.generate.remote(prompt, float(duration), str(Path(out_wav).resolve()), int(seed))
        return group.get([ref], what=f"model {entry.id!r}",
                         fix="see the worker log (ray logs) and the entry's settings")[0]
