"""The structured prompt compiler: beat + style pack + channels -> a prompt record.

A prompt record is everything a keyframe backend needs to know about *what* to make,
and nothing about *how* (seed, steps, model are per candidate). It is canonical JSON
with a content hash: same inputs, same record, same hash.

**Token budget.** A keyframe model reads only so many prompt tokens (77 for the CLIP
encoders of SD 1.5 and SDXL; a T5 ``max_sequence_length`` for SD3/FLUX entries that set
it, see ``studio.tokens``). Past that the pipeline silently drops the rest, which is
where the style and copy-space words are. So when the run has a keyframe model the
compiler fits the positive and negative prompts to it, counted with the model's own
tokenizer, and records what it left out in ``budget``. Each field is one part (each style
pack look token and each negative is a part of its own); parts are kept in this priority
order, and the first part that does not fit is cut *with every part after it*, so what is
cut is always the least important tail, never a hole in the middle:

1. ``subject`` (never cut: a subject longer than the budget is an error to fix in the brief)
2. ``copy_space`` (the "clean empty ... area for text" hint: the layout depends on it)
3. ``composition``
4. ``characters.<id>`` (the cast's descriptions, in the beat's order)
5. ``environment``
6. ``mood``
7. ``style`` (the beat's own style: a per-shot instruction, more specific than the pack's)
8. ``style_pack`` look tokens, in the pack's order (its first words matter most)

Negative: the beat's ``disallowed`` items first, then the pack's ``negative_tokens``.
Kept parts stay in the reading order of the unbudgeted prompt, so a prompt that fits is
unchanged. The procedural backend has no tokenizer: no budget is applied and the record
has no ``budget`` key (its canonical document, and so its hash, is as it was before
budgets existed).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from studio.assets import resolve_asset
from studio.brief import Beat, Brief
from studio.context import ShotPlan, StageEnv
from studio.errors import StudioError
from studio.models import ModelEntry
from studio.specs import ChannelSpec, StylePack
from studio.tokens import TokenBudget
from studio.versioning import schema_string

CODE_VERSION = "prompts.1"

# Words in the composition text and where they put the subject (fractions of the frame).
_X_WORDS = [
    (r"\bleft third\b", 1 / 3), (r"\bright third\b", 2 / 3),
    (r"\b(far )?left\b", 0.3), (r"\b(far )?right\b", 0.7),
    (r"\bcent(er|re)(ed)?\b", 0.5),
]
_Y_WORDS = [
    (r"\b(top|upper) third\b", 0.4), (r"\b(bottom|lower) third\b", 0.6),
    (r"\b(top|upper|high)\b", 0.42), (r"\b(bottom|lower|low)\b", 0.58),
]
_SIZE_WORDS = [
    (r"\b(extreme close[- ]?up|macro|ecu)\b", "extreme-close-up", 0.55),
    (r"\b(close[- ]?up|cu|tight)\b", "close-up", 0.42),
    (r"\b(medium|mid)( shot)?\b", "medium", 0.3),
    (r"\b(wide|establishing|long shot|ws)\b", "wide", 0.18),
]
_OPPOSITE = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}


class Composition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    focus: tuple[float, float]
    shot_size: str
    subject_scale: float  # subject height as a fraction of the frame
    copy_space: str  # left/right/top/bottom/none
    copy_rect: tuple[float, float, float, float] | None  # x0, y0, x1, y1 fractions


class PromptRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: str = "PromptRecord.1"
    beat_id: str
    positive: str
    negative: str
    style_tokens: list[str]
    subject: str
    environment: str
    mood: str
    palette: list[str]
    text_color: str
    composition: Composition
    camera: str
    channels: list[str]
    reference_images: list[str]  # sha256 of the bytes, never paths
    characters: list[str]
    code_version: str = CODE_VERSION
    # {tokenizer, encoder, max_tokens, used, wanted, cut, negative_used, negative_cut};
    # None (and absent from the canonical document) when the backend has no tokenizer.
    budget: dict[str, Any] | None = None

    def canonical(self) -> dict[str, Any]:
        d = self.model_dump(mode="json")
        d["schema"] = d.pop("schema_")
        if d["budget"] is None:
            del d["budget"]  # unbudgeted records hash exactly as before budgets existed
        return d

    @property
    def hash(self) -> str:
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


def _find(text: str, table: list[tuple[str, float]], default: float) -> float:
    for pattern, value in table:
        if re.search(pattern, text):
            return value
    return default


def compose(beat: Beat) -> Composition:
    text = beat.composition.lower()
    size_name, scale = "medium", 0.3
    for pattern, name, s in _SIZE_WORDS:
        if re.search(pattern, text):
            size_name, scale = name, s
            break
    copy = beat.copy_space
    if copy is None:
        m = re.search(r"(copy|text|negative) space (on the |at the |to the )?(left|right|top|bottom)", text)
        copy = m.group(3) if m else "none"
    # The subject sits opposite its copy space unless told otherwise.
    default_x = {"left": 2 / 3, "right": 1 / 3}.get(copy, 0.5)
    default_y = {"top": 0.58, "bottom": 0.42}.get(copy, 0.5)
    subject_text = re.sub(r"(copy|text|negative) space[^,;.]*", "", text)
    if beat.focus is not None:
        focus = (float(beat.focus[0]), float(beat.focus[1]))
    else:
        focus = (_find(subject_text, _X_WORDS, default_x), _find(subject_text, _Y_WORDS, default_y))
    # Keep the copy area clear of the subject: half its size plus a margin from the focus.
    gap = max(0.14, scale * 0.45 + 0.04)
    rect: tuple[float, float, float, float] | None
    if copy == "left":
        rect = (0.06, 0.3, max(0.2, focus[0] - gap), 0.7)
    elif copy == "right":
        rect = (min(0.8, focus[0] + gap), 0.3, 0.94, 0.7)
    elif copy == "top":
        rect = (0.25, 0.24, 0.75, max(0.3, focus[1] - gap))
    elif copy == "bottom":
        rect = (0.25, min(0.7, focus[1] + gap), 0.75, 0.76)
    else:
        rect = None
    return Composition(
        focus=(round(focus[0], 4), round(focus[1], 4)),
        shot_size=size_name,
        subject_scale=scale,
        copy_space=copy,
        copy_rect=tuple(round(v, 4) for v in rect) if rect else None,  # type: ignore[arg-type]
    )


def _join(parts: list[str]) -> str:
    return ", ".join(p.strip() for p in parts if p and p.strip())


# (field, text) in reading order; the priority is a separate ranking (module docstring).
Part = tuple[str, str]
_PRIORITY = ("subject", "copy_space", "composition", "characters", "environment", "mood", "style",
             "style_pack")
_NEGATIVE_PRIORITY = ("disallowed", "negative")


def _fit(parts: list[Part], priority: tuple[str, ...], budget: TokenBudget) -> tuple[str, list[Part], int]:
    """The longest priority-ordered prefix of ``parts`` whose prompt (in reading order)
    fits ``budget``: (prompt, parts cut in priority order, tokens used)."""
    parts = [(f, t.strip()) for f, t in parts if t and t.strip()]
    ranked = sorted(range(len(parts)), key=lambda i: (priority.index(parts[i][0].split(".")[0]), i))
    kept: list[int] = []
    used = budget.count("")
    for n, i in enumerate(ranked):
        text = _join([parts[j][1] for j in sorted([*kept, i])])
        count = budget.count(text)
        if count > budget.max_tokens:
            return _join([parts[j][1] for j in sorted(kept)]), [parts[j] for j in ranked[n:]], used
        kept.append(i)
        used = count
    return _join([p[1] for p in parts]), [], used


def compile_prompt(
    brief: Brief,
    beat: Beat,
    style: StylePack,
    channels: list[ChannelSpec],
    reference_hashes: list[str] | None = None,
    budget: TokenBudget | None = None,
) -> PromptRecord:
    """The prompt record of ``beat``. With ``budget`` (the keyframe model's, from
    ``studio.tokens.budget_for``) the prompts are fitted to it (module docstring)."""
    comp = compose(beat)
    cast = [c for c in brief.characters if c.id in beat.characters]
    copy_hint = f"clean empty {comp.copy_space} area for text" if comp.copy_space != "none" else ""
    positive_parts: list[Part] = [
        ("subject", beat.subject),
        *[(f"characters.{c.id}", c.description) for c in cast],
        ("environment", beat.environment),
        ("composition", beat.composition),
        ("mood", f"{beat.mood} mood" if beat.mood else ""),
        ("style", beat.style),
        *[("style_pack", t) for t in style.look_tokens],
        ("copy_space", copy_hint),
    ]
    negative_parts: list[Part] = [*[("negative", t) for t in style.negative_tokens],
                                  *[("disallowed", t) for t in beat.disallowed]]
    record_budget: dict[str, Any] | None = None
    if budget is None:
        positive = _join([t for _, t in positive_parts])
        negative = _join([t for _, t in negative_parts])
    else:
        subject = budget.count(_join([beat.subject]))
        if subject > budget.max_tokens:
            raise StudioError(
                f"the subject is {subject} tokens but the keyframe model reads at most "
                f"{budget.max_tokens} ({budget.encoder} tokenizer, start and end tokens included)",
                fix="shorten the beat's subject; put details in environment, composition or style",
                stage="prompts", shot=beat.id, field=f"beats[{brief.beats.index(beat)}].subject")
        wanted = budget.count(_join([t for _, t in positive_parts]))
        positive, cut, used = _fit(positive_parts, _PRIORITY, budget)
        negative, negative_cut, negative_used = _fit(negative_parts, _NEGATIVE_PRIORITY, budget)
        record_budget = {
            **budget.describe(),
            "used": used,
            "wanted": wanted,
            "cut": [{"field": f, "text": t} for f, t in cut],
            "negative_used": negative_used,
            "negative_cut": [{"field": f, "text": t} for f, t in negative_cut],
        }
    return PromptRecord(
        schema_=schema_string("PromptRecord"),
        beat_id=beat.id,
        positive=positive,
        negative=negative,
        style_tokens=list(style.look_tokens),
        subject=beat.subject,
        environment=beat.environment,
        mood=beat.mood,
        palette=list(style.palette),
        text_color=style.text_color,
        composition=comp,
        camera=beat.camera or style.camera,
        channels=sorted(c.name for c in channels),
        reference_images=sorted(reference_hashes or []),
        characters=[c.id for c in cast],
        budget=record_budget,
    )


# -- the stage ----------------------------------------------------------------------


def candidate_seeds(base_seed: int, beat_id: str, count: int) -> list[int]:
    """Distinct, recorded, reproducible seeds per beat."""
    seeds: list[int] = []
    i = 0
    while len(seeds) < count:
        h = hashlib.sha256(f"{base_seed}:{beat_id}:{i}".encode()).digest()
        s = int.from_bytes(h[:4], "big") & 0x7FFFFFFF
        if s not in seeds:
            seeds.append(s)
        i += 1
    return seeds


def planned_beats(brief: Brief, specs: list[ChannelSpec]) -> list[Beat]:
    """The beats a run makes shots of, in brief order: every beat when a video channel
    shows the whole spot; for stills alone, only the beats a still channel is made from
    (``stills``, else the hero beat), so no candidates are drawn for frames nobody uses."""
    if any(s.kind == "video" for s in specs):
        return list(brief.beats)
    used = {brief.still_beat(s.name).id for s in specs if s.kind == "still"}
    return [b for b in brief.beats if b.id in used]


@dataclass
class PromptsInputs:
    brief: Brief
    brief_path: Path
    brief_dir: Path
    specs: list[ChannelSpec]
    style: StylePack
    keyframe_model: ModelEntry | None
    edit_rate: Fraction


@dataclass
class PromptsOutputs:
    shots: list[ShotPlan]


def plan_shots(env: StageEnv, inputs: PromptsInputs) -> PromptsOutputs:
    """Stage ``prompts``: one shot per planned beat (``planned_beats``), each with its
    prompt record and seeds, recorded. ``position`` stays the beat's place in the brief."""
    from studio import db

    shots = compile_shots(inputs, run_id=env.run_id, settings=env.settings, warn=env.warn,
                          keep=env.store.put_file)
    video = any(s.kind == "video" for s in inputs.specs)
    rate = inputs.edit_rate
    with env.session() as s:
        for shot in shots:
            for doc, phash in [(shot.prompt, shot.prompt_hash), *((r["prompt"], r["prompt_hash"]) for r in shot.rounds)]:
                if s.get(db.PromptRecordRow, phash) is None:
                    s.add(db.PromptRecordRow(hash=phash, beat_id=shot.beat_id, document=doc))
                    s.flush()  # a round may share its prompt with another: add each once
            s.add(db.Shot(
                id=shot.shot_id, run_id=env.run_id, beat_id=shot.beat_id,
                kind="video" if video else "still", position=shot.position,
                duration=shot.duration, rate=f"{rate.numerator}/{rate.denominator}",
                frames=shot.frames, handles=shot.handles, focus_x=shot.focus[0], focus_y=shot.focus[1],
                prompt_hash=shot.prompt_hash,
            ))
            env.reporter.advance("prompts", shot=shot.beat_id)
    return PromptsOutputs(shots=shots)


