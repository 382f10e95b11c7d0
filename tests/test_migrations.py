"""Alembic migrations: the previous release's databases are adopted in place, simultaneous
first starts migrate one at a time, and the migrated schema is exactly what the models say,
on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import Session, SQLModel, select

from studio import db
from studio.errors import StudioError

ROOT = Path(__file__).resolve().parent.parent
# The last release that made its tables with create_all.
RELEASE = "f8d95c3"
HEAD = ScriptDirectory.from_config(db.alembic_config()).get_current_head()


def _fresh_pg(base: str, name: str) -> str:
    """A new, empty database on the test server (as tests/test_db.py makes them)."""
    name = f"m_{name.lower().replace('-', '_')[-40:]}"
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
        c.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'studio.db'}"
    return _fresh_pg(request.getfixturevalue("postgres_url"), tmp_path.name)


def _versions(engine: sqlalchemy.Engine) -> list[str]:
    with engine.connect() as c:
        return [r[0] for r in c.exec_driver_sql("SELECT version_num FROM alembic_version")]


def _schema_diff(engine: sqlalchemy.Engine) -> list:
    with engine.connect() as c:
        return compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}),
                                SQLModel.metadata)


# -- a database the previous release made ----------------------------------------------

# Run in its own interpreter: the released models would clash with studio.db's on
# SQLModel's one metadata.
_RELEASED = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("released_db", sys.argv[1])
old = importlib.util.module_from_spec(spec)
sys.modules["released_db"] = old
spec.loader.exec_module(old)
from sqlmodel import Session
engine = old.make_engine(sys.argv[2])
old.init_db(engine)  # create_all, as the release did
with Session(engine) as s:
    p = old.get_or_create_project(s, "aurora")
    bv = old.record_brief(s, p, "spring", "a" * 64, {"schema": "Brief.1"}, "Brief.1", "/b.yaml")
    s.add(old.Run(id="run_1", brief_version_id=bv.id, settings={"k": [1, 2]}))
    s.add(old.PromptRecordRow(hash="p" * 64, beat_id="b1", document={"positive": "x"}))
    s.flush()
    s.add(old.Shot(id="run_1-b1", run_id="run_1", beat_id="b1", kind="video", position=0,
                   duration=2.0, rate="30000/1001", frames=60, handles=12, focus_x=0.3,
                   focus_y=0.5, prompt_hash="p" * 64))
    s.commit()
engine.dispose()
"""


def _released_db_source(tmp_path: Path) -> Path:
    proc = subprocess.run(["git", "show", f"{RELEASE}:studio/db.py"], cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        msg = f"git show {RELEASE}:studio/db.py failed (a shallow clone?): {proc.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    path = tmp_path / "released_db.py"
    path.write_text(proc.stdout, encoding="utf-8")
    return path


def test_previous_release_database_is_upgraded_in_place(url: str, tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-c", _RELEASED, str(_released_db_source(tmp_path)), url],
                   check=True, cwd=tmp_path)
    engine = db.make_engine(url)
    try:
        with engine.connect() as c:
            assert "alembic_version" not in sqlalchemy.inspect(c).get_table_names()
        db.init_db(engine)
        assert _versions(engine) == [HEAD]
        with Session(engine) as s:
            shot = s.get(db.Shot, "run_1-b1")
            assert shot is not None and shot.rate == "30000/1001" and shot.handles == 12
            run = s.get(db.Run, "run_1")
            assert run is not None and run.settings == {"k": [1, 2]}
            bv = s.exec(select(db.BriefVersion)).one()
            assert (bv.version, bv.document) == (1, {"schema": "Brief.1"})
            # and the adopted database takes new rows
            assert db.record_brief(s, db.get_or_create_project(s, "aurora"), "spring", "b" * 64,
                                   {}, "Brief.1", "").version == 2
            s.commit()
        assert _schema_diff(engine) == []
        db.init_db(engine)  # a second start changes nothing
        assert _versions(engine) == [HEAD]
    finally:
        engine.dispose()


# -- the migrated schema is the models' -------------------------------------------------


def test_migrated_schema_matches_the_models(url: str) -> None:
    engine = db.make_engine(url)
    try:
        db.init_db(engine)
        assert _versions(engine) == [HEAD]
        assert _schema_diff(engine) == []
    finally:
        engine.dispose()


_COMPARE_RELEASED = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("released_db", sys.argv[1])
old = importlib.util.module_from_spec(spec)
sys.modules["released_db"] = old
spec.loader.exec_module(old)
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
engine = old.make_engine(sys.argv[2])
with engine.connect() as c:
    diff = compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}),
                            old.SQLModel.metadata)
