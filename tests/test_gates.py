"""Human gates on server jobs (studio.gates, studio/api/gates.py, the worker's gates), on
SQLite and PostgreSQL.

What it proves, with real renders run by the real worker: a brief with ``selection: human``
and ``approvals: [brand]`` waits at ``awaiting_selection`` after its candidates (nothing
published), resumes once every beat is picked through the API (no candidate made again),
waits at ``awaiting_approval`` with the release's content hash, refuses a sign-off naming
other content (409) and a viewer's pick or an editor's sign-off (403), publishes once brand
approves, and a pick changed after delivery renders again and waits for a new sign-off on
the new content (the old approval no longer counts). Each decision is in the records with
who made it and the content hash it was made on. More candidates steered by a note join the
beat's sheet with a new prompt. Cancel at a gate cancels at once. The render alone (the
CLI) stops at the selection gate with exit 3 and the command to pick.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlmodel import Session

from studio import auth, db, gates, jobs
from studio.api.app import create_app
from studio.settings import Settings
from studio.worker import run_worker

from . import test_api as base

db_url = base.db_url


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(home=tmp_path / "home", database_url=db_url, ray_num_cpus=2)


def gated_brief(**over: Any) -> dict[str, Any]:
    """Two one-second beats, one channel, no sound, two candidates: a short render."""
    return {"project": "gates", "campaign": "spring", "purpose": "a job people pick and sign off",
            "channels": ["youtube-1080p"], "style_pack": "golden-hour", "candidates": 2,
            "captions": False, "handles": 0, "music": {"source": "none"}, "effects": {"enabled": False},
            "selection": "human", "approvals": ["brand"],
            "beats": [{"id": "b01", "duration": 1, "subject": "a lighthouse in a storm"},
                      {"id": "b02", "duration": 1, "subject": "a fox in fresh snow"}], **over}


class Api:
    """The app over the settings' database, a token per role of project gates."""

    def __init__(self, settings: Settings) -> None:
        settings.home.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.engine = db.make_engine(settings.db_url)
        db.init_db(self.engine)
        self.tokens = {role: auth.create(self.engine, project="gates", role=role, name=role)[1]
                       for role in auth.ROLES}
        self.client = TestClient(create_app(settings, self.engine))

    def call(self, method: str, path: str, role: str = "editor", **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[role]}", **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.call("GET", f"/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def work(self) -> str:
        """One job through the real worker (a `studio render` subprocess); its state after."""
        taken = run_worker(self.settings, once=True, lease_seconds=60, poll_seconds=0.2)
        assert len(taken) == 1
        return self.job(taken[0])["state"]

    def close(self) -> None:
        self.client.close()
        self.engine.dispose()


@pytest.fixture
def api(settings: Settings) -> Any:
    a = Api(settings)
    yield a
    a.close()


def stage_counts(api: Api, job_id: str, stage: str) -> list[dict[str, Any]]:
    """The stage_done events of ``stage``, one per attempt that ran it."""
    return [e.data for e in jobs.events(api.engine, job_id) if e.type == "stage_done" and e.data.get("stage") == stage]


