"""Webhooks: a project's job events POSTed to its endpoints, signed as the Standard Webhooks
spec says (https://www.standardwebhooks.com), written with the state change (an outbox) and
delivered at least once.

Endpoints: a URL (http or https), the event types it wants (the job events' types:
``queued``, ``running``, ``succeeded``, ``failed``, ``canceled``, ``interrupted``,
``awaiting_selection``, ``awaiting_approval``, ``stage_done``, ...; ``["*"]`` is every type,
the worker's ``progress`` and log events included) and its signing secrets. A secret is
``whsec_`` + base64 of 32 random bytes, shown once (when made or rotated). Rotating adds a
new secret and gives the old ones ``grace`` before they expire; until then every live
secret signs, so ``webhook-signature`` carries one ``v1,<base64 HMAC-SHA256>`` per secret,
space separated, and a receiver holding either the old or the new secret verifies.

Signing: the signed content is ``{webhook-id}.{webhook-timestamp}.{body}`` with the exact
body bytes sent; ``webhook-id`` is the message id (``msg_...``, the same on every retry and
redelivery, so a receiver can drop duplicates), ``webhook-timestamp`` the send time in unix
seconds. The body is ``{"type", "timestamp", "data": {"event", "job"}}``: the event as the
API's event list shows it, and the job's id, project, campaign and state as of the commit
that wrote the event.

Outbox: ``studio.jobs`` calls ``enqueue`` with each transaction's new events, in that
transaction: a message exists exactly when its event was committed. Only enabled endpoints
of the job's project that want the event's type get one.

Delivery: ``deliver_due`` claims due messages (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL:
``FOR UPDATE SKIP LOCKED``, so dispatchers never wait on each other), pushing each one's
``next_attempt_at`` ahead by CLAIM_SECONDS: a dispatcher that dies mid-send leaves the
message to be claimed again once that lapses (at least once, never at most once). Each POST
(no redirects followed, no proxies from the environment: it goes to the URL given and
nowhere else) is logged as a WebhookAttempt; a 2xx answer delivers the message, anything
else (another status, a refused connection, a timeout) waits RETRY_SCHEDULE[k] (give or
take JITTER) and tries again, and after the last wait's attempt fails the message is
``failed``. Redelivery makes a message pending again now, with the whole schedule ahead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import re
import secrets as _secrets
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import delete as sql_delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from studio import __version__
from studio.db import Job, JobEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint, new_id, now
from studio.errors import StudioError, quote

__all__ = [
    "CLAIM_SECONDS", "RETRY_SCHEDULE", "UnknownEndpoint", "UnknownMessage", "create", "deliver_due",
    "deliveries", "enqueue", "get", "list_endpoints", "live_secrets", "redeliver", "remove", "rotate",
    "run_dispatcher", "sign", "update",
]

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # Standard Webhooks asks for 24 to 64
# The wait after each failed attempt (Standard Webhooks' example schedule): 8 attempts
# over about 28 hours, then the message is failed.
RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
    timedelta(hours=5), timedelta(hours=10), timedelta(hours=10))
JITTER = 0.1  # each wait stretched or shrunk by up to 10%, so retries of a burst spread out
TIMEOUT_SECONDS = 10.0  # for the whole POST: connect, send, answer
# A claimed message is due again this long after its claim if its dispatcher has not
# recorded the attempt by then (it died): well past TIMEOUT_SECONDS.
CLAIM_SECONDS = 60.0
POLL_SECONDS = 1.0  # the dispatcher's wait when nothing was due
BATCH = 32  # messages claimed at a time
PARALLEL = 8  # POSTs in flight at once per dispatcher
MAX_RESPONSE = 1000  # characters of an answer's body kept in the log
MAX_ERROR = 500
DEFAULT_GRACE = timedelta(hours=24)
MAX_GRACE = timedelta(days=30)
MAX_URL = 2000
MAX_TYPES = 64
TYPE_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
STATES = ("pending", "delivered", "failed")


class UnknownEndpoint(StudioError):
    """No endpoint has this id in this project (the API's 404)."""


class UnknownMessage(StudioError):
    """No message has this id at this endpoint (the API's 404)."""


def _utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _iso(dt: datetime) -> str:
    """As the API writes datetimes (pydantic): ISO 8601 in UTC with a Z."""
    return _utc(dt).astimezone(UTC).isoformat().replace("+00:00", "Z")


@contextmanager
def _tx(engine: Engine) -> Iterator[Session]:
    """One writing transaction (as studio.jobs._tx: SQLite's write lock taken up front)."""
    with Session(engine, expire_on_commit=False) as s:
        if engine.dialect.name == "sqlite":
            s.connection().exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise


def _pg(s: Session) -> bool:
    return s.get_bind().dialect.name == "postgresql"


# -- secrets and signatures ---------------------------------------------------------------


def new_secret(at: datetime | None = None) -> dict[str, Any]:
    """A signing secret's record: {id, secret, created_at, expires_at (None: no end)}."""
    raw = _secrets.token_bytes(SECRET_BYTES)
    return {"id": new_id("sec"), "secret": SECRET_PREFIX + base64.b64encode(raw).decode(),
            "created_at": _iso(at or now()), "expires_at": None}


def _expired(record: dict[str, Any], at: datetime) -> bool:
    expires = record.get("expires_at")
    return expires is not None and datetime.fromisoformat(expires) <= _utc(at)


def live_secrets(endpoint: WebhookEndpoint, at: datetime | None = None) -> list[str]:
    """The secrets that sign at ``at``: every one not yet expired, oldest first."""
    at = at or now()
    return [r["secret"] for r in endpoint.secrets if not _expired(r, at)]


def sign(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> str:
    """The ``webhook-signature`` header: ``v1,<base64 HMAC-SHA256>`` per secret, space
    separated, over ``{msg_id}.{timestamp}.{body}``."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    sigs = []
    for secret in secrets:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
        digest = hmac.new(key, content, hashlib.sha256).digest()
        sigs.append("v1," + base64.b64encode(digest).decode())
    return " ".join(sigs)


def body_of(delivery: WebhookDelivery) -> bytes:
    """The bytes POSTed for a message (the same on every attempt)."""
    return json.dumps(delivery.payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# -- endpoints -----------------------------------------------------------------------------


def check_url(url: Any) -> str:
    """An http(s) URL with a host, or a StudioError naming the field ``url``."""
    fix = "give an http:// or https:// URL with a host, e.g. https://hooks.example.com/studio"
    if not isinstance(url, str) or not url.strip():
        raise StudioError("the webhook URL is empty", fix=fix, field="url")
    url = url.strip()
    if len(url) > MAX_URL:
        raise StudioError(f"the webhook URL is longer than {MAX_URL} characters", fix=fix, field="url")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError as e:
        raise StudioError(f"the webhook URL {quote(url)} cannot be read: {e}", fix=fix, field="url") from None
    if parts.scheme not in ("http", "https"):
        raise StudioError(f"the webhook URL {quote(url)} is not http or https", fix=fix, field="url")
    if not host or any(c.isspace() for c in url):
        raise StudioError(f"the webhook URL {quote(url)} has no host", fix=fix, field="url")
    return url


def check_types(types: Any) -> list[str]:
    """Event types to subscribe to: ``["*"]`` (every type) or the types' names."""
    fix = 'give ["*"] for every event, or event types such as ["succeeded", "failed", "awaiting_approval"]'
    if not isinstance(types, list) or not types:
        raise StudioError("the event types are not a non-empty list", fix=fix, field="event_types")
    if len(types) > MAX_TYPES:
        raise StudioError(f"{len(types)} event types is more than {MAX_TYPES}", fix=fix, field="event_types")
    out: list[str] = []
    for t in types:
        if not isinstance(t, str) or (t != "*" and not TYPE_RE.match(t)):
            raise StudioError(f"event type {quote(t)} is not an event type's name", fix=fix, field="event_types")
        if t not in out:
            out.append(t)
    return ["*"] if "*" in out else out


def wants(endpoint: WebhookEndpoint, type_: str) -> bool:
    return "*" in endpoint.event_types or type_ in endpoint.event_types


def _unknown(endpoint_id: str) -> UnknownEndpoint:
    return UnknownEndpoint(f"no webhook endpoint {quote(endpoint_id)}",
                           fix="GET /v1/webhooks lists this project's endpoints", field="webhook_id")


def create(engine: Engine, *, project: str, url: str, event_types: list[str] | None = None,
           description: str = "", enabled: bool = True) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (shown this once)."""
    at = now()
    secret = new_secret(at)
    row = WebhookEndpoint(id=new_id("whk"), project=project, url=check_url(url),
                          event_types=check_types(["*"] if event_types is None else event_types),
                          description=description, enabled=enabled, secrets=[secret], created_at=at,
                          updated_at=at)
    with _tx(engine) as s:
        s.add(row)
    return row, secret["secret"]


def get(engine: Engine, project: str, endpoint_id: str) -> WebhookEndpoint:
    """The endpoint, when it is ``project``'s; UnknownEndpoint otherwise."""
    with Session(engine, expire_on_commit=False) as s:
        row = s.get(WebhookEndpoint, endpoint_id)
    if row is None or row.project != project:
        raise _unknown(endpoint_id)
    return row


def list_endpoints(engine: Engine, project: str) -> list[WebhookEndpoint]:
    with Session(engine, expire_on_commit=False) as s:
        return list(s.exec(select(WebhookEndpoint).where(WebhookEndpoint.project == project)
                           .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)).all())  # type: ignore[arg-type]


def _locked(s: Session, project: str, endpoint_id: str, *, deleting: bool = False) -> WebhookEndpoint:
    """The endpoint, locked (PostgreSQL): FOR UPDATE to delete it, which waits for the
    transactions that are enqueueing messages to it (they hold it FOR KEY SHARE); else FOR NO
    KEY UPDATE, which those do not wait on, so changing an endpoint never holds up a job."""
    query = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    if _pg(s):
        query = query.with_for_update(key_share=not deleting)
    row = s.exec(query).first()
    if row is None or row.project != project:
        raise _unknown(endpoint_id)
    return row


def update(engine: Engine, project: str, endpoint_id: str, *, url: str | None = None,
           event_types: list[str] | None = None, description: str | None = None,
           enabled: bool | None = None) -> WebhookEndpoint:
    """Change what is given. A new URL applies to messages not yet sent; a disabled
    endpoint gets no new messages and its pending ones wait until it is enabled again."""
    url = check_url(url) if url is not None else None
    types = check_types(event_types) if event_types is not None else None
    with _tx(engine) as s:
        row = _locked(s, project, endpoint_id)
        if url is not None:
            row.url = url
        if types is not None:
            row.event_types = types
        if description is not None:
            row.description = description
        if enabled is not None:
            row.enabled = enabled
        row.updated_at = now()
        s.add(row)
        return row


def rotate(engine: Engine, project: str, endpoint_id: str, grace: timedelta = DEFAULT_GRACE,
           at: datetime | None = None) -> tuple[WebhookEndpoint, str]:
    """A new signing secret (returned, shown this once); the live ones expire after
    ``grace`` (zero: at once) and sign beside it until then. Expired ones are dropped."""
    if grace < timedelta(0) or grace > MAX_GRACE:
        raise StudioError(f"a grace period of {grace.total_seconds():g} s is out of range",
                          fix=f"give 0 to {int(MAX_GRACE.total_seconds())} seconds", field="grace_seconds")
    at = at or now()
    with _tx(engine) as s:
        row = _locked(s, project, endpoint_id)
        kept = []
        for record in row.secrets:
            if _expired(record, at):
                continue
            ends = _utc(at) + grace
            if record.get("expires_at") is not None:
                ends = min(ends, datetime.fromisoformat(record["expires_at"]))
            kept.append({**record, "expires_at": _iso(ends)})
        fresh = new_secret(at)
        row.secrets = [*kept, fresh]  # a new list: the JSON column sees the change
        row.updated_at = at
        s.add(row)
        return row, fresh["secret"]


def remove(engine: Engine, project: str, endpoint_id: str) -> None:
    """Delete the endpoint with its messages and their log."""
    with _tx(engine) as s:
        # Locked first (PostgreSQL): an enqueue holding the row FOR KEY SHARE commits its
        # messages before the deletes below run, and a later one no longer finds the row.
        _locked(s, project, endpoint_id, deleting=True)
        ids = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint_id)
        s.exec(sql_delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)))  # type: ignore[call-overload, attr-defined]
        s.exec(sql_delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id))  # type: ignore[call-overload, arg-type]
        s.exec(sql_delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))  # type: ignore[call-overload, arg-type]


