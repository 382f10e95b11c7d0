"""A client of the Studio server (``studio serve``): what `studio submit`, `studio jobs`,
`studio job` and `studio cancel` use.

Errors a user can cause come back as StudioError, one line each: a 4xx answer's problems
(a refused brief lists each field, in the words `studio render` prints), and a server that
cannot be reached (its URL, and `studio serve`). Following a job reads its server-sent
event stream (``GET /v1/jobs/{id}/stream``) and reconnects with ``Last-Event-ID`` when the
connection drops, so no event is lost or seen twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from studio.errors import StudioError

FINAL = frozenset({"succeeded", "failed", "canceled"})
GATES = frozenset({"awaiting_selection", "awaiting_approval", "rejected", "blocked"})  # waiting on a person
GATE_EXIT = 3  # `studio submit`'s exit code for a job that waits on a person (as `studio render`'s)
BLOCKED_EXIT = 4  # ... and for one its release gate blocked (as `studio render`'s: studio.errors.ReleaseBlocked)
RECONNECT_FOR = 300.0  # seconds a follower keeps trying to reach a server that went away
READ_TIMEOUT = 60.0  # the server sends a keep-alive every 15 s: this much silence is a dead link


class ServerRefused(StudioError):
    """A 4xx from the server: each of its problems is a line."""

    def __init__(self, status: int, body: dict[str, Any], source: str | None = None) -> None:
        self.status = status
        self.problems = [p for p in body.get("problems") or [] if isinstance(p, dict)]
        super().__init__(str(body.get("detail") or f"the server answered {status}"), fix=str(body.get("fix") or ""),
                         source=source)

    def lines(self) -> list[str]:
        if not self.problems:
            return [self.line()]
        head = f"{self.source}: " if self.source else ""
        return [head + str(p.get("text") or p.get("message")) for p in self.problems]


@dataclass
class Event:
    """One server-sent event: its id, type and the event record (id, job_id, type, data,
    created_at)."""

    id: int
    type: str
    record: dict[str, Any]

    @property
    def data(self) -> dict[str, Any]:
        return self.record.get("data") or {}


def parse_sse(lines: Iterator[str]) -> Iterator[Event]:
    """Events from the lines of a ``text/event-stream``; comments (keep-alives) skipped."""
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                record = json.loads("\n".join(data))
                yield Event(int(fields.get("id") or record.get("id") or 0),
                            fields.get("event") or str(record.get("type", "message")), record)
            fields, data = {}, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name in ("id", "event", "retry"):
            fields[name] = value


class Client:
    """The server at ``base`` (http://host:port), with an API token when one is given."""

    def __init__(self, base: str, token: str | None = None, timeout: float = 60.0) -> None:
        self.base = base.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.base, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def unreachable(self, e: Exception) -> StudioError:
        return StudioError(f"cannot reach the Studio server at {self.base} ({type(e).__name__}: {e})",
                           fix="start it with `studio serve`, or pass its URL with --server or STUDIO_SERVER")

    def request(self, method: str, path: str, *, source: str | None = None, **kw: Any) -> httpx.Response:
        """The answer to one request; a 4xx raises ServerRefused, a 5xx or no answer StudioError."""
        try:
            r = self.http.request(method, path, **kw)
        except httpx.TransportError as e:
            raise self.unreachable(e) from None
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = {"detail": r.text.strip()[:300]}
            if not isinstance(body, dict):
                body = {"detail": str(body)[:300]}
            if r.status_code < 500:
                raise ServerRefused(r.status_code, body, source=source)
            raise StudioError(f"the server at {self.base} failed ({r.status_code}): {body.get('detail', '')}",
                              fix="see the server's log")
        return r

    # -- the jobs ----------------------------------------------------------------------

    def submit(self, text: bytes, *, source: str, priority: int | None = None, labels: list[str] | None = None,
               idempotency_key: str | None = None, dry_run: bool = False) -> tuple[int, dict[str, Any]]:
        """Post a brief as written (YAML or JSON: YAML is a superset); the status (201 a new
        job, 200 the key's job or a dry run's plan) and the answer."""
        params: list[tuple[str, str | int]] = []
        if priority is not None:
            params.append(("priority", priority))
        params += [("labels", label) for label in labels or []]
        if dry_run:
            params.append(("dry_run", "true"))
        headers = {"Content-Type": "application/yaml"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        r = self.request("POST", "/v1/jobs", source=source, content=text, params=params, headers=headers)
        return r.status_code, r.json()

    def jobs(self, state: list[str] | None = None, limit: int = 50) -> list[dict[str, Any]]:
        params: list[tuple[str, str | int]] = [("state", s) for s in state or []] + [("limit", limit)]
        return self.request("GET", "/v1/jobs", params=params).json()["jobs"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/jobs/{job_id}").json()

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self.request("POST", f"/v1/jobs/{job_id}/cancel").json()

    # -- human gates (studio.gates: picks, notes, more candidates, sign-offs) ------------

    def candidates(self, job_id: str) -> dict[str, Any]:
        """GET /v1/jobs/{id}/candidates: the gate, what it waits on, each beat's candidates."""
        return self.request("GET", f"/v1/jobs/{job_id}/candidates").json()

    def decide(self, job_id: str, what: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/jobs/{id}/{what} (picks | annotations | more | approvals): the decision,
        the job after it and the state it moved to."""
        return self.request("POST", f"/v1/jobs/{job_id}/{what}", json=body).json()

    def override(self, job_id: str, rule: str, component: str, reason: str,
                 expires: str | None = None) -> dict[str, Any]:
        """POST /v1/jobs/{id}/overrides: an approver's sign-off of one blocking violation of
        the job's release gate; the decision, the job after it and the state it moved to."""
        body: dict[str, Any] = {"rule": rule, "component": component, "reason": reason}
        if expires is not None:
            body["expires"] = expires
        return self.request("POST", f"/v1/jobs/{job_id}/overrides", json=body).json()

    def decisions(self, job_id: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/v1/jobs/{job_id}/decisions").json()["decisions"]

    # -- job controls and outputs (retry, suspend, resume, priority; asset downloads) -----

    def control(self, job_id: str, action: str, note: str | None = None) -> dict[str, Any]:
        """POST /v1/jobs/{id}/{action} (retry | suspend | resume); the job as it is after."""
        body = {"note": note} if note else None
        return self.request("POST", f"/v1/jobs/{job_id}/{action}", json=body).json()

    def set_priority(self, job_id: str, priority: int) -> dict[str, Any]:
        return self.request("PATCH", f"/v1/jobs/{job_id}", json={"priority": priority}).json()

    def outputs(self, job_id: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/v1/jobs/{job_id}/outputs").json()["outputs"]

    def download(self, output: dict[str, Any], dest: Path) -> Path:
        """Fetch one output (as ``outputs`` lists it) to ``dest``, written under a temporary
        name and renamed once its sha256 is the recorded one; a partial file is resumed with
        a range request from where it stopped."""
        import hashlib

        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(f".{dest.name}.part")
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with self.http.stream("GET", output["url"], headers=headers) as r:
                if r.status_code >= 400:
                    r.read()
                    if r.status_code == 416 and have:  # the part is whole (or bigger): check it
                        pass
                    else:
                        try:
                            body = r.json()
                        except ValueError:
                            body = {"detail": r.text.strip()[:300]}
                        raise ServerRefused(r.status_code, body, source=output.get("path"))
                else:
                    with open(part, "ab" if r.status_code == 206 else "wb") as f:
                        for chunk in r.iter_bytes():
                            f.write(chunk)
        except httpx.TransportError as e:
            raise self.unreachable(e) from None
        digest = hashlib.sha256()
        with open(part, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if output.get("sha256") and digest.hexdigest() != output["sha256"]:
            part.unlink(missing_ok=True)
            raise StudioError(f"{output.get('path')}: the download's sha256 is {digest.hexdigest()}, not the "
                              f"recorded {output['sha256']}", fix="download it again")
        part.replace(dest)
        return dest

    def follow(self, job_id: str, on_event: Callable[[Event], None], *, after: int = 0,
               reconnect_for: float = RECONNECT_FOR,
               on_reconnect: Callable[[str], None] | None = None,
               stop_at: frozenset[str] = frozenset()) -> dict[str, Any]:
        """Read the job's event stream, handing each event to ``on_event`` once, until the
        job has finished (or reached a state in ``stop_at``: a human gate the caller does not
        wait at); the job as the server then has it. A dropped connection is reopened with
        Last-Event-ID; a server gone for ``reconnect_for`` seconds raises."""
        last = after
        down_since: float | None = None
        timeout = httpx.Timeout(30.0, read=READ_TIMEOUT)
        while True:
            headers = {"Last-Event-ID": str(last)} if last else {}
            try:
                with self.http.stream("GET", f"/v1/jobs/{job_id}/stream", headers=headers,
                                      timeout=timeout) as r:
                    if r.status_code >= 400:
                        r.read()
                        try:
                            body = r.json()
                        except ValueError:
                            body = {"detail": r.text.strip()[:300]}
                        raise ServerRefused(r.status_code, body)
                    down_since = None
                    for event in parse_sse(r.iter_lines()):
                        on_event(event)
                        last = max(last, event.id)
                        if event.type in stop_at:
                            job = self.request("GET", f"/v1/jobs/{job_id}").json()
                            if job["state"] in stop_at:  # still there (not moved on meanwhile)
                                return job
                # The server ends a job's stream once the job has finished, and every
                # stream when it stops: which was it?
                job = self.http.get(f"/v1/jobs/{job_id}").raise_for_status().json()
                if job["state"] in FINAL:
                    # What came after the stream's end (nothing, unless it ended for another reason).
                    for record in self.request("GET", f"/v1/jobs/{job_id}/events",
                                               params={"after": last}).json()["events"]:
                        on_event(Event(int(record["id"]), str(record["type"]), record))
                    return job
                time.sleep(0.5)
            except httpx.TransportError as e:
                # Dropped, timed out or refused (a server restarting): try again from ``last``.
                if down_since is None:  # said once per outage, not once per try
                    down_since = time.monotonic()
                    if on_reconnect is not None:
                        on_reconnect(f"{type(e).__name__}: {e}")
                if time.monotonic() - down_since > reconnect_for:
                    raise self.unreachable(e) from None
                time.sleep(1.0)
            except httpx.HTTPStatusError as e:
                if e.response.status_code < 500:
                    raise ServerRefused(e.response.status_code, e.response.json()) from None
                time.sleep(1.0)  # a server starting or stopping: try again
