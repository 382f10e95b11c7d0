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
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from studio import db
from studio.actors import ACTOR_OPTIONS  # restarts and retries: one policy for every actor
from studio.conditions import cpu_info, torch_threads_now
from studio.context import CandidateResult, ShotPlan, StageEnv
from studio.errors import StageError, StudioError
from studio.settings import Settings
from studio.specs import ChannelSpec
from studio.store import MediaRef, Store

CODE_VERSION = "generate.1"


@dataclass
class CandidatesInputs:
    shots: list[ShotPlan]
    specs: list[ChannelSpec]  # every channel: each candidate is scored for their framing
    master_size: tuple[int, int]
    backend: str
    backend_options: dict[str, Any]
    keyframe_model: Any  # studio.models.ModelEntry, or None for a plain backend


@dataclass
class CandidatesOutputs:
    candidates: dict[str, list[CandidateResult]]  # by shot id, in index order
    counts: dict[str, int]  # reused, made

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


def _takes_references(backend: Any) -> bool:
    """Whether the backend's ``generate`` accepts ``references`` (see shots.backends)."""
    import inspect

    params = inspect.signature(backend.generate).parameters
    return "references" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class KeyframeWorker:
    """Held by Ray as an actor (see ``KeyframePool``); plain class for direct use in tests."""

    def __init__(self, backend: str, options: dict[str, Any], store_root: str,
                 specs: list[dict[str, Any]]) -> None:
        from shots.backends import create_backend

        self.backend = create_backend(backend, options)
        self.store = Store(store_root)
        self.specs = [ChannelSpec.model_validate(s) for s in specs]
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        # After the backend is built, so torch's CPU dispatch level is known if it loaded torch.
        self.cpu = cpu_info()
        # One backend call at a time (a pipeline's scheduler is stateful); post-processing
        # runs outside the lock so two in-flight tasks overlap GPU and CPU work.
        self._backend_lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return self.backend.describe()

    def run_job(self, job: dict[str, Any]) -> dict[str, Any]:
        """``generate`` as the pool calls it: a failure leaves the actor as a StudioError
        that names the stage, the beat and the real exception (the driver re-raises it),
        not as an anonymous task error that points at worker logs."""
        name = getattr(self.backend, "name", type(self.backend).__name__)
        if job["prompt"].get("reference_images") and not _takes_references(self.backend):
            raise StudioError(f"keyframe backend {name!r} does not take reference images",
                              fix="remove reference_images from the brief, or use a backend that takes "
                                  "them (procedural, diffusers-image)",
                              stage="candidates", shot=job["beat_id"], field="reference_images")
        try:
            return self.generate(job)
        except StudioError as e:
            e.stage = e.stage or "candidates"
            e.shot = e.shot or job["beat_id"]
            raise
        except Exception as e:
            text = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
            raise StageError(f"keyframe backend {name!r} failed: {type(e).__name__}: {text}".rstrip(": "),
                             fix="check the backend's settings and the brief's inputs for this beat",
                             stage="candidates", shot=job["beat_id"]) from e

    def generate(self, job: dict[str, Any]) -> dict[str, Any]:
        """One job: one or more seeds of one prompt (a batch when the backend has one)."""
        from shots.score import score_keyframe

        prompt, w, h = job["prompt"], job["width"], job["height"]
        seeds = [it["seed"] for it in job["items"]]
        refs = [self.store.find(x) for x in prompt.get("reference_images", [])]
        kwargs: dict[str, Any] = {"references": refs} if refs else {}
        batched = len(seeds) > 1 and hasattr(self.backend, "generate_batch")
        with self._backend_lock:
            # How the pixels were computed, beyond the recipe: float kernels depend on what
            # shared the call, the thread count and the CPU (shots.regenerate recreates these).
            threads = torch_threads_now()
            t0 = time.monotonic()
            if batched:
                frames = self.backend.generate_batch(prompt, seeds, w, h, **kwargs)
            else:
                frames = [self.backend.generate(prompt, seed, w, h, **kwargs) for seed in seeds]
            seconds = (time.monotonic() - t0) / len(seeds)
            describe = self.backend.describe()
        items = []
        for k, (it, kf) in enumerate(zip(job["items"], frames, strict=True)):
            image = self.store.put_bytes(png_bytes(kf.image), ".png")
            depth = self.store.put_bytes(depth_png_bytes(kf.depth), ".png") if kf.depth is not None else None
            # A reference's colours lead its keyframe's palette: adherence is judged against
            # the palette it was painted with, not the style pack's it replaced.
            used = (kf.params.get("reference_use") or {}).get("palette")
            score = score_keyframe(kf.image, {**prompt, "palette": used} if used else prompt, self.specs)
            items.append({
                "index": it["index"], "seed": it["seed"],
                "image": image.to_dict(), "depth": depth.to_dict() if depth else None,
                "params": kf.params, "seconds": float(kf.params.get("seconds", seconds)),
                "gpu_seconds": float(kf.params.get("gpu_seconds", 0.0)),
                "score": {"total": score.total, "components": score.components, "reason": score.reason},
                "conditions": {
                    "call": "generate_batch" if batched else "generate",
                    "batch_seeds": [int(s) for s in seeds] if batched else [int(it["seed"])],
                    "batch_index": k if batched else 0,
                    "torch_threads": threads, "cpu": self.cpu,
                },
            })
        return {"job": job["id"], "items": items, "describe": describe,
                "code_version": self.backend.code_version, "worker": self.worker}