print(repr(diff))
sys.exit(1 if diff else 0)
"""


def test_baseline_is_the_released_schema(url: str, tmp_path: Path) -> None:
    """The baseline revision alone makes what the released models declare: a database the
    release made is stamped at it as it is, so the two must not differ."""
    from alembic import command

    command.upgrade(db.alembic_config(url), db.BASELINE_REVISION)  # env.py's own engine
    engine = db.make_engine(url)
    assert _versions(engine) == [db.BASELINE_REVISION]
    assert _tables(engine) == {*db.BASELINE_TABLES, "alembic_version"}
    engine.dispose()
    proc = subprocess.run([sys.executable, "-c", _COMPARE_RELEASED,
                           str(_released_db_source(tmp_path)), url],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- simultaneous first starts -----------------------------------------------------------


def _first_start(url: str, go, failures) -> None:  # type: ignore[no-untyped-def]
    try:
        go.wait(120)
        engine = db.make_engine(url)
        db.init_db(engine)
        engine.dispose()
    except BaseException:
        failures.put(traceback.format_exc())
        raise


def test_seven_simultaneous_first_starts(url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    go, failures = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_first_start, args=(url, go, failures)) for _ in range(7)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # let the interpreters import, so they all start at once
    go.set()
    for p in procs:
        p.join(180)
    tracebacks = []
    while not failures.empty():
        tracebacks.append(failures.get())
    assert not tracebacks, "\n".join(tracebacks)
    assert [p.exitcode for p in procs] == [0] * 7
    engine = db.make_engine(url)
    try:
        assert _versions(engine) == [HEAD]  # one row: migrated once
        assert _schema_diff(engine) == []
    finally:
        engine.dispose()


def _tables(engine: sqlalchemy.Engine) -> set[str]:
    with engine.connect() as c:
        return set(sqlalchemy.inspect(c).get_table_names())


def _wait_blocked(engine: sqlalchemy.Engine) -> tuple[threading.Thread, list[BaseException]]:
    """init_db started in a thread; returned once it has had time to run were it not held."""
    errors: list[BaseException] = []

    def start() -> None:
        try:
            db.init_db(engine)
        except BaseException as e:  # noqa: BLE001 (reported by the test)
            errors.append(e)

    t = threading.Thread(target=start, daemon=True)
    t.start()
    t.join(1.5)
    return t, errors


def test_sqlite_migration_waits_for_the_lock(tmp_path: Path) -> None:
    """Deterministic half of the race above: while another process holds the lock file,
    init_db makes nothing; once it is released, it migrates."""
    path = tmp_path / "studio.db"
    engine = db.make_engine(f"sqlite:///{path}")
    fd = os.open(path.with_name("studio.db.migrate-lock"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        t, errors = _wait_blocked(engine)
        assert t.is_alive() and not errors
        assert not path.exists() or not _tables(engine)
    finally:
        os.close(fd)
    t.join(60)
    assert not t.is_alive() and not errors
    assert _versions(engine) == [HEAD]
    engine.dispose()


@pytest.mark.postgres
def test_postgres_migration_waits_for_the_advisory_lock(postgres_url: str, tmp_path: Path) -> None:
    url = _fresh_pg(postgres_url, tmp_path.name)
    engine = db.make_engine(url)
    holder = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with holder.connect() as c:
        c.exec_driver_sql(f"SELECT pg_advisory_lock({db.PG_MIGRATION_LOCK})")
        t, errors = _wait_blocked(engine)
        assert t.is_alive() and not errors
        assert not _tables(engine)
        c.exec_driver_sql(f"SELECT pg_advisory_unlock({db.PG_MIGRATION_LOCK})")
        t.join(60)
    holder.dispose()
    assert not t.is_alive() and not errors
    assert _versions(engine) == [HEAD]
    engine.dispose()


# -- databases it must not touch ---------------------------------------------------------


def test_half_made_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "studio.db"
    engine = db.make_engine(f"sqlite:///{path}")
    SQLModel.metadata.tables["project"].create(engine)
    with pytest.raises(StudioError) as err:
        db.init_db(engine)
    line = err.value.line()
    assert str(path) in line and "(project) but not pointer" in line and "half-made" in line
    assert "alembic_version" not in _tables(engine)
    engine.dispose()


def test_database_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "studio.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.init_db(engine)
    with engine.begin() as c:
        c.exec_driver_sql("UPDATE alembic_version SET version_num = 'fffffffff'")
    with pytest.raises(StudioError) as err:
        db.init_db(engine)
    assert "revision 'fffffffff', which this Studio does not know" in err.value.line()
    assert "newer" in err.value.line() and str(path) in err.value.line()
    engine.dispose()
