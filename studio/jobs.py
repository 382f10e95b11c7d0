"""The server's durable job queue: submitted briefs wait in the database, workers lease
them, and every state change is written with its event in one transaction.

States: ``queued`` -> ``running`` -> ``succeeded`` | ``failed`` | ``canceled``;
``running`` -> ``canceling`` -> ``canceled`` (cancel is two-phase: the worker stops
first); ``running`` -> ``interrupted`` -> ``queued`` when a lease lapses (the worker died
or hung), without counting a failure. A failed attempt goes back to ``queued`` until
``max_attempts`` attempts have failed; then the job is ``failed`` with the last error.
``running`` -> a gate state (studio.gates: ``awaiting_selection``, ``awaiting_approval``,
``rejected``, ``blocked``) when the render stops for a person; a decision (a pick, a
sign-off, an override of the release gate) queues it again.

Leases: ``claim`` gives a worker a lease token for ``lease_seconds``; ``heartbeat``
extends it; an attempt whose lease expired is lost to its worker for good (it can neither
heartbeat, publish nor finish), even before ``requeue_lapsed`` has moved it.

Concurrency: on SQLite every writing transaction starts with ``BEGIN IMMEDIATE`` (the
write lock up front: a deferred transaction that read first and then writes fails at
once with "database is locked" in WAL mode when another wrote meanwhile, instead of
waiting); on PostgreSQL rows are locked with ``SELECT ... FOR UPDATE`` (``SKIP LOCKED``
when claiming, so claimers never wait on each other), always the attempt before its job.

Events: ``JobEvent.id`` is the SSE ``Last-Event-ID``, so ids must become visible in
increasing order: on PostgreSQL a sequence hands out ids at insert, not at commit, and a
reader could see id 8 committed before id 7 and skip 7 for good. Appends therefore take a
transaction-level advisory lock right before inserting (held to commit, so one appending
transaction commits at a time); SQLite has one writer anyway. A state change's event has
the new state as its type (``queued``, ``running``, ``canceling``, ``interrupted``, ...)
and ``{"from": old state, ...}`` as data; the worker adds ``stage_start``, ``stage_done``,
``progress``, ``warning`` and the like from the render's log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from studio import webhooks
from studio.db import Job, JobAttempt, JobEvent, new_id, now
from studio.errors import StudioError, quote

__all__ = [
    "AGEING_PER_MINUTE", "ACTIVE", "FINAL", "GATED", "STATES", "Claim", "IdempotencyConflict", "Job",
    "JobAttempt", "JobEvent", "UnknownJob", "append_events", "attempts", "cancel", "claim",
    "events", "finish", "get", "heartbeat", "heartbeat_status", "holds_lease", "interrupt",
    "list_jobs", "requeue_lapsed", "submit", "WrongState", "retry", "suspend", "resume", "set_priority",
]

STATES = ("queued", "running", "canceling", "suspending", "suspended", "awaiting_selection",
          "awaiting_approval", "rejected", "blocked", "succeeded", "failed", "canceled")
FINAL = frozenset({"succeeded", "failed", "canceled"})
ACTIVE = frozenset({"running", "canceling", "suspending"})  # a worker holds (or held) a lease
# Waiting on a person (studio.gates): no worker holds them; a decision moves them on.
# ``blocked``: the release gate (studio.release) refused what the render made (a policy
# violation or a QC failure); an approver's override of each violation moves it on.
GATED = frozenset({"awaiting_selection", "awaiting_approval", "rejected", "blocked"})
# "gated": the render stopped at a human gate; the job waits (not a failure, not interrupted).
ATTEMPT_STATES = ("running", "succeeded", "failed", "interrupted", "canceled", "gated")
# Ageing: a queued job's effective priority grows by this much per minute it waits, so
# a priority-0 job queued 100 minutes ago goes before a priority-100 job submitted now.
AGEING_PER_MINUTE = 1.0
# One PostgreSQL advisory lock key for "appending job events" (see the module docstring).
PG_EVENTS_LOCK = int.from_bytes(hashlib.sha256(b"studio.jobs.events").digest()[:8], "big", signed=True)
MAX_ERROR = 2000  # characters of an error kept on a job or attempt
_now = now  # the clock, under a name requeue_lapsed's ``now`` argument does not hide


class IdempotencyConflict(StudioError):
    """The Idempotency-Key was used before with another request body (the API's 409)."""


class UnknownJob(StudioError):
    """No job has this id (the API's 404: an unknown id is never "done")."""


@dataclass(frozen=True)
class Claim:
    """What a worker got from ``claim``: the job, its attempt and the lease."""

    job_id: str
    attempt_id: int
    lease_token: str
    brief: dict[str, Any]
    out_dir: str | None
    n: int = 1  # the attempt's number (1, 2, ...)
    project: str = ""
    campaign: str = ""
    lease_expires_at: datetime = field(default_factory=now)
    steer: dict[str, Any] = field(default_factory=dict)  # more candidates asked for, per beat (studio.gates)


# -- transactions ----------------------------------------------------------------------


def _utc(dt: datetime) -> datetime:
    """Stored datetimes are UTC; a driver that hands them back naive gets UTC put back."""
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


class _Tx:
    """A writing transaction: the session, and the events to append when it commits."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.pg = session.get_bind().dialect.name == "postgresql"
        self.pending: list[JobEvent] = []

    def event(self, job_id: str, type_: str, data: dict[str, Any] | None = None,
              at: datetime | None = None) -> None:
        self.pending.append(JobEvent(job_id=job_id, type=type_, data=data or {}, created_at=at or now()))

    def lock(self, query: Any, *, skip_locked: bool = False) -> Any:
        """``query`` with FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already holds
        the whole database."""
        return query.with_for_update(skip_locked=skip_locked) if self.pg else query

    def flush_events(self) -> list[JobEvent]:
        if not self.pending:
            return []
        if self.pg:
            # As late as possible, held until commit: ids become visible in order.
            self.s.connection().exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_EVENTS_LOCK})")
        added, self.pending = self.pending, []
        self.s.add_all(added)
        self.s.flush()
        # The webhook outbox: each event's messages in this same transaction, so a message
        # exists exactly when its event (and the state change) was committed.
        webhooks.enqueue(self.s, added)
        return added


@contextmanager
def _tx(engine: Engine) -> Iterator[_Tx]:
    """One writing transaction, committed when the block ends without an exception."""
    with Session(engine, expire_on_commit=False) as s:
        if engine.dialect.name == "sqlite":
            # pysqlite (legacy transaction control) sends no BEGIN of its own once one is
            # open, so this is the transaction the statements below run in.
            s.connection().exec_driver_sql("BEGIN IMMEDIATE")
        tx = _Tx(s)
        try:
            yield tx
            tx.flush_events()
            s.commit()
        except BaseException:
            s.rollback()
            raise


def _read(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)


def _change(tx: _Tx, job: Job, state: str, at: datetime, **data: Any) -> None:
    """Move ``job`` to ``state`` and record it (in the same transaction)."""
    before = job.state
    job.state = state
    job.updated_at = at
    tx.s.add(job)
    tx.event(job.id, state, {"from": before, **{k: v for k, v in data.items() if v is not None}}, at)


def _clip(error: str | None) -> str | None:
    if error is None:
        return None
    error = error.strip()
    return error if len(error) <= MAX_ERROR else error[: MAX_ERROR - 1] + "…"


# -- submit ----------------------------------------------------------------------------


def submit(engine: Engine, *, brief: dict[str, Any], project: str, campaign: str, brief_sha256: str,
           priority: int = 50, labels: dict[str, str] | None = None, idempotency_key: str | None = None,
           request_sha256: str, max_attempts: int = 3, dry_run: bool = False) -> tuple[Job, bool]:
    """Queue a job; returns (job, created). The job is committed before this returns. The
    same ``idempotency_key`` with the same ``request_sha256`` gives back the job it made
    (created False); with another request it raises IdempotencyConflict."""
    if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 100:
        raise StudioError(f"priority {quote(priority)} is out of range", fix="give a whole number from 0 to 100",
                          field="priority")
    if not isinstance(max_attempts, int) or max_attempts < 1:
        raise StudioError(f"max_attempts {quote(max_attempts)} is out of range", fix="give 1 or more",
                          field="max_attempts")
    labels = dict(labels or {})
    if idempotency_key is not None:
        found = _by_key(engine, idempotency_key, request_sha256)
        if found is not None:
            return found, False
    try:
        with _tx(engine) as tx:
            if idempotency_key is not None:
                # Under the write lock (SQLite) this read is final; on PostgreSQL the unique
                # constraint decides between simultaneous inserts (below).
                existing = tx.s.exec(select(Job).where(Job.idempotency_key == idempotency_key)).first()
                if existing is not None:
                    _check_same(existing, idempotency_key, request_sha256)
                    return existing, False
            at = now()
            job = Job(id=new_id("job"), project=project, campaign=campaign, brief=brief,
                      brief_sha256=brief_sha256, state="queued", priority=priority, labels=labels,
                      dry_run=dry_run, idempotency_key=idempotency_key, request_sha256=request_sha256,
                      max_attempts=max_attempts, created_at=at, updated_at=at, queued_at=at)
            tx.s.add(job)
            tx.s.flush()  # the unique key is checked here, before the event is written
            tx.event(job.id, "queued", {"from": None, "reason": "submitted", "priority": priority}, at)
        return job, True
    except IntegrityError:
        if idempotency_key is None:
            raise
        # Another caller committed the same key first: theirs is the job.
        found = _by_key(engine, idempotency_key, request_sha256)
        if found is None:
            raise
        return found, False


def _check_same(job: Job, key: str, request_sha256: str) -> None:
    if job.request_sha256 != request_sha256:
        raise IdempotencyConflict(
            f"{quote(key)} was already used for another request (job {job.id})",
            fix="send the same request again to get that job, or use a new key for a new job",
            field="Idempotency-Key")


def _by_key(engine: Engine, key: str, request_sha256: str) -> Job | None:
    with _read(engine) as s:
        job = s.exec(select(Job).where(Job.idempotency_key == key)).first()
    if job is not None:
        _check_same(job, key, request_sha256)
    return job


# -- claim, heartbeat, finish ----------------------------------------------------------


def _effective_order(dialect: str) -> Any:
    """Smallest first = best: the queued time in seconds less the priority's worth of
    ageing. (priority + minutes waited × AGEING_PER_MINUTE, largest first, is the same
    order, since "now" is common to every row.)"""
    per_point = 60.0 / AGEING_PER_MINUTE
    if dialect == "postgresql":
        seconds = func.extract("epoch", Job.queued_at)
    else:  # SQLite stores "YYYY-MM-DD HH:MM:SS.ffffff" in UTC
        seconds = func.julianday(Job.queued_at) * 86400.0
    return seconds - Job.priority * per_point


def claim(engine: Engine, worker: str, lease_seconds: float) -> Claim | None:
    """Take the best queued job (priority with ageing, then the longest queued), mark it
    running and lease it to ``worker`` for ``lease_seconds``; None when nothing is queued."""
    with _tx(engine) as tx:
        query = (select(Job).where(Job.state == "queued")
                 .order_by(_effective_order(engine.dialect.name), Job.queued_at, Job.id).limit(1))
        job = tx.s.exec(tx.lock(query, skip_locked=True)).first()
        if job is None:
            return None
        at = now()
        n = tx.s.exec(select(func.count()).select_from(JobAttempt)
                      .where(JobAttempt.job_id == job.id)).one() + 1
        attempt = JobAttempt(job_id=job.id, n=n, state="running", worker=worker,
                             lease_token=secrets.token_hex(16),
                             lease_expires_at=at + timedelta(seconds=lease_seconds),
                             heartbeat_at=at, started_at=at)
        tx.s.add(attempt)
        tx.s.flush()
        job.error = None
        _change(tx, job, "running", at, attempt=n, worker=worker)
        return Claim(job_id=job.id, attempt_id=attempt.id, lease_token=attempt.lease_token,  # type: ignore[arg-type]
                     brief=job.brief, out_dir=job.out_dir, n=n, project=job.project,
                     campaign=job.campaign, lease_expires_at=attempt.lease_expires_at, steer=dict(job.steer or {}))


def _held(tx: _Tx, lease_token: str, at: datetime) -> tuple[JobAttempt, Job] | None:
    """The attempt and its job, locked, when ``lease_token`` is a running attempt's lease
    that has not expired; else None."""
    attempt = tx.s.exec(tx.lock(select(JobAttempt).where(JobAttempt.lease_token == lease_token))).first()
    if attempt is None or attempt.state != "running" or _utc(attempt.lease_expires_at) < at:
        return None
    job = tx.s.exec(tx.lock(select(Job).where(Job.id == attempt.job_id))).one()
    return attempt, job


def heartbeat_status(engine: Engine, lease_token: str, lease_seconds: float) -> str:
    """Extend the lease; "held", "canceling" (extended so the worker can stop cleanly
    and finish "canceled", but it must stop), "suspending" (the same, and it gives the
    lease back with ``interrupt``: the job becomes suspended) or "lost" (lapsed, requeued or finished:
    the worker must stop and publish nothing)."""
    with _tx(engine) as tx:
        at = now()
        held = _held(tx, lease_token, at)
        if held is None:
            return "lost"
        attempt, job = held
        attempt.heartbeat_at = at
        attempt.lease_expires_at = at + timedelta(seconds=lease_seconds)
        tx.s.add(attempt)
        if job.cancel_requested:
            return "canceling"
        return "suspending" if job.state == "suspending" else "held"


def heartbeat(engine: Engine, lease_token: str, lease_seconds: float) -> bool:
    """Extend the lease; False when the worker must stop (lease lost, or cancel asked)."""
    return heartbeat_status(engine, lease_token, lease_seconds) == "held"


def holds_lease(engine: Engine, lease_token: str) -> bool:
    """Whether the lease is still this worker's to publish with: running, not expired and
    no cancel asked for."""
    with _read(engine) as s:
        attempt = s.exec(select(JobAttempt).where(JobAttempt.lease_token == lease_token)).first()
        if attempt is None or attempt.state != "running" or _utc(attempt.lease_expires_at) < now():
            return False
        job = s.get(Job, attempt.job_id)
        # A suspending job that finished before its worker saw the suspend is published:
        # the work is done, and suspending asked only to stop doing it.
        return job is not None and job.state in ("running", "suspending") and not job.cancel_requested


def finish(engine: Engine, lease_token: str, state: str, *, error: str | None = None,
           run_id: str | None = None, out_dir: str | None = None, release: dict[str, Any] | None = None) -> bool:
    """End the attempt as ``state`` (succeeded | failed | canceled). A failed attempt
    counts against ``max_attempts``: the job is queued again while it has attempts left,
    else failed with ``error``. A job whose cancel was asked for ends canceled whatever
    the attempt's outcome. False, and nothing changed, when the lease was lost."""
    if state not in ("succeeded", "failed", "canceled"):
        raise ValueError(f"finish state must be succeeded, failed or canceled, not {state!r}")
    error = _clip(error)
    with _tx(engine) as tx:
        at = now()
        held = _held(tx, lease_token, at)
        if held is None:
            return False
        attempt, job = held
        attempt.state = state
        attempt.finished_at = at
        attempt.error = error
        tx.s.add(attempt)
        if run_id is not None:
            job.run_id = run_id
        if job.cancel_requested or state == "canceled":
            job.error = None
            _change(tx, job, "canceled", at, attempt=attempt.n, outcome=state)
        elif state == "succeeded":
            job.error = None
            if out_dir is not None:
                job.out_dir = out_dir
            # What it delivered (studio.gates: the release hash, each beat's candidates and
            # selection), kept where a gate's would be: a pick after delivery starts from it.
            job.gate = release
            _change(tx, job, "succeeded", at, attempt=attempt.n, run_id=run_id)
        else:
            job.failures += 1
            job.error = error
            if job.failures < job.max_attempts and job.state == "suspending":
                # failed on its own before its worker saw the suspend: put aside, not queued
                _change(tx, job, "suspended", at, attempt=attempt.n, error=error, failures=job.failures,
                        max_attempts=job.max_attempts)
            elif job.failures < job.max_attempts:
                job.queued_at = at  # behind what waited meanwhile; ageing brings it back
                _change(tx, job, "queued", at, attempt=attempt.n, reason="retry", error=error,
                        failures=job.failures, max_attempts=job.max_attempts)
            else:
                _change(tx, job, "failed", at, attempt=attempt.n, error=error, failures=job.failures,
                        max_attempts=job.max_attempts)
        return True


def _interrupt(tx: _Tx, attempt: JobAttempt, job: Job, at: datetime, reason: str) -> None:
    """The attempt ended without an outcome: not the job's fault, so no failure counts."""
    suspending = job.state == "suspending"  # its worker gave the lease back to suspend it
    attempt.state = "interrupted"
    attempt.finished_at = at
    attempt.error = reason
    tx.s.add(attempt)
    _change(tx, job, "interrupted", at, attempt=attempt.n, worker=attempt.worker, reason=reason)
    if job.cancel_requested:  # canceling, and the worker is gone: nothing left to stop
        _change(tx, job, "canceled", at, attempt=attempt.n)
    elif suspending:  # put aside until resumed; resume queues it
        _change(tx, job, "suspended", at, attempt=attempt.n)
    else:  # keeps its queued_at: it waited its turn already
        _change(tx, job, "queued", at, attempt=attempt.n, reason="interrupted")


def requeue_lapsed(engine: Engine, now: datetime | None = None) -> list[str]:
    """Attempts whose lease expired become ``interrupted`` and their jobs ``queued``
    again (``canceled`` if a cancel was waiting), without counting a failure; the jobs'
    ids. ``now`` (tests) stands for the current time."""
    at = _utc(now or _now())
    with _tx(engine) as tx:
        lapsed = tx.s.exec(tx.lock(
            select(JobAttempt).where(JobAttempt.state == "running", JobAttempt.lease_expires_at < at)
            .order_by(JobAttempt.id), skip_locked=True)).all()
        moved = []
        for attempt in lapsed:
            job = tx.s.exec(tx.lock(select(Job).where(Job.id == attempt.job_id))).one()
            expired = _utc(attempt.lease_expires_at).isoformat(timespec="seconds")
            _interrupt(tx, attempt, job, at, f"the lease of worker {attempt.worker} lapsed at {expired} "
                                             "(no heartbeat: the worker died or hung)")
            moved.append(job.id)
        return moved


def interrupt(engine: Engine, lease_token: str, reason: str) -> bool:
    """Give a lease back without an outcome (a worker shutting down): the attempt is
    ``interrupted`` and the job queued again at once, no failure counted. False when the
    lease was lost already."""
    with _tx(engine) as tx:
        at = _now()
        held = _held(tx, lease_token, at)
        if held is None:
            return False
        _interrupt(tx, *held, at, reason)
        return True


# -- cancel ----------------------------------------------------------------------------


def cancel(engine: Engine, job_id: str) -> Job:
    """Ask for the job to stop. Queued, suspended or at a human gate: canceled at once. Running: canceling (the worker
    sees it on its next heartbeat, stops, and finishes it canceled). Canceling or final:
    unchanged. Only this job is touched. UnknownJob when there is no such job."""
    with _tx(engine) as tx:
        job = tx.s.exec(tx.lock(select(Job).where(Job.id == job_id))).first()
        if job is None:
            raise UnknownJob(f"no job {quote(job_id)}", fix="list jobs to find its id", field="job_id")
        at = _now()
        if job.state in ("queued", "suspended") or job.state in GATED:
            # No worker holds it (a gated job waits on a person): canceled at once.
            job.cancel_requested = True
            _change(tx, job, "canceled", at)
        elif job.state in ("running", "suspending"):  # suspending: its worker is stopping it anyway
            job.cancel_requested = True
            _change(tx, job, "canceling", at)
        return job


# -- reading ---------------------------------------------------------------------------


def get(engine: Engine, job_id: str) -> Job | None:
    with _read(engine) as s:
        return s.get(Job, job_id)


def attempts(engine: Engine, job_id: str) -> list[JobAttempt]:
    """The job's attempts, first first."""
    with _read(engine) as s:
        return list(s.exec(select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.n)).all())  # type: ignore[arg-type]


