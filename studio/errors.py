"""One error type for everything a user can get wrong.

A StudioError renders as one line that says where (stage, shot, field, file), what was
wrong, and what to do. The CLI prints it and exits with code 2.
"""

from __future__ import annotations

from typing import Any

# A bad value is quoted so the user can find it, not echoed whole: a 5 MB narration
# refused by its length limit must not come back as 5 MB on stderr.
QUOTE_LIMIT = 60
# Any one part of an error line (a message built from user text included) is cut to this.
PART_LIMIT = 400


def shorten(text: str, limit: int = PART_LIMIT) -> str:
    """``text`` cut in the middle to about ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    keep = max(8, limit - 30)
    head, tail = text[: keep * 2 // 3], text[-(keep // 3):]
    return f"{head}…[{len(text) - len(head) - len(tail):,} characters cut]…{tail}"


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` for an error line, shortened: long strings keep their start and end
    and say their length."""
    if isinstance(value, str) and len(value) > limit:
        keep = max(8, limit - 20)
        return f"{value[: keep * 2 // 3]!r}…{value[-(keep // 3):]!r} ({len(value):,} characters)"
    text = repr(value)
    return text if len(text) <= limit else shorten(text, limit)


class StudioError(Exception):
    """A user-facing error: where, what, and the fix."""

    exit_code = 2

    def __init__(
        self,
        what: str,
        *,
        fix: str = "",
        stage: str | None = None,
        shot: str | None = None,
        field: str | None = None,
        source: str | None = None,
    ) -> None:
        self.what = what
        self.fix = fix
        self.stage = stage
        self.shot = shot
        self.field = field
        self.source = source
        super().__init__(what)

    def __reduce__(self) -> tuple[Any, ...]:
        # Raised inside a Ray actor, the error crosses to the driver by pickle: keep every
        # field (the default would rebuild it from ``args`` alone).
        return (_rebuild, (type(self), self.__dict__))

    def __str__(self) -> str:
        # Built when shown, so a caller that sets ``.source`` or ``.field`` after raising
        # (the brief check adds the file) is shown too.
        return self.line()

    def line(self) -> str:
        where = []
        if self.source:
            where.append(str(self.source))
        if self.stage:
            where.append(f"stage {self.stage}")
        if self.shot:
            where.append(f"shot {self.shot}")
        if self.field:
            where.append(shorten(self.field, 120))
        head = ": ".join(where)
        what = shorten(self.what)
        text = f"{head}: {what}" if head else what
        if self.fix:
            text += f" — {shorten(self.fix)}"
        return text

    def lines(self) -> list[str]:
        """The CLI prints every line of an error."""
        return [self.line()]


def _rebuild(cls: type[StudioError], state: dict[str, Any]) -> StudioError:
    err = cls.__new__(cls)
    err.__dict__.update(state)
    err.args = (state.get("what", ""),)
    return err


class StageError(StudioError):
    """A stage failed on valid input (ffmpeg refused, a backend broke)."""


class ManyErrors(StudioError):
    """Several independent problems in one document, reported together so the user can
    fix them in one pass."""

    def __init__(self, errors: list[StudioError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.what, fix=first.fix, stage=first.stage, shot=first.shot,
                         field=first.field, source=first.source)

    def lines(self) -> list[str]:
        return [e.line() for e in self.errors]


class AwaitingDecision(StudioError):
    """The render stopped at a human gate its brief asks for (``selection: human`` and a
    beat nobody has picked for): nothing is published, the run is recorded ``gated``, and
    a render after the decision goes on from there, every finished step reused. ``gate``
    says what waits on whom (the server's job keeps it as the job's gate)."""

    exit_code = 3  # neither a failure (1, 2) nor a cancel (130, 143): someone has to decide

    def __init__(self, what: str, *, gate: dict[str, Any], **kw: Any) -> None:
        super().__init__(what, **kw)
        self.gate = gate


class ReleaseBlocked(ManyErrors):
    """The release gate (studio.release) blocked the run: a deliverable failed a blocking
    QC check or breaks the policy over its rights. Nothing is published; the run is recorded
    failed with every reason. ``gate`` is what the server's job keeps while it waits at
    ``blocked``: each violation (deliverable, rule, component, reason, fix) and QC failure,
    and the scope an approver's override is recorded for (`studio policy override`)."""

    exit_code = 4  # not bad input (2) nor a person's pending choice (3): the gate said no

    def __init__(self, errors: list[StudioError], *, gate: dict[str, Any]) -> None:
        super().__init__(errors)
        self.gate = gate
