"""The database: what was made, from what, and why.

sqlmodel tables on any SQLAlchemy URL: SQLite by default, PostgreSQL in production (the
same code; tests run it against a real server). Rows that describe a made thing
(briefs, prompt records, candidates, scores, renders, timelines, deliverables) are
immutable versions: written once, never updated. "selected" and "approved" are movable
pointers kept apart from what they point at, as an append-only history: the newest row
for a (name, scope) is the current value.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, event, inspect
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Field, Session, SQLModel, create_engine, select


def now() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


class Project(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(index=True, unique=True)
    created_at: datetime = Field(default_factory=now)


class BriefVersion(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("project_id", "campaign", "sha256"),)
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    campaign: str = Field(index=True)
    version: int
    sha256: str
    schema_name: str
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    source_path: str = ""
    created_at: datetime = Field(default_factory=now)


class Run(SQLModel, table=True):
    # A run is a job, not a version: its status moves from running to a final state.
    id: str = Field(primary_key=True)
    brief_version_id: int = Field(foreign_key="briefversion.id", index=True)
    # running | succeeded | failed | cancelled | interrupted (its process died: see mark_interrupted)
    status: str = "running"
    out_dir: str = ""
    code_version: str = ""
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error: str | None = None
    started_at: datetime = Field(default_factory=now)
    finished_at: datetime | None = None


class PromptRecordRow(SQLModel, table=True):
    __tablename__ = "promptrecord"
    hash: str = Field(primary_key=True)
    beat_id: str
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=now)


class Shot(SQLModel, table=True):
    id: str = Field(primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    beat_id: str = Field(index=True)
    kind: str  # video | still
    position: int
    duration: float
    rate: str  # exact rational "30000/1001"
    frames: int
    handles: int
    focus_x: float
    focus_y: float
    prompt_hash: str = Field(foreign_key="promptrecord.hash")


class Candidate(SQLModel, table=True):
    id: str = Field(primary_key=True)
    shot_id: str = Field(foreign_key="shot.id", index=True)
    index: int
    seed: int
    backend: str
    model_id: str
    weights_sha256: str | None = None
    steps: int | None = None
    width: int
    height: int
    prompt_hash: str = Field(foreign_key="promptrecord.hash", index=True)
    code_version: str
    recipe_hash: str = Field(index=True)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    media_sha256: str = Field(index=True)
    media_ext: str = ".png"
    depth_sha256: str | None = None
    worker: str = ""
    attempt: int = 1
    seconds: float = 0.0
    gpu_seconds: float = 0.0
    created_at: datetime = Field(default_factory=now)


class Score(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    candidate_id: str = Field(foreign_key="candidate.id", index=True)
    scorer: str
    total: float
    components: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    reason: str = ""
    created_at: datetime = Field(default_factory=now)


class Pointer(SQLModel, table=True):
    """Append-only history of movable pointers ("selected", "approved")."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    scope: str = Field(index=True)  # e.g. "shot:<shot id>"
    target_id: str  # a version id (candidate, render, ...)
    target_sha256: str  # and its hash: approvals never point at a pointer
    set_by: str = "auto"
    reason: str = ""
    created_at: datetime = Field(default_factory=now)


class Render(SQLModel, table=True):
    id: str = Field(primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    shot_id: str = Field(foreign_key="shot.id", index=True)
    candidate_id: str = Field(foreign_key="candidate.id")
    kind: str  # clip
    media_sha256: str = Field(index=True)
    media_ext: str
    code_version: str
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=now)


