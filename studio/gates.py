"""Human gates on server jobs: people pick, annotate, ask for more and sign off.

A job whose brief says ``selection: human`` stops at ``awaiting_selection`` when its
render stopped at the selection gate (studio.pipeline: the candidates and contact sheet
are made, a beat has no person's pick). A job whose brief lists ``approvals`` (e.g.
``[brand, legal]``) stops at ``awaiting_approval`` once its render finished and before it
is published, with the content hash of what it would deliver (``release_hash``).

Decisions are append-only ``Decision`` rows, each with who made it, when, and the content
hash it was made on: a pick names the candidate's keyframe, a sign-off the release. A
decision on content that has changed since no longer counts: a pick carries over to a
later render only to a candidate with the same recipe or keyframe (shots.select), and a
sign-off only to the same release hash.

What moves a job on (each in one transaction with its decision and events):
- a pick while ``awaiting_selection``: once every beat the gate waits on is picked, the
  job is queued again (reason ``picked``) and its next render goes on from the gate with
  every finished step reused;
- a pick that changes the selection of a job that is past the gate (awaiting approval,
  rejected or succeeded): queued again (``pick_changed``): it renders the new pick and
  waits for sign-off again, since the release it would deliver is new;
- ``more`` (more candidates for a beat, the note steering their prompt): queued again, the
  note added to the beat's ``more`` rounds (``Job.steer``), so new candidates join;
- an approval while ``awaiting_approval``: once every sign-off the brief asks for approves
  the gate's release hash, queued again (``approved``); the next attempt renders (all
  cached) and publishes only when the release it made is still the approved one;
- a rejection: ``rejected`` until a pick or ``more`` changes the content;
- an override while ``blocked`` (the release gate refused the render: studio.release): an
  approver's recorded sign-off (studio.policy.record_override) of one blocking policy
  violation, for the gate's scope; once every blocking violation is signed off and no QC
  check failed, queued again (``overridden``): the next render reuses every step, and its
  release gate sees the overrides and passes. A QC failure cannot be overridden: the
  media or the spec must change.
An annotation changes no state. Every state change keeps its event in the same transaction
(studio.jobs), so the job resumes after a server restart exactly as if none had happened.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import select

from studio import db
from studio.db import Decision, Job, now
from studio.errors import StudioError, quote
from studio.jobs import GATED, UnknownJob, _change, _held, _read, _tx

KINDS = ("pick", "annotate", "more", "approve", "reject", "override")
# What a reviewer can say about a candidate, as codes a report can count.
REASON_CODES = ("composition_solid", "expression_off", "product_unclear", "off_palette", "artefact",
                "good_for_alt")
MAX_NOTE = 2000
MAX_MORE = 8  # rounds of more candidates per beat (the brief's Beat.more limit)


class GateConflict(StudioError):
    """The decision does not fit the job's state or content (the API's 409)."""


@dataclass(frozen=True)
class Outcome:
    """A decision and what it did to its job."""

    decision: Decision
    job: Job
    moved: str | None  # the job's new state when the decision moved it, else None


def release_hash(deliverables: list[dict[str, Any]]) -> str:
    """The content a sign-off covers: each deliverable's channel spec and bytes (sha256).
    Names, paths and run ids stay out: a re-render that delivers the same bytes is the
    same release."""
    items = sorted({(str(d["spec"]), str(d["sha256"])) for d in deliverables})
    return hashlib.sha256(json.dumps(items, separators=(",", ":")).encode()).hexdigest()


# -- the worker's side -----------------------------------------------------------------


def wait(engine: Engine, lease_token: str, state: str, gate: dict[str, Any], *,
         run_id: str | None = None) -> bool:
    """End the attempt at a gate: the attempt is ``gated``, the job ``state``
    (awaiting_selection, awaiting_approval or rejected) with ``gate`` as what it waits on.
    False, and nothing changed, when the lease was lost (or a cancel is waiting: then the
    job is canceled, since nobody needs to decide any more)."""
    if state not in GATED:
        raise ValueError(f"a gate state is one of {sorted(GATED)}, not {state!r}")
    with _tx(engine) as tx:
        at = now()
        held = _held(tx, lease_token, at)
        if held is None:
            return False
        attempt, job = held
        attempt.state = "gated"
        attempt.finished_at = at
        tx.s.add(attempt)
        if run_id is not None:
            job.run_id = run_id
        if job.cancel_requested:
            _change(tx, job, "canceled", at, attempt=attempt.n, outcome="gated")
            return False
        job.gate = gate
        job.error = None
        counts = ({"violations": len(gate.get("violations") or []), "qc": len(gate.get("qc") or [])}
                  if gate.get("gate") == "release" else {})
        _change(tx, job, state, at, attempt=attempt.n, gate=gate.get("gate"),
                waiting_on=gate.get("waiting_on"), content_sha256=gate.get("content_sha256"), **counts)
        return True


def approvals_needed(brief: dict[str, Any]) -> list[str]:
    return [str(r) for r in brief.get("approvals") or []]


def sign_offs(engine: Engine, job: Job, content_sha256: str) -> dict[str, Decision | None]:
    """Each sign-off the job's brief asks for: the newest approve/reject decision on this
    job for ``content_sha256``, or None (not decided on this content)."""
    with _read(engine) as s:
        return _latest_sign_offs(s, job, content_sha256)


def _latest_sign_offs(session: Any, job: Job, content_sha256: str) -> dict[str, Decision | None]:
    rows = session.exec(select(Decision).where(
        Decision.job_id == job.id, Decision.kind.in_(("approve", "reject")),  # type: ignore[attr-defined]
        Decision.content_sha256 == content_sha256).order_by(Decision.id)).all()  # type: ignore[arg-type]
    latest: dict[str, Decision | None] = dict.fromkeys(approvals_needed(job.brief))
    for d in rows:
        if d.role in latest:
            latest[d.role] = d
    return latest


def approval_state(engine: Engine, job: Job, content_sha256: str) -> str:
    """approved (every sign-off approves this content), rejected (one rejects it) or
    waiting."""
    latest = sign_offs(engine, job, content_sha256)
    if any(d is not None and d.kind == "reject" for d in latest.values()):
        return "rejected"
    if all(d is not None and d.kind == "approve" for d in latest.values()):
        return "approved"
    return "waiting"


# -- people's decisions ----------------------------------------------------------------


def _job_for_update(tx: Any, job_id: str) -> Job:
    job = tx.s.exec(tx.lock(select(Job).where(Job.id == job_id))).first()
    if job is None:
        raise UnknownJob(f"no job {quote(job_id)}", fix="list jobs to find its id", field="job_id")
    return job


def _note(note: str | None) -> str:
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise StudioError(f"the note is {len(note)} characters long", fix=f"keep it to {MAX_NOTE}", field="note")
    return note


def _requeue(tx: Any, job: Job, reason: str, at: Any, **data: Any) -> str:
    job.gate = None
    job.queued_at = at
    job.cancel_requested = False
    _change(tx, job, "queued", at, reason=reason, **data)
    return "queued"


def _gate_candidates(job: Job) -> dict[str, dict[str, Any]]:
    """The candidates of the run the job's selection was made on, by id, each with its beat."""
    gate = job.gate or {}
    found: dict[str, dict[str, Any]] = {}
    for beat in gate.get("beats") or []:
        for c in beat.get("candidates") or []:
            found[c["id"]] = {**c, "beat": beat["beat"]}
    return found


