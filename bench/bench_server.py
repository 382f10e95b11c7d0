"""Benchmark: the job server under concurrent clients (issue 11). Against the real
`studio serve` (uvicorn, a subprocess on 127.0.0.1, no workers: submitted jobs stay queued):

    python bench/bench_server.py [--reps N] [--per-client N] [--events N] [--postgres] [--quick]

  (a) submit latency: 50 concurrent clients (threads, one keep-alive connection each) each
      POST /v1/jobs a distinct small brief (its own campaign and Idempotency-Key) ``per-client``
      times; beside it, the baseline: the same 50 clients each GET /v1/health as often. The
      bursts are interleaved (health, submit, health, submit, ...) and every request's
      latency, send to response, is pooled per kind; p50/p99 and submit ÷ health.
  (c) a check beside (a): 50 concurrent submits of one brief with one Idempotency-Key make
      one job (one 201, the rest 200 with its id).
  (b) event fan-out: 100 SSE listeners on GET /v1/stream (an asyncio loop in this process);
      the bench appends ``events`` progress events one at a time (studio.jobs.append_events on
      the server's database, as a worker does) at random intervals, and each listener notes
      when each event arrives. Latency per (event, listener) pair from the append's commit
      (its return) to receipt, and per event to the last of the 100 listeners; beside it the
      baseline: GET /v1/health from one client every 50 ms while the 100 streams are open.
      The streams poll the events table every POLL_SECONDS (studio/api/stream.py, 0.3 s), so
      a delivery waits up to that long (0.15 s on average) before it is even read: the
      fan-out figures are bounded below by the poll, and the output says so.

The database is SQLite under a fresh STUDIO_HOME, or with --postgres a throwaway PostgreSQL
on loopback (tests/pgserver.py, as bench_lineage.py does). Results: a table on stdout and
bench/results/server.json (server-postgres.json with --postgres).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio import auth, db, jobs  # noqa: E402
from studio.api import stream  # noqa: E402
from tests.pgserver import free_port, pg_bindir, postgres_server  # noqa: E402

CLIENTS = 50
LISTENERS = 100
PROJECT = "bench"


def small_brief(campaign: str) -> dict[str, Any]:
    """tests/test_api_stream.py's small brief: two one-second beats, one channel."""
    return {"project": PROJECT, "campaign": campaign, "purpose": "server benchmark",
            "channels": ["youtube-1080p"], "style_pack": "golden-hour", "candidates": 2,
            "captions": False, "handles": 0, "music": {"source": "none"}, "effects": {"enabled": False},
            "beats": [{"id": "b01", "duration": 1, "subject": "a lighthouse in a storm"},
                      {"id": "b02", "duration": 1, "subject": "a fox in fresh snow"}]}


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank on the sorted values."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": round(pct(values, 50) * 1000, 2), "p99_ms": round(pct(values, 99) * 1000, 2),
            "mean_ms": round(statistics.fmean(values) * 1000, 2), "max_ms": round(max(values) * 1000, 2)}


