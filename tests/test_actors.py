"""One Ray actor policy (studio.actors) for every stage.

* Two runs on one cluster never share or kill each other's actors: a run's actors are
  named for the run, and closing one run's pool leaves the other's working.
* A model actor kept warm is named per model, shared, and never killed by a run.
* A StudioError raised inside an actor (or task) reaches the caller as itself.
* Two renders at once, as two processes on one Ray cluster and one database, both finish.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from studio.errors import StageError, StudioError

from .conftest import EXAMPLE_BRIEF, ROOT, free_port
from .test_job_submit import MARKER_VAR, PYTHON, RAY, _base_env, _stop_head


class Probe:
    """A tiny actor: says which process it is, and fails the way a backend would."""

    def pid(self) -> int:
        return os.getpid()

    def fail(self, what: str) -> None:
        raise StageError(what, fix="check the probe", stage="candidates", shot="b01", field="seed")



def _dies(call, within: float = 60.0) -> bool:
    """Whether the actor behind ``call`` is dead within ``within`` seconds. ``ray.kill``
    goes through the GCS while a method call goes straight to the actor's worker, so a call
    made right after the kill may still be served: ask again until the worker is gone."""
    import time

    import ray

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            ray.get(call(), timeout=max(1.0, deadline - time.monotonic()))
        except ray.exceptions.RayActorError:
            return True
        time.sleep(0.2)
    return False

def _specs() -> list[dict]:
    from studio.specs import Catalog

    return [Catalog().spec("youtube-1080p").model_dump(mode="json", by_alias=True)]


def _pool(run_id: str, store: Path, keep: bool = False):
    from shots.generate import KeyframePool

    # No CPUs reserved: the session's local Ray has two, and these actors only answer calls.
    return KeyframePool("procedural", {}, str(store), _specs(), {"num_cpus": 0}, 1, keep=keep, run_id=run_id)


def test_two_runs_get_their_own_keyframe_actors(ray_session, tmp_path: Path) -> None:
    import ray

    a = _pool("run_aaaa", tmp_path / "store")
    b = _pool("run_bbbb", tmp_path / "store")
    try:
        assert a.names != b.names
        assert "run_aaaa" in a.names[0] and "run_bbbb" in b.names[0]
        assert ray.get(b.actors[0].describe.remote())["backend"] == "procedural"
        a.close()
        # The other run's actor is untouched: it still answers after the first run closed.
        assert ray.get(b.actors[0].describe.remote(), timeout=60)["backend"] == "procedural"
        assert _dies(lambda: a.actors[0].describe.remote())
    finally:
        a.close()
        b.close()


def test_kept_warm_actor_is_shared_by_name_and_survives_close(ray_session) -> None:
    import ray

    from studio.actors import NAMESPACE, ActorGroup

    key = secrets.token_hex(6)  # this test's own model: never another test's warm actor
    first = ActorGroup("candidates", run_id="run_one", keep=True)
    second = ActorGroup("candidates", run_id="run_two", keep=True)
    p1 = first.start(Probe, prefix="probe", key=key, resources={"num_cpus": 0})
    pid = ray.get(p1.pid.remote())
    p2 = second.start(Probe, prefix="probe", key=key, resources={"num_cpus": 0})
    try:
        assert first.names == second.names == [f"studio-probe-{key}-0"]  # per model, no run id
        assert ray.get(p2.pid.remote()) == pid  # the same warm actor, found by name
        first.close()
        second.close()
        assert ray.get(p2.pid.remote(), timeout=60) == pid  # no run kills a kept actor
    finally:
        ray.kill(ray.get_actor(first.names[0], namespace=NAMESPACE), no_restart=True)


def test_run_scope_kills_groups_left_open(ray_session) -> None:
    """A stage that never closed its group (a crash between start and ``with``) loses its
    actors when the run ends; groups started in the run take its id."""
    import ray

    from studio.actors import ActorGroup, enter_run, leave_run

    token = enter_run("run_scope")
    try:
        group = ActorGroup("voice")
        actor = group.start(Probe, prefix="probe", key="k", resources={"num_cpus": 0})
        ray.get(actor.pid.remote())
        assert "run_scope" in group.names[0]
    finally:
        leave_run(token)
    assert _dies(lambda: actor.pid.remote())


def test_studio_error_in_an_actor_reaches_the_caller_as_itself(ray_session) -> None:
    import ray

    from studio.actors import ActorGroup, user_error

    expected = StageError("the probe broke", fix="check the probe", stage="candidates", shot="b01",
                          field="seed").line()
    with ActorGroup("candidates", run_id="run_err") as group:
        actor = group.start(Probe, prefix="probe", key="k", resources={"num_cpus": 0})
        with pytest.raises(StudioError) as e:
            group.get([actor.fail.remote("the probe broke")], what="probe")
    assert type(e.value) is StageError and str(e.value) == expected

    # The same for a plain task (the clips stage's), through the one unwrapping.
    @ray.remote(num_cpus=0)
    def task() -> None:
        raise StageError("the clip broke", fix="check the move", stage="clips", shot="b02")

    with pytest.raises(ray.exceptions.RayTaskError) as raw:
        ray.get(task.remote())
    err = user_error(raw.value, what="clip render", stage="clips")
    assert str(err) == "stage clips: shot b02: the clip broke — check the move"

    # Anything else names what failed and the exception's first line.
    @ray.remote(num_cpus=0)
    def crash() -> None:
        raise ValueError("bad pixels\nmore detail")

    with pytest.raises(ray.exceptions.RayTaskError) as raw:
        ray.get(crash.remote())
    err = user_error(raw.value, what="clip render", stage="clips", shot="b03")
    assert type(err) is StageError
    assert err.what == "clip render failed: ValueError: bad pixels"


def test_keyframe_studio_error_keeps_its_line(ray_session, tmp_path: Path) -> None:
    """Through the keyframe pool itself: the worker's StudioError (a backend that takes no
    reference images) reaches the driver as that StudioError, not a RayTaskError."""
    import ray

    from studio.actors import user_error

    pool = _pool("run_kf_err", tmp_path / "store")
    job = {"id": "s/0", "shot_id": "s", "beat_id": "b01", "items": [{"index": 0, "seed": 1}],
           "prompt": {"reference_images": ["0" * 64]}, "prompt_hash": "x", "width": 64, "height": 64}
    with pool:
        ray.get(pool.actors[0].describe.remote())
        # the procedural backend takes references: ask for one the store does not have
        with pytest.raises(ray.exceptions.RayTaskError) as raw:
            list(pool.run([job]))
    err = user_error(raw.value, what="keyframe generation", stage="candidates")
    assert isinstance(err, StudioError)
    assert err is raw.value.cause  # the worker's own error object, as raised


def test_jobs_go_only_to_actors_that_started(ray_session, tmp_path: Path) -> None:
    """Another run holds one of the cluster's two CPUs: of this pool's two actors one
    cannot start, and every job must still finish on the one that did (a job queued on
    the actor that never starts would wait for ever: two renders, each holding one actor
    of two, would wait for each other)."""
    import threading

    import ray

    from shots.generate import KeyframePool, make_jobs
    from studio.actors import ActorGroup
    from studio.context import ShotPlan

    prompt = {"subject": "a lamp", "palette": ["#202020", "#e0c080"]}
    shot = ShotPlan(shot_id="s1", beat_id="b01", position=0, duration=1.0, frames=24, handles=0,
                    prompt=prompt, prompt_hash="p", focus=(0.5, 0.5), camera="static", seeds=[1, 2, 3])
    jobs = make_jobs([shot], 64, 64, 1)
    free = int(ray.available_resources().get("CPU", 0))
    with ActorGroup("candidates", run_id="run_other") as other:
        # the other run's actors take all CPUs but one
        held = [other.start(Probe, prefix="probe", key="cpu", index=i, resources={"num_cpus": 1})
                for i in range(free - 1)]
        ray.get([h.pid.remote() for h in held])
        pool = KeyframePool("procedural", {}, str(tmp_path / "store"), _specs(), {"num_cpus": 1}, 2,
                            run_id="run_this")
        results: list[dict] = []
        worker = threading.Thread(target=lambda: results.extend(pool.run(jobs)), daemon=True)
        with pool:
            worker.start()
            worker.join(timeout=120)
            assert not worker.is_alive(), "jobs waited on an actor that never started"
    assert sorted(it["seed"] for r in results for it in r["items"]) == [1, 2, 3]


# -- two renders at once on one cluster and one database ----------------------------------


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[dict[str, str]]:
    """A local Ray head (no dashboard) for the renders; the client environment to reach it.
    Token auth and isolation as in test_job_submit: its own HOME with a bootstrap config,
    free ports, and teardown scoped to this head's processes."""
    root = Path(tempfile.mkdtemp(prefix="sra-", dir="/tmp"))  # short: Ray's socket paths
    marker = root.name + "-" + secrets.token_hex(4)
    home = root / "home"
    home.mkdir()
    (home / "ray_bootstrap_config.yaml").write_text("provider:\n  type: local\n")
    token_file = root / "auth_token"
    token_file.write_text(secrets.token_hex(32))
    token_file.chmod(0o600)
    gcs_port = free_port()
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file), "HOME": str(home)}
    head_env = {**_base_env(), **auth, "AUTOSCALER_METRIC_PORT": str(free_port()),
                "DASHBOARD_METRIC_PORT": str(free_port()), MARKER_VAR: marker}
    cmd = [str(RAY), "start", "--head", "--node-ip-address=127.0.0.1", "--num-cpus", "2",
           "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={root / 'ray'}",
           f"--port={gcs_port}", f"--ray-client-server-port={free_port()}",
           f"--dashboard-agent-listen-port={free_port()}", f"--metrics-export-port={free_port()}"]
    log = root / "ray-start.log"
    pgid = None
    try:
        with log.open("w") as f:
            proc = subprocess.Popen(cmd, env=head_env, stdout=f, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            pgid = proc.pid
            rc = proc.wait(timeout=90)
        if rc != 0:
            pytest.fail(f"ray start failed ({rc}):\n{log.read_text()[-4000:]}")
        yield {**_base_env(), **auth, "RAY_ADDRESS": f"127.0.0.1:{gcs_port}"}
    finally:
        left = _stop_head(marker, pgid)
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"Ray processes of the test head survived SIGKILL: {left}"


def _small_brief(dest: Path) -> Path:
    """The example brief cut down to its hero beat (1 s, a short line), 2 candidates, one channel."""
    d = yaml.safe_load(EXAMPLE_BRIEF.read_text())
    d["beats"] = [dict(b, duration=1, narration="Aurora.") for b in d["beats"] if b["id"] == d["hero_beat"]]
    d["candidates"] = 2
    d["channels"] = ["youtube-1080p"]
    path = dest / "brief.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


def _two_renders(env: dict[str, str], tmp_path: Path) -> None:
    brief = _small_brief(tmp_path)
    outs = [tmp_path / "out-a", tmp_path / "out-b"]
    t0 = time.monotonic()
    logs = [tmp_path / f"{out.name}.log" for out in outs]
    procs = []
    # Output to files, not pipes: a full pipe would stall one render while the other runs.
    for out, log in zip(outs, logs, strict=True):
        with log.open("w") as f:
            procs.append(subprocess.Popen(
                [str(PYTHON), "-m", "studio", "render", str(brief), "--out", str(out), "--log-json"],
                env=env, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
    try:
        codes = [p.wait(timeout=420) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    seconds = time.monotonic() - t0
    for rc, out, log in zip(codes, outs, logs, strict=True):
        text = log.read_text(errors="replace")
        detail = f"{out.name}: rc {rc} after {seconds:.0f} s\n--- output ---\n{text[-4000:]}"
        assert rc == 0, detail
        assert "database is locked" not in text.lower(), detail
        assert (out / "manifest.json").is_file(), detail
    manifests = [json.loads((out / "manifest.json").read_text()) for out in outs]
    assert manifests[0]["run_id"] != manifests[1]["run_id"]
    # Each run's records are its own: its run row finished, its beat's two candidates.
    show = subprocess.run([str(PYTHON), "-m", "studio", "runs", "--json"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert show.returncode == 0, show.stderr
    runs = {r["run"]: r for r in json.loads(show.stdout)}
    from sqlmodel import Session, select

    from studio import db
    from studio.settings import Settings

    engine = db.make_engine(Settings(home=Path(env["STUDIO_HOME"])).db_url
                            if "STUDIO_DATABASE_URL" not in env else env["STUDIO_DATABASE_URL"])
    try:
        with Session(engine) as s:
            for m in manifests:
                assert runs[m["run_id"]]["status"] == "succeeded", runs
                run = s.get(db.Run, m["run_id"])
                assert run is not None and run.out_dir in {str(o.resolve()) for o in outs}, run
                cands = s.exec(select(db.Candidate).join(db.Shot).where(db.Shot.run_id == m["run_id"])).all()
                assert len(cands) == 2
                assert sorted(c.id for c in cands) == sorted(c["id"] for c in m["beats"][0]["candidates"])
    finally:
        engine.dispose()


def test_two_renders_at_once_on_one_cluster_and_one_database(ray_cluster, tmp_path: Path) -> None:
    env = {**ray_cluster, "STUDIO_HOME": str(tmp_path / "home"), "STUDIO_X264_PRESET": "ultrafast"}
    _two_renders(env, tmp_path)


@pytest.mark.postgres
def test_two_renders_at_once_on_postgresql(ray_cluster, postgres_url, tmp_path: Path) -> None:
    env = {**ray_cluster, "STUDIO_HOME": str(tmp_path / "home"), "STUDIO_X264_PRESET": "ultrafast",
           "STUDIO_DATABASE_URL": postgres_url}
    _two_renders(env, tmp_path)
