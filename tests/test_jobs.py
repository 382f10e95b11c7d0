"""The durable job queue (studio.jobs) and the worker (studio.worker), on SQLite and on a
real PostgreSQL server: idempotent submits under 50 simultaneous callers, claims that
never hand one job to two workers, leases that lapse into ``interrupted`` and back to
``queued`` without a failure counted, a retry budget, two-phase cancel scoped to one job,
finish refused on a lost lease, priority with ageing, and a real render run by the worker."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from studio import db, jobs
from studio.errors import StudioError


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'studio.db'}"
    from .test_migrations import _fresh_pg

    return _fresh_pg(request.getfixturevalue("postgres_url"), tmp_path.name)


@pytest.fixture
def engine(db_url: str) -> Any:
    engine = db.make_engine(db_url)
    db.init_db(engine)
    yield engine
    engine.dispose()


def _submit(engine: Any, name: str = "spot", **kw: Any) -> db.Job:
    kw.setdefault("request_sha256", f"req-{name}")
    job, created = jobs.submit(engine, brief={"project": "p", "campaign": name}, project="p", campaign=name,
                               brief_sha256=f"sha-{name}", **kw)
    assert created
    return job


def _types(engine: Any, job_id: str) -> list[str]:
    return [e.type for e in jobs.events(engine, job_id)]


def _parallel(n: int, fn: Any) -> list[Any]:
    """``fn(i)`` in ``n`` threads started together; the results, or raises the first error."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = fn(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if errors:
        raise errors[0]
    return results


# -- submit ----------------------------------------------------------------------------


def test_fifty_concurrent_submits_with_one_key_make_one_job(engine: Any) -> None:
    def go(_: int) -> tuple[str, bool]:
        job, created = jobs.submit(engine, brief={"b": 1}, project="p", campaign="c", brief_sha256="s",
                                   idempotency_key="key-1", request_sha256="same-body")
        return job.id, created

    results = _parallel(50, go)
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    with Session(engine) as s:
        assert len(s.exec(select(db.Job)).all()) == 1
    assert _types(engine, results[0][0]) == ["queued"]


def test_same_key_with_another_body_is_a_conflict(engine: Any) -> None:
    job = _submit(engine, idempotency_key="k", request_sha256="body-1")
    again, created = jobs.submit(engine, brief={}, project="p", campaign="spot", brief_sha256="x",
                                 idempotency_key="k", request_sha256="body-1")
    assert (again.id, created) == (job.id, False)
    with pytest.raises(jobs.IdempotencyConflict) as e:
        jobs.submit(engine, brief={}, project="p", campaign="spot", brief_sha256="x",
                    idempotency_key="k", request_sha256="body-2")
    assert e.value.line() == (f"Idempotency-Key: 'k' was already used for another request "
                              f"(job {job.id}) — send the same request again to get that job, "
                              "or use a new key for a new job")
    with Session(engine) as s:
        assert len(s.exec(select(db.Job)).all()) == 1
    with pytest.raises(StudioError, match="priority 101 is out of range"):
        _submit(engine, "other", priority=101)


# -- claim -----------------------------------------------------------------------------


def test_two_claimers_never_claim_the_same_job(engine: Any) -> None:
    ids = {_submit(engine, f"j{i}").id for i in range(40)}

    def drain(i: int) -> list[str]:
        got = []
        while (c := jobs.claim(engine, f"w{i}", 60)) is not None:
            got.append(c.job_id)
        return got

    claimed = [job_id for got in _parallel(8, drain) for job_id in got]
    assert Counter(claimed).most_common(1)[0][1] == 1  # no job twice
    assert set(claimed) == ids
    with Session(engine) as s:
        tries = s.exec(select(db.JobAttempt)).all()
        assert len(tries) == 40 and {a.n for a in tries} == {1}
        assert {j.state for j in s.exec(select(db.Job)).all()} == {"running"}
    assert jobs.claim(engine, "late", 60) is None


def test_priority_with_ageing(engine: Any) -> None:
    low = _submit(engine, "low", priority=10)
    high = _submit(engine, "high", priority=70)
    _backdate(engine, low.id, minutes=30)  # 10 + 30 < 70: the high one first
    assert jobs.claim(engine, "w", 60).job_id == high.id  # type: ignore[union-attr]
    low2 = _submit(engine, "low2", priority=10)
    high2 = _submit(engine, "high2", priority=70)
    _backdate(engine, low2.id, minutes=61)  # 10 + 61 > 70: it waited long enough
    first = jobs.claim(engine, "w", 60)
    assert first is not None and first.job_id in (low.id, low2.id)
    # low waited 30 minutes (40), low2 61 (71): low2 goes first, then high2 (70), then low
    assert first.job_id == low2.id
    assert [jobs.claim(engine, "w", 60).job_id for _ in range(2)] == [high2.id, low.id]  # type: ignore[union-attr]


