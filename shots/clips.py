"""Stage ``clips``: each selected keyframe becomes a shot master with a camera move.

Masters carry ``handles`` extra frames each side so an editor can trim. One Ray task per
shot; the task reads the keyframe from the store and writes the master back into it.
"""

from __future__ import annotations

import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

from studio import db
from studio.context import ClipResult, RunContext
from studio.errors import StageError
from studio.store import MediaRef, Store

CODE_VERSION = "clips.1"


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
        )
        ref = store.put_file(out, move=True)
    return {"shot_id": job["shot_id"], "media": ref.to_dict(), "params": params,
            "code_version": CAMERA_VERSION}


def render_clips(ctx: RunContext) -> None:
    if not ctx.video_specs:
        return
    import ray

    task = ray.remote(num_cpus=1, max_retries=2)(render_clip_job)
    jobs = []
    for shot in ctx.shots:
        cand = ctx.selected[shot.shot_id]
        jobs.append({
            "store_root": str(ctx.store.root.resolve()), "shot_id": shot.shot_id,
            "beat_id": shot.beat_id, "image": cand.image.to_dict(),
            "depth": cand.depth.to_dict() if cand.depth else None, "move": shot.camera,
            "rate": f"{ctx.edit_rate.numerator}/{ctx.edit_rate.denominator}",
            "frames": shot.frames + 2 * shot.handles, "crf": ctx.settings.clip_crf,
            "preset": ctx.settings.x264_preset,
        })
    refs = {task.remote(j): j for j in jobs}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        job = refs[done[0]]
        try:
            res = ray.get(done[0])
        except ray.exceptions.RayTaskError as e:
            cause = e.as_instanceof_cause()
            if isinstance(cause, StageError):
                raise cause from None
            raise StageError(f"clip render failed: {str(e).splitlines()[0][:300]}", stage="clips",
                             shot=job["beat_id"], fix="see the worker log (ray logs)") from e
        shot = next(s for s in ctx.shots if s.shot_id == job["shot_id"])
        cand = ctx.selected[shot.shot_id]
        media = MediaRef.from_dict(res["media"])
        rid = db.new_id("render")
        with ctx.session() as s:
            s.add(db.Render(id=rid, run_id=ctx.run_id, shot_id=shot.shot_id, candidate_id=cand.candidate_id,
                            kind="clip", media_sha256=media.sha256, media_ext=media.ext,
                            code_version=res["code_version"], params=res["params"]))
        ctx.clips[shot.shot_id] = ClipResult(
            render_id=rid, shot_id=shot.shot_id, beat_id=shot.beat_id, candidate_id=cand.candidate_id,
            media=media, frames=job["frames"], params=res["params"],
        )
        ctx.reporter.advance("clips", shot=shot.beat_id)