def _run_candidate(tx: Any, job: Job, candidate_id: str) -> tuple[db.Candidate, db.Shot] | None:
    """``candidate_id`` when it belongs to a run of this job (its gate's run or its last)."""
    runs = {r for r in ((job.gate or {}).get("run_id"), job.run_id) if r}
    cand = tx.s.get(db.Candidate, candidate_id)
    if cand is None:
        return None
    shot = tx.s.get(db.Shot, cand.shot_id)
    if shot is None or shot.run_id not in runs:
        return None
    return cand, shot


def _unknown_candidate(job: Job, candidate_id: str) -> StudioError:
    return StudioError(f"candidate {quote(candidate_id)} is not one of job {job.id}'s",
                       fix=f"GET /v1/jobs/{job.id}/candidates lists them", field="candidate")


def _add(tx: Any, job: Job, kind: str, who: str, at: Any, **fields: Any) -> Decision:
    d = Decision(job_id=job.id, project=job.project, kind=kind, who=who, created_at=at, **fields)
    tx.s.add(d)
    tx.s.flush()
    return d


def pick(engine: Engine, job_id: str, beat: str, candidate_id: str, who: str, note: str = "") -> Outcome:
    """A person picks ``candidate_id`` for ``beat`` (see the module docstring for what it
    moves). The pick is also the engine's own (a ``selected`` pointer, as `studio select`
    makes), so the next render selects that candidate by its recipe."""
    note = _note(note)
    with _tx(engine) as tx:
        job = _job_for_update(tx, job_id)
        if job.state not in (*GATED, "succeeded"):
            raise GateConflict(f"job {job.id} is {job.state}: there is nothing to pick from",
                               fix="pick when it waits for a selection (awaiting_selection) or once it "
                                   "has rendered", field="state")
        found = _run_candidate(tx, job, candidate_id)
        if found is None:
            raise _unknown_candidate(job, candidate_id)
        cand, shot = found
        if shot.beat_id != beat:
            raise StudioError(f"candidate {candidate_id} is beat {shot.beat_id}'s, not {beat}'s",
                              fix=f"pick one of beat {beat}'s candidates", field="beat")
        at = now()
        before = _selected_sha(tx, job, beat)
        db.pick_candidate(tx.s, shot.run_id, beat, candidate_id, who, note)
        d = _add(tx, job, "pick", who, at, beat=beat, candidate_id=candidate_id, note=note,
                 content_sha256=cand.media_sha256, run_id=shot.run_id)
        tx.event(job.id, "picked", {"beat": beat, "candidate": candidate_id, "who": who,
                                    "content_sha256": cand.media_sha256, "decision": d.id}, at)
        moved = None
        if job.state == "awaiting_selection":
            gate = dict(job.gate or {})
            waiting = [b for b in gate.get("waiting_on") or [] if b != beat]
            # The sheet shows the pick at once (the next render selects it by its recipe).
            beats = [{**b, "picked": candidate_id} if b.get("beat") == beat else b for b in gate.get("beats") or []]
            if waiting:
                job.gate = {**gate, "waiting_on": waiting, "beats": beats}
                tx.s.add(job)
            else:
                moved = _requeue(tx, job, "picked", at, decision=d.id)
        elif before != cand.media_sha256:
            # Past the gate: a new pick is new content, and sign-offs of the old no longer count.
            moved = _requeue(tx, job, "pick_changed", at, beat=beat, decision=d.id)
        return Outcome(d, job, moved)


