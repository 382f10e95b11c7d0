"""Webhooks (studio.webhooks, studio/api/webhooks.py), on SQLite and on a real PostgreSQL
server: signatures a Standard Webhooks verifier (the ``standardwebhooks`` package, not our
code) accepts, rotation with a grace period, the outbox written in the state change's own
transaction (a rolled-back change leaves no message), delivery to a real HTTP receiver on
127.0.0.1 with retries on a backoff schedule and a log of every attempt, at least once when
a dispatcher dies mid-send, redelivery with the same webhook-id, filtering by event type and
project, and the API routes with their roles."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from sqlmodel import Session, select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from studio import auth, db, jobs, webhooks
from studio.api.app import create_app
from studio.db import WebhookDelivery
from studio.errors import StudioError
from studio.settings import Settings

from . import test_api as base
from .test_api import bearer

# test_api's fixtures: the settings over this module's database, a token per role (aurora).
settings, tokens = base.settings, base.tokens


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'studio.db'}"
    from .test_migrations import _fresh_pg

    return _fresh_pg(request.getfixturevalue("postgres_url"), f"wh_{tmp_path.name}")


@pytest.fixture
def engine(db_url: str) -> Iterator[Any]:
    engine = db.make_engine(db_url)
    db.init_db(engine)
    yield engine
    engine.dispose()


class Receiver:
    """A real HTTP server on 127.0.0.1 that records every request and answers the statuses
    in ``script`` in turn (then 200)."""

    def __init__(self, script: list[int] | None = None, location: str | None = None) -> None:
        self.script = list(script or [])
        self.location = location
        self.got: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with outer.lock:
                    outer.got.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                      "body": body})
                    status = outer.script.pop(0) if outer.script else 200
                self.send_response(status)
                if 300 <= status < 400 and outer.location:
                    self.send_header("Location", outer.location)
                answer = f"answer {status}".encode()
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(g["body"]) for g in self.got]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def client() -> Iterator[Any]:
    c = webhooks.make_client()
    yield c
    c.close()


def _submit(engine: Any, name: str = "spot", project: str = "p") -> db.Job:
    job, created = jobs.submit(engine, brief={"project": project, "campaign": name}, project=project,
                               campaign=name, brief_sha256=f"sha-{name}", request_sha256=f"req-{project}-{name}")
    assert created
    return job


def _run_to_success(engine: Any, name: str = "spot", project: str = "p") -> str:
    """A job moved queued -> running -> succeeded by the queue's own functions (no render)."""
    job = _submit(engine, name, project)
    claim = jobs.claim(engine, "w1", 60)
    assert claim is not None and claim.job_id == job.id
    assert jobs.finish(engine, claim.lease_token, "succeeded", run_id="run_1")
    return job.id


def _deliveries(engine: Any, endpoint_id: str | None = None) -> list[WebhookDelivery]:
    with Session(engine) as s:
        query = select(WebhookDelivery)
        if endpoint_id is not None:
            query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
        return list(s.exec(query.order_by(WebhookDelivery.event_id)).all())


def _verify(secret: str, got: dict[str, Any]) -> Any:
    """The reference verifier's verdict on a received request (raises if it refuses)."""
    return Webhook(secret).verify(got["body"], got["headers"])


def _drain(engine: Any, client: Any, at: Any) -> int:
    made = total = 0
    while (made := webhooks.deliver_due(engine, client, now=at)):
        total += made
    return total


# -- signatures -----------------------------------------------------------------------------


def test_signature_matches_the_spec_and_the_reference_verifier() -> None:
    # The Standard Webhooks spec's own example (secret, id, timestamp, body -> signature).
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    sig = webhooks.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}', [secret])
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    # A fresh secret, a fresh message: the reference package verifies it, and refuses it when
    # the body, the id or the timestamp was changed.
    record = webhooks.new_secret()
    assert record["secret"].startswith("whsec_") and len(record["secret"]) > 6 + 32
    body = b'{"type":"succeeded","data":{"x":"\xc3\xa9"}}'
    ts = int(time.time())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(ts),
               "webhook-signature": webhooks.sign("msg_1", ts, body, [record["secret"]])}
    assert Webhook(record["secret"]).verify(body, headers)["type"] == "succeeded"
    for changed in ({"body": body.replace(b"succeeded", b"failed")}, {"webhook-id": "msg_2"},
                    {"webhook-timestamp": str(ts + 1)}):
        h = {**headers, **{k: v for k, v in changed.items() if k != "body"}}
        with pytest.raises(WebhookVerificationError):
            Webhook(record["secret"]).verify(changed.get("body", body), h)
    with pytest.raises(WebhookVerificationError):  # another secret
        Webhook(webhooks.new_secret()["secret"]).verify(body, headers)


