"""Job controls (issue 11): retry, suspend, resume and priority, in studio.jobs (SQLite and
PostgreSQL), through the API (404, 409 with a fix, 422), with the worker and a real render
(a retried job redoes only what failed: finished steps come from the cache; a job
suspended mid-render stops, gives its lease back and ends suspended, and resumes from the
cache), and through the CLI against a real server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from studio import auth, db, jobs
from studio.api.app import create_app
from studio.errors import StudioError
from studio.settings import Settings

from .conftest import ROOT, serve


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'studio.db'}"
    else:
        from .test_migrations import _fresh_pg

        url = _fresh_pg(request.getfixturevalue("postgres_url"), tmp_path.name)
    engine = db.make_engine(url)
    db.init_db(engine)
    yield engine
    engine.dispose()


def _submit(engine: Any, name: str = "spot", **kw: Any) -> db.Job:
    job, created = jobs.submit(engine, brief={"project": "p", "campaign": name}, project="p", campaign=name,
                               brief_sha256=f"sha-{name}", request_sha256=f"req-{name}", **kw)
    assert created
    return job


def _events(engine: Any, job_id: str) -> list[Any]:
    return jobs.events(engine, job_id)


def _state(engine: Any, job_id: str) -> str:
    job = jobs.get(engine, job_id)
    assert job is not None
    return job.state


def _fail_once(engine: Any, job_id: str) -> None:
    claim = jobs.claim(engine, "w", 30)
    assert claim is not None and claim.job_id == job_id
    assert jobs.finish(engine, claim.lease_token, "failed", error="the conform ran out of disk")


# -- studio.jobs --------------------------------------------------------------------------


def test_retry_gives_a_failed_job_a_new_budget(engine: Any) -> None:
    job = _submit(engine, max_attempts=2)
    _fail_once(engine, job.id)
    _fail_once(engine, job.id)
    failed = jobs.get(engine, job.id)
    assert failed is not None and (failed.state, failed.failures) == ("failed", 2)
    again = jobs.retry(engine, job.id, by="ana (tok_1)", note="disk freed")
    assert (again.state, again.failures, again.error, again.cancel_requested) == ("queued", 0, None, False)
    assert again.queued_at > failed.queued_at
    last = _events(engine, job.id)[-1]
    assert last.type == "queued" and last.data == {
        "from": "failed", "reason": "retried", "by": "ana (tok_1)", "note": "disk freed", "previous_failures": 2,
        "previous_error": "the conform ran out of disk", "max_attempts": 2}
    # The new budget: two more failures before it is failed again.
    _fail_once(engine, job.id)
    assert _state(engine, job.id) == "queued"
    _fail_once(engine, job.id)
    assert _state(engine, job.id) == "failed"


def test_retry_of_a_canceled_job_clears_the_cancel(engine: Any) -> None:
    job = _submit(engine)
    jobs.cancel(engine, job.id)
    assert jobs.retry(engine, job.id).state == "queued"
    claim = jobs.claim(engine, "w", 30)
    assert claim is not None
    # It runs: the old cancel does not stop it.
    assert jobs.heartbeat_status(engine, claim.lease_token, 30) == "held"


@pytest.mark.parametrize("setup, fix", [
    ("queued", "wait until it has finished"),
    ("running", "wait until it has finished"),
    ("succeeded", "submit the brief again"),
    ("suspended", "studio resume"),
])
def test_retry_of_a_job_that_did_not_fail_is_refused(engine: Any, setup: str, fix: str) -> None:
    job = _submit(engine)
    if setup in ("running", "succeeded"):
        claim = jobs.claim(engine, "w", 30)
        assert claim is not None
        if setup == "succeeded":
            jobs.finish(engine, claim.lease_token, "succeeded")
    elif setup == "suspended":
        jobs.suspend(engine, job.id)
    with pytest.raises(jobs.WrongState) as e:
        jobs.retry(engine, job.id)
    assert f"is {setup}; retry is for a job that is failed, canceled or blocked" in e.value.what
    assert fix in e.value.fix
    assert _state(engine, job.id) == setup
    with pytest.raises(jobs.UnknownJob):
        jobs.retry(engine, "job_nope")


def test_suspend_and_resume_a_queued_job(engine: Any) -> None:
    job = _submit(engine)
    assert jobs.suspend(engine, job.id, by="ana", note="brand review first").state == "suspended"
    assert jobs.claim(engine, "w", 30) is None  # a suspended job is not taken
    assert jobs.suspend(engine, job.id).state == "suspended"  # twice: unchanged
    before = jobs.get(engine, job.id)
    assert before is not None
    resumed = jobs.resume(engine, job.id, by="ana")
    assert resumed.state == "queued" and resumed.queued_at > before.queued_at  # ageing starts over
    assert jobs.resume(engine, job.id).state == "queued"  # twice: unchanged
    types = [(e.type, e.data.get("reason")) for e in _events(engine, job.id)]
    assert types == [("queued", "submitted"), ("suspended", None), ("queued", "resumed")]
    assert _events(engine, job.id)[1].data == {"from": "queued", "by": "ana", "note": "brand review first"}
    claim = jobs.claim(engine, "w", 30)
    assert claim is not None and claim.job_id == job.id


def test_suspend_a_running_job_is_two_phase(engine: Any) -> None:
    job = _submit(engine)
    claim = jobs.claim(engine, "w", 30)
    assert claim is not None
    assert jobs.suspend(engine, job.id).state == "suspending"
    assert jobs.heartbeat_status(engine, claim.lease_token, 30) == "suspending"
    assert not jobs.heartbeat(engine, claim.lease_token, 30)
    with pytest.raises(jobs.WrongState) as e:
        jobs.resume(engine, job.id)
    assert "suspending" in e.value.what and "wait until its worker has stopped it" in e.value.fix
    # The worker gives the lease back: the attempt is interrupted, the job suspended.
    assert jobs.interrupt(engine, claim.lease_token, "suspended: worker w stopped the render")
    done = jobs.get(engine, job.id)
    assert done is not None and (done.state, done.failures) == ("suspended", 0)
    assert [e.type for e in _events(engine, job.id)][-3:] == ["suspending", "interrupted", "suspended"]
    assert [a.state for a in jobs.attempts(engine, job.id)] == ["interrupted"]
    assert jobs.claim(engine, "w", 30) is None
    assert jobs.resume(engine, job.id).state == "queued"


def test_a_suspending_job_whose_lease_lapses_ends_suspended(engine: Any) -> None:
    job = _submit(engine)
    assert jobs.claim(engine, "w", 1) is not None
    jobs.suspend(engine, job.id)
    assert jobs.requeue_lapsed(engine, now=db.now() + timedelta(minutes=5)) == [job.id]
    assert _state(engine, job.id) == "suspended"


def test_a_suspending_job_that_finishes_or_fails_first(engine: Any) -> None:
    # Finished before its worker saw the suspend: published (the work is done).
    job = _submit(engine, "done")
    claim = jobs.claim(engine, "w", 30)
    assert claim is not None
    jobs.suspend(engine, job.id)
    assert jobs.holds_lease(engine, claim.lease_token)
    assert jobs.finish(engine, claim.lease_token, "succeeded")
    assert _state(engine, job.id) == "succeeded"
    # Failed on its own first: the failure counts, and it is put aside, not queued.
    job = _submit(engine, "fails")
    claim = jobs.claim(engine, "w", 30)
    assert claim is not None
    jobs.suspend(engine, job.id)
    assert jobs.finish(engine, claim.lease_token, "failed", error="boom")
    back = jobs.get(engine, job.id)
    assert back is not None and (back.state, back.failures) == ("suspended", 1)


def test_cancel_a_suspended_or_suspending_job(engine: Any) -> None:
    job = _submit(engine, "aside")
    jobs.suspend(engine, job.id)
    assert jobs.cancel(engine, job.id).state == "canceled"
    job = _submit(engine, "stopping")
    claim = jobs.claim(engine, "w", 30)
    assert claim is not None
    jobs.suspend(engine, job.id)
    assert jobs.cancel(engine, job.id).state == "canceling"
    assert jobs.heartbeat_status(engine, claim.lease_token, 30) == "canceling"
    jobs.interrupt(engine, claim.lease_token, "stopped")
    assert _state(engine, job.id) == "canceled"


def test_suspend_and_resume_refused_in_final_states(engine: Any) -> None:
    job = _submit(engine)
    jobs.cancel(engine, job.id)
    with pytest.raises(jobs.WrongState) as e:
        jobs.suspend(engine, job.id)
    assert "is canceled; suspend is for a job that is queued, running or waiting at a gate" in e.value.what
    assert "studio retry" in e.value.fix
    with pytest.raises(jobs.WrongState) as e:
        jobs.resume(engine, job.id)
    assert "studio retry" in e.value.fix


def test_a_gated_job_can_be_suspended(engine: Any) -> None:
    job = _submit(engine)
    from sqlmodel import Session

    with Session(engine) as s:  # as studio.gates leaves a job that waits for a pick
        row = s.get(db.Job, job.id)
        assert row is not None
        row.state = "awaiting_selection"
        s.add(row)
        s.commit()
    with pytest.raises(jobs.WrongState) as e:
        jobs.resume(engine, job.id)
    assert "studio pick" in e.value.fix
    assert jobs.suspend(engine, job.id).state == "suspended"
    assert _events(engine, job.id)[-1].data["from"] == "awaiting_selection"


def test_set_priority(engine: Any) -> None:
    low = _submit(engine, "low", priority=10)
    high = _submit(engine, "high", priority=60)
    assert jobs.set_priority(engine, low.id, 90, by="ana").priority == 90
    last = _events(engine, low.id)[-1]
    assert (last.type, last.data) == ("priority", {"from": 10, "to": 90, "by": "ana"})
    n = len(_events(engine, low.id))
    jobs.set_priority(engine, low.id, 90)  # the same again: nothing recorded
    assert len(_events(engine, low.id)) == n
    claim = jobs.claim(engine, "w", 30)
    assert claim is not None and claim.job_id == low.id  # it goes first now
    assert jobs.set_priority(engine, low.id, 5).priority == 5  # running: allowed
    for bad in (-1, 101, True, 2.5):
        with pytest.raises(StudioError) as e:
            jobs.set_priority(engine, high.id, bad)  # type: ignore[arg-type]
        assert e.value.field == "priority"
    jobs.cancel(engine, high.id)
    with pytest.raises(jobs.WrongState):
        jobs.set_priority(engine, high.id, 70)


# -- the API ------------------------------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Any, TestClient, str]]:
    settings = Settings(home=tmp_path / "home")
    settings.home.mkdir()
    engine = db.make_engine(settings.db_url)
    db.init_db(engine)
    token = auth.create(engine, project="p", role="editor", name="ana")[1]
    with TestClient(create_app(settings, engine), headers={"Authorization": f"Bearer {token}"}) as c:
        yield engine, c, token
    engine.dispose()


def test_api_controls(api: tuple[Any, TestClient, str]) -> None:
    engine, c, _ = api
    job = _submit(engine, max_attempts=1)
    r = c.post(f"/v1/jobs/{job.id}/retry")
    assert r.status_code == 409, r.text
    assert r.json()["detail"] == f"job {job.id} is queued; retry is for a job that is failed, canceled or blocked"
    assert "wait until it has finished" in r.json()["fix"]
    r = c.post(f"/v1/jobs/{job.id}/suspend", json={"note": "hold for legal"})
    assert (r.status_code, r.json()["state"]) == (202, "suspended")
    assert _events(engine, job.id)[-1].data["by"].startswith("ana (")
    assert _events(engine, job.id)[-1].data["note"] == "hold for legal"
    assert c.post(f"/v1/jobs/{job.id}/resume").json()["state"] == "queued"
    r = c.patch(f"/v1/jobs/{job.id}", json={"priority": 80})
    assert (r.status_code, r.json()["priority"]) == (200, 80)
    assert c.patch(f"/v1/jobs/{job.id}", json={}).json()["priority"] == 80  # nothing to change
    for bad in ({"priority": 101}, {"priority": -1}, {"priority": "high"}, {"state": "succeeded"}):
        r = c.patch(f"/v1/jobs/{job.id}", json=bad)
        assert r.status_code == 422, (bad, r.text)
    _fail_once(engine, job.id)
    r = c.post(f"/v1/jobs/{job.id}/retry", json={"note": "disk freed"})
    assert (r.status_code, r.json()["state"], r.json()["failures"]) == (202, "queued", 0)
    jobs.cancel(engine, job.id)
    for path in ("suspend", "resume"):
        r = c.post(f"/v1/jobs/{job.id}/{path}")
        assert r.status_code == 409 and r.json()["fix"], r.text
    r = c.patch(f"/v1/jobs/{job.id}", json={"priority": 3})
    assert r.status_code == 409 and "finished" in r.json()["fix"]
    for path in ("retry", "suspend", "resume"):
        assert c.post(f"/v1/jobs/job_nope/{path}").status_code == 404
    assert c.patch("/v1/jobs/job_nope", json={"priority": 3}).status_code == 404


def test_api_controls_are_for_editors_of_the_jobs_project(api: tuple[Any, TestClient, str]) -> None:
    engine, c, _ = api
    job = _submit(engine)
    viewer = auth.create(engine, project="p", role="viewer", name="v")[1]
    other = auth.create(engine, project="q", role="admin", name="o")[1]
    r = c.post(f"/v1/jobs/{job.id}/suspend", headers={"Authorization": f"Bearer {viewer}"})
    assert r.status_code == 403
    r = c.post(f"/v1/jobs/{job.id}/suspend", headers={"Authorization": f"Bearer {other}"})
    assert r.status_code == 404
    r = c.patch(f"/v1/jobs/{job.id}", json={"priority": 1}, headers={"Authorization": f"Bearer {other}"})
    assert r.status_code == 404
    assert _state(engine, job.id) == "queued" and jobs.get(engine, job.id).priority == 50  # type: ignore[union-attr]


# -- with the worker and a real render ----------------------------------------------------


def _small_brief(campaign: str) -> dict[str, Any]:
    """Two one-second beats, one channel, no music, one candidate: a render of seconds."""
    return {"project": "ctl", "campaign": campaign, "purpose": "job controls",
            "channels": ["youtube-1080p"], "style_pack": "golden-hour", "candidates": 1,
            "captions": False, "handles": 0, "music": {"source": "none"}, "effects": {"enabled": False},
            "beats": [{"id": "b01", "duration": 1, "subject": "a lighthouse in a storm"},
                      {"id": "b02", "duration": 1, "subject": "a fox in fresh snow"}]}


def _worker_job(tmp_path: Path, campaign: str, **kw: Any) -> tuple[Settings, Any, db.Job]:
    settings = Settings(home=tmp_path / "home", ray_num_cpus=2)
    settings.home.mkdir(parents=True)
    engine = db.make_engine(settings.db_url)
    db.init_db(engine)
    brief = _small_brief(campaign)
    job, _ = jobs.submit(engine, brief=brief, project="ctl", campaign=campaign, brief_sha256="s",
                         request_sha256=campaign, **kw)
    return settings, engine, job


def _stage_done(engine: Any, job_id: str, attempt: int) -> dict[str, dict[str, Any]]:
    return {e.data["stage"]: e.data for e in jobs.events(engine, job_id)
            if e.type == "stage_done" and e.data.get("attempt") == attempt}


def test_retry_redoes_only_what_failed(tmp_path: Path) -> None:
    from studio.worker import run_worker

    settings, engine, job = _worker_job(tmp_path, "retry", max_attempts=1)
    try:
        # The server's encoder setting is wrong: the render fails in its conform, after
        # every stage before it finished (and went into the cache).
        broken = settings.model_copy(update={"x264_preset": "no-such-preset"})
        assert run_worker(broken, worker_id="w1", lease_seconds=30, poll_seconds=0.1, once=True) == [job.id]
        failed = jobs.get(engine, job.id)
        assert failed is not None and (failed.state, failed.failures) == ("failed", 1), failed
        first = _stage_done(engine, job.id, 1)
        assert "conform" not in first and first["candidates"]["made"] == 2, first
        # Fixed, then retried: a new budget, and only the conform (and what follows) is made.
        assert jobs.retry(engine, job.id, by="ops", note="x264 preset fixed").state == "queued"
        assert run_worker(settings, worker_id="w2", lease_seconds=30, poll_seconds=0.1, once=True) == [job.id]
        done = jobs.get(engine, job.id)
        assert done is not None and (done.state, done.failures) == ("succeeded", 0), done
        second = _stage_done(engine, job.id, 2)
        for stage, d in first.items():
            if d.get("made"):
                assert (second[stage]["made"], second[stage]["reused"]) == (0, d["made"]), (stage, first, second)
        assert second["conform"]["made"] == 1 and second["conform"]["reused"] == 0, second
        assert [a.state for a in jobs.attempts(engine, job.id)] == ["failed", "succeeded"]
        assert Path(done.out_dir or "", "manifest.json").is_file()
    finally:
        engine.dispose()


def test_suspend_mid_render_then_resume(tmp_path: Path) -> None:
    from studio.worker import job_dir, run_worker

    settings, engine, job = _worker_job(tmp_path, "suspend")
    try:
        result: list[Any] = []
        thread = threading.Thread(target=lambda: result.append(run_worker(
            settings, worker_id="w-bg", lease_seconds=3, poll_seconds=0.1, once=True)), daemon=True)
        thread.start()
        deadline = time.monotonic() + 180
        while "stage_done" not in [e.type for e in jobs.events(engine, job.id)]:
            assert time.monotonic() < deadline and thread.is_alive(), [e.type for e in jobs.events(engine, job.id)]
            time.sleep(0.1)
        assert jobs.suspend(engine, job.id, by="ana").state == "suspending"
        thread.join(120)
        assert not thread.is_alive() and result == [[job.id]]
        aside = jobs.get(engine, job.id)
        assert aside is not None and (aside.state, aside.failures) == ("suspended", 0), aside
        types = [e.type for e in jobs.events(engine, job.id)]
        assert types.index("suspending") < types.index("interrupted") < types.index("suspended") == len(types) - 1
        assert [a.state for a in jobs.attempts(engine, job.id)] == ["interrupted"]
        assert not list(job_dir(settings, job.id).glob("attempt-*"))  # its output discarded
        # Nothing takes a suspended job.
        assert run_worker(settings, worker_id="w2", lease_seconds=30, poll_seconds=0.1, once=True) == []
        assert jobs.resume(engine, job.id).state == "queued"
        assert run_worker(settings, worker_id="w2", lease_seconds=30, poll_seconds=0.1, once=True) == [job.id]
        done = jobs.get(engine, job.id)
        assert done is not None and (done.state, done.failures) == ("succeeded", 0)
        first, second = _stage_done(engine, job.id, 1), _stage_done(engine, job.id, 2)
        made = {stage: d["made"] for stage, d in first.items() if d.get("made")}
        assert made, first
        for stage, n in made.items():
            assert (second[stage]["made"], second[stage]["reused"]) == (0, n), (stage, first, second)
    finally:
        engine.dispose()


# -- the CLI against a real server --------------------------------------------------------


def _studio(args: list[str], base: str, token: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STUDIO_")}
    env.update(STUDIO_SERVER=base, STUDIO_TOKEN=token)
    return subprocess.run([sys.executable, "-m", "studio", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


def test_cli_controls_against_a_real_server(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc, base = serve(home, workers=0, log_level="warning")
    engine = db.make_engine(Settings(home=home).db_url)
    try:
        token = auth.create(engine, project="p", role="editor", name="cli")[1]
        job = _submit(engine, max_attempts=1)
        r = _studio(["suspend", job.id, "--note", "wait for the edit"], base, token)
        assert (r.returncode, r.stdout.strip()) == (0, f"job {job.id}: suspended"), r.stderr
        assert _events(engine, job.id)[-1].data["note"] == "wait for the edit"
        r = _studio(["resume", job.id, "--json"], base, token)
        assert r.returncode == 0 and json.loads(r.stdout)["state"] == "queued", r.stderr
        r = _studio(["priority", job.id, "90"], base, token)
        assert (r.returncode, r.stdout.strip()) == (0, f"job {job.id}: priority 90 (queued)"), r.stderr
        r = _studio(["priority", job.id, "101"], base, token)
        assert r.returncode == 2 and "101" in r.stderr
        r = _studio(["retry", job.id], base, token)
        assert r.returncode == 2, r.stdout
        assert r.stderr.strip() == (f"studio: error: job {job.id} is queued; retry is for a job that is failed, "
                                    f"canceled or blocked — wait until it has finished (`studio job {job.id}`); retry "
                                    "it if it failed"), r.stderr
        _fail_once(engine, job.id)
        r = _studio(["retry", job.id, "--json"], base, token)
        assert r.returncode == 0, r.stderr
        assert (json.loads(r.stdout)["state"], json.loads(r.stdout)["failures"]) == ("queued", 0)
        r = _studio(["retry", "job_nope"], base, token)
        assert r.returncode == 2 and "no job 'job_nope'" in r.stderr
        r = _studio(["outputs", job.id], base, token)
        assert (r.returncode, r.stdout.strip()) == (0, f"job {job.id} has no outputs yet"), r.stderr
    finally:
        engine.dispose()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
