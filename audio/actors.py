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
Actors restart after a crash (``max_restarts``) and retry the task in flight. On a
cluster (``RAY_ADDRESS``) with ``keep_actors_warm`` they are detached and named by voice
or model id plus a hash of the entry, so the next run finds the model loaded; otherwise
they are killed when the call returns.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.errors import StageError, StudioError

if TYPE_CHECKING:
    from audio.voices import VoiceEntry
    from studio.models import ModelEntry

ACTOR_OPTIONS: dict[str, Any] = {"max_restarts": 2, "max_task_retries": 2}
NAMESPACE = "studio"
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


def _keep(settings: Any) -> bool:
    # Warm actors pay off on a cluster, between runs; a local Ray ends with the process.
    return bool(os.environ.get("RAY_ADDRESS")) and bool(settings.keep_actors_warm)


def _actor(cls: type, prefix: str, ident: str, key_doc: Any, resources: dict[str, float],
           keep: bool, *args: Any) -> Any:
    import ray

    key = hashlib.sha256(json.dumps(key_doc, sort_keys=True, default=str).encode()).hexdigest()[:12]
    # The same name finds the warm actor of the same entry; a changed entry (other
    # weights, other settings) hashes to a new name, never a stale model. Actors that are
    # not kept get a unique name, so a dying one is never picked up by the next call.
    name = f"studio-{prefix}-{ident}-{key}" + ("" if keep else f"-{uuid.uuid4().hex[:8]}")
    opts: dict[str, Any] = {"name": name, "namespace": NAMESPACE, "get_if_exists": True,
                            "max_concurrency": 1}
    if keep:
        opts["lifetime"] = "detached"
    remote = ray.remote(**{**ACTOR_OPTIONS, **resources})(cls)
    return remote.options(**opts).remote(*args)


def _get(refs: list[Any], *, stage: str, what: str) -> list[Any]:
    """``ray.get`` with the backend's own StudioError re-raised as itself."""
    import ray

    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, StudioError):
            raise cause from None
        raise StageError(f"{what} failed: {_first_line(cause or e)}", stage=stage,
                         fix="see the worker log (ray logs) and the entry's settings") from e
    except ray.exceptions.RayActorError as e:
        # The constructor (model load) raised, or the actor died more often than it may
        # restart: Ray's message carries the original error.
        cause = getattr(e, "cause", None) or getattr(e, "error_msg", None) or e
        inner = getattr(cause, "cause", None)
        if isinstance(inner, StudioError):
            raise inner from None
        raise StageError(f"{what}: the actor died: {_cause_text(cause)}", stage=stage,
                         fix="see the worker log (ray logs); check the entry's source and "
                         "that the weights load") from e


def _first_line(e: Any) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:300]}" if text else type(e).__name__


def _cause_text(cause: Any) -> str:
    # An actor's init error arrives as a traceback; its last line says what went wrong.
    lines = [ln.strip() for ln in str(cause).strip().splitlines() if ln.strip()]
    return lines[-1][:400] if lines else type(cause).__name__


def synthesize_lines(entry: VoiceEntry, lines: list[tuple[str, str, Path]], *, settings: Any,
                     deterministic: bool) -> list[dict[str, Any]]:
    """Render ``(beat, text, out_wav)`` lines with ``entry``'s voice; records in order."""
    if not lines:
        return []
    if entry.backend in IN_PROCESS_TTS:
        from audio.registry import tts_backend

        backend = tts_backend(entry, deterministic=deterministic, device="cpu")
        return [backend.synthesize(text, Path(out), beat=beat, deterministic=deterministic)
                for beat, text, out in lines]
    import ray

    from studio.ray_runtime import ensure_ray

    ensure_ray(settings)
    gpus = 0.0 if entry.device == "cpu" else entry.gpus
    resources, device = plan_resources(gpus, settings, what=f"voice {entry.id!r}", stage="voice",
                                       field="voice")
    doc = entry.model_dump(mode="json", by_alias=True)
    keep = _keep(settings)
    actor = _actor(TTSWorker, "tts", entry.id, [doc, device, deterministic], resources, keep,
                   doc, device, deterministic)
    try:
        refs = [actor.synthesize.remote(beat, text, str(Path(out).resolve()), deterministic)
                for beat, text, out in lines]
        return _get(refs, stage="voice", what=f"voice {entry.id!r}")
    finally:
        if not keep:
            ray.kill(actor, no_restart=True)


def generate_music(entry: ModelEntry, prompt: str, duration: float, out_wav: Path, *, seed: int,
                   settings: Any) -> dict[str, Any]:
    """A bed of exactly ``duration`` seconds from a text-to-music model, on a Ray actor."""
    import ray

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
    keep = _keep(settings)
    actor = _actor(MusicWorker, "music", entry.id, [doc, device], resources, keep, doc, device)
    try:
        ref = actor.generate.remote(prompt, float(duration), str(Path(out_wav).resolve()), int(seed))
        return _get([ref], stage="music", what=f"model {entry.id!r}")[0]
    finally:
        if not keep:
            ray.kill(actor, no_restart=True)
