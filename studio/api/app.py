"""The HTTP API: ``create_app`` builds a FastAPI app over the job queue (studio.jobs).

Everything lives under ``/v1`` and needs ``Authorization: Bearer <token>`` (studio.auth),
``GET /v1/health`` aside: the ``v1`` router's dependency ``authorize`` checks the token
and the role the route needs (``openapi_extra={"x-studio-role": ...}``; without one a GET
needs a viewer, anything else an admin), so a route added later is protected by default.
A token sees its own project only: another project's job is 404, as if it did not exist.
FastAPI publishes the OpenAPI document at
``/openapi.json`` (with the brief's own JSON schema as the body of ``POST /v1/jobs``).
Nothing happens at import time: the database engine is made (and migrated) on the first
request that needs it, unless one is handed in. Settings and the engine reach the routes
through ``Depends(get_settings_dep)`` and ``Depends(get_engine)``, so a test can override
either (``app.dependency_overrides``).

A job is acknowledged (201) only after ``studio.jobs.submit`` committed it. Unknown ids
are 404, never a default state.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from studio import __version__, jobs
from studio.api import stream
from studio.api.bodies import ApiError, check_submission, labels_from_query
from studio.api.deps import (
    AUTH_ERRORS,
    ERRORS,
    JOB_ID,
    MAX_KEY,
    EngineDep,
    PrincipalDep,
    SettingsDep,
    authorize,
    bad_parameter,
    job_out,
    needs,
    not_found,
    read_body,
    visible,
)
from studio.api.progress import job_progress
from studio.api.schemas import (
    AttemptListOut,
    AttemptOut,
    ErrorOut,
    EventListOut,
    EventOut,
    HealthOut,
    JobDetailOut,
    JobListOut,
    JobOut,
    PlanOut,
)
from studio.brief import Brief
from studio.errors import StudioError
from studio.settings import Settings

# Modules with ``add_routes(v1: APIRouter)``: one per part of the API beyond the jobs.
ROUTE_MODULES: tuple[str, ...] = ("studio.api.controls", "studio.api.outputs", "studio.api.gates",
                                  "studio.api.webhooks", "studio.api.uploads", "studio.api.shares",
                                  "studio.api.catalog", "studio.api.media")


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """The API app. ``settings`` default to the environment's (STUDIO_*); ``engine`` to
    one made from the settings' database URL on first use."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if app.state.own_engine and app.state.engine is not None:
            app.state.engine.dispose()

    app = FastAPI(
        title="Studio", version=__version__, lifespan=lifespan,
        description="Brief in, deliverables out, every step recorded: submit briefs as jobs to a "
                    "durable queue and follow them.")
    app.state.settings = settings
    app.state.engine = engine
    app.state.own_engine = False
    app.state.engine_ready = False
    app.state.engine_lock = threading.Lock()

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "header", "body")]
            name = ".".join(loc) or None
            msg = str(err.get("msg", "invalid"))
            problems.append({"field": name, "message": msg, "fix": "see the OpenAPI document (/openapi.json)",
                             "line": None, "stage": None, "source": None,
                             "text": f"{name}: {msg}" if name else msg})
        detail = "; ".join(p["text"] for p in problems) or "invalid request"
        return JSONResponse({"detail": detail, "fix": "see the OpenAPI document (/openapi.json)",
                             "problems": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Starlette's Allow names the methods of the first route on this path only; a
            # path served by two routes (GET and POST /v1/jobs) supports both.
            headers["Allow"] = ", ".join(_allowed(request.app, request.url.path))
        return JSONResponse({"detail": str(exc.detail), "fix": "", "problems": []}, status_code=exc.status_code,
                            headers=headers or None)

    public = APIRouter(prefix="/v1")  # no token needed: only what a load balancer asks
    # 422 for every v1 route: the handler above answers ErrorOut, and FastAPI would otherwise
    # document its own HTTPValidationError (a list under "detail") for routes with parameters.
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(authorize)],
                   responses={**AUTH_ERRORS, 400: ERRORS[400], 422: ERRORS[422]})

    @public.get("/health", response_model=HealthOut, tags=["server"])
    def health(engine: EngineDep) -> dict[str, Any]:
        """The server answers and its database does."""
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return {"status": "ok", "version": __version__, "database": engine.dialect.name}

    @v1.post(
        "/jobs", status_code=201, response_model=JobDetailOut, tags=["jobs"], openapi_extra=needs("editor"),
        responses={200: {"model": JobDetailOut | PlanOut,
                         "description": "the job this Idempotency-Key made before (same request), or "
                                        "with dry_run the engine's plan (nothing queued)"},
                   201: {"description": "queued (committed before this answer)"},
                   409: {"model": ErrorOut, "description": "the Idempotency-Key was used for another request"},
                   413: {"model": ErrorOut, "description": "the body is over the size limit"},
                   415: {"model": ErrorOut, "description": "the body is neither JSON nor YAML"},
                   422: ERRORS[422]})
    async def submit_job(
        request: Request, settings: SettingsDep, engine: EngineDep, principal: PrincipalDep,
        priority: Annotated[int | None, Query(ge=0, le=100, description="0-100; default 50")] = None,
        labels: Annotated[list[str], Query(description="key=value, repeated")] = [],  # noqa: B006
        dry_run: Annotated[bool | None, Query(description="return the plan; queue nothing")] = None,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1,
                                                      max_length=MAX_KEY)] = None,
    ) -> Any:
        """Submit a brief (the body: the brief, or ``{brief, priority, labels, dry_run}``), as
        JSON or YAML. Refused briefs get a 422 listing each problem with its field path and
        fix, in the words `studio render` prints."""
        raw = await read_body(request, settings.api_max_body_bytes)
        try:
            query_labels = labels_from_query(labels)
        except StudioError as e:
            raise bad_parameter(e) from None
        sub = await run_in_threadpool(check_submission, raw, request.headers.get("content-type"), settings,
                                      priority=priority, labels=query_labels, dry_run=dry_run)
        if sub.project != principal.project:
            raise ApiError(403, f"this token is for project {principal.project!r}, and the brief is for "
                                f"project {sub.project!r}",
                           fix=f"submit it with a token of project {sub.project!r}")
        if sub.dry_run:
            out = PlanOut(project=sub.project, campaign=sub.campaign, brief_sha256=sub.brief_sha256,
                          plan=sub.plan or {})
            return JSONResponse(out.model_dump(mode="json"), status_code=200)
        try:
            job, created = await run_in_threadpool(
                lambda: jobs.submit(engine, brief=sub.brief, project=sub.project, campaign=sub.campaign,
                                    brief_sha256=sub.brief_sha256, priority=sub.priority, labels=sub.labels,
                                    idempotency_key=idempotency_key, request_sha256=sub.request_sha256))
        except jobs.IdempotencyConflict as e:
            raise ApiError(409, e.what, fix=e.fix) from None
        headers = {"Location": f"/v1/jobs/{job.id}"}
        return JSONResponse(job_out(job, JobDetailOut), status_code=201 if created else 200, headers=headers)

    @v1.get("/jobs", response_model=JobListOut, tags=["jobs"], responses={422: ERRORS[422]})
    def list_jobs(
        engine: EngineDep, principal: PrincipalDep,
        state: Annotated[list[str] | None, Query(description="one or more states")] = None,
        project: str | None = None,
        label: Annotated[str | None, Query(description="key=value")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    ) -> dict[str, Any]:
        """Jobs, newest first, a page at a time (the token's project's only)."""
        if project is not None and project != principal.project:
            return {"jobs": [], "next_cursor": None}
        project = principal.project
        if principal.job_id is not None:  # a share link's session: its one job, whatever the page
            one = jobs.get(engine, principal.job_id)
            keep = one is not None and (not state or one.state in state) and (
                label is None or f"{label.partition('=')[0]}={one.labels.get(label.partition('=')[0])}" == label)
            return {"jobs": [job_out(one)] if keep else [], "next_cursor": None}
        try:
            rows, next_cursor = jobs.list_jobs(engine, state=state or None, project=project, label=label,
                                               limit=limit, cursor=cursor)
        except StudioError as e:
            raise bad_parameter(e) from None
        return {"jobs": [job_out(j) for j in rows], "next_cursor": next_cursor}

    @v1.get("/jobs/{job_id}", response_model=JobDetailOut, tags=["jobs"], responses={404: ERRORS[404]})
    def get_job(engine: EngineDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID]) -> dict[str, Any]:
        """One job: its state, as the queue has it."""
        job = visible(engine, job_id, principal)
        out = job_out(job, JobDetailOut)
        out["progress"] = job_progress(jobs.events(engine, job_id, limit=1_000_000), job.state)
        return out

    @v1.post("/jobs/{job_id}/cancel", status_code=202, response_model=JobOut, tags=["jobs"],
             openapi_extra=needs("editor"), responses={404: ERRORS[404]})
    def cancel_job(engine: EngineDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID]) -> dict[str, Any]:
        """Cancel this job and no other. Queued: canceled at once. Running: canceling
        until its worker has stopped, then canceled. Finished: unchanged."""
        visible(engine, job_id, principal)  # a job's project never changes
        try:
            job = jobs.cancel(engine, job_id)
        except jobs.UnknownJob:
            raise not_found(job_id) from None
        return job_out(job)

    @v1.get("/jobs/{job_id}/events", response_model=EventListOut, tags=["jobs"], responses={404: ERRORS[404]})
    def job_events(
        engine: EngineDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID],
        after: Annotated[int, Query(ge=0, le=stream.MAX_EVENT_ID, description="the last event id seen")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    ) -> dict[str, Any]:
        """The job's events after ``after``, oldest first."""
        visible(engine, job_id, principal)
        rows = jobs.events(engine, job_id, after_id=after, limit=limit)
        return {"events": [EventOut.model_validate(e).model_dump(mode="json") for e in rows]}

    @v1.get("/jobs/{job_id}/attempts", response_model=AttemptListOut, tags=["jobs"],
            responses={404: ERRORS[404]})
    def job_attempts(engine: EngineDep, principal: PrincipalDep,
                     job_id: Annotated[str, JOB_ID]) -> dict[str, Any]:
        """The job's attempts, first first: which worker, when, how each ended and why."""
        visible(engine, job_id, principal)
        return {"attempts": [AttemptOut.model_validate(a).model_dump(mode="json")
                             for a in jobs.attempts(engine, job_id)]}

    @v1.get("/events", response_model=EventListOut, tags=["jobs"])
    def all_events(
        engine: EngineDep, principal: PrincipalDep,
        after: Annotated[int, Query(ge=0, le=stream.MAX_EVENT_ID, description="the last event id seen")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    ) -> dict[str, Any]:
        """Every job's events after ``after``, oldest first (the token's project's jobs')."""
        rows = jobs.events(engine, principal.job_id, after_id=after, limit=limit, project=principal.project)
        return {"events": [EventOut.model_validate(e).model_dump(mode="json") for e in rows]}

    sse_responses: dict[int | str, dict[str, Any]] = {
        200: {"content": {stream.MEDIA_TYPE: {"schema": {"type": "string"}}},
              "description": "server-sent events: `id:` the event id, `event:` its type, `data:` the event "
                             "as JSON (as the events list has it); a comment line as keep-alive"}}

    @v1.get("/jobs/{job_id}/stream", tags=["jobs"], response_class=StreamingResponse,
            responses={**sse_responses, 404: ERRORS[404]})
    async def job_stream(
        request: Request, engine: EngineDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID],
        after: Annotated[int, Query(ge=0, le=stream.MAX_EVENT_ID, description="the last event id seen (Last-Event-ID wins)")] = 0,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=40)] = None,
    ) -> StreamingResponse:
        """The job's events as server-sent events, from after ``Last-Event-ID`` (or
        ``after``), then as they happen; the stream ends once the job has finished
        (succeeded, failed, canceled) and its last events are sent."""
        await run_in_threadpool(visible, engine, job_id, principal)  # 404 before any byte is sent
        body = stream.events(request, engine, job_id, stream.start_after(after, last_event_id))
        return StreamingResponse(body, media_type=stream.MEDIA_TYPE, headers=stream.HEADERS)

    @v1.get("/stream", tags=["jobs"], response_class=StreamingResponse, responses=sse_responses)
    async def all_stream(
        request: Request, engine: EngineDep, principal: PrincipalDep,
        after: Annotated[int, Query(ge=0, le=stream.MAX_EVENT_ID, description="the last event id seen (Last-Event-ID wins)")] = 0,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=40)] = None,
    ) -> StreamingResponse:
        """Every job's events (the token's project's jobs') as server-sent events, from after
        ``Last-Event-ID`` (or ``after``), then as they happen, until the client disconnects."""
        body = stream.events(request, engine, principal.job_id, stream.start_after(after, last_event_id),
                             project=principal.project)
        return StreamingResponse(body, media_type=stream.MEDIA_TYPE, headers=stream.HEADERS)

    # The other route modules put their routes on the same v1 router (so the token check
    # and the 422 answer hold for them too). Imported here, not at the top: nothing is done
    # at import time, and each module imports only what it serves.
    import importlib

    for name in ROUTE_MODULES:
        importlib.import_module(name).add_routes(v1)
    from studio.review import add_pages

    add_pages(app)  # the review page (/review), on the same app and the same sessions
    app.include_router(public)
    app.include_router(v1)
    app.state.api_routes = [*public.routes, *v1.routes]  # APIRoutes with their /v1 paths (for _allowed)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _allowed(app: FastAPI, path: str) -> list[str]:
    """Every method some API route serves at ``path`` (the Allow of a 405)."""
    methods: set[str] = set()
    for route in app.state.api_routes:
        if route.path_regex.match(path):
            methods |= set(route.methods)
    return sorted(methods)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the body of ``POST /v1/jobs`` described: the route reads
    the raw body itself (JSON or YAML, size-limited), so FastAPI cannot see it."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    brief = Brief.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(brief.pop("$defs", {}))
    components["Brief"] = brief
    components["SubmitRequest"] = {
        "type": "object", "title": "SubmitRequest", "required": ["brief"], "additionalProperties": False,
        "properties": {
            "brief": {"$ref": "#/components/schemas/Brief"},
            "priority": {"type": "integer", "minimum": 0, "maximum": 100, "default": 50},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "dry_run": {"type": "boolean", "default": False},
        },
    }
    body = {"schema": {"anyOf": [{"$ref": "#/components/schemas/Brief"},
                                 {"$ref": "#/components/schemas/SubmitRequest"}]}}
    schema["paths"]["/v1/jobs"]["post"]["requestBody"] = {
        "required": True,
        "description": "the brief (Brief.1, as `studio schema brief` prints it), or a SubmitRequest",
        "content": {"application/json": body, "application/yaml": body},
    }
    app.openapi_schema = schema
    return schema
