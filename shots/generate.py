"""Stage ``candidates``: N keyframe candidates per beat on a pool of Ray actors.

Each actor loads one backend once and keeps it warm. A job is a small dict (prompt
record, seed, size); the actor writes the keyframe into the content-addressed store,
scores it there (so pixels never cross Ray), and returns references and numbers.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import time
from typing import Any

import numpy as np
from PIL import Image

from studio import db
from studio.context import CandidateResult, RunContext
from studio.errors import StageError
from studio.specs import ChannelSpec
from studio.store import MediaRef, Store

CODE_VERSION = "generate.1"

# A crashed actor is restarted and its in-flight task retried (at-least-once); the
# driver records each candidate exactly once, when its result arrives.
ACTOR_OPTIONS: dict[str, Any] = {"max_restarts": 2, "max_task_retries": 2}


def png_bytes(image: np.ndarray) -> bytes:
    """Deterministic PNG: fixed compression, no metadata, so equal pixels give equal bytes."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=6, optimize=False)
    return buf.getvalue()


def depth_png_bytes(depth: np.ndarray) -> bytes:
    d16 = np.clip(depth * 65535.0 + 0.5, 0, 65535).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(d16).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def recipe_hash(describe: dict[str, Any], code_version: str, prompt_hash: str, seed: int,
                width: int, height: int, params: dict[str, Any]) -> str:
    """What makes a candidate: model identity + code + prompt + seed + settings."""
    blob = json.dumps(
        {"model": {k: describe.get(k) for k in ("backend", "model_id", "weights_sha256")},
         "code": code_version, "prompt": prompt_hash, "seed": seed, "size": [width, height],
         # timings describe one run, not the recipe
         "params": {k: v for k, v in params.items() if k not in ("seconds", "gpu_seconds")}},
        sort_keys=True, separators=(",", ":"), default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class KeyframeWorker:
    """Held by Ray as an actor (see ``worker_class``); plain class for direct use in tests."""

    def __init__(self, backend: str, options: dict[str, Any], store_root: str,
                 specs: list[dict[str, Any]]) -> None:
        from shots.backends import create_backend

        self.backend = create_backend(backend, options)
        self.store = Store(store_root)
        self.specs = [ChannelSpec.model_validate(s) for s in specs]
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def describe(self) -> dict[str, Any]:
        return self.backend.describe()

    def generate(self, job: dict[str, Any]) -> dict[str, Any]:
        from shots.score import score_keyframe

        t0 = time.monotonic()
        refs = [self.store.find(h) for h in job["prompt"].get("reference_images", [])]
        if refs:
            kf = self.backend.generate(job["prompt"], job["seed"], job["width"], job["height"],
                                       references=refs)
        else:
            kf = self.backend.generate(job["prompt"], job["seed"], job["width"], job["height"])
        seconds = time.monotonic() - t0
        image = self.store.put_bytes(png_bytes(kf.image), ".png")
        depth = self.store.put_bytes(depth_png_bytes(kf.depth), ".png") if kf.depth is not None else None
        score = score_keyframe(kf.image, job["prompt"], self.specs)
        describe = self.backend.describe()
        return {
            "job": job["id"],
            "image": image.to_dict(),
            "depth": depth.to_dict() if depth else None,
            "params": kf.params,
            "describe": describe,
            "code_version": self.backend.code_version,
            "seconds": seconds,
            "gpu_seconds": float(kf.params.get("gpu_seconds", 0.0)),
            "worker": self.worker,
            "score": {"total": score.total, "components": score.components, "reason": score.reason},
        }


def worker_class(resources: dict[str, float] | None = None) -> Any:
    import ray

    opts = dict(ACTOR_OPTIONS)
    opts.update(resources or {"num_cpus": 1})
    return ray.remote(**opts)(KeyframeWorker)


def generate_candidates(ctx: RunContext) -> None:
    import ray
    from ray.util import ActorPool

    from studio.ray_runtime import cluster_cpus

    w, h = ctx.master_size
    jobs: list[dict[str, Any]] = []
    for shot in ctx.shots:
        for i, seed in enumerate(shot.seeds):
            jobs.append({
                "id": f"{shot.shot_id}/{i}", "shot_id": shot.shot_id, "beat_id": shot.beat_id,
                "index": i, "seed": seed, "prompt": shot.prompt, "prompt_hash": shot.prompt_hash,
                "width": w, "height": h,
            })
    n_actors = max(1, min(len(jobs), cluster_cpus()))
    cls = worker_class()
    specs = [s.model_dump(mode="json", by_alias=True) for s in ctx.specs]
    actors = [cls.remote(ctx.backend, ctx.backend_options, str(ctx.store.root.resolve()), specs)
              for _ in range(n_actors)]
    pool = ActorPool(actors)
    by_id = {j["id"]: j for j in jobs}
    try:
        for res in pool.map_unordered(lambda a, j: a.generate.remote(j), jobs):
            job = by_id[res["job"]]
            _record(ctx, job, res)
            ctx.reporter.advance("candidates", shot=job["beat_id"], candidate=job["index"])
            if ctx.cancelled():
                raise StageError("cancelled", stage="candidates")
    except ray.exceptions.RayError as e:
        raise StageError(
            f"keyframe generation failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}",
            fix="see the worker log (ray logs) and the backend's settings", stage="candidates",
        ) from e
    finally:
        for a in actors:
            ray.kill(a, no_restart=True)
    for shot in ctx.shots:
        ctx.candidates[shot.shot_id].sort(key=lambda c: c.index)


def _record(ctx: RunContext, job: dict[str, Any], res: dict[str, Any]) -> None:
    describe = res["describe"]
    image = MediaRef.from_dict(res["image"])
    depth = MediaRef.from_dict(res["depth"]) if res["depth"] else None
    params = res["params"]
    cid = db.new_id("cand")
    rhash = recipe_hash(describe, res["code_version"], job["prompt_hash"], job["seed"],
                        job["width"], job["height"], params)
    score = res["score"]
    row = db.Candidate(
        id=cid, shot_id=job["shot_id"], index=job["index"], seed=job["seed"],
        backend=describe.get("backend", ctx.backend), model_id=describe.get("model_id", ""),
        weights_sha256=describe.get("weights_sha256"), steps=params.get("steps"),
        width=job["width"], height=job["height"], prompt_hash=job["prompt_hash"],
        code_version=res["code_version"], recipe_hash=rhash,
        params={**params, "describe": describe, "backend_options": ctx.backend_options},
        media_sha256=image.sha256, media_ext=image.ext,
        depth_sha256=depth.sha256 if depth else None, worker=res["worker"],
        seconds=res["seconds"], gpu_seconds=res["gpu_seconds"],
    )
    with ctx.session() as s:
        s.add(row)
        s.flush()
        s.add(db.Score(candidate_id=cid, scorer="heuristic.score.1", total=score["total"],
                       components=score["components"], reason=score["reason"]))
    ctx.candidates.setdefault(job["shot_id"], []).append(CandidateResult(
        candidate_id=cid, shot_id=job["shot_id"], beat_id=job["beat_id"], index=job["index"],
        seed=job["seed"], image=image, depth=depth, score=score["total"],
        components=score["components"], reason=score["reason"],
        record={"recipe_hash": rhash, "backend": row.backend, "model_id": row.model_id,
                "weights_sha256": row.weights_sha256, "code_version": row.code_version,
                "params": params, "prompt_hash": job["prompt_hash"]},
    ))