class Timeline(SQLModel, table=True):
    id: str = Field(primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    name: str
    kind: str  # edit | stills
    version: int = 1
    parent_id: str | None = None  # the edit this one was made from
    sha256: str
    path: str
    created_at: datetime = Field(default_factory=now)


class Deliverable(SQLModel, table=True):
    id: str = Field(primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    timeline_id: str | None = Field(default=None, foreign_key="timeline.id")
    spec: str = Field(index=True)
    kind: str  # video | still
    path: str
    sha256: str = Field(index=True)
    width: int
    height: int
    fps: str | None = None
    duration: float | None = None
    size: int
    code_version: str
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=now)


class AudioAsset(SQLModel, table=True):
    """Every piece of the soundtrack with its parameters and rights: a voice line (with
    its voice), the music bed, each effect cue, each stem, each channel's master."""

    id: str = Field(primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    kind: str = Field(index=True)  # voice-line | music-bed | effect-cue | stem | master
    name: str  # beat id, stem name, cue id or spec name
    beat_id: str | None = Field(default=None, index=True)
    spec: str | None = None
    sha256: str | None = Field(default=None, index=True)  # None for a cue (its file is the effect's)
    start: float | None = None  # seconds on the edit
    duration: float | None = None
    code_version: str
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    rights: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=now)


class Edge(SQLModel, table=True):
    """Lineage: ``src`` was made from ``dst`` (a deliverable from its timeline, a render
    from its candidate, a candidate from its prompt record, seed and model). Nodes are
    (kind, id): a row's id (deliverable, timeline, render, candidate, audio, run) or a
    value (a prompt hash, a seed, a model or voice id, a media sha256, a spec or style
    name). Written only by ``studio.lineage.record_run_edges``, from the rows a run wrote;
    ``run_id`` is the run whose recording made the edge."""

    __table_args__ = (
        Index("ix_edge_dst", "dst_kind", "dst_id"),  # where: walk up from a thing
        Index("ix_edge_src", "src_kind", "src_id"),  # lineage: walk down from a deliverable
    )
    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    src_kind: str
    src_id: str
    dst_kind: str
    dst_id: str
    role: str
    created_at: datetime = Field(default_factory=now)


class Licence(SQLModel, table=True):
    """The rights ledger (studio.rights): one row per licence a component carries, keyed by
    its licence id, with its record as last seen (upserted whenever a run's lineage is
    recorded) and, once revoked, when, by whom and why. What a licence reaches is found
    through the lineage edges (``licence`` nodes)."""

    licence_id: str = Field(primary_key=True)
    record: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))  # a RightsRecord
    first_seen: datetime = Field(default_factory=now)
    updated_at: datetime = Field(default_factory=now)
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    revoked_reason: str | None = None


class DeliverableBlock(SQLModel, table=True):
    """A deliverable that must not ship: a licence it uses expired or was revoked, or a
    policy rule refused it. ``licence_id`` is what the block is about (for a policy block:
    the licence or the rule). One per deliverable, licence and reason."""

    __tablename__ = "deliverable_block"
    __table_args__ = (UniqueConstraint("deliverable_id", "licence_id", "reason"),)
    id: int | None = Field(default=None, primary_key=True)
    deliverable_id: str = Field(foreign_key="deliverable.id", index=True)
    licence_id: str = Field(index=True)
    reason: str  # expired | revoked | policy
    detail: str = ""
    created_at: datetime = Field(default_factory=now)


class Action(SQLModel, table=True):
    """The action cache (studio.cache): what an expensive step made from exactly these
    inputs. ``key`` is the sha256 of the canonical JSON of (stage, code version, inputs);
    ``outputs`` are store references and small numbers; ``run_id`` is the run that
    computed it. Written once per key (insert-or-ignore), never updated."""

    key: str = Field(primary_key=True)
    stage: str = Field(index=True)
    code_version: str
    outputs: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    run_id: str = Field(foreign_key="run.id", index=True)
    seconds: float = 0.0
    created_at: datetime = Field(default_factory=now)


