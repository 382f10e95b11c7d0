"""Server-sent events (GET /v1/jobs/{id}/stream, GET /v1/stream) and the CLI as a client
of the server (studio submit, jobs, job, cancel).

Against a real `studio serve` (uvicorn) in a subprocess; the tests write events and state
changes with studio.jobs straight into the same database, as a worker in another process
would. What it proves: events arrive in id order with their id, type and JSON; a client
that reconnects with Last-Event-ID (or ?after=) gets exactly what it missed; a job's stream
ends after its final state; unknown ids are 404 before any streaming; the CLI submits,
lists, shows and cancels jobs, prints a refused brief's problems one line each, and waits
for a real render while printing its progress."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from studio import auth, db, jobs
from studio.api import stream
from studio.api.app import create_app
from studio.settings import Settings

from .conftest import free_port, serve

ROOT = Path(__file__).resolve().parents[1]


def small_brief(campaign: str, **over: Any) -> dict[str, Any]:
    """Two one-second beats, one channel, no music, two candidates: a short render."""
    return {"project": "stream", "campaign": campaign, "purpose": "a job followed by the client",
            "channels": ["youtube-1080p"], "style_pack": "golden-hour", "candidates": 2,
            "captions": False, "handles": 0, "music": {"source": "none"}, "effects": {"enabled": False},
            "beats": [{"id": "b01", "duration": 1, "subject": "a lighthouse in a storm"},
                      {"id": "b02", "duration": 1, "subject": "a fox in fresh snow"}], **over}


@dataclass
class Server:
    base: str
    home: Path
    engine: Any
    proc: subprocess.Popen[str]
    token: str = ""  # an editor token of project "stream" (the briefs' project)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a `studio` client: the server's URL and token, no local database."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("STUDIO_")}
        return {**env, "STUDIO_SERVER": self.base, "STUDIO_TOKEN": self.token, **extra}


def make_token(engine: Any, project: str = "stream", role: str = "editor") -> str:
    """A token's secret, made by the code `studio token create` runs."""
    db.init_db(engine)
    return auth.create(engine, project=project, role=role, name=f"test-{role}")[1]


def start_server(home: Path, workers: int, port: int | None = None) -> Server:
    proc, base = serve(home, workers=workers, port=port, log_level="warning", env={"STUDIO_RAY_NUM_CPUS": "2"})
    engine = db.make_engine(Settings(home=home).db_url)
    return Server(base, home, engine, proc, make_token(engine))


def stop_server(server: Server) -> str:
    server.engine.dispose()
    server.proc.send_signal(signal.SIGTERM)
    try:
        out, _ = server.proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        out, _ = server.proc.communicate()
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("stream") / "home", workers=0)
    try:
        yield s
    finally:
        out = stop_server(s)
        assert s.proc.returncode == 0, out


def submit(server: Server, campaign: str) -> str:
    r = httpx.post(f"{server.base}/v1/jobs", json=small_brief(campaign), headers=server.auth, timeout=60)
    assert r.status_code == 201, r.text
    return r.json()["id"]


# -- a reader of the wire format, independent of the client's --------------------------


@dataclass
class Event:
    id: int
    type: str
    data: dict[str, Any]