def _backdate(engine: Any, job_id: str, minutes: float) -> None:
    with Session(engine) as s:
        job = s.get(db.Job, job_id)
        assert job is not None
        job.queued_at = job.queued_at - timedelta(minutes=minutes)
        s.add(job)
        s.commit()


# -- leases ----------------------------------------------------------------------------


def test_a_lapsed_lease_is_interrupted_and_requeued_without_a_failure(engine: Any) -> None:
    job = _submit(engine)
    other = _submit(engine, "other")
    c = jobs.claim(engine, "w1", 30)
    c_other = jobs.claim(engine, "w2", 600)
    assert c is not None and c_other is not None and c.job_id == job.id
    assert jobs.heartbeat(engine, c.lease_token, 30)
    assert jobs.requeue_lapsed(engine) == []  # nothing has lapsed yet
    later = db.now() + timedelta(seconds=60)
    assert jobs.requeue_lapsed(engine, now=later) == [job.id]  # w2's lease runs 600 s
    got = jobs.get(engine, job.id)
    assert got is not None and (got.state, got.failures) == ("queued", 0)
    assert _types(engine, job.id) == ["queued", "running", "interrupted", "queued"]
    interrupted = jobs.events(engine, job.id)[2]
    assert interrupted.data["attempt"] == 1 and "lapsed" in interrupted.data["reason"]
    # The old worker has lost it for good: no heartbeat, no publish, no finish.
    assert not jobs.heartbeat(engine, c.lease_token, 30)
    assert not jobs.holds_lease(engine, c.lease_token)
    assert not jobs.finish(engine, c.lease_token, "succeeded")
    again = jobs.claim(engine, "w3", 30)
    assert again is not None and (again.job_id, again.n) == (job.id, 2)
    assert [a.state for a in jobs.attempts(engine, job.id)] == ["interrupted", "running"]
    assert jobs.get(engine, other.id).state == "running"  # type: ignore[union-attr]
    assert jobs.heartbeat(engine, c_other.lease_token, 600)


def test_finish_with_a_lost_lease_returns_false_and_changes_nothing(engine: Any) -> None:
    job = _submit(engine)
    c = jobs.claim(engine, "w1", 1)
    assert c is not None
    # Expired but not yet requeued: already lost.
    import time

    time.sleep(1.1)
    assert not jobs.holds_lease(engine, c.lease_token)
    before = (jobs.get(engine, job.id), _types(engine, job.id))
    for state in ("succeeded", "failed", "canceled"):
        assert not jobs.finish(engine, c.lease_token, state, error="x", run_id="run_x")
    after = jobs.get(engine, job.id)
    assert after is not None and before[0] is not None
    assert (after.state, after.failures, after.run_id, after.updated_at) == \
        ("running", 0, None, before[0].updated_at)
    assert _types(engine, job.id) == before[1]
    assert not jobs.finish(engine, "no-such-token", "succeeded")
    jobs.requeue_lapsed(engine)
    c2 = jobs.claim(engine, "w2", 60)
    assert c2 is not None and c2.job_id == job.id
    assert not jobs.finish(engine, c.lease_token, "failed", error="stale")  # the old one, again
    assert jobs.get(engine, job.id).state == "running"  # type: ignore[union-attr]
    assert jobs.finish(engine, c2.lease_token, "succeeded", run_id="run_2", out_dir="/o")
    done = jobs.get(engine, job.id)
    assert done is not None and (done.state, done.run_id, done.out_dir) == ("succeeded", "run_2", "/o")


def test_a_job_that_fails_every_time_stops_after_max_attempts(engine: Any) -> None:
    job = _submit(engine, max_attempts=3)
    for i in range(1, 4):
        c = jobs.claim(engine, "w", 60)
        assert c is not None and (c.job_id, c.n) == (job.id, i)
        assert jobs.finish(engine, c.lease_token, "failed", error=f"stage conform: boom {i}")
        got = jobs.get(engine, job.id)
        assert got is not None and got.failures == i
        assert got.state == ("queued" if i < 3 else "failed")
    assert jobs.claim(engine, "w", 60) is None
    got = jobs.get(engine, job.id)
    assert got is not None and got.error == "stage conform: boom 3"
    assert _types(engine, job.id) == ["queued", "running", "queued", "running", "queued", "running", "failed"]
    assert [a.state for a in jobs.attempts(engine, job.id)] == ["failed"] * 3


