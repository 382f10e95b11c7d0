"""Stage ``clips``: each selected keyframe becomes a shot master with a camera move.

Masters carry ``handles`` extra frames each side so an editor can trim. One Ray task per
shot; the task reads the keyframe from the store and writes the master back into it.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from studio import db
from studio.context import CandidateResult, ClipResult, ShotPlan, StageEnv
from studio.errors import StageError
from studio.settings import Settings
from studio.specs import ChannelSpec
from studio.store import MediaRef, Store

CODE_VERSION = "clips.2"  # 2: masters carry the style pack's grade (the LUT is in the key)


@dataclass
class ClipsInputs:
    shots: list[ShotPlan]
    selected: dict[str, CandidateResult]  # by shot id
    video_specs: list[ChannelSpec]  # none: no masters to make
    edit_rate: Fraction
    master_size: tuple[int, int]
    lut: Path | None  # the style pack's .cube: the masters are graded with it
    clip_model: Any  # studio.models.ModelEntry, or None for the procedural camera


@dataclass
class ClipsOutputs:
    clips: dict[str, ClipResult]  # by shot id
    counts: dict[str, int]  # reused, made


def render_clip_job(job: dict[str, Any]) -> dict[str, Any]:
    """Runs inside a Ray task (or directly)."""
    from shots.camera import CODE_VERSION as CAMERA_VERSION
    from shots.camera import render_move

    store = Store(job["store_root"])
    keyframe = store.path(MediaRef.from_dict(job["image"]))
    depth = store.path(MediaRef.from_dict(job["depth"])) if job.get("depth") else None
    with tempfile.TemporaryDirectory(dir=store.root) as tmp:
        out = Path(tmp) / "master.mp4"
        params = render_move(
            keyframe, out, move=job["move"], rate=Fraction(job["rate"]), frames=job["frames"],
            depth=depth, crf=job["crf"], preset=job["preset"], shot=job["beat_id"],
            lut=Path(job["lut"]["path"]) if job.get("lut") else None,
        )
        ref = store.put_file(out, move=True)
    return {"shot_id": job["shot_id"], "media": ref.to_dict(), "params": params,
            "code_version": CAMERA_VERSION}


class VideoWorker:
    """A Ray actor holding an image-to-video model, warm across shots."""

    def __init__(self, model: dict[str, Any], device: str | None) -> None:
        from shots.backends.diffusers_video import DiffusersVideoBackend

        self.backend = DiffusersVideoBackend(model, device=device)

    def render(self, job: dict[str, Any]) -> dict[str, Any]:
        from shots.camera import grade_master

        store = Store(job["store_root"])
        keyframe = store.path(MediaRef.from_dict(job["image"]))
        with tempfile.TemporaryDirectory(dir=store.root) as tmp:
            out = Path(tmp) / "master.mp4"
            params = self.backend.render_clip(
                keyframe, out, prompt=job["prompt"], seed=job["seed"], frames=job["frames"],
                rate=Fraction(job["rate"]), width=job["width"], height=job["height"],
                crf=job["crf"], preset=job["preset"], shot=job["beat_id"],
            )
            if job.get("lut"):
                # The model's frames are graded here, once per shot: every deliverable
                # then cuts graded frames (the conform applies no LUT).
                graded = Path(tmp) / "graded.mp4"
                grade = grade_master(out, graded, Path(job["lut"]["path"]), rate=Fraction(job["rate"]),
                                     frames=job["frames"], crf=job["crf"], preset=job["preset"],
                                     shot=job["beat_id"])
                params, out = {**params, "grade": grade}, graded
            ref = store.put_file(out, move=True)
        params = {**params, "describe": self.backend.describe()}
        return {"shot_id": job["shot_id"], "media": ref.to_dict(), "params": params,
                "code_version": self.backend.code_version}


def _video_actors(settings: Settings, entry: Any, shots: int, group: Any) -> Callable[[dict[str, Any]], Any]:
    """Jobs go round-robin to video actors (one model load per actor, at most one per
    shot), started in ``group`` (studio.actors: this run's, or kept warm per model on a
    cluster)."""
    import ray

    from studio.actors import entry_key

    gpus = int(ray.cluster_resources().get("GPU", 0))
    if entry.num_gpus and gpus >= entry.num_gpus:
        res: dict[str, float] = {"num_cpus": 1, "num_gpus": entry.num_gpus}
        count = gpus // entry.num_gpus
    elif entry.num_gpus == 0 or settings.model_device == "cpu":
        res, count = {"num_cpus": 1}, 1
    else:
        raise StageError(
            f"model {entry.id!r} needs {entry.num_gpus} GPU per actor but the Ray cluster has {gpus}",
            fix="run on a GPU cluster (RAY_ADDRESS), or set STUDIO_MODEL_DEVICE=cpu (slow)",
            stage="clips", field="clip_model",
        )
    doc, device = entry.dump(), settings.model_device
    key = entry_key([doc, device])
    actors = [group.start(VideoWorker, doc, device, prefix=f"video-{entry.id}", key=key, index=i,
                          resources=res)
              for i in range(max(1, min(count, shots)))]
    counter = [0]

    def submit(job: dict[str, Any]) -> Any:
        actor = actors[counter[0] % len(actors)]
        counter[0] += 1
        return actor.render.remote(job)

    return submit


def clip_lut(path: Path | None) -> dict[str, str] | None:
    """The style pack's .cube the masters are graded with (path to read it, sha256 for the
    key), None when it has none."""
    from studio.lut import lut_sha256

    return {"path": str(path), "sha256": lut_sha256(path)} if path is not None else None


def clip_jobs(shots: list[ShotPlan], selected: dict[str, CandidateResult], *, lut: dict[str, str] | None,
              edit_rate: Fraction, master_size: tuple[int, int], settings: Settings,
              store: Store) -> list[dict[str, Any]]:
    """One job per shot (each must have its selected candidate): small dicts, never frames.
    ``lut`` is ``clip_lut``'s."""
    jobs = []
    for shot in shots:
        cand = selected[shot.shot_id]
        jobs.append({
            "store_root": str(store.root.resolve()), "shot_id": shot.shot_id,
            "beat_id": shot.beat_id, "image": cand.image.to_dict(),
            "depth": cand.depth.to_dict() if cand.depth else None, "move": shot.camera,
            "rate": f"{edit_rate.numerator}/{edit_rate.denominator}",
            "frames": shot.frames + 2 * shot.handles, "handles": shot.handles,
            "crf": settings.clip_crf, "preset": settings.clip_preset,
            "prompt": shot.prompt, "prompt_hash": shot.prompt_hash, "seed": cand.seed,
            "width": master_size[0], "height": master_size[1], "lut": lut,
        })
    return jobs