class Job(SQLModel, table=True):
    """A brief submitted to the server (studio.jobs): its queue state, moved only by
    studio.jobs, each change with a JobEvent in the same transaction."""

    __table_args__ = (Index("ix_job_created", "created_at", "id"),)  # list_jobs' cursor order
    id: str = Field(primary_key=True)  # "job_" + hex
    project: str = Field(index=True)
    campaign: str
    brief: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))  # as submitted, parsed
    brief_sha256: str
    # queued | running | canceling | succeeded | failed | canceled (studio.jobs.STATES)
    state: str = Field(index=True)
    priority: int = 50  # 0-100
    labels: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    dry_run: bool = False
    idempotency_key: str | None = Field(default=None, unique=True)
    request_sha256: str  # sha256 of the canonical request body: the key's other half
    max_attempts: int = 3
    failures: int = 0  # failed attempts only: an interrupted one is not the job's fault
    run_id: str | None = None
    out_dir: str | None = None
    error: str | None = None
    cancel_requested: bool = False
    created_at: datetime = Field(default_factory=now)
    updated_at: datetime = Field(default_factory=now)
    queued_at: datetime = Field(default_factory=now)  # ageing counts from here
    # What a job at a human gate waits on (studio.gates): the gate, the run that stopped
    # there and the content the decisions must name; None when it waits on nobody.
    gate: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # "More candidates" asked for per beat: {beat_id: [note, ...]}, each note a new round
    # of candidates with new seeds whose prompt the note steers (studio.gates).
    steer: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class JobAttempt(SQLModel, table=True):
    """One worker's lease on a job: running, then succeeded | failed | interrupted |
    canceled. Only the holder of ``lease_token`` may move it (or publish)."""

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="job.id", index=True)
    n: int  # 1, 2, ... per job
    state: str = "running"
    worker: str
    lease_token: str = Field(unique=True)
    lease_expires_at: datetime
    heartbeat_at: datetime = Field(default_factory=now)
    started_at: datetime = Field(default_factory=now)
    finished_at: datetime | None = None
    error: str | None = None


class JobEvent(SQLModel, table=True):
    """Append-only: what happened to a job. ``id`` grows in commit order (studio.jobs
    appends under a lock on PostgreSQL), so it serves as the SSE Last-Event-ID."""

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="job.id", index=True)
    type: str
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=now)


class Decision(SQLModel, table=True):
    """Append-only: a person's decision on a job at a human gate (studio.gates): a pick, an
    annotation, a request for more candidates, an approval or a rejection. Each names the
    content it was made on (``content_sha256``: the candidate's keyframe, or the release
    being signed off), so a decision on content that has changed since no longer counts."""

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="job.id", index=True)
    project: str = Field(index=True)
    kind: str  # pick | annotate | more | approve | reject (studio.gates.KINDS)
    beat: str | None = None
    candidate_id: str | None = None
    role: str | None = None  # the sign-off a decision of kind approve/reject is for: brand, legal, ...
    codes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # reason codes
    note: str = ""
    who: str  # the token (id and name) or user that decided
    content_sha256: str = ""
    frame: int | None = None  # a note pinned to a frame (0-based) of a video, at ``fps``
    fps: str | None = None
    # What a note is on when it is not a candidate: "deliverable:SPEC" (a frame of a
    # deliverable, or the animatic as "review:animatic"); None for candidates and sign-offs.
    target: str | None = None
    run_id: str | None = None  # the run whose content it was made on
    created_at: datetime = Field(default_factory=now)


