"""Durability of the server's jobs (issue 11, the first "Done when"): the real `studio
serve` (uvicorn, one worker) is killed with SIGKILL in the middle of a render and started
again on the same STUDIO_HOME.

What it proves: the render dies with the server (PR_SET_PDEATHSIG: no orphan renders on
beside the next attempt); the killed attempt's lease lapses and the job is `interrupted`
(attempt 1, "lease ... lapsed") then `queued` again, then `running` as attempt 2, with no
failure counted; the job completes; no attempt stays `running`; the stages finished
before the kill are not re-run (attempt 2's stage_done counts: all reused, none made) and
no candidate is generated twice (candidates made over both attempts = beats × candidates);
the job's SSE stream, read after the restart, shows all of it in order."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from studio import db, jobs
from studio.settings import Settings

from .conftest import serve
from .test_api_stream import Reader, make_token, small_brief

LEASE = 6.0  # seconds: short, so the killed attempt's lease lapses soon; long enough for heartbeats under load
BEATS, CANDIDATES = 3, 2


def start(home: Path, port: int | None = None) -> tuple[subprocess.Popen[str], str]:
    return serve(home, workers=1, port=port, log_level="warning",
                 env={"STUDIO_RAY_NUM_CPUS": "2", "STUDIO_WORKER_LEASE_SECONDS": str(LEASE),
                      "STUDIO_WORKER_POLL_SECONDS": "0.5"})


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def renders_of(brief: Path) -> list[int]:
    """Live processes rendering ``brief`` (`python -m studio render BRIEF ...`)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"render" in args and str(brief).encode() in args and alive(int(proc.name)):
            found.append(int(proc.name))
    return found


def wait_for(what: str, check: Any, timeout: float, proc: subprocess.Popen[str] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the server exited ({proc.returncode}) waiting for {what}: "
                                 f"{proc.stdout.read() if proc.stdout else ''}")
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g} s"
        time.sleep(0.2)


def test_a_job_survives_sigkill_of_the_server_mid_render(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc, base = start(home)
    engine = db.make_engine(Settings(home=home).db_url)
    second: subprocess.Popen[str] | None = None
    try:
        headers = {"Authorization": f"Bearer {make_token(engine)}"}
        doc = small_brief("restart", candidates=CANDIDATES, beats=[
            {"id": f"b{i + 1:02d}", "duration": 1, "subject": subject}
            for i, subject in enumerate(["a lighthouse in a storm", "a fox in fresh snow", "a kayak on a still lake"])])
        assert len(doc["beats"]) == BEATS
        r = httpx.post(f"{base}/v1/jobs", json=doc, headers=headers, timeout=60)
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]

        # Until the candidates stage has finished and the job still runs: then kill.
        def candidates_done() -> bool:
            return any(e.type == "stage_done" and e.data.get("stage") == "candidates"
                       for e in jobs.events(engine, job_id, limit=100000))

        wait_for("the candidates stage of attempt 1", candidates_done, 240, proc)
        job = jobs.get(engine, job_id)
        assert job is not None and job.state == "running", job
        worker = [e for e in jobs.events(engine, job_id, limit=100000) if e.type == "worker"]
        assert len(worker) == 1 and worker[0].data["attempt"] == 1, worker
        render_pid = int(worker[0].data["render_pid"])
        brief_path = Path(worker[0].data["brief"])
        assert alive(render_pid) and render_pid in renders_of(brief_path)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        # The render is told by the kernel (SIGTERM) and stops; nothing renders the brief.
        wait_for("the render's exit after the server's death",
                 lambda: not alive(render_pid) and not renders_of(brief_path), 60)
        stuck = jobs.get(engine, job_id)
        assert stuck is not None and stuck.state == "running"  # nobody was left to say otherwise

        second, base = start(home)
        wait_for("the job's end after the restart",
                 lambda: (j := jobs.get(engine, job_id)) is not None and j.state in jobs.FINAL, 300, second)
        job = jobs.get(engine, job_id)
        assert job is not None and job.state == "succeeded", (job, job.error if job else None)
        assert job.failures == 0  # an interruption does not use up the retry budget
        tries = jobs.attempts(engine, job_id)
        assert [(a.n, a.state) for a in tries] == [(1, "interrupted"), (2, "succeeded")], tries
        assert "lapsed" in (tries[0].error or ""), tries[0].error
        assert not [a for a in jobs.attempts(engine, job_id) if a.state == "running"]

        # The stream (read from the restarted server; it ends after the final state).
        with httpx.stream("GET", f"{base}/v1/jobs/{job_id}/stream", headers=headers,
                          timeout=httpx.Timeout(30, read=30)) as s:
            assert s.status_code == 200
            events = Reader(s).rest()
        states = [(e.type, e.data["data"].get("attempt")) for e in events
                  if e.type in ("queued", "running", "interrupted", "succeeded", "failed", "canceled")]
        assert states == [("queued", None), ("running", 1), ("interrupted", 1), ("queued", 1), ("running", 2),
                          ("succeeded", 2)], states
        interrupted = next(e for e in events if e.type == "interrupted")
        assert "lapsed" in interrupted.data["data"]["reason"], interrupted.data
        assert next(e for e in events if e.type == "queued" and e.data["data"].get("attempt") == 1
                    ).data["data"]["reason"] == "interrupted"

        # Finished stages are not re-run: what attempt 1 finished, attempt 2 reused whole.
        done: dict[int, dict[str, dict[str, Any]]] = {1: {}, 2: {}}
        for e in events:
            if e.type == "stage_done":
                done[e.data["data"]["attempt"]][e.data["data"]["stage"]] = e.data["data"]
        assert "candidates" in done[1] and "conform" in done[2], done
        counted = [stage for stage, data in done[1].items() if "made" in data]
        assert "candidates" in counted, done[1]
        for stage in counted:
            before, after = done[1][stage], done[2][stage]
            assert after.get("made", 0) == 0, (stage, before, after)
            assert after.get("reused") == before.get("reused", 0) + before["made"], (stage, before, after)
        # No candidate generated twice: made over both attempts is what the brief asks for.
        made = sum(done[n].get("candidates", {}).get("made", 0) for n in (1, 2))
        assert made == BEATS * CANDIDATES, done
        assert done[2]["candidates"]["reused"] == BEATS * CANDIDATES, done[2]["candidates"]
        assert (Path(job.out_dir or "") / "manifest.json").is_file()
    finally:
        engine.dispose()
        for p in (proc, second):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.communicate(timeout=120)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.communicate()