# -- the outbox ----------------------------------------------------------------------------


def payload(event: JobEvent, job: Job) -> dict[str, Any]:
    """A message's body (Standard Webhooks' {type, timestamp, data})."""
    return {
        "type": event.type,
        "timestamp": _iso(event.created_at),
        "data": {
            "event": {"id": event.id, "job_id": event.job_id, "type": event.type, "data": event.data,
                      "created_at": _iso(event.created_at)},
            "job": {"id": job.id, "project": job.project, "campaign": job.campaign, "state": job.state},
        },
    }


def enqueue(session: Session, events: Sequence[JobEvent]) -> list[WebhookDelivery]:
    """One message per (event, enabled endpoint of the event's job's project that wants its
    type), added to ``session``: the transaction that wrote the events (they have ids)."""
    if not events:
        return []
    jobs = {job_id: session.get(Job, job_id) for job_id in {e.job_id for e in events}}
    projects = {j.project for j in jobs.values() if j is not None}
    query = (select(WebhookEndpoint)
             .where(WebhookEndpoint.project.in_(projects), WebhookEndpoint.enabled)  # type: ignore[attr-defined, arg-type]
             .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id))
    if _pg(session):
        # Keeps the endpoint from being deleted until this commits (remove() locks it first).
        query = query.with_for_update(read=True, key_share=True)
    endpoints = session.exec(query).all()
    if not endpoints:
        return []
    at = now()
    added = []
    for event in events:
        job = jobs[event.job_id]
        if job is None:
            continue
        body = None
        for endpoint in endpoints:
            if endpoint.project != job.project or not wants(endpoint, event.type):
                continue
            body = body or payload(event, job)
            added.append(WebhookDelivery(id=new_id("msg"), endpoint_id=endpoint.id, event_id=event.id,  # type: ignore[arg-type]
                                         job_id=event.job_id, type=event.type, payload=body,
                                         next_attempt_at=at, created_at=at))
    session.add_all(added)
    session.flush()
    return added


