"""The API against its own OpenAPI document (schemathesis): for every operation, requests
generated from the document (valid ones and, in the coverage phase, edge cases) sent to
the app with an editor token of project aurora. Each response must not be a 5xx and must
conform to the document: a documented status code, the documented content type, a body
and headers that match the schema.

Bounded for CI: at most ``MAX_EXAMPLES`` generated requests per operation, no deadline
(the first request migrates the database), no stateful phase. The two streaming routes
are left out (see ``STREAMS``). Submits queue real jobs (no worker runs, so they stay
queued) or, with ``dry_run``, return the engine's plan.

The same test runs on SQLite (the document loaded at import, one test per operation) and
on PostgreSQL (a fresh database on the loopback server of conftest's ``postgres_url``,
loaded through a fixture, so PostgreSQL starts only when that test runs; skipped with the
reason where PostgreSQL is not installed): what PostgreSQL refuses that SQLite stores
(a NUL character in a string, an integer past 64 bits) would be a 500 there only.
``MAX_EXAMPLES_POSTGRES`` per operation keeps the second run short."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from studio import auth, db
from studio.api.app import create_app
from studio.settings import Settings

MAX_EXAMPLES = 20
MAX_EXAMPLES_POSTGRES = 5
# Server-sent event streams: /v1/stream never ends on its own (it follows every job until
# the client goes) and /v1/jobs/{job_id}/stream only once its job is final, which no job
# here becomes; a generated call would wait for ever. tests/test_api_stream.py covers them.
STREAMS = r"^/v1(/jobs/\{job_id\})?/stream$"

# The app is built at import time because schemathesis parametrizes the test from the
# loaded document at collection; its STUDIO_HOME (SQLite) is a temporary directory.
HOME = Path(tempfile.mkdtemp(prefix="studio-schema-"))
(HOME / "assets").mkdir()
SETTINGS = Settings(home=HOME / "home", database_url=f"sqlite:///{HOME / 'studio.db'}",
                    assets_roots=str(HOME / "assets"))
ENGINE = db.make_engine(SETTINGS.db_url)
db.init_db(ENGINE)
EDITOR = auth.create(ENGINE, project="aurora", role="editor", name="test-schema")[1]
# A brief valid by its JSON schema can still be refused (422) for what the schema cannot
# say: a channel spec or voice that is not in the catalog, an asset path that is not
# there, beats longer than the spec allows. So schema-valid bodies are not required to be
# accepted; what schemathesis checks beside is (5xx, status codes, content types,
# bodies and headers against the document).
# Nor are "schema-violating" requests required to be refused: in a query string every
# value is a string, and schemathesis counts `?state=-2.5e-275&label=` (a number, an
# object serialized to nothing) as invalid where the server rightly reads valid strings.
NOT_CHECKED = [schemathesis.checks.positive_data_acceptance, schemathesis.checks.negative_data_rejection]

schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(SETTINGS, ENGINE)).exclude(
    path_regex=STREAMS)




@schema.auth()
class EditorToken:
    """The editor token on every call, as the document's bearer scheme (so schemathesis
    knows the credentials are supplied and does not count a request as lacking them)."""

    token = EDITOR

    def get(self, case: schemathesis.Case, context: object) -> str:
        return self.token

    def set(self, case: schemathesis.Case, data: str, context: object) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.parametrize()
# derandomize: the same examples every run, so CI is red for a fault in the code, not for
# the draw (a random draw in one CI run found the 64-bit event id below; pinned since).
# STUDIO_SCHEMA_FUZZ=1 draws fresh examples for a local hunt.
@settings(max_examples=MAX_EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck), derandomize=os.environ.get("STUDIO_SCHEMA_FUZZ") != "1")
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case) -> None:
    case.call_and_validate(excluded_checks=NOT_CHECKED)


@pytest.fixture(scope="module")
def postgres_app(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """The app on a fresh PostgreSQL database, and an editor token of project aurora on it."""
    from .test_migrations import _fresh_pg

    home = tmp_path_factory.mktemp("schema-pg")
    (home / "assets").mkdir()
    url = _fresh_pg(postgres_url, "api_schema")
    pg_settings = Settings(home=home / "home", database_url=url, assets_roots=str(home / "assets"))
    engine = db.make_engine(url)
    db.init_db(engine)
    token = auth.create(engine, project="aurora", role="editor", name="test-schema-pg")[1]
    try:
        yield create_app(pg_settings, engine), token
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def postgres_schema(postgres_app: tuple[Any, str]) -> object:
    """The document of the PostgreSQL app, the same routes left out as on SQLite."""
    app, token = postgres_app
    loaded = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path_regex=STREAMS)
    loaded.auth()(type("PostgresEditorToken", (EditorToken,), {"token": token}))
    return loaded


@pytest.fixture
def _node_id(request: pytest.FixtureRequest) -> None:
    """schemathesis' fixture-loaded tests (4.x) read ``node._nodeid``, which pytest 9 no
    longer has (the id is ``_id`` behind the ``nodeid`` property): give it one to read."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@pytest.mark.usefixtures("_node_id")