def test_a_job_waits_at_each_gate_and_resumes_on_the_decisions(api: Api) -> None:
    r = api.call("POST", "/v1/jobs", content=yaml.safe_dump(gated_brief()),
                 headers={"content-type": "application/yaml"})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]

    # 1. The selection gate: candidates made, nothing published, the job waits on both beats.
    assert api.work() == "awaiting_selection"
    job = api.job(job_id)
    assert job["out_dir"] is None and job["gate"]["waiting_on"] == ["b01", "b02"]
    assert [a.state for a in jobs.attempts(api.engine, job_id)] == ["gated"]
    sheet = api.call("GET", f"/v1/jobs/{job_id}/candidates", "viewer").json()
    assert sheet["gate"] == "selection" and [b["beat"] for b in sheet["beats"]] == ["b01", "b02"]
    cands = {b["beat"]: b["candidates"] for b in sheet["beats"]}
    assert all(len(c) == 2 for c in cands.values())
    img = api.call("GET", cands["b01"][0]["image_url"], "viewer")
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    assert hashlib.sha256(img.content).hexdigest() == cands["b01"][0]["sha256"]
    assert stage_counts(api, job_id, "candidates")[-1]["made"] == 4

    # Who may decide what: a viewer cannot pick, an editor cannot sign off; nothing is recorded.
    pick_b01 = {"beat": "b01", "candidate": cands["b01"][1]["id"], "note": "better horizon"}
    assert api.call("POST", f"/v1/jobs/{job_id}/picks", "viewer", json=pick_b01).status_code == 403
    sign = {"role": "brand", "decision": "approve", "content_sha256": "0" * 64}
    assert api.call("POST", f"/v1/jobs/{job_id}/approvals", "editor", json=sign).status_code == 403
    r = api.call("POST", f"/v1/jobs/{job_id}/approvals", "approver", json=sign)
    assert r.status_code == 409 and "not awaiting approval" in r.json()["detail"]
    # A candidate of another beat, an unknown one, an unknown reason code: 422 naming the field.
    r = api.call("POST", f"/v1/jobs/{job_id}/picks", json={"beat": "b02", "candidate": cands["b01"][0]["id"]})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "beat", r.text
    r = api.call("POST", f"/v1/jobs/{job_id}/picks", json={"beat": "b01", "candidate": "cand_nope"})
    assert r.status_code == 422 and "is not one of job" in r.json()["detail"]
    r = api.call("POST", f"/v1/jobs/{job_id}/annotations", json={"candidate": cands["b01"][0]["id"],
                                                                  "codes": ["too_blue"]})
    assert r.status_code == 422
    assert gates.decisions(api.engine, job_id) == []

    # 2. Picks: the first leaves it waiting on b02, the second queues it.
    r = api.call("POST", f"/v1/jobs/{job_id}/picks", json=pick_b01)
    assert r.status_code == 200 and r.json()["moved"] is None and r.json()["job"]["gate"]["waiting_on"] == ["b02"]
    sheet = api.call("GET", f"/v1/jobs/{job_id}/candidates", "viewer").json()
    assert [b["picked"] for b in sheet["beats"]] == [pick_b01["candidate"], None]
    r = api.call("POST", f"/v1/jobs/{job_id}/annotations", json={
        "candidate": cands["b02"][0]["id"], "codes": ["expression_off", "artefact"], "note": "smudge at the ear"})
    assert r.status_code == 200 and r.json()["moved"] is None
    r = api.call("POST", f"/v1/jobs/{job_id}/picks", json={"beat": "b02", "candidate": cands["b02"][0]["id"]})
    assert r.json()["moved"] == "queued", r.text

    # 3. The approval gate: rendered through (no candidate made again), not published.
    assert api.work() == "awaiting_approval"
    assert stage_counts(api, job_id, "candidates")[-1] == {**stage_counts(api, job_id, "candidates")[-1],
                                                          "reused": 4, "made": 0}
    job = api.job(job_id)
    gate = job["gate"]
    assert job["out_dir"] is None and gate["gate"] == "approval" and gate["waiting_on"] == ["brand"]
    assert gate["content_sha256"] == gates.release_hash(gate["deliverables"])
    # Each beat delivers the picked keyframe (candidate ids are per run; keyframes are content).
    assert {b["beat"]: b["selected_sha256"] for b in gate["beats"]} == {
        "b01": cands["b01"][1]["sha256"], "b02": cands["b02"][0]["sha256"]}
    # A sign-off on other content is refused and recorded nowhere; a sign-off the brief does not ask for too.
    r = api.call("POST", f"/v1/jobs/{job_id}/approvals", "approver", json=sign)
    assert r.status_code == 409 and "the content changed since" in r.json()["detail"]
    r = api.call("POST", f"/v1/jobs/{job_id}/approvals", "approver",
                 json={**sign, "role": "legal", "content_sha256": gate["content_sha256"]})
    assert r.status_code == 422 and "sign as one of: brand" in r.json()["fix"]
    release = gate["content_sha256"]
    r = api.call("POST", f"/v1/jobs/{job_id}/approvals", "approver",
                 json={"role": "brand", "decision": "approve", "content_sha256": release, "note": "on brand"})
    assert r.status_code == 200 and r.json()["moved"] == "queued", r.text

    # 4. Approved: published.
    assert api.work() == "succeeded"
    job = api.job(job_id)
    assert job["out_dir"] and Path(job["out_dir"], "manifest.json").is_file()
    assert job["gate"]["content_sha256"] == release
    log = api.call("GET", f"/v1/jobs/{job_id}/decisions", "viewer").json()["decisions"]
    assert [(d["kind"], d["beat"], d["role"]) for d in log] == [
        ("pick", "b01", None), ("annotate", "b02", None), ("pick", "b02", None), ("approve", None, "brand")]
    assert [d["content_sha256"] for d in log] == [cands["b01"][1]["sha256"], cands["b02"][0]["sha256"],
                                                  cands["b02"][0]["sha256"], release]
    assert all(d["counts"] for d in log)
    assert log[0]["who"].endswith(":editor") and log[3]["who"].endswith(":approver")
    assert log[1]["codes"] == ["expression_off", "artefact"] and log[1]["note"] == "smudge at the ear"
    types = [e.type for e in jobs.events(api.engine, job_id)]
    for seq in (["awaiting_selection", "picked", "annotated", "picked", "queued"],
                ["awaiting_approval", "approved", "queued"]):
        at = [types.index(seq[0])]
        for t in seq[1:]:
            at.append(types.index(t, at[-1] + 1))
        assert at == sorted(at)

    # 5. A pick changed after delivery: rendered again, and the new release needs a new sign-off.
    now = {b["beat"]: b["candidates"] for b in api.call("GET", f"/v1/jobs/{job_id}/candidates").json()["beats"]}
    other = next(c for c in now["b01"] if c["sha256"] == cands["b01"][0]["sha256"])
    r = api.call("POST", f"/v1/jobs/{job_id}/picks", json={"beat": "b01", "candidate": other["id"]})
    assert r.json()["moved"] == "queued", r.text
    assert api.work() == "awaiting_approval"
    again = api.job(job_id)["gate"]
    assert again["content_sha256"] != release and again["waiting_on"] == ["brand"]
    log = api.call("GET", f"/v1/jobs/{job_id}/decisions", "viewer").json()["decisions"]
    assert [d["counts"] for d in log if d["kind"] == "approve"] == [False]  # made on the old release

    # 6. Cancel at a gate: at once (nobody holds it).
    r = api.call("POST", f"/v1/jobs/{job_id}/cancel")
    assert r.status_code == 202 and r.json()["state"] == "canceled"
    assert api.call("POST", f"/v1/jobs/{job_id}/cancel").json()["state"] == "canceled"
    r = api.call("POST", f"/v1/jobs/{job_id}/approvals", "approver",
                 json={"role": "brand", "decision": "approve", "content_sha256": again["content_sha256"]})
    assert r.status_code == 409


