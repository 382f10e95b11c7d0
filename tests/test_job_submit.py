"""``ray job submit`` against a real local Ray head, the way cluster/README.md documents it.

    ray start --head --node-ip-address=127.0.0.1 --dashboard-host=127.0.0.1 --num-cpus=2 \\
        --disable-usage-stats --temp-dir=<private dir> ...
    ray job submit --address http://127.0.0.1:<dashboard> --working-dir . \\
        --runtime-env-json '{"env_vars": {"STUDIO_HOME": ...}, "excludes": [...]}' \\
        -- <venv>/bin/python -m studio render BRIEF --out DIR

What it proves: the job SUCCEEDED; the output folder has manifest.json and every deliverable
it lists; the job's records landed in the database the CLI reads (``studio runs --json`` and
``studio show`` with the same STUDIO_HOME find the run); the uploaded working dir left out
.venv, .git, .studio, out and bench/results and stayed small.

Token auth (Ray >= 2.59): the head enables token auth when ``RAY_AUTH_MODE=token`` is set
(or, with the mode unset, when it finds a token), and ``ray start`` never generates one
(``ensure_token_if_auth_enabled(create_token_if_missing=False)``), so we generate it:
64 hex characters, exactly what ``ray get-auth-token --generate`` writes to
``~/.ray/auth_token``. Ray's C++ token loader looks at ``RAY_AUTH_TOKEN``, then
``RAY_AUTH_TOKEN_PATH``, then ``~/.ray/auth_token``. Head and client both get
``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN_PATH=<that file>``; every process the head
spawns (dashboard, raylet, job supervisor, the job's driver and its workers) inherits them,
so the job's own ``ray.init`` authenticates too. The client sends
``Authorization: Bearer <token>``; without it the dashboard answers 401.

Loopback only: ``--node-ip-address=127.0.0.1`` alone is not enough, since Ray swaps loopback
for the machine's routable address unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (then
GCS, raylet and agents all listen on 127.0.0.1). Every port that has a fixed default
(GCS 6379, dashboard 8265, client server 10001, agent 52365, metrics 44217/44227) is
given a free one, so this head never collides with another Ray on the machine.

Isolation and teardown: the head's HOME is a temp dir holding ``ray_bootstrap_config.yaml``
(``provider: {type: local}``) so the dashboard does not probe cloud metadata addresses.
``ray stop --force`` kills every Ray process on the machine (it matches process names,
and has no --temp-dir option), which would take down other test sessions, so teardown is
scoped instead: ``ray start`` runs in its own session, so its daemons share one process
group, and every process of this head carries a marker in its environment (workers
``setsid`` and retitle themselves, so neither the group nor the command line finds them
all); exactly those get SIGKILL, as ``ray stop --force`` would send.

Runs in the normal suite: 45-90 s on 2 cores (head ~10 s; the job 30-70 s, most of it the
render itself). A job still running after JOB_TIMEOUT is stopped and the test fails with
its log and `ray status` (what holds the CPUs, what cannot be placed).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from .conftest import EXAMPLE_BRIEF, ROOT, free_port

# The venv's interpreter by absolute path: a job entrypoint's bare `python` would be the
# system one, without Studio installed.
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = VENV_BIN / "python" if (VENV_BIN / "python").exists() else Path(sys.executable)
RAY = PYTHON.parent / "ray"
MARKER_VAR = "STUDIO_TEST_RAY_HEAD"

# What must never be uploaded with --working-dir. Ray already honours .gitignore and
# excludes .git/.venv/__pycache__ by default, but RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1 or
# RAY_OVERRIDE_RUNTIME_ENV_DEFAULT_EXCLUDES would turn that off: say it explicitly.
# Patterns are gitwildmatch relative to the working dir; no trailing slash, so the
# directory itself matches and Ray skips the whole subtree.
EXCLUDES = ["/.git", "/.venv", "/.studio", "/out", "/bench/results", "__pycache__",
            "/.pytest_cache", "/.ruff_cache", "*.egg-info"]
UPLOAD_LIMIT = 8 * 1024 * 1024
# The job takes ~25-40 s on 2 cores; generous, because the suite may share the machine.
JOB_TIMEOUT = 180


def _base_env() -> dict[str, str]:
    """This process's environment minus anything that would point Ray or Studio elsewhere."""
    drop = ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH",
            "RAY_AUTH_MODE", "RAY_RUNTIME_ENV_IGNORE_GITIGNORE",
            "RAY_OVERRIDE_RUNTIME_ENV_DEFAULT_EXCLUDES")
    env = {k: v for k, v in os.environ.items()
           if k not in drop and not k.startswith("STUDIO_")}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    return env


