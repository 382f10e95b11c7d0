"""The explained heuristic scorer."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np
import pytest

from shots.backends.procedural import ProceduralBackend, hex_to_rgb
from shots.score import CODE_VERSION, WEIGHTS, Score, rank, score_keyframe
from studio.brief import Brief
from studio.prompts import compile_prompt
from studio.specs import Catalog, ChannelSpec

CHANNELS = ["youtube-1080p", "reels-9x16", "banner-300x250"]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog()


@pytest.fixture(scope="module")
def channels(catalog: Catalog) -> list[ChannelSpec]:
    return [catalog.spec(n) for n in CHANNELS]


def make_prompt(catalog: Catalog, style: str = "golden-hour", **beat: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "id": "b01", "duration": 4, "subject": "a glowing orb", "environment": "ocean",
        "composition": "subject right third, copy space left", "mood": "",
    }
    b.update(beat)
    brief = Brief.model_validate({
        "project": "demo", "campaign": "launch", "purpose": "tests",
        "channels": CHANNELS, "style_pack": style, "beats": [b],
    })
    specs = [catalog.spec(n) for n in brief.channels]
    return compile_prompt(brief, brief.beats[0], catalog.style(style), specs).canonical()


def flat(color: str, w: int = 320, h: int = 240) -> np.ndarray:
    return np.broadcast_to(np.array(hex_to_rgb(color), dtype=np.uint8), (h, w, 3)).copy()


def rect_px(prompt: dict[str, Any], w: int, h: int) -> tuple[slice, slice]:
    x0, y0, x1, y1 = prompt["composition"]["copy_rect"]
    return slice(int(y0 * h), int(y1 * h)), slice(int(x0 * w), int(x1 * w))


def test_score_shape(catalog: Catalog, channels: list[ChannelSpec]) -> None:
    p = make_prompt(catalog)
    s = score_keyframe(flat(p["palette"][0]), p, channels)
    assert CODE_VERSION == "score.1"
    assert set(s.components) == {"palette", "copy_contrast", "safe_clearance"} == set(WEIGHTS)
    assert all(0.0 <= v <= 1.0 for v in s.components.values())
    expected = sum(WEIGHTS[k] * s.components[k] for k in WEIGHTS) / sum(WEIGHTS.values())
    assert s.total == pytest.approx(expected, abs=1e-3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.total = 1.0  # type: ignore[misc]


def test_palette_component(catalog: Catalog, channels: list[ChannelSpec]) -> None:
    p = make_prompt(catalog, "golden-hour")
    on = score_keyframe(flat(p["palette"][2]), p, channels).components["palette"]
    assert on == pytest.approx(1.0)
    # a blend of two adjacent palette colours is close, a green is far, noise is farthest
    a, b = np.array(hex_to_rgb(p["palette"][3])), np.array(hex_to_rgb(p["palette"][4]))
    blend = np.broadcast_to(((a + b) // 2).astype(np.uint8), (240, 320, 3)).copy()
    near = score_keyframe(blend, p, channels).components["palette"]
    green = score_keyframe(flat("#22aa33"), p, channels).components["palette"]
    noise = np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    rough = score_keyframe(noise, p, channels).components["palette"]
    assert on > near > 0.6
    assert green < 0.2 and rough < 0.2


def test_copy_contrast_dark_calm_region_scores_high(catalog: Catalog, channels: list[ChannelSpec]) -> None:
    p = make_prompt(catalog, "golden-hour")  # white text
    img = flat(p["palette"][3])  # light orange everywhere
    ys, xs = rect_px(p, 320, 240)
    img[ys, xs] = hex_to_rgb(p["palette"][0])  # deep navy under the text
    s = score_keyframe(img, p, channels)
    assert s.components["copy_contrast"] >= 0.85, s.reason
    assert "vs #ffffff, calm" in s.reason


def test_copy_contrast_penalises_low_contrast_and_busy(catalog: Catalog, channels: list[ChannelSpec]) -> None:
    p = make_prompt(catalog, "golden-hour")
    ys, xs = rect_px(p, 320, 240)
    light = flat(p["palette"][5])  # cream under white text: unreadable
    low = score_keyframe(light, p, channels).components["copy_contrast"]
    busy = flat(p["palette"][0])
    busy[ys, xs] = np.random.default_rng(2).integers(0, 256, busy[ys, xs].shape, dtype=np.uint8)
    s_busy = score_keyframe(busy, p, channels)
    assert low < 0.3
    assert s_busy.components["copy_contrast"] < 0.3 and "busy" in s_busy.reason
    # dark text (nordic-cool) wants the opposite
    q = make_prompt(catalog, "nordic-cool")
    assert score_keyframe(flat("#ffffff"), q, channels).components["copy_contrast"] > 0.9
    assert score_keyframe(flat("#0b1f2a"), q, channels).components["copy_contrast"] < 0.1


def test_copy_contrast_is_one_without_copy_space(catalog: Catalog, channels: list[ChannelSpec]) -> None:
    p = make_prompt(catalog, composition="centered close-up")
    assert p["composition"]["copy_space"] == "none"
    noise = np.random.default_rng(3).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    s = score_keyframe(noise, p, channels)
    assert s.components["copy_contrast"] == 1.0
    assert "no copy space" in s.reason


def test_safe_clearance(catalog: Catalog, channels: list[ChannelSpec]) -> None:
    p = make_prompt(catalog, composition="centered close-up")
    w = h = 400
    rng = np.random.default_rng(4)
    centre = flat(p["palette"][0], w, h)
    centre[150:250, 150:250] = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
    edges = flat(p["palette"][0], w, h)
    edges[330:, :] = rng.integers(0, 256, (70, w, 3), dtype=np.uint8)  # under reels' bottom UI
    s_centre = score_keyframe(centre, p, channels)
    s_edges = score_keyframe(edges, p, channels)
    assert s_centre.components["safe_clearance"] > 0.9
    assert s_edges.components["safe_clearance"] < 0.6
    assert "(weakest reels-9x16 0.00)" in s_edges.reason  # the weakest channel is named
    reels = [c for c in channels if c.name == "reels-9x16"]
    assert score_keyframe(edges, p, reels).components["safe_clearance"] < 0.05
    # uniformly busy: as dense under the UI as in the safe area
    noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    assert score_keyframe(noise, p, channels).components["safe_clearance"] == pytest.approx(0.5, abs=0.05)
    # a blank frame has nothing under any UI; no channels means nothing to check
    assert score_keyframe(flat(p["palette"][0]), p, channels).components["safe_clearance"] == 1.0
    assert score_keyframe(centre, p, []).components["safe_clearance"] == 1.0


def test_reason_mentions_the_numbers(catalog: Catalog, channels: list[ChannelSpec]) -> None:
    p = make_prompt(catalog)
    img = ProceduralBackend().generate(p, 1, 320, 320).image
    s = score_keyframe(img, p, channels)
    for name, label in (("palette", "palette"), ("copy_contrast", "copy-space contrast"),
                        ("safe_clearance", "safe-area clearance")):
        assert f"{label} {s.components[name]:.2f}" in s.reason
    assert re.search(r"\d+\.\d:1 vs #ffffff", s.reason)
    assert "over 3 channels" in s.reason
    assert f"total {s.total:.2f}" in s.reason


def test_procedural_beats_a_bad_image(catalog: Catalog, channels: list[ChannelSpec]) -> None:
    for style in ("golden-hour", "neon-night", "nordic-cool"):
        p = make_prompt(catalog, style, subject="a runner", environment="city street")
        good = ProceduralBackend().generate(p, 7, 400, 300).image
        bad = good.copy()
        ys, xs = rect_px(p, 400, 300)
        rng = np.random.default_rng(5)
        bad[ys, xs] = rng.integers(0, 256, bad[ys, xs].shape, dtype=np.uint8)  # busy copy space
        bad[..., 1] = np.maximum(bad[..., 1], 180)  # and everything pushed off-palette (green)
        scores = [score_keyframe(bad, p, channels), score_keyframe(good, p, channels)]
        assert rank(scores) == [1, 0], [s.reason for s in scores]
        assert scores[1].total - scores[0].total > 0.25
        assert scores[1].total >= 0.7, scores[1].reason


def test_rank_is_stable() -> None:
    def s(t: float) -> Score:
        return Score(total=t, components={}, reason="")

    assert rank([s(0.5), s(0.9), s(0.5), s(0.7)]) == [1, 3, 0, 2]
    assert rank([s(0.3), s(0.3), s(0.3)]) == [0, 1, 2]
    assert rank([s(float("nan")), s(0.1)]) == [1, 0]
    assert rank([]) == []


def test_accepts_rgba_and_grey(catalog: Catalog, channels: list[ChannelSpec]) -> None:
    p = make_prompt(catalog)
    rgba = np.zeros((50, 60, 4), dtype=np.uint8)
    grey = np.zeros((50, 60), dtype=np.uint8)
    assert score_keyframe(rgba, p, channels).total == score_keyframe(grey, p, channels).total
    with pytest.raises(ValueError):
        score_keyframe(np.zeros((5, 5, 2), dtype=np.uint8), p, channels)


def test_scores_at_full_size(catalog: Catalog, channels: list[ChannelSpec]) -> None:
    p = make_prompt(catalog)
    img = np.random.default_rng(6).integers(0, 256, (1920, 1920, 3), dtype=np.uint8)
    score_keyframe(img, p, channels)  # warm up imports and caches
    # Its speed is measured in bench/bench_stages.py; here: a full-size keyframe scores.
    assert 0.0 <= score_keyframe(img, p, channels).total <= 1.0