class ApiToken(SQLModel, table=True):
    """An API token (studio.auth): one role on one project. The secret is shown once when
    the token is made; only its sha256 is kept, with its first characters (``prefix``) to
    find the row and to tell tokens apart in a list. A revoked token stays, for the record."""

    id: str = Field(primary_key=True)  # "tok_" + hex
    name: str = ""
    project: str = Field(index=True)
    role: str  # viewer | editor | approver | admin (studio.auth.ROLES)
    token_hash: str = Field(unique=True)  # sha256 hex of the whole secret
    prefix: str = Field(index=True)
    created_at: datetime = Field(default_factory=now)
    created_by: str = ""
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class WebhookEndpoint(SQLModel, table=True):
    """Where a project's job events are POSTed (studio.webhooks), signed as Standard Webhooks
    says. ``secrets``: [{id, secret ("whsec_" + base64), created_at, expires_at}], the newest
    last; every one not yet expired signs, so a rotated-out secret keeps working for its grace
    period. The secrets are kept as they are (signing needs them), never shown after they are
    made."""

    id: str = Field(primary_key=True)  # "whk_" + hex
    project: str = Field(index=True)
    url: str
    event_types: list[str] = Field(default_factory=lambda: ["*"], sa_column=Column(JSON, nullable=False))
    description: str = ""
    enabled: bool = True
    secrets: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=now)
    updated_at: datetime = Field(default_factory=now)


class WebhookDelivery(SQLModel, table=True):
    """The outbox: one message (one job event) to one endpoint, written in the transaction
    that wrote the event. ``id`` is the message's webhook-id, the same on every attempt and
    redelivery (receivers dedupe on it). pending -> delivered | failed (redelivery makes it
    pending again); a dispatcher's claim pushes ``next_attempt_at`` ahead by a visibility
    timeout and sets ``claim_token``, so a message whose dispatcher died is sent again."""

    __table_args__ = (Index("ix_webhookdelivery_due", "state", "next_attempt_at"),)
    id: str = Field(primary_key=True)  # "msg_" + hex
    endpoint_id: str = Field(foreign_key="webhookendpoint.id", index=True)
    event_id: int = Field(foreign_key="jobevent.id", index=True)
    job_id: str = Field(index=True)
    type: str
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    state: str = "pending"  # pending | delivered | failed
    attempts: int = 0  # every attempt ever, redeliveries included (WebhookAttempt.n)
    schedule_from: int = 0  # ``attempts`` when this round of retries began (redelivery resets it)
    next_attempt_at: datetime = Field(default_factory=now)
    claim_token: str | None = None
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    created_at: datetime = Field(default_factory=now)


class WebhookAttempt(SQLModel, table=True):
    """The delivery log: one POST of a message, with what came back."""

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: str = Field(foreign_key="webhookdelivery.id", index=True)
    n: int  # 1, 2, ... per message
    at: datetime = Field(default_factory=now)
    status: int | None = None  # the HTTP status; None when no answer came (refused, timed out)
    error: str | None = None
    duration_ms: int = 0
    response: str = ""  # the start of the answer's body


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")  # readers (studio runs) while a render writes
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


# -- schema migrations ---------------------------------------------------------------

MIGRATIONS = Path(__file__).with_name("migrations")
# The revision whose schema the previous release (f8d95c3) made with create_all, and the
# tables it made: a database holding them without an alembic_version table is that
# release's, and is stamped at the baseline before it is upgraded.
BASELINE_REVISION = "0001"
BASELINE_TABLES = ("pointer", "project", "promptrecord", "briefversion", "run", "audioasset", "shot",
                   "timeline", "candidate", "deliverable", "render", "score")
# One PostgreSQL advisory lock key for "Studio is migrating this database" (any 64-bit
# number other programs sharing the server are unlikely to pick).
PG_MIGRATION_LOCK = int.from_bytes(hashlib.sha256(b"studio.db.migrations").digest()[:8], "big",
                                   signed=True)


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Any:
    """An Alembic Config for the migrations shipped in the package (no alembic.ini).
    ``connection`` is what env.py migrates; without one it makes an engine from ``url``."""
    from alembic.config import Config

    cfg = Config()
    # Config options go through configparser: a "%" (in a path or a URL-quoted password)
    # must be doubled.
    cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _sqlite_file(engine: Engine) -> Path | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" \
            or database.startswith("file:"):
        return None  # in memory (one process) or a URI we do not parse: nothing to share
    return Path(database)


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """On a SQLite file, one process at a time: an exclusive flock on a lock file beside
    the database (SQLite's own locks do not span the checks-then-creates of a migration;
    seven simultaneous first starts raced create_all to "table shot already exists").
    PostgreSQL takes its advisory lock inside the migration's transaction (init_db)."""
    path = _sqlite_file(engine)
    if path is None:
        yield
        return
    import fcntl  # POSIX only, like the rest of Studio's runtime (Ray, ffmpeg)

    from studio.errors import StudioError

    lock = path.with_name(path.name + ".migrate-lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise StudioError(f"cannot open the database's migration lock file {lock}: {e.strerror}",
                          fix="make sure the database's folder exists and is writable "
                              "(STUDIO_HOME, or the path in STUDIO_DATABASE_URL)",
                          source=str(path)) from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by the close below, even on a crash
        yield
    finally:
        os.close(fd)


