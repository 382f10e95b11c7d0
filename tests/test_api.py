"""The HTTP API (studio.api): the jobs endpoints through FastAPI's TestClient on SQLite and
PostgreSQL, and once through the real server (`studio serve`, uvicorn) in a subprocess.

What it proves: a refused brief reads exactly as the CLI prints it (field path, words and
fix), with the line it is on; bodies over the limit (413), YAML anchors/aliases (a
billion-laughs document) and relative paths are refused and nothing is queued; an
Idempotency-Key gives 201 then 200 with the same job, and 409 for another body; dry_run
answers the engine's plan and queues nothing; unknown ids are 404; lists page with a
cursor; cancel touches exactly one job. Requests carry a real API token (``tokens``: one
per role, made by studio.auth.create as `studio token create` makes them); what tokens
and roles allow is tests/test_api_auth.py's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner
from fastapi.testclient import TestClient

from studio import auth, db
from studio.api.app import create_app
from studio.settings import Settings

from .conftest import free_port, serve

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "briefs" / "launch.yaml"
YAML = {"content-type": "application/yaml"}
JSON = {"content-type": "application/json"}


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'studio.db'}"
    from .test_migrations import _fresh_pg

    return _fresh_pg(request.getfixturevalue("postgres_url"), f"api_{tmp_path.name}")


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    assets = tmp_path / "assets"
    assets.mkdir()
    return Settings(home=tmp_path / "home", database_url=db_url, assets_roots=str(assets))


@pytest.fixture
def tokens(settings: Settings) -> dict[str, str]:
    """A token per role for project aurora (the example brief's), role -> secret, made by
    the code `studio token create` runs."""
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = db.make_engine(settings.db_url)
    try:
        db.init_db(engine)
        return {role: auth.create(engine, project="aurora", role=role, name=f"test-{role}")[1]
                for role in auth.ROLES}
    finally:
        engine.dispose()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def client(settings: Settings, tokens: dict[str, str]) -> Iterator[TestClient]:
    """The app, every request with an editor token of project aurora (submit, cancel, read)."""
    engine = db.make_engine(settings.db_url)
    with TestClient(create_app(settings, engine), headers=bearer(tokens["editor"])) as c:
        yield c
    engine.dispose()


def example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())


def post(client: TestClient, doc: Any, *, as_yaml: bool = False, **kw: Any) -> httpx.Response:
    if as_yaml:
        return client.post("/v1/jobs", content=yaml.safe_dump(doc, sort_keys=False), headers={**YAML, **kw.pop(
            "headers", {})}, **kw)
    return client.post("/v1/jobs", content=json.dumps(doc), headers={**JSON, **kw.pop("headers", {})}, **kw)


def job_count(client: TestClient) -> int:
    return len(client.get("/v1/jobs", params={"limit": 500}).json()["jobs"])


# -- the basics ------------------------------------------------------------------------


def test_health_and_openapi(client: TestClient) -> None:
    health = client.get("/v1/health", headers={"Authorization": ""})  # no token needed
    assert health.status_code == 200 and health.json()["status"] == "ok"
    doc = client.get("/openapi.json", headers={"Authorization": ""}).json()
    assert all(p.startswith("/v1/") for p in doc["paths"]), list(doc["paths"])
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel", "/v1/jobs/{job_id}/events"} <= set(
        doc["paths"])
    # The submit body is the brief's own schema, its references resolvable in the document.
    body = doc["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/yaml"}
    schemas = doc["components"]["schemas"]
    refs = {r for r in json.dumps(doc).split('"') if r.startswith("#/components/schemas/")}
    assert {r.rsplit("/", 1)[1] for r in refs} <= set(schemas), refs
    assert "beats" in schemas["Brief"]["properties"]


def test_unknown_ids_are_404_never_a_state(client: TestClient) -> None:
    for method, url in (("GET", "/v1/jobs/job_0000"), ("POST", "/v1/jobs/job_0000/cancel"),
                        ("GET", "/v1/jobs/job_0000/events"), ("GET", "/v1/jobs/job_0000/attempts")):
        r = client.request(method, url)
        assert r.status_code == 404, (url, r.text)
        assert r.json()["detail"] == "no job 'job_0000'" and "state" not in r.json()


# -- refused briefs: in the CLI's words ------------------------------------------------


def bad_brief() -> dict[str, Any]:
    doc = example()
    doc["beats"][0]["duration"] = -3  # pydantic: field path and fix
    del doc["beats"][1]["subject"]  # missing
    return doc


def bad_catalog_brief() -> dict[str, Any]:
    doc = example()
    doc["channels"][1] = "no-such-channel"  # the catalog's checks, once the schema holds
    doc["style_pack"] = "no-such-style"
    return doc


@pytest.mark.parametrize("make", [bad_brief, bad_catalog_brief])
def test_refused_brief_reads_as_the_cli_prints_it(client: TestClient, tmp_path: Path, settings: Settings,
                                                  make: Any) -> None:
    from studio.cli import main

    text = yaml.safe_dump(make(), sort_keys=False)
    brief = tmp_path / "bad.yaml"
    brief.write_text(text)
    cli = CliRunner().invoke(main, ["plan", str(brief)],
                             env={"STUDIO_HOME": str(settings.home), "STUDIO_DATABASE_URL": settings.db_url})
    assert cli.exit_code == 2, cli.output
    cli_lines = [line for line in cli.stderr.splitlines() if line.startswith("studio: error: ")]
    assert len(cli_lines) == 2, cli.stderr

    r = client.post("/v1/jobs", content=text, headers=YAML)
    assert r.status_code == 422, r.text
    problems = r.json()["problems"]
    # Each problem is the CLI's line, less the file name the CLI starts it with.
    assert [f"studio: error: {brief}: {p['text']}" for p in problems] == cli_lines
    by_field = {p["field"]: p for p in problems}
    lines = text.splitlines()
    if make is bad_brief:
        assert set(by_field) == {"beats[0].duration", "beats[1].subject"}
        assert by_field["beats[0].duration"]["fix"] == "use a larger number"
        assert by_field["beats[1].subject"]["message"] == "field required"
        # The line each problem is on: the duration's own line; a missing field's beat.
        assert lines[by_field["beats[0].duration"]["line"] - 1].strip() == "duration: -3"
        assert lines[by_field["beats[1].subject"]["line"] - 1].strip() == f"- id: {make()['beats'][1]['id']}"
    else:
        assert set(by_field) == {"channels[1]", "style_pack"}
        assert "no-such-channel" in lines[by_field["channels[1]"]["line"] - 1]
        assert lines[by_field["style_pack"]["line"] - 1] == "style_pack: no-such-style"
    assert job_count(client) == 0


def test_syntax_errors_and_other_types(client: TestClient) -> None:
    r = client.post("/v1/jobs", content="project: [unclosed\n", headers=YAML)
    assert r.status_code == 422
    assert r.json()["problems"][0]["text"].startswith("is not valid YAML at line 2, column 1 — fix the syntax")
    assert r.json()["problems"][0]["line"] == 2
    r = client.post("/v1/jobs", content='{"project": ', headers=JSON)
    assert r.status_code == 422 and "is not valid JSON at line 1" in r.json()["problems"][0]["text"]
    r = client.post("/v1/jobs", content="- a list\n", headers=YAML)
    assert r.status_code == 422 and "must be a mapping of fields, not list" in r.json()["problems"][0]["text"]
    r = client.post("/v1/jobs", content="project: x", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "application/yaml" in r.json()["fix"]
    assert job_count(client) == 0


def test_yaml_anchors_and_aliases_are_refused(client: TestClient) -> None:
    # Billion laughs: 9 levels of 9 aliases; safe_load would build 9**9 (387 million) strings.
    bomb = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        bomb.append(f"{name}: &{name} [" + ",".join(f"*{prev}" for _ in range(9)) + "]")
    start = time.monotonic()
    r = client.post("/v1/jobs", content="\n".join(bomb) + "\n", headers=YAML)
    assert r.status_code == 422, r.text
    assert time.monotonic() - start < 5
    assert "anchor or alias" in r.json()["detail"] and "line 1" in r.json()["detail"]
    # One anchor alone (no alias) is refused too: nothing in a brief needs one.
    doc = yaml.safe_dump(example(), sort_keys=False).replace("style_pack:", "style_pack: &s", 1)
    assert client.post("/v1/jobs", content=doc, headers=YAML).status_code == 422
    deep = "a: " + "[" * 200 + "]" * 200 + "\n"
    r = client.post("/v1/jobs", content=deep, headers=YAML)
    assert r.status_code == 422 and "nests more than" in r.json()["detail"]
    assert job_count(client) == 0


def test_bodies_that_would_break_a_parser(client: TestClient) -> None:
    deep = "[" * 100_000 + "]" * 100_000  # json.loads: RecursionError
    r = client.post("/v1/jobs", content=deep, headers=JSON)
    assert r.status_code == 422, r.text
    r = client.post("/v1/jobs", content=b"project: \xff\xfe\n", headers=YAML)
    assert r.status_code == 422 and "not UTF-8" in r.json()["detail"]
    r = client.post("/v1/jobs", content="!!python/object/apply:os.system ['true']\n", headers=YAML)
    assert r.status_code == 422 and "is not valid YAML" in r.json()["problems"][0]["message"]
    assert job_count(client) == 0


def test_oversized_bodies_are_413(settings: Settings, tokens: dict[str, str]) -> None:
    small = settings.model_copy(update={"api_max_body_bytes": 2000})
    engine = db.make_engine(small.db_url)
    with TestClient(create_app(small, engine), headers=bearer(tokens["editor"])) as client:
        big = yaml.safe_dump({**example(), "purpose": "x" * 3000})
        r = client.post("/v1/jobs", content=big, headers=YAML)
        assert r.status_code == 413 and "larger than 2,000 bytes" in r.json()["detail"]
        # Chunked (no Content-Length): refused once the bytes read pass the limit.
        r = client.post("/v1/jobs", content=iter([big[:1500].encode(), big[1500:].encode()]), headers=YAML)
        assert r.status_code == 413
        assert job_count(client) == 0
    engine.dispose()


def test_paths_the_server_cannot_resolve(client: TestClient, settings: Settings) -> None:
    from PIL import Image

    doc = example()
    doc["beats"][0]["reference_images"] = ["refs/hiker.png"]
    doc["music"] = {"source": "library", "library": "../music"}
    r = post(client, doc)
    assert r.status_code == 422, r.text
    problems = {p["field"]: p for p in r.json()["problems"]}
    assert set(problems) == {"beats[0].reference_images[0]", "music.library"}, problems
    ref = problems["beats[0].reference_images[0]"]
    assert ref["message"] == ("reference image 'refs/hiker.png' is a relative path, and a brief sent to "
                              "the server has no folder to resolve it in")
    root = settings.asset_roots[0].resolve()
    assert ref["fix"] == (f"name it by its absolute path under STUDIO_ASSETS_ROOTS ({root}); or upload it "
                          "(POST /v1/uploads) and name the path the answer gives")
    doc["beats"][0]["reference_images"] = ["/etc/hostname"]
    assert "outside the server's asset folders" in post(client, doc).json()["problems"][0]["message"]
    # An absolute path under STUDIO_ASSETS_ROOTS is what works.
    Image.new("RGB", (64, 48), (200, 120, 40)).save(root / "hiker.png")
    doc["beats"][0]["reference_images"] = [str(root / "hiker.png")]
    doc["music"] = {"source": "procedural"}
    r = post(client, doc)
    assert r.status_code == 201, r.text
    assert r.json()["brief"]["beats"][0]["reference_images"] == [str(root / "hiker.png")]


# -- submitting ------------------------------------------------------------------------


def test_idempotency_key(client: TestClient) -> None:
    key = {"Idempotency-Key": "spring-launch-1"}
    first = post(client, example(), as_yaml=True, headers=key)
    assert first.status_code == 201, first.text
    job = first.json()
    assert job["state"] == "queued" and job["project"] == "aurora" and first.headers["location"] == (
        f"/v1/jobs/{job['id']}")
    # The same request again (as JSON this time: the same brief) is the same job.
    again = post(client, example(), headers=key)
    assert again.status_code == 200 and again.json()["id"] == job["id"]
    # The same key with another body (or other options) is a conflict.
    other = example()
    other["purpose"] = "something else"
    r = post(client, other, headers=key)
    assert r.status_code == 409 and job["id"] in r.json()["detail"]
    assert post(client, example(), headers=key, params={"priority": 90}).status_code == 409
    # Without a key, each submit is a new job.
    assert post(client, example()).json()["id"] != job["id"]
    assert job_count(client) == 2


def test_one_job_for_concurrent_submits_with_one_key(client: TestClient) -> None:
    from concurrent.futures import ThreadPoolExecutor

    text = EXAMPLE.read_text()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: client.post("/v1/jobs", content=text, headers={
            **YAML, "Idempotency-Key": "burst"}), range(8)))
    assert sorted(r.status_code for r in answers) == [200] * 7 + [201], [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert job_count(client) == 1


def test_options_from_query_and_envelope(client: TestClient) -> None:
    r = post(client, example(), params={"priority": 80, "labels": ["team=social", "sprint=12"]})
    assert r.status_code == 201, r.text
    assert (r.json()["priority"], r.json()["labels"]) == (80, {"team": "social", "sprint": "12"})
    r = post(client, {"brief": example(), "priority": 5, "labels": {"team": "tv"}}, as_yaml=True)
    assert r.status_code == 201, r.text
    assert (r.json()["priority"], r.json()["labels"]) == (5, {"team": "tv"})
    r = post(client, example(), params={"priority": 101})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "priority"
    r = post(client, {"brief": example(), "priority": "high", "colour": 1})
    assert r.status_code == 422
    assert {p["field"] for p in r.json()["problems"]} == {"priority", "colour"}
    assert job_count(client) == 2


def test_dry_run_returns_the_plan_and_queues_nothing(client: TestClient) -> None:
    r = post(client, example(), params={"dry_run": "true"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["dry_run"] is True and out["project"] == "aurora"
    steps = out["plan"]["steps"]
    assert steps and "current" not in {s["status"] for s in steps}  # nothing was ever made here
    assert {"candidates", "conform"} <= {s["stage"] for s in steps}
    assert "gpu_seconds" in out["plan"]["estimate"]
    r = post(client, {"brief": example(), "dry_run": True})
    assert r.status_code == 200 and r.json()["plan"]["steps"] == steps
    assert job_count(client) == 0
    # A refused brief is refused in a dry run too.
    assert post(client, bad_brief(), params={"dry_run": "true"}).status_code == 422


# -- reading and cancelling ------------------------------------------------------------


def test_list_with_filters_and_cursor(client: TestClient) -> None:
    made = [post(client, example(), params={"labels": [f"n={i}", f"even={i % 2 == 0}"]}).json()["id"]
            for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        page = client.get("/v1/jobs", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        assert len(page["jobs"]) <= 2
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]  # newest first, each once
    evens = client.get("/v1/jobs", params={"label": "even=True"}).json()["jobs"]
    assert sorted(j["id"] for j in evens) == sorted(made[0::2])
    assert client.get("/v1/jobs", params={"project": "other"}).json()["jobs"] == []
    client.post(f"/v1/jobs/{made[1]}/cancel")
    canceled = client.get("/v1/jobs", params={"state": "canceled"}).json()["jobs"]
    assert [j["id"] for j in canceled] == [made[1]]
    assert client.get("/v1/jobs", params={"cursor": "not-a-cursor"}).status_code == 422
    assert client.get("/v1/jobs", params={"label": "no-equals"}).status_code == 422
    assert client.get("/v1/jobs", params={"limit": 0}).status_code == 422


def test_cancel_touches_exactly_that_job(client: TestClient) -> None:
    a, b = (post(client, example()).json()["id"] for _ in range(2))
    r = client.post(f"/v1/jobs/{a}/cancel")
    assert r.status_code == 202 and r.json()["state"] == "canceled"
    assert client.post(f"/v1/jobs/{a}/cancel").json()["state"] == "canceled"  # twice: the same
    assert client.get(f"/v1/jobs/{b}").json()["state"] == "queued"
    events = client.get(f"/v1/jobs/{a}/events").json()["events"]
    assert [e["type"] for e in events] == ["queued", "canceled"]
    after = client.get(f"/v1/jobs/{a}/events", params={"after": events[0]["id"]}).json()["events"]
    assert [e["type"] for e in after] == ["canceled"]
    job = client.get(f"/v1/jobs/{a}").json()
    assert job["state"] == "canceled" and job["brief"]["project"] == "aurora"


def test_a_running_job_cancels_in_two_phases_and_shows_its_attempts(client: TestClient, settings: Settings) -> None:
    from studio import jobs

    job_id = post(client, example()).json()["id"]
    engine = db.make_engine(settings.db_url)
    try:
        claim = jobs.claim(engine, "test-worker", lease_seconds=60)
        assert claim is not None and claim.job_id == job_id
        assert client.get(f"/v1/jobs/{job_id}").json()["state"] == "running"
        r = client.post(f"/v1/jobs/{job_id}/cancel")
        assert r.status_code == 202 and r.json()["state"] == "canceling" and r.json()["cancel_requested"]
        attempts = client.get(f"/v1/jobs/{job_id}/attempts").json()["attempts"]
        assert [(a["n"], a["state"], a["worker"]) for a in attempts] == [(1, "running", "test-worker")]
        assert "lease_token" not in attempts[0] and claim.lease_token not in json.dumps(attempts)
        assert jobs.finish(engine, claim.lease_token, "canceled")
    finally:
        engine.dispose()
    assert client.get(f"/v1/jobs/{job_id}").json()["state"] == "canceled"
    types = [e["type"] for e in client.get(f"/v1/jobs/{job_id}/events").json()["events"]]
    assert types == ["queued", "running", "canceling", "canceled"]


# -- the real server -------------------------------------------------------------------


def test_studio_serve(tmp_path: Path) -> None:
    """`studio serve` under uvicorn: health, a submit (as `curl` would), the job read
    back, and a clean stop on SIGTERM."""
    port = free_port()
    env = {**os.environ, "STUDIO_HOME": str(tmp_path / "home")}
    env.pop("STUDIO_DATABASE_URL", None)
    made = subprocess.run([sys.executable, "-m", "studio", "token", "create", "--project", "aurora", "--role",
                           "editor"], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    token = bearer(made.stdout.strip())
    proc, base = serve(tmp_path / "home", port=port)
    try:
        r = httpx.post(f"{base}/v1/jobs", content=EXAMPLE.read_bytes(),
                       headers={**YAML, **token, "Idempotency-Key": "serve-1"}, timeout=60)
        assert r.status_code == 201, r.text
        assert httpx.get(f"{base}/v1/jobs/{r.json()['id']}", timeout=10).status_code == 401
        job = httpx.get(f"{base}/v1/jobs/{r.json()['id']}", headers=token, timeout=10).json()
        assert job["state"] == "queued" and job["campaign"] == "spring-launch"
        assert httpx.get(f"{base}/openapi.json", timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, out
    assert f"Uvicorn running on http://127.0.0.1:{port}" in out
    # Acknowledged means committed: the job is in the database after the server is gone.
    engine = db.make_engine(Settings(home=tmp_path / "home").db_url)
    try:
        from studio import jobs

        assert jobs.get(engine, r.json()["id"]).state == "queued"  # type: ignore[union-attr]
    finally:
        engine.dispose()
