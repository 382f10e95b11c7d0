"""The release gate in the server's job (issue 14): a job whose render the release gate
blocks waits at ``blocked`` with the gate (each violation with its deliverable, rule,
component, reason and fix; each QC failure with its report) as ``job.gate``; an approver's
override of a violation is recorded (policy override for the gate's scope, and an
append-only ``override`` decision) and, once every blocking violation is signed off and no
QC check failed, the job is queued again; a QC failure is never overridden.

The first tests put a job at the gate directly (the worker's own ``_release_gate`` over a
gate event as studio.release emits it) on SQLite and PostgreSQL: the state machine (cancel,
suspend, resume, retry, priority at ``blocked``), who may override and what, the records an
override leaves, and the QC report downloads. The last one is the whole thing for real: the
real server (uvicorn, one worker) renders a small brief under a policy that denies the
procedural keyframe model, the job ends ``blocked``; a non-legal token's override is
refused; an approver overrides in the review page (Chromium), the job renders again (every
step cached), passes the gate and delivers, and its page links each deliverable's QC report.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from studio import auth, db, gates, jobs
from studio.api.app import create_app
from studio.settings import Settings
from studio.store import Store
from studio.worker import _release_gate

from . import test_api as base

db_url = base.db_url
SCOPE = "gates/spring"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(home=tmp_path / "home", database_url=db_url)


class Api:
    """The app over the settings' database, a token per role of project gates."""

    def __init__(self, settings: Settings) -> None:
        settings.home.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.engine = db.make_engine(settings.db_url)
        db.init_db(self.engine)
        self.tokens = {role: auth.create(self.engine, project="gates", role=role, name=f"{role} Jo")[1]
                       for role in auth.ROLES}
        self.client = TestClient(create_app(settings, self.engine))

    def call(self, method: str, path: str, role: str = "approver", **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[role]}", **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)

    def close(self) -> None:
        self.client.close()
        self.engine.dispose()


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    a = Api(settings)
    yield a
    a.close()


def violation(spec: str, rule: str = "models.denied", component: str = "model:procedural") -> dict[str, Any]:
    """A blocking violation as studio.release puts it in its gate event (PolicyReport's own)."""
    return {"spec": spec, "locale": None, "rule": rule, "component": component, "name": component.split(":")[1],
            "what": f"model {component.split(':')[1]!r} is not allowed in internal work by the policy's "
                    "usage_classes.internal (deny 'procedural')",
            "fix": "pick a model the policy allows (`studio models`) and render again, or have an approver "
                   "sign it off", "blocking": True, "overridden_by": None}


def blocked_job(api: Api, *, violations: list[dict[str, Any]], qc: list[dict[str, Any]] | None = None) -> str:
    """A queued job taken by a worker whose render the release gate blocked (the worker's
    own path from the render's gate event to the job's gate)."""
    brief = {"project": "gates", "campaign": "spring", "purpose": "blocked", "channels": ["youtube-1080p"],
             "beats": [{"id": "b01", "duration": 1, "subject": "a lighthouse"}]}
    job, _ = jobs.submit(api.engine, brief=brief, project="gates", campaign="spring", brief_sha256="0" * 64,
                         request_sha256="1" * 64)
    claim = jobs.claim(api.engine, "w1", 60)
    assert claim is not None and claim.job_id == job.id
    event = {"gate": "release", "run_id": "run_test", "scope": SCOPE, "violations": violations, "qc": qc or []}
    gate = _release_gate(job.id, event, "stage release: youtube-1080p: model:procedural: ...")
    assert gates.wait(api.engine, claim.lease_token, "blocked", gate, run_id="run_test")
    return job.id