# -- cancel ----------------------------------------------------------------------------


def test_cancel_while_queued_running_twice_and_after_finish(engine: Any) -> None:
    queued = _submit(engine, "queued")
    assert jobs.cancel(engine, queued.id).state == "canceled"
    assert jobs.claim(engine, "w", 60) is None  # nothing else was queued

    running = _submit(engine, "running")
    bystander = _submit(engine, "bystander")
    c = jobs.claim(engine, "w1", 60)
    c_by = jobs.claim(engine, "w2", 60)
    assert c is not None and c_by is not None and c.job_id == running.id
    assert jobs.cancel(engine, running.id).state == "canceling"
    assert jobs.cancel(engine, running.id).state == "canceling"  # twice: unchanged
    assert jobs.heartbeat_status(engine, c.lease_token, 60) == "canceling"
    assert not jobs.heartbeat(engine, c.lease_token, 60)
    assert not jobs.holds_lease(engine, c.lease_token)  # a canceling job publishes nothing
    assert jobs.finish(engine, c.lease_token, "canceled")
    got = jobs.get(engine, running.id)
    assert got is not None and got.state == "canceled"
    assert jobs.cancel(engine, running.id).state == "canceled"  # after finish: unchanged
    assert _types(engine, running.id) == ["queued", "running", "canceling", "canceled"]
    assert _types(engine, queued.id) == ["queued", "canceled"]

    # The other job never noticed.
    by = jobs.get(engine, bystander.id)
    assert by is not None and (by.state, by.cancel_requested) == ("running", False)
    assert jobs.heartbeat(engine, c_by.lease_token, 60) and jobs.holds_lease(engine, c_by.lease_token)
    assert _types(engine, bystander.id) == ["queued", "running"]
    assert jobs.finish(engine, c_by.lease_token, "succeeded")
    assert jobs.cancel(engine, bystander.id).state == "succeeded"  # final: unchanged
    assert _types(engine, bystander.id) == ["queued", "running", "succeeded"]

    with pytest.raises(jobs.UnknownJob, match="no job 'job_nope'"):
        jobs.cancel(engine, "job_nope")
    assert jobs.get(engine, "job_nope") is None


def test_a_canceling_job_whose_worker_died_ends_canceled(engine: Any) -> None:
    job = _submit(engine)
    c = jobs.claim(engine, "w", 5)
    assert c is not None
    jobs.cancel(engine, job.id)
    assert jobs.requeue_lapsed(engine, now=db.now() + timedelta(seconds=10)) == [job.id]
    got = jobs.get(engine, job.id)
    assert got is not None and (got.state, got.failures) == ("canceled", 0)
    assert jobs.claim(engine, "w", 5) is None


def test_a_job_that_succeeds_while_canceling_ends_canceled(engine: Any) -> None:
    job = _submit(engine)
    c = jobs.claim(engine, "w", 60)
    assert c is not None
    jobs.cancel(engine, job.id)
    assert jobs.finish(engine, c.lease_token, "succeeded", run_id="run_1")
    got = jobs.get(engine, job.id)
    assert got is not None and got.state == "canceled"
    assert jobs.attempts(engine, job.id)[0].state == "succeeded"


# -- reading ---------------------------------------------------------------------------


def test_list_jobs_pages_with_a_cursor_and_filters(engine: Any) -> None:
    made = [_submit(engine, f"j{i}", labels={"team": "a" if i % 2 else "b"}).id for i in range(7)]
    seen, cursor = [], None
    while True:
        page, cursor = jobs.list_jobs(engine, limit=3, cursor=cursor)
        seen += [j.id for j in page]
        if cursor is None:
            break
    assert seen == list(reversed(made))  # newest first, each once
    team_a, _ = jobs.list_jobs(engine, label="team=a")
    assert [j.id for j in team_a] == [made[i] for i in (5, 3, 1)]
    assert jobs.list_jobs(engine, label=("team", "c"))[0] == []
    jobs.cancel(engine, made[0])
    assert [j.id for j in jobs.list_jobs(engine, state="canceled")[0]] == [made[0]]
    assert len(jobs.list_jobs(engine, state=["queued", "canceled"], project="p")[0]) == 7
    assert jobs.list_jobs(engine, project="q")[0] == []
    with pytest.raises(StudioError, match="cursor 'garbage' is not one this server gave out"):
        jobs.list_jobs(engine, cursor="garbage")
    # events: after an id, one job's or all
    all_events = jobs.events(engine, None)
    assert [e.id for e in all_events] == sorted(e.id for e in all_events)
    assert len(all_events) == 8
    assert [e.type for e in jobs.events(engine, None, after_id=all_events[-2].id)] == ["canceled"]
    assert jobs.events(engine, made[0], limit=1)[0].type == "queued"


