"""Server-sent events from the append-only job events table (studio.jobs.events).

Each event goes out as ``id:`` (the JobEvent id: increasing, and visible in id order, see
studio.jobs), ``event:`` (its type) and ``data:`` (the event as JSON, as
``GET /v1/jobs/{id}/events`` lists it). The stream polls the table rather than listening
to an in-memory bus, so it works beside workers in other processes and across restarts:
a client that reconnects with ``Last-Event-ID`` (or ``?after=``) gets exactly what it
missed. A comment line goes out every ``KEEPALIVE_SECONDS`` of silence, so proxies and
clients do not take a quiet stream for a dead one. A job's stream ends once the job is in
a final state and every event up to that state change has been sent.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import Request
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from studio import jobs
from studio.api.schemas import EventOut

POLL_SECONDS = 0.3  # how often the table is read while nothing new has come
KEEPALIVE_SECONDS = 15.0  # a comment line after this long without an event
BATCH = 500  # events read per query
MEDIA_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering (nginx)
# Set by `studio serve` when the server is asked to stop: open streams end (their clients
# reconnect with Last-Event-ID), else uvicorn's graceful shutdown would wait on them for ever.
STOPPING = threading.Event()


def sse(event: jobs.JobEvent) -> bytes:
    """One event in the SSE wire format. The type comes from a render's log, so any line
    break in it is flattened: it would end the field early."""
    kind = " ".join(str(event.type).splitlines()) or "message"
    data = json.dumps(EventOut.model_validate(event).model_dump(mode="json"), separators=(",", ":"))
    return f"id: {event.id}\nevent: {kind}\ndata: {data}\n\n".encode()


# The largest event id: the jobevent id column is INTEGER, 64-bit on SQLite but 32-bit on
# PostgreSQL (SERIAL), where a larger ?after= made the query fail (a 500; schemathesis on
# PostgreSQL found it). No id is ever issued past it there: the sequence stops at it.
MAX_EVENT_ID = 2**31 - 1


def start_after(after: int, last_event_id: str | None) -> int:
    """Where a stream starts: after the ``Last-Event-ID`` header when one came (a
    reconnecting EventSource sends it to the URL it first opened, ``?after=`` included),
    else after ``?after=``. A header that is not an event id (not digits, or past a 64-bit
    id) counts as none."""
    if last_event_id is not None and last_event_id.strip().isdigit():
        value = int(last_event_id.strip())
        if value <= MAX_EVENT_ID:
            return value
    return after


async def events(request: Request, engine: Engine, job_id: str | None, after: int, *,
                 project: str | None = None) -> AsyncIterator[bytes]:
    """The stream's body: the events after ``after``, then new ones as they are committed;
    one job's (ending after its final state) or every job's, of ``project`` only when it is
    given (ending when the client goes)."""
    by_project = {"project": project} if project is not None else {}
    last = after
    quiet_since = time.monotonic()
    yield b": studio events\n\n"  # headers and a first byte at once: the client knows it is connected
    while True:
        # The job's state is read before its events: when it is final, the event of that
        # change (written in the same transaction) is among the events read after it.
        final = False
        if job_id is not None:
            job: Any = await run_in_threadpool(jobs.get, engine, job_id)
            final = job is None or job.state in jobs.FINAL
        rows = await run_in_threadpool(functools.partial(jobs.events, engine, job_id, last, BATCH, **by_project))
        for event in rows:
            yield sse(event)
            last = event.id  # type: ignore[assignment]
        if rows:
            quiet_since = time.monotonic()
            if len(rows) == BATCH:
                continue  # more are waiting: no pause, and not the end yet
        if final:
            return
        if time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
            quiet_since = time.monotonic()
            yield b": keep-alive\n\n"
        if STOPPING.is_set() or await request.is_disconnected():
            return
        await anyio.sleep(POLL_SECONDS)
