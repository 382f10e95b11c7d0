"""The same sqlmodel code against SQLite and a real PostgreSQL server on loopback."""

from __future__ import annotations

import pytest
import sqlalchemy
from sqlmodel import Session, select

from studio import db


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'studio.db'}"
    else:
        base = request.getfixturevalue("postgres_url")
        # a fresh database per test keeps them independent
        name = f"t_{tmp_path.name.lower().replace('-', '_')[-40:]}"
        admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
            c.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = base.rsplit("/", 1)[0] + f"/{name}"
    eng = db.make_engine(url)
    db.init_db(eng)
    yield eng
    eng.dispose()


def _seed(s: Session) -> tuple[db.BriefVersion, db.Run, db.Shot]:
    p = db.get_or_create_project(s, "aurora")
    bv = db.record_brief(s, p, "spring", "a" * 64, {"schema": "Brief.1", "x": 1}, "Brief.1", "/b.yaml")
    run = db.Run(id=db.new_id("run"), brief_version_id=bv.id, settings={"k": [1, 2]})
    s.add(run)
    s.add(db.PromptRecordRow(hash="p" * 64, beat_id="b1", document={"positive": "x"}))
    s.flush()
    shot = db.Shot(id=f"{run.id}-b1", run_id=run.id, beat_id="b1", kind="video", position=0, duration=2.0,
                   rate="30000/1001", frames=60, handles=12, focus_x=0.3, focus_y=0.5, prompt_hash="p" * 64)
    s.add(shot)
    s.flush()
    return bv, run, shot


def test_brief_versions(engine) -> None:
    with Session(engine) as s:
        p = db.get_or_create_project(s, "aurora")
        v1 = db.record_brief(s, p, "spring", "a" * 64, {"v": 1}, "Brief.1", "")
        again = db.record_brief(s, p, "spring", "a" * 64, {"v": 1}, "Brief.1", "")
        v2 = db.record_brief(s, p, "spring", "b" * 64, {"v": 2}, "Brief.1", "")
        other = db.record_brief(s, p, "autumn", "a" * 64, {"v": 1}, "Brief.1", "")
        s.commit()
        assert (v1.version, again.id, v2.version, other.version) == (1, v1.id, 2, 1)
        assert s.get(db.BriefVersion, v2.id).document == {"v": 2}


def test_candidates_scores_and_pointer_history(engine) -> None:
    with Session(engine) as s:
        _, run, shot = _seed(s)
        ids = []
        for i in range(3):
            c = db.Candidate(id=db.new_id("cand"), shot_id=shot.id, index=i, seed=100 + i, backend="procedural",
                             model_id="procedural", width=64, height=64, prompt_hash="p" * 64,
                             code_version="procedural.1", recipe_hash=f"{i}" * 64,
                             params={"steps": None, "scene": "hills"}, media_sha256=f"{i}" * 64)
            s.add(c)
            s.flush()
            s.add(db.Score(candidate_id=c.id, scorer="h", total=0.5 + i / 10, components={"palette": 0.9}, reason="r"))
            ids.append(c.id)
        db.move_pointer(s, "selected", f"shot:{shot.id}", ids[2], "2" * 64, reason="auto: top")
        db.move_pointer(s, "selected", f"shot:{shot.id}", ids[0], "0" * 64, set_by="editor", reason="prefers")
        s.commit()
        cur = db.current_pointer(s, "selected", f"shot:{shot.id}")
        assert cur.target_id == ids[0] and cur.set_by == "editor"
        history = s.exec(select(db.Pointer).where(db.Pointer.scope == f"shot:{shot.id}")).all()
        assert [h.target_id for h in history] == [ids[2], ids[0]]  # append-only
        row = s.get(db.Candidate, ids[1])
        assert row.params == {"steps": None, "scene": "hills"} and row.seed == 101
        assert db.run_number(s, s.get(db.BriefVersion, run.brief_version_id)) == 1


def test_foreign_keys_enforced(engine) -> None:
    with Session(engine) as s:
        s.add(db.Candidate(id="c1", shot_id="missing", index=0, seed=1, backend="x", model_id="x", width=1,
                           height=1, prompt_hash="nope", code_version="x", recipe_hash="x", media_sha256="x"))
        with pytest.raises(sqlalchemy.exc.IntegrityError):
            s.commit()