def deliveries(engine: Engine, project: str, endpoint_id: str, *, state: str | None = None,
               limit: int = 50) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    """The endpoint's messages, newest first, each with its attempts, first first."""
    get(engine, project, endpoint_id)
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if state is not None:
        query = query.where(WebhookDelivery.state == state)
    with Session(engine, expire_on_commit=False) as s:
        rows = list(s.exec(query.order_by(WebhookDelivery.created_at.desc(),  # type: ignore[attr-defined]
                                          WebhookDelivery.id.desc())  # type: ignore[attr-defined]
                           .limit(max(1, min(limit, 1000)))).all())
        logs: dict[str, list[WebhookAttempt]] = {r.id: [] for r in rows}
        if rows:
            for a in s.exec(select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(list(logs)))  # type: ignore[attr-defined]
                            .order_by(WebhookAttempt.n, WebhookAttempt.id)).all():
                logs[a.delivery_id].append(a)
    return [(r, logs[r.id]) for r in rows]


def attempts_of(engine: Engine, msg_id: str) -> list[WebhookAttempt]:
    with Session(engine, expire_on_commit=False) as s:
        return list(s.exec(select(WebhookAttempt).where(WebhookAttempt.delivery_id == msg_id)
                           .order_by(WebhookAttempt.n, WebhookAttempt.id)).all())  # type: ignore[arg-type]


