"""Connecting to Ray: a cluster when ``RAY_ADDRESS`` says so, else a local one.

The local one binds to 127.0.0.1, sends no usage stats and starts no dashboard unless
asked (job submission needs it; see cluster/README.md). Nothing here runs at import.

A local Ray is made of this process's children and grandchildren (GCS, raylet, the
raylet's dashboard and runtime-env agents, workers, whatever workers start). Ray ties the
GCS and raylet to the driver (parent-death signal), but when the driver is killed outright
(SIGKILL, out of memory) the raylet's two agents notice the raylet is gone and then spend
60 s trying to report it to the GCS, which is gone too (``publish_error`` with a fixed 60 s
timeout in ``ray/_private/process_watcher.py``). So a local Ray gets a watcher: a small
process that waits for the driver's end of a pipe to close and then kills what is left of
that Ray session. It never touches a cluster this process only connected to.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from studio.settings import Settings

# Every process a local Ray starts inherits this variable from the driver (workers too: the
# raylet passes its environment on), and so do their children, ffmpeg included.
SESSION_ENV = "STUDIO_RAY_SESSION"
_watcher: subprocess.Popen[bytes] | None = None


def ensure_ray(settings: Settings) -> dict[str, Any]:
    """Start or join Ray once per process; return what we connected to."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = os.environ.get("RAY_ADDRESS")
    if not address:
        # Ray turns "127.0.0.1" into the machine's routable address unless told this is a
        # single-machine instance; this switch (read when ray is imported) makes every Ray
        # process of a local instance listen on loopback only.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        return {"address": "existing", "local": False}
    if not settings.ray_logs:
        # Ray logs its banners ("Token authentication is enabled ...") as warnings through
        # Python logging; they are Ray's business, not the user's (STUDIO_RAY_LOGS=1 shows them).
        logging.getLogger("ray").setLevel(logging.ERROR)
    if address:
        # A cluster someone else runs: no watcher, nothing of it is ever ours to stop.
        ray.init(address=address, log_to_driver=settings.ray_logs)
        return {"address": address, "local": False}
    kwargs: dict[str, Any] = dict(
        include_dashboard=settings.ray_dashboard,
        log_to_driver=settings.ray_logs,
        configure_logging=settings.ray_logs,
    )
    if settings.ray_dashboard:
        kwargs["dashboard_host"] = "127.0.0.1"
    if settings.ray_num_cpus:
        kwargs["num_cpus"] = settings.ray_num_cpus
    # The watcher starts first, so a driver killed during ray.init leaves nothing either.
    _watch_local_ray()
    ray.init(**kwargs)
    _name_session()
    return {"address": "local", "local": True}


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


# -- the watcher -------------------------------------------------------------------------


def _watch_local_ray() -> None:
    """Start this process's watcher once (Linux; elsewhere there is no /proc to read)."""
    global _watcher
    if _watcher is not None or not Path("/proc/self/environ").exists():
        return
    # A new token per driver, even when one was inherited: this driver's Ray is its own.
    os.environ[SESSION_ENV] = uuid.uuid4().hex
    # The watcher imports this module however this process found it (an install or a checkout).
    here = str(Path(__file__).resolve().parent.parent)
    path = [here, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != here)]
    # Its own session: a Ctrl-C at the terminal (the foreground process group) must not stop
    # it before the driver has shut Ray down. The pipe's write end stays in this process only
    # (Python makes it non-inheritable), so its closing means this process is gone.
    _watcher = subprocess.Popen(
        [sys.executable, "-c", "from studio.ray_runtime import _watch; _watch()", os.environ[SESSION_ENV]],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
    )


def _name_session() -> None:
    """Tell the watcher the session folder of the Ray node this process started, or that
    ray.init joined an instance already running (a `ray start` on this machine): never ours."""
    import ray

    try:  # private API; without it the watcher finds the session from the raylet itself
        node = ray._private.worker._global_node
        started = node is not None and node.head
        session = os.path.realpath(node.get_session_dir_path()) if started else ""
    except AttributeError:
        return
    _tell_watcher(f"session {session}" if started else "joined")


def _tell_watcher(message: str) -> None:
    if _watcher is None or _watcher.stdin is None:
        return
    try:
        _watcher.stdin.write(f"{message}\n".encode())
        _watcher.stdin.flush()
    except OSError:
        pass


def _carries(pid: int, token: bytes) -> bool:
    try:
        return token in Path("/proc", str(pid), "environ").read_bytes().split(b"\0")
    except OSError:
        return False


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _find_sessions(token: bytes) -> set[str]:
    """Session folders named by the raylet or log monitor this driver started (they keep
    the token; --session_dir / --session-dir on their command line)."""
    found = set()
    for pid in _pids():
        if not _carries(pid, token):
            continue
        try:
            args = Path("/proc", str(pid), "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        for arg in args:
            for flag in ("--session_dir=", "--session-dir="):
                if arg.startswith(flag) and len(arg) > len(flag):
                    found.add(os.path.realpath(arg[len(flag):]))
    return found


def _ours(pid: int, token: bytes, sessions: list[str]) -> bool:
    """A process of the dead driver's Ray: it carries the token in its environment, or it
    writes into the session's folder (Ray's agents overwrite their environment with their
    process title, so the token alone misses them; they keep their logs open there).
    Readers (a `tail -f` of a log) are not Ray's and are left alone."""
    proc = Path("/proc", str(pid))
    if _carries(pid, token):
        return True
    if not sessions:
        return False
    try:
        fds = list((proc / "fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(fd)
            if not any(target.startswith(s + os.sep) for s in sessions):
                continue
            flags = (proc / "fdinfo" / fd.name).read_text().split("flags:", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if int(flags, 8) & (os.O_WRONLY | os.O_RDWR):
            return True
    return False


def _kill_leftovers(token: bytes, sessions: list[str]) -> list[int]:
    me = os.getpid()
    killed = []
    for pid in _pids():
        if pid != me and _ours(pid, token, sessions):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError:
                pass
    return killed


def _watch() -> None:
    """The watcher's main: wait for the driver's pipe to close, then kill what is left."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    token = f"{SESSION_ENV}={sys.argv[1]}".encode()
    driver = os.getppid()
    sessions: set[str] = set()
    joined, pending, fd = False, b"", sys.stdin.fileno()
    while True:
        # Until the driver names its session (after ray.init returns), look for it every half
        # second: a driver killed during ray.init may already have started the agents.
        looking = not sessions and not joined
        if select.select([fd], [], [], 0.5 if looking else None)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:  # the driver is gone, however it ended
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                kind, _, value = line.decode().partition(" ")
                if kind == "session" and value:
                    sessions.add(value)
                joined = joined or kind == "joined"  # ray.init joined a running instance
        elif looking:
            sessions |= _find_sessions(token)
    # The pipe also closes while a driver that exits normally finalizes (after ray.shutdown),
    # with Ray's log files still open in the session folder: wait until it is really gone.
    while os.getppid() == driver:
        time.sleep(0.05)
    if not joined:
        sessions |= _find_sessions(token)
    # After a normal exit ray.shutdown has stopped everything and this finds nothing. Kill
    # until a scan comes back empty twice: a dying raylet may still have started a worker.
    empty, deadline = 0, time.monotonic() + 30
    while empty < 2 and time.monotonic() < deadline:
        empty = 0 if _kill_leftovers(token, sorted(sessions)) else empty + 1
        time.sleep(0.2)