def _upgrade(connection: Connection, where: str) -> None:
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from studio.errors import StudioError

    cfg = alembic_config(connection=connection)
    current = MigrationContext.configure(connection).get_current_revision()
    if current is None:
        present = set(inspect(connection).get_table_names())
        made = [t for t in BASELINE_TABLES if t in present]
        if made:
            missing = [t for t in BASELINE_TABLES if t not in present]
            if missing:
                raise StudioError(
                    f"the database has Studio tables from an earlier release ({', '.join(made)}) "
                    f"but not {', '.join(missing)}: it was left half-made",
                    fix="restore it from a backup, or point STUDIO_DATABASE_URL (or STUDIO_HOME) "
                        "at a new database", source=where)
            # Made by the previous release with create_all: its schema is the baseline's.
            command.stamp(cfg, BASELINE_REVISION)
    else:
        known = {r.revision for r in ScriptDirectory.from_config(cfg).walk_revisions()}
        if current not in known:
            raise StudioError(
                f"the database's schema is at revision {current!r}, which this Studio does not "
                f"know: a newer release made or upgraded it",
                fix="run the Studio release that upgraded it (or newer), or point "
                    "STUDIO_DATABASE_URL (or STUDIO_HOME) at another database", source=where)
    command.upgrade(cfg, "head")


def init_db(engine: Engine) -> None:
    """Bring the database to the newest schema (``alembic upgrade head``), one process at a
    time; a database the previous release made with create_all is adopted in place."""
    where = engine.url.render_as_string(hide_password=True)
    with _migration_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Held until this transaction ends: PostgreSQL's DDL is transactional, so the
            # next process waits here and then finds the tables made and alembic_version set.
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})")
        _upgrade(conn, where)


# -- queries the CLI and pipeline share ---------------------------------------------


def get_or_create_project(session: Session, code: str) -> Project:
    p = session.exec(select(Project).where(Project.code == code)).first()
    if p is None:
        p = Project(code=code)
        session.add(p)
        session.flush()
    return p


def record_brief(session: Session, project: Project, campaign: str, sha256: str, document: dict[str, Any],
                 schema_name: str, source_path: str) -> BriefVersion:
    """The same brief content maps to the same version; a changed brief gets the next number."""
    existing = session.exec(
        select(BriefVersion).where(
            BriefVersion.project_id == project.id, BriefVersion.campaign == campaign,
            BriefVersion.sha256 == sha256,
        )
    ).first()
    if existing:
        return existing
    count = len(session.exec(
        select(BriefVersion.id).where(BriefVersion.project_id == project.id, BriefVersion.campaign == campaign)
    ).all())
    bv = BriefVersion(project_id=project.id, campaign=campaign, version=count + 1, sha256=sha256,  # type: ignore[arg-type]
                      schema_name=schema_name, document=document, source_path=source_path)
    session.add(bv)
    session.flush()
    return bv


def move_pointer(session: Session, name: str, scope: str, target_id: str, target_sha256: str,
                 set_by: str = "auto", reason: str = "") -> Pointer:
    p = Pointer(name=name, scope=scope, target_id=target_id, target_sha256=target_sha256,
                set_by=set_by, reason=reason)
    session.add(p)
    session.flush()
    return p