def _marked_pids(marker: str) -> set[int]:
    """Live processes whose environment carries this head's marker.

    Reads /proc/PID/environ raw: Ray's daemons retitle themselves ("ray::IDLE") by writing
    over argv, which on Linux runs into the environment block, so parsers that stop at the
    first empty entry (psutil's) see nothing. The marker is the head's last variable, the
    farthest from where the title overwrites.
    """
    needle = f"{MARKER_VAR}={marker}".encode()
    pids: set[int] = set()
    if not Path("/proc").is_dir():
        return pids  # not Linux: the process-group kill is all there is
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if needle in (proc / "environ").read_bytes() and ") Z" not in (proc / "stat").read_text():
                pids.add(int(proc.name))
        except OSError:
            continue  # gone already, or not ours to read
    return pids


def _stop_head(marker: str, pgid: int | None, timeout: float = 20.0) -> set[int]:
    """SIGKILL this head's processes and only them (what `ray stop --force` sends, scoped).

    Two nets: the process group of `ray start` (started in its own session, so GCS, raylet,
    dashboard, agents and monitors share it) and the environment marker, which also finds
    the workers and job drivers that call setsid.
    """
    deadline = time.monotonic() + timeout
    left = _marked_pids(marker)
    # Only signal the group while a marked process is still in it: a group id whose
    # members are all gone could in principle be reused by an unrelated process.
    if pgid is not None and any(_pgid(p) == pgid for p in left):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    while left and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
        left = _marked_pids(marker)
    return left


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


@dataclass
class Head:
    address: str  # the dashboard's HTTP address, what `ray job submit --address` takes
    temp_dir: Path
    token: str
    client_env: dict[str, str]
    start_log: Path
    start_s: float  # `ray start` until the dashboard answers
    gcs_address: str  # what `ray status --address` takes