def test_rotation_signs_with_both_secrets_during_the_grace_period_then_only_the_new(
        engine: Any, client: Any, receiver: Receiver) -> None:
    endpoint, old = webhooks.create(engine, project="p", url=receiver.url)
    t0 = db.now()
    endpoint, new = webhooks.rotate(engine, "p", endpoint.id, grace=timedelta(hours=1), at=t0)
    assert new != old and webhooks.live_secrets(endpoint, t0) == [old, new]
    assert webhooks.live_secrets(endpoint, t0 + timedelta(hours=2)) == [new]

    _submit(engine, "during")
    assert _drain(engine, client, t0 + timedelta(minutes=30)) == 1
    during = receiver.got[-1]
    assert len(during["headers"]["webhook-signature"].split(" ")) == 2
    assert _verify(old, during)["type"] == "queued"  # a receiver not yet switched over
    assert _verify(new, during)["type"] == "queued"  # and one already switched

    _submit(engine, "after")
    assert _drain(engine, client, t0 + timedelta(hours=2)) == 1
    after = receiver.got[-1]
    assert len(after["headers"]["webhook-signature"].split(" ")) == 1
    assert _verify(new, after)["data"]["job"]["campaign"] == "after"
    with pytest.raises(WebhookVerificationError):
        _verify(old, after)

    # Rotating again drops the expired secret and ends the grace of the live ones.
    endpoint, newest = webhooks.rotate(engine, "p", endpoint.id, grace=timedelta(0), at=t0 + timedelta(hours=3))
    assert [r["secret"] for r in endpoint.secrets] == [new, newest]
    assert webhooks.live_secrets(endpoint, t0 + timedelta(hours=3)) == [newest]
    with pytest.raises(StudioError) as e:
        webhooks.rotate(engine, "p", endpoint.id, grace=timedelta(days=31))
    assert e.value.field == "grace_seconds"


# -- the outbox -------------------------------------------------------------------------


def test_outbox_message_is_written_in_the_state_changes_transaction(engine: Any) -> None:
    endpoint, _ = webhooks.create(engine, project="p", url="http://127.0.0.1:9/hook")
    job = _submit(engine)
    assert [d.type for d in _deliveries(engine)] == ["queued"]

    # A state change that rolls back after its event (and message) were flushed: neither stays.
    with pytest.raises(RuntimeError), jobs._tx(engine) as tx:
        row = tx.s.get(db.Job, job.id)
        jobs._change(tx, row, "running", db.now())
        tx.flush_events()
        in_tx = tx.s.exec(select(WebhookDelivery).where(WebhookDelivery.type == "running")).all()
        assert len(in_tx) == 1  # written, inside the transaction
        raise RuntimeError("the transaction fails after the message was written")
    assert [d.type for d in _deliveries(engine)] == ["queued"]
    assert jobs.get(engine, job.id).state == "queued"
    assert [e.type for e in jobs.events(engine, job.id)] == ["queued"]

    # Committed: the message is there, for the event it names, with the job as committed.
    claim = jobs.claim(engine, "w1", 60)
    assert claim is not None
    sent = _deliveries(engine)
    assert [d.type for d in sent] == ["queued", "running"]
    running = sent[1]
    event = jobs.events(engine, job.id)[-1]
    assert running.event_id == event.id and running.endpoint_id == endpoint.id and running.state == "pending"
    assert running.id.startswith("msg_")
    assert running.payload["data"]["job"] == {"id": job.id, "project": "p", "campaign": "spot",
                                              "state": "running"}
    assert running.payload["data"]["event"]["data"]["worker"] == "w1"

    # Events that change no state (a worker's progress) go through the outbox too.
    jobs.append_events(engine, job.id, [("stage_done", {"stage": "keyframes"})])
    assert [d.type for d in _deliveries(engine)] == ["queued", "running", "stage_done"]


