"""Stage ``select``: the top-scoring candidate of each beat moves on (auto-selection),
unless a person picked one (``studio select``).

The choice is a movable "selected" pointer with its reason; the candidates themselves
never change. A person's pick is a pointer on an earlier run's shot; a new render makes
new candidate rows (new ids) from the same recipes, so the pick carries over by recipe
hash (or, failing that, by the keyframe's sha256). When the beat changed and no
candidate of this run has the picked recipe, the top score moves on with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from shots.score import rank
from studio import db
from studio.context import CandidateResult, ShotPlan, StageEnv

CODE_VERSION = "select.2"
AUTO_PREFIX = "auto:"  # the reason of a selection made by score (not by a person)


@dataclass
class SelectInputs:
    shots: list[ShotPlan]
    candidates: dict[str, list[CandidateResult]]  # by shot id


@dataclass
class SelectOutputs:
    selected: dict[str, CandidateResult]  # by shot id


def select_candidates(env: StageEnv, inputs: SelectInputs) -> SelectOutputs:
    from shots.score import Score

    selected: dict[str, CandidateResult] = {}
    with env.session() as s:
        for shot in inputs.shots:
            cands = inputs.candidates.get(shot.shot_id, [])
            if not cands:
                continue
            order = rank([Score(c.score, c.components, c.reason) for c in cands])
            best = cands[order[0]]
            runner = cands[order[1]] if len(order) > 1 else None
            why = f"{AUTO_PREFIX} highest score {best.score:.3f} of {len(cands)} ({best.reason})"
            if runner is not None:
                why += f"; next best candidate {runner.index} at {runner.score:.3f}"
            pick = db.latest_pick(s, env.brief_version_id, shot.beat_id, exclude_run=env.run_id)
            if pick is not None:
                ptr, picked = pick
                same = _same_recipe(cands, picked.recipe_hash, ptr.target_sha256)
                if same is not None:
                    best, why = same, db.pick_words(ptr)
                else:
                    env.warn(f"beat {shot.beat_id}: {db.pick_words(ptr)} (candidate {picked.id}), but "
                             "no candidate of this run has its recipe or keyframe (the beat changed "
                             "since): selected by score instead; pick again with `studio select`")
            db.move_pointer(s, "selected", f"shot:{shot.shot_id}", best.candidate_id,
                            best.image.sha256, set_by="auto", reason=why)
            # The run's records (the manifest's selection_reason) say why this one moved on.
            selected[shot.shot_id] = replace(best, reason=why)
            env.reporter.advance("select", shot=shot.beat_id)
    return SelectOutputs(selected=selected)


def _same_recipe(cands: list[CandidateResult], recipe_hash: str, sha256: str) -> CandidateResult | None:
    """This run's candidate made by the picked recipe, else the one with the picked keyframe."""
    for c in cands:
        if c.record.get("recipe_hash") == recipe_hash:
            return c
    for c in cands:
        if c.image.sha256 == sha256:
            return c
    return None
