from __future__ import annotations

import yaml

from studio.brief import Brief
from studio.prompts import candidate_seeds, compile_prompt, compose
from studio.specs import Catalog

from .conftest import EXAMPLE_BRIEF


def _brief(**beat_overrides) -> Brief:
    d = yaml.safe_load(EXAMPLE_BRIEF.read_text())
    d["beats"][0].update(beat_overrides)
    return Brief.model_validate(d)


def _compile(brief: Brief, i: int = 0, channels=("youtube-1080p", "banner-300x250")):
    cat = Catalog()
    return compile_prompt(brief, brief.beats[i], cat.style(brief.style_pack), [cat.spec(c) for c in channels])


def test_same_inputs_same_record_and_hash() -> None:
    a, b = _compile(_brief()), _compile(_brief())
    assert a.canonical() == b.canonical()
    assert a.hash == b.hash and len(a.hash) == 64


def test_every_input_changes_the_hash() -> None:
    base = _compile(_brief()).hash
    assert _compile(_brief(mood="stormy")).hash != base
    assert _compile(_brief(), channels=("youtube-1080p",)).hash != base
    other_style = _brief()
    other_style = other_style.model_copy(update={"style_pack": "neon-night"})
    assert _compile(other_style).hash != base


def test_record_fields() -> None:
    brief = _brief()
    r = _compile(brief)
    style = Catalog().style("golden-hour")
    assert r.positive.startswith("a hiker on a ridge at sunrise, a woman in her thirties")  # character sheet cast
    for tok in style.look_tokens:
        assert tok in r.positive and tok in r.style_tokens
    assert "logos" in r.negative and "watermark" in r.negative  # beat disallowed + pack negatives
    assert r.palette == style.palette
    assert r.characters == ["hiker"]
    assert "clean empty right area for text" in r.positive


def test_composition_hints() -> None:
    c = compose(_brief(composition="wide shot, subject left third, copy space right").beats[0])
    assert c.focus == (0.3333, 0.5) and c.shot_size == "wide" and c.copy_space == "right"
    assert c.copy_rect is not None and c.copy_rect[0] > c.focus[0]
    c = compose(_brief(composition="close-up, copy space top").beats[0])
    assert c.shot_size == "close-up" and c.copy_space == "top" and c.focus[1] > 0.5
    assert c.copy_rect is not None and c.copy_rect[3] < c.focus[1]
    c = compose(_brief(composition="", focus=(0.8, 0.2), copy_space="none").beats[0])
    assert c.focus == (0.8, 0.2) and c.copy_rect is None


def test_seeds_distinct_and_reproducible() -> None:
    s = candidate_seeds(42, "b01", 16)
    assert len(set(s)) == 16 and s == candidate_seeds(42, "b01", 16)
    assert s != candidate_seeds(42, "b02", 16)
    assert all(0 <= x < 2**31 for x in s)


def test_unbudgeted_record_is_the_pre_budget_document() -> None:
    # The procedural backend has no tokenizer: no budget, and the canonical document has
    # exactly the keys it had before budgets existed, so its hash (and every stored
    # candidate's recipe that names it) is unchanged.
    r = _compile(_brief())
    assert r.budget is None
    assert set(r.canonical()) == {
        "schema", "beat_id", "positive", "negative", "style_tokens", "subject", "environment", "mood",
        "palette", "text_color", "composition", "camera", "channels", "reference_images", "characters",
        "code_version"}
    assert r.positive.endswith("35mm film look, clean empty right area for text")  # nothing cut