def test_messages_go_only_to_the_projects_enabled_endpoints_that_want_the_type(engine: Any) -> None:
    finals, _ = webhooks.create(engine, project="p", url="http://127.0.0.1:9/a",
                                event_types=["succeeded", "failed"])
    every, _ = webhooks.create(engine, project="p", url="http://127.0.0.1:9/b")
    off, _ = webhooks.create(engine, project="p", url="http://127.0.0.1:9/c", enabled=False)
    other, _ = webhooks.create(engine, project="q", url="http://127.0.0.1:9/d")
    job_id = _run_to_success(engine)
    assert [d.type for d in _deliveries(engine, finals.id)] == ["succeeded"]
    assert [d.type for d in _deliveries(engine, every.id)] == ["queued", "running", "succeeded"]
    assert _deliveries(engine, off.id) == [] and _deliveries(engine, other.id) == []
    assert {d.job_id for d in _deliveries(engine)} == {job_id}

    # Changed subscriptions apply to the next events; the other project's job reaches "q" only.
    webhooks.update(engine, "p", off.id, enabled=True, event_types=["queued"])
    webhooks.update(engine, "p", finals.id, enabled=False)
    _submit(engine, "second")
    _submit(engine, "theirs", project="q")
    assert [d.type for d in _deliveries(engine, off.id)] == ["queued"]
    assert [d.type for d in _deliveries(engine, finals.id)] == ["succeeded"]
    assert [d.payload["data"]["job"]["project"] for d in _deliveries(engine, other.id)] == ["q"]


def test_urls_and_event_types_are_checked(engine: Any) -> None:
    for url in ("ftp://example.com/x", "file:///etc/passwd", "http://", "example.com/hook", "", "http://a b/",
                "http://example.com:99999/", "https://" + "a" * 2000 + ".com/"):
        with pytest.raises(StudioError) as e:
            webhooks.create(engine, project="p", url=url)
        assert e.value.field == "url", url
    for types in ([], ["Succeeded"], ["a b"], "succeeded", [1]):
        with pytest.raises(StudioError) as e:
            webhooks.create(engine, project="p", url="https://example.com/h", event_types=types)  # type: ignore[arg-type]
        assert e.value.field == "event_types", types
    row, _ = webhooks.create(engine, project="p", url=" https://example.com/h ",
                             event_types=["failed", "*", "failed"])
    assert row.url == "https://example.com/h" and row.event_types == ["*"]
    assert [r.id for r in webhooks.list_endpoints(engine, "p")] == [row.id]


# -- delivery -----------------------------------------------------------------------------


def test_a_real_receiver_gets_the_jobs_events_signed(engine: Any, client: Any, receiver: Receiver) -> None:
    endpoint, secret = webhooks.create(engine, project="p", url=receiver.url)
    job_id = _run_to_success(engine)
    assert _drain(engine, client, None) == 3
    payloads = sorted((_verify(secret, g) for g in receiver.got), key=lambda p: p["data"]["event"]["id"])
    assert [p["type"] for p in payloads] == ["queued", "running", "succeeded"]
    assert all(p["data"]["job"]["id"] == job_id for p in payloads)
    assert payloads[-1]["data"]["job"]["state"] == "succeeded"
    assert payloads[-1]["data"]["event"]["data"]["run_id"] == "run_1"
    events = jobs.events(engine, job_id)
    assert [p["data"]["event"]["id"] for p in payloads] == [e.id for e in events]
    sent = _deliveries(engine)
    assert {g["headers"]["webhook-id"] for g in receiver.got} == {d.id for d in sent}
    assert all(g["path"] == "/hook" and g["headers"]["content-type"] == "application/json" for g in receiver.got)
    assert all(d.state == "delivered" and d.attempts == 1 and d.last_status == 200 for d in sent)
    log = webhooks.attempts_of(engine, sent[0].id)
    assert [(a.n, a.status, a.error, a.response) for a in log] == [(1, 200, None, "answer 200")]
    assert _drain(engine, client, None) == 0  # delivered is delivered


