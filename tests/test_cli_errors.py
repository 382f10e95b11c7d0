"""Every user error: one clear line naming what and where, exit code 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import EXAMPLE_BRIEF, ROOT


def studio(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STUDIO_HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run([sys.executable, "-m", "studio", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120, stdin=subprocess.DEVNULL)


def _brief(tmp_path: Path, **changes) -> Path:
    d = yaml.safe_load(EXAMPLE_BRIEF.read_text())
    d.update(changes)
    p = tmp_path / "brief.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def _assert_clean_failure(r: subprocess.CompletedProcess[str], expected: str, out: Path) -> None:
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines and all(ln.startswith("studio: error: ") for ln in lines), r.stderr
    assert expected in r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists() or not any(out.iterdir())
    # no half-written sibling work folders either
    assert not list(out.parent.glob(f".{out.name}.partial-*"))


def test_missing_brief(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = studio("render", str(tmp_path / "nope.yaml"), "--out", str(out), home=tmp_path)
    _assert_clean_failure(r, f"studio: error: {tmp_path / 'nope.yaml'}: file not found — check the path", out)


def test_malformed_brief(tmp_path: Path) -> None:
    p = tmp_path / "brief.yaml"
    p.write_text("schema: Brief.1\nbeats: [\n")
    out = tmp_path / "out"
    _assert_clean_failure(studio("render", str(p), "--out", str(out), home=tmp_path),
                          "is not valid YAML at line", out)


def test_invalid_field(tmp_path: Path) -> None:
    d = yaml.safe_load(EXAMPLE_BRIEF.read_text())
    d["beats"][1]["duration"] = "long"
    p = tmp_path / "brief.yaml"
    p.write_text(yaml.safe_dump(d))
    out = tmp_path / "out"
    _assert_clean_failure(studio("render", str(p), "--out", str(out), home=tmp_path),
                          "beats[1].duration: 'long': input should be a valid number", out)


def test_unknown_spec(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = studio("render", str(_brief(tmp_path, channels=["youtube-4k"])), "--out", str(out), home=tmp_path)
    _assert_clean_failure(r, "channels[0]: unknown channel spec 'youtube-4k' — use one of:", out)


def test_unknown_style_pack(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = studio("render", str(_brief(tmp_path, style_pack="sepia")), "--out", str(out), home=tmp_path)
    _assert_clean_failure(r, "style_pack: unknown style pack 'sepia'", out)


def test_beats_longer_than_channel(tmp_path: Path) -> None:
    d = yaml.safe_load(EXAMPLE_BRIEF.read_text())
    d["channels"] = ["reels-9x16"]
    for b in d["beats"]:
        b["duration"] = 200
    p = tmp_path / "brief.yaml"
    p.write_text(yaml.safe_dump(d))
    out = tmp_path / "out"
    _assert_clean_failure(studio("render", str(p), "--out", str(out), home=tmp_path),
                          "beats: the spot runs 800 s but reels-9x16 allows at most 600 s", out)


def test_unwritable_output(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "out"
    r = studio("render", str(EXAMPLE_BRIEF), "--out", str(out), home=tmp_path)
    assert r.returncode == 2
    assert f"studio: error: {out}: --out: cannot write here: {blocker} is a file, not a folder" in r.stderr
    assert blocker.read_text() == "x"
    assert not (tmp_path / "store").exists()  # refused before anything rendered


def test_output_not_empty_and_not_ours(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    r = studio("render", str(EXAMPLE_BRIEF), "--out", str(out), home=tmp_path)
    assert r.returncode == 2
    assert "--out: is not empty and holds no Studio output — choose an empty or new folder" in r.stderr
    assert (out / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize("kind", ["brief", "spec", "style", "model", "voice", "manifest"])
def test_schema_command(tmp_path: Path, kind: str) -> None:
    import json

    r = studio("schema", kind, home=tmp_path)
    assert r.returncode == 0
    assert json.loads(r.stdout)["type"] == "object"


def test_show_unknown_run(tmp_path: Path) -> None:
    r = studio("show", "run_doesnotexist", home=tmp_path)
    assert r.returncode == 2
    assert "studio: error: RUN: no run 'run_doesnotexist' — list them with `studio runs`" in r.stderr


def test_ctrl_c_cancels_cleanly(tmp_path: Path) -> None:
    """SIGINT mid-run: pending work stops, nothing is published, the run says cancelled."""
    import json
    import signal
    import time

    env = {**os.environ, "STUDIO_HOME": str(tmp_path / "home"), "RAY_USAGE_STATS_ENABLED": "0",
           "STUDIO_RAY_NUM_CPUS": "1"}
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "studio", "render", str(EXAMPLE_BRIEF), "--out", str(out),
                          "--log-json"], stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                         stdin=subprocess.DEVNULL)
    assert p.stderr is not None
    deadline = time.monotonic() + 120
    for line in p.stderr:  # wait until a candidate has been made, then interrupt
        if '"event": "progress"' in line and '"stage": "candidates"' in line:
            p.send_signal(signal.SIGINT)
            break
        assert time.monotonic() < deadline
    rest = p.stderr.read()
    assert p.wait(timeout=60) == 130, rest
    assert "studio: cancelled" in rest
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))
    r = studio("runs", "--json", home=tmp_path / "home")
    (run,) = json.loads(r.stdout)
    assert run["status"] == "cancelled"
