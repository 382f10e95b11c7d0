"""The worker: takes queued jobs (studio.jobs) and renders them with the real pipeline.

Each job runs as its own ``python -m studio render BRIEF --out STAGING --log-json``
process, so a crash or a kill of the render never takes the worker down, and a
re-run after one reuses every finished step (the engine's action cache). The worker:

- writes the submitted brief to ``HOME/jobs/JOB/brief.yaml`` and renders attempt N into
  its own folder, ``HOME/jobs/JOB/attempt-N/out``, which stays where it is: the run's
  records (run, timelines, deliverables) name their files by absolute path, so a folder
  moved after the render would leave them pointing at nothing;
- heartbeats every lease/3 seconds from a thread; when the job is being canceled it
  sends the render SIGTERM (the CLI cancels cleanly and exits 143) and finishes the job
  ``canceled``; when the lease is lost (it lapsed and another worker may run the job) it
  stops the render the same way and records nothing as the job's outcome;
- turns the render's JSON log lines into job events (stage_start, stage_done, warnings,
  and progress at most once a second per stage);
- publishes only while it holds the lease: ``finish(succeeded, out_dir=...)`` checks the
  lease and records the attempt's folder as the job's output in one transaction, and
  only then is ``HOME/jobs/JOB/out`` pointed at it (a symlink, swapped atomically); the
  folder of an attempt that lost its lease, failed or was canceled is deleted. A failed
  render finishes the job ``failed`` with the render's one-line error;
- when asked to stop (``stop`` set) in the middle of a job, stops the render and gives the
  lease back: the job is ``interrupted`` and queued again without a failure counted;
- when the job is being suspended (heartbeat "suspending"), stops the render the same way
  and gives the lease back: the job is ``interrupted``, then ``suspended`` until resumed;
- when the render stops at a gate (exit 3: the selection gate; exit 4 with the release
  gate's event: a policy violation or a QC failure), ends the attempt ``gated`` and the job
  waits (``awaiting_selection``, ``blocked``) with the gate as ``job.gate``; the attempt's
  folder is deleted (what a person needs is in the store and the database).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from studio import db, gates, jobs
from studio.settings import Settings
from studio.store import atomic_write_text

GATE_EXIT = 3  # the render stopped at a human gate (studio.errors.AwaitingDecision)
BLOCKED_EXIT = 4  # the release gate blocked it (studio.errors.ReleaseBlocked)
PROGRESS_EVERY = 1.0  # seconds between progress events of one stage
STOP_GRACE = 60.0  # seconds a SIGTERMed render gets to clean up before SIGKILL
ERROR_PREFIX = "studio: error: "
# The render's launcher: the kernel sends the render SIGTERM (which it treats as a cancel)
# when the worker dies, even by SIGKILL (Linux PR_SET_PDEATHSIG, kept across the exec),
# so a killed server leaves no orphan render running beside the one its job gets next.
_LAUNCH = """
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except (AttributeError, OSError):
    pass  # not Linux: the lease still keeps a second worker from publishing
if os.getppid() != int(sys.argv[1]):
    sys.exit(143)  # the worker died before the signal was set up
os.execv(sys.executable, [sys.executable, "-m", "studio", *sys.argv[2:]])
"""


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def job_dir(settings: Settings, job_id: str) -> Path:
    return settings.home / "jobs" / job_id


def run_worker(settings: Settings, *, worker_id: str | None = None, lease_seconds: float = 60.0,
               poll_seconds: float = 2.0, once: bool = False,
               stop: threading.Event | None = None) -> list[str]:
    """Run queued jobs until ``stop`` is set (or, ``once``, after one job or none found);
    the ids of the jobs it took. Lapsed leases are requeued before every claim, so a job
    whose worker died is picked up again."""
    worker_id = worker_id or default_worker_id()
    stop = stop or threading.Event()
    engine = db.make_engine(settings.db_url)
    db.init_db(engine)
    taken: list[str] = []
    try:
        while not stop.is_set():
            try:
                jobs.requeue_lapsed(engine)
                claim = jobs.claim(engine, worker_id, lease_seconds)
                if claim is None:
                    if once:
                        break
                    stop.wait(poll_seconds)
                    continue
                taken.append(claim.job_id)
                run_job(engine, settings, claim, lease_seconds=lease_seconds, stop=stop, worker_id=worker_id)
            except Exception as e:
                if once:
                    raise
                # A long-running worker outlives a database restart or a full disk: say so
                # and try again; a job it held comes back when its lease lapses.
                print(f"studio: warning: worker {worker_id}: {type(e).__name__}: {e}; retrying in "
                      f"{poll_seconds:g} s", file=sys.stderr)
                stop.wait(poll_seconds)
                continue
            if once:
                break
    finally:
        engine.dispose()
    return taken


def _render_env(settings: Settings) -> dict[str, str]:
    """The render's environment: this worker's, with its settings as STUDIO_* variables
    (a setting left unset is unset there too, not inherited)."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        key = f"STUDIO_{name.upper()}"
        if value is None:
            env.pop(key, None)
        elif isinstance(value, Path):
            # Absolute: the render runs in the job's folder, where a relative STUDIO_HOME
            # (the default ".studio") would be another, empty home.
            env[key] = str(value.expanduser().resolve())
        else:
            env[key] = str(value)
    return env


