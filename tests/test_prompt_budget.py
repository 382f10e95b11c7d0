"""Prompts fitted to the keyframe model's own tokenizer (studio/tokens.py, the budget in
studio/prompts.py), with the tiny random-weight SD pipeline's CLIP tokenizer as saved by
``save_pretrained`` and loaded back by the real code. The tiny vocabulary has no merges to
speak of, so it counts about a token per character: the example's first beat is far over
77 tokens, as a long prompt is for the real CLIP tokenizer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from studio.brief import Brief
from studio.errors import StudioError
from studio.models import ModelEntry, ModelRegistry
from studio.prompts import _PRIORITY, compile_prompt
from studio.specs import Catalog
from studio.tokens import TokenBudget, budget_for

from .conftest import EXAMPLE_BRIEF


@pytest.fixture(scope="module")
def entry(models_dir: Path) -> ModelEntry:
    return ModelRegistry(models_dir).get("tiny-sd")


@pytest.fixture(scope="module")
def clip(tiny: dict[str, Path]):
    """The tiny model's tokenizer, loaded here on its own: the independent count."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(tiny["sd"] / "tokenizer"))


def _count(tok, text: str) -> int:
    return len(tok(text, truncation=False)["input_ids"])


def _brief(**beat_overrides) -> Brief:
    d = yaml.safe_load(EXAMPLE_BRIEF.read_text())
    d["beats"][0].update(beat_overrides)
    return Brief.model_validate(d)


def _compile(brief: Brief, budget: TokenBudget | None):
    cat = Catalog()
    return compile_prompt(brief, brief.beats[0], cat.style(brief.style_pack),
                          [cat.spec("youtube-1080p")], budget=budget)


def _parts(record) -> list[tuple[str, str]]:
    """The (field, text) parts of the unbudgeted prompt, rebuilt from the record's
    inputs in reading order (what the compiler joins)."""
    brief = _brief()
    beat = brief.beats[0]
    style = Catalog().style(brief.style_pack)
    return [("subject", beat.subject), ("characters.hiker", brief.characters[0].description),
            ("environment", beat.environment), ("composition", beat.composition),
            ("mood", f"{beat.mood} mood"), *[("style_pack", t) for t in style.look_tokens],
            ("copy_space", f"clean empty {record.composition.copy_space} area for text")]


def test_budget_is_the_model_tokenizer_and_loaded_once(entry: ModelEntry) -> None:
    budget = budget_for(entry)
    assert (budget.max_tokens, budget.encoder) == (77, "clip")
    assert budget.names == ("tokenizer:CLIPTokenizer",)  # the class model_index.json names
    assert budget_for(entry).tokenizers[0] is budget.tokenizers[0]  # cached per process


def test_fitted_prompt_fits_keeps_subject_and_cuts_lowest_priority(entry: ModelEntry, clip) -> None:
    full = _compile(_brief(), None)
    assert _count(clip, full.positive) > 200  # the example's first beat is far over 77 tokens
    r = _compile(_brief(), budget_for(entry))
    b = r.budget
    assert b is not None
    used = _count(clip, r.positive)
    assert used <= 77 and b["used"] == used and b["max_tokens"] == 77
    assert b["wanted"] == _count(clip, full.positive)
    assert r.positive.startswith("a hiker on a ridge at sunrise")
    assert "clean empty right area for text" in r.positive  # copy space: second priority
    assert "golden hour light" not in r.positive  # style pack words: last priority

    # The record lists exactly what was cut: the full prompt without the cut parts is the
    # fitted prompt, part for part.
    cut = [(c["field"], c["text"]) for c in b["cut"]]
    kept = [p for p in _parts(r) if p not in cut]
    assert ", ".join(t for _, t in kept) == r.positive
    assert len(kept) + len(cut) == len(_parts(r))
    # What is cut is the lowest-priority tail, and it was cut for a reason: the most
    # important cut part does not fit beside what was kept.
    rank = [_PRIORITY.index(f.split(".")[0]) for f, _ in [*kept, *cut]]
    assert max(rank[:len(kept)]) < min(rank[len(kept):])
    assert [f for f, _ in cut][:4] == ["composition", "characters.hiker", "environment", "mood"]
    order = {p: i for i, p in enumerate(_parts(r))}
    with_next = sorted([*kept, cut[0]], key=order.__getitem__)
    assert _count(clip, ", ".join(t for _, t in with_next)) > 77
    # The negative is fitted too: the beat's own disallowed items first.
    assert _count(clip, r.negative) <= 77 and r.negative.endswith("logos, text")
    assert b["negative_used"] == _count(clip, r.negative)


