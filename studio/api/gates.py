"""The human gates over HTTP (studio.gates): the candidates a job's selection is made
from, picks, annotations, more candidates, sign-offs, overrides of the release gate, the
QC reports a blocked job's gate names, and the decision log.

Editors pick, annotate and ask for more; approvers sign off (each sign-off names the
content hash it covers: a release that changed since is a 409, never counted) and
override a blocked job's policy violations (each one named by its rule and component, with
a reason). Every decision is recorded with the token that made it (``tok_...:name``)."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import PurePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from studio import auth, gates, jobs
from studio.api.bodies import ApiError
from studio.api.deps import (
    ERRORS,
    JOB_ID,
    EngineDep,
    PrincipalDep,
    SettingsDep,
    bad_parameter,
    job_out,
    needs,
    not_found,
    visible,
)
from studio.api.schemas import ErrorOut, JobOut
from studio.errors import StudioError

CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "the job's state or content does not allow this decision now"}}
SHA256 = re.compile(r"^[0-9a-f]{64}$")
CANDIDATE_ID = Path(description="a candidate's id (cand_...)", max_length=100)
REPORT_NAME = Path(description="a QC report's file name, as the gate's qc entries link it", max_length=100)
REPORT = re.compile(r"^([0-9a-f]{64})\.(?:html|json)$")
# A QC report is Studio's own HTML, styled inline, with no scripts: nothing else may run or load.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox; frame-ancestors 'self'"


class CandidateOut(BaseModel):
    id: str
    index: int
    seed: int | None = None
    score: float | None = None
    reason: str | None = Field(None, description="the scorer's reason")
    sha256: str | None = Field(None, description="the keyframe's sha256: what a pick or note is made on")
    image_url: str | None = Field(None, description="the keyframe (PNG) from the store")


class BeatOut(BaseModel):
    beat: str
    picked: str | None = Field(None, description="the candidate a person picked (a selection gate)")
    selected: str | None = Field(None, description="the candidate the render used (an approval gate)")
    candidates: list[CandidateOut]


class CandidatesOut(BaseModel):
    gate: str | None = Field(None, description="selection | approval | null (not at a gate)")
    run_id: str | None = None
    waiting_on: list[str] = Field([], description="beats still to pick, or sign-offs still to give")
    content_sha256: str | None = Field(None, description="the release a sign-off must name (approval gate)")
    beats: list[BeatOut]


class PickIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    beat: str = Field(min_length=1, max_length=100)
    candidate: str = Field(min_length=1, max_length=100)
    note: str = Field("", max_length=gates.MAX_NOTE)


class AnnotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    candidate: str = Field(min_length=1, max_length=100)
    codes: list[Literal[gates.REASON_CODES]] = Field([], max_length=len(gates.REASON_CODES))  # type: ignore[valid-type]
    note: str = Field("", max_length=gates.MAX_NOTE)
    frame: int | None = Field(None, ge=0, le=10_000_000, description="0-based frame the note is pinned to")
    fps: str | None = Field(None, max_length=20, pattern=r"^\d{1,6}(/\d{1,6})?$", description="e.g. 30000/1001")


class MoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    beat: str = Field(min_length=1, max_length=100)
    note: str = Field(min_length=1, max_length=500, description="steers the new candidates' prompt")


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(min_length=1, max_length=64, description="one of the brief's approvals, e.g. brand")
    decision: Literal["approve", "reject"]
    content_sha256: str = Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$",
                                description="the release being signed off (the job's gate content_sha256)")
    note: str = Field("", max_length=gates.MAX_NOTE)


class OverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule: str = Field(min_length=1, max_length=100, description="the violation's rule, as the gate lists it "
                                                                 "(e.g. licence.territory)")
    component: str = Field(min_length=1, max_length=300, description="the violation's component, kind:id "
                                                                      "(e.g. model:flux-dev)")
    reason: str = Field(min_length=1, max_length=gates.MAX_NOTE, description="why the rule may be broken here")
    expires: date | None = Field(None, description="the last day the override counts; none: no end")


class DecisionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    job_id: str
    kind: str = Field(description="pick | annotate | more | approve | reject | override")
    beat: str | None = None
    candidate_id: str | None = None
    role: str | None = None
    codes: list[str] = []
    note: str = ""
    who: str
    content_sha256: str = Field(description="what it was made on: a keyframe's or a release's sha256")
    frame: int | None = None
    fps: str | None = None
    target: str | None = Field(None, description="what a frame note is on: deliverable:SPEC or review:animatic; "
                                                 "what an override signs off: RULE COMPONENT")
    run_id: str | None = None
    created_at: datetime
    counts: bool = Field(True, description="false when the content it was made on has changed since")


class DecisionListOut(BaseModel):
    decisions: list[DecisionOut]


class DecisionResultOut(BaseModel):
    decision: DecisionOut
    job: JobOut
    moved: str | None = Field(None, description="the job's new state when this decision moved it")


def _who(principal: auth.Principal) -> str:
    return f"{principal.token_id}:{principal.name}" if principal.name else principal.token_id


def _decision(d: Any, current: dict[str, Any] | None = None) -> dict[str, Any]:
    out = DecisionOut.model_validate(d).model_dump(mode="json")
    out["counts"] = _counts(d, current or {})
    return out


def _counts(d: Any, gate_state: dict[str, Any]) -> bool:
    """Whether a decision still holds: a sign-off on the release the job would deliver now,
    a pick or note on a keyframe one of the job's beats still shows."""
    if d.kind in ("approve", "reject"):
        return d.content_sha256 == gate_state.get("release")
    if d.kind == "annotate" and d.target:
        # A frame note: on a deliverable the job would deliver now (the animatic is no part
        # of a release: its notes hold while the job has it).
        return d.target.startswith("review:") or d.content_sha256 in gate_state.get("media", set())
    if d.kind in ("pick", "annotate"):
        return d.content_sha256 in gate_state.get("keyframes", set())
    return True