def worker_class(resources: dict[str, float] | None = None) -> Any:
    import ray

    opts = dict(ACTOR_OPTIONS)
    opts.update(resources or {"num_cpus": 1})
    return ray.remote(**opts)(KeyframeWorker)


def plan_resources(settings: Settings, keyframe_model: Any) -> tuple[dict[str, float], int]:
    """Per-actor resources and how many actors the cluster can hold for this model."""
    import ray

    from studio.ray_runtime import cluster_cpus

    entry = keyframe_model
    cpus = cluster_cpus()
    if entry is None or entry.num_gpus == 0:
        return {"num_cpus": 1}, cpus
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus >= entry.num_gpus:
        return {"num_cpus": 1, "num_gpus": entry.num_gpus}, gpus // entry.num_gpus
    if settings.model_device == "cpu":
        return {"num_cpus": 1}, cpus
    raise StageError(
        f"model {entry.id!r} needs {entry.num_gpus} GPU per actor but the Ray cluster has {gpus}",
        fix="run on a GPU cluster (RAY_ADDRESS), or set STUDIO_MODEL_DEVICE=cpu to run it on the CPU (slow)",
        stage="candidates", field="keyframe_model",
    )


class KeyframePool:
    """Keyframe actors for one backend and model, and the jobs run over them.

    Started through ``studio.actors.ActorGroup``: the actors are this run's (named for
    it, killed by ``close``) unless ``keep``, when a model's actors are named per backend
    + options, detached and shared, so the next job finds the model loaded. GPU actors
    take two tasks at a time: the backend call is serialised by the worker's lock, and
    the PNG encode, scoring and store write of one batch overlap the next batch's GPU work.
    """

    def __init__(self, backend: str, options: dict[str, Any], store_root: str,
                 specs: list[dict[str, Any]], resources: dict[str, float], count: int,
                 keep: bool = False, run_id: str | None = None) -> None:
        from studio.actors import ActorGroup, entry_key

        key = entry_key([backend, options])
        concurrency = 2 if resources.get("num_gpus") else 1
        self.keep = keep
        self.group = ActorGroup("candidates", run_id=run_id, keep=keep)
        try:
            self.actors = [
                self.group.start(KeyframeWorker, backend, options, store_root, specs,
                                 prefix=f"kf-{backend}", key=key, index=i,
                                 resources={"num_cpus": 1, **resources}, max_concurrency=concurrency)
                for i in range(count)]
        except BaseException:
            self.group.close()
            raise
        self.concurrency = concurrency

    @property
    def names(self) -> list[str]:
        return self.group.names

    def run(self, jobs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Results as they finish (any order).

        Jobs go only to actors that have started: on a cluster another run may hold the
        CPUs this pool's other actors wait for, and a job queued on an actor that never
        starts would wait for ever (two renders, each holding one actor of two, would wait
        for each other). Actors that start later join in."""
        import ray

        starting = {a.__ray_ready__.remote(): a for a in self.actors}
        free: list[Any] = []
        queue = deque(jobs)
        running: dict[Any, Any] = {}
        while queue or running:
            done, _ = ray.wait([*running, *starting], num_returns=1)
            ref = done[0]
            if ref in starting:
                actor = starting.pop(ref)
                ray.get(ref)  # an actor whose constructor failed raises here
                free += [actor] * self.concurrency
            else:
                free.append(running.pop(ref))
                yield ray.get(ref)
            while free and queue:
                actor = free.pop()
                running[actor.run_job.remote(queue.popleft())] = actor

    def close(self) -> None:
        self.group.close()

    def __enter__(self) -> KeyframePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_jobs(shots: list[ShotPlan], width: int, height: int, batch: int) -> list[dict[str, Any]]:
    """One job per batch of seeds of one shot: small dicts, never pixels."""
    jobs: list[dict[str, Any]] = []
    for shot in shots:
        # A batch shares one prompt: the beat's own seeds, then each steered round's.
        groups: dict[str, list[tuple[int, int, dict[str, Any]]]] = {}
        for index, seed, prompt, phash in shot.candidate_slots():
            groups.setdefault(phash, []).append((index, seed, prompt))
        for phash, slots in groups.items():
            for start in range(0, len(slots), batch):
                part = slots[start:start + batch]
                jobs.append({
                    "id": f"{shot.shot_id}/{part[0][0]}", "shot_id": shot.shot_id, "beat_id": shot.beat_id,
                    "items": [{"index": i, "seed": seed} for i, seed, _ in part],
                    "prompt": part[0][2], "prompt_hash": phash, "width": width, "height": height,
                })
    return jobs


def candidate_identity(backend: str, backend_options: dict[str, Any],
                       keyframe_model: Any) -> dict[str, Any] | None:
    """What about the backend changes a candidate's pixels (and score): for a model, its
    identity (studio.cache.model_identity); for any other backend, its name, code version
    and options. None when it cannot be named (an unpinned hub model): no caching."""
    from shots.backends import load_backend_class
    from studio.cache import model_identity

    cls = load_backend_class(backend)
    code = getattr(cls, "code_version", None)
    if keyframe_model is not None:
        model = model_identity(keyframe_model)
        return None if model is None else {"name": backend, "code_version": code, "model": model}
    return {"name": backend, "code_version": code, "options": backend_options}


SCORED_FIELDS = {"name", "kind", "width", "height", "active_aspect", "safe_area"}


def candidate_keys(jobs: list[dict[str, Any]], identity: dict[str, Any] | None,
                   specs: list[ChannelSpec], keyframe_model: Any) -> dict[tuple[str, int], str]:
    """The action key of each candidate, by (shot id, index): backend identity, prompt
    record, seed, size, the channels it is scored for, and (for a model, whose float
    kernels depend on what shares the call) the seeds of its batch. Content only: where
    the store is and how many actors run do not change a key."""
    from shots.score import CODE_VERSION as SCORE_VERSION
    from studio.cache import canonical, key_of

    if identity is None:
        return {}
    # What the scorer reads of each channel (its framing: size, active picture, safe area),
    # not how it is encoded: a changed CRF must not make the candidates again.
    specs = hashlib.sha256(canonical(
        [s.model_dump(mode="json", by_alias=True, include=SCORED_FIELDS) for s in specs]).encode()).hexdigest()
    keys = {}
    for job in jobs:
        batch = [it["seed"] for it in job["items"]] if keyframe_model is not None else None
        for it in job["items"]:
            keys[(job["shot_id"], it["index"])] = key_of("candidates", CODE_VERSION, {
                "backend": identity, "prompt": job["prompt_hash"], "seed": it["seed"],
                "size": [job["width"], job["height"]], "batch_seeds": batch,
                "scored_for": specs, "scorer": SCORE_VERSION,
            })
    return keys


def _note_recipes(recipes: dict[str, dict[str, dict[str, Any]]], shots: list[ShotPlan],
                  master_size: tuple[int, int], identity: dict[str, Any] | None,
                  keys: dict[tuple[str, int], str]) -> None:
    """Each beat's candidates as one recipe in ``recipes`` (the run's notebook, or the
    plan's; what `studio plan` compares): the prompt record, the seeds, the backend, and
    the candidates' own keys."""
    from studio.cache import key_of

    for shot in shots:
        own = [keys.get((shot.shot_id, slot[0])) for slot in shot.candidate_slots()]
        doc = {"prompt": shot.prompt, "seeds": list(shot.seeds), "backend": identity,
               "size": list(master_size), "keys": own}
        if shot.rounds:  # (absent otherwise: a brief without rounds keeps its recipe key)
            doc["rounds"] = [{"note": r["note"], "prompt_hash": r["prompt_hash"], "seeds": r["seeds"]}
                             for r in shot.rounds]
        recipes.setdefault("candidates", {})[shot.beat_id] = {
            "key": key_of("candidates", CODE_VERSION, doc) if all(own) else None, "doc": doc}


def generate_candidates(env: StageEnv, inputs: CandidatesInputs) -> CandidatesOutputs:
    """Candidates the action cache holds are recorded for this run at once; only the
    rest go to the actor pool, each cached as it arrives (a killed run keeps them).
    Its counts say how many were reused and made (the pipeline reports and records them)."""
    import ray

    from studio.actors import keep_warm, user_error
    from studio.cache import ActionCache

    w, h = inputs.master_size
    model = inputs.keyframe_model
    jobs = make_jobs(inputs.shots, w, h, model.batch_size if model else 1)
    cache = ActionCache(env.engine, env.store)
    identity = candidate_identity(inputs.backend, inputs.backend_options, model)
    keys = candidate_keys(jobs, identity, inputs.specs, model)
    _note_recipes(env.recipes, inputs.shots, inputs.master_size, identity, keys)
    found: dict[str, list[CandidateResult]] = {}

    def record(job: dict[str, Any], index: int, out: dict[str, Any], reused_from: str | None = None) -> None:
        found.setdefault(job["shot_id"], []).append(_record_outputs(
            env, inputs.backend, inputs.backend_options, job, index, out, reused_from=reused_from))

    seen: set[tuple[str, int]] = set()
    todo: list[dict[str, Any]] = []
    for job in jobs:
        hits = [cache.get(keys[(job["shot_id"], it["index"])]) if keys else None for it in job["items"]]
        # A batch is made whole or not at all: its pixels depend on the seeds it shares a call with.
        if not all(hits):
            todo.append(job)
            continue
        for it, action in zip(job["items"], hits, strict=True):
            assert action is not None
            seen.add((job["shot_id"], it["index"]))
            record(job, it["index"], action.outputs, reused_from=action.run_id)
            env.reporter.advance("candidates", shot=job["beat_id"], candidate=it["index"])
    reused = len(seen)
    if todo:
        env.start_ray()
        resources, capacity = plan_resources(env.settings, model)
        pool = KeyframePool(
            inputs.backend, inputs.backend_options, str(env.store.root.resolve()),
            [s.model_dump(mode="json", by_alias=True) for s in inputs.specs], resources,
            max(1, min(len(todo), capacity)),
            # Only model actors stay warm between jobs (loading weights is what warmth saves);
            # procedural actors would just hold CPUs the clips stage needs.
            keep=keep_warm(env.settings) and model is not None, run_id=env.run_id,
        )
        by_id = {j["id"]: j for j in todo}
        with pool:
            try:
                for res in pool.run(todo):
                    job = by_id[res["job"]]
                    for item in res["items"]:
                        # A retried task after an actor restart returns the same items again only if
                        # the first result was lost; record each candidate once.
                        if (job["shot_id"], item["index"]) in seen:
                            continue
                        seen.add((job["shot_id"], item["index"]))
                        outputs = _outputs(job, res, item)
                        record(job, item["index"], outputs)
                        key = keys.get((job["shot_id"], item["index"]))
                        if key is not None:
                            cache.put(key, "candidates", CODE_VERSION, outputs, env.run_id, item["seconds"])
                        env.reporter.advance("candidates", shot=job["beat_id"], candidate=item["index"])
                    if env.cancelled():
                        raise StageError("cancelled", stage="candidates")
            except ray.exceptions.RayError as e:
                # The worker's own StudioError reaches the user as itself (studio.actors).
                raise user_error(e, what="keyframe generation", stage="candidates",
                                 fix="check the backend's settings and the brief's inputs") from e
    # In shot order, each shot's in index order (they arrive in any order).
    candidates = {shot.shot_id: sorted(found[shot.shot_id], key=lambda c: c.index) for shot in inputs.shots}
    return CandidatesOutputs(candidates=candidates, counts={"reused": reused, "made": len(seen) - reused})


def _outputs(job: dict[str, Any], res: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """What a made candidate leaves: store references, its score and its record's
    fields; the action cache keeps exactly this, so a reused one is recorded alike."""
    describe = res["describe"]
    return {
        "image": item["image"], "depth": item["depth"], "seed": item["seed"],
        "params": item["params"], "describe": describe, "conditions": item.get("conditions"),
        "code_version": res["code_version"], "worker": res["worker"],
        "recipe_hash": recipe_hash(describe, res["code_version"], job["prompt_hash"], item["seed"],
                                   job["width"], job["height"], item["params"]),
        "seconds": item["seconds"], "gpu_seconds": item["gpu_seconds"], "score": item["score"],
    }


def _record_outputs(env: StageEnv, backend: str, backend_options: dict[str, Any], job: dict[str, Any],
                    index: int, out: dict[str, Any], reused_from: str | None = None) -> CandidateResult:
    """A Candidate row (and its score) for this run, and the candidate the stage returns;
    ``reused_from`` names the run that made the media when it came from the action cache."""
    describe = out["describe"]
    image = MediaRef.from_dict(out["image"])
    depth = MediaRef.from_dict(out["depth"]) if out["depth"] else None
    params = out["params"]
    cid = db.new_id("cand")
    rhash = out["recipe_hash"]
    score = out["score"]
    extra = {"reused_from": reused_from} if reused_from else {}
    row = db.Candidate(
        id=cid, shot_id=job["shot_id"], index=index, seed=out["seed"],
        backend=describe.get("backend", backend), model_id=describe.get("model_id", ""),
        weights_sha256=describe.get("weights_sha256"), steps=params.get("steps"),
        width=job["width"], height=job["height"], prompt_hash=job["prompt_hash"],
        code_version=out["code_version"], recipe_hash=rhash,
        # conditions stay out of the recipe hash: they say how it ran, not what was asked
        params={**params, "describe": describe, "backend_options": backend_options,
                "conditions": out.get("conditions"), **extra},
        media_sha256=image.sha256, media_ext=image.ext,
        depth_sha256=depth.sha256 if depth else None, worker=out["worker"],
        seconds=out["seconds"], gpu_seconds=out["gpu_seconds"],
    )
    with env.session() as s:
        s.add(row)
        s.flush()
        s.add(db.Score(candidate_id=cid, scorer="heuristic.score.1", total=score["total"],
                       components=score["components"], reason=score["reason"]))
    return CandidateResult(
        candidate_id=cid, shot_id=job["shot_id"], beat_id=job["beat_id"], index=index,
        seed=out["seed"], image=image, depth=depth, score=score["total"],
        components=score["components"], reason=score["reason"],
        record={"recipe_hash": rhash, "backend": row.backend, "model_id": row.model_id,
                "weights_sha256": row.weights_sha256, "code_version": row.code_version,
                "params": params, "prompt_hash": job["prompt_hash"]},
    )