def _selected_sha(tx: Any, job: Job, beat: str) -> str | None:
    """The keyframe the job's last render delivered for ``beat`` (its manifest's beats)."""
    for b in (job.gate or {}).get("beats") or []:
        if b.get("beat") == beat and b.get("selected_sha256"):
            return str(b["selected_sha256"])
    if job.run_id is None:
        return None
    shot = tx.s.exec(select(db.Shot).where(db.Shot.run_id == job.run_id, db.Shot.beat_id == beat)).first()
    if shot is None:
        return None
    ptr = tx.s.exec(select(db.Pointer).where(db.Pointer.name == "selected", db.Pointer.scope == f"shot:{shot.id}")
                    .order_by(db.Pointer.id)).all()  # type: ignore[arg-type]
    auto = [p for p in ptr if p.set_by == "auto"]
    return auto[-1].target_sha256 if auto else None


def annotate(engine: Engine, job_id: str, candidate_id: str, who: str, *, codes: list[str] | None = None,
             note: str = "", frame: int | None = None, fps: str | None = None) -> Outcome:
    """A note on a candidate with reason codes (REASON_CODES); optionally pinned to a
    frame (0-based) at ``fps``. Changes no state."""
    codes = list(dict.fromkeys(codes or []))
    bad = [c for c in codes if c not in REASON_CODES]
    if bad:
        raise StudioError(f"reason code(s) {', '.join(map(quote, bad))} are not known",
                          fix=f"use any of: {', '.join(REASON_CODES)}", field="codes")
    note = _note(note)
    if not codes and not note:
        raise StudioError("an annotation needs a reason code or a note", fix="give codes, a note or both",
                          field="codes")
    if frame is not None and frame < 0:
        raise StudioError(f"frame {frame} is negative", fix="frames count from 0", field="frame")
    with _tx(engine) as tx:
        job = _job_for_update(tx, job_id)
        found = _run_candidate(tx, job, candidate_id)
        if found is None:
            raise _unknown_candidate(job, candidate_id)
        cand, shot = found
        at = now()
        d = _add(tx, job, "annotate", who, at, beat=shot.beat_id, candidate_id=candidate_id, codes=codes,
                 note=note, content_sha256=cand.media_sha256, frame=frame, fps=fps, run_id=shot.run_id)
        tx.event(job.id, "annotated", {"beat": shot.beat_id, "candidate": candidate_id, "codes": codes,
                                       "who": who, "decision": d.id}, at)
        return Outcome(d, job, None)