def _wait_for_dashboard(address: str, token: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        req = urllib.request.Request(f"{address}/api/version",
                                     headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError) as e:
            last = str(e)
        time.sleep(0.5)
    raise TimeoutError(f"dashboard at {address} not up after {timeout:.0f} s: {last}")


@pytest.fixture(scope="module")
def ray_head() -> Iterator[Head]:
    # Short path under /tmp: Ray's unix sockets live under the temp dir and the socket
    # path limit is 107 bytes, which pytest's tmp_path can exceed.
    root = Path(tempfile.mkdtemp(prefix="sjs-", dir="/tmp"))
    marker = root.name + "-" + secrets.token_hex(4)
    home = root / "home"
    home.mkdir()
    (home / "ray_bootstrap_config.yaml").write_text("provider:\n  type: local\n")
    token_file = root / "auth_token"
    token = secrets.token_hex(32)  # = ray._private.authentication's generator
    token_file.write_text(token)
    token_file.chmod(0o600)
    temp_dir = root / "ray"
    dash_port = free_port()
    gcs_port = free_port()

    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file), "HOME": str(home)}
    head_env = {
        **_base_env(), **auth,
        # Fixed-default metrics ports of the dashboard and autoscaler monitor.
        "DASHBOARD_METRIC_PORT": str(free_port()),
        "AUTOSCALER_METRIC_PORT": str(free_port()),
        MARKER_VAR: marker,  # last: see _marked_pids
    }
    client_env = {**_base_env(), **auth}
    start_log = root / "ray-start.log"
    cmd = [
        str(RAY), "start", "--head", "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1",
        "--num-cpus=2", "--disable-usage-stats", f"--temp-dir={temp_dir}",
        f"--port={gcs_port}", f"--dashboard-port={dash_port}",
        f"--ray-client-server-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--metrics-export-port={free_port()}",
    ]
    pgid: int | None = None
    t0 = time.monotonic()
    try:
        # Output to a file, not a pipe: the daemons inherit the descriptors and would keep a
        # pipe open (and a reader waiting) for as long as they live. A new session makes
        # `ray start`'s pid the process group of every daemon it launches.
        with start_log.open("w") as log:
            proc = subprocess.Popen(cmd, env=head_env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            pgid = proc.pid
            try:
                rc = proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
        if rc != 0:
            pytest.fail(f"ray start failed ({rc}):\n{start_log.read_text()[-4000:]}")
        address = f"http://127.0.0.1:{dash_port}"
        _wait_for_dashboard(address, token, timeout=45)
        yield Head(address, temp_dir, token, client_env, start_log, time.monotonic() - t0,
                   f"127.0.0.1:{gcs_port}")
    finally:
        left = _stop_head(marker, pgid)
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"Ray processes of the test head survived SIGKILL: {left}"


def _small_brief(dest: Path) -> Path:
    """The example brief cut down: 2 beats of 1 s (hero beat kept), 2 candidates, 2 channels."""
    d = yaml.safe_load(EXAMPLE_BRIEF.read_text())
    keep = {d["beats"][0]["id"], d["hero_beat"]}
    # One-second beats: the first keeps a short voice line, so the job runs Piper too.
    # Without the example's supers and end card: one-second beats are too short to read them.
    d["beats"] = [{k: v for k, v in dict(b, duration=1, narration="").items() if k != "supers"}
                  for b in d["beats"] if b["id"] in keep]
    d.pop("end_card", None)
    d["beats"][0]["narration"] = "Aurora."
    d["candidates"] = 2
    d["channels"] = ["youtube-1080p", "banner-300x250"]
    path = dest / "brief.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


def _studio(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {**_base_env(), "STUDIO_HOME": str(home)}
    return subprocess.run([str(PYTHON), "-m", "studio", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60, stdin=subprocess.DEVNULL)


def _uploaded_dir(temp_dir: Path, working_dir_uri: str) -> Path:
    """Where the head unpacked ``gcs://_ray_pkg_<hash>.zip`` (the job's working_dir)."""
    name = working_dir_uri.rsplit("/", 1)[-1].removesuffix(".zip")
    found = {p.resolve() for p in temp_dir.glob(f"session_*/runtime_resources/working_dir_files/{name}")}
    assert len(found) == 1, (working_dir_uri, found)
    return found.pop()


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def _tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def test_ray_job_submit_renders_and_records(ray_head: Head, tmp_path: Path) -> None:
    from ray.job_submission import JobStatus, JobSubmissionClient

    studio_home = tmp_path / "studio-home"  # shared by the job and the CLI below
    out = tmp_path / "out"
    brief = _small_brief(tmp_path)
    submission_id = f"studio-test-{secrets.token_hex(4)}"
    runtime_env = {
        "env_vars": {"STUDIO_HOME": str(studio_home), "RAY_USAGE_STATS_ENABLED": "0",
                     "STUDIO_X264_PRESET": "ultrafast"},
        "excludes": EXCLUDES,
    }
    submit = [
        str(RAY), "job", "submit", "--address", ray_head.address,
        "--submission-id", submission_id, "--working-dir", ".",
        "--runtime-env-json", json.dumps(runtime_env),
        "--", str(PYTHON), "-m", "studio", "render", str(brief), "--out", str(out),
    ]
    t0 = time.monotonic()
    # The CLI waits for the job and exits 0 only if it SUCCEEDED. A job that never ends
    # would leave nothing to read, so on a timeout the job is stopped and its log shown.
    client = JobSubmissionClient(ray_head.address,
                                 headers={"Authorization": f"Bearer {ray_head.token}"})
    try:
        r = subprocess.run(submit, cwd=ROOT, env=ray_head.client_env, capture_output=True,
                           text=True, timeout=JOB_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        status = client.get_job_status(submission_id)
        logs = client.get_job_logs(submission_id)
        # What the cluster is doing: used resources and demands that cannot be placed.
        usage = subprocess.run([str(RAY), "status", "--address", ray_head.gcs_address],
                               env=ray_head.client_env, capture_output=True, text=True,
                               timeout=60, stdin=subprocess.DEVNULL)
        client.stop_job(submission_id)
        pytest.fail(f"job still {status} after {JOB_TIMEOUT} s; stopped it.\n"
                    f"--- job logs (tail) ---\n{logs[-6000:]}\n"
                    f"--- ray status ---\n{usage.stdout[-3000:]}{usage.stderr[-1000:]}\n"
                    f"--- submit output (tail) ---\n{_text(e.stderr)[-1500:]}")
    submit_s = time.monotonic() - t0

    # Status and logs straight from the job server (explicit bearer header: this process
    # itself runs with auth mode unset).
    status = client.get_job_status(submission_id)
    logs = client.get_job_logs(submission_id)
    detail = (f"ray job submit rc={r.returncode} after {submit_s:.1f} s, status {status}\n"
              f"--- job logs (tail) ---\n{logs[-6000:]}\n--- submit stderr (tail) ---\n{r.stderr[-3000:]}")
    assert status == JobStatus.SUCCEEDED, detail
    assert r.returncode == 0, detail

    # What was uploaded: the unpacked working dir on the head.
    info = client.get_job_info(submission_id)
    pkg = _uploaded_dir(ray_head.temp_dir, (info.runtime_env or {})["working_dir"])
    assert (pkg / "studio" / "cli.py").is_file() and (pkg / "pyproject.toml").is_file()
    for excluded in (".git", ".venv", ".studio", "out", "bench/results"):
        assert not (pkg / excluded).exists(), f"{excluded} was uploaded with the working dir"
    assert _tree_size(pkg) < UPLOAD_LIMIT, f"working dir upload is {_tree_size(pkg)} bytes"

    # The output folder: manifest plus every deliverable it names, one per channel.
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(d["spec"] for d in manifest["deliverables"]) == ["banner-300x250", "youtube-1080p"]
    for d in manifest["deliverables"]:
        f = out / d["path"]
        assert f.is_file() and f.stat().st_size > 0, d
    assert [len(b["candidates"]) for b in manifest["beats"]] == [2, 2]

    # The records: the CLI, with the same STUDIO_HOME, sees the job's run.
    runs = _studio(["runs", "--json"], studio_home)
    assert runs.returncode == 0, runs.stderr
    mine = [it for it in json.loads(runs.stdout) if it["run"] == manifest["run_id"]]
    assert mine, runs.stdout
    assert mine[0]["status"] == "succeeded" and Path(mine[0]["out"]) == out.resolve(), mine
    show = _studio(["show", manifest["run_id"], "--json"], studio_home)
    assert show.returncode == 0, show.stderr
    recorded = json.loads(show.stdout)
    assert sorted(d["spec"] for d in recorded["deliverables"]) == ["banner-300x250", "youtube-1080p"]
    assert sum(len(s["candidates"]) for s in recorded["shots"]) == 4
    # Shown with -s (or -rP): where the time goes.
    print(f"head start {ray_head.start_s:.1f} s, ray job submit (upload + render) {submit_s:.1f} s, "
          f"checks {time.monotonic() - t0 - submit_s:.1f} s")