def redeliver(engine: Engine, project: str, endpoint_id: str, msg_id: str,
              at: datetime | None = None) -> WebhookDelivery:
    """Send the message again now (same webhook-id), with a fresh retry schedule, whatever
    its state; an attempt in flight still lands in the log."""
    with _tx(engine) as s:
        _locked(s, project, endpoint_id)
        query = select(WebhookDelivery).where(WebhookDelivery.id == msg_id)
        if _pg(s):
            query = query.with_for_update()
        row = s.exec(query).first()
        if row is None or row.endpoint_id != endpoint_id:
            raise UnknownMessage(f"no message {quote(msg_id)} at webhook endpoint {endpoint_id}",
                                 fix=f"GET /v1/webhooks/{endpoint_id}/deliveries lists its messages",
                                 field="msg_id")
        row.state = "pending"
        row.next_attempt_at = at or now()
        row.claim_token = None
        row.schedule_from = row.attempts
        s.add(row)
        return row


# -- delivery ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Claimed:
    id: str
    token: str
    n: int
    url: str
    secrets: tuple[str, ...]
    body: bytes


def _claim(engine: Engine, at: datetime, limit: int) -> list[_Claimed]:
    with _tx(engine) as s:
        query = (select(WebhookDelivery, WebhookEndpoint)
                 .join(WebhookEndpoint, WebhookDelivery.endpoint_id == WebhookEndpoint.id)  # type: ignore[arg-type]
                 .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= at,  # type: ignore[arg-type]
                        WebhookEndpoint.enabled)  # type: ignore[arg-type]
                 .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit))
        if _pg(s):
            query = query.with_for_update(skip_locked=True, of=WebhookDelivery)  # type: ignore[arg-type]
        claimed = []
        for delivery, endpoint in s.exec(query).all():
            delivery.attempts += 1
            delivery.claim_token = _secrets.token_hex(16)
            delivery.next_attempt_at = at + timedelta(seconds=CLAIM_SECONDS)
            s.add(delivery)
            claimed.append(_Claimed(id=delivery.id, token=delivery.claim_token, n=delivery.attempts,
                                    url=endpoint.url, secrets=tuple(live_secrets(endpoint, at)),
                                    body=body_of(delivery)))
        return claimed


