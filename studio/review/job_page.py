"""The review page's job page (/review/jobs/{job_id}): the job's state and progress, each
beat's candidates to pick from (keyboard and mouse), compare (side by side and a wipe),
notes with reason codes, more candidates steered by a note, sign-off by role on the
release's content hash with "re-approval needed", the deliverables, the decision log and
(for the job's editors) share links for outside reviewers.

The server renders the frame and what the page needs to know (the job's id, its brief's
sign-offs, the reason codes and where its event stream starts); static/job.js fills it in
from the same /v1 API any client uses and keeps it live from the job's event stream. The
controls a person's role may not use are never built (the API refuses them anyway)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func
from sqlmodel import Session, select

from studio import db, gates, jobs, sessions
from studio.api.deps import EngineDep
from studio.review.pages import WAITS_ON, PagePrincipal, render

# What a reviewer reads beside each of gates.REASON_CODES (the API takes the codes).
REASON_LABELS: dict[str, str] = {
    "composition_solid": "Composition is solid",
    "expression_off": "Expression is off",
    "product_unclear": "Product is unclear",
    "off_palette": "Off palette",
    "artefact": "Artefact (glitch, smudge)",
    "good_for_alt": "Good for an alternate cut",
}
assert set(REASON_LABELS) == set(gates.REASON_CODES), "every reason code needs a label"


def _last_event(engine: Any, job_id: str) -> int:
    """The job's newest event id: the page shows the job as it is now and follows its
    stream from there."""
    with Session(engine) as s:
        return int(s.exec(select(func.max(db.JobEvent.id)).where(db.JobEvent.job_id == job_id)).one() or 0)


def add_pages(pages: APIRouter) -> None:
    @pages.get("/jobs/{job_id}", response_class=HTMLResponse)
    def job_page(request: Request, engine: EngineDep, me: PagePrincipal, job_id: str) -> HTMLResponse:
        job = jobs.get(engine, job_id) if len(job_id) <= 100 else None
        # Another project's job (or another job than a share link's) reads as an unknown one.
        if job is None or job.project != me.project or me.job_id not in (None, job_id):
            return render(request, "job.html", me, status=404, job=None, job_id=job_id[:100])
        brief = job.brief or {}
        return render(
            request, "job.html", me, job=job, job_id=job.id, purpose=str(brief.get("purpose") or ""),
            approvals=gates.approvals_needed(brief), waiting=WAITS_ON.get(job.state, ""),
            beats=[{"id": str(b.get("id")), "subject": str(b.get("subject") or "")}
                   for b in brief.get("beats") or [] if isinstance(b, dict)],
            reasons=[{"code": c, "label": REASON_LABELS[c]} for c in gates.REASON_CODES],
            after=_last_event(engine, job.id), max_share_days=int(sessions.MAX_SHARE_DAYS))