def test_more_candidates_steered_by_a_note_join_the_sheet(api: Api) -> None:
    job, _ = jobs.submit(api.engine, brief=gated_brief(approvals=[]), project="gates", campaign="spring",
                         brief_sha256="b", request_sha256="r")
    assert api.work() == "awaiting_selection"
    first = api.call("GET", f"/v1/jobs/{job.id}/candidates").json()["beats"]
    r = api.call("POST", f"/v1/jobs/{job.id}/more", json={"beat": "b02", "note": "warmer light, closer"})
    assert r.status_code == 200 and r.json()["moved"] == "queued", r.text
    assert api.call("POST", f"/v1/jobs/{job.id}/more", json={"beat": "b09", "note": "x"}).status_code == 422
    # Asked again before it runs: the job stays queued and its render has both rounds.
    r = api.call("POST", f"/v1/jobs/{job.id}/more", json={"beat": "b01", "note": "lower horizon"})
    assert r.status_code == 200 and r.json()["moved"] is None and r.json()["job"]["state"] == "queued"
    assert api.work() == "awaiting_selection"
    sheet = {b["beat"]: b["candidates"] for b in api.call("GET", f"/v1/jobs/{job.id}/candidates").json()["beats"]}
    assert len(sheet["b01"]) == 4 and len(sheet["b02"]) == 4
    old = {c["sha256"] for c in first[1]["candidates"]}
    assert {c["sha256"] for c in sheet["b02"][:2]} == old  # the first two are the same keyframes
    assert not old & {c["sha256"] for c in sheet["b02"][2:]}  # the round's are new
    counts = stage_counts(api, job.id, "candidates")[-1]
    assert (counts["reused"], counts["made"]) == (4, 4)
    # The job's progress (from its events): the latest attempt's stages and each beat's share.
    progress = api.job(job.id)["progress"]
    assert progress["attempt"] == 2
    stage = {s["stage"]: s for s in progress["stages"]}
    assert stage["candidates"] == {"stage": "candidates", "state": "done", "done": 8, "total": 8, "reused": 4,
                                   "made": 4}
    assert stage["review"]["state"] == "done" and stage["clips"]["state"] == "pending"  # waits at the gate
    assert progress["shots"]["b01"]["candidates"] == 4 and progress["shots"]["b02"]["candidates"] == 4
    assert progress["counts"]["pending"] == 7 and sum(progress["counts"].values()) == 13  # clips .. release, manifest
    # The round's prompt carries the note.
    with Session(api.engine) as s:
        cand = s.get(db.Candidate, sheet["b02"][2]["id"])
        assert cand is not None
        record = s.get(db.PromptRecordRow, cand.prompt_hash)
    assert record is not None and "warmer light, closer" in str(record.document)
    log = gates.decisions(api.engine, job.id)
    assert [(d.kind, d.beat, d.note) for d in log] == [("more", "b02", "warmer light, closer"),
                                                       ("more", "b01", "lower horizon")]