def compile_shots(inputs: PromptsInputs, *, run_id: str, settings: Any, warn: Callable[[str], None],
                  keep: Callable[[Path], Any]) -> list[ShotPlan]:
    """The shots of the brief and their prompt records, recording nothing: `studio plan`
    compiles them too. ``keep(path)`` returns the reference image's MediaRef (the stage
    puts it in the store; the plan only hashes it)."""
    from studio.tokens import budget_for

    brief = inputs.brief
    planned = {b.id for b in planned_beats(brief, inputs.specs)}
    # Fitted to the keyframe model's tokenizer; the procedural backend has none.
    model = inputs.keyframe_model
    budget = budget_for(model) if model is not None else None
    shots = []
    for pos, beat in enumerate(brief.beats):
        if beat.id not in planned:
            continue
        refs = []
        for ref in beat.reference_images + [
            r for c in brief.characters if c.id in beat.characters for r in c.reference_images
        ]:
            # Checked again at the copy, not only at the brief check: a link swapped in
            # between must not carry a file from outside the allowed folders into the store.
            path = resolve_asset(ref, inputs.brief_dir, field="reference_images", kind="image",
                                 settings=settings, source=str(inputs.brief_path), stage="prompts",
                                 project=brief.project)  # its uploads folder (POST /v1/uploads)
            refs.append(keep(path).sha256)
        record = compile_prompt(brief, beat, inputs.style, inputs.specs, refs, budget)
        if record.budget and record.budget["cut"] and model is not None:
            warn(f"beat {beat.id}: the prompt is {record.budget['wanted']} tokens, "
                 f"model {model.id!r} reads {record.budget['max_tokens']}; left out: "
                 + "; ".join(f"{c['field']} ({c['text']!r})" for c in record.budget["cut"]))
        frames = max(1, round(beat.duration * inputs.edit_rate))
        rounds = []
        for k, note in enumerate(beat.more, start=1):
            # The note steers what is drawn: it joins the subject (the prompt's lead), and the
            # round has seeds of its own, so its candidates are new ones beside the first.
            steered = beat.model_copy(update={"subject": f"{beat.subject}; {note}"})
            r = compile_prompt(brief, steered, inputs.style, inputs.specs, refs, budget)
            rounds.append({"note": note, "prompt": r.canonical(), "prompt_hash": r.hash,
                           "seeds": candidate_seeds(brief.base_seed, f"{beat.id}#more{k}", brief.candidates)})
        shots.append(ShotPlan(
            shot_id=f"{run_id}-{beat.id}",
            beat_id=beat.id,
            position=pos,
            duration=beat.duration,
            frames=frames,
            handles=brief.handles,
            prompt=record.canonical(),
            prompt_hash=record.hash,
            focus=tuple(record.composition.focus),  # type: ignore[arg-type]
            camera=record.camera,
            seeds=candidate_seeds(brief.base_seed, beat.id, brief.candidates),
            rounds=rounds,
        ))
    return shots
