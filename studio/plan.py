"""`studio plan BRIEF` (and `studio render --dry-run`): what a render would run, and why.

The plan computes every cached step's action key the way its stage does (the same
functions: ``voice_recipe``, ``music_recipe``, ``candidate_keys``, ``clip_recipe``,
``edit_recipe``, ``mix_recipe``, ``master_recipe``, ``conform_recipe``), from the brief,
the catalog and what the action cache already holds, without starting Ray or ffmpeg and
without recording anything. A step whose key the cache holds is *current*; one made
before from other inputs is *stale*, and the plan says which content input changed since
the last run of the same project and campaign recorded it (old and new value), or that
the step before it runs (its key cannot be known until then); one never made, or whose
outputs are gone from the store, is *missing*. Every step that is not current runs.
Generative steps stale because their model or voice changed are *gated*: a render needs
`--regenerate` (or the beat named) before spending GPU time on them again. Costs come from the records:
the seconds (and GPU-seconds) the step took when it was last made.

Cheap deterministic stages (prompts, select, review, timeline, captions, manifest, the
stills) always run and are listed as such.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlmodel import Session, select

from studio import db
from studio.cache import ActionCache, key_of
from studio.store import sha256_file

ALWAYS = ("prompts", "select", "review", "timeline", "captions", "release", "manifest")


@dataclass
class Step:
    stage: str
    item: str  # a beat, a channel, or "spot"
    status: str  # current | stale | missing | gated (all but current run)
    why: list[str] = field(default_factory=list)
    key: str | None = None
    seconds: float | None = None  # what it took when last made (the records), if known
    gpu_seconds: float | None = None


@dataclass
class Plan:
    brief: str
    previous_run: str | None
    steps: list[Step]
    stage_seconds: dict[str, float] = field(default_factory=dict)  # the previous run's wall time per stage
    up_to_date: dict[str, Any] | None = None  # set by the render when --out holds this exact result

    def running(self) -> list[Step]:
        return [s for s in self.steps if s.status != "current"]

    def gated(self) -> list[Step]:
        return [s for s in self.steps if s.status == "gated"]

    def keys(self) -> dict[str, dict[str, str | None]]:
        out: dict[str, dict[str, str | None]] = {}
        for s in self.steps:
            out.setdefault(s.stage, {})[s.item] = s.key
        return out

    def estimate(self) -> dict[str, float | None]:
        """Seconds and GPU-seconds of the steps that run, from their last records (None when
        a running step was never timed); and the wall time of the stages that have work,
        scaled by the share of their steps that run, from the previous run."""
        run = self.running()
        secs = [s.seconds for s in run]
        gpu = sum(s.gpu_seconds or 0.0 for s in run)
        wall = 0.0
        for stage, total in self.stage_seconds.items():
            steps = [s for s in self.steps if s.stage == stage]
            if stage in ALWAYS:
                wall += total
            elif steps:
                wall += total * sum(1 for s in steps if s.status != "current") / len(steps)
        return {"step_seconds": None if None in secs else round(sum(secs), 2),  # type: ignore[arg-type]
                "gpu_seconds": round(gpu, 2), "wall_seconds": round(wall, 2) if self.stage_seconds else None}

    def to_dict(self) -> dict[str, Any]:
        return {"brief": self.brief, "previous_run": self.previous_run, "always": list(ALWAYS),
                "steps": [asdict(s) for s in self.steps], "estimate": self.estimate(),
                "up_to_date": self.up_to_date}

    def lines(self) -> list[str]:
        out = [f"plan for {self.brief}" + (f" (compared with run {self.previous_run})" if self.previous_run
                                            else " (no earlier run of this project and campaign)")]
        if self.up_to_date:
            out.append(f"up to date: {self.up_to_date['out']} holds run {self.up_to_date['run_id']} "
                       f"(v{self.up_to_date['version']:03d}), made from exactly this; nothing to render")
        width = max([10, *(len(s.stage) for s in self.steps)])  # "conform fr-FR": a later locale's
        for s in self.steps:
            cost = ""
            if s.status != "current" and s.seconds is not None:
                cost = f"  [{s.seconds:.1f} s" + (f", {s.gpu_seconds:.1f} GPU-s" if s.gpu_seconds else "") + "]"
            out.append(f"  {s.status:<8} {s.stage:<{width}} {s.item:<24}{cost}")
            for w in s.why:
                out.append(f"           - {w}")
        out.append(f"  always   {', '.join(ALWAYS)} (cheap, deterministic: run every time)")
        est = self.estimate()
        n = len(self.running())
        out.append(f"{n} of {len(self.steps)} cached steps run"
                   + (f"; about {est['wall_seconds']:.0f} s wall" if est["wall_seconds"] is not None else "")
                   + (f", {est['gpu_seconds']:.1f} GPU-s" if est["gpu_seconds"] else ""))
        if self.gated():
            beats = sorted({s.item for s in self.gated()})
            out.append("gated: a model or voice changed; `studio render --regenerate` spends the GPU time "
                       f"(or name beats: --regenerate {','.join(beats)})")
        return out


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(_flat(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 70 else text[:67] + "..."


def diff(old: dict[str, Any], new: dict[str, Any], limit: int = 6) -> list[str]:
    """What changed between two recipes, one line per field: ``path: old -> new``."""
    a, b = _flat(old), _flat(new)
    lines = []
    for path in sorted(set(a) | set(b)):
        if a.get(path, "∅") != b.get(path, "∅"):
            lines.append(f"{path}: {_short(a.get(path, '(none)'))} -> {_short(b.get(path, '(none)'))}")
    if len(lines) > limit:
        lines = lines[:limit] + [f"... and {len(lines) - limit} more"]
    return lines


def previous_recipes(engine: Any, project: str, campaign: str) -> tuple[str | None, dict[str, dict[str, Any]],
                                                                          dict[str, float]]:
    """The recipes the runs of this project and campaign recorded, newest first per step
    (a killed run's finished steps count), the newest run's id and its stage timings."""
    with Session(engine) as s:
        rows = s.exec(
            select(db.Run).join(db.BriefVersion, db.Run.brief_version_id == db.BriefVersion.id)  # type: ignore[arg-type]
            .join(db.Project, db.BriefVersion.project_id == db.Project.id)  # type: ignore[arg-type]
            .where(db.Project.code == project, db.BriefVersion.campaign == campaign)
            .order_by(db.Run.started_at.desc())  # type: ignore[attr-defined]
        ).all()
        runs = [(r.id, dict(r.settings or {})) for r in rows]
    found: dict[str, dict[str, Any]] = {}
    newest, timings = None, {}
    for run_id, settings in runs:
        recipes = settings.get("recipes") or {}
        if recipes and newest is None:
            newest, timings = run_id, dict(settings.get("timings") or {})
        for stage, items in recipes.items():
            for item, rec in items.items():
                found.setdefault(stage, {}).setdefault(item, rec)
    return newest, found, timings


def _dig(doc: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        doc = doc.get(part) if isinstance(doc, dict) else None
    return doc


def _seconds(engine: Any, keys: list[str | None]) -> tuple[float | None, float]:
    """The seconds the actions ``keys`` took when made, and the GPU-seconds their outputs record."""
    if not keys or None in keys:
        return None, 0.0
    total, gpu = 0.0, 0.0
    with Session(engine) as s:
        for k in keys:
            row = s.get(db.Action, k)
            if row is None:
                return None, 0.0
            total += float(row.seconds or 0.0)
            gpu += float((row.outputs or {}).get("gpu_seconds") or 0.0)
    return total, gpu


class _Planner:
    def __init__(self, ctx: Any, regenerate: bool | set[str]) -> None:
        self.ctx = ctx
        self.cache = ActionCache(ctx.engine, ctx.store)
        self.regenerate = regenerate
        self.previous, self.prev_recipes, self.timings = previous_recipes(
            ctx.engine, ctx.brief.project, ctx.brief.campaign)
        self.steps: list[Step] = []

    def allowed(self, item: str) -> bool:
        return self.regenerate is True or (isinstance(self.regenerate, set) and item in self.regenerate)

    def judge(self, stage: str, item: str, key: str | None, doc: dict[str, Any] | None,
              generative: tuple[str, ...] = (), action_keys: list[str | None] | None = None,
              after: str = "an earlier step") -> Any:
        """The step's status; returns the cached action (its outputs) when current."""
        if action_keys is not None:  # a beat's candidates: current when every one is cached
            found = [self.cache.get(k) for k in action_keys] if action_keys and None not in action_keys else []
            hit: Any = found if found and all(found) else None
        else:
            hit = self.cache.get(key) if key else None
        if hit:
            self.steps.append(Step(stage, item, "current", key=key))
            return hit
        prev = self.prev_recipes.get(stage, {}).get(item)
        status = "stale"
        if key is None and doc is None:
            why = [f"after {after}: its inputs are made there"]
        elif prev is None:
            status, why = "missing", ["new: not made before for this project and campaign"]
        elif prev.get("doc") == doc:
            status, why = "missing", ["made before from the same inputs, but not finished or its outputs "
                                      "are gone from the store"]
        else:
            why = diff(prev.get("doc") or {}, doc or {})
        if generative and prev is not None and doc is not None and not self.allowed(item):
            # Gated: the same model or voice (by its id) is not what it was (new weights, other
            # settings, other files). A brief that names another model or voice asked for it.
            old = _dig(prev.get("doc") or {}, generative)
            new = _dig(doc, generative)
            same_id = isinstance(old, dict) and isinstance(new, dict) and old.get("id") and \
                old.get("id") == new.get("id")
            if same_id and _dig(prev.get("doc") or {}, generative[:1]) != _dig(doc, generative[:1]):
                status = "gated"
        prev_keys = (prev or {}).get("doc", {}).get("keys") if stage == "candidates" else None
        secs, gpu = _seconds(self.ctx.engine, prev_keys if prev_keys else [(prev or {}).get("key")])
        self.steps.append(Step(stage, item, status, why, key, secs, gpu or None))
        return None


def make_plan(ctx: Any, regenerate: bool | set[str] = False) -> Plan:
    """The plan for the render ``ctx`` describes (a RunContext made for planning: nothing
    is recorded, no Ray, no ffmpeg)."""
    from audio import soundtrack, voiceover
    from shots import clips, generate
    from shots.score import Score, rank
    from shots.select import _same_recipe
    from studio import prompts
    from studio.context import CandidateResult
    from studio.store import MediaRef

    p = _Planner(ctx, regenerate)
    shots = prompts.compile_shots(
        prompts.PromptsInputs(ctx.brief, ctx.brief_path, ctx.brief_dir, ctx.specs, ctx.style, ctx.keyframe_model,
                              ctx.edit_rate),
        run_id=ctx.run_id, settings=ctx.settings, warn=lambda _message: None,
        keep=lambda path: SimpleNamespace(sha256=sha256_file(path)))
    ctx.shots = shots
    video = bool(ctx.video_specs)
    # voice
    voice_key, voice_out = None, {"lines": [], "stem": None}
    if video and ctx.voice is not None and any(b.narration.strip() for b in ctx.brief.beats):
        doc = voiceover.voice_recipe(ctx.brief, shots, ctx.edit_rate, ctx.voice)
        voice_key = key_of("voice", voiceover.CODE_VERSION, doc)
        hit = p.judge("voice", "spot", voice_key, doc, generative=("voice", "entry"))
        voice_out = hit.outputs if hit else None
    # music
    music_out = None
    if video:
        doc = soundtrack.music_recipe(ctx.brief, ctx.brief_dir, ctx.settings, shots, ctx.edit_rate, voice_key)
        key = key_of("music", soundtrack.CODE_VERSION, doc)
        hit = p.judge("music", "spot", key, doc, generative=("model",))
        music_out = hit.outputs if hit else None
    # candidates, then the pick each beat's would get
    w, h = ctx.master_size
    jobs = generate.make_jobs(shots, w, h, ctx.keyframe_model.batch_size if ctx.keyframe_model else 1)
    identity = generate.candidate_identity(ctx.backend, ctx.backend_options, ctx.keyframe_model)
    keys = generate.candidate_keys(jobs, identity, ctx.specs, ctx.keyframe_model)
    generate._note_recipes(ctx.recipes, shots, ctx.master_size, identity, keys)
    model_backend = ("backend", "model")
    bv_id = _brief_version(ctx.engine, ctx.brief.project, ctx.brief.campaign)
    for shot in shots:
        rec = ctx.recipes["candidates"][shot.beat_id]
        hits = p.judge("candidates", shot.beat_id, rec["key"], rec["doc"], generative=model_backend,
                       action_keys=rec["doc"]["keys"])
        if not hits:
            continue
        cands = [CandidateResult(
            candidate_id=f"plan-{shot.beat_id}-{i}", shot_id=shot.shot_id, beat_id=shot.beat_id, index=i,
            seed=a.outputs["seed"], image=MediaRef.from_dict(a.outputs["image"]),
            depth=MediaRef.from_dict(a.outputs["depth"]) if a.outputs["depth"] else None,
            score=a.outputs["score"]["total"], components=a.outputs["score"]["components"],
            reason=a.outputs["score"]["reason"], record={"recipe_hash": a.outputs["recipe_hash"]})
            for i, a in enumerate(hits)]
        best = cands[rank([Score(c.score, c.components, c.reason) for c in cands])[0]]
        if bv_id is not None:
            with Session(ctx.engine) as s:
                pick = db.latest_pick(s, bv_id, shot.beat_id)
            if pick is not None:
                best = _same_recipe(cands, pick[1].recipe_hash, pick[0].target_sha256) or best
        ctx.selected[shot.shot_id] = best
    # clips
    masters: dict[str, str] = {}
    if video:
        ident = clips.clip_identity(ctx.clip_model)
        gen = ("renderer", "model")
        known = [s for s in shots if s.shot_id in ctx.selected]
        job_by_shot = {j["shot_id"]: j for j in clips.clip_jobs(
            known, ctx.selected, lut=clips.clip_lut(ctx.lut), edit_rate=ctx.edit_rate,
            master_size=ctx.master_size, settings=ctx.settings, store=ctx.store)}
        for shot in shots:
            job = job_by_shot.get(shot.shot_id)
            if job is None:
                p.judge("clips", shot.beat_id, None, None, after=f"candidates {shot.beat_id}")
                continue
            doc = clips.clip_recipe(job, ident)
            key = None if doc is None else key_of("clips", clips.CODE_VERSION, doc)
            hit = p.judge("clips", shot.beat_id, key, doc, generative=gen)
            if hit:
                masters[shot.shot_id] = hit.outputs["media"]["sha256"]
    _plan_sound(p, ctx, ctx.brief, shots, masters, voice_out, music_out, "")
    # A brief in several locales: each later locale's voice (or the first's, subtitled),
    # edit, mix and deliverables, as stages of their own (pipeline.render_locales).
    if video and len(ctx.brief.all_locales) > 1:
        from audio.voices import VoiceRegistry
        from studio.pipeline import locale_plan

        written = ctx.brief.written
        for lp in locale_plan(written, VoiceRegistry(ctx.settings.voices_dir)):
            loc, local = lp["locale"], written.localized(lp["locale"])
            out: dict[str, Any] | None = {"lines": [], "stem": None}
            if lp["mode"] == "voiced":
                doc = voiceover.voice_recipe(local, shots, ctx.edit_rate, lp["voice"])
                hit = p.judge(f"voice {loc}", "spot", key_of("voice", voiceover.CODE_VERSION, doc), doc,
                              generative=("voice", "entry"))
                out = hit.outputs if hit else None
            elif lp["mode"] == "subtitled":
                out = voice_out
            _plan_sound(p, ctx, local, shots, masters, out, music_out, f" {loc}")
    return Plan(brief=str(ctx.brief_path), previous_run=p.previous, steps=p.steps, stage_seconds=p.timings)


def _plan_sound(p: _Planner, ctx: Any, brief: Any, shots: list[Any], masters: dict[str, str],
                voice_out: dict[str, Any] | None, music_out: dict[str, Any] | None, suffix: str) -> None:
    """The edit, mix, masters and video deliverables of one locale's pass (``suffix``: ""
    for the first locale, " <locale>" for the others, as the run records them)."""
    from audio import mix
    from timelines import assemble, deliver, graphics
    from timelines.captions import CODE_VERSION as CAPTIONS_VERSION
    from timelines.conform import CODE_VERSION as GRAPH_VERSION

    video = bool(ctx.video_specs)
    # the edit (pictures and sound), the sound alone (the mix needs no picture), a master per
    # channel, the deliverables
    edit_key = sound_key = None
    if video and voice_out is not None and music_out is not None:
        stems = {k: v["sha256"] for k, v in music_out["stems"].items()}
        if voice_out.get("stem"):
            stems["voice"] = voice_out["stem"]["sha256"]
        lines = [{"beat": ln["beat"], "sha256": ln["ref"]["sha256"], "start": ln["start"]}
                 for ln in voice_out["lines"]]
        edit = assemble.edit_recipe(shots, masters, stems, lines, ctx.edit_rate)
        sound_key = key_of("sound", assemble.CODE_VERSION, assemble.sound_recipe(edit))
        if len(masters) == len(shots):
            edit_key = key_of("timeline", assemble.CODE_VERSION, edit)
    mix_key = None
    if video:
        doc = mix.mix_recipe(sound_key, brief.music.gain_db) if sound_key else None
        mix_key = key_of("mix", mix.CODE_VERSION, doc) if doc else None
        p.judge("mix" + suffix, "spot", mix_key, doc, after="the voice and the music")
    master_keys: dict[str, str | None] = {}
    for spec in ctx.video_specs:
        if spec.loudness_target is None:
            continue
        doc = mix.master_recipe(mix_key, spec) if mix_key else None
        master_keys[spec.name] = key_of("master", mix.CODE_VERSION, doc) if doc else None
        p.judge("mix" + suffix, spec.name, master_keys[spec.name], doc, after="the mix")
    lut = ctx.catalog.lut_path(ctx.style)
    fin = ctx.style.finishing
    for spec in ctx.video_specs:
        ready = edit_key is not None and (spec.loudness_target is None or master_keys.get(spec.name))
        doc = deliver.conform_recipe(
            edit_key, spec, lut_sha=sha256_file(lut) if lut else None, grain=fin.grain, sharpen=fin.sharpen,
            preset=ctx.settings.x264_preset, master=master_keys.get(spec.name),
            captions=deliver.captions_recipe(brief, CAPTIONS_VERSION),
            graph=GRAPH_VERSION, graphics=graphics.graphics_recipe(brief, spec, ctx.catalog)) if ready else None
        p.judge("conform" + suffix, spec.name, key_of("conform", deliver.CODE_VERSION, doc) if doc else None, doc,
                after="the clips, the voice and the music")


def _brief_version(engine: Any, project: str, campaign: str) -> int | None:
    """Any brief version of the project and campaign (a pick is found through any of them)."""
    with Session(engine) as s:
        row = s.exec(select(db.BriefVersion.id).join(db.Project, db.BriefVersion.project_id == db.Project.id)  # type: ignore[arg-type]
                     .where(db.Project.code == project, db.BriefVersion.campaign == campaign)).first()
    return row


def planning_dir() -> Path:
    """A folder the plan's context may name as its work folder; nothing is written there."""
    return Path(tempfile.gettempdir()) / "studio-plan-never-written"
