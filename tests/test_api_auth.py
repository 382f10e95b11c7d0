"""API tokens and roles (studio.auth, the API's ``authorize`` dependency), on SQLite and
PostgreSQL.

What it proves: every route the app has (read from ``app.routes``, so a route added later
is in these tests the day it exists) refuses a request without a token, with an unknown
token and with a revoked one (401, with ``WWW-Authenticate: Bearer``), and one whose role
is too weak (403 naming the role it needs), while the roles that may call it get through;
a token of another project (even an admin's) never sees this project's jobs (404 as for an
unknown id, empty lists, nothing of them in any answer, including an experiment-class
job) and cannot submit this project's brief (403); health and the OpenAPI document need no
token. `studio token create/list/revoke` through the CLI: the secret is printed once and
only its sha256 is stored.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from studio import auth, db
from studio.api.app import create_app
from studio.api.deps import route_role
from studio.settings import Settings, get_settings

from . import test_api as base
from .test_api import EXAMPLE, bearer, example

# test_api's fixtures: the database (SQLite and PostgreSQL), its settings, a token per role.
db_url, settings, tokens = base.db_url, base.settings, base.tokens

# The role each route needs. A route not named here must follow the default (a GET needs a
# viewer, anything else an admin): a new route that changes things is closed until it is
# given a role here and in its openapi_extra.
NEEDS = {
    ("POST", "/v1/jobs"): "editor",
    ("POST", "/v1/jobs/{job_id}/cancel"): "editor",
    ("POST", "/v1/jobs/{job_id}/picks"): "editor",
    ("POST", "/v1/jobs/{job_id}/annotations"): "editor",
    ("POST", "/v1/jobs/{job_id}/more"): "editor",
    ("POST", "/v1/jobs/{job_id}/approvals"): "approver",
    ("POST", "/v1/jobs/{job_id}/overrides"): "approver",  # a policy sign-off, as approvals
    ("POST", "/v1/jobs/{job_id}/shares"): "editor",
    ("GET", "/v1/jobs/{job_id}/shares"): "editor",
    ("POST", "/v1/jobs/{job_id}/shares/{share_id}/revoke"): "editor",
    ("POST", "/v1/jobs/{job_id}/retry"): "editor",
    ("POST", "/v1/jobs/{job_id}/suspend"): "editor",
    ("POST", "/v1/jobs/{job_id}/resume"): "editor",
    ("PATCH", "/v1/jobs/{job_id}"): "editor",
    ("POST", "/v1/uploads"): "editor",
    ("POST", "/v1/jobs/{job_id}/notes"): "editor",  # a frame note, as a note on a candidate
    # Webhooks are admin business, reads included: a webhook URL can be a secret itself.
    ("GET", "/v1/webhooks"): "admin",
    ("GET", "/v1/webhooks/{webhook_id}"): "admin",
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): "admin",
}
PUBLIC = {("GET", "/v1/health")}
DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}  # FastAPI's own, no token
PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    engine = db.make_engine(settings.db_url)
    yield create_app(settings, engine)
    engine.dispose()


@pytest.fixture
def aurora_job(app: FastAPI, tokens: dict[str, str]) -> str:
    """An experiment-class job of project aurora (visible to aurora's tokens only)."""
    doc = {**example(), "usage_class": "experiment"}
    with TestClient(app, headers=bearer(tokens["editor"])) as c:
        r = c.post("/v1/jobs", content=yaml.safe_dump(doc), headers={"content-type": "application/yaml"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def routes(app: FastAPI) -> list[tuple[str, str, APIRoute]]:
    """Every (method, path, route) the app answers, the public ones aside. Recent FastAPI
    keeps an included router as one entry of ``app.routes``; iter_route_contexts opens it
    (``original_route`` is the route a request's scope names, the one ``authorize`` reads)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before 0.16x: include_router copies the routes into app.routes
        pairs = [(getattr(r, "path", ""), r) for r in app.routes]
    else:
        pairs = [(rc.path, rc.original_route) for rc in iter_route_contexts(app.routes)]
    found = []
    for path, route in pairs:
        if path in DOCS or path == "/review" or path.startswith("/review/"):
            continue  # the review page signs in with its own session (tests/test_review_*.py)
        # Anything else is an API route under /v1: a plain Starlette route or a mount would
        # not pass through the v1 router's dependency.
        assert isinstance(route, APIRoute) and path.startswith("/v1/"), (path, route)
        found += [(m, path, route) for m in sorted(route.methods)]
    assert {(m, p) for m, p, _ in found} >= PUBLIC | set(NEEDS), "a route these tests know has gone"
    return [(m, p, r) for m, p, r in found if (m, p) not in PUBLIC]


def call(app: FastAPI, method: str, route_path: str, job_id: str, headers: dict[str, str]
         ) -> tuple[int, dict[str, str], bytes]:
    """Call ``route`` straight through ASGI: (status, headers, body). The client goes away
    as soon as the request is sent, so a server-sent events stream ends after what it has
    to send at once (a test client would wait for it for ever)."""
    path = PATH_PARAM.sub(lambda m: job_id if m.group(1) == "job_id" else "x", route_path)
    body = b""
    content_type = "application/json"
    if (method, route_path) == ("POST", "/v1/jobs"):
        body, content_type = EXAMPLE.read_bytes(), "application/yaml"
    elif method in ("POST", "PUT", "PATCH"):
        body = b"{}"
    sent = False
    status = 0
    out_headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            out_headers.update({k.decode().lower(): v.decode() for k, v in message["headers"]})
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    raw_headers = [(k.lower().encode(), v.encode()) for k, v in
                   {**headers, "content-type": content_type, "host": "testserver"}.items()]
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
             "query_string": b"", "headers": raw_headers, "client": ("127.0.0.1", 1),
             "server": ("testserver", 80)}
    anyio.run(app, scope, receive, send)
    return status, out_headers, b"".join(chunks)


def jobs_in_db(settings: Settings) -> int:
    engine = db.make_engine(settings.db_url)
    try:
        with Session(engine) as s:
            return len(s.exec(select(db.Job)).all())
    finally:
        engine.dispose()


# -- the roles the routes need ---------------------------------------------------------


def test_each_route_needs_the_role_it_should(app: FastAPI) -> None:
    for method, path, route in routes(app):
        default = "viewer" if method in ("GET", "HEAD") else "admin"
        assert route_role(route) == NEEDS.get((method, path), default), (method, path)
    # A route that declares nothing: a read needs a viewer, anything else an admin.
    def endpoint() -> None: ...

    for methods, role in ((["GET"], "viewer"), (["POST"], "admin"), (["DELETE"], "admin"),
                          (["GET", "POST"], "admin")):
        assert route_role(APIRoute("/v1/later", endpoint, methods=methods)) == role, methods
    assert route_role(APIRoute("/v1/later", endpoint, methods=["POST"],
                               openapi_extra={"x-studio-role": "approver"})) == "approver"


def test_health_and_openapi_need_no_token(app: FastAPI) -> None:
    with TestClient(app) as c:
        assert c.get("/v1/health").status_code == 200
        doc = c.get("/openapi.json").json()
    # The document says so: a bearer scheme on every route but health.
    assert any(s.get("scheme") == "bearer" for s in doc["components"]["securitySchemes"].values())
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if (method.upper(), path) in PUBLIC:
                assert "security" not in op and "401" not in op["responses"], (method, path)
            else:
                assert op.get("security") and {"401", "403"} <= set(op["responses"]), (method, path)


# -- 401: no token, an unknown one, a revoked one --------------------------------------


def test_every_route_refuses_a_request_without_a_live_token(app: FastAPI, settings: Settings,
                                                           tokens: dict[str, str], aurora_job: str) -> None:
    engine = db.make_engine(settings.db_url)
    try:
        row, revoked = auth.create(engine, project="aurora", role="admin", name="to revoke")
        auth.revoke(engine, row.id)
    finally:
        engine.dispose()
    unknown = tokens["admin"][:-4] + "AAAA"  # its prefix finds a row; its hash matches none
    cases = {"no token": {}, "not bearer": {"Authorization": f"Basic {tokens['admin']}"},
             "unknown": bearer(unknown), "garbage": bearer("x"), "revoked": bearer(revoked)}
    before = jobs_in_db(settings)
    checked = 0
    for method, path, _route in routes(app):
        for case, headers in cases.items():
            status, out_headers, body = call(app, method, path, aurora_job, headers)
            assert status == 401, (method, path, case, body)
            assert out_headers["www-authenticate"].startswith("Bearer"), (method, path, case)
            answer = json.loads(body)
            assert set(answer) == {"detail", "fix", "problems"} and answer["fix"], answer
            assert aurora_job not in body.decode()
            checked += 1
    assert checked >= 6 * len(cases)  # health aside: submit, list, job, cancel, events, attempts at least
    assert jobs_in_db(settings) == before


# -- 403: a role too weak ----------------------------------------------------------------


def test_every_route_refuses_a_role_too_weak_and_lets_the_others_in(app: FastAPI, settings: Settings,
                                                                   tokens: dict[str, str],
                                                                   aurora_job: str) -> None:
    refused = 0
    for method, path, route in routes(app):
        needed = route_role(route)
        for role in auth.ROLES:
            before = jobs_in_db(settings)
            status, _, body = call(app, method, path, aurora_job, bearer(tokens[role]))
            if auth.allows(role, needed):
                assert status not in (401, 403), (method, path, role, body)
                continue
            refused += 1
            assert status == 403, (method, path, role, body)
            answer = json.loads(body)
            allowed = " or ".join(auth.roles_for(needed))
            article = "an" if allowed[0] in "aeiou" else "a"
            assert answer["detail"].startswith(f"this needs {article} {allowed} token; this one"), answer
            article = "an" if role[0] in "aeiou" else "a"
            assert f"is {article} {role} token for project aurora" in answer["detail"]
            assert f"--project aurora --role {needed}" in answer["fix"]
            assert jobs_in_db(settings) == before, (method, path, role)
    assert refused >= 4  # submit and cancel: by a viewer and by an approver


def test_editor_and_approver_do_not_include_each_other() -> None:
    assert auth.allows("editor", "editor") and not auth.allows("approver", "editor")
    assert auth.allows("approver", "approver") and not auth.allows("editor", "approver")
    assert [r for r in auth.ROLES if auth.allows(r, "admin")] == ["admin"]
    assert all(auth.allows(r, "viewer") for r in auth.ROLES)


# -- another project ---------------------------------------------------------------------


def test_another_projects_token_sees_nothing_of_this_project(app: FastAPI, settings: Settings,
                                                            aurora_job: str) -> None:
    engine = db.make_engine(settings.db_url)
    try:
        other = auth.create(engine, project="other", role="admin")[1]  # the strongest role
    finally:
        engine.dispose()
    before = jobs_in_db(settings)
    for method, path, _route in routes(app):
        status, _, body = call(app, method, path, aurora_job, bearer(other))
        text = body.decode()
        if "{job_id}" in path:
            _, _, unknown = call(app, method, path, "job_0000000000000000", bearer(other))
            if status == 422:
                # The body ({} here) is refused before any job is looked up: the same answer as
                # for an unknown id (test_gates checks such routes with a valid body).
                assert json.loads(body) == json.loads(unknown), (method, path)
                continue
            # Exactly as an unknown id: the job's existence is not revealed.
            assert status == 404, (method, path, text)
            assert json.loads(body)["detail"].replace(aurora_job, "?") == (
                json.loads(unknown)["detail"].replace("job_0000000000000000", "?"))
        elif path.startswith("/v1/webhooks/"):
            # "x" is no endpoint in any project (tests/test_webhooks.py calls these with another
            # project's real endpoint: the same 404 as for an unknown id).
            assert status == 404, (method, path, text)
        elif (method, path) == ("POST", "/v1/webhooks"):
            assert status == 422, text  # {} names no URL
        elif (method, path) == ("POST", "/v1/uploads"):
            assert status == 422, text  # no ?filename= (tests/test_uploads.py: uploads are per project)
        elif (method, path) == ("POST", "/v1/jobs"):
            assert status == 403, text
            assert json.loads(body)["detail"] == ("this token is for project 'other', and the brief is for "
                                                  "project 'aurora'")
        else:
            assert status == 200, (method, path, text)
            assert aurora_job not in text, (method, path, text[:500])  # nothing of it in any list
    assert jobs_in_db(settings) == before
    with TestClient(app, headers=bearer(other)) as c:
        assert c.get("/v1/jobs").json()["jobs"] == []
        assert c.get("/v1/jobs", params={"project": "aurora"}).json()["jobs"] == []
        assert c.get("/v1/events").json()["events"] == []


def test_a_projects_token_sees_its_own_jobs(app: FastAPI, tokens: dict[str, str],
                                           aurora_job: str) -> None:
    with TestClient(app, headers=bearer(tokens["viewer"])) as c:
        assert [j["id"] for j in c.get("/v1/jobs").json()["jobs"]] == [aurora_job]
        assert c.get(f"/v1/jobs/{aurora_job}").json()["brief"]["usage_class"] == "experiment"
        assert {e["job_id"] for e in c.get("/v1/events").json()["events"]} == {aurora_job}


# -- the tokens themselves ----------------------------------------------------------------


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("STUDIO_HOME", str(settings.home))
    monkeypatch.setenv("STUDIO_DATABASE_URL", settings.db_url)
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def test_token_commands(cli_env: Settings, app: FastAPI) -> None:
    from studio.cli import main

    runner = CliRunner()
    made = runner.invoke(main, ["token", "create", "--project", "aurora", "--role", "editor", "--name", "ci"])
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    assert re.fullmatch(r"studio_[A-Za-z0-9_-]{43}", secret), made.stdout
    assert "the only time it is shown" in made.stderr and secret not in made.stderr

    # Only the hash is stored: the secret is in no column of any row.
    engine = db.make_engine(cli_env.db_url)
    try:
        with Session(engine) as s:
            rows = s.exec(select(db.ApiToken)).all()
        assert len(rows) == 1
        row = rows[0]
        assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
        assert secret not in json.dumps(row.model_dump(mode="json"))
        assert (row.project, row.role, row.name, row.prefix) == ("aurora", "editor", "ci", secret[:15])
        if cli_env.db_url.startswith("sqlite:///"):
            assert secret.encode() not in Path(cli_env.db_url.removeprefix("sqlite:///")).read_bytes()
    finally:
        engine.dispose()

    with TestClient(app) as c:
        assert c.get("/v1/jobs", headers=bearer(secret)).status_code == 200
        listed = json.loads(runner.invoke(main, ["token", "list", "--json"]).stdout)
        assert [(t["id"], t["role"], t["project"], t["revoked_at"]) for t in listed] == [
            (row.id, "editor", "aurora", None)]
        assert listed[0]["last_used_at"] is not None  # the request above
        assert secret not in json.dumps(listed) and listed[0]["prefix"] == secret[:15]
        text = runner.invoke(main, ["token", "list"])
        assert text.exit_code == 0 and row.id in text.stdout and secret not in text.stdout

        revoked = runner.invoke(main, ["token", "revoke", row.id])
        assert revoked.exit_code == 0 and f"token {row.id} (editor on project aurora) revoked" in revoked.stdout
        r = c.get("/v1/jobs", headers=bearer(secret))
        assert r.status_code == 401 and r.json()["detail"] == "the API token is unknown or revoked"
        listed = json.loads(runner.invoke(main, ["token", "list", "--json"]).stdout)
        assert listed[0]["revoked_at"] is not None

    bad = runner.invoke(main, ["token", "revoke", "tok_nope"])
    assert bad.exit_code == 2 and "no token 'tok_nope'" in bad.stderr
    bad = runner.invoke(main, ["token", "create", "--project", "*", "--role", "admin"])
    assert bad.exit_code == 2 and "there are no tokens for all projects" in bad.stderr
    bad = runner.invoke(main, ["token", "create", "--project", "aurora", "--role", "owner"])
    assert bad.exit_code == 2 and "owner" in bad.output