def clip_identity(clip_model: Any) -> dict[str, Any] | None:
    """What makes the master's frames besides the job: the clip model's identity, or the
    procedural camera's code version. None for a model that cannot be named (no caching)."""
    from shots.camera import CODE_VERSION as CAMERA_VERSION
    from shots.camera import MOVE_MARGIN
    from studio.cache import model_identity

    if clip_model is not None:
        model = model_identity(clip_model)
        return None if model is None else {"model": model}
    return {"camera": CAMERA_VERSION, "move_margin": MOVE_MARGIN}


def clip_recipe(job: dict[str, Any], identity: dict[str, Any] | None) -> dict[str, Any] | None:
    """A shot master's content inputs: the keyframe (and depth) it is made from, the
    move, frame count and handles, size and rate, the x264 settings of masters and what
    renders it (a video model also takes the prompt and seed), and the grade: the LUT
    file's sha256, so a changed LUT makes the masters (and through their hashes the conform
    segments) again. Content only: the store's folder, the LUT's path and the shot's id in
    this run are not part of it. None when the renderer cannot be named (no caching)."""
    if identity is None:
        return None
    model = "model" in identity
    return {
        "renderer": identity, "keyframe": job["image"]["sha256"],
        "depth": job["depth"]["sha256"] if job["depth"] else None, "move": job["move"],
        "frames": job["frames"], "handles": job["handles"], "size": [job["width"], job["height"]],
        "rate": job["rate"], "x264": {"crf": job["crf"], "preset": job["preset"]},
        "prompt": job["prompt_hash"] if model else None, "seed": job["seed"] if model else None,
        "lut": job["lut"]["sha256"] if job.get("lut") else None,
    }


def clip_key(job: dict[str, Any], identity: dict[str, Any] | None) -> str | None:
    """The action key of a shot master (``clip_recipe``)."""
    from studio.cache import key_of

    doc = clip_recipe(job, identity)
    return None if doc is None else key_of("clips", CODE_VERSION, doc)


