"""A job's progress, read from its events (the worker turns the render's log into them):
per stage of the latest attempt (pending, running, done; amount done of its total; steps
reused and made), per shot (each beat's amount done per stage), and how many stages are in
each state. Computed when asked, from the append-only events: never stored, so never stale."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

# The render's stages in pipeline order (studio.pipeline.STAGES): a stage not begun yet is
# listed as pending. Kept here as names (the API does not import the pipeline for this), and
# checked against the pipeline by tests/test_gates.py.
STAGE_ORDER = ("prompts", "voice", "music", "candidates", "select", "review", "clips", "timeline", "mix",
               "captions", "conform", "release", "manifest")


class StageProgress(BaseModel):
    stage: str
    state: str = Field(description="pending | running | done | skipped (the render had nothing for it) | "
                                   "stopped (begun, and the attempt ended before it was done)")
    done: float = 0
    total: float | None = None
    reused: int | None = Field(None, description="cached steps reused (stages that cache)")
    made: int | None = Field(None, description="steps made")


class ProgressOut(BaseModel):
    attempt: int | None = Field(None, description="the attempt these figures are of (the latest that ran)")
    stages: list[StageProgress] = []
    shots: dict[str, dict[str, float]] = Field({}, description="beat -> stage -> amount done")
    counts: dict[str, int] = Field({}, description="stages per state")


def job_progress(events: list[Any], job_state: str) -> dict[str, Any]:
    """The progress of the latest attempt that began rendering (``events`` oldest first)."""
    attempt = None
    for e in events:
        if e.type in ("stage_start", "worker") and e.data.get("attempt") is not None:
            attempt = e.data["attempt"]
    stages: dict[str, dict[str, Any]] = {}
    shots: dict[str, dict[str, float]] = {}
    finished = False
    for e in events:
        d = e.data or {}
        if attempt is None or d.get("attempt") != attempt:
            continue
        name = str(d.get("stage") or "")
        if e.type == "stage_start":
            stages[name] = {"stage": name, "state": "running", "done": 0.0, "total": d.get("total")}
        elif e.type == "progress" and name in stages:
            stages[name]["done"] += float(d.get("amount") or 0)
            for beat, amount in (d.get("shots") or {}).items():
                per = shots.setdefault(str(beat), {})
                per[name] = per.get(name, 0.0) + float(amount or 0)
        elif e.type == "stage_done" and name in stages:
            stages[name].update(state="done", reused=d.get("reused"), made=d.get("made"))
        elif e.type in ("run_done", "up_to_date"):
            finished = True
    listed = []
    for name in STAGE_ORDER:
        if name in stages:
            listed.append(stages[name])
        elif attempt is not None:
            # Not begun: pending while the render runs on; skipped once it has finished past it.
            later = any(s in stages for s in STAGE_ORDER[STAGE_ORDER.index(name) + 1:])
            listed.append({"stage": name, "state": "skipped" if later or finished else "pending"})
    listed += [s for n, s in stages.items() if n not in STAGE_ORDER]
    if job_state not in ("running", "canceling", "suspending"):
        # No render is running now: a stage that began and never finished stopped there.
        for s in listed:
            if s["state"] == "running":
                s["state"] = "stopped"
    counts: dict[str, int] = {}
    for s in listed:
        counts[s["state"]] = counts.get(s["state"], 0) + 1
    return {"attempt": attempt, "stages": listed, "shots": shots, "counts": counts}
