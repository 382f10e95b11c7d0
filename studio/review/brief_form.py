"""The brief form (/review/new): a producer writes a brief in the page and submits it as a
job, or uploads a YAML brief.

The page is a frame; ``static/brief.js`` builds the form from the brief's JSON Schema
(``GET /v1/schemas/brief``: labels from the fields' titles, help from their descriptions,
inputs by type, enum and limits) and the catalog (``GET /v1/catalog``: the channel specs
and style packs to choose from, with their key figures; models and voices with their
usage classes), and submits through ``POST /v1/jobs``, whose 422 problems it shows beside
their fields. Only an editor or admin submits; anyone else gets a page saying so."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from studio.review.pages import PagePrincipal, render

SUBMITTERS = ("editor", "admin")


def add_pages(pages: APIRouter) -> None:
    @pages.get("/new", response_class=HTMLResponse)
    def new_brief(request: Request, me: PagePrincipal) -> HTMLResponse:
        # A share link's session is for its one job: it submits nothing, whatever its role.
        if me.role not in SUBMITTERS or me.job_id is not None:
            return render(request, "new.html", me, active="new", can_submit=False, status=403)
        return render(request, "new.html", me, active="new", can_submit=True)
