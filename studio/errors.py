"""One error type for everything a user can get wrong.

A StudioError renders as one line that says where (stage, shot, field, file), what was
wrong, and what to do. The CLI prints it and exits with code 2.
"""

from __future__ import annotations


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
        super().__init__(self.line())

    def line(self) -> str:
        where = []
        if self.source:
            where.append(str(self.source))
        if self.stage:
            where.append(f"stage {self.stage}")
        if self.shot:
            where.append(f"shot {self.shot}")
        if self.field:
            where.append(self.field)
        head = ": ".join(where)
        text = f"{head}: {self.what}" if head else self.what
        if self.fix:
            text += f" — {self.fix}"
        return text

    def lines(self) -> list[str]:
        """The CLI prints every line of an error."""
        return [self.line()]


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
