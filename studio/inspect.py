"""Reading the records back: what a run made, from what, and why."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from studio import db
from studio.errors import StudioError


def describe_run(engine: Engine, run_id: str) -> dict[str, Any]:
    with Session(engine) as s:
        run = s.get(db.Run, run_id)
        if run is None:
            matches = s.exec(select(db.Run).where(db.Run.id.startswith(run_id))).all()  # type: ignore[attr-defined]
            if len(matches) == 1:
                run = matches[0]
            else:
                raise StudioError(
                    f"no run {run_id!r}" if not matches else f"{run_id!r} matches {len(matches)} runs",
                    fix="list them with `studio runs`", field="RUN",
                )
        bv = s.get(db.BriefVersion, run.brief_version_id)
        assert bv is not None
        project = s.get(db.Project, bv.project_id)
        shots = []
        for shot in s.exec(select(db.Shot).where(db.Shot.run_id == run.id).order_by(db.Shot.position)).all():
            cands = s.exec(select(db.Candidate).where(db.Candidate.shot_id == shot.id)
                           .order_by(db.Candidate.index)).all()
            ptr = db.current_pointer(s, "selected", f"shot:{shot.id}")
            clist = []
            for c in cands:
                score = s.exec(select(db.Score).where(db.Score.candidate_id == c.id)).first()
                clist.append({
                    "id": c.id, "index": c.index, "seed": c.seed, "backend": c.backend,
                    "model_id": c.model_id, "weights_sha256": c.weights_sha256, "width": c.width,
                    "height": c.height, "steps": c.steps, "prompt_hash": c.prompt_hash,
                    "recipe_hash": c.recipe_hash, "code_version": c.code_version,
                    "media_sha256": c.media_sha256, "worker": c.worker, "seconds": round(c.seconds, 3),
                    "score": score.total if score else 0.0,
                    "score_components": score.components if score else {},
                    "score_reason": score.reason if score else "",
                })
            prompt = s.get(db.PromptRecordRow, shot.prompt_hash)
            shots.append({
                "id": shot.id, "beat_id": shot.beat_id, "duration": shot.duration, "frames": shot.frames,
                "rate": shot.rate, "handles": shot.handles, "prompt_hash": shot.prompt_hash,
                "prompt": prompt.document if prompt else None,
                "candidates": clist,
                "selected": ptr.target_id if ptr else None,
                "selected_reason": ptr.reason if ptr else None,
            })
        deliverables = [
            {"spec": d.spec, "kind": d.kind, "path": d.path, "sha256": d.sha256, "width": d.width,
             "height": d.height, "fps": d.fps, "duration": d.duration, "size": d.size}
            for d in s.exec(select(db.Deliverable).where(db.Deliverable.run_id == run.id)).all()
        ]
        timelines = [
            {"id": t.id, "kind": t.kind, "name": t.name, "path": t.path, "sha256": t.sha256}
            for t in s.exec(select(db.Timeline).where(db.Timeline.run_id == run.id)).all()
        ]
        return {
            "run": run.model_dump(),
            "project": project.code if project else "?",
            "campaign": bv.campaign,
            "brief_version": bv.version,
            "brief_sha256": bv.sha256,
            "shots": shots,
            "deliverables": deliverables,
            "timelines": timelines,
        }


def manifest_json_schema() -> dict[str, Any]:
    """JSON Schema of manifest.json (Manifest.1)."""
    sha = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Manifest.1",
        "type": "object",
        "required": ["schema", "run_id", "brief", "deliverables", "timelines", "beats", "files"],
        "properties": {
            "schema": {"const": "Manifest.1"},
            "run_id": {"type": "string"},
            "studio_version": {"type": "string"},
            "version": {"type": "integer"},
            "edit_rate": {"type": "string"},
            "style_pack": {"type": "string"},
            "backend": {"type": "string"},
            "brief": {"type": "object", "required": ["project", "campaign", "sha256"]},
            "deliverables": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["spec", "kind", "path", "sha256", "width", "height", "fps", "duration", "size"],
                    "properties": {
                        "spec": {"type": "string"},
                        "kind": {"enum": ["video", "still"]},
                        "path": {"type": "string"},
                        "sha256": sha,
                        "width": {"type": "integer"},
                        "height": {"type": "integer"},
                        "fps": {"type": ["string", "null"]},
                        "duration": {"type": ["number", "null"]},
                        "size": {"type": "integer"},
                        "loudness": {
                            "type": "object",
                            "description": "the deliverable's audio measured with ebur128",
                            "required": ["integrated", "true_peak", "lra", "target", "ceiling", "within_spec"],
                        },
                        "captions": {"type": "object", "required": ["srt", "vtt", "burned_in"]},
                        "locale": {"type": "string", "description": "one of the brief's locales, when it has several"},
                        "copy_inputs": {
                            "type": "object",
                            "description": "the copy the deliverable shows, and the font and logo it is set with",
                            "required": ["copy", "font", "logo"],
                            "properties": {
                                "copy": {"type": "array", "items": {"type": "object", "required": ["field", "text"]}},
                                "font": {"type": "object", "required": ["file", "sha256", "licence"]},
                                "logo": {"type": ["object", "null"], "required": ["file", "sha256", "rights"]},
                            },
                        },
                        "qc": {
                            "type": "object",
                            "description": "the release gate's technical QC (studio.release): its verdict and "
                                           "the JSON and HTML reports, paths in this folder",
                            "required": ["verdict", "blocked", "report", "html"],
                            "properties": {"verdict": {"enum": ["pass", "warn", "fail"]}},
                        },
                        "policy": {
                            "type": "object",
                            "description": "the policy over the deliverable's rights: name, version, passed, "
                                           "each violation (rule, component, reason, fix, override)",
                            "required": ["name", "version", "passed", "violations"],
                        },
                        "rights": {"type": "array", "items": {"type": "string"},
                                   "description": "the licence ids of its components (`studio rights`)"},
                        "provenance": {
                            "type": "object",
                            "description": "signed: XMP digitalSourceType and a C2PA manifest (`studio verify`)",
                            "required": ["signed"],
                        },
                    },
                },
            },
            "release": {"type": "object", "description": "the policy the release gate applied and the signer"},
            "locales": {
                "type": "array",
                "description": "a brief in several locales: how each was spoken",
                "items": {"type": "object", "required": ["locale", "voice", "mode"],
                          "properties": {"mode": {"enum": ["voiced", "subtitled", "silent"]}}},
            },
            "timelines": {
                "type": "array",
                "items": {"type": "object", "required": ["kind", "path", "sha256"]},
            },
            "beats": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "candidates", "selected"],
                    "properties": {
                        "candidates": {
                            "type": "array",
                            "items": {"type": "object", "required": ["id", "seed", "score", "keyframe_sha256"]},
                        },
                    },
                },
            },
            "sound": {
                "type": "object",
                "required": ["voice", "lines", "music", "cues", "stems"],
                "properties": {
                    "lines": {"type": "array", "items": {
                        "type": "object", "required": ["beat", "text", "start", "end", "sha256"]}},
                    "cues": {"type": "array", "items": {"type": "object", "required": ["id", "effect", "at", "rights"]}},
                    "stems": {"type": "array", "items": {"type": "object", "required": ["name", "path", "sha256"]}},
                },
            },
            "warnings": {"type": "array", "items": {"type": "string"}},
            "files": {
                "type": "array",
                "description": "every file in the output folder but manifest.json, paths relative to it",
                "items": {
                    "type": "object",
                    "required": ["path", "size", "sha256"],
                    "properties": {"path": {"type": "string"}, "size": {"type": "integer"}, "sha256": sha},
                    "additionalProperties": False,
                },
            },
        },
    }