class Reader:
    """Reads an open SSE response an event at a time; counts comment lines."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()
        self.comments = 0
        self.ended = False

    def next(self) -> Event | None:
        fields: dict[str, str] = {}
        for line in self.lines:
            if line == "":
                if fields:
                    data = json.loads(fields["data"])
                    assert data["id"] == int(fields["id"]) and data["type"] == fields["event"], fields
                    return Event(int(fields["id"]), fields["event"], data)
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            assert name in ("id", "event", "data") and name not in fields, line
            fields[name] = value[1:] if value.startswith(" ") else value
        self.ended = True
        return None

    def take(self, n: int) -> list[Event]:
        got = []
        for _ in range(n):
            event = self.next()
            assert event is not None, f"the stream ended after {got}"
            got.append(event)
        return got

    def rest(self) -> list[Event]:
        got = []
        while (event := self.next()) is not None:
            got.append(event)
        return got


def open_stream(server: Server, path: str, headers: dict[str, str] | None = None) -> Any:
    return httpx.stream("GET", f"{server.base}{path}", headers={**server.auth, **(headers or {})},
                        timeout=httpx.Timeout(30, read=30))


# -- the streams -----------------------------------------------------------------------


def test_a_job_stream_sends_events_in_order_and_a_reconnect_gets_exactly_what_it_missed(server: Server) -> None:
    job_id = submit(server, "order")
    jobs.append_events(server.engine, job_id, [("progress", {"stage": "a", "amount": 1})])
    with open_stream(server, f"/v1/jobs/{job_id}/stream") as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        reader = Reader(r)
        first = reader.take(2)
        assert [e.type for e in first] == ["queued", "progress"]
        assert first[0].data["job_id"] == job_id and first[0].data["data"]["reason"] == "submitted"
        # Written while the stream is open (by "another process"): they arrive, in order.
        jobs.append_events(server.engine, job_id, [("stage_start", {"stage": "b", "total": 2}),
                                                   ("progress", {"stage": "b", "amount": 1})])
        live = reader.take(2)
        assert [e.type for e in live] == ["stage_start", "progress"]
    seen = first + live
    assert [e.id for e in seen] == sorted(e.id for e in seen) and len({e.id for e in seen}) == 4
    # The connection dropped; meanwhile three more events (one of another job between them).
    other = submit(server, "order-other")
    jobs.append_events(server.engine, job_id, [("progress", {"stage": "b", "amount": 1})])
    jobs.append_events(server.engine, other, [("progress", {"stage": "x", "amount": 1})])
    jobs.append_events(server.engine, job_id, [("stage_done", {"stage": "b"})])
    missed = [e.id for e in jobs.events(server.engine, job_id, after_id=seen[-1].id)]
    assert len(missed) == 2
    with open_stream(server, f"/v1/jobs/{job_id}/stream?after=0",
                     headers={"Last-Event-ID": str(seen[-1].id)}) as r:  # the header wins over ?after=
        reader = Reader(r)
        again = reader.take(2)
        assert [e.id for e in again] == missed and [e.type for e in again] == ["progress", "stage_done"]
        # ?after= alone does the same.
    with open_stream(server, f"/v1/jobs/{job_id}/stream?after={seen[-1].id}") as r:
        assert [e.id for e in Reader(r).take(2)] == missed
    jobs.cancel(server.engine, job_id)
    jobs.cancel(server.engine, other)


def test_a_job_stream_ends_after_the_final_state_and_its_last_events(server: Server) -> None:
    job_id = submit(server, "final")
    # Only this job is queued for a worker of ours (the server has none): claim it by its id.
    claim = None
    for _ in range(20):
        claim = jobs.claim(server.engine, "w-stream", 60)
        assert claim is not None
        if claim.job_id == job_id:
            break
        jobs.finish(server.engine, claim.lease_token, "canceled")
    assert claim is not None and claim.job_id == job_id
    with open_stream(server, f"/v1/jobs/{job_id}/stream") as r:
        reader = Reader(r)
        assert [e.type for e in reader.take(2)] == ["queued", "running"]
        jobs.append_events(server.engine, job_id, [("stage_done", {"stage": "conform"})])
        assert jobs.finish(server.engine, claim.lease_token, "succeeded", run_id="run_x")
        t0 = time.monotonic()
        rest = reader.rest()  # returns only because the server ends the stream
        assert time.monotonic() - t0 < 10
    assert [e.type for e in rest] == ["stage_done", "succeeded"] and reader.ended
    assert rest[-1].data["data"]["run_id"] == "run_x"
    # A finished job's stream sends what it has and ends at once, from any point.
    with open_stream(server, f"/v1/jobs/{job_id}/stream", headers={"Last-Event-ID": str(rest[0].id)}) as r:
        assert [e.type for e in Reader(r).rest()] == ["succeeded"]


def test_the_all_jobs_stream(server: Server) -> None:
    start = max([e.id for e in jobs.events(server.engine, None, after_id=0, limit=100000)], default=0)
    a, b = submit(server, "all-a"), submit(server, "all-b")
    jobs.append_events(server.engine, a, [("progress", {"stage": "a", "amount": 1})])
    with open_stream(server, "/v1/stream", headers={"Last-Event-ID": str(start)}) as r:
        reader = Reader(r)
        got = reader.take(3)
        assert [(e.data["job_id"], e.type) for e in got] == [(a, "queued"), (b, "queued"), (a, "progress")]
        jobs.cancel(server.engine, b)
        more = reader.take(1)  # the stream of every job does not end with one job
        assert (more[0].data["job_id"], more[0].type) == (b, "canceled")
    ids = [e.id for e in got + more]
    assert ids == sorted(ids) and ids[0] > start
    jobs.cancel(server.engine, a)


def test_unknown_ids_are_404_before_streaming(server: Server) -> None:
    r = httpx.get(f"{server.base}/v1/jobs/job_0000/stream", headers=server.auth, timeout=10)
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    assert r.json()["detail"] == "no job 'job_0000'"
    assert httpx.get(f"{server.base}/v1/stream?after=-1", headers=server.auth, timeout=10).status_code == 422
    # Another project's job reads as unknown, and its events are not in this token's streams.
    theirs, _ = jobs.submit(server.engine, brief=small_brief("theirs", project="other"), project="other",
                            campaign="theirs", brief_sha256="s", request_sha256="theirs")
    jobs.cancel(server.engine, theirs.id)
    r = httpx.get(f"{server.base}/v1/jobs/{theirs.id}/stream", headers=server.auth, timeout=10)
    assert r.status_code == 404 and r.json()["detail"] == f"no job {theirs.id!r}"
    mine = submit(server, "mine")
    jobs.cancel(server.engine, mine)
    with open_stream(server, "/v1/stream", headers={"Last-Event-ID": str(theirs_first(server, theirs.id))}) as r:
        assert [(e.data["job_id"], e.type) for e in Reader(r).take(2)] == [(mine, "queued"), (mine, "canceled")]
    # Without a token: 401, before any streaming.
    for path in (f"/v1/jobs/{mine}/stream", "/v1/stream"):
        assert httpx.get(f"{server.base}{path}", timeout=10).status_code == 401
    paths = httpx.get(f"{server.base}/openapi.json", timeout=10).json()["paths"]
    assert {"/v1/stream", "/v1/jobs/{job_id}/stream"} <= set(paths)


def test_keep_alive_comments_while_nothing_happens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A quiet stream sends comment lines; the job's cancel, written meanwhile, ends it."""
    monkeypatch.setattr(stream, "KEEPALIVE_SECONDS", 0.2)
    monkeypatch.setattr(stream, "POLL_SECONDS", 0.05)
    settings = Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 's.db'}")
    engine = db.make_engine(settings.db_url)
    headers = {"Authorization": f"Bearer {make_token(engine)}"}
    try:
        with TestClient(create_app(settings, engine), headers=headers) as client:
            job_id = client.post("/v1/jobs", json=small_brief("quiet")).json()["id"]
            threading.Timer(1.5, jobs.cancel, args=(engine, job_id)).start()
            with client.stream("GET", f"/v1/jobs/{job_id}/stream") as r:
                reader = Reader(r)
                events = reader.rest()
        assert [e.type for e in events] == ["queued", "canceled"]
        assert reader.comments >= 4, reader.comments  # the opening comment and keep-alives
    finally:
        engine.dispose()