def test_event_ids_become_visible_in_order(engine: Any) -> None:
    """A reader resuming after the newest id it saw (SSE Last-Event-ID) must never find a
    smaller id committed later: while one transaction holds an appended event, another
    append waits instead of committing a larger id first."""
    job = _submit(engine)
    first_seen = jobs.events(engine, None)[-1].id
    held, release = threading.Event(), threading.Event()

    def slow() -> None:
        with jobs._tx(engine) as tx:
            tx.event(job.id, "slow")
            tx.flush_events()  # its id is taken now
            held.set()
            release.wait(30)

    a = threading.Thread(target=slow)
    a.start()
    b = threading.Thread(target=lambda: jobs.append_events(engine, job.id, [("fast", {})]))
    try:
        assert held.wait(30)
        b.start()
        b.join(1.0)
        assert b.is_alive(), "the second append committed while the first was open"
        assert jobs.events(engine, None, after_id=first_seen) == []
    finally:
        release.set()
        a.join(30)
        if b.ident is not None:  # started
            b.join(30)
    after = jobs.events(engine, None, after_id=first_seen)
    assert [e.type for e in after] == ["slow", "fast"] and after[0].id < after[1].id


# -- the worker --------------------------------------------------------------------------


def _small_brief(campaign: str, **over: Any) -> dict[str, Any]:
    """Two one-second beats, one channel, no music: a render of well under a minute."""
    return {"project": "jobs", "campaign": campaign, "purpose": "a job run by the worker",
            "channels": ["youtube-1080p"], "style_pack": "golden-hour", "candidates": 1,
            "captions": False, "handles": 0, "music": {"source": "none"}, "effects": {"enabled": False},
            "beats": [{"id": "b01", "duration": 1, "subject": "a lighthouse in a storm"},
                      {"id": "b02", "duration": 1, "subject": "a fox in fresh snow"}], **over}


def _worker_settings(tmp_path: Path) -> Any:
    from studio.settings import Settings

    return Settings(home=tmp_path / "home", ray_num_cpus=2)


def _submit_brief(settings: Any, brief: dict[str, Any], **kw: Any) -> tuple[Any, db.Job]:
    engine = db.make_engine(settings.db_url)
    settings.home.mkdir(parents=True, exist_ok=True)
    db.init_db(engine)
    job, _ = jobs.submit(engine, brief=brief, project=brief["project"], campaign=brief["campaign"],
                         brief_sha256="s", request_sha256=brief["campaign"], **kw)
    return engine, job


def test_the_worker_renders_a_job(tmp_path: Path) -> None:
    import json

    from studio.worker import job_dir, run_worker

    settings = _worker_settings(tmp_path)
    engine, job = _submit_brief(settings, _small_brief("worker"))
    try:
        assert run_worker(settings, worker_id="w-test", lease_seconds=30, poll_seconds=0.1, once=True) == [job.id]
        done = jobs.get(engine, job.id)
        assert done is not None, "the job vanished"
        assert (done.state, done.error, done.failures) == ("succeeded", None, 0)
        out = job_dir(settings, job.id) / "out"
        assert done.out_dir == str((job_dir(settings, job.id) / "attempt-1" / "out").resolve()) \
            == str(out.resolve())
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["run_id"] == done.run_id and done.run_id.startswith("run_")
        assert manifest["deliverables"] and all((out / d["path"]).is_file() for d in manifest["deliverables"])
        assert (job_dir(settings, job.id) / "brief.yaml").is_file()
        # The run's records name files that are there (the output was not moved after).
        with Session(engine) as s:
            run = s.get(db.Run, done.run_id)
            assert run is not None and (run.status, run.out_dir) == ("succeeded", done.out_dir)
            paths = [d.path for d in s.exec(select(db.Deliverable).where(db.Deliverable.run_id == run.id))]
        assert paths and all(Path(p).is_file() and p.startswith(done.out_dir) for p in paths)
        types = _types(engine, job.id)
        assert types[:3] == ["queued", "running", "worker"] and types[-1] == "succeeded"
        started = {e.data["stage"] for e in jobs.events(engine, job.id) if e.type == "stage_start"}
        finished = {e.data["stage"] for e in jobs.events(engine, job.id) if e.type == "stage_done"}
        assert {"candidates", "conform"} <= started and started == finished, (started, finished)
        assert any(e.type == "progress" for e in jobs.events(engine, job.id))
        assert all(e.data["attempt"] == 1 for e in jobs.events(engine, job.id) if e.type == "stage_done")
        assert [a.state for a in jobs.attempts(engine, job.id)] == ["succeeded"]
        # nothing left to do
        assert run_worker(settings, worker_id="w-test", lease_seconds=30, poll_seconds=0.1, once=True) == []
    finally:
        engine.dispose()