def test_example_first_beat_in_77_tokens_keeps_subject_and_copy_space(entry: ModelEntry, clip) -> None:
    # The example beat as written: composition "wide shot, subject left third, copy space right".
    r = _compile(_brief(), budget_for(entry))
    assert _count(clip, r.positive) <= 77
    assert r.subject in r.positive and "right area for text" in r.positive
    assert r.composition.copy_space == "right" and r.budget["cut"]


def test_budget_is_deterministic_and_only_where_a_tokenizer_is(entry: ModelEntry) -> None:
    a, b = _compile(_brief(), budget_for(entry)), _compile(_brief(), budget_for(entry))
    assert a.canonical() == b.canonical() and a.hash == b.hash
    assert a.budget["tokenizer"] == ["tokenizer:CLIPTokenizer"]  # names, never local paths
    plain = _compile(_brief(), None)
    assert plain.budget is None and "budget" not in plain.canonical()
    assert plain.hash != a.hash
    # A beat that fits is left as it is; the record says nothing was cut.
    short = _brief(environment="", composition="", mood="", characters=[])
    style = Catalog().style("golden-hour")
    fits = compile_prompt(short, short.beats[0], style.model_copy(update={"look_tokens": ["warm"]}),
                          [Catalog().spec("youtube-1080p")], budget=budget_for(entry))
    assert fits.positive == "a hiker on a ridge at sunrise, warm" and fits.budget["cut"] == []


def test_a_subject_longer_than_the_budget_is_refused(entry: ModelEntry) -> None:
    with pytest.raises(StudioError) as err:
        _compile(_brief(subject="a hiker " * 20), budget_for(entry))
    e = err.value
    assert (e.stage, e.shot, e.field) == ("prompts", "b01-sunrise", "beats[0].subject")
    assert "but the keyframe model reads at most 77 (clip tokenizer" in e.what
    assert e.fix.startswith("shorten the beat's subject")


def _t5_model(folder: Path, tiny: dict[str, Path], max_sequence_length: int | None) -> ModelEntry:
    """A FLUX-shaped folder (CLIP tokenizer + T5 tokenizer_2), tokenizers only."""
    from transformers import T5Tokenizer

    shutil.copytree(tiny["sd"] / "tokenizer", folder / "tokenizer", dirs_exist_ok=True)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [(c, -3.0) for c in letters] + [("\u2581" + c, -2.5) for c in letters]
    T5Tokenizer(vocab=vocab, extra_ids=0).save_pretrained(str(folder / "tokenizer_2"))
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "FluxPipeline", "tokenizer": ["transformers", "CLIPTokenizer"],
        "tokenizer_2": ["transformers", "T5TokenizerFast"], "transformer": ["diffusers", "X"]}))
    call_args = {"max_sequence_length": max_sequence_length} if max_sequence_length else {}
    return ModelEntry.model_validate({
        "schema": "ModelEntry.1", "id": "tiny-flux", "kind": "text-to-image", "backend": "diffusers-image",
        "source": {"path": str(folder)}, "licence": "test", "provenance": "test",
        "usage_classes": ["experiment"], "call_args": call_args})


def test_long_prompt_encoder_budget_is_its_max_sequence_length(tmp_path: Path, tiny: dict[str, Path]) -> None:
    budget = budget_for(_t5_model(tmp_path / "flux", tiny, 300))
    assert (budget.max_tokens, budget.encoder) == (300, "t5")
    assert budget.names == ("tokenizer_2:T5TokenizerFast",)
    r = _compile(_brief(), budget)
    assert r.budget["cut"] == [] and r.positive == _compile(_brief(), None).positive
    assert r.budget["used"] == _count(budget.tokenizers[0], r.positive) <= 300
    # Without max_sequence_length in the entry the CLIP length is the one we can be sure of.
    assert budget_for(_t5_model(tmp_path / "flux77", tiny, None)).max_tokens == 77