@contextlib.contextmanager
def server(home: Path, database_url: str | None, log: Path) -> Iterator[str]:
    """`studio serve --workers 0` on a free loopback port; its base URL once /v1/health answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "STUDIO_DATABASE_URL"}
    env["STUDIO_HOME"] = str(home)
    if database_url:
        env["STUDIO_DATABASE_URL"] = database_url
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "studio", "serve", "--port", str(port), "--workers", "0",
                                 "--log-level", "warning"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"studio serve exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/v1/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("studio serve never answered /v1/health")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def burst(base: str, token: str, kind: str, per_client: int, tag: str,
          clients: int = CLIENTS) -> tuple[list[float], list[int]]:
    """``clients`` threads, started together, each sending ``per_client`` requests of ``kind``
    (health | submit) one after another on its own connection; every latency and status."""
    barrier = threading.Barrier(clients)
    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {token}"}

    def client(i: int) -> None:
        mine: list[tuple[float, int]] = []
        with httpx.Client(base_url=base, headers=headers, timeout=120) as c:
            c.get("/v1/health")  # connect before the clock starts: the burst times requests, not handshakes
            barrier.wait()
            for j in range(per_client):
                t0 = time.perf_counter()
                if kind == "health":
                    r = c.get("/v1/health")
                else:
                    name = f"{tag}-{i}-{j}"
                    r = c.post("/v1/jobs", json=small_brief(name), headers={"Idempotency-Key": name})
                mine.append((time.perf_counter() - t0, r.status_code))
        with lock:
            latencies.extend(t for t, _ in mine)
            statuses.extend(s for _, s in mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, statuses


def one_key(base: str, token: str) -> dict[str, Any]:
    """CLIENTS concurrent submits of one brief with one Idempotency-Key."""
    barrier = threading.Barrier(CLIENTS)
    got: list[tuple[int, str]] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120) as c:
            c.get("/v1/health")
            barrier.wait()
            r = c.post("/v1/jobs", json=small_brief("one-key"), headers={"Idempotency-Key": "bench-one-key"})
        with lock:
            got.append((r.status_code, r.json().get("id", "")))

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(c for c, _ in got)
    return {"jobs": len({i for c, i in got if c in (200, 201)}), "created_201": codes.count(201),
            "same_200": codes.count(200), "other": [c for c in codes if c not in (200, 201)]}


async def fan_out(base: str, token: str, engine: Any, job_id: str, n_events: int) -> dict[str, Any]:
    """LISTENERS streams on /v1/stream; ``n_events`` events appended one at a time; per
    event, when it was committed and when each listener got it; health polled meanwhile."""
    after = max((e.id for e in jobs.events(engine, job_id, limit=100000)), default=0)
    received: list[dict[int, float]] = [{} for _ in range(LISTENERS)]
    connected = [asyncio.Event() for _ in range(LISTENERS)]
    done = asyncio.Event()
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=LISTENERS + 10, max_keepalive_connections=LISTENERS + 10)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits,
                                 timeout=httpx.Timeout(60, read=120)) as client:

        async def listen(i: int) -> None:
            async with client.stream("GET", f"/v1/stream?after={after}") as r:
                assert r.status_code == 200, r.status_code
                async for line in r.aiter_lines():
                    if line.startswith(":"):
                        connected[i].set()
                    elif line.startswith("id:"):
                        received[i][int(line[3:].strip())] = time.perf_counter()
                    if done.is_set():
                        return

        tasks = [asyncio.create_task(listen(i)) for i in range(LISTENERS)]
        await asyncio.wait_for(asyncio.gather(*(c.wait() for c in connected)), 120)
        health: list[float] = []

        async def poll_health() -> None:
            async with httpx.AsyncClient(base_url=base, timeout=60) as h:
                while not done.is_set():
                    t0 = time.perf_counter()
                    r = await h.get("/v1/health")
                    assert r.status_code == 200
                    health.append(time.perf_counter() - t0)
                    await asyncio.sleep(0.05)

        poller = asyncio.create_task(poll_health())
        committed: dict[int, float] = {}
        rng = random.Random(7)
        for k in range(n_events):
            # A random phase against the streams' poll, so the figures are not one point of it.
            await asyncio.sleep(rng.uniform(0.25, 0.6))
            ids = await asyncio.to_thread(jobs.append_events, engine, job_id,
                                          [("progress", {"stage": "bench", "amount": 1, "k": k})])
            committed[ids[0]] = time.perf_counter()
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline and any(len(r) < n_events for r in received):
            await asyncio.sleep(0.1)
        done.set()
        await poller
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    pairs = [got[eid] - at for got in received for eid, at in committed.items() if eid in got]
    missing = sum(1 for got in received for eid in committed if eid not in got)
    to_all = [max(got[eid] for got in received) - at for eid, at in committed.items()
              if all(eid in got for got in received)]
    return {"pairs": pairs, "to_all": to_all, "missing": missing, "health": health}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="interleaved health/submit bursts (default 3)")
    ap.add_argument("--per-client", type=int, default=4, help="requests per client per burst (default 4)")
    ap.add_argument("--events", type=int, default=60, help="events appended for the fan-out (default 60)")
    ap.add_argument("--postgres", action="store_true", help="PostgreSQL on loopback instead of SQLite")
    ap.add_argument("--quick", action="store_true", help="2 bursts of 2 requests a client, 20 events")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.per_client, args.events = 2, 2, 20

    tmp = Path(tempfile.mkdtemp(prefix="bench-server-"))
    home = tmp / "home"
    home.mkdir()
    with contextlib.ExitStack() as stack:
        url = None
        if args.postgres:
            bindir = pg_bindir()
            if bindir is None:
                raise SystemExit("PostgreSQL is not installed (scripts/setup.sh --test installs it)")
            url = stack.enter_context(postgres_server(bindir, prefix="bench-server-pg-"))
        engine = db.make_engine(url or f"sqlite:///{(home / 'studio.db').resolve()}")
        db.init_db(engine)
        token = auth.create(engine, project=PROJECT, role="editor", name="bench")[1]
        base = stack.enter_context(server(home, url, tmp / "server.log"))
        print(f"studio serve at {base}, {'PostgreSQL' if url else 'SQLite'}, no workers; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)

        # One client alone first: what a request costs without queueing, for reading (a).
        lat1: dict[str, list[float]] = {"health": [], "submit": []}
        for rep in range(2):
            for kind in ("health", "submit"):
                got, codes = burst(base, token, kind, 10, f"one{rep}", clients=1)
                if set(codes) != {200 if kind == "health" else 201}:
                    raise SystemExit(f"{kind}: unexpected statuses {sorted(set(codes))}")
                lat1[kind].extend(got)
        print(f"1 client: health p50 {pct(lat1['health'], 50) * 1000:.1f} ms, submit p50 "
              f"{pct(lat1['submit'], 50) * 1000:.1f} ms", flush=True)
        lat: dict[str, list[float]] = {"health": [], "submit": []}
        for rep in range(args.reps):
            for kind in ("health", "submit"):
                t0 = time.perf_counter()
                got, codes = burst(base, token, kind, args.per_client, f"r{rep}")
                bad = [c for c in codes if c != (200 if kind == "health" else 201)]
                if bad:
                    raise SystemExit(f"{kind}: unexpected statuses {sorted(set(bad))}")
                lat[kind].extend(got)
                print(f"rep {rep + 1} {kind:<6} {len(got)} requests in {time.perf_counter() - t0:6.2f} s  "
                      f"p50 {pct(got, 50) * 1000:7.1f} ms  p99 {pct(got, 99) * 1000:7.1f} ms", flush=True)
        same = one_key(base, token)
        print(f"one key, {CLIENTS} concurrent submits: {same['jobs']} job(s), {same['created_201']}×201, "
              f"{same['same_200']}×200, other {same['other']}", flush=True)

        job = httpx.post(f"{base}/v1/jobs", json=small_brief("fan-out"), timeout=60,
                         headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "fan-out"}).json()["id"]
        print(f"fan-out: {LISTENERS} listeners on /v1/stream, {args.events} events ...", flush=True)
        fan = asyncio.run(fan_out(base, token, engine, job, args.events))
        engine.dispose()

    a = {k: summary(v) for k, v in lat.items()}
    one = {k: summary(v) for k, v in lat1.items()}
    b = {"per_listener": summary(fan["pairs"]), "to_all_100": summary(fan["to_all"]),
         "health_meanwhile": summary(fan["health"]), "missing_deliveries": fan["missing"]}
    ratios = {
        "(a) submit ÷ health, p50": a["submit"]["p50_ms"] / a["health"]["p50_ms"],
        "(a) submit ÷ health, p99": a["submit"]["p99_ms"] / a["health"]["p99_ms"],
        "    submit ÷ health, 1 client, p50": one["submit"]["p50_ms"] / one["health"]["p50_ms"],
        "(b) delivery ÷ health, p50": b["per_listener"]["p50_ms"] / b["health_meanwhile"]["p50_ms"],
        "(b) delivery ÷ health, p99": b["per_listener"]["p99_ms"] / b["health_meanwhile"]["p99_ms"],
        "(b) to all 100 ÷ health, p99": b["to_all_100"]["p99_ms"] / b["health_meanwhile"]["p99_ms"],
    }
    poll_ms = stream.POLL_SECONDS * 1000
    print(f"\n{'measure':<44} {'n':>6} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    rows = [("    GET /v1/health, 1 client", one["health"]),
            ("    POST /v1/jobs, 1 client", one["submit"]),
            (f"(a) GET /v1/health, {CLIENTS} clients (baseline)", a["health"]),
            (f"(a) POST /v1/jobs, {CLIENTS} clients", a["submit"]),
            (f"(b) GET /v1/health, {LISTENERS} streams open (baseline)", b["health_meanwhile"]),
            ("(b) event delivery, per listener", b["per_listener"]),
            (f"(b) event delivery, to all {LISTENERS}", b["to_all_100"])]
    for name, s in rows:
        print(f"{name:<44} {s['n']:>6} {s['p50_ms']:>9.1f} {s['p99_ms']:>9.1f} {s['max_ms']:>9.1f}")
    print()
    for name, value in ratios.items():
        print(f"{name:<44} {value:>9.1f}")
    print(f"\nnote: the streams poll the events table every {poll_ms:.0f} ms (studio/api/stream.py "
          f"POLL_SECONDS), so an event waits 0-{poll_ms:.0f} ms (about {poll_ms / 2:.0f} ms on average) "
          f"before a stream reads it: delivery latency is bounded below by the poll, not by the fan-out. "
          f"Deliveries missing after 30 s: {fan['missing']}.")
    if same["jobs"] != 1 or same["other"]:
        print("one key made more than one job, or answered other than 200/201: see above")

    result = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"), "database": "postgresql" if args.postgres else "sqlite",
        "cpus": os.cpu_count(), "load_average_end": os.getloadavg(), "clients": CLIENTS, "listeners": LISTENERS,
        "reps": args.reps, "per_client": args.per_client, "events": args.events,
        "poll_seconds": stream.POLL_SECONDS, "one_client": one, "submit": a, "one_key": same, "fan_out": b,
        "ratios": {k: round(v, 2) for k, v in ratios.items()},
    }
    out = ROOT / "bench" / "results" / ("server-postgres.json" if args.postgres else "server.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
