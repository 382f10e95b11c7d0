"""Stage ``manifest``: manifest.json, the contract other tools read (schema Manifest.1).

Paths in it are relative to the output folder. Keyframes appear by their sha256, so two
renders of the same brief can be compared hash for hash. ``files`` lists every file the
output folder holds (but manifest.json itself) with its size and sha256, so a copy of the
folder can be checked file by file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from studio import __version__
from studio.brief import Brief
from studio.context import CandidateResult, ClipResult, ShotPlan, StageEnv
from studio.specs import StylePack
from studio.store import atomic_write_text, sha256_file
from studio.versioning import schema_string

CODE_VERSION = "manifest.1"


@dataclass
class ManifestInputs:
    brief: Brief
    style: StylePack
    backend: str
    edit_rate: Fraction
    shots: list[ShotPlan]
    candidates: dict[str, list[CandidateResult]]
    selected: dict[str, CandidateResult]
    clips: dict[str, ClipResult]
    voice: Any  # audio.voices.VoiceEntry, or None
    voice_lines: list[dict[str, Any]]
    sound: dict[str, Any]
    timelines: dict[str, dict[str, Any]]
    deliverables: list[dict[str, Any]]
    review: dict[str, Path]
    conform_of: dict[str, Any] | None
    locale_passes: list[dict[str, Any]]  # a brief in several locales: how each was spoken
    release: dict[str, Any]  # the release gate: the policy applied, the signer


@dataclass
class ManifestOutputs:
    manifest: dict[str, Any]  # what manifest.json at the root of the output folder says


def _rel(env: StageEnv, path: Any) -> str:
    return str(Path(path).relative_to(env.work_dir))


def sound_section(env: StageEnv, inp: ManifestInputs) -> dict[str, Any]:
    """The soundtrack: the voice and its licence, every line, the bed and every cue with
    their rights, and the stems handed to the editor."""
    voice = inp.voice
    bed = inp.sound.get("bed")
    return {
        "voice": None if voice is None else {
            "id": voice.id, "backend": voice.backend, "kind": voice.kind, "licence": voice.licence,
            "usage_classes": list(voice.usage_classes)},
        "lines": inp.sound.get("placed_lines", []),
        "fitted": {ln["beat"]: {"tempo": round(ln["tempo"], 4), "stretched": ln["stretched"],
                                "slack": ln["slack"]} for ln in inp.voice_lines},
        "music": None if bed is None else {"source": bed["source"], "track": bed["track"],
                                           "sha256": bed["ref"].sha256, "rights": bed["rights"]},
        "cues": [{k: c[k] for k in ("id", "kind", "effect", "beat", "at", "gain_db", "reason", "rights")}
                 for c in inp.sound.get("cues", [])],
        "stems": [{"name": n, "path": _rel(env, p), "sha256": sha256_file(p)}
                  for n, p in inp.sound.get("stems", {}).items()],
        "mix": None if "mix" not in inp.sound else {
            k: v for k, v in inp.sound["mix"].items() if k not in ("ref", "graph")},
    }


def files_section(env: StageEnv) -> list[dict[str, Any]]:
    """Every file that will be published: the work folder's files, less the stage scratch
    (removed before publishing) and manifest.json (which cannot hash itself)."""
    root = env.work_dir
    scratch = env.scratch_dir.resolve()
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.as_posix() == "manifest.json" or path.is_dir():
            continue
        if path.resolve() == scratch or scratch in path.resolve().parents:
            continue
        files.append({"path": rel.as_posix(), "size": path.stat().st_size, "sha256": sha256_file(path)})
    return files


def build_manifest(env: StageEnv, inp: ManifestInputs) -> dict[str, Any]:
    b = inp.brief
    beats = []
    for shot in inp.shots:
        cands = inp.candidates.get(shot.shot_id, [])
        sel = inp.selected.get(shot.shot_id)
        clip = inp.clips.get(shot.shot_id)
        beats.append({
            "id": shot.beat_id,
            "duration": shot.duration,
            "frames": shot.frames,
            "handles": shot.handles,
            "prompt_hash": shot.prompt_hash,
            "candidates": [
                {"id": c.candidate_id, "index": c.index, "seed": c.seed, "score": round(c.score, 4),
                 "keyframe_sha256": c.image.sha256, "recipe_hash": c.record["recipe_hash"]}
                for c in cands
            ],
            "selected": sel.candidate_id if sel else None,
            "selected_keyframe_sha256": sel.image.sha256 if sel else None,
            "selection_reason": sel.reason if sel else None,
            "clip_sha256": clip.media.sha256 if clip else None,
        })
    if not inp.shots and inp.conform_of is not None:
        beats = inp.conform_of["beats"]  # a conform makes no shots: its beats are the edit's clips
    timelines = []
    for kind, t in inp.timelines.items():
        timelines.append({"kind": kind, "name": t["name"], "path": str(t["path"].relative_to(env.work_dir)),
                          "sha256": t["sha256"], "format": "otio_json"})
        for fmt, e in t.get("exports", {}).items():
            timelines.append({"kind": kind, "name": t["name"], "path": str(e["path"].relative_to(env.work_dir)),
                              "sha256": e["sha256"], "format": fmt})
    return {
        "schema": schema_string("Manifest"),
        "studio_version": __version__,
        "run_id": env.run_id,
        "brief": {"project": b.project, "campaign": b.campaign, "sha256": b.content_hash(),
                  "version_id": env.brief_version_id, "usage_class": b.usage_class, "locale": b.locale,
                  "locales": b.all_locales},
        # Each locale's voice: voiced (a voice for its language), subtitled (the first
        # locale's voice under its own captions) or silent; deliverables carry their locale.
        "locales": inp.locale_passes,
        "version": env.version,
        "edit_rate": f"{inp.edit_rate.numerator}/{inp.edit_rate.denominator}",
        "style_pack": inp.style.name,
        "backend": inp.backend,
        "deliverables": inp.deliverables,
        # Each deliverable's QC report, policy result, rights and signature are in its entry.
        "release": inp.release,
        "timelines": timelines,
        "review": {k: {"path": str(p.relative_to(env.work_dir)), "sha256": sha256_file(p)}
                   for k, p in inp.review.items()},
        "beats": beats,
        "conform_of": None if inp.conform_of is None else {
            k: v for k, v in inp.conform_of.items() if k != "beats"},
        "sound": sound_section(env, inp),
        "warnings": env.warnings,
        "files": files_section(env),
    }


def write_manifest(env: StageEnv, inputs: ManifestInputs) -> ManifestOutputs:
    manifest = build_manifest(env, inputs)
    atomic_write_text(env.work_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    env.reporter.advance("manifest")
    return ManifestOutputs(manifest=manifest)
