"""Ray actors, one policy for every stage (keyframes, clips, voices, music models).

* Names. An actor of a run is named for the run (``studio-<prefix>-<key>-<run id>-<pool>-<i>``):
  two renders on one cluster never find, share or kill each other's actors. Only a model
  actor kept warm (``keep_warm``: on a cluster, with ``keep_actors_warm``) is named per
  model (``studio-<prefix>-<key>-<i>``, the key a hash of the entry and its settings), so
  the next run, or a run beside this one, finds the model loaded; it is detached and no
  run ever kills it. A changed entry hashes to a new name, never a stale model.
* Lifetime. A stage starts its actors through an ``ActorGroup`` used as a context
  manager: on success, on failure and on Ctrl-C the run's own actors are killed when the
  block ends. The run itself is a scope too (``enter_run``/``leave_run``): a group that
  was never closed is closed when the run ends, and groups started without a run id
  take the current run's.
* Errors. A StudioError raised inside an actor (or a Ray task) reaches the user as
  itself, with its own line; anything else becomes a StageError naming what failed and
  the exception's first line (``user_error``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from studio.errors import StageError, StudioError

NAMESPACE = "studio"
# A crashed actor is restarted and its in-flight task retried (at-least-once); drivers
# record each result once, when it arrives.
ACTOR_OPTIONS: dict[str, Any] = {"max_restarts": 2, "max_task_retries": 2}


@dataclass
class _RunScope:
    run_id: str
    groups: list[ActorGroup] = field(default_factory=list)


_current: ContextVar[_RunScope | None] = ContextVar("studio_run_actors", default=None)


def enter_run(run_id: str) -> Token[_RunScope | None]:
    """Make ``run_id`` the run whose actors the stages start (until ``leave_run``)."""
    return _current.set(_RunScope(run_id))


def leave_run(token: Token[_RunScope | None]) -> None:
    """The run is over (finished, failed or cancelled): any of its groups still open are
    closed, so none of its own actors outlives it."""
    scope = _current.get()
    try:
        if scope is not None:
            for group in scope.groups:
                group.close()
    finally:
        _current.reset(token)


def current_run_id() -> str | None:
    scope = _current.get()
    return scope.run_id if scope else None


def keep_warm(settings: Any) -> bool:
    """Whether model actors stay warm between runs. They pay off on a cluster
    (``RAY_ADDRESS``); a local Ray ends with the process that started it."""
    return bool(os.environ.get("RAY_ADDRESS")) and bool(getattr(settings, "keep_actors_warm", False))


def entry_key(doc: Any) -> str:
    """A short hash of what the actor is built from (entry, options, device)."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:12]


class ActorGroup:
    """The actors one stage of one run starts, and their end.

    ``with ActorGroup("voice", keep=...) as group: actor = group.start(...)``; the run's
    own actors are killed when the block ends, however it ends. Kept actors (``keep``)
    are shared by name and left running.
    """

    def __init__(self, stage: str, *, run_id: str | None = None, keep: bool = False) -> None:
        self.stage = stage
        self.keep = keep
        self.run_id = run_id or current_run_id() or f"local-{uuid.uuid4().hex[:8]}"
        # Unique per group as well as per run: a later stage of the same run never picks
        # up an actor of an earlier group that is still being killed.
        self.token = uuid.uuid4().hex[:6]
        self.actors: list[Any] = []
        self.names: list[str] = []
        self.closed = False
        scope = _current.get()
        if scope is not None:
            scope.groups.append(self)

    def name(self, prefix: str, key: str, index: int) -> str:
        if self.keep:
            return f"studio-{prefix}-{key}-{index}"
        return f"studio-{prefix}-{key}-{self.run_id}-{self.token}-{index}"

    def start(self, cls: type, *args: Any, prefix: str, key: str, resources: dict[str, float],
              index: int = 0, max_concurrency: int = 1) -> Any:
        """An actor of ``cls(*args)`` with ``resources``; a kept one is found by name if
        it is already running (its model loaded)."""
        import ray

        name = self.name(prefix, key, index)
        opts: dict[str, Any] = {"name": name, "namespace": NAMESPACE, "max_concurrency": max_concurrency}
        if self.keep:
            opts.update(get_if_exists=True, lifetime="detached")
        remote = ray.remote(**{**ACTOR_OPTIONS, **resources})(cls)
        actor = remote.options(**opts).remote(*args)
        self.actors.append(actor)
        self.names.append(name)
        return actor

    def get(self, refs: list[Any], *, what: str, shot: str | None = None, fix: str | None = None) -> list[Any]:
        """``ray.get`` with errors as the user should see them (``user_error``)."""
        import ray

        try:
            return ray.get(refs)
        except ray.exceptions.RayError as e:
            raise user_error(e, what=what, stage=self.stage, shot=shot, fix=fix) from e

    def close(self) -> None:
        """Kill this run's actors (kept ones are left warm for the next run)."""
        if self.closed:
            return
        self.closed = True
        if self.keep:
            return
        import ray

        for actor in self.actors:
            # Closing runs in ``finally`` blocks: it must never hide the error that got here.
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)

    def __enter__(self) -> ActorGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def first_line(e: BaseException | Any) -> str:
    """``Type: first line`` of an exception, cut to 300 characters."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:300]}" if text else type(e).__name__


def _last_line(cause: Any) -> str:
    # An actor's init error arrives as a traceback; its last line says what went wrong.
    lines = [ln.strip() for ln in str(cause).strip().splitlines() if ln.strip()]
    return lines[-1][:400] if lines else type(cause).__name__


def user_error(e: BaseException, *, what: str, stage: str, shot: str | None = None,
               fix: str | None = None) -> StudioError:
    """The error the user sees for a failed Ray task or actor call.

    A task's own exception travels as the RayTaskError's ``cause``: a StudioError there
    is returned as it was raised (its own line: stage, shot, field, fix). An actor that
    died (its constructor, i.e. the model load, raised, or it crashed more often than it
    may restart) says so with the original error's last line."""
    import ray

    cause = getattr(e, "cause", None)
    if isinstance(cause, StudioError):
        return cause
    if isinstance(e, ray.exceptions.RayActorError):
        inner = getattr(cause, "cause", None)
        if isinstance(inner, StudioError):
            return inner
        died = cause or getattr(e, "error_msg", None) or e
        return StageError(f"{what}: the actor died: {_last_line(died)}", stage=stage, shot=shot,
                          fix="see the worker log (ray logs); check the entry's source and that "
                          "the weights load")
    if isinstance(cause, BaseException):
        return StageError(f"{what} failed: {first_line(cause)}", stage=stage, shot=shot,
                          fix=fix or "check the settings and the brief's inputs")
    return StageError(f"{what} failed: {first_line(e)}", stage=stage, shot=shot,
                      fix=fix or "see the worker log (ray logs)")