@dataclass(frozen=True)
class _Result:
    status: int | None
    error: str | None
    duration_ms: int
    response: str


def _post(client: httpx.Client, c: _Claimed) -> _Result:
    timestamp = int(time.time())  # the send time, whatever clock schedules: receivers check it
    headers = {"content-type": "application/json", "user-agent": f"Studio-Webhooks/{__version__}",
               "webhook-id": c.id, "webhook-timestamp": str(timestamp),
               "webhook-signature": sign(c.id, timestamp, c.body, c.secrets)}
    started = time.monotonic()
    status: int | None = None
    error: str | None = None
    excerpt = b""
    try:
        with client.stream("POST", c.url, content=c.body, headers=headers, timeout=TIMEOUT_SECONDS,
                           follow_redirects=False) as answer:
            status = answer.status_code
            for chunk in answer.iter_bytes():
                excerpt += chunk
                if len(excerpt) >= MAX_RESPONSE:
                    break
    except httpx.HTTPError as e:
        error = f"{type(e).__name__}: {e}".strip()[:MAX_ERROR] if str(e) else type(e).__name__
    duration = int((time.monotonic() - started) * 1000)
    if status is not None and not 200 <= status < 300:
        error = f"answered HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
    return _Result(status, error, duration, excerpt[:MAX_RESPONSE].decode("utf-8", "replace"))


