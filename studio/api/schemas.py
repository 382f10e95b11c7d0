"""What the API answers, as pydantic models: FastAPI builds the OpenAPI document from them,
so the document says exactly what a client gets."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from studio.api.progress import ProgressOut


class Problem(BaseModel):
    """One thing wrong with a request, in the CLI's words: ``text`` is the line
    `studio render` prints after ``studio: error:``, and ``field``/``message``/``fix`` are
    its parts."""

    field: str | None = Field(None, description="the brief's field path, e.g. beats[2].duration")
    message: str = Field(description="what was wrong")
    fix: str = Field("", description="what to do")
    line: int | None = Field(None, description="the line of the submitted document holding that field "
                                                "(1-based), when it can be found")
    stage: str | None = None
    source: str | None = Field(None, description="a server-side file the problem is in (a style pack's "
                                                  "LUT), when it is not the submitted document")
    text: str = Field(description="the whole line, as the CLI prints it")


class ErrorOut(BaseModel):
    """Every 4xx answer: what was wrong, the fix, and for a refused brief each problem."""

    detail: str
    fix: str = ""
    problems: list[Problem] = []


class JobOut(BaseModel):
    """A job as the queue holds it. ``state`` is the queue's word for it and nothing else: an
    unknown id is a 404, never a guess."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    project: str
    campaign: str
    state: str = Field(description="queued | running | canceling | suspending | suspended | awaiting_selection | "
                                   "awaiting_approval | rejected | blocked | succeeded | failed | canceled")
    priority: int
    labels: dict[str, str] = {}
    dry_run: bool = False
    brief_sha256: str
    max_attempts: int
    failures: int = Field(description="failed attempts (interrupted ones do not count)")
    cancel_requested: bool = False
    run_id: str | None = None
    out_dir: str | None = None
    error: str | None = None
    created_at: datetime
    updated_at: datetime
    queued_at: datetime | None = None
    gate: dict[str, Any] | None = Field(None, description="what the job waits on at a human gate (gate: selection "
                                                            "| approval, waiting_on, content_sha256, beats; "
                                                            "release: scope, violations, qc, waiting_on), or "
                                                            "the release it delivered (gate: null)")


class JobDetailOut(JobOut):
    brief: dict[str, Any] = Field(description="the brief as submitted")
    progress: ProgressOut | None = Field(None, description="per stage and per shot, from the job's events "
                                                           "(the latest attempt that rendered)")


class JobListOut(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page; null at the end")


class AttemptOut(BaseModel):
    """One worker's try at a job. (Its lease token is the worker's secret and is not shown.)"""

    model_config = ConfigDict(from_attributes=True)

    n: int = Field(description="1, 2, ... per job")
    state: str = Field(description="running | succeeded | failed | interrupted | canceled")
    worker: str
    started_at: datetime
    heartbeat_at: datetime
    lease_expires_at: datetime
    finished_at: datetime | None = None
    error: str | None = None


class AttemptListOut(BaseModel):
    attempts: list[AttemptOut]


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="increasing; pass the last one seen as ?after= to get only newer ones")
    job_id: str | None = None
    type: str
    data: dict[str, Any] = {}
    created_at: datetime


class EventListOut(BaseModel):
    events: list[EventOut]


class PlanOut(BaseModel):
    """``dry_run``: the engine's plan for the brief (`studio plan --json`); nothing queued."""

    dry_run: Literal[True] = True
    project: str
    campaign: str
    brief_sha256: str
    plan: dict[str, Any] = Field(description="steps (current | stale | missing | gated, with why), "
                                             "estimate (seconds, GPU-seconds), previous_run")


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    database: str = Field(description="the database's dialect (sqlite, postgresql)")