def render_clips(env: StageEnv, inputs: ClipsInputs) -> ClipsOutputs:
    """Masters the action cache holds are recorded for this run at once; only the rest
    are rendered on Ray (no actors at all when every one is cached). Its counts say how
    many were reused and made (the pipeline reports and records them)."""
    if not inputs.video_specs:
        return ClipsOutputs(clips={}, counts={})
    from studio.actors import ActorGroup, keep_warm
    from studio.cache import ActionCache

    cache = ActionCache(env.engine, env.store)
    identity = clip_identity(inputs.clip_model)
    found: dict[str, ClipResult] = {}

    def record(job: dict[str, Any], out: dict[str, Any], reused_from: str | None = None) -> None:
        found[job["shot_id"]] = _record_clip(env, inputs.shots, inputs.selected, job, out, reused_from)

    todo, keys = [], {}
    jobs = clip_jobs(inputs.shots, inputs.selected, lut=clip_lut(inputs.lut),
                     edit_rate=inputs.edit_rate, master_size=inputs.master_size, settings=env.settings,
                     store=env.store)
    for job in jobs:
        key = clip_key(job, identity)
        env.recipes.setdefault("clips", {})[job["beat_id"]] = {"key": key, "doc": clip_recipe(job, identity)}
        action = cache.get(key) if key else None
        if action is not None:
            record(job, action.outputs, reused_from=action.run_id)
            continue
        keys[job["shot_id"]] = key
        todo.append(job)
    if todo:
        env.start_ray()
        keep = inputs.clip_model is not None and keep_warm(env.settings)
        with ActorGroup("clips", run_id=env.run_id, keep=keep) as group:
            _render_clips(env, inputs.clip_model, len(inputs.shots), group, todo, cache, keys, record)
    clips = {shot.shot_id: found[shot.shot_id] for shot in inputs.shots}  # in shot order
    return ClipsOutputs(clips=clips, counts={"reused": len(inputs.shots) - len(todo), "made": len(todo)})


Record = Callable[[dict[str, Any], dict[str, Any]], None]  # (job, outputs): one made master


def _render_clips(env: StageEnv, clip_model: Any, shots: int, group: Any, jobs: list[dict[str, Any]],
                  cache: Any, keys: dict[str, str | None], record: Record) -> None:
    import ray

    if clip_model is not None:
        submit = _video_actors(env.settings, clip_model, shots, group)
    else:
        task = ray.remote(num_cpus=1, max_retries=2)(render_clip_job)
        submit = task.remote
    refs = {submit(j): j for j in jobs}
    pending = list(refs)
    try:
        _collect(env, refs, pending, cache, keys, record)
    finally:
        # A failed or cancelled stage leaves no render running (actors go with the group).
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref)


def _collect(env: StageEnv, refs: dict[Any, dict[str, Any]], pending: list[Any], cache: Any,
             keys: dict[str, str | None], record: Record) -> None:
    """Record (and cache) each shot master as it arrives; ``pending`` shrinks in place."""
    import ray

    from studio.actors import user_error

    while pending:
        done, rest = ray.wait(pending, num_returns=1)
        pending[:] = rest
        job = refs[done[0]]
        try:
            res = ray.get(done[0])
        except ray.exceptions.RayError as e:
            # The render's own StudioError reaches the user as itself (studio.actors).
            raise user_error(e, what="clip render", stage="clips", shot=job["beat_id"]) from e
        outputs = {"media": res["media"], "params": res["params"], "code_version": res["code_version"]}
        record(job, outputs)
        key = keys.get(job["shot_id"])
        if key is not None:
            cache.put(key, "clips", CODE_VERSION, outputs, env.run_id, float(res["params"].get("seconds", 0.0)))


def _record_clip(env: StageEnv, shots: list[ShotPlan], selected: dict[str, CandidateResult],
                 job: dict[str, Any], out: dict[str, Any], reused_from: str | None = None) -> ClipResult:
    """A Render row for this run, and the clip the stage returns; ``reused_from`` names the
    run that rendered the master when it came from the action cache."""
    shot = next(s for s in shots if s.shot_id == job["shot_id"])
    cand = selected[shot.shot_id]
    media = MediaRef.from_dict(out["media"])
    params = {**out["params"], "reused_from": reused_from} if reused_from else out["params"]
    rid = db.new_id("render")
    with env.session() as s:
        s.add(db.Render(id=rid, run_id=env.run_id, shot_id=shot.shot_id, candidate_id=cand.candidate_id,
                        kind="clip", media_sha256=media.sha256, media_ext=media.ext,
                        code_version=out["code_version"], params=params))
    env.reporter.advance("clips", shot=shot.beat_id)
    return ClipResult(
        render_id=rid, shot_id=shot.shot_id, beat_id=shot.beat_id, candidate_id=cand.candidate_id,
        media=media, frames=job["frames"], params=params,
    )
