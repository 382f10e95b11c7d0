"""Shared, session-scoped fixtures: one local Ray, one real PostgreSQL on loopback, and
one render of the example brief that many tests inspect."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.browser import browser, page  # noqa: F401 - the review page tests' browser fixtures
from tests.pgserver import free_port, pg_bindir, postgres_server

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_BRIEF = ROOT / "examples" / "briefs" / "launch.yaml"
# Reference data kept beside the project, not in it (Apple's DTDs): CI has it, a plain
# clone may not.
SHARED = ROOT.parent / "shared"


def shared_file(*parts: str) -> Path:
    """A file from ``../shared``; without it the test skips, saying why. ``.ci/run`` sets
    STUDIO_REQUIRE_SHARED (CI always has ../shared), so there a missing file fails instead
    of turning the check off unnoticed."""
    path = SHARED.joinpath(*parts)
    if not path.is_file():
        msg = f"{path} not found: it comes from ../shared beside the project (CI has it)"
        if os.environ.get("STUDIO_REQUIRE_SHARED"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Local Ray on loopback only (see studio/ray_runtime.py); read when ray is first imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
# Ray workers inherit the environment: let them import test-only backends from tests/.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)


def render_env(home: Path) -> dict[str, str]:
    """The environment of a `studio` subprocess with its own home."""
    return {**os.environ, "STUDIO_HOME": str(home), "STUDIO_RAY_NUM_CPUS": "2", "RAY_USAGE_STATS_ENABLED": "0"}


def start_render(brief: Path, out: Path, home: Path, until: Callable[[list[str]], bool], *,
                 what: str, timeout: float = 300) -> tuple[subprocess.Popen[str], list[str]]:
    """`studio render` in the background, returned once ``until(lines)`` holds for its
    stderr lines so far (the plain reporter's progress lines; stderr is not a terminal)."""
    proc = subprocess.Popen([sys.executable, "-m", "studio", "render", str(brief), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, env=render_env(home), cwd=ROOT)
    lines: list[str] = []
    reached = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if until(lines):
                reached.set()

    threading.Thread(target=read, daemon=True).start()
    if not reached.wait(timeout):
        proc.kill()
        raise AssertionError(f"{what} never happened: {''.join(lines)}")
    return proc, lines


@pytest.fixture(scope="session")
def studio_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's STUDIO_HOME, with a development signing identity (as set-up makes one),
    so rendered deliverables are signed and verify."""
    from studio.devcert import dev_dir, make_dev_identity

    home = tmp_path_factory.mktemp("studio-home")
    make_dev_identity(dev_dir(home))
    return home


@pytest.fixture(scope="session")
def settings(studio_home: Path):
    from studio.settings import Settings

    return Settings(home=studio_home, ray_num_cpus=2)


@pytest.fixture(scope="session")
def ray_session(settings) -> Iterator[None]:
    import ray

    from studio.ray_runtime import ensure_ray

    ensure_ray(settings)
    yield
    ray.shutdown()


# -- PostgreSQL ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1, started for this test session."""
    if url := os.environ.get("STUDIO_TEST_POSTGRES_URL"):
        yield url
        return
    bindir = pg_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: scripts/setup.sh --test installs it from Debian")
        pytest.skip("PostgreSQL not installed (scripts/setup.sh --test installs it)")
    with postgres_server(bindir) as url:
        yield url


# -- one real render of the example brief ---------------------------------------------


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, settings, ray_session):
    """The README demo's brief, rendered once for the whole session."""
    from studio.pipeline import render

    out = tmp_path_factory.mktemp("demo") / "out"
    ctx = render(EXAMPLE_BRIEF, out, settings=settings)
    return ctx, out


# -- tiny random-weight diffusers pipelines, built once -------------------------------


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.tiny_models import build_tiny_ip_adapter, build_tiny_sd, build_tiny_svd

    root = tmp_path_factory.mktemp("tiny-models")
    sd = build_tiny_sd(root / "weights" / "sd")
    return {
        "root": root,
        "sd": sd,
        "ipa": build_tiny_ip_adapter(root / "weights" / "ipa", sd),
        "svd": build_tiny_svd(root / "weights" / "svd", num_frames=4),
    }


@pytest.fixture(scope="session")
def models_dir(tiny: dict[str, Path]) -> Path:
    """A user models folder (STUDIO_MODELS_DIR) with entries pointing at the tiny weights
    by relative path (relative to the entry file)."""
    import yaml

    from tests.tiny_models import entry_doc

    folder = tiny["root"] / "models"
    folder.mkdir()
    docs = [
        entry_doc("tiny-sd", kind="text-to-image", backend="diffusers-image",
                  source={"path": "../weights/sd"}, scheduler="EulerDiscreteScheduler",
                  batch_size=2, usage_classes=["experiment", "internal"]),
        entry_doc("tiny-sd-ref", kind="image-to-image", backend="diffusers-image",
                  source={"path": "../weights/sd"}, strength=0.7, batch_size=2),
        entry_doc("tiny-sd-ip", kind="text-to-image", backend="diffusers-image",
                  source={"path": "../weights/sd"}, batch_size=2,
                  ip_adapter={"path": "../weights/ipa", "subfolder": "models",
                              "weight_name": "ip-adapter_tiny.safetensors", "scale": 0.8}),
        entry_doc("tiny-svd", kind="image-to-video", backend="diffusers-video",
                  source={"path": "../weights/svd"}, guidance=2.0, width=32, height=32, fps=7,
                  num_frames=4, call_args={"decode_chunk_size": 4, "motion_bucket_id": 100}),
    ]


    for doc in docs:
        (folder / f"{doc['id']}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return folder


def serve(home: Path, *, workers: int = 0, port: int | None = None, log_level: str | None = None,
          env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """`studio serve` (the real uvicorn server) as a subprocess on a loopback port with its
    own STUDIO_HOME, returned with its base URL once ``/v1/health`` answers."""
    import time

    import httpx

    port = port or free_port()
    run_env = {k: v for k, v in os.environ.items() if k != "STUDIO_DATABASE_URL"}
    run_env.update({"STUDIO_HOME": str(home), **(env or {})})
    cmd = [sys.executable, "-m", "studio", "serve", "--port", str(port), "--workers", str(workers)]
    if log_level:
        cmd += ["--log-level", log_level]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            if httpx.get(f"{base}/v1/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the server never answered /v1/health")
        time.sleep(0.2)