def test_hub_source_reads_only_the_cached_tokenizer(tiny: dict[str, Path], entry: ModelEntry,
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hf

    commit = "0123456789abcdef0123456789abcdef01234568"
    snap = tmp_path / "hub" / "models--studio-test--tok-only" / "snapshots" / commit
    # Only model_index.json and the tokenizer are cached: no weights are needed.
    shutil.copytree(tiny["sd"] / "tokenizer", snap / "tokenizer")
    shutil.copy(tiny["sd"] / "model_index.json", snap / "model_index.json")
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    hub = entry.model_copy(update={"source": entry.source.model_validate(
        {"hub_id": "studio-test/tok-only", "revision": commit})})
    assert budget_for(hub).max_tokens == 77
    missing = entry.model_copy(update={"source": entry.source.model_validate(
        {"hub_id": "studio-test/not-cached", "revision": commit})})
    with pytest.raises(StudioError, match="is not in the local hub cache, so its tokenizer") as err:
        budget_for(missing)
    assert (err.value.stage, err.value.field) == ("prompts", "keyframe_model")
    assert err.value.fix.startswith(f"fetch it first (`hf download studio-test/not-cached --revision {commit}`")


def test_prompts_stage_fits_to_the_runs_keyframe_model(entry: ModelEntry, tmp_path: Path, settings) -> None:
    """The stage takes the budget from its ``keyframe_model`` input, stores the fitted record
    and warns, per beat, what was left out; without a model nothing is fitted."""
    from fractions import Fraction

    from studio import db
    from studio.context import RunContext
    from studio.pipeline import STAGES
    from studio.progress import QuietReporter
    from studio.store import Store

    prompts_stage = next(st for st in STAGES if st.name == "prompts")

    brief = _brief()
    cat = Catalog()
    engine = db.make_engine(f"sqlite:///{tmp_path / 'studio.db'}")
    db.init_db(engine)

    def run(model: ModelEntry | None) -> RunContext:
        run_id = f"run-{model.id if model else 'procedural'}"
        with db.Session(engine) as s:  # the rows the pipeline writes before its stages
            bv = db.record_brief(s, db.get_or_create_project(s, brief.project), brief.campaign,
                                 brief.content_hash(), brief.model_dump(mode="json", by_alias=True),
                                 brief.schema_, str(EXAMPLE_BRIEF))
            s.add(db.Run(id=run_id, brief_version_id=bv.id, out_dir=str(tmp_path), code_version="test",
                         settings={}))
            s.commit()
            bv_id = bv.id
        ctx = RunContext(
            run_id=run_id, brief=brief, brief_path=EXAMPLE_BRIEF,
            brief_dir=EXAMPLE_BRIEF.parent, brief_version_id=bv_id, version=1, specs=[cat.spec("youtube-1080p")],
            style=cat.style(brief.style_pack), catalog=cat, settings=settings, store=Store(tmp_path / "store"),
            engine=engine, reporter=QuietReporter(), out_dir=tmp_path / "out", work_dir=tmp_path / "work",
            edit_rate=Fraction(25), master_size=(64, 64), keyframe_model=model)
        prompts_stage(ctx)  # as the runner runs it: the declared inputs in, the shots back
        return ctx

    fitted, plain = run(entry), run(None)
    first = fitted.shots[0]
    assert first.prompt["budget"]["max_tokens"] == 77 and first.prompt["budget"]["cut"]
    assert first.prompt == _compile(brief, budget_for(entry)).canonical() | {"channels": ["youtube-1080p"]}
    assert any(w.startswith("beat b01-sunrise: the prompt is ") and "left out: composition (" in w
               for w in fitted.warnings)
    assert "budget" not in plain.shots[0].prompt and plain.warnings == []
    with db.Session(engine) as s:
        assert s.get(db.PromptRecordRow, first.prompt_hash).document["budget"] == first.prompt["budget"]
    engine.dispose()
