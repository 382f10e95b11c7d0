"""Progress and logs: rich bars per stage for people, JSON lines for machines, or quiet.

Everything goes to stderr so stdout stays for results (paths, tables).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Protocol


class Reporter(Protocol):
    def stage_start(self, stage: str, total: int | None = None) -> None: ...
    def advance(self, stage: str, amount: float = 1, **fields: Any) -> None: ...
    def stage_done(self, stage: str, **fields: Any) -> None: ...
    def event(self, name: str, **fields: Any) -> None: ...
    def warn(self, message: str, **fields: Any) -> None: ...
    def close(self) -> None: ...


class QuietReporter:
    """Prints warnings only."""

    def stage_start(self, stage: str, total: int | None = None) -> None:
        pass

    def advance(self, stage: str, amount: float = 1, **fields: Any) -> None:
        pass

    def stage_done(self, stage: str, **fields: Any) -> None:
        pass

    def event(self, name: str, **fields: Any) -> None:
        pass

    def warn(self, message: str, **fields: Any) -> None:
        print(f"studio: warning: {message}", file=sys.stderr)

    def close(self) -> None:
        pass


class JsonReporter:
    """One JSON object per line: {"ts", "event", "stage", ...}."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr

    def _emit(self, event: str, **fields: Any) -> None:
        rec = {"ts": round(time.time(), 3), "event": event, **fields}
        self.stream.write(json.dumps(rec, default=str) + "\n")
        self.stream.flush()

    def stage_start(self, stage: str, total: int | None = None) -> None:
        self._emit("stage_start", stage=stage, total=total)

    def advance(self, stage: str, amount: float = 1, **fields: Any) -> None:
        self._emit("progress", stage=stage, amount=amount, **fields)

    def stage_done(self, stage: str, **fields: Any) -> None:
        self._emit("stage_done", stage=stage, **fields)

    def event(self, name: str, **fields: Any) -> None:
        self._emit(name, **fields)

    def warn(self, message: str, **fields: Any) -> None:
        self._emit("warning", message=message, **fields)

    def close(self) -> None:
        pass


class RichReporter:
    """A progress bar per stage; the current shot shows in the description."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.fields[stage]:<11}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=self.console,
            transient=False,
        )
        self.tasks: dict[str, Any] = {}
        self.progress.start()

    def stage_start(self, stage: str, total: int | None = None) -> None:
        self.tasks[stage] = self.progress.add_task("", total=total or 1, stage=stage)

    def advance(self, stage: str, amount: float = 1, **fields: Any) -> None:
        task = self.tasks.get(stage)
        if task is None:
            return
        desc = " ".join(f"{k}={v}" for k, v in fields.items() if k in ("shot", "spec", "candidate"))
        self.progress.update(task, advance=amount, description=desc)

    def stage_done(self, stage: str, **fields: Any) -> None:
        task = self.tasks.get(stage)
        if task is not None:
            t = self.progress.tasks[task]
            note = " ".join(f"{k}={v}" for k, v in fields.items())
            self.progress.update(task, completed=t.total, description=note)

    def event(self, name: str, **fields: Any) -> None:
        pass

    def warn(self, message: str, **fields: Any) -> None:
        self.console.print(f"[yellow]warning:[/] {message}")

    def close(self) -> None:
        self.progress.stop()


def make_reporter(quiet: bool, log_json: bool) -> Reporter:
    if log_json:
        return JsonReporter()
    if quiet or not sys.stderr.isatty():
        # Non-interactive and not asked for JSON: plain, quiet but for warnings.
        return QuietReporter() if quiet else PlainReporter()
    return RichReporter()


class PlainReporter(QuietReporter):
    """For logs and CI: a line when a stage starts and ends, and one per unit of work
    (shot, candidate, deliverable) in between, so a long stage never looks hung."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream
        self.t0: dict[str, float] = {}
        self.total: dict[str, int | None] = {}
        self.done: dict[str, float] = {}

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stderr, flush=True)

    def stage_start(self, stage: str, total: int | None = None) -> None:
        self.t0[stage] = time.monotonic()
        self.total[stage] = total
        self.done[stage] = 0
        self._print(f"studio: {stage} ...")

    def advance(self, stage: str, amount: float = 1, **fields: Any) -> None:
        if stage not in self.t0:
            return
        before = self.done[stage]
        self.done[stage] += amount
        total = self.total.get(stage)
        dt = time.monotonic() - self.t0[stage]
        if float(amount).is_integer():
            count = f"{self.done[stage]:g}/{total}" if total else f"{self.done[stage]:g}"
            what = " ".join(f"{k}={v}" for k, v in fields.items() if k in ("shot", "spec", "candidate"))
            self._print(f"studio: {stage} {count} {what} ({dt:.1f}s)".replace("  ", " "))
        elif total:
            # Fractional progress (an encode's frames): a line per tenth, not per update.
            step = int(self.done[stage] * 10 / total + 1e-9)
            if step > int(before * 10 / total + 1e-9):
                self._print(f"studio: {stage} {min(100, step * 10)}% ({dt:.1f}s)")

    def stage_done(self, stage: str, **fields: Any) -> None:
        dt = time.monotonic() - self.t0.get(stage, time.monotonic())
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        self._print(f"studio: {stage} done in {dt:.1f}s {extra}".rstrip())


class LocaleReporter:
    """A later locale's pass of the sound and conform stages, reported as stages of their
    own (``conform fr-FR``): a job's progress lists them after the first locale's, and a
    stage that ran once is never seen to start again."""

    def __init__(self, inner: Reporter, locale: str) -> None:
        self.inner, self.locale = inner, locale

    def _name(self, stage: str) -> str:
        return f"{stage} {self.locale}"

    def stage_start(self, stage: str, total: int | None = None) -> None:
        self.inner.stage_start(self._name(stage), total)

    def advance(self, stage: str, amount: float = 1, **fields: Any) -> None:
        self.inner.advance(self._name(stage), amount, **fields)

    def stage_done(self, stage: str, **fields: Any) -> None:
        self.inner.stage_done(self._name(stage), **fields)

    def event(self, name: str, **fields: Any) -> None:
        self.inner.event(name, **fields)

    def warn(self, message: str, **fields: Any) -> None:
        self.inner.warn(f"{self.locale}: {message}", **fields)

    def close(self) -> None:
        pass