def test_a_final_job_ends_the_stream_even_with_many_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """More events than one read holds: all of them are sent before the stream ends."""
    monkeypatch.setattr(stream, "BATCH", 3)
    settings = Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 's.db'}")
    engine = db.make_engine(settings.db_url)
    headers = {"Authorization": f"Bearer {make_token(engine)}"}
    try:
        with TestClient(create_app(settings, engine), headers=headers) as client:
            job_id = client.post("/v1/jobs", json=small_brief("many")).json()["id"]
            jobs.append_events(engine, job_id, [("progress", {"stage": "s", "amount": i}) for i in range(7)])
            jobs.cancel(engine, job_id)
            with client.stream("GET", f"/v1/jobs/{job_id}/stream") as r:
                events = Reader(r).rest()
        assert [e.type for e in events] == ["queued", *["progress"] * 7, "canceled"]
        assert [e.data["data"]["amount"] for e in events[1:-1]] == list(range(7))
    finally:
        engine.dispose()


# -- the CLI as a client ------------------------------------------------------------------


def studio(server: Server, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """`studio ARGS` in a process of its own, with the server's URL and token in its environment."""
    return subprocess.run([sys.executable, "-m", "studio", *args], cwd=ROOT, env=server.env(**env),
                          capture_output=True, text=True, timeout=timeout, check=False)


def write_brief(tmp_path: Path, doc: dict[str, Any], name: str = "brief.yaml") -> Path:
    path = tmp_path / name
    path.write_text(_yaml(doc))
    return path


def test_cli_submit_no_wait_job_jobs_and_cancel(server: Server, tmp_path: Path) -> None:
    brief = write_brief(tmp_path, small_brief("cli"))
    made = studio(server, "submit", str(brief), "--no-wait", "--json", "--priority", "70", "--label", "team=cli",
                  "--idempotency-key", "cli-1")
    assert made.returncode == 0, made.stderr
    job = json.loads(made.stdout)
    assert (job["state"], job["priority"], job["labels"], job["campaign"]) == ("queued", 70, {"team": "cli"}, "cli")
    assert job["brief"] == small_brief("cli")  # the YAML as written, read by the server
    again = studio(server, "submit", str(brief), "--no-wait", "--priority", "70", "--label", "team=cli",
                   "--idempotency-key", "cli-1")
    assert again.returncode == 0 and again.stdout.strip() == job["id"], again.stderr  # the same job
    shown = studio(server, "job", job["id"], "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["state"] == "queued", shown.stderr
    listed = studio(server, "jobs", "--state", "queued", "--json")
    assert listed.returncode == 0 and job["id"] in [j["id"] for j in json.loads(listed.stdout)], listed.stderr
    text = studio(server, "jobs", "--state", "queued")
    assert any(line.startswith(f"{job['id']}  queued") and "stream/cli" in line
               for line in text.stdout.splitlines()), text.stdout
    canceled = studio(server, "cancel", job["id"], "--json")
    assert canceled.returncode == 0 and json.loads(canceled.stdout)["state"] == "canceled", canceled.stderr
    assert studio(server, "cancel", job["id"]).stdout.strip() == f"job {job['id']}: canceled"
    shown = studio(server, "job", job["id"])
    assert "state:        canceled" in shown.stdout.splitlines(), shown.stdout
    # The server URL from --server as well as STUDIO_SERVER.
    listed = studio(server, "jobs", "--server", server.base, "--state", "canceled", STUDIO_SERVER="")
    assert listed.returncode == 0 and job["id"] in listed.stdout, listed.stderr
    dry = studio(server, "submit", str(brief), "--dry-run", "--json")
    assert dry.returncode == 0 and json.loads(dry.stdout)["plan"]["steps"], dry.stderr


def test_cli_prints_what_the_server_refused_one_line_each(server: Server, tmp_path: Path) -> None:
    doc = small_brief("bad")
    doc["beats"][0]["duration"] = -3
    del doc["beats"][1]["subject"]
    brief = write_brief(tmp_path, doc)
    r = studio(server, "submit", str(brief), "--no-wait")
    assert r.returncode == 2 and r.stdout == "", r
    lines = r.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith(f"studio: error: {brief}: beats[") for line in lines), lines
    assert "beats[0].duration" in lines[0] and "beats[1].subject" in lines[1]
    # Another project's job, or none: 404 in one line.
    r = studio(server, "job", "job_0000")
    assert (r.returncode, r.stderr.strip()) == (
        2, "studio: error: no job 'job_0000' — check the id; GET /v1/jobs lists the jobs"), r.stderr
    # No token: one line, exit 2.
    r = studio(server, "jobs", STUDIO_TOKEN="")
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "token" in r.stderr, r.stderr
    # Nothing listening: one line naming the URL and `studio serve`.
    nowhere = f"http://127.0.0.1:{free_port()}"
    r = studio(server, "jobs", STUDIO_SERVER=nowhere)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"studio: error: cannot reach the Studio server at {nowhere}") and \
        "`studio serve`" in r.stderr