def current_pointer(session: Session, name: str, scope: str) -> Pointer | None:
    return session.exec(
        select(Pointer).where(Pointer.name == name, Pointer.scope == scope)
        .order_by(Pointer.id.desc())  # type: ignore[union-attr]
    ).first()


def finish_run(engine: Engine, run_id: str, error: BaseException | None = None) -> None:
    """Move a run to its final state: succeeded, gated (stopped at a human gate), or
    failed / cancelled (Ctrl-C) with the reason."""
    from studio.errors import AwaitingDecision, StudioError

    with Session(engine) as s:
        run = s.get(Run, run_id)
        if run is None:
            return
        if error is None:
            run.status = "succeeded"
        elif isinstance(error, AwaitingDecision):  # stopped at a human gate: waits, did not fail
            run.status = "gated"
            run.error = error.line()
        else:
            run.status = "cancelled" if isinstance(error, KeyboardInterrupt) else "failed"
            run.error = error.line() if isinstance(error, StudioError) else f"{type(error).__name__}: {error}"
        run.finished_at = now()
        s.add(run)
        s.commit()


def run_number(session: Session, brief_version: BriefVersion) -> int:
    """The vNNN in names: the brief's project/campaign's published (succeeded) runs plus
    one. Killed, failed and cancelled attempts published nothing, so they take no number."""
    ids = session.exec(
        select(BriefVersion.id).where(
            BriefVersion.project_id == brief_version.project_id,
            BriefVersion.campaign == brief_version.campaign,
        )
    ).all()
    published = session.exec(
        select(Run.id).where(Run.brief_version_id.in_(ids), Run.status == "succeeded")  # type: ignore[attr-defined]
    ).all()
    return len(published) + 1


# -- runs whose process is gone --------------------------------------------------------
# A run records the process that runs it (pid, host, and the pid's start time where
# /proc tells it, so a reused pid is not taken for the run's). A run still "running"
# whose process is gone on this host was killed (SIGKILL, OOM, power): it is marked
# "interrupted" rather than left running for good. Runs of other hosts are left alone:
# from here nobody can tell whether their process lives.


def this_host() -> str:
    import socket

    return socket.gethostname()


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3 onwards of /proc/PID/stat (state first), or None without /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # the name (field 2) may hold spaces