def more(engine: Engine, job_id: str, beat: str, note: str, who: str) -> Outcome:
    """More candidates for ``beat``: a new round with new seeds whose prompt ``note``
    steers; the job is queued again and the new candidates join the beat's sheet."""
    note = _note(note)
    if not note:
        raise StudioError("more candidates need a note to steer them", fix="say what to change, e.g. "
                          "'warmer light, subject closer'", field="note")
    if len(note) > 500:
        raise StudioError(f"the note is {len(note)} characters long", fix="keep a steering note to 500",
                          field="note")
    with _tx(engine) as tx:
        job = _job_for_update(tx, job_id)
        if job.state not in (*GATED, "succeeded", "queued", "suspended"):
            raise GateConflict(f"job {job.id} is {job.state}: its render has begun without this round",
                               fix="ask for more candidates once it waits for a person or has rendered",
                               field="state")
        beats = [b.get("id") for b in job.brief.get("beats") or []]
        if beat not in beats:
            raise StudioError(f"beat {quote(beat)} is not in the job's brief", fix=f"use one of: {', '.join(beats)}",
                              field="beat")
        steer = {k: list(v) for k, v in (job.steer or {}).items()}
        own = next((len(b.get("more") or []) for b in job.brief["beats"] if b.get("id") == beat), 0)
        if own + len(steer.get(beat, [])) >= MAX_MORE:
            raise GateConflict(f"beat {beat} has had {MAX_MORE} rounds of more candidates",
                               fix="pick from those, or change the beat in a new brief", field="beat")
        steer.setdefault(beat, []).append(note)
        job.steer = steer
        at = now()
        d = _add(tx, job, "more", who, at, beat=beat, note=note, run_id=job.run_id,
                 content_sha256=hashlib.sha256(note.encode()).hexdigest())
        tx.event(job.id, "more_requested", {"beat": beat, "note": note, "who": who, "round": len(steer[beat]),
                                            "decision": d.id}, at)
        if job.state in ("queued", "suspended"):  # not begun: its next render has the round
            tx.s.add(job)
            return Outcome(d, job, None)
        return Outcome(d, job, _requeue(tx, job, "more_candidates", at, beat=beat, decision=d.id))


def sign(engine: Engine, job_id: str, role: str, approve: bool, content_sha256: str, who: str,
         note: str = "") -> Outcome:
    """A sign-off (``role`` one of the brief's approvals) approving or rejecting the
    release ``content_sha256``, which must be the one the job waits on: a decision on other
    content is refused (409), never counted."""
    note = _note(note)
    with _tx(engine) as tx:
        job = _job_for_update(tx, job_id)
        roles = approvals_needed(job.brief)
        if role not in roles:
            raise StudioError(f"sign-off {quote(role)} is not one this job's brief asks for",
                              fix=f"sign as one of: {', '.join(roles)}" if roles else "this job needs no sign-off",
                              field="role")
        gate = job.gate or {}
        if job.state not in ("awaiting_approval", "rejected") or gate.get("gate") != "approval":
            raise GateConflict(f"job {job.id} is {job.state}, not awaiting approval",
                               fix="sign off when it waits at awaiting_approval", field="state")
        if content_sha256 != gate.get("content_sha256"):
            raise GateConflict(f"content {quote(content_sha256)} is not what job {job.id} would deliver now "
                               f"({gate.get('content_sha256')}): the content changed since",
                               fix="review the current deliverables and sign off their content_sha256",
                               field="content_sha256")
        at = now()
        d = _add(tx, job, "approve" if approve else "reject", who, at, role=role, note=note,
                 content_sha256=content_sha256, run_id=gate.get("run_id"))
        tx.event(job.id, "approved" if approve else "rejected_by", {
            "role": role, "who": who, "content_sha256": content_sha256, "note": note, "decision": d.id}, at)
        moved = None
        if not approve:
            if job.state != "rejected":
                _change(tx, job, "rejected", at, role=role, who=who, content_sha256=content_sha256)
                moved = "rejected"
        else:
            latest = _latest_sign_offs(tx.s, job, content_sha256)
            if all(x is not None and x.kind == "approve" for x in latest.values()):
                moved = _requeue(tx, job, "approved", at, content_sha256=content_sha256)
            elif job.state == "rejected" and not any(x is not None and x.kind == "reject" for x in latest.values()):
                # every rejection of this content was answered by an approval: waits again
                _change(tx, job, "awaiting_approval", at, role=role)
                moved = "awaiting_approval"
        return Outcome(d, job, moved)