def test_a_blocked_job_waits_like_any_gated_job(api: Api) -> None:
    job_id = blocked_job(api, violations=[violation("youtube-1080p"), violation("reels-1080x1920")])
    job = api.call("GET", f"/v1/jobs/{job_id}", "viewer").json()
    assert job["state"] == "blocked" and job["out_dir"] is None and job["error"] is None
    assert job["gate"]["gate"] == "release" and job["gate"]["scope"] == SCOPE
    assert job["gate"]["waiting_on"] == ["models.denied model:procedural"]
    assert [a.state for a in jobs.attempts(api.engine, job_id)] == ["gated"]
    last = jobs.events(api.engine, job_id)[-1]
    assert last.type == "blocked" and last.data["gate"] == "release" and last.data["violations"] == 2
    assert [j["id"] for j in api.call("GET", "/v1/jobs?state=blocked", "viewer").json()["jobs"]] == [job_id]

    # The job controls treat it as a gate: priority changes, suspend puts it aside, resume
    # queues it (its render checks again), retry queues a blocked job (once the policy, a
    # licence or a spec was fixed on the server), cancel is immediate.
    assert api.call("PATCH", f"/v1/jobs/{job_id}", "editor", json={"priority": 90}).json()["priority"] == 90
    r = api.call("POST", f"/v1/jobs/{job_id}/resume", "editor")
    assert r.status_code == 409 and "studio override" in r.json()["fix"], r.text
    assert api.call("POST", f"/v1/jobs/{job_id}/suspend", "editor").json()["state"] == "suspended"
    assert api.call("POST", f"/v1/jobs/{job_id}/resume", "editor").json()["state"] == "queued"
    assert api.call("POST", f"/v1/jobs/{job_id}/cancel", "editor").json()["state"] == "canceled"

    job_id = blocked_job(api, violations=[violation("youtube-1080p")])
    r = api.call("POST", f"/v1/jobs/{job_id}/retry", "editor")
    assert r.status_code == 202 and r.json()["state"] == "queued" and r.json()["gate"] is None, r.text
    jobs.cancel(api.engine, job_id)
    job_id = blocked_job(api, violations=[violation("youtube-1080p")])
    assert api.call("POST", f"/v1/jobs/{job_id}/cancel", "editor").json()["state"] == "canceled"