def _gate_state(job: Any) -> dict[str, Any]:
    gate = job.gate or {}
    keyframes = {c.get("sha256") for b in gate.get("beats") or [] for c in b.get("candidates") or []}
    media = {d.get("sha256") for d in gate.get("deliverables") or []}
    return {"release": gate.get("content_sha256"), "keyframes": keyframes, "media": media}


def _conflict(e: StudioError) -> ApiError:
    return ApiError(409, e.line(), fix=e.fix)


def _decide(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        out = fn(*args, **kwargs)
    except jobs.UnknownJob:
        raise not_found(str(args[1])) from None
    except gates.GateConflict as e:
        raise _conflict(e) from None
    except StudioError as e:
        raise bad_parameter(e) from None
    return {"decision": _decision(out.decision, _gate_state(out.job)), "job": job_out(out.job),
            "moved": out.moved}


def _reasons(engine: Any, ids: list[Any]) -> dict[str, str]:
    """The scorer's reason per candidate id (a release's candidates carry none of their own)."""
    if not ids:
        return {}
    from sqlmodel import Session, select

    from studio.db import Score

    with Session(engine) as s:
        rows = s.exec(select(Score).where(Score.candidate_id.in_([str(i) for i in ids]))).all()  # type: ignore[attr-defined]
    return {r.candidate_id: r.reason for r in rows}


def add_routes(v1: APIRouter) -> None:
    @v1.get("/jobs/{job_id}/candidates", response_model=CandidatesOut, tags=["gates"],
            responses={404: ERRORS[404]})
    def job_candidates(engine: EngineDep, principal: PrincipalDep,
                       job_id: Annotated[str, JOB_ID]) -> dict[str, Any]:
        """The candidates of each beat of the job's gate (its selection's run, or the
        release waiting for sign-off), with scores, the scorer's reasons and keyframe links."""
        job = visible(engine, job_id, principal)
        gate = job.gate or {}
        reasons = _reasons(engine, [c.get("id") for b in gate.get("beats") or [] for c in b.get("candidates") or []
                                    if not c.get("reason")])
        beats = []
        for b in gate.get("beats") or []:
            for c in b.get("candidates") or []:
                c.setdefault("reason", None)
                c["reason"] = c["reason"] or reasons.get(c.get("id"))
            beats.append({
                "beat": b.get("beat"), "picked": b.get("picked"), "selected": b.get("selected"),
                "candidates": [{**{k: c.get(k) for k in ("id", "index", "seed", "score", "reason", "sha256")},
                                "image_url": f"/v1/jobs/{job.id}/candidates/{c.get('id')}/image"}
                               for c in b.get("candidates") or []]})
        return {"gate": gate.get("gate"), "run_id": gate.get("run_id"), "waiting_on": gate.get("waiting_on") or [],
                "content_sha256": gate.get("content_sha256"), "beats": beats}

    @v1.get("/jobs/{job_id}/candidates/{candidate_id}/image", tags=["gates"], response_class=FileResponse,
            responses={200: {"content": {"image/png": {}}, "description": "the keyframe"}, 404: ERRORS[404]})
    def candidate_image(engine: EngineDep, settings: SettingsDep, principal: PrincipalDep,
                        job_id: Annotated[str, JOB_ID], candidate_id: Annotated[str, CANDIDATE_ID]) -> FileResponse:
        """A candidate's keyframe, from the content-addressed store (only a candidate of this
        job's gate: no other file can be named)."""
        from studio.store import Store

        job = visible(engine, job_id, principal)
        found = next((c for b in (job.gate or {}).get("beats") or [] for c in b.get("candidates") or []
                      if c.get("id") == candidate_id), None)
        sha = (found or {}).get("sha256")
        if not sha or not SHA256.match(str(sha)):
            raise ApiError(404, f"no candidate {candidate_id!r} in job {job_id}'s gate",
                           fix=f"GET /v1/jobs/{job_id}/candidates lists them")
        try:
            path = Store(settings.store_root).find(str(sha))
        except StudioError:
            raise ApiError(404, f"candidate {candidate_id}'s keyframe is no longer in the store",
                           fix="render the job again (POST /v1/jobs/{id}/retry) to make it again") from None
        return FileResponse(path, media_type="image/png", headers={"ETag": f'"{sha}"',
                                                                   "Cache-Control": "private, max-age=86400"})

    @v1.post("/jobs/{job_id}/picks", response_model=DecisionResultOut, tags=["gates"],
             openapi_extra=needs("editor"), responses={404: ERRORS[404], **CONFLICT})
    async def pick(engine: EngineDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID],
                   body: PickIn) -> dict[str, Any]:
        """Pick a candidate for a beat. At ``awaiting_selection`` the job goes on once every
        beat is picked; past the gate, a changed pick renders again and needs sign-off again."""
        visible(engine, job_id, principal)
        return await run_in_threadpool(_decide, gates.pick, engine, job_id, body.beat, body.candidate,
                                       _who(principal), body.note)

    @v1.post("/jobs/{job_id}/annotations", response_model=DecisionResultOut, tags=["gates"],
             openapi_extra=needs("editor"), responses={404: ERRORS[404], **CONFLICT})
    async def annotate(engine: EngineDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID],
                       body: AnnotateIn) -> dict[str, Any]:
        """A note on a candidate: reason codes (composition_solid, expression_off,
        product_unclear, off_palette, artefact, good_for_alt) and free text, optionally pinned
        to a frame. Changes no state."""
        visible(engine, job_id, principal)
        return await run_in_threadpool(_decide, gates.annotate, engine, job_id, body.candidate, _who(principal),
                                       codes=list(body.codes), note=body.note, frame=body.frame, fps=body.fps)

    @v1.post("/jobs/{job_id}/more", response_model=DecisionResultOut, tags=["gates"],
             openapi_extra=needs("editor"), responses={404: ERRORS[404], **CONFLICT})
    async def more(engine: EngineDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID],
                   body: MoreIn) -> dict[str, Any]:
        """More candidates for a beat, steered by the note: new seeds, the note added to the
        prompt; the job renders again and the new candidates join the beat's sheet."""
        visible(engine, job_id, principal)
        return await run_in_threadpool(_decide, gates.more, engine, job_id, body.beat, body.note, _who(principal))

    @v1.post("/jobs/{job_id}/approvals", response_model=DecisionResultOut, tags=["gates"],
             openapi_extra=needs("approver"), responses={404: ERRORS[404], **CONFLICT})
    async def sign(engine: EngineDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID],
                   body: SignIn) -> dict[str, Any]:
        """Approve or reject the release waiting for sign-off, as one of the brief's
        approvals (``role``), naming its ``content_sha256``."""
        visible(engine, job_id, principal)
        return await run_in_threadpool(_decide, gates.sign, engine, job_id, body.role, body.decision == "approve",
                                       body.content_sha256, _who(principal), body.note)

    @v1.get("/jobs/{job_id}/decisions", response_model=DecisionListOut, tags=["gates"],
            responses={404: ERRORS[404]})
    def job_decisions(engine: EngineDep, principal: PrincipalDep,
                      job_id: Annotated[str, JOB_ID]) -> dict[str, Any]:
        """Every decision on the job, oldest first, each with who, when, the content hash it
        was made on, and whether it still counts."""
        job = visible(engine, job_id, principal)
        state = _gate_state(job)
        return {"decisions": [_decision(d, state) for d in gates.decisions(engine, job_id)]}

    @v1.post("/jobs/{job_id}/overrides", response_model=DecisionResultOut, tags=["gates"],
             openapi_extra=needs("approver"), responses={404: ERRORS[404], **CONFLICT})
    async def override(engine: EngineDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID],
                       body: OverrideIn) -> dict[str, Any]:
        """Sign off one blocking policy violation of a job its release gate blocked: the
        ``rule`` broken by the ``component`` (as the gate lists them), with the reason; kept
        as the policy override of the gate's scope, approver the token's name. The job goes on
        once every blocking violation is signed off and no QC check failed (a QC failure is
        never overridden: fix the media or the spec)."""
        visible(engine, job_id, principal)
        approver = f"{principal.name} ({principal.token_id})" if principal.name else principal.token_id
        return await run_in_threadpool(_decide, gates.override, engine, job_id, body.rule, body.component,
                                       body.reason, _who(principal), approver=approver, role="legal",
                                       expires=body.expires)

    @v1.get("/jobs/{job_id}/gate/reports/{name}", tags=["gates"], response_class=FileResponse,
            responses={200: {"content": {"text/html": {}, "application/json": {}},
                             "description": "a QC report (HTML, or QcReport.1 JSON)"}, 404: ERRORS[404],
                       410: {"model": ErrorOut, "description": "the report is no longer in the store"}})
    def gate_report(engine: EngineDep, settings: SettingsDep, principal: PrincipalDep,
                    job_id: Annotated[str, JOB_ID], name: Annotated[str, REPORT_NAME]) -> FileResponse:
        """A QC report the job's release gate names (its ``qc`` entries' ``html_url`` and
        ``report_url``), from the store: a blocked run publishes nothing, so its reports
        are kept there. No other file can be named."""
        from studio.store import Store

        job = visible(engine, job_id, principal)
        named = {PurePath(str(item.get(k))).name for item in (job.gate or {}).get("qc") or [] for k in ("report", "html")
                 if item.get(k)}
        match = REPORT.match(name)
        if name not in named or match is None:
            raise ApiError(404, f"job {job_id}'s release gate names no QC report {name!r}",
                           fix=f"GET /v1/jobs/{job_id} lists its gate's QC failures with their report URLs")
        try:
            path = Store(settings.store_root).find(match.group(1))
        except StudioError:
            path = None
        if path is None or path.name != name:
            raise ApiError(410, f"QC report {name} is no longer in the store",
                           fix=f"retry the job (`studio retry {job_id}`) to check it again")
        html = name.endswith(".html")
        return FileResponse(path, media_type="text/html; charset=utf-8" if html else "application/json",
                            headers={"ETag": f'"{match.group(1)}"', "X-Content-Type-Options": "nosniff",
                                     **({"Content-Security-Policy": REPORT_CSP} if html else {})})