@schemathesis.pytest.from_fixture("postgres_schema").parametrize()
@settings(max_examples=MAX_EXAMPLES_POSTGRES, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck), derandomize=os.environ.get("STUDIO_SCHEMA_FUZZ") != "1")
def test_api_conforms_to_its_openapi_document_on_postgres(case: schemathesis.Case) -> None:
    case.call_and_validate(excluded_checks=NOT_CHECKED)


def test_what_schemathesis_found_stays_fixed() -> None:
    """Three findings, pinned without generation: a 422 is documented as the ErrorOut the
    app answers (FastAPI documented its own list-shaped HTTPValidationError); a 405's
    Allow names every method the path serves (Starlette named only the first route's); an
    event id past 64 bits is a 422, not a 500 from the database (found in a CI run), and as
    a Last-Event-ID header it counts as none."""
    from fastapi.testclient import TestClient

    from studio.api import stream

    app = create_app(SETTINGS, ENGINE)
    doc = app.openapi()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert doc["paths"]["/v1/jobs/{job_id}"]["get"]["responses"]["422"]["content"]["application/json"][
        "schema"] == {"$ref": "#/components/schemas/ErrorOut"}
    with TestClient(app) as client:
        r = client.request("OPTIONS", "/v1/jobs")
        assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
        r = client.get("/v1/events", params={"after": 122336979546573736247296}, headers={"Authorization": f"Bearer {EDITOR}"})
        assert r.status_code == 422, r.text
        assert client.get("/v1/events", params={"after": 2**31 - 1}, headers={"Authorization": f"Bearer {EDITOR}"}).status_code == 200
        assert client.get("/v1/events", params={"after": 2**31}, headers={"Authorization": f"Bearer {EDITOR}"}).status_code == 422
    assert stream.start_after(5, str(2**64)) == 5 and stream.start_after(5, "7") == 7
    assert stream.start_after(5, str(2**31)) == 5 and stream.start_after(5, str(2**31 - 1)) == 2**31 - 1


def test_an_event_id_past_32_bits_is_a_422_on_postgres(postgres_app: tuple[Any, str]) -> None:
    """PostgreSQL's event ids are 32-bit (SERIAL): ?after= past that was a 500 from the
    database there (schemathesis on PostgreSQL found it); now a 422 on both, as on SQLite."""
    from fastapi.testclient import TestClient

    app, token = postgres_app
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        for path in ("/v1/events", "/v1/jobs/job_0000/events"):
            assert client.get(path, params={"after": 2**31}, headers=headers).status_code == 422, path
        assert client.get("/v1/events", params={"after": 2**31 - 1}, headers=headers).status_code == 200