def backoff(k: int) -> timedelta:
    """The wait after the ``k``th failed attempt of a round (1-based), with jitter."""
    return RETRY_SCHEDULE[k - 1] * random.uniform(1 - JITTER, 1 + JITTER)


def _record(engine: Engine, c: _Claimed, r: _Result, at: datetime) -> None:
    with _tx(engine) as s:
        query = select(WebhookDelivery).where(WebhookDelivery.id == c.id)
        if _pg(s):
            query = query.with_for_update()
        row = s.exec(query).first()
        if row is None:  # its endpoint was deleted meanwhile
            return
        s.add(WebhookAttempt(delivery_id=c.id, n=c.n, at=at, status=r.status, error=r.error,
                             duration_ms=r.duration_ms, response=r.response))
        if row.claim_token != c.token:
            # Redelivered, or claimed again after CLAIM_SECONDS, while this POST ran: the
            # attempt is logged, the message's state is the newer claim's to set.
            return
        row.claim_token = None
        row.last_status = r.status
        row.last_error = r.error
        if r.error is None:
            row.state = "delivered"
            row.delivered_at = at
        else:
            failed = row.attempts - row.schedule_from
            if failed > len(RETRY_SCHEDULE):
                row.state = "failed"
            else:
                row.next_attempt_at = at + backoff(failed)
        s.add(row)


def deliver_due(engine: Engine, client: httpx.Client, now: datetime | None = None,
                limit: int = BATCH) -> int:
    """Claim up to ``limit`` due messages, POST them (PARALLEL at a time) and record each
    attempt; the number of attempts made. ``now`` (tests) stands for the current time in
    every decision (what is due, the next attempt's time, the log's times); the signature's
    timestamp is always the real time of sending."""
    at = _utc(now) if now is not None else _now()
    claimed = _claim(engine, at, limit)
    if not claimed:
        return 0

    def one(c: _Claimed) -> None:
        result = _post(client, c)
        _record(engine, c, result, at if now is not None else _now())

    if len(claimed) == 1:
        one(claimed[0])
    else:
        with ThreadPoolExecutor(min(PARALLEL, len(claimed)), thread_name_prefix="studio-webhook") as pool:
            list(pool.map(one, claimed))
    return len(claimed)


_now = now  # the clock, under a name deliver_due's ``now`` argument does not hide


def make_client() -> httpx.Client:
    """The dispatcher's HTTP client: no redirects followed and no proxy taken from the
    environment, so a message goes to the endpoint's URL and nowhere else."""
    return httpx.Client(follow_redirects=False, trust_env=False, timeout=TIMEOUT_SECONDS)


def run_dispatcher(settings: Any, stop: threading.Event, *, poll_seconds: float = POLL_SECONDS,
                   engine: Engine | None = None, client: httpx.Client | None = None) -> None:
    """Deliver due messages until ``stop`` is set (``studio serve`` runs this in a thread).
    A database or network trouble is printed and retried; nothing is lost meanwhile: the
    messages wait in the outbox."""
    from studio import db

    own_engine = engine is None
    if engine is None:
        engine = db.make_engine(settings.db_url)
    own_client = client is None
    client = client or make_client()
    try:
        db.init_db(engine)
        while not stop.is_set():
            try:
                made = deliver_due(engine, client)
            except Exception as e:  # noqa: BLE001 - the loop must outlive a bad moment
                print(f"studio: warning: webhook dispatcher: {type(e).__name__}: {e}; retrying in "
                      f"{poll_seconds:g} s", file=sys.stderr)
                made = 0
            if made < BATCH:
                stop.wait(poll_seconds)
    finally:
        if own_client:
            client.close()
        if own_engine:
            engine.dispose()
