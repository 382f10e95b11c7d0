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

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from studio import auth, db, gates, jobs
from studio.api.app import create_app
from studio.settings import Settings
from studio.store import Store
from studio.worker import _release_gate

from . import test_api as base
from .browser import axe_violations, shot, sign_in
from .conftest import serve

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
            "reason": f"model {component.split(':')[1]!r} is not allowed in internal work by the policy's "
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


# -- the review page, against the real server -------------------------------------------------

RENDER_S = 900  # a render of the small brief on a 2-core machine other renders share, with room


class Live:
    """`studio serve` (uvicorn) with its own home, a token per role of project gates."""

    def __init__(self, home: Path, *, workers: int = 0, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.proc, self.base = serve(home, workers=workers, log_level="warning",
                                     env={"STUDIO_RAY_NUM_CPUS": "2", **(env or {})})
        self.settings = Settings(home=home)
        self.engine = db.make_engine(self.settings.db_url)
        db.init_db(self.engine)
        self.tokens = {r: auth.create(self.engine, project="gates", role=r, name=f"{r} Jo")[1] for r in auth.ROLES}

    def api(self, method: str, path: str, role: str = "editor", **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[role]}", **kw.pop("headers", {})}
        return httpx.request(method, f"{self.base}{path}", headers=headers, timeout=30, **kw)

    def close(self) -> str:
        self.engine.dispose()
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out or ""


def wait_state(page: Any, state: str, timeout_s: float = RENDER_S) -> None:
    page.locator("#job-state", has_text=re.compile(f"^{state}$")).wait_for(timeout=timeout_s * 1000)


def wait_job(live: Live, job_id: str, state: str, timeout_s: float = RENDER_S) -> dict[str, Any]:
    """The job once it is ``state``; when it ends elsewhere (or takes too long), fails with its
    state, error and latest events."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        job = live.api("GET", f"/v1/jobs/{job_id}", "viewer").json()
        if job["state"] == state:
            return job
        if job["state"] in ("failed", "canceled", "succeeded", "blocked") or time.monotonic() > deadline:
            last = [(e.type, str(e.data)[:200]) for e in jobs.events(live.engine, job_id)[-12:]]
            raise AssertionError(f"job {job_id} is {job['state']}, not {state}: {job.get('error')}; {last}")
        time.sleep(2)


def test_the_review_page_shows_a_blocked_job_and_an_approver_overrides_it(tmp_path: Path, page: Any) -> None:
    live = Live(tmp_path / "home")
    try:
        store = Store(live.settings.store_root)
        html = tmp_path / "reels.qc.html"
        html.write_text("<!doctype html><title>QC reels</title><h1>QC: fail</h1>", encoding="utf-8")
        html_path = store.path(store.put_file(html, ".html"))
        qc = [{"spec": "reels-1080x1920", "locale": None, "check": "black", "finding": "black for 0.8 s",
               "fix": "check the shot at 00:00:01:00", "at": ["00:00:01:00"], "report": str(html_path),
               "html": str(html_path)}]
        api = Api.__new__(Api)  # the live server's database, without a second app
        api.engine = live.engine
        job_id = blocked_job(api, violations=[violation("youtube-1080p"), violation("reels-1080x1920")], qc=qc)

        # An editor sees the gate, and no override form.
        sign_in(page, live.base, live.tokens["editor"], f"/review/jobs/{job_id}")
        wait_state(page, "blocked", 30)
        card = page.locator('#violations article[data-rule="models.denied"]')
        card.wait_for(timeout=15000)
        assert card.locator('[data-field="specs"]').inner_text() == "youtube-1080p, reels-1080x1920"
        assert "is not allowed in internal work" in card.locator('[data-field="reason"]').inner_text()
        assert card.locator('[data-field="overridden-by"]').inner_text() == "nobody yet"
        assert card.locator("form.override").count() == 0
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url("**/review/login")

        # An approver: the form per violation, the QC failure with its report.
        sign_in(page, live.base, live.tokens["approver"], f"/review/jobs/{job_id}")
        wait_state(page, "blocked", 30)
        assert page.locator("#job-waiting").inner_text() == \
            "the release gate: models.denied model:procedural, qc reels-1080x1920 black"
        failure = page.locator('#qc-failures li[data-check="black"]')
        assert "reels-1080x1920: black failed at 00:00:01:00: black for 0.8 s." in failure.inner_text()
        link = failure.get_by_role("link", name="QC report of reels-1080x1920")
        r = httpx.get(f"{live.base}{link.get_attribute('href')}", timeout=30,
                      cookies={c["name"]: c["value"] for c in page.context.cookies()})
        assert r.status_code == 200 and "QC: fail" in r.text
        assert axe_violations(page) == []
        shot(page, "40-release-gate-blocked")
        reason = page.get_by_label("Reason for overriding models.denied for model:procedural (required)")
        page.get_by_role("button", name="Override as legal").click()  # no reason: refused in the page
        assert reason.get_attribute("aria-invalid") == "true"
        assert "give the reason" in page.locator("#action-error").inner_text()
        assert gates.decisions(live.engine, job_id) == []
        reason.fill("cleared by counsel for this campaign")
        page.get_by_role("button", name="Override as legal").click()
        signed = card.locator('[data-field="overridden-by"]')
        signed.filter(has_text="approver Jo").wait_for(timeout=15000)
        assert re.match(r"^approver Jo \(tok_\w+\) \(legal\) at .+: “cleared by counsel for this campaign”$",
                        signed.inner_text()), signed.inner_text()
        assert card.locator("form.override").count() == 0
        # The QC failure still holds it: it stays blocked.
        assert page.locator("#job-state").inner_text() == "blocked"
        assert page.locator("#job-waiting").inner_text() == "the release gate: qc reels-1080x1920 black"
        (d,) = gates.decisions(live.engine, job_id)
        assert d.kind == "override" and d.note == "cleared by counsel for this campaign"
        row = page.locator('#decisions tr[data-kind="override"]')
        row.wait_for(timeout=15000)
        assert "release gate: models.denied model:procedural (as legal)" in row.inner_text()
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        live.close()


def small_brief() -> dict[str, Any]:
    """One one-second beat, one candidate, one channel, no sound: the smallest render."""
    return {"project": "gates", "campaign": "spring", "purpose": "a job the release gate blocks",
            "channels": ["youtube-1080p"], "style_pack": "golden-hour", "candidates": 1, "captions": False,
            "handles": 0, "music": {"source": "none"}, "effects": {"enabled": False},
            "beats": [{"id": "b01", "duration": 1, "subject": "a lighthouse in a storm"}]}


def test_a_render_the_policy_blocks_is_overridden_and_delivers(tmp_path: Path, page: Any) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({
        "schema": "Policy.1", "name": "no-procedural", "version": 3,
        "usage_classes": {"internal": {"models": {"deny": ["procedural"]}}}}), encoding="utf-8")
    live = Live(tmp_path / "home", workers=1, env={"STUDIO_POLICY": str(policy)})
    try:
        r = live.api("POST", "/v1/jobs", content=yaml.safe_dump(small_brief()),
                     headers={"content-type": "application/yaml"})
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        job = wait_job(live, job_id, "blocked")
        sign_in(page, live.base, live.tokens["approver"], f"/review/jobs/{job_id}")
        wait_state(page, "blocked", 30)
        gate = job["gate"]
        assert job["out_dir"] is None and gate["gate"] == "release" and gate["scope"] == SCOPE, gate
        assert gate["qc"] == [] and gate["waiting_on"] == ["models.denied model:procedural"], gate
        (v,) = gate["violations"]
        assert (v["spec"], v["rule"], v["component"], v["blocking"]) == \
            ("youtube-1080p", "models.denied", "model:procedural", True)
        assert "deny 'procedural'" in v["reason"] and v["fix"]
        assert "youtube-1080p" in gate["error"] and "models.denied" in gate["error"]
        assert not list((live.home / "jobs" / job_id).glob("attempt-*"))  # the blocked attempt's folder went

        # A token that may not sign off legal matters is refused, in words; nothing is recorded.
        body = {"rule": "models.denied", "component": "model:procedural", "reason": "fine by me"}
        r = live.api("POST", f"/v1/jobs/{job_id}/overrides", "editor", json=body)
        assert r.status_code == 403 and "this needs an approver or admin token" in r.json()["detail"], r.text
        assert gates.decisions(live.engine, job_id) == []

        # Legal overrides in the page: recorded (who, why), the job renders again and delivers.
        page.get_by_label("Reason for overriding models.denied for model:procedural (required)").fill(
            "procedural frames are our own code: cleared by counsel")
        page.get_by_role("button", name="Override as legal").click()
        # Nothing else blocks it: it is queued again at once (and the gate's section goes).
        page.locator("#job-state", has_text=re.compile("^(queued|running|succeeded)$")).wait_for(timeout=15000)
        assert page.locator("#release").is_hidden()
        wait_job(live, job_id, "succeeded")
        wait_state(page, "succeeded", 30)
        from studio.policy import overrides_for

        (o,) = overrides_for(live.engine, SCOPE)
        assert o.approver.startswith("approver Jo (tok_") and o.reason.startswith("procedural frames")
        (d,) = gates.decisions(live.engine, job_id)
        assert (d.kind, d.role, d.target) == ("override", "legal", "models.denied model:procedural")
        events = [e.type for e in jobs.events(live.engine, job_id)]
        assert events.count("blocked") == 1 and "overridden" in events
        # The policy's pre-flight blocked the first render before anything was generated; the
        # second, signed off, made it all.
        done = [(e.data.get("attempt"), e.data.get("stage")) for e in jobs.events(live.engine, job_id)
                if e.type == "stage_done"]
        assert not [d for d in done if d[0] == 1], done
        assert (2, "candidates") in done and (2, "release") in done, done

        # Its page: each deliverable's QC verdict with its HTML report, signed or not.
        item = page.locator('#deliverables li[data-spec="youtube-1080p"]')
        item.wait_for(timeout=15000)
        assert item.locator('[data-field="qc"]').inner_text().startswith("QC: ")
        assert "policy no-procedural v3: passed" in item.locator('[data-field="policy"]').inner_text()
        assert item.locator('[data-field="signed"]').inner_text().startswith((" · signed (C2PA) by", " · not signed"))
        link = item.get_by_role("link", name="QC report of youtube-1080p")
        r = httpx.get(f"{live.base}{link.get_attribute('href')}", timeout=30,
                      cookies={c["name"]: c["value"] for c in page.context.cookies()})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), r.text[:300]
        assert "sandbox" in r.headers["content-security-policy"] and "<h1>QC" in r.text
        outputs = live.api("GET", f"/v1/jobs/{job_id}/outputs", "viewer").json()["outputs"]
        assert any(o["url"] == link.get_attribute("href") and o["role"] == "qc" and o["path"].endswith(".qc.html")
                   for o in outputs), outputs
        assert axe_violations(page) == []
        shot(page, "41-release-gate-delivered")
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        live.close()