def _encode_cursor(job: Job) -> str:
    raw = json.dumps([_utc(job.created_at).isoformat(), job.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, job_id = json.loads(raw)
        return _utc(datetime.fromisoformat(at)), str(job_id)
    except (ValueError, TypeError, binascii.Error):
        raise StudioError(f"cursor {quote(cursor)} is not one this server gave out",
                          fix="pass the next_cursor of the previous page unchanged", field="cursor") from None


def list_jobs(engine: Engine, *, state: str | Sequence[str] | None = None, project: str | None = None,
              label: str | tuple[str, str] | None = None, limit: int = 50,
              cursor: str | None = None) -> tuple[list[Job], str | None]:
    """Jobs newest first (by created_at, then id: stable while jobs are added), filtered
    by state (one or several), project and label ("key=value" or (key, value)); and the
    cursor of the next page, None on the last."""
    query = select(Job)
    if state is not None:
        states = [state] if isinstance(state, str) else list(state)
        query = query.where(Job.state.in_(states))  # type: ignore[attr-defined]
    if project is not None:
        query = query.where(Job.project == project)
    if label is not None:
        if isinstance(label, str):
            key, sep, value = label.partition("=")
            if not sep or not key:
                raise StudioError(f"label filter {quote(label)} is not key=value",
                                  fix="filter by one label as key=value", field="label")
        else:
            key, value = label
        query = query.where(Job.labels[key].as_string() == value)  # type: ignore[index]
    if cursor is not None:
        at, job_id = _decode_cursor(cursor)
        query = query.where(or_(Job.created_at < at, and_(Job.created_at == at, Job.id < job_id)))  # type: ignore[arg-type]
    limit = max(1, min(int(limit), 1000))
    with _read(engine) as s:
        rows = list(s.exec(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)).all())  # type: ignore[attr-defined]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (_encode_cursor(rows[-1]) if more and rows else None)


def events(engine: Engine, job_id: str | None, after_id: int = 0, limit: int = 500, *,
           project: str | None = None) -> list[JobEvent]:
    """Events after ``after_id`` (the Last-Event-ID), oldest first: one job's, or all
    jobs' when ``job_id`` is None; only ``project``'s jobs' when it is given (an API
    token sees its own project only)."""
    query = select(JobEvent).where(JobEvent.id > after_id)  # type: ignore[operator]
    if job_id is not None:
        query = query.where(JobEvent.job_id == job_id)
    if project is not None:
        query = query.join(Job, JobEvent.job_id == Job.id).where(Job.project == project)  # type: ignore[arg-type]
    with _read(engine) as s:
        return list(s.exec(query.order_by(JobEvent.id).limit(limit)).all())  # type: ignore[arg-type]


def append_events(engine: Engine, job_id: str, items: Sequence[tuple[str, dict[str, Any]]]) -> list[int]:
    """Append events that change no state (a worker's progress); their ids."""
    if not items:
        return []
    with _tx(engine) as tx:
        for type_, data in items:
            tx.event(job_id, type_, data)
        added = tx.flush_events()
        return [e.id for e in added]  # type: ignore[misc]


# -- job controls: retry, suspend, resume, priority (issue 11) -----------------------------
#
# Each takes the job's row lock, checks the state it applies to and moves the job with its
# event in one transaction; a job in a state the control does not apply to raises
# WrongState (the API's 409) naming what to do instead. ``by`` (who asked: a token's name
# and id) and ``note`` (why) go into the event.


class WrongState(StudioError):
    """The job is in a state this control does not apply to (the API's 409)."""


def _locked_job(tx: _Tx, job_id: str) -> Job:
    job = tx.s.exec(tx.lock(select(Job).where(Job.id == job_id))).first()
    if job is None:
        raise UnknownJob(f"no job {quote(job_id)}", fix="list jobs to find its id", field="job_id")
    return job


def _wrong(job: Job, control: str, applies: str, fix: str) -> WrongState:
    return WrongState(f"job {job.id} is {job.state}; {control} is for a job that is {applies}", fix=fix,
                      field="state")


def _gate_fix(job: Job) -> str:
    if job.state == "blocked":
        return (f"the release gate blocked it: an approver overrides each violation (`studio override {job.id} "
                f"--rule RULE --component KIND:ID --reason TEXT`), or fix what it names and `studio retry "
                f"{job.id}`, or `studio cancel {job.id}`")
    return (f"it waits for a person: decide at its gate (`studio pick` / `studio approve`), or "
            f"`studio cancel {job.id}`")


def retry(engine: Engine, job_id: str, *, by: str | None = None, note: str | None = None) -> Job:
    """Queue a failed, canceled or blocked job again with a new retry budget (failures back
    to 0). Only what failed or was interrupted is redone: the re-run takes every finished
    step from the engine's action cache. A blocked job is retried once what its release
    gate named was fixed where the server reads it (the policy file, a licence in the
    rights ledger, a spec): its gate goes, and the render checks again. Any other state
    raises WrongState."""
    with _tx(engine) as tx:
        job = _locked_job(tx, job_id)
        if job.state not in ("failed", "canceled", "blocked"):
            if job.state == "succeeded":
                fix = "nothing failed; submit the brief again (a new job) to render it anew"
            elif job.state in GATED:
                fix = _gate_fix(job)
            elif job.state == "suspended":
                fix = f"resume it instead: `studio resume {job.id}`"
            else:
                fix = f"wait until it has finished (`studio job {job.id}`); retry it if it failed"
            raise _wrong(job, "retry", "failed, canceled or blocked", fix)
        at = _now()
        if job.state == "blocked":
            job.gate = None
        before = {"failures": job.failures, "error": job.error}
        job.failures = 0
        job.cancel_requested = False
        job.error = None
        job.queued_at = at  # a new submission, as far as the queue's order goes
        _change(tx, job, "queued", at, reason="retried", by=by, note=note,
                previous_failures=before["failures"], previous_error=before["error"],
                max_attempts=job.max_attempts)
        return job


def suspend(engine: Engine, job_id: str, *, by: str | None = None, note: str | None = None) -> Job:
    """Put a job aside until ``resume``. Queued or at a gate: suspended at once. Running:
    suspending (two-phase, like cancel: its worker sees it on its next heartbeat, stops
    the render and gives the lease back, and the job becomes suspended; finished steps
    stay in the cache). Suspending or suspended: unchanged. Canceling or final: WrongState."""
    with _tx(engine) as tx:
        job = _locked_job(tx, job_id)
        at = _now()
        if job.state == "queued" or job.state in GATED:
            _change(tx, job, "suspended", at, by=by, note=note)
        elif job.state == "running":
            _change(tx, job, "suspending", at, by=by, note=note)
        elif job.state not in ("suspending", "suspended"):
            fix = ("it is being canceled" if job.state == "canceling"
                   else f"it has finished; `studio retry {job.id}` queues a failed or canceled job again")
            raise _wrong(job, "suspend", "queued, running or waiting at a gate", fix)
        return job


def resume(engine: Engine, job_id: str, *, by: str | None = None, note: str | None = None) -> Job:
    """Queue a suspended job again (its place in the queue counts from now: ageing starts
    over). Queued or running already: unchanged. Suspending: WrongState (wait until its
    worker has stopped); gated or final: WrongState."""
    with _tx(engine) as tx:
        job = _locked_job(tx, job_id)
        if job.state == "suspended":
            at = _now()
            job.queued_at = at
            _change(tx, job, "queued", at, reason="resumed", by=by, note=note)
        elif job.state not in ("queued", "running"):
            if job.state == "suspending":
                fix = f"wait until its worker has stopped it (`studio job {job.id}` says suspended), then resume it"
            elif job.state in GATED:
                fix = _gate_fix(job)
            elif job.state == "failed" or job.state == "canceled":
                fix = f"`studio retry {job.id}` queues it again"
            else:
                fix = "it has finished; nothing to resume"
            raise _wrong(job, "resume", "suspended", fix)
        return job


def set_priority(engine: Engine, job_id: str, priority: int, *, by: str | None = None) -> Job:
    """Change the priority (0-100) of a job that has not finished; a ``priority`` event
    says from what to what and who. The same priority again changes nothing."""
    if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 100:
        raise StudioError(f"priority {quote(priority)} is out of range", fix="give a whole number from 0 to 100",
                          field="priority")
    with _tx(engine) as tx:
        job = _locked_job(tx, job_id)
        if job.state in FINAL:
            raise _wrong(job, "a priority change", "not finished",
                         "it has finished; a priority matters only while a job waits or runs")
        if job.priority != priority:
            at = _now()
            tx.event(job.id, "priority", {"from": job.priority, "to": priority,
                                          **({"by": by} if by else {})}, at)
            job.priority = priority
            job.updated_at = at
            tx.s.add(job)
        return job


def last_event_id(engine: Engine, project: str | None = None) -> int:
    """The newest event's id (of ``project``'s jobs when given), 0 when there is none: where a
    page that has just shown the jobs starts following their stream."""
    query = select(func.max(JobEvent.id))
    if project is not None:
        query = query.join(Job, JobEvent.job_id == Job.id).where(Job.project == project)  # type: ignore[arg-type]
    with _read(engine) as s:
        return int(s.exec(query).one() or 0)