class _Events:
    """The render's JSON log lines as job events; progress throttled per stage."""

    def __init__(self, engine: Engine, job_id: str, attempt: int) -> None:
        self.engine, self.job_id, self.attempt = engine, job_id, attempt
        self.run_id: str | None = None
        self.gate: dict[str, Any] | None = None
        self.last_progress: dict[str, float] = {}
        self.unsent: dict[str, float] = {}  # progress amounts not yet in an event, per stage
        self.unsent_shots: dict[str, dict[str, float]] = {}  # the same per stage and shot (beat)

    def add(self, type_: str, data: dict[str, Any]) -> None:
        jobs.append_events(self.engine, self.job_id, [(type_, {**data, "attempt": self.attempt})])

    def line(self, rec: dict[str, Any]) -> None:
        kind = str(rec.pop("event", "log"))
        rec.pop("ts", None)
        stage = str(rec.get("stage", ""))
        if kind == "run_start":
            self.run_id = rec.get("run_id")
        if kind == "gate":  # the render stops at a gate: what it waits on (studio.gates, studio.release)
            self.gate = dict(rec)
        if kind == "progress":
            amount = float(rec.get("amount", 1) or 0)
            self.unsent[stage] = self.unsent.get(stage, 0.0) + amount
            if rec.get("shot"):  # per shot too, so a job's progress can say which beats are done
                shots = self.unsent_shots.setdefault(stage, {})
                shots[str(rec["shot"])] = shots.get(str(rec["shot"]), 0.0) + amount
            at = time.monotonic()
            if at - self.last_progress.get(stage, 0.0) < PROGRESS_EVERY:
                return
            self.last_progress[stage] = at
            rec["amount"] = self.unsent.pop(stage)
            if stage in self.unsent_shots:
                rec["shots"] = self.unsent_shots.pop(stage)
        elif kind == "stage_done" and stage in self.unsent:
            # the progress not sent yet, so a stage's amounts add up
            rest: dict[str, Any] = {"stage": stage, "amount": self.unsent.pop(stage)}
            if stage in self.unsent_shots:
                rest["shots"] = self.unsent_shots.pop(stage)
            self.add("progress", rest)
        self.add(kind, rec)