def process_started(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (Linux), or None."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def process_alive(pid: int, started: int | None = None) -> bool:
    """Whether process ``pid`` of this host lives (a zombie does not), and, given its
    recorded start time, is still the same process."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's: it exists
    fields = _proc_stat(pid)
    if fields is None:
        return True  # no /proc: kill(0) is all there is to know
    if fields[0] in ("Z", "X"):
        return False
    return started is None or len(fields) <= 19 or int(fields[19]) == started


def process_record() -> dict[str, Any]:
    """What a run records (in Run.settings) about the process that runs it."""
    pid = os.getpid()
    return {"pid": pid, "host": this_host(), "pid_started": process_started(pid)}


def run_alive(run: Run) -> bool | None:
    """Whether ``run``'s process is alive: None when that cannot be told from here
    (another host, or a run recorded before runs recorded their process)."""
    pid, host = run.settings.get("pid"), run.settings.get("host")
    if not isinstance(pid, int) or host != this_host():
        return None
    return process_alive(pid, run.settings.get("pid_started"))


def mark_interrupted(engine: Engine) -> list[str]:
    """Mark "running" runs whose process on this host is gone as "interrupted"; their ids."""
    marked = []
    with Session(engine) as s:
        for run in s.exec(select(Run).where(Run.status == "running")).all():
            if run_alive(run) is False:
                run.status = "interrupted"
                run.error = (f"the process (pid {run.settings['pid']} on {run.settings['host']}) "
                             "ended without finishing the run: it was killed")
                run.finished_at = now()
                s.add(run)
                marked.append(run.id)
        s.commit()
    return marked


def run_work_folders(engine: Engine) -> dict[str, str]:
    """The work folders runs recorded (Run.settings["work"]), each with its run's status."""
    with Session(engine) as s:
        return {run.settings["work"]: run.status for run in s.exec(select(Run)).all()
                if isinstance(run.settings.get("work"), str)}


# -- human picks -----------------------------------------------------------------------
# `studio select` appends a "selected" pointer set by "user:NAME" with the note as its
# reason. The select stage of later renders of the same project/campaign looks up the
# newest such pick per beat id and selects the candidate with the same recipe (or the
# same keyframe) among the run's own, which are new rows with new ids.

PICKED_BY = "user:"


def who() -> str:
    """The person picking: STUDIO_USER, else the OS user."""
    user = os.environ.get("STUDIO_USER", "").strip()
    if user:
        return user
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid with no passwd entry (containers)
        return f"uid {os.getuid()}"


def find_run(session: Session, run_id: str) -> Run:
    """A run by id or unique id prefix; a one-line error otherwise."""
    from studio.errors import StudioError, quote

    run = session.get(Run, run_id)
    if run is not None:
        return run
    matches = session.exec(select(Run).where(Run.id.startswith(run_id))).all() if run_id else []  # type: ignore[attr-defined]
    if len(matches) == 1:
        return matches[0]
    raise StudioError(f"no run {quote(run_id)}" if not matches else f"{quote(run_id)} matches {len(matches)} runs",
                      fix="list them with `studio runs`", field="RUN")


def pick_candidate(session: Session, run_id: str, beat_id: str, candidate_id: str, user: str,
                   note: str = "") -> tuple[Run, Shot, Candidate, Pointer]:
    """Move the "selected" pointer of RUN's BEAT to CANDIDATE, by ``user`` with ``note``."""
    from studio.errors import StudioError, quote

    run = find_run(session, run_id)
    shots = session.exec(select(Shot).where(Shot.run_id == run.id).order_by(Shot.position)).all()  # type: ignore[arg-type]
    shot = next((sh for sh in shots if sh.beat_id == beat_id), None)
    if shot is None:
        fix = (f"choose one of its beats: {', '.join(sh.beat_id for sh in shots)}" if shots
               else "this run made no shots; pick in a run that did (`studio runs`)")
        raise StudioError(f"run {run.id} has no beat {quote(beat_id)}", fix=fix, field="BEAT")
    cands = session.exec(select(Candidate).where(Candidate.shot_id == shot.id)
                         .order_by(Candidate.index)).all()  # type: ignore[arg-type]
    matches = [c for c in cands if c.id == candidate_id] or \
        ([c for c in cands if c.id.startswith(candidate_id)] if candidate_id else [])
    if len(matches) != 1:
        listed = []
        for c in cands:
            score = session.exec(select(Score).where(Score.candidate_id == c.id)).first()
            listed.append(f"{c.id} (score {score.total:.3f})" if score else c.id)
        other = session.get(Candidate, candidate_id)
        elsewhere = session.get(Shot, other.shot_id) if other is not None else None
        where = (f" (it is a candidate of beat {elsewhere.beat_id}"
                 + ("" if elsewhere.run_id == run.id else f" in run {elsewhere.run_id}") + ")"
                 if elsewhere is not None else "")
        raise StudioError(
            f"{quote(candidate_id)} is not a candidate of beat {beat_id} in run {run.id}{where}",
            fix=f"pick one of the beat's candidates: {', '.join(listed)}" if listed
            else "this beat has no candidates", field="CANDIDATE")
    cand = matches[0]
    ptr = move_pointer(session, "selected", f"shot:{shot.id}", cand.id, cand.media_sha256,
                       set_by=f"{PICKED_BY}{user}", reason=note)
    return run, shot, cand, ptr


def latest_pick(session: Session, brief_version_id: int, beat_id: str,
                exclude_run: str | None = None) -> tuple[Pointer, Candidate] | None:
    """The newest human pick for ``beat_id`` in any run of the brief version's
    project/campaign (but ``exclude_run``), with the candidate it picked."""
    bv = session.get(BriefVersion, brief_version_id)
    if bv is None:
        return None
    bv_ids = session.exec(select(BriefVersion.id).where(
        BriefVersion.project_id == bv.project_id, BriefVersion.campaign == bv.campaign)).all()
    query = (select(Shot.id).join(Run, Shot.run_id == Run.id)  # type: ignore[arg-type]
             .where(Run.brief_version_id.in_(bv_ids), Shot.beat_id == beat_id))  # type: ignore[attr-defined]
    if exclude_run is not None:
        query = query.where(Run.id != exclude_run)
    shot_ids = session.exec(query).all()
    if not shot_ids:
        return None
    ptr = session.exec(
        select(Pointer).where(Pointer.name == "selected",
                              Pointer.scope.in_([f"shot:{i}" for i in shot_ids]),  # type: ignore[attr-defined]
                              Pointer.set_by.startswith(PICKED_BY))  # type: ignore[attr-defined]
        .order_by(Pointer.id.desc())  # type: ignore[union-attr]
    ).first()
    if ptr is None:
        return None
    cand = session.get(Candidate, ptr.target_id)
    return (ptr, cand) if cand is not None else None


def pick_words(ptr: Pointer) -> str:
    """"picked by USER at TIME: NOTE", the reason a run that applies a pick records."""
    user = ptr.set_by.removeprefix(PICKED_BY)
    at = ptr.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")  # stored in UTC (db.now)
    return f"picked by {user} at {at}" + (f": {ptr.reason}" if ptr.reason.strip() else "")


class ShareLink(SQLModel, table=True):
    """A link that opens one job's review page for someone without a token (an outside
    reviewer): one role on one job, until it expires or is revoked. Only the secret's
    sha256 is kept (studio.sessions)."""

    id: str = Field(primary_key=True)  # "shr_" + hex
    secret_hash: str = Field(unique=True)
    job_id: str = Field(foreign_key="job.id", index=True)
    project: str = Field(index=True)
    role: str  # viewer | editor | approver
    name: str = ""  # who it is for, e.g. "legal: Jo at the agency"
    created_by: str = ""
    created_at: datetime = Field(default_factory=now)
    expires_at: datetime
    revoked_at: datetime | None = None


class WebSession(SQLModel, table=True):
    """A signed-in review page (studio.sessions): the cookie holds a random secret, the row
    its sha256, the token or share link it was opened with, and when it ends."""

    id: str = Field(primary_key=True)  # sha256 hex of the cookie's secret
    token_id: str | None = Field(default=None, foreign_key="apitoken.id", index=True)
    share_id: str | None = Field(default=None, foreign_key="sharelink.id", index=True)
    name: str = ""
    project: str
    role: str
    job_id: str | None = None  # a share link's one job
    created_at: datetime = Field(default_factory=now)
    expires_at: datetime
    revoked_at: datetime | None = None


class PolicyOverride(SQLModel, table=True):
    """Append-only: an approver's recorded sign-off that one policy rule may be broken by one
    component (``component`` as "kind:id", e.g. model:flux-dev) in one scope (a brief's name
    or a job id), with the reason, until ``expires`` (the last day it counts; None: no end).
    studio.policy.record_override writes it; a policy report shows it on the violation."""

    __tablename__ = "policy_override"
    id: int | None = Field(default=None, primary_key=True)
    rule: str  # a studio.policy.RULES id, e.g. licence.territory
    component: str
    scope: str = Field(index=True)
    approver: str
    role: str = "legal"
    reason: str
    created_at: datetime = Field(default_factory=now)
    expires: date | None = None
