"""Renders stopped from outside (issue 10): SIGKILL leaves a run that the next command
marks interrupted, and the next render removes what it left; SIGTERM (docker, Kubernetes)
cancels like Ctrl-C, exit code 143, nothing left behind. Version numbers count published
runs only."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from studio.store import Store, _host

from .conftest import ROOT, render_env, start_render


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


def _start(brief: Path, out: Path, home: Path) -> tuple[subprocess.Popen[str], list[str]]:
    """`studio render` in the background, stopped once its candidates stage has started."""
    return start_render(brief, out, home, lambda lines: lines[-1].startswith("studio: candidates"),
                        what="the candidates stage", timeout=240)


def _studio(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "studio", *args], capture_output=True, text=True,
                          env=render_env(home), cwd=ROOT, timeout=timeout, stdin=subprocess.DEVNULL)


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


def test_store_cleans_only_abandoned_temps_of_its_own_naming(tmp_path: Path) -> None:
    """Store.clean_stale, without a render: what a dead process of this host left goes at
    once; untagged temps (earlier releases, other tools' TemporaryDirectory) go once idle;
    anything held open or of a live process stays; other names are never touched."""
    store = Store(tmp_path / "store")
    with store.scratch() as live_dir:  # this process's: kept while it runs
        (live_dir / "master.mp4").write_bytes(b"x")
        dead_dir = store.root / f"tmp.{_dead_pid()}@{_host()}.k1ll3d00"
        old_dir, fresh_dir, held_dir = (store.root / f"tmp{n}" for n in ("old00000", "fresh000", "held0000"))
        for d in (dead_dir, old_dir, fresh_dir, held_dir):
            d.mkdir(parents=True)
            (d / "master.mp4").write_bytes(b"half a master")
        sub = store.objects / "ab"
        sub.mkdir(parents=True)
        dead_atomic = sub / f".{'ab' * 32}.png.{_dead_pid()}@{_host()}.q9w8e7r6.tmp"
        other_host = store.objects / f".put.{_dead_pid()}@elsewhere.a1b2c3d4"  # shared storage
        stored = sub / f"{'ab' * 32}.png"
        for p in (dead_atomic, other_host, stored):
            p.write_bytes(b"x")
        hour_ago = time.time() - 3600
        for p in (old_dir, old_dir / "master.mp4", held_dir, held_dir / "master.mp4", stored):
            os.utime(p, (hour_ago, hour_ago))
        with open(held_dir / "master.mp4", "rb"):
            removed = store.clean_stale()
        assert sorted(p.name for p in removed) == sorted([dead_dir.name, old_dir.name, dead_atomic.name])
        assert live_dir.exists() and fresh_dir.exists() and held_dir.exists()
        assert other_host.exists() and stored.exists()  # another host's is young; objects never go
        old = time.time() - 3600
        os.utime(other_host, (old, old))
        # idle long enough: abandoned wherever it ran; the held folder, let go, goes too
        assert sorted(store.clean_stale()) == sorted([other_host, held_dir])
    assert not live_dir.exists()


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state, start time) of a process, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
    return int(fields[1]), fields[0], fields[19]


def _tree(root: int) -> dict[int, str]:
    """Live descendants of ``root``: pid -> start time (so a reused pid is not mistaken)."""
    stats = {int(p.name): s for p in Path("/proc").iterdir() if p.name.isdigit() and (s := _stat(int(p.name)))}
    found, todo = {}, [root]
    while todo:
        parent = todo.pop()
        for pid, (ppid, _, start) in stats.items():
            if ppid == parent and pid not in found:
                found[pid] = start
                todo.append(pid)
    return found


def _cmd(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _alive(pid: int, start: str) -> bool:
    s = _stat(pid)
    return s is not None and s[2] == start and s[1] != "Z"  # a zombie has finished


def _using(session: str) -> set[int]:
    """Processes with a file open in the Ray session's folder (its logs), however started."""
    pids = set()
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if any(os.readlink(fd).startswith(session + "/") for fd in (p / "fd").iterdir()):
                pids.add(int(p.name))
        except OSError:
            continue
    return pids


def test_killed_render_leaves_no_ray_process(tmp_path: Path) -> None:
    """SIGKILL of a render: every process of its local Ray (GCS, raylet, the raylet's agents,
    workers) and its watcher are gone within seconds. Before, the dashboard and runtime-env
    agents outlived the driver by a minute, trying to tell the dead GCS the raylet had died."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("reads /proc (Linux)")
    home, brief, out = tmp_path / "home", _brief(tmp_path / "brief.yaml"), tmp_path / "out"
    proc, lines = _start(brief, out, home)
    try:
        deadline = time.monotonic() + 120
        while True:  # the raylet's agents are up: they are what used to linger
            tree = _tree(proc.pid)
            cmds = {pid: _cmd(pid) for pid in tree}
            if sum(c.startswith(("ray::DashboardAgent", "ray::RuntimeEnvAgent")) for c in cmds.values()) == 2:
                break
            assert time.monotonic() < deadline and proc.poll() is None, (cmds, "".join(lines))
            time.sleep(0.2)
        # the session folder, from the GCS's and raylet's command lines (--log_dir=..., ...)
        (session,) = {m.group(1) for c in cmds.values() if (m := re.search(r"=(/\S*/session_[\d_-]+)/", c))}
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    deadline = time.monotonic() + 20
    left: dict[int, str] = {}
    while time.monotonic() < deadline:
        left = {pid: _cmd(pid) for pid, start in tree.items() if _alive(pid, start)}
        left.update({pid: _cmd(pid) for pid in _using(session) if pid not in left})
        if not left:
            break
        time.sleep(0.2)
    assert not left, f"still running 20 s after the render was killed: {left}"