def test_cli_submit_exits_1_with_the_error_of_a_job_that_failed(server: Server, tmp_path: Path) -> None:
    brief = write_brief(tmp_path, small_brief("fails"))
    client = subprocess.Popen([sys.executable, "-m", "studio", "submit", str(brief)], cwd=ROOT, env=server.env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        for n in range(1, 4):  # three attempts (max_attempts), each failing
            while (claim := jobs.claim(server.engine, "w-fail", 60)) is None:
                assert time.monotonic() < deadline and client.poll() is None
                time.sleep(0.2)
            assert jobs.get(server.engine, claim.job_id).campaign == "fails"  # type: ignore[union-attr]
            assert jobs.finish(server.engine, claim.lease_token, "failed", error=f"boom {n}")
        stdout, stderr = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
    assert client.returncode == 1 and stdout == "", stderr
    lines = stderr.splitlines()
    assert lines[-1] == f"studio: error: job {claim.job_id} failed: boom 3", stderr
    assert sum("failed attempt" in line and "queued again" in line for line in lines) == 2, stderr


def test_cli_follows_a_job_across_a_server_restart(tmp_path: Path) -> None:
    """`studio submit` waits: the server stops (SIGTERM ends the open stream, and the server
    exits at once), events are written while it is down, it starts again on the same port;
    the client reconnects with Last-Event-ID and prints each event once, then exits with the
    job's outcome: 143 for canceled."""
    home = tmp_path / "home"
    first = start_server(home, workers=0)
    port = int(first.base.rsplit(":", 1)[1])
    brief = write_brief(tmp_path, small_brief("restart"))
    client = subprocess.Popen([sys.executable, "-m", "studio", "submit", str(brief)], cwd=ROOT, env=first.env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = None
    try:
        deadline = time.monotonic() + 60
        while not (ids := [j.id for j in jobs.list_jobs(first.engine)[0]]):
            assert time.monotonic() < deadline and client.poll() is None
            time.sleep(0.2)
        job_id = ids[0]
        jobs.append_events(first.engine, job_id, [("stage_start", {"stage": "candidates", "total": 4})])
        time.sleep(1.5)  # the client has it
        t0 = time.monotonic()
        out = stop_server(first)
        assert first.proc.returncode == 0 and time.monotonic() - t0 < 15, out
        jobs.append_events(first.engine, job_id, [("progress", {"stage": "candidates", "amount": 2}),
                                                  ("progress", {"stage": "candidates", "amount": 2}),
                                                  ("stage_done", {"stage": "candidates", "made": 4})])
        second = start_server(home, workers=0, port=port)
        time.sleep(2.5)  # the client reconnects (it retries every second)
        jobs.cancel(second.engine, job_id)
        stdout, stderr = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
        if second is not None:
            stop_server(second)
    assert client.returncode == 143, stderr
    lines = stderr.splitlines()
    assert lines.count("studio: candidates ...") == 1, stderr
    assert sum(line.startswith("studio: candidates 2/4") for line in lines) == 1, stderr
    assert sum(line.startswith("studio: candidates 4/4") for line in lines) == 1, stderr
    assert sum(line.startswith("studio: candidates done in") and "made=4" in line for line in lines) == 1, stderr
    assert any("stream dropped" in line and "reconnecting" in line for line in lines), stderr
    assert lines[-1] == f"studio: job {job_id} was canceled", stderr


def test_cli_submit_waits_for_a_real_render(tmp_path: Path) -> None:
    """The server renders (one worker); the client prints the stages' progress as the local
    render does and exits 0 with the job's output folder."""
    server = start_server(tmp_path / "home", workers=1)
    try:
        brief = write_brief(tmp_path, small_brief("render"))
        r = studio(server, "submit", str(brief), timeout=400)
    finally:
        out = stop_server(server)
    assert r.returncode == 0, r.stderr + out[-3000:]
    lines = r.stderr.splitlines()
    out_dir = Path(r.stdout.strip())
    assert (out_dir / "manifest.json").is_file(), r.stdout
    for stage in ("candidates", "conform"):
        assert f"studio: {stage} ..." in lines, r.stderr
        assert any(line.startswith(f"studio: {stage} done in") for line in lines), r.stderr
    assert any(line.startswith("studio: candidates ") and "/4" in line for line in lines), r.stderr
    assert any("running (attempt 1" in line for line in lines) and lines[-1].endswith(" succeeded"), r.stderr


def theirs_first(server: Server, job_id: str) -> int:
    """The id just before ``job_id``'s first event."""
    return jobs.events(server.engine, job_id)[0].id - 1


def _yaml(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False)
