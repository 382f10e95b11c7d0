"""Stage ``select``: the top-scoring candidate of each beat moves on (auto-selection).

The choice is a movable "selected" pointer with its reason; the candidates themselves
never change. A person can move the pointer later and the next conform uses it.
"""

from __future__ import annotations

from shots.score import rank
from studio import db
from studio.context import RunContext

CODE_VERSION = "select.1"


def select_candidates(ctx: RunContext) -> None:
    from shots.score import Score

    with ctx.session() as s:
        for shot in ctx.shots:
            cands = ctx.candidates.get(shot.shot_id, [])
            if not cands:
                continue
            order = rank([Score(c.score, c.components, c.reason) for c in cands])
            best = cands[order[0]]
            runner = cands[order[1]] if len(order) > 1 else None
            why = f"auto: highest score {best.score:.3f} of {len(cands)} ({best.reason})"
            if runner is not None:
                why += f"; next best candidate {runner.index} at {runner.score:.3f}"
            db.move_pointer(s, "selected", f"shot:{shot.shot_id}", best.candidate_id,
                            best.image.sha256, set_by="auto", reason=why)
            ctx.selected[shot.shot_id] = best
            ctx.reporter.advance("select", shot=shot.beat_id)