def _terminate(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass


def _watch(engine: Engine, claim: jobs.Claim, proc: subprocess.Popen[str], lease_seconds: float,
           stop: threading.Event, ended: threading.Event, why: list[str]) -> None:
    """The heartbeat thread: extend the lease every lease/3 seconds; stop the render
    when the job is being canceled, the lease is lost or the worker is stopping."""
    interval = max(lease_seconds / 3.0, 0.05)
    next_beat = time.monotonic() + interval
    sigterm_at: float | None = None
    while not ended.wait(min(interval, 0.5)):
        if sigterm_at is not None and time.monotonic() - sigterm_at > STOP_GRACE:
            proc.kill()  # it did not stop by itself in time
        if stop.is_set() and not why:
            why.append("stop")
        if time.monotonic() >= next_beat:
            next_beat = time.monotonic() + interval
            try:
                status = jobs.heartbeat_status(engine, claim.lease_token, lease_seconds)
            except Exception:  # noqa: BLE001 - a database hiccup: try again next beat
                status = "held"
            # canceling or lost decide the outcome over suspending, and all three over a stop
            if status != "held" and (not why or why[0] in ("stop", "suspending")):
                why[:] = [status]
        if why and sigterm_at is None:
            sigterm_at = time.monotonic()
            _terminate(proc)


def _error_line(rc: int, tail: list[str]) -> str:
    for line in tail:
        if line.startswith(ERROR_PREFIX):
            return line[len(ERROR_PREFIX):].strip()
    last = next((line for line in reversed(tail) if line.strip()), "")
    return f"the render exited with code {rc}" + (f": {last.strip()}" if last else " and said nothing")


def run_job(engine: Engine, settings: Settings, claim: jobs.Claim, *, lease_seconds: float,
            stop: threading.Event, worker_id: str = "") -> str:
    """Render one claimed job; what became of it: succeeded, failed, canceled,
    interrupted (the worker stopped), suspended (given back to be suspended) or lost (the lease was lost; nothing recorded)."""
    import yaml

    folder = job_dir(settings, claim.job_id)
    folder.mkdir(parents=True, exist_ok=True)
    brief_path = folder / "brief.yaml"
    # As submitted, with the rounds of more candidates people asked for since (studio.gates).
    brief = gates.brief_for_render(claim.brief, claim.steer)
    atomic_write_text(brief_path, yaml.safe_dump(brief, sort_keys=False, allow_unicode=True))
    link = folder / "out"
    attempt_dir = folder / f"attempt-{claim.n}"
    for old in folder.glob("attempt-*"):  # earlier attempts' (killed with their worker)
        if old != attempt_dir and not (link.is_symlink() and link.resolve() == (old / "out").resolve()):
            shutil.rmtree(old, ignore_errors=True)
    out = attempt_dir / "out"
    events = _Events(engine, claim.job_id, claim.n)
    proc = subprocess.Popen([sys.executable, "-c", _LAUNCH, str(os.getpid()),
                             "render", str(brief_path), "--out", str(out), "--log-json"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=_render_env(settings), cwd=folder, start_new_session=True)
    ended = threading.Event()
    why: list[str] = []
    watcher = threading.Thread(target=_watch, args=(engine, claim, proc, lease_seconds, stop, ended, why),
                               name=f"heartbeat-{claim.job_id}", daemon=True)
    watcher.start()
    tail: list[str] = []
    try:
        events.add("worker", {"worker": worker_id, "pid": os.getpid(), "render_pid": proc.pid,
                              "brief": str(brief_path)})
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.rstrip("\n")
            try:
                rec = json.loads(line)
            except ValueError:
                rec = None
            if isinstance(rec, dict) and "event" in rec:
                if not why or why[0] != "lost":  # a lost job's events are another worker's now
                    events.line(rec)
            elif line.strip():
                tail = (tail + [line])[-20:]
        rc = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ended.set()
        watcher.join()

    def discard() -> None:
        shutil.rmtree(attempt_dir, ignore_errors=True)

    reason = why[0] if why else None
    if reason == "lost":
        discard()
        events.add("lease_lost", {"message": "the lease was lost (it lapsed); the render was stopped "
                                             "and its output discarded"})
        return "lost"
    if reason == "stop":
        discard()
        jobs.interrupt(engine, claim.lease_token, f"worker {worker_id} stopped")
        return "interrupted"
    if reason == "suspending":  # the lease back: the job ends suspended (finished steps stay cached)
        discard()
        jobs.interrupt(engine, claim.lease_token, f"suspended: worker {worker_id} stopped the render")
        return "suspended"
    if reason == "canceling" or rc in (130, 143):
        discard()
        jobs.finish(engine, claim.lease_token, "canceled", run_id=events.run_id)
        return "canceled"
    if rc == GATE_EXIT and events.gate is not None:
        # Stopped at the selection gate: the job waits for picks; the run's candidates are
        # in the store and the database, so nothing of this attempt needs keeping.
        discard()
        if gates.wait(engine, claim.lease_token, "awaiting_selection", events.gate, run_id=events.run_id):
            return "gated"
        return "canceled" if jobs.get(engine, claim.job_id).state == "canceled" else "lost"  # type: ignore[union-attr]
    if rc == BLOCKED_EXIT and events.gate is not None and events.gate.get("gate") == "release":
        # The release gate refused what it made: nothing is published, the job waits for an
        # approver's overrides (or a fix). The QC reports were kept in the store by the
        # render, so nothing of this attempt needs keeping either.
        discard()
        gate = _release_gate(claim.job_id, events.gate, _error_line(rc, tail))
        if gates.wait(engine, claim.lease_token, "blocked", gate, run_id=events.run_id):
            return "gated"
        return "canceled" if jobs.get(engine, claim.job_id).state == "canceled" else "lost"  # type: ignore[union-attr]
    if rc != 0:
        discard()
        jobs.finish(engine, claim.lease_token, "failed", error=_error_line(rc, tail), run_id=events.run_id)
        return "failed"
    release = _release(out, events.run_id)
    if claim.brief.get("approvals"):
        held = _approval_gate(engine, claim, release)
        if held is not None:
            return held
    # Publish only while the lease is ours: a worker that lost it must not replace the
    # output of the one that holds it now.
    if not jobs.holds_lease(engine, claim.lease_token):
        discard()
        if jobs.heartbeat_status(engine, claim.lease_token, lease_seconds) == "canceling":
            jobs.finish(engine, claim.lease_token, "canceled", run_id=events.run_id)
            return "canceled"
        events.add("lease_lost", {"message": "the render finished after the lease was lost; its "
                                             "output was discarded"})
        return "lost"
    if not jobs.finish(engine, claim.lease_token, "succeeded", run_id=events.run_id, out_dir=str(out.resolve()),
                       release=release):
        discard()
        events.add("lease_lost", {"message": "the lease was lost just before publishing; the output "
                                             "was discarded and the job runs again"})
        return "lost"
    _point(link, out.relative_to(folder))
    return "succeeded"


def _release(out: Path, run_id: str | None) -> dict[str, Any]:
    """What a finished render would deliver, from its manifest: the release's content hash
    (studio.gates.release_hash), its deliverables and each beat's candidates and selection
    (what reviewers sign off and pick from)."""
    manifest = json.loads((out / "manifest.json").read_text())
    return {
        "gate": None, "run_id": run_id, "content_sha256": gates.release_hash(manifest.get("deliverables") or []),
        "out": str(out),
        # With what the release gate found and did (QC verdict and report, policy, signature,
        # licences): the page shows it beside each deliverable.
        "deliverables": [{**{k: d.get(k) for k in ("spec", "kind", "path", "sha256", "size", "width", "height",
                                                    "fps", "duration", "locale", "qc", "policy", "rights")},
                          "provenance": {k: v for k, v in (d.get("provenance") or {}).items()
                                         if k in ("signed", "signer", "source_type", "disclosures", "why")}}
                         for d in manifest.get("deliverables") or []],
        "beats": [{"beat": b.get("id"), "selected": b.get("selected"),
                   "selected_sha256": b.get("selected_keyframe_sha256"), "reason": b.get("selection_reason"),
                   "candidates": [{"id": c.get("id"), "index": c.get("index"), "seed": c.get("seed"),
                                   "score": c.get("score"), "sha256": c.get("keyframe_sha256")}
                                  for c in b.get("candidates") or []]}
                  for b in manifest.get("beats") or []],
    }


def _release_gate(job_id: str, gate: dict[str, Any], error: str) -> dict[str, Any]:
    """The release gate's event as the job keeps it: what it still holds (``waiting_on``),
    the render's error line, and each QC report's download URL (the reports are in the
    store; GET /v1/jobs/{id}/gate/reports/{name} serves only the ones the gate names)."""
    qc = []
    for item in gate.get("qc") or []:
        urls = {f"{k}_url": f"/v1/jobs/{job_id}/gate/reports/{Path(str(item[k])).name}"
                for k in ("report", "html") if item.get(k)}
        qc.append({**item, **urls})
    out = {**gate, "qc": qc, "error": error}
    out["waiting_on"] = gates.release_waiting_on(out)
    return out


def _approval_gate(engine: Engine, claim: jobs.Claim, release: dict[str, Any]) -> str | None:
    """The brief asks for sign-offs: publish only a release every one of them approved
    (by its content hash); else the job waits at awaiting_approval (or stays rejected)
    with what it would deliver, kept in this attempt's folder for the reviewers. None when
    approved (publish goes on)."""
    job = jobs.get(engine, claim.job_id)
    assert job is not None
    content = release["content_sha256"]
    state = gates.approval_state(engine, job, content)
    if state == "approved":
        return None
    roles = gates.approvals_needed(claim.brief)
    decided = gates.sign_offs(engine, job, content)
    gate = {**release, "gate": "approval", "roles": roles,
            "waiting_on": [r for r in roles if decided.get(r) is None or decided[r].kind != "approve"]}  # type: ignore[union-attr]
    target = "rejected" if state == "rejected" else "awaiting_approval"
    if gates.wait(engine, claim.lease_token, target, gate, run_id=release["run_id"]):
        return "gated"
    shutil.rmtree(Path(release["out"]).parent, ignore_errors=True)
    return "lost"


def _point(link: Path, target: Path) -> None:
    """Make ``link`` a symlink to ``target``, replacing what it pointed at in one rename."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)