def test_the_cli_render_stops_at_the_selection_gate(tmp_path: Path) -> None:
    brief = tmp_path / "brief.yaml"
    brief.write_text(yaml.safe_dump(gated_brief(beats=[{"id": "b01", "duration": 1, "subject": "a kite"}])))
    env = {"STUDIO_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    p = subprocess.run([sys.executable, "-m", "studio", "render", str(brief), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 3, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert "stage select: selection: the brief asks for a person's pick (selection: human) and beat(s) b01 " \
           "have none yet" in last
    assert "pick with `studio select run_" in last
    assert not (tmp_path / "out").exists()


def test_the_cli_client_waits_at_each_gate_and_decides(tmp_path: Path) -> None:
    """The real server (uvicorn, one worker) and the `studio` client: `studio submit` stops
    following at the gate (exit 3, what to do), `studio candidates`, `studio pick` by index,
    `studio approve` of the release the job waits on; then the job delivers."""
    import json
    import os
    import time

    import httpx

    from .test_api_stream import start_server, stop_server

    server = start_server(tmp_path / "home", workers=1)
    try:
        approver = auth.create(server.engine, project="gates", role="approver", name="brand-lead")[1]
        editor = auth.create(server.engine, project="gates", role="editor", name="producer")[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("STUDIO_")}
        env.update(STUDIO_SERVER=server.base, STUDIO_TOKEN=editor)

        def studio(*args: str, token: str = editor) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "studio", *args], capture_output=True, text=True,
                                  env={**env, "STUDIO_TOKEN": token}, timeout=600)

        def wait_for(job_id: str, state: str) -> dict[str, Any]:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                job = httpx.get(f"{server.base}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {editor}"}).json()
                if job["state"] == state:
                    return job
                assert job["state"] not in ("failed", "canceled"), job
                time.sleep(0.5)
            raise AssertionError(f"job {job_id} never reached {state}")

        brief = tmp_path / "brief.yaml"
        brief.write_text(yaml.safe_dump(gated_brief()))
        p = studio("submit", str(brief))
        assert p.returncode == 3, p.stderr
        job_id = p.stderr.split("studio: job ", 1)[1].split()[0]
        assert f"studio: job {job_id} waits on a person (awaiting_selection): pick a candidate for beat(s) " \
               f"b01, b02: `studio candidates {job_id}`" in p.stderr
        p = studio("candidates", job_id, "--json")
        assert p.returncode == 0, p.stderr
        sheet = json.loads(p.stdout)
        assert sheet["gate"] == "selection" and len(sheet["beats"]) == 2
        p = studio("pick", job_id, "b01", "1", "--note", "the calmer sea")
        assert p.returncode == 0 and "the job stays awaiting_selection, waiting on b02" in p.stdout, p.stdout + p.stderr
        p = studio("pick", job_id, "b02", "0")
        assert p.returncode == 0 and "the job is now queued" in p.stdout, p.stdout + p.stderr
        gate = wait_for(job_id, "awaiting_approval")["gate"]
        # A restart while it waits: the gate and the decisions so far are in the database.
        out = stop_server(server)
        assert server.proc.returncode == 0, out
        server = start_server(tmp_path / "home", workers=1, port=int(server.base.rsplit(":", 1)[1]))
        assert wait_for(job_id, "awaiting_approval")["gate"] == gate
        p = studio("approve", job_id, "--role", "brand")  # an editor: refused
        assert p.returncode == 2 and "this needs an approver or admin token" in p.stderr, p.stderr
        p = studio("approve", job_id, "--role", "brand", "--note", "ship it", "--json", token=approver)
        assert p.returncode == 0, p.stderr
        out = json.loads(p.stdout)
        assert out["moved"] == "queued" and out["decision"]["content_sha256"] == gate["content_sha256"]
        assert out["decision"]["who"].endswith(":brand-lead")
        job = wait_for(job_id, "succeeded")
        assert job["gate"]["content_sha256"] == gate["content_sha256"]
    finally:
        out = stop_server(server)
    assert server.proc.returncode == 0, out


def test_progress_lists_the_pipelines_stages() -> None:
    from studio.api.progress import STAGE_ORDER
    from studio.pipeline import STAGES

    assert STAGE_ORDER == tuple(st.name for st in STAGES)


def test_the_render_gets_the_workers_home_as_an_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The render runs in the job's folder: a relative STUDIO_HOME (the default) must reach it
    as the worker's own home, not a folder of that name inside the job's."""
    from studio.worker import _render_env

    monkeypatch.chdir(tmp_path)
    env = _render_env(Settings(home=Path(".studio")))
    assert env["STUDIO_HOME"] == str(tmp_path / ".studio")