def test_a_failing_receiver_gets_it_on_the_third_try_with_backoff(engine: Any, client: Any) -> None:
    receiver = Receiver(script=[500, 500, 200])
    try:
        _, secret = webhooks.create(engine, project="p", url=receiver.url)
        _submit(engine)
        t0 = db.now()
        assert webhooks.deliver_due(engine, client, now=t0) == 1
        (msg,) = _deliveries(engine)
        assert msg.state == "pending" and msg.last_status == 500 and msg.last_error == "answered HTTP 500"
        first_wait = webhooks._utc(msg.next_attempt_at) - t0
        assert timedelta(seconds=4.4) <= first_wait <= timedelta(seconds=5.6)  # 5 s, give or take 10%
        assert webhooks.deliver_due(engine, client, now=t0 + timedelta(seconds=4)) == 0  # not due yet
        t1 = t0 + timedelta(seconds=6)
        assert webhooks.deliver_due(engine, client, now=t1) == 1
        (msg,) = _deliveries(engine)
        second_wait = webhooks._utc(msg.next_attempt_at) - t1
        assert timedelta(minutes=4.4) <= second_wait <= timedelta(minutes=5.6)  # then 5 min
        assert webhooks.deliver_due(engine, client, now=t1 + timedelta(minutes=4)) == 0
        assert webhooks.deliver_due(engine, client, now=t1 + timedelta(minutes=6)) == 1
        (msg,) = _deliveries(engine)
        assert msg.state == "delivered" and msg.attempts == 3 and msg.last_status == 200 and msg.last_error is None
        log = webhooks.attempts_of(engine, msg.id)
        assert [(a.n, a.status) for a in log] == [(1, 500), (2, 500), (3, 200)]
        assert [a.error for a in log] == ["answered HTTP 500", "answered HTTP 500", None]
        assert all(a.duration_ms >= 0 for a in log)
        # Three POSTs of one message: one webhook-id, each signed anew (and each verifies).
        assert len({g["headers"]["webhook-id"] for g in receiver.got}) == 1 == len(set(msg.id.split()))
        assert receiver.got[0]["body"] == receiver.got[2]["body"]
        assert all(_verify(secret, g)["type"] == "queued" for g in receiver.got)
    finally:
        receiver.close()


def test_a_message_fails_after_the_last_attempt_and_redelivery_sends_it_again(engine: Any, client: Any) -> None:
    receiver = Receiver(script=[503] * (len(webhooks.RETRY_SCHEDULE) + 1))
    try:
        endpoint, secret = webhooks.create(engine, project="p", url=receiver.url)
        _submit(engine)
        at = db.now()
        for _ in range(len(webhooks.RETRY_SCHEDULE) + 1):
            assert webhooks.deliver_due(engine, client, now=at) == 1
            (msg,) = _deliveries(engine)
            at = webhooks._utc(msg.next_attempt_at)
        assert msg.state == "failed" and msg.attempts == len(webhooks.RETRY_SCHEDULE) + 1
        assert webhooks.deliver_due(engine, client, now=at + timedelta(days=30)) == 0  # given up
        waits = [b.at - a.at for a, b in zip(webhooks.attempts_of(engine, msg.id),
                                              webhooks.attempts_of(engine, msg.id)[1:], strict=False)]
        for wait, planned in zip(waits, webhooks.RETRY_SCHEDULE, strict=True):
            assert planned * 0.9 <= wait <= planned * 1.1

        # Redelivery: pending at once, the same webhook-id, a whole schedule ahead.
        again = webhooks.redeliver(engine, "p", endpoint.id, msg.id)
        assert again.state == "pending"
        assert webhooks.deliver_due(engine, client) == 1
        (msg,) = _deliveries(engine)
        assert msg.state == "delivered" and msg.attempts == len(webhooks.RETRY_SCHEDULE) + 2
        assert receiver.got[-1]["headers"]["webhook-id"] == msg.id == receiver.got[0]["headers"]["webhook-id"]
        assert _verify(secret, receiver.got[-1])["type"] == "queued"
        # A delivered message can be sent again too (a receiver that lost it).
        webhooks.redeliver(engine, "p", endpoint.id, msg.id)
        assert webhooks.deliver_due(engine, client) == 1
        assert len(webhooks.attempts_of(engine, msg.id)) == len(webhooks.RETRY_SCHEDULE) + 3
        with pytest.raises(webhooks.UnknownMessage):
            webhooks.redeliver(engine, "p", endpoint.id, "msg_0000")
        with pytest.raises(webhooks.UnknownEndpoint):  # another project's endpoint
            webhooks.redeliver(engine, "q", endpoint.id, msg.id)
    finally:
        receiver.close()