def test_a_render_that_fails_fails_the_job_with_its_one_line_error(tmp_path: Path) -> None:
    from studio.worker import job_dir, run_worker

    settings = _worker_settings(tmp_path)
    engine, job = _submit_brief(settings, _small_brief("broken", channels=["no-such-channel"]), max_attempts=2)
    try:
        for _ in range(2):
            assert run_worker(settings, worker_id="w", lease_seconds=30, poll_seconds=0.1, once=True) == [job.id]
        done = jobs.get(engine, job.id)
        assert done is not None and (done.state, done.failures) == ("failed", 2)
        assert done.error is not None and "no-such-channel" in done.error and "\n" not in done.error
        assert not done.error.startswith("studio: error")
        assert [a.state for a in jobs.attempts(engine, job.id)] == ["failed", "failed"]
        assert not (job_dir(settings, job.id) / "out").exists()
        assert not list(job_dir(settings, job.id).glob("attempt-*"))
    finally:
        engine.dispose()


def _worker_thread(settings: Any, stop: threading.Event | None = None) -> tuple[threading.Thread, list[Any]]:
    from studio.worker import run_worker

    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(run_worker(
        settings, worker_id="w-bg", lease_seconds=3, poll_seconds=0.1, once=True, stop=stop)), daemon=True)
    thread.start()
    return thread, result


def _wait_for(engine: Any, job_id: str, type_: str, timeout: float = 180) -> None:
    import time

    deadline = time.monotonic() + timeout
    while type_ not in _types(engine, job_id):
        assert time.monotonic() < deadline, f"no {type_} event: {_types(engine, job_id)}"
        time.sleep(0.2)


def test_cancel_while_the_worker_renders_stops_the_render(tmp_path: Path) -> None:
    from studio.worker import job_dir

    settings = _worker_settings(tmp_path)
    engine, job = _submit_brief(settings, _small_brief("cancel"))
    try:
        thread, result = _worker_thread(settings)
        _wait_for(engine, job.id, "stage_start")
        assert jobs.cancel(engine, job.id).state == "canceling"
        thread.join(180)
        assert not thread.is_alive() and result == [[job.id]]
        done = jobs.get(engine, job.id)
        assert done is not None and (done.state, done.failures, done.error) == ("canceled", 0, None)
        types = _types(engine, job.id)
        assert types.index("canceling") < types.index("canceled") == len(types) - 1
        assert [a.state for a in jobs.attempts(engine, job.id)] == ["canceled"]
        assert not (job_dir(settings, job.id) / "out").exists()
        assert not list(job_dir(settings, job.id).glob("attempt-*"))
    finally:
        engine.dispose()


