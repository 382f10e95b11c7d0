"""Share links over HTTP (studio.sessions): one job's review page for someone without a
token, with one role (viewer, editor or approver), until it expires or is revoked.

Making one needs an editor (or admin) token or session of the job's project, and a session
that was itself opened from a share link cannot make more. The link's secret is in the
answer once (as ``url``); afterwards only its id, who it is for and when it ends are shown."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, select

from studio import sessions
from studio.api.bodies import ApiError
from studio.api.deps import ERRORS, JOB_ID, EngineDep, PrincipalDep, bad_parameter, needs, visible
from studio.db import ShareLink
from studio.errors import StudioError

SHARE_ID = Path(description="a share link's id (shr_...)", max_length=100)


class ShareIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["viewer", "editor", "approver"]
    name: str = Field("", max_length=200, description="who it is for, e.g. 'legal: Jo at the agency'")
    days: float = Field(7.0, gt=0, le=sessions.MAX_SHARE_DAYS, description="how long it works")


class ShareOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    job_id: str
    role: str
    name: str = ""
    created_by: str = ""
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None


class ShareCreatedOut(ShareOut):
    url: str = Field(description="the link (a path on this server): shown this once")


class ShareListOut(BaseModel):
    shares: list[ShareOut]


def add_routes(v1: APIRouter) -> None:
    @v1.post("/jobs/{job_id}/shares", status_code=201, response_model=ShareCreatedOut, tags=["review"],
             openapi_extra=needs("editor"), responses={404: ERRORS[404]})
    def create_share(engine: EngineDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID],
                     body: ShareIn) -> dict[str, Any]:
        """A share link to this job's review page with one role."""
        visible(engine, job_id, principal)
        if principal.job_id is not None:
            raise ApiError(403, "a session opened from a share link cannot make share links",
                           fix="ask the job's owner (an editor of the project) to share it")
        try:
            row, secret = sessions.create_share(engine, job_id=job_id, role=body.role, name=body.name,
                                                days=body.days, created_by=f"{principal.token_id}:{principal.name}")
        except StudioError as e:
            raise bad_parameter(e) from None
        return {**ShareOut.model_validate(row).model_dump(mode="json"), "url": f"/review/s/{secret}"}

    @v1.get("/jobs/{job_id}/shares", response_model=ShareListOut, tags=["review"], openapi_extra=needs("editor"),
            responses={404: ERRORS[404]})
    def list_shares(engine: EngineDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID]) -> dict[str, Any]:
        """The job's share links (no secrets), oldest first."""
        visible(engine, job_id, principal)
        with Session(engine) as s:
            rows = s.exec(select(ShareLink).where(ShareLink.job_id == job_id).order_by(ShareLink.created_at)).all()  # type: ignore[arg-type]
            return {"shares": [ShareOut.model_validate(r).model_dump(mode="json") for r in rows]}

    @v1.post("/jobs/{job_id}/shares/{share_id}/revoke", response_model=ShareOut, tags=["review"],
             openapi_extra=needs("editor"), responses={404: ERRORS[404]})
    def revoke_share(engine: EngineDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID],
                     share_id: Annotated[str, SHARE_ID]) -> dict[str, Any]:
        """End a share link now: every session opened from it ends too."""
        visible(engine, job_id, principal)
        if principal.job_id is not None:
            raise ApiError(403, "a session opened from a share link cannot revoke share links",
                           fix="ask the job's owner")
        with Session(engine) as s:
            row = s.get(ShareLink, share_id)
            if row is None or row.job_id != job_id:
                raise ApiError(404, f"no share link {share_id!r} on job {job_id}",
                               fix=f"GET /v1/jobs/{job_id}/shares lists them")
        return ShareOut.model_validate(sessions.revoke_share(engine, share_id)).model_dump(mode="json")