def test_a_message_whose_dispatcher_died_is_sent_again(engine: Any, client: Any, receiver: Receiver) -> None:
    _, secret = webhooks.create(engine, project="p", url=receiver.url)
    _submit(engine)
    t0 = db.now()
    (claimed,) = webhooks._claim(engine, t0, 10)  # claimed, then the dispatcher dies: no POST, no record
    assert webhooks.deliver_due(engine, client, now=t0 + timedelta(seconds=1)) == 0  # still claimed
    later = t0 + timedelta(seconds=webhooks.CLAIM_SECONDS + 1)
    assert webhooks.deliver_due(engine, client, now=later) == 1
    (msg,) = _deliveries(engine)
    assert msg.state == "delivered" and msg.id == claimed.id
    assert [a.n for a in webhooks.attempts_of(engine, msg.id)] == [2]  # the lost attempt counted
    assert _verify(secret, receiver.got[0])["type"] == "queued"
    # The dead dispatcher's late record (it was only slow) is logged but moves nothing.
    webhooks._record(engine, claimed, webhooks._Result(500, "answered HTTP 500", 1, ""), later)
    (msg,) = _deliveries(engine)
    assert msg.state == "delivered"
    assert [a.n for a in webhooks.attempts_of(engine, msg.id)] == [1, 2]


def test_no_redirect_is_followed_and_an_unreachable_receiver_is_retried(engine: Any, client: Any) -> None:
    elsewhere = Receiver()
    receiver = Receiver(script=[307], location=elsewhere.url)
    try:
        endpoint, _ = webhooks.create(engine, project="p", url=receiver.url)
        _submit(engine)
        assert webhooks.deliver_due(engine, client) == 1
        (msg,) = _deliveries(engine)
        assert msg.state == "pending" and msg.last_status == 307 and "redirects are not followed" in msg.last_error
        assert elsewhere.got == []
        # Nothing listens: no status, the error logged, retried later.
        webhooks.update(engine, "p", endpoint.id, url="http://127.0.0.1:9/nothing-here")
        webhooks.redeliver(engine, "p", endpoint.id, msg.id)
        assert webhooks.deliver_due(engine, client) == 1
        last = webhooks.attempts_of(engine, msg.id)[-1]
        assert last.status is None and last.error and "Connect" in last.error
        (msg,) = _deliveries(engine)
        assert msg.state == "pending"
    finally:
        receiver.close()
        elsewhere.close()


def test_a_disabled_endpoints_messages_wait_and_a_deleted_ones_go(engine: Any, client: Any,
                                                                  receiver: Receiver) -> None:
    endpoint, _ = webhooks.create(engine, project="p", url=receiver.url)
    _submit(engine)
    webhooks.update(engine, "p", endpoint.id, enabled=False)
    assert webhooks.deliver_due(engine, client) == 0
    webhooks.update(engine, "p", endpoint.id, enabled=True)
    assert webhooks.deliver_due(engine, client) == 1 and len(receiver.got) == 1
    _submit(engine, "two")
    webhooks.remove(engine, "p", endpoint.id)
    assert _deliveries(engine) == [] and webhooks.deliver_due(engine, client) == 0
    with pytest.raises(webhooks.UnknownEndpoint):
        webhooks.get(engine, "p", endpoint.id)
    _submit(engine, "three")  # no endpoint left: the job's changes go on as before
    assert _deliveries(engine) == []