def test_a_worker_stopped_mid_render_gives_the_job_back_and_the_next_run_reuses_the_work(tmp_path: Path) -> None:
    settings = _worker_settings(tmp_path)
    engine, job = _submit_brief(settings, _small_brief("stop"))
    try:
        stop = threading.Event()
        thread, result = _worker_thread(settings, stop)
        _wait_for(engine, job.id, "stage_done")  # some work finished and is in the cache
        stop.set()
        thread.join(180)
        assert not thread.is_alive() and result == [[job.id]]
        back = jobs.get(engine, job.id)
        assert back is not None and (back.state, back.failures) == ("queued", 0)
        assert _types(engine, job.id)[-2:] == ["interrupted", "queued"]
        from studio.worker import run_worker

        assert run_worker(settings, worker_id="w2", lease_seconds=30, poll_seconds=0.1, once=True) == [job.id]
        done = jobs.get(engine, job.id)
        assert done is not None and (done.state, done.failures) == ("succeeded", 0)
        assert [a.state for a in jobs.attempts(engine, job.id)] == ["interrupted", "succeeded"]
        # What the first attempt finished, the second took from the action cache.
        done_in = {n: {e.data["stage"]: e.data for e in jobs.events(engine, job.id)
                       if e.type == "stage_done" and e.data["attempt"] == n} for n in (1, 2)}
        first = {stage: d for stage, d in done_in[1].items() if d.get("made")}
        assert first, done_in[1]
        for stage, d in first.items():
            assert (done_in[2][stage]["made"], done_in[2][stage]["reused"]) == (0, d["made"]), (stage, done_in)
    finally:
        engine.dispose()


_WORKER = """
import sys
from pathlib import Path
from studio.settings import Settings
from studio.worker import run_worker
run_worker(Settings(home=Path(sys.argv[1]), ray_num_cpus=2), worker_id="doomed", lease_seconds=3,
           poll_seconds=0.1, once=True)
"""


def test_a_worker_killed_mid_render_takes_its_render_along_and_the_job_resumes(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from studio.db import process_alive
    from studio.worker import run_worker

    settings = _worker_settings(tmp_path)
    engine, job = _submit_brief(settings, _small_brief("killed"))
    try:
        worker = subprocess.Popen([sys.executable, "-c", _WORKER, str(settings.home)], stdin=subprocess.DEVNULL)
        try:
            _wait_for(engine, job.id, "stage_done")
            render_pid = next(e.data["render_pid"] for e in jobs.events(engine, job.id) if e.type == "worker")
            assert process_alive(render_pid)
            worker.send_signal(signal.SIGKILL)
            worker.wait(30)
            # The render gets SIGTERM at once (parent-death signal) and cancels: 0.4 s here.
            # Without it, it ran on until its next log line hit the closed pipe (14 s here).
            deadline = time.monotonic() + 10
            while process_alive(render_pid):
                assert time.monotonic() < deadline, "the killed worker's render is still running"
                time.sleep(0.2)
        finally:
            if worker.poll() is None:
                worker.kill()
        assert jobs.get(engine, job.id).state == "running"  # type: ignore[union-attr]
        time.sleep(3.5)  # the dead worker's 3 s lease lapses
        assert run_worker(settings, worker_id="next", lease_seconds=30, poll_seconds=0.1, once=True) == [job.id]
        done = jobs.get(engine, job.id)
        assert done is not None and (done.state, done.failures) == ("succeeded", 0)
        assert [a.state for a in jobs.attempts(engine, job.id)] == ["interrupted", "succeeded"]
        types = _types(engine, job.id)
        assert types.index("interrupted") < types.index("queued", 1) < len(types) - 1
        assert os.path.isfile(Path(done.out_dir or "") / "manifest.json")
        folder = Path(done.out_dir or "").parent.parent
        assert [p.name for p in folder.glob("attempt-*")] == ["attempt-2"]  # the killed one's went
    finally:
        engine.dispose()


def test_a_worker_that_loses_its_lease_stops_and_publishes_nothing(tmp_path: Path) -> None:
    from studio.worker import job_dir

    settings = _worker_settings(tmp_path)
    engine, job = _submit_brief(settings, _small_brief("lost"))
    try:
        thread, result = _worker_thread(settings)
        _wait_for(engine, job.id, "stage_start")
        # As if its lease had lapsed (a long pause) and the queue had moved on.
        assert jobs.requeue_lapsed(engine, now=db.now() + timedelta(hours=1)) == [job.id]
        thread.join(180)
        assert not thread.is_alive() and result == [[job.id]]
        back = jobs.get(engine, job.id)
        assert back is not None and (back.state, back.failures, back.out_dir) == ("queued", 0, None)
        types = _types(engine, job.id)
        assert types[-1] == "lease_lost" and types.index("interrupted") < types.index("lease_lost")
        assert [a.state for a in jobs.attempts(engine, job.id)] == ["interrupted"]
        assert not (job_dir(settings, job.id) / "out").exists()
        assert not list(job_dir(settings, job.id).glob("attempt-*"))
    finally:
        engine.dispose()