# -- the release gate: an approver's override of a policy violation -----------------------


def release_waiting_on(gate: dict[str, Any]) -> list[str]:
    """What a release gate still holds: each blocking violation nobody has signed off, as
    ``RULE COMPONENT`` (what an override names), then each failed QC check as ``qc SPEC
    CHECK`` (no override lets those through)."""
    held = [f"{v.get('rule')} {v.get('component')}" for v in gate.get("violations") or []
            if v.get("blocking", True) and not v.get("overridden_by")]
    failed = [f"qc {q.get('spec')}{' ' + str(q['locale']) if q.get('locale') else ''} {q.get('check')}"
              for q in gate.get("qc") or []]
    return list(dict.fromkeys(held + failed))


def override_sha256(scope: str, rule: str, component: str) -> str:
    """What an override decision is made on: the rule broken by the component in the scope."""
    return hashlib.sha256(json.dumps([scope, rule, component]).encode()).hexdigest()


def _check_override(job: Job, rule: str, component: str) -> None:
    gate = job.gate or {}
    if job.state != "blocked" or gate.get("gate") != "release":
        raise GateConflict(f"job {job.id} is {job.state}, not blocked at the release gate: there is nothing to "
                           "override", fix="an override is for a job whose release gate blocked it (state blocked)",
                           field="state")
    qc = gate.get("qc") or []
    checks = {str(q.get("check")) for q in qc}
    if rule.startswith("qc") or rule in checks:
        failed = "; ".join(f"{q.get('spec')} {q.get('check')}: {q.get('finding')}" for q in qc) or "none now"
        raise GateConflict(f"a QC failure cannot be overridden (job {job.id}'s QC failures: {failed})",
                           fix="fix the media or the channel spec (its qc: severities) and `studio retry "
                               f"{job.id}`, or submit a corrected brief; each QC report says what failed and where",
                           field="rule")
    matching = [v for v in gate.get("violations") or [] if v.get("rule") == rule and v.get("component") == component
                and v.get("blocking", True)]
    held = [h for h in release_waiting_on(gate) if not h.startswith("qc ")]
    if not matching:
        raise GateConflict(f"rule {quote(rule)} for component {quote(component)} is not one of job {job.id}'s "
                           f"blocking violations; its release gate holds: {', '.join(held) or 'no policy violation'}",
                           fix="override one of those, naming its rule and component as the gate lists them",
                           field="rule")
    if all(v.get("overridden_by") for v in matching):
        by = matching[0]["overridden_by"].get("approver")
        raise GateConflict(f"rule {rule} for component {component} was overridden already, by {by}",
                           fix=f"nothing to do for it; the gate still holds: {', '.join(held) or 'QC failures'}",
                           field="rule")


def override(engine: Engine, job_id: str, rule: str, component: str, reason: str, who: str, *, approver: str,
             role: str = "legal", expires: Any = None) -> Outcome:
    """An approver signs off one blocking policy violation of the job's release gate (``rule``
    broken by ``component``, as the gate lists it), with the reason: recorded as a policy
    override for the gate's scope (studio.policy.record_override: what the next release gate
    reads) and as an append-only ``override`` decision with its ``overridden`` event. Once
    every blocking violation is signed off and no QC check failed, the job is queued again
    (``overridden``). Refused (GateConflict) when the job is not blocked, for a QC failure,
    or for a rule and component the gate does not hold."""
    import datetime as dt

    from studio.policy import record_override

    rule, component, reason = rule.strip(), component.strip(), _note(reason)
    if not reason:
        raise StudioError("an override needs the reason it is granted", field="reason",
                          fix="say why the rule may be broken here (kept with the sign-off)")
    if expires is not None and expires < dt.date.today():
        raise StudioError(f"expires {expires.isoformat()} is in the past", field="expires",
                          fix="give the last day the override counts (today or later), or none")
    with _read(engine) as s:
        job = s.get(Job, job_id)
    if job is None:
        raise UnknownJob(f"no job {quote(job_id)}", fix="list jobs to find its id", field="job_id")
    _check_override(job, rule, component)
    gate_run = (job.gate or {}).get("run_id")
    scope = str((job.gate or {}).get("scope") or f"{job.project}/{job.campaign}")
    # The sign-off itself, in the policy's own table and transaction (a second writer inside
    # ours would wait on our own lock on SQLite). It stands even if the job moves meanwhile:
    # it was given for the scope, and the decision below records it either way.
    signed = record_override(engine, rule=rule, component=component, scope=scope, approver=approver,
                             reason=reason, role=role, expires=expires)
    with _tx(engine) as tx:
        job = _job_for_update(tx, job_id)
        at = now()
        d = _add(tx, job, "override", who, at, role=role, note=reason, target=f"{rule} {component}",
                 content_sha256=override_sha256(scope, rule, component), run_id=gate_run)
        tx.event(job.id, "overridden", {"rule": rule, "component": component, "scope": scope, "approver": approver,
                                        "role": role, "reason": reason, "who": who, "decision": d.id,
                                        "override": signed.id,
                                        "expires": expires.isoformat() if expires is not None else None}, at)
        moved = None
        gate = dict(job.gate or {})
        if job.state == "blocked" and gate.get("gate") == "release" and gate.get("run_id") == gate_run:
            gate["violations"] = [
                {**v, "overridden_by": signed.signed()}
                if v.get("rule") == rule and v.get("component") == component and not v.get("overridden_by") else v
                for v in gate.get("violations") or []]
            gate["waiting_on"] = release_waiting_on(gate)
            if gate["waiting_on"]:
                job.gate = gate
                tx.s.add(job)
            else:
                moved = _requeue(tx, job, "overridden", at, decision=d.id, scope=scope)
        return Outcome(d, job, moved)