def test_deleting_an_endpoint_waits_for_a_job_transaction_writing_to_it(engine: Any) -> None:
    """The endpoint's delete waits for a state change that is writing a message to it, then
    takes that message too (on PostgreSQL it would otherwise fail on the foreign key, or the
    job's transaction would); changing the endpoint meanwhile waits on nothing."""
    endpoint, _ = webhooks.create(engine, project="p", url="http://127.0.0.1:9/hook")
    job = _submit(engine)
    removed = threading.Event()
    errors: list[BaseException] = []

    def remove() -> None:
        try:
            webhooks.remove(engine, "p", endpoint.id)
            removed.set()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    thread = threading.Thread(target=remove)
    with jobs._tx(engine) as tx:
        jobs._change(tx, tx.s.get(db.Job, job.id), "running", db.now())
        tx.flush_events()  # the message to the endpoint is written, not committed
        if engine.dialect.name == "postgresql":  # SQLite has one writer at a time anyway
            webhooks.update(engine, "p", endpoint.id, description="changed meanwhile")
        thread.start()
        time.sleep(0.5)
        assert not removed.is_set() and not errors
    thread.join(30)
    assert not errors and removed.is_set()
    assert _deliveries(engine) == [] and jobs.get(engine, job.id).state == "running"


def test_a_job_change_beside_an_endpoints_delete_neither_fails_nor_leaves_a_message(engine: Any) -> None:
    """The other order: the delete holds the endpoint when a state change comes to write a
    message to it. The change waits, finds the endpoint gone, and commits without it
    (PostgreSQL; SQLite has one writer at a time, so the two cannot overlap there)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writing transaction at a time")
    from sqlalchemy import delete

    endpoint, _ = webhooks.create(engine, project="p", url="http://127.0.0.1:9/hook")
    job = _submit(engine)
    done: list[Any] = []
    with Session(engine) as s:  # what webhooks.remove does, held open
        webhooks._locked(s, "p", endpoint.id, deleting=True)
        s.exec(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
        s.exec(delete(db.WebhookEndpoint).where(db.WebhookEndpoint.id == endpoint.id))
        thread = threading.Thread(target=lambda: done.append(jobs.cancel(engine, job.id)))
        thread.start()
        time.sleep(0.5)
        assert not done  # waiting on the endpoint
        s.commit()
    thread.join(30)
    assert done and done[0].state == "canceled"
    assert _deliveries(engine) == []


def test_the_dispatcher_thread_delivers_until_stopped(engine: Any, receiver: Receiver) -> None:
    _, secret = webhooks.create(engine, project="p", url=receiver.url)
    stop = threading.Event()
    thread = threading.Thread(target=webhooks.run_dispatcher, args=(None, stop),
                              kwargs={"engine": engine, "poll_seconds": 0.05}, daemon=True)
    thread.start()
    try:
        _run_to_success(engine)
        deadline = time.monotonic() + 20
        while len(receiver.got) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(_verify(secret, g)["type"] for g in receiver.got) == ["queued", "running", "succeeded"]
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


# -- the API ----------------------------------------------------------------------------


def test_the_api_manages_endpoints_and_shows_the_log(settings: Settings, tokens: dict[str, str],
                                                     client: Any, receiver: Receiver) -> None:
    engine = db.make_engine(settings.db_url)
    other = auth.create(engine, project="other", role="admin")[1]
    app = create_app(settings, engine)
    try:
        with TestClient(app, headers=bearer(tokens["admin"])) as c:
            for role in ("viewer", "editor", "approver"):  # a URL can be a secret: admins only
                assert c.get("/v1/webhooks", headers=bearer(tokens[role])).status_code == 403
            for bad, field in (({"url": "ftp://example.com/x"}, "url"),
                               ({"url": "https://example.com/x", "event_types": ["Not A Type"]}, "event_types")):
                r = c.post("/v1/webhooks", json=bad)
                assert r.status_code == 422 and r.json()["problems"][0]["field"] == field, r.text
            assert c.post("/v1/webhooks", json={"url": receiver.url, "secret": "mine"}).status_code == 422

            r = c.post("/v1/webhooks", json={"url": receiver.url, "event_types": ["queued", "succeeded"],
                                             "description": "render farm bot"})
            assert r.status_code == 201, r.text
            made = r.json()
            hook, secret = made["id"], made["secret"]
            assert hook.startswith("whk_") and secret.startswith("whsec_")
            assert r.headers["location"] == f"/v1/webhooks/{hook}"
            assert made["project"] == "aurora" and made["event_types"] == ["queued", "succeeded"]
            # The secret is shown once: no later answer holds it.
            listed = c.get("/v1/webhooks")
            assert [w["id"] for w in listed.json()["webhooks"]] == [hook] and secret not in listed.text
            one = c.get(f"/v1/webhooks/{hook}")
            assert one.status_code == 200 and secret not in one.text and "secret" not in one.json()
            assert one.json()["secrets"][0]["expires_at"] is None

            job, _ = jobs.submit(engine, brief={"project": "aurora"}, project="aurora", campaign="c",
                                 brief_sha256="s", request_sha256="r")
            assert webhooks.deliver_due(engine, client) == 1
            assert _verify(secret, receiver.got[0])["data"]["job"]["id"] == job.id
            log = c.get(f"/v1/webhooks/{hook}/deliveries").json()["deliveries"]
            assert [(d["type"], d["state"], d["job_id"]) for d in log] == [("queued", "delivered", job.id)]
            assert [(a["n"], a["status"], a["response"]) for a in log[0]["log"]] == [(1, 200, "answer 200")]
            assert log[0]["payload"] == json.loads(receiver.got[0]["body"])
            msg = log[0]["id"]
            assert msg == receiver.got[0]["headers"]["webhook-id"]
            assert c.get(f"/v1/webhooks/{hook}/deliveries", params={"state": "failed"}).json() == {"deliveries": []}

            r = c.post(f"/v1/webhooks/{hook}/deliveries/{msg}/redeliver")
            assert r.status_code == 202 and r.json()["state"] == "pending" and len(r.json()["log"]) == 1
            assert webhooks.deliver_due(engine, client) == 1
            assert receiver.got[1]["headers"]["webhook-id"] == msg
            assert len(c.get(f"/v1/webhooks/{hook}/deliveries").json()["deliveries"][0]["log"]) == 2

            # Rotation: the default grace keeps the old secret signing; grace 0 ends it now.
            r = c.post(f"/v1/webhooks/{hook}/rotate-secret")
            assert r.status_code == 200, r.text
            second = r.json()["secret"]
            assert [s["expires_at"] is None for s in r.json()["secrets"]] == [False, True]
            r = c.post(f"/v1/webhooks/{hook}/rotate-secret", json={"grace_seconds": 0})
            third = r.json()["secret"]
            assert len({secret, second, third}) == 3 and len(r.json()["secrets"]) == 3
            assert c.post(f"/v1/webhooks/{hook}/rotate-secret", json={"grace_seconds": -1}).status_code == 422
            r = c.patch(f"/v1/webhooks/{hook}", json={"event_types": ["*"], "enabled": True})
            assert r.status_code == 200 and r.json()["event_types"] == ["*"]
            assert c.patch(f"/v1/webhooks/{hook}", json={"url": "javascript:alert(1)"}).json()[
                "problems"][0]["field"] == "url"
            jobs.cancel(engine, job.id)
            assert webhooks.deliver_due(engine, client) == 1
            assert _verify(third, receiver.got[-1])["type"] == "canceled"
            with pytest.raises(WebhookVerificationError):
                _verify(secret, receiver.got[-1])

            # Another project's admin: the endpoint and its messages do not exist for it.
            theirs = bearer(other)
            assert c.get("/v1/webhooks", headers=theirs).json() == {"webhooks": []}
            for method, path, body in (("GET", f"/v1/webhooks/{hook}", None),
                                       ("PATCH", f"/v1/webhooks/{hook}", {"enabled": False}),
                                       ("POST", f"/v1/webhooks/{hook}/rotate-secret", None),
                                       ("GET", f"/v1/webhooks/{hook}/deliveries", None),
                                       ("POST", f"/v1/webhooks/{hook}/deliveries/{msg}/redeliver", None),
                                       ("DELETE", f"/v1/webhooks/{hook}", None)):
                r = c.request(method, path, json=body, headers=theirs)
                unknown = c.request(method, path.replace(hook, "whk_0000000000000000"), json=body, headers=theirs)
                assert r.status_code == 404 == unknown.status_code, (method, path, r.text)
                assert r.json()["detail"].replace(hook, "?") == unknown.json()["detail"].replace(
                    "whk_0000000000000000", "?")
            assert c.get(f"/v1/webhooks/{hook}").json()["enabled"] is True  # untouched
            assert c.post(f"/v1/webhooks/{hook}/deliveries/msg_0000/redeliver").status_code == 404

            assert c.delete(f"/v1/webhooks/{hook}").status_code == 204
            assert c.get(f"/v1/webhooks/{hook}").status_code == 404
            assert c.get(f"/v1/webhooks/{hook}/deliveries").status_code == 404
    finally:
        engine.dispose()


def test_studio_serve_runs_the_dispatcher(tmp_path: Path, receiver: Receiver) -> None:
    """The real server (uvicorn, `studio serve --workers 0`) delivers a job's events on its own,
    and stops its dispatcher with the rest on SIGTERM."""
    import signal

    import httpx

    from .conftest import serve

    home = tmp_path / "home"
    proc, base_url = serve(home, workers=0, log_level="warning")
    try:
        engine = db.make_engine(Settings(home=home).db_url)
        admin = auth.create(engine, project="p", role="admin")[1]
        r = httpx.post(f"{base_url}/v1/webhooks", json={"url": receiver.url}, headers=bearer(admin), timeout=10)
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
        job = _submit(engine)
        jobs.cancel(engine, job.id)
        deadline = time.monotonic() + 30
        while len(receiver.got) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(_verify(secret, g)["type"] for g in receiver.got) == ["canceled", "queued"]
        engine.dispose()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out


# -- the OpenAPI document, with an admin token (tests/test_api_schema.py's editor token gets
# a 403 from every webhook route before any of it runs) ---------------------------------


@pytest.fixture
def schema_home(tmp_path: Path) -> Iterator[tuple[Settings, Any, str]]:
    """A database with an aurora admin token and one endpoint; (settings, engine, token)."""
    settings = Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'studio.db'}")
    engine = db.make_engine(settings.db_url)
    db.init_db(engine)
    admin = auth.create(engine, project="aurora", role="admin")[1]
    webhooks.create(engine, project="aurora", url="https://example.com/hook")
    yield settings, engine, admin
    engine.dispose()


def test_the_webhook_routes_conform_to_the_openapi_document(schema_home: tuple[Settings, Any, str]) -> None:
    """schemathesis on every webhook route: no 5xx, documented statuses, bodies and headers."""
    settings, engine, admin = schema_home
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings, engine)).include(
        path_regex="^/v1/webhooks")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 8
    # Pinned: a body that is not UTF-8 is FastAPI's own 400, documented (a fresh draw found it).
    app = create_app(settings, engine)
    with TestClient(app, headers=bearer(admin)) as c:
        for method, path in (("POST", "/v1/webhooks"), ("PATCH", "/v1/webhooks/whk_x"),
                             ("POST", "/v1/webhooks/whk_x/rotate-secret")):
            r = c.request(method, path, content=b"\xb5w+V\x00", headers={"content-type": "application/json"})
            assert r.status_code == 400, (method, path, r.text)
            assert "400" in app.openapi()["paths"][path.replace("whk_x", "{webhook_id}")][method.lower()]["responses"]

    for operation in operations:
        @given(case=operation.as_strategy())
        @hypothesis_settings(max_examples=30, deadline=None, phases=[Phase.explicit, Phase.generate],
                             suppress_health_check=list(HealthCheck), derandomize=True, database=None)
        def check(case: Any) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {admin}"},
                                   excluded_checks=[schemathesis.checks.positive_data_acceptance,
                                                    schemathesis.checks.negative_data_rejection,
                                                    schemathesis.checks.ignored_auth])

        check()
