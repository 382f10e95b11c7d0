"""Job controls (issue 11): retry, suspend, resume and a priority change, for editors.

``POST /v1/jobs/{id}/retry`` queues a failed, canceled or blocked job again with a new retry budget
(the re-run takes every finished step from the engine's cache, so only what failed or was
interrupted is redone); ``/suspend`` puts a job aside (queued or at a gate: at once;
running: ``suspending`` until its worker has stopped, then ``suspended``); ``/resume``
queues a suspended job again; ``PATCH /v1/jobs/{id}`` with ``{"priority": n}`` changes
its priority. Each is in the job's events with who asked (the token's name and id). A job
in a state the control does not apply to is a 409 saying what to do instead; another
project's job is a 404, as an unknown one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field

from studio import auth, jobs
from studio.api.bodies import ApiError
from studio.api.deps import (
    ERRORS,
    JOB_ID,
    EngineDep,
    PrincipalDep,
    bad_parameter,
    job_out,
    needs,
    not_found,
    visible,
)
from studio.api.schemas import ErrorOut, JobOut
from studio.errors import StudioError

CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "the job is in a state this does not apply to; `fix` says what to do"}}

BAD_BODY: dict[str, Any] = {"model": ErrorOut, "description": "the body is not JSON"}


class ControlIn(BaseModel):
    """Why (optional): kept in the job's event beside who asked."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=500, description="why, for the job's history")


class JobPatchIn(BaseModel):
    """What may change on a job (a field left out stays as it is)."""

    model_config = ConfigDict(extra="forbid")

    priority: int | None = Field(None, ge=0, le=100,
                                 description="0-100; higher goes first (waiting time adds to it)")


def who(principal: auth.Principal) -> str:
    """Who asked, as the events record it: the token's name and id."""
    return f"{principal.name} ({principal.token_id})"


def _control(engine: Any, principal: auth.Principal, job_id: str, fn: Callable[..., Any], **kw: Any) -> Any:
    visible(engine, job_id, principal)  # a job's project never changes
    try:
        return fn(engine, job_id, by=who(principal), **kw)
    except jobs.UnknownJob:
        raise not_found(job_id) from None
    except jobs.WrongState as e:
        raise ApiError(409, e.what, fix=e.fix) from None


NoteBody = Annotated[ControlIn | None, Body(description="optional: why")]


def add_routes(v1: APIRouter) -> None:
    common: dict[str, Any] = {"status_code": 202, "response_model": JobOut, "tags": ["jobs"],
                              "openapi_extra": needs("editor"), "responses": {400: BAD_BODY, 404: ERRORS[404], **CONFLICT}}

    @v1.post("/jobs/{job_id}/retry", **common)
    def retry_job(engine: EngineDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID],
                  body: NoteBody = None) -> dict[str, Any]:
        """Queue a failed, canceled or blocked job again, with a new retry budget (a blocked
        one once what its release gate named is fixed on the server: the policy, a licence, a
        spec). Only what failed or was interrupted is redone: every finished step comes from
        the cache. Any other state is a 409."""
        return job_out(_control(engine, principal, job_id, jobs.retry, note=body.note if body else None))

    @v1.post("/jobs/{job_id}/suspend", **common)
    def suspend_job(engine: EngineDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID],
                    body: NoteBody = None) -> dict[str, Any]:
        """Put a job aside until resumed. Queued or at a gate: suspended at once. Running:
        suspending until its worker has stopped the render (finished steps stay in the
        cache), then suspended. Suspended already: unchanged. Canceling or finished: 409."""
        return job_out(_control(engine, principal, job_id, jobs.suspend, note=body.note if body else None))

    @v1.post("/jobs/{job_id}/resume", **common)
    def resume_job(engine: EngineDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID],
                   body: NoteBody = None) -> dict[str, Any]:
        """Queue a suspended job again (its wait for ageing starts now). Queued or running:
        unchanged. Still suspending, at a gate or finished: 409."""
        return job_out(_control(engine, principal, job_id, jobs.resume, note=body.note if body else None))

    @v1.patch("/jobs/{job_id}", response_model=JobOut, tags=["jobs"], openapi_extra=needs("editor"),
              responses={400: BAD_BODY, 404: ERRORS[404], **CONFLICT, 422: ERRORS[422]})
    def patch_job(engine: EngineDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID],
                  body: JobPatchIn) -> dict[str, Any]:
        """Change a job's priority (0-100) while it has not finished; finished: 409. An empty
        body changes nothing and answers the job."""
        job = visible(engine, job_id, principal)
        if body.priority is None:
            return job_out(job)
        try:
            job = jobs.set_priority(engine, job_id, body.priority, by=who(principal))
        except jobs.UnknownJob:
            raise not_found(job_id) from None
        except jobs.WrongState as e:
            raise ApiError(409, e.what, fix=e.fix) from None
        except StudioError as e:
            raise bad_parameter(e) from None
        return job_out(job)