def decisions(engine: Engine, job_id: str) -> list[Decision]:
    """The job's decisions, oldest first."""
    with _read(engine) as s:
        return list(s.exec(select(Decision).where(Decision.job_id == job_id).order_by(Decision.id)).all())  # type: ignore[arg-type]


def brief_for_render(brief: dict[str, Any], steer: dict[str, Any] | None) -> dict[str, Any]:
    """The brief a job's next render runs: as submitted, with the rounds of more candidates
    asked for since (``Job.steer``) added to their beats' ``more``."""
    brief = json.loads(json.dumps(brief))
    for beat in brief.get("beats") or []:
        extra = (steer or {}).get(beat.get("id"))
        if extra:
            beat["more"] = [*(beat.get("more") or []), *extra]
    return brief


# -- notes on a video frame (the review page's watch view) -------------------------------

NOTE_TARGET_PREFIXES = ("deliverable:", "review:")


def note_on_media(engine: Engine, job_id: str, *, target: str, frame: int, fps: str, frames: int,
                  content_sha256: str, who: str, codes: list[str] | None = None, note: str = "",
                  run_id: str | None = None) -> Outcome:
    """A note pinned to ``frame`` (0-based) of a video of the job: a deliverable
    (``deliverable:SPEC``) or the review's animatic (``review:animatic``), at ``fps`` (the
    video's exact rate), on its bytes ``content_sha256``. ``frames`` is how many frames
    the video has: a frame past its end is refused. Recorded as an ``annotate`` decision
    with its ``noted`` event, in one transaction; changes no state."""
    codes = list(dict.fromkeys(codes or []))
    bad = [c for c in codes if c not in REASON_CODES]
    if bad:
        raise StudioError(f"reason code(s) {', '.join(map(quote, bad))} are not known",
                          fix=f"use any of: {', '.join(REASON_CODES)}", field="codes")
    note = _note(note)
    if not codes and not note:
        raise StudioError("a note on a frame needs a reason code or some text", fix="give codes, a note or both",
                          field="note")
    if not target.startswith(NOTE_TARGET_PREFIXES):
        raise StudioError(f"target {quote(target)} is not a video of the job",
                          fix="name deliverable:SPEC or review:animatic", field="target")
    if frame < 0:
        raise StudioError(f"frame {frame} is negative", fix="frames count from 0", field="frame")
    if frame >= frames:
        raise StudioError(f"frame {frame} is past the end of {target} ({frames} frames at {fps}: 0 to {frames - 1})",
                          fix=f"pin the note to a frame from 0 to {frames - 1}", field="frame")
    with _tx(engine) as tx:
        job = _job_for_update(tx, job_id)
        at = now()
        d = _add(tx, job, "annotate", who, at, codes=codes, note=note, content_sha256=content_sha256,
                 frame=frame, fps=fps, target=target, run_id=run_id)
        tx.event(job.id, "noted", {"target": target, "frame": frame, "fps": fps, "codes": codes, "who": who,
                                   "content_sha256": content_sha256, "decision": d.id}, at)
        return Outcome(d, job, None)
