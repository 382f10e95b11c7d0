"""What every API route shares: the settings and database engine (injected, so tests
override them with ``app.dependency_overrides``), the token check with the role each route
needs, and the helpers that turn a job or an error into an answer. Route modules (jobs,
gates, webhooks, outputs) import these; ``studio.api.app.create_app`` puts them together."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from studio import auth, db, jobs
from studio.api.bodies import ApiError
from studio.api.schemas import ErrorOut, JobOut
from studio.errors import StudioError
from studio.settings import Settings, get_settings

JOB_ID = Path(description="a job's id (job_...)", max_length=100)
MAX_KEY = 255  # characters of an Idempotency-Key
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "a bad parameter, or a body that is not the JSON the route takes"},
    404: {"model": ErrorOut, "description": "no job has this id (in this token's project)"},
    422: {"model": ErrorOut, "description": "a bad parameter or brief; each problem listed"},
}


def get_settings_dep(request: Request) -> Settings:
    """The app's settings (``create_app(settings=...)``), else the environment's."""
    return request.app.state.settings or get_settings()


def get_engine(request: Request, settings: Annotated[Settings, Depends(get_settings_dep)]) -> Engine:
    """The app's database engine, made from the settings on first use and migrated to the
    newest schema once (``db.init_db`` is safe to run beside other processes)."""
    state = request.app.state
    if not state.engine_ready:
        with state.engine_lock:
            if state.engine is None:
                settings.home.mkdir(parents=True, exist_ok=True)
                state.engine = db.make_engine(settings.db_url)
                state.own_engine = True
            if not state.engine_ready:
                db.init_db(state.engine)
                state.engine_ready = True
    return state.engine


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
EngineDep = Annotated[Engine, Depends(get_engine)]

ROLE_KEY = "x-studio-role"  # a route's openapi_extra key: the role it needs
CHALLENGE = 'Bearer realm="studio"'
bearer = HTTPBearer(auto_error=False, description="an API token: `studio token create --project P --role R`")
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no token, or an unknown or revoked one"},
    403: {"model": ErrorOut, "description": "the token's role may not do this (or not for that project)"},
}


def needs(role: str) -> dict[str, Any]:
    """A route's ``openapi_extra`` saying which role it needs (studio.auth.GRANTS)."""
    if role not in auth.ROLES:
        raise ValueError(f"role {role!r} is not one of {auth.ROLES}")
    return {ROLE_KEY: role}


def route_role(route: Any) -> str:
    """The role ``route`` needs: its declared one, else viewer for a GET and admin for
    anything else (a new route that changes things is closed until it says who may)."""
    declared = (getattr(route, "openapi_extra", None) or {}).get(ROLE_KEY)
    if declared is not None:
        return declared
    methods = getattr(route, "methods", None) or set()
    return "viewer" if methods and set(methods) <= {"GET", "HEAD"} else "admin"


def authorize(request: Request, engine: EngineDep,
              credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> auth.Principal:
    """The token's principal, when the token is live and its role may call this route:
    401 without one (or an unknown or revoked one), 403 for a role too weak. The review
    page's session cookie stands for its token (or share link) too; a request that changes
    something must then also carry ``X-Requested-With: studio`` (which only this origin's
    scripts can send), so another site cannot make a signed-in browser act."""
    if credentials is None and request.cookies.get(SESSION_COOKIE):
        return _from_session(request, engine)
    if credentials is None:
        raise ApiError(401, "this needs an API token: send Authorization: Bearer <token>",
                       fix="make one with `studio token create --project P --role viewer` (the server's "
                           "admin does) and send it in the Authorization header", headers={
                           "WWW-Authenticate": CHALLENGE})
    principal = auth.verify(engine, credentials.credentials)
    if principal is None:
        raise ApiError(401, "the API token is unknown or revoked",
                       fix="check the token (it is shown once, when made); `studio token list` shows which "
                           "are live", headers={"WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'})
    return _check_role(request, principal)


SESSION_COOKIE = "studio_session"
CSRF_HEADER = "X-Requested-With"
# What a session scoped to one job (a share link) may call besides that job's own routes:
# the lists, which then hold that job only.
SCOPED_LISTS = {("GET", "/v1/jobs"), ("GET", "/v1/events"), ("GET", "/v1/stream")}


def _from_session(request: Request, engine: Engine) -> auth.Principal:
    from studio import sessions

    principal = sessions.principal(engine, request.cookies.get(SESSION_COOKIE, ""))
    if principal is None:
        raise ApiError(401, "the review session has ended (signed out, expired, or its token or link was revoked)",
                       fix="sign in again at /review/login", headers={"WWW-Authenticate": CHALLENGE})
    if request.method not in ("GET", "HEAD", "OPTIONS") and request.headers.get(CSRF_HEADER) != "studio":
        raise ApiError(403, f"a request from the review page must carry {CSRF_HEADER}: studio",
                       fix="send it from the review page's own scripts, or use an API token")
    route = request.scope.get("route")
    if principal.job_id is not None:
        path = getattr(route, "path", "")
        if "{job_id}" in path:
            if request.path_params.get("job_id") != principal.job_id:
                raise not_found(str(request.path_params.get("job_id")))
        elif (request.method, path) not in SCOPED_LISTS:
            raise ApiError(403, "this session was opened from a share link for one job, and this is not about it",
                           fix="ask the job's owner for a token for anything else")
    return _check_role(request, principal)


def _check_role(request: Request, principal: auth.Principal) -> auth.Principal:
    needed = route_role(request.scope.get("route"))
    if not principal.allows(needed):
        allowed = " or ".join(auth.roles_for(needed))
        raise ApiError(403, f"this needs {'an' if allowed[0] in 'aeiou' else 'a'} {allowed} token; this one "
                            f"({principal.token_id}) is {'an' if principal.role[0] in 'aeiou' else 'a'} {principal.role} token "
                            f"for project {principal.project}",
                       fix=f"use a token made with `studio token create --project {principal.project} "
                           f"--role {needed}`")
    return principal


PrincipalDep = Annotated[auth.Principal, Depends(authorize)]


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes: by its Content-Length
    before reading anything, else (chunked) as soon as the bytes read pass the limit."""
    too_big = ApiError(413, f"the body is larger than {limit:,} bytes",
                       fix="a brief is a few kB; raise STUDIO_API_MAX_BODY_BYTES on the server if it "
                           "really is this large")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def job_out(job: Any, model: type[JobOut] = JobOut) -> dict[str, Any]:
    return model.model_validate(job).model_dump(mode="json")


def not_found(job_id: str) -> ApiError:
    return ApiError(404, f"no job {job_id!r}", fix="check the id; GET /v1/jobs lists the jobs")


def visible(engine: Engine, job_id: str, principal: auth.Principal) -> Any:
    """The job, when it is in the token's project; 404 otherwise (another project's job is
    not revealed: it reads exactly as an unknown id)."""
    job = jobs.get(engine, job_id)
    if job is None or job.project != principal.project or principal.job_id not in (None, job_id):
        raise not_found(job_id)
    return job


def bad_parameter(e: StudioError) -> ApiError:
    return ApiError(422, e.line(), fix=e.fix, problems=[{
        "field": e.field, "message": e.what, "fix": e.fix, "line": None, "stage": None, "source": None,
        "text": e.line()}])
