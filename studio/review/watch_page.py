"""The watch page (/review/jobs/{id}/watch): the job's animatic and each deliverable play
in the page (through GET /v1/jobs/{id}/outputs/{output}/proxy, which answers the file
itself where Chromium plays it and an H.264 proxy where it does not), with each channel's
safe area drawn over the picture, the frame number (0-based, from the video's own rate),
frame-accurate notes, and the details panel (GET /v1/jobs/{id}/details) of the
deliverable being watched. The figures the page needs to draw (rate, frame count, safe
area) are measured here and handed to static/watch.js in data attributes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from studio import gates, jobs
from studio.api import media
from studio.api.deps import EngineDep, SettingsDep
from studio.errors import StudioError
from studio.review.pages import PagePrincipal, render


def _safe_fractions(spec: Any) -> str:
    """The spec's safe area (title safe, inside the active picture) as fractions of the
    frame: left,top,right,bottom."""
    x0, y0, x1, y1 = spec.safe_rect()
    return ",".join(f"{v:.5f}" for v in (x0 / spec.width, y0 / spec.height, x1 / spec.width, y1 / spec.height))


def watch_videos(engine: Any, settings: Any, job: Any) -> list[dict[str, Any]]:
    """Each video of the job the page plays, with what it needs to draw and count frames."""
    # The animatic is framed as the brief's first video channel (shots.contact.animatic).
    main_spec = next((s for s in (media.channel_spec(settings, str(n)) for n in (job.brief or {}).get("channels") or [])
                      if s is not None and s.kind == "video"), None)
    out = []
    for target, asset in media.videos(engine, job):
        spec = main_spec if target == "review:animatic" else media.channel_spec(settings, str(asset.out["spec"]))
        try:
            media.check(asset)
            assert asset.file is not None
            video = media.probe(asset.file).get("video") or {}
        except Exception as e:  # noqa: BLE001 - a file gone or unreadable is shown as such, not a 500
            problem = getattr(e, "detail", None) or (e.line() if isinstance(e, StudioError) else str(e))
            out.append({"target": target, "output": asset.out["id"], "label": target, "problem": problem})
            continue
        label = "Animatic" if target == "review:animatic" else f"{asset.out['spec']}"
        out.append({
            "target": target, "output": asset.out["id"], "label": label, "problem": None,
            "kind": "animatic" if target == "review:animatic" else "deliverable",
            "src": f"/v1/jobs/{job.id}/outputs/{asset.out['id']}/proxy",
            "fps": video.get("fps"), "frames": video.get("frames"),
            "size": f"{video.get('width')}x{video.get('height')}", "codec": video.get("codec"),
            "spec": spec.name if spec is not None else "", "safe": _safe_fractions(spec) if spec is not None else "",
        })
    return out


def add_pages(pages: APIRouter) -> None:
    @pages.get("/jobs/{job_id}/watch", response_class=HTMLResponse)
    def watch_page(request: Request, engine: EngineDep, settings: SettingsDep, me: PagePrincipal,
                   job_id: str) -> HTMLResponse:
        job = jobs.get(engine, job_id)
        if job is None or job.project != me.project or me.job_id not in (None, job_id):
            return render(request, "watch.html", me, status=404, job=None, job_id=job_id, videos=[],
                          codes=gates.REASON_CODES, can_note=False)
        return render(request, "watch.html", me, job=job, job_id=job.id, videos=watch_videos(engine, settings, job),
                      codes=gates.REASON_CODES, can_note=me.role in ("editor", "admin"))
