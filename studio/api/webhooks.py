"""Webhook endpoints over HTTP (studio.webhooks): make, list, change, delete, rotate the
signing secret, read the delivery log, redeliver a message.

Every route needs an admin token, reads included: a webhook URL is often a secret of its
own (a chat service's incoming-webhook URL lets anyone who has it post), and the log holds
what receivers answered. Endpoints belong to the token's project; another project's
endpoint answers 404, exactly as an unknown id. A signing secret is in the answer of the
call that makes it (create, rotate-secret) and never again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from studio import webhooks
from studio.api.bodies import ApiError
from studio.api.deps import ERRORS, EngineDep, PrincipalDep, bad_parameter, needs
from studio.api.schemas import ErrorOut
from studio.db import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from studio.errors import StudioError

WEBHOOK_ID = Path(description="a webhook endpoint's id (whk_...)", max_length=100)
MSG_ID = Path(description="a message's id (msg_...): its webhook-id header", max_length=100)
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no webhook endpoint (or message) with this id in this token's project"}}
# FastAPI answers 400 itself when a JSON body cannot be decoded (not UTF-8, say).
UNREADABLE: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "the body cannot be read as JSON"}}
TYPES_DOC = ('event types to send: ["*"] for every one, or job event types such as queued, running, '
             "succeeded, failed, canceled, interrupted, awaiting_selection, awaiting_approval, stage_done")


class SecretOut(BaseModel):
    """A signing secret, without the secret: when it was made and until when it signs."""

    id: str
    created_at: datetime
    expires_at: datetime | None = Field(None, description="null: signs until the next rotation")


class WebhookOut(BaseModel):
    id: str
    project: str
    url: str
    event_types: list[str]
    description: str = ""
    enabled: bool
    secrets: list[SecretOut] = Field(description="the signing secrets, oldest first (the secrets "
                                                 "themselves are shown once, when made)")
    created_at: datetime
    updated_at: datetime


class WebhookSecretOut(WebhookOut):
    secret: str = Field(description="the new signing secret (whsec_...): shown this once, keep it")


class WebhookListOut(BaseModel):
    webhooks: list[WebhookOut]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=webhooks.MAX_URL, description="http:// or https://; redirects are not followed")
    event_types: list[str] = Field(default_factory=lambda: ["*"], max_length=webhooks.MAX_TYPES,
                                   description=TYPES_DOC)
    description: str = Field("", max_length=500)
    enabled: bool = True


class WebhookPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, max_length=webhooks.MAX_URL)
    event_types: list[str] | None = Field(None, max_length=webhooks.MAX_TYPES, description=TYPES_DOC)
    description: str | None = Field(None, max_length=500)
    enabled: bool | None = Field(None, description="false: no new messages; pending ones wait until true")


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: int = Field(int(webhooks.DEFAULT_GRACE.total_seconds()), ge=0,
                               le=int(webhooks.MAX_GRACE.total_seconds()),
                               description="how long the current secrets go on signing beside the new one")


class AttemptLogOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    n: int = Field(description="1, 2, ... per message")
    at: datetime
    status: int | None = Field(None, description="the receiver's HTTP status; null when none came")
    error: str | None = None
    duration_ms: int
    response: str = Field("", description="the start of the receiver's answer")


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="the message's webhook-id")
    endpoint_id: str
    event_id: int
    job_id: str
    type: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None = Field(None, description="when pending: the next try")
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    created_at: datetime
    payload: dict[str, Any] = Field(description="the body POSTed")
    log: list[AttemptLogOut] = Field(description="every attempt, first first")


class DeliveryListOut(BaseModel):
    deliveries: list[DeliveryOut]


def _out(row: WebhookEndpoint, model: type[WebhookOut] = WebhookOut, **extra: Any) -> dict[str, Any]:
    data = {k: getattr(row, k) for k in ("id", "project", "url", "event_types", "description", "enabled",
                                         "created_at", "updated_at")}
    data["secrets"] = [{k: s.get(k) for k in ("id", "created_at", "expires_at")} for s in row.secrets]
    return model.model_validate({**data, **extra}).model_dump(mode="json")


def _delivery(row: WebhookDelivery, log: list[WebhookAttempt]) -> dict[str, Any]:
    data = DeliveryOut.model_validate({
        **{k: getattr(row, k) for k in DeliveryOut.model_fields if k != "log"},
        "log": [AttemptLogOut.model_validate(a) for a in log]})
    if row.state != "pending":
        data.next_attempt_at = None
    return data.model_dump(mode="json")


def _not_found(e: StudioError) -> ApiError:
    return ApiError(404, e.what, fix=e.fix)


def add_routes(v1: APIRouter) -> None:
    admin = needs("admin")

    @v1.post("/webhooks", status_code=201, response_model=WebhookSecretOut, tags=["webhooks"],
             openapi_extra=admin, responses={**UNREADABLE, 422: ERRORS[422]})
    def create_webhook(engine: EngineDep, principal: PrincipalDep, body: WebhookIn) -> Any:
        """A webhook endpoint for this token's project. The answer holds its signing secret,
        shown this once: receivers verify each message with it (Standard Webhooks)."""
        try:
            row, secret = webhooks.create(engine, project=principal.project, url=body.url,
                                          event_types=body.event_types, description=body.description,
                                          enabled=body.enabled)
        except StudioError as e:
            raise bad_parameter(e) from None
        return JSONResponse(_out(row, WebhookSecretOut, secret=secret), status_code=201,
                            headers={"Location": f"/v1/webhooks/{row.id}"})

    @v1.get("/webhooks", response_model=WebhookListOut, tags=["webhooks"], openapi_extra=admin)
    def list_webhooks(engine: EngineDep, principal: PrincipalDep) -> dict[str, Any]:
        """This project's webhook endpoints, oldest first (no secrets)."""
        return {"webhooks": [_out(r) for r in webhooks.list_endpoints(engine, principal.project)]}

    @v1.get("/webhooks/{webhook_id}", response_model=WebhookOut, tags=["webhooks"], openapi_extra=admin,
            responses=NOT_FOUND)
    def get_webhook(engine: EngineDep, principal: PrincipalDep,
                    webhook_id: Annotated[str, WEBHOOK_ID]) -> dict[str, Any]:
        """One endpoint (no secrets)."""
        try:
            return _out(webhooks.get(engine, principal.project, webhook_id))
        except webhooks.UnknownEndpoint as e:
            raise _not_found(e) from None

    @v1.patch("/webhooks/{webhook_id}", response_model=WebhookOut, tags=["webhooks"], openapi_extra=admin,
              responses={**UNREADABLE, **NOT_FOUND, 422: ERRORS[422]})
    def update_webhook(engine: EngineDep, principal: PrincipalDep, webhook_id: Annotated[str, WEBHOOK_ID],
                       body: WebhookPatch) -> dict[str, Any]:
        """Change the URL, the event types, the description, or enable/disable it. Messages
        not yet sent go to the new URL; a disabled endpoint gets no new messages."""
        try:
            return _out(webhooks.update(engine, principal.project, webhook_id, url=body.url,
                                        event_types=body.event_types, description=body.description,
                                        enabled=body.enabled))
        except webhooks.UnknownEndpoint as e:
            raise _not_found(e) from None
        except StudioError as e:
            raise bad_parameter(e) from None

    @v1.delete("/webhooks/{webhook_id}", status_code=204, response_class=Response, tags=["webhooks"],
               openapi_extra=admin, responses={204: {"description": "deleted, with its messages and their log"},
                                               **NOT_FOUND})
    def delete_webhook(engine: EngineDep, principal: PrincipalDep,
                       webhook_id: Annotated[str, WEBHOOK_ID]) -> Response:
        """Delete the endpoint, its pending messages and its delivery log."""
        try:
            webhooks.remove(engine, principal.project, webhook_id)
        except webhooks.UnknownEndpoint as e:
            raise _not_found(e) from None
        return Response(status_code=204)

    @v1.post("/webhooks/{webhook_id}/rotate-secret", response_model=WebhookSecretOut, tags=["webhooks"],
             openapi_extra=admin, responses={**UNREADABLE, **NOT_FOUND, 422: ERRORS[422]})
    def rotate_secret(engine: EngineDep, principal: PrincipalDep, webhook_id: Annotated[str, WEBHOOK_ID],
                      body: Annotated[RotateIn | None, Body()] = None) -> dict[str, Any]:
        """A new signing secret (in the answer, shown this once). The current ones go on
        signing beside it for ``grace_seconds`` (default 24 h), so receivers can switch over."""
        grace = timedelta(seconds=(body or RotateIn()).grace_seconds)
        try:
            row, secret = webhooks.rotate(engine, principal.project, webhook_id, grace=grace)
        except webhooks.UnknownEndpoint as e:
            raise _not_found(e) from None
        except StudioError as e:
            raise bad_parameter(e) from None
        return _out(row, WebhookSecretOut, secret=secret)

    @v1.get("/webhooks/{webhook_id}/deliveries", response_model=DeliveryListOut, tags=["webhooks"],
            openapi_extra=admin, responses=NOT_FOUND)
    def list_deliveries(
        engine: EngineDep, principal: PrincipalDep, webhook_id: Annotated[str, WEBHOOK_ID],
        state: Annotated[Literal["pending", "delivered", "failed"] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        """The endpoint's messages, newest first, each with every attempt: when, the status
        the receiver answered (or the error), how long it took, the start of its answer."""
        try:
            rows = webhooks.deliveries(engine, principal.project, webhook_id, state=state, limit=limit)
        except webhooks.UnknownEndpoint as e:
            raise _not_found(e) from None
        return {"deliveries": [_delivery(row, log) for row, log in rows]}

    @v1.post("/webhooks/{webhook_id}/deliveries/{msg_id}/redeliver", status_code=202,
             response_model=DeliveryOut, tags=["webhooks"], openapi_extra=admin, responses=NOT_FOUND)
    def redeliver(engine: EngineDep, principal: PrincipalDep, webhook_id: Annotated[str, WEBHOOK_ID],
                  msg_id: Annotated[str, MSG_ID]) -> dict[str, Any]:
        """Send the message again now, with the same webhook-id (receivers drop a message
        they already have) and a fresh retry schedule, whatever its state."""
        try:
            row = webhooks.redeliver(engine, principal.project, webhook_id, msg_id)
        except (webhooks.UnknownEndpoint, webhooks.UnknownMessage) as e:
            raise _not_found(e) from None
        return _delivery(row, webhooks.attempts_of(engine, row.id))
