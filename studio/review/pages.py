"""The review page's routes (see the package docstring). A page needs a session: without
one it sends the browser to the sign-in form, which comes back to the page asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote as urlquote

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from studio import auth, sessions
from studio.api.deps import SESSION_COOKIE, EngineDep

HERE = Path(__file__).parent
COOKIE_SECONDS = sessions.SESSION_HOURS * 3600


class NeedsSignIn(Exception):
    """A page was asked for without a live session."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def templates() -> Environment:
    return Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                       trim_blocks=True, lstrip_blocks=True)


def page_principal(request: Request, engine: EngineDep) -> auth.Principal:
    """The signed-in person, or a redirect to the sign-in form (back here afterwards)."""
    principal = sessions.principal(engine, request.cookies.get(SESSION_COOKIE, ""))
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise NeedsSignIn(target)
    return principal


PagePrincipal = Annotated[auth.Principal, Depends(page_principal)]


def render(request: Request, name: str, principal: auth.Principal | None = None, status: int = 200,
           **context: Any) -> HTMLResponse:
    env: Environment = request.app.state.review_templates
    html = env.get_template(name).render(request=request, me=principal, **context)
    return HTMLResponse(html, status_code=status, headers={
        # Nothing from anywhere else: scripts, styles, images and media of this origin only.
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                                   "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"})


def _safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of this site only (never another origin)."""
    if not value or not value.startswith("/review") or value.startswith("//") or "\\" in value:
        return "/review/jobs"
    return value


def _set_session(response: Response, secret: str, request: Request) -> None:
    response.set_cookie(SESSION_COOKIE, secret, max_age=COOKIE_SECONDS, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")


def add_pages(app: FastAPI) -> None:
    app.state.review_templates = templates()
    app.mount("/review/static", StaticFiles(directory=HERE / "static"), name="review-static")
    pages = APIRouter(prefix="/review", include_in_schema=False)

    @app.exception_handler(NeedsSignIn)
    async def _sign_in(request: Request, exc: NeedsSignIn) -> RedirectResponse:
        return RedirectResponse(f"/review/login?next={urlquote(exc.next_url, safe='/')}", status_code=303)

    @pages.get("", response_class=RedirectResponse)
    @pages.get("/", response_class=RedirectResponse)
    def home() -> RedirectResponse:
        return RedirectResponse("/review/jobs", status_code=303)

    @pages.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str | None = None) -> HTMLResponse:  # noqa: A002
        return render(request, "login.html", next=_safe_next(next), error=None)

    @pages.post("/login", response_class=HTMLResponse)
    def login(request: Request, engine: EngineDep, token: Annotated[str, Form(max_length=500)] = "",
              next: Annotated[str, Form(max_length=2000)] = "") -> Response:  # noqa: A002
        started = sessions.sign_in(engine, token) if token.strip() else None
        if started is None:
            error = ("the token is unknown or revoked: check it (it is shown once, when made); "
                     "`studio token list` shows which are live") if token.strip() else "enter your API token"
            return render(request, "login.html", next=_safe_next(next), error=error, status=401)
        response = RedirectResponse(_safe_next(next), status_code=303)
        _set_session(response, started[0], request)
        return response

    @pages.post("/logout")
    def logout(request: Request, engine: EngineDep) -> RedirectResponse:
        secret = request.cookies.get(SESSION_COOKIE)
        if secret:
            sessions.sign_out(engine, secret)
        response = RedirectResponse("/review/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @pages.get("/s/{secret}")
    def open_share(request: Request, engine: EngineDep, secret: str) -> Response:
        opened = sessions.open_share(engine, secret)
        if opened is None:
            return render(request, "login.html", next="/review/jobs", status=404,
                          error="this share link is unknown, expired or revoked: ask for a new one")
        cookie, _principal, job_id = opened
        response = RedirectResponse(f"/review/jobs/{job_id}", status_code=303)
        _set_session(response, cookie, request)
        return response

    @pages.get("/jobs", response_class=HTMLResponse)
    def jobs_page(request: Request, engine: EngineDep, me: PagePrincipal) -> HTMLResponse:
        from studio import jobs

        if me.job_id is not None:
            rows = [j for j in [jobs.get(engine, me.job_id)] if j is not None]
        else:
            rows, _ = jobs.list_jobs(engine, project=me.project, limit=200)
        return render(request, "jobs.html", me, jobs=[_job_row(j) for j in rows],
                      last_event=jobs.last_event_id(engine, me.project))

    # Pages of later parts register here (brief form, job page).
    for name in PAGE_MODULES:
        import importlib

        importlib.import_module(name).add_pages(pages)
    app.include_router(pages)


# Modules with ``add_pages(pages: APIRouter)``, one per page beyond sign-in and the jobs list.
PAGE_MODULES: tuple[str, ...] = ("studio.review.brief_form", "studio.review.job_page",
                                 "studio.review.watch_page")

# Who a job in each state waits on (the jobs list's "waiting on" column).
WAITS_ON = {
    "queued": "a worker", "running": "its render", "canceling": "its render to stop",
    "suspending": "its render to stop", "suspended": "someone to resume it",
    "awaiting_selection": "an editor's picks", "awaiting_approval": "sign-off", "rejected": "changes",
    "blocked": "an approver's override, or a fix",
}


def _job_row(job: Any) -> dict[str, Any]:
    gate = job.gate or {}
    waiting = WAITS_ON.get(job.state, "")
    if job.state == "awaiting_approval" and gate.get("waiting_on"):
        waiting = "sign-off: " + ", ".join(gate["waiting_on"])
    elif job.state == "awaiting_selection" and gate.get("waiting_on"):
        waiting = "picks: " + ", ".join(gate["waiting_on"])
    elif job.state == "blocked" and gate.get("waiting_on"):
        waiting = "release gate: " + ", ".join(gate["waiting_on"])
    return {"id": job.id, "campaign": job.campaign, "state": job.state, "priority": job.priority,
            "waiting": waiting, "updated_at": job.updated_at, "error": job.error,
            "purpose": (job.brief or {}).get("purpose", "")}
