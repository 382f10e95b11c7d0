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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint, event, inspect
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
    status: str = "running"  # running | succeeded | failed | cancelled
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
    """Move a run to its final state: succeeded, or failed / cancelled (Ctrl-C) with the reason."""
    from studio.errors import StudioError

    with Session(engine) as s:
        run = s.get(Run, run_id)
        if run is None:
            return
        if error is None:
            run.status = "succeeded"
        else:
            run.status = "cancelled" if isinstance(error, KeyboardInterrupt) else "failed"
            run.error = error.line() if isinstance(error, StudioError) else f"{type(error).__name__}: {error}"
        run.finished_at = now()
        s.add(run)
        s.commit()


def run_number(session: Session, brief_version: BriefVersion) -> int:
    """How many runs the brief's project/campaign has had (this one included): the vNNN in names."""
    ids = session.exec(
        select(BriefVersion.id).where(
            BriefVersion.project_id == brief_version.project_id,
            BriefVersion.campaign == brief_version.campaign,
        )
    ).all()
    return len(session.exec(select(Run.id).where(Run.brief_version_id.in_(ids))).all())  # type: ignore[attr-defined]
