"""Renders stopped from outside (issue 10): SIGKILL leaves a run that the next command
marks interrupted, and the next render removes what it left; SIGTERM (docker, Kubernetes)
cancels like Ctrl-C, exit code 143, nothing left behind. Version numbers count published
runs only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from studio.store import Store, _host

from .conftest import ROOT


def _brief(path: Path) -> Path:
    d = {
        "project": "stop", "campaign": "killed", "purpose": "a render stopped from outside",
        "channels": ["youtube-1080p"], "style_pack": "golden-hour", "candidates": 3, "captions": False,
        "handles": 0, "music": {"source": "none"}, "effects": {"enabled": False},
        "beats": [{"id": "b01", "duration": 1, "subject": "a hiker on a ridge at sunrise"},
                  {"id": "b02", "duration": 1, "subject": "a glowing orb over a lake"}],
    }
    path.write_text(yaml.safe_dump(d))
    return path


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "STUDIO_HOME": str(home), "STUDIO_RAY_NUM_CPUS": "2", "RAY_USAGE_STATS_ENABLED": "0"}


def _start(brief: Path, out: Path, home: Path) -> tuple[subprocess.Popen[str], list[str]]:
    """`studio render` in the background, stopped once its candidates stage has started
    (its progress lines on stderr say so)."""
    proc = subprocess.Popen([sys.executable, "-m", "studio", "render", str(brief), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, env=_env(home), cwd=ROOT)
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("studio: candidates"):
                started.set()

    threading.Thread(target=read, daemon=True).start()
    if not started.wait(240):
        proc.kill()
        raise AssertionError(f"the candidates stage never started: {''.join(lines)}")
    return proc, lines


def _studio(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "studio", *args], capture_output=True, text=True,
                          env=_env(home), cwd=ROOT, timeout=timeout, stdin=subprocess.DEVNULL)


def _runs(home: Path) -> list[dict[str, Any]]:
    r = _studio(home, "runs", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_killed_render_is_marked_interrupted_and_cleaned_up(tmp_path: Path) -> None:
    home, brief, out = tmp_path / "home", _brief(tmp_path / "brief.yaml"), tmp_path / "out"
    proc, lines = _start(brief, out, home)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    (partial,) = out.parent.glob(".out.partial-*")  # what a killed render leaves
    (run,) = _runs(home)
    assert run["status"] == "interrupted", run  # `studio runs` found its process gone

    # Temp files in the store: a dead writer's (gone at once), an abandoned untagged one
    # (gone: idle for an hour), and two that live processes still hold (kept).
    store = Store(home / "store")
    store.objects.mkdir(parents=True, exist_ok=True)
    dead = store.objects / f".new.{_dead_pid()}@{_host()}.abcd1234.mp4"
    abandoned = store.objects / ".put.zzzz9999"
    held_old = store.objects / ".put.held0000"
    mine = store.objects / f".new.{os.getpid()}@{_host()}.live0000.wav"
    for p in (dead, abandoned, held_old, mine):
        p.write_bytes(b"half a master")
    hour_ago = time.time() - 3600
    for p in (abandoned, held_old):
        os.utime(p, (hour_ago, hour_ago))
    not_ours = store.objects / "notes.txt"  # not Studio's temp naming: never touched
    not_ours.write_text("keep me")
    os.utime(not_ours, (hour_ago, hour_ago))

    with open(held_old, "rb"):
        r = _studio(home, "render", str(brief), "--out", str(out), "--quiet", timeout=600)
    assert r.returncode == 0, r.stderr
    assert not partial.exists() and not list(out.parent.glob(".out.partial-*"))
    assert sorted(p.name for p in store.temp_files()) == sorted([held_old.name, mine.name])
    assert not_ours.exists()
    # The killed attempt published nothing: the first published run is v001.
    m = json.loads((out / "manifest.json").read_text())
    (d,) = m["deliverables"]
    assert "_v001" in d["path"], d["path"]
    first, second = sorted(_runs(home), key=lambda r: r["started"])
    assert first["status"] == "interrupted" and second["status"] == "succeeded"


def test_sigterm_cancels_like_ctrl_c(tmp_path: Path) -> None:
    home, brief, out = tmp_path / "home", _brief(tmp_path / "brief.yaml"), tmp_path / "out"
    proc, lines = _start(brief, out, home)
    proc.send_signal(signal.SIGTERM)
    proc.wait(120)
    text = "".join(lines)
    assert proc.returncode == 143, text
    assert "studio: cancelled; nothing was published" in text and "Traceback" not in text, text
    (run,) = _runs(home)
    assert run["status"] == "cancelled", run
    assert not out.exists() and not list(out.parent.glob(".out.partial-*"))
    assert Store(home / "store").temp_files() == []