def test_an_approver_overrides_each_violation_and_the_job_goes_on(api: Api) -> None:
    from studio.policy import overrides_for

    job_id = blocked_job(api, violations=[
        violation("youtube-1080p"), violation("reels-1080x1920"),
        violation("youtube-1080p", "licence.territory", "audio:aud_music1")])
    path = f"/v1/jobs/{job_id}/overrides"
    body = {"rule": "models.denied", "component": "model:procedural", "reason": "cleared by counsel for this spot"}

    # Only an approver (or admin) token: an editor's and a viewer's are refused, saying whose it takes.
    for role in ("editor", "viewer"):
        r = api.call("POST", path, role, json=body)
        assert r.status_code == 403, r.text
        assert r.json()["detail"].startswith("this needs an approver or admin token; this one") and \
            f"is {'an' if role == 'editor' else 'a'} {role} token" in r.json()["detail"]
    # A rule and component the gate does not hold: 409 naming what it holds. No reason: 422.
    r = api.call("POST", path, json={**body, "component": "model:flux-dev"})
    assert r.status_code == 409, r.text
    assert "rule 'models.denied' for component 'model:flux-dev' is not one of job" in r.json()["detail"]
    assert "its release gate holds: models.denied model:procedural, licence.territory audio:aud_music1" \
        in r.json()["detail"]
    r = api.call("POST", path, json={**body, "reason": ""})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "reason", r.text
    r = api.call("POST", path, json={**body, "reason": "   "})
    assert r.status_code == 422 and "an override needs the reason" in r.json()["detail"], r.text
    assert gates.decisions(api.engine, job_id) == [] and overrides_for(api.engine, SCOPE) == []

    # The first override: recorded (who, role, reason, scope), both deliverables' entries
    # signed off, the job still blocked on the other violation.
    r = api.call("POST", path, json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["moved"] is None and out["job"]["state"] == "blocked"
    assert out["job"]["gate"]["waiting_on"] == ["licence.territory audio:aud_music1"]
    signed = [v["overridden_by"] for v in out["job"]["gate"]["violations"] if v["rule"] == "models.denied"]
    assert len(signed) == 2 and all(s["approver"].startswith("approver Jo (tok_") and s["role"] == "legal"
                                    and s["reason"] == body["reason"] for s in signed)
    d = out["decision"]
    assert d["kind"] == "override" and d["role"] == "legal" and d["note"] == body["reason"]
    assert d["target"] == "models.denied model:procedural" and d["who"].endswith(":approver Jo")
    assert d["content_sha256"] == gates.override_sha256(SCOPE, "models.denied", "model:procedural")
    (o,) = overrides_for(api.engine, SCOPE)
    assert (o.rule, o.component, o.role, o.reason) == ("models.denied", "model:procedural", "legal", body["reason"])
    assert o.approver == signed[0]["approver"]
    ev = [e for e in jobs.events(api.engine, job_id) if e.type == "overridden"]
    assert len(ev) == 1 and ev[0].data["approver"] == o.approver and ev[0].data["decision"] == d["id"]
    # The same one again is refused: it is signed off already.
    r = api.call("POST", path, json=body)
    assert r.status_code == 409 and "was overridden already, by approver Jo" in r.json()["detail"], r.text

    # The last one (an admin may too): the job is queued again, reason overridden, its gate gone.
    r = api.call("POST", path, "admin", json={"rule": "licence.territory", "component": "audio:aud_music1",
                                              "reason": "territory extension signed 2 May", "expires": "2999-01-01"})
    assert r.status_code == 200, r.text
    assert r.json()["moved"] == "queued" and r.json()["job"]["state"] == "queued" and r.json()["job"]["gate"] is None
    queued = jobs.events(api.engine, job_id)[-1]
    assert queued.type == "queued" and queued.data["reason"] == "overridden" and queued.data["from"] == "blocked"
    assert [o.rule for o in overrides_for(api.engine, SCOPE)] == ["models.denied", "licence.territory"]
    log = api.call("GET", f"/v1/jobs/{job_id}/decisions", "viewer").json()["decisions"]
    assert [(x["kind"], x["target"], x["counts"]) for x in log] == [
        ("override", "models.denied model:procedural", True), ("override", "licence.territory audio:aud_music1", True)]
    # Not blocked any more: nothing to override.
    r = api.call("POST", path, json=body)
    assert r.status_code == 409 and "is queued, not blocked at the release gate" in r.json()["detail"], r.text
    assert api.call("POST", "/v1/jobs/job_nope/overrides", json=body).status_code == 404


def test_a_qc_failure_is_never_overridden_and_its_report_is_served(api: Api, tmp_path: Path) -> None:
    store = Store(api.settings.store_root)
    html = tmp_path / "youtube.qc.html"
    html.write_text("<!doctype html><title>QC</title><h1>QC: fail</h1>", encoding="utf-8")
    report = tmp_path / "youtube.qc.json"
    report.write_text('{"schema": "QcReport.1"}', encoding="utf-8")
    html_path = store.path(store.put_file(html, ".html"))
    json_path = store.path(store.put_file(report, ".json"))
    qc = [{"spec": "youtube-1080p", "locale": None, "check": "loudness", "finding": "-31.2 LUFS integrated",
           "fix": "normalise to -14 LUFS", "at": ["00:00:00:00"], "report": str(json_path), "html": str(html_path)}]
    job_id = blocked_job(api, violations=[violation("youtube-1080p")], qc=qc)
    gate = api.call("GET", f"/v1/jobs/{job_id}", "viewer").json()["gate"]
    assert gate["waiting_on"] == ["models.denied model:procedural", "qc youtube-1080p loudness"]

    for rule in ("loudness", "qc.loudness"):
        r = api.call("POST", f"/v1/jobs/{job_id}/overrides",
                     json={"rule": rule, "component": "spec:youtube-1080p", "reason": "it is fine"})
        assert r.status_code == 409, r.text
        assert r.json()["detail"].startswith("rule: a QC failure cannot be overridden (job ")
        assert r.json()["fix"].startswith("fix the media or the channel spec")
    # Its violation can be: recorded, but the job stays blocked on the QC failure.
    r = api.call("POST", f"/v1/jobs/{job_id}/overrides",
                 json={"rule": "models.denied", "component": "model:procedural", "reason": "cleared"})
    assert r.status_code == 200 and r.json()["moved"] is None and r.json()["job"]["state"] == "blocked"
    assert r.json()["job"]["gate"]["waiting_on"] == ["qc youtube-1080p loudness"]

    # The reports the gate names, from the store (the HTML sandboxed); no other file.
    (item,) = gate["qc"]
    assert item["html_url"] == f"/v1/jobs/{job_id}/gate/reports/{html_path.name}"
    r = api.call("GET", item["html_url"], "viewer")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), r.text
    assert r.text == html.read_text() and "sandbox" in r.headers["content-security-policy"]
    r = api.call("GET", item["report_url"], "viewer")
    assert r.status_code == 200 and r.json() == {"schema": "QcReport.1"}
    other = store.path(store.put_bytes(b"<p>not a report</p>", ".html"))
    r = api.call("GET", f"/v1/jobs/{job_id}/gate/reports/{other.name}", "viewer")
    assert r.status_code == 404 and "names no QC report" in r.json()["detail"]
    assert api.call("GET", f"/v1/jobs/{job_id}/gate/reports/..%2F..%2Fstudio.db", "viewer").status_code == 404
