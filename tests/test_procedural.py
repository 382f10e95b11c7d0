"""The procedural keyframe backend: deterministic, on-palette, composed as asked."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shots.backends import create_backend
from shots.backends.procedural import (
    ProceduralBackend,
    contrast_ratio,
    hex_to_rgb,
    pick_scene,
    pick_subject,
    relative_luminance,
)
from shots.score import score_keyframe
from studio.brief import Brief
from studio.prompts import compile_prompt
from studio.specs import Catalog, ChannelSpec

REPO = Path(__file__).resolve().parents[1]
CHANNELS = ["youtube-1080p", "reels-9x16", "banner-300x250"]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog()


@pytest.fixture(scope="module")
def backend() -> ProceduralBackend:
    return ProceduralBackend()


def make_prompt(catalog: Catalog, style: str = "golden-hour", **beat: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "id": "b01", "duration": 4, "subject": "a glowing orb", "environment": "",
        "composition": "", "mood": "",
    }
    b.update(beat)
    brief = Brief.model_validate({
        "project": "demo", "campaign": "launch", "purpose": "tests",
        "channels": CHANNELS, "style_pack": style, "beats": [b],
    })
    specs = [catalog.spec(n) for n in brief.channels]
    return compile_prompt(brief, brief.beats[0], catalog.style(style), specs).canonical()


def specs(catalog: Catalog) -> list[ChannelSpec]:
    return [catalog.spec(n) for n in CHANNELS]


def digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


# A spread of templates, subjects, styles and copy sides.
CASES: list[tuple[str, dict[str, Any]]] = [
    ("golden-hour", dict(subject="a runner", environment="city street at sunset",
                         composition="subject right third, copy space left", mood="energetic")),
    ("neon-night", dict(subject="a glowing sun", environment="ocean horizon",
                        composition="centered, copy space top", mood="dramatic")),
    ("nordic-cool", dict(subject="a glass bottle", environment="mountain valley",
                         composition="left third, copy space right", mood="calm")),
    ("golden-hour", dict(subject="a soda can product", environment="studio tabletop",
                         composition="centered, copy space bottom", mood="warm")),
    ("neon-night", dict(subject="a planet", environment="deep space",
                        composition="right third, copy space left")),
    ("nordic-cool", dict(subject="a woman walking", environment="forest trail",
                         composition="center, copy space top", mood="quiet")),
    ("golden-hour", dict(subject="a smartphone", environment="",
                         composition="left third, copy space right", mood="bold")),
]


def test_describe_and_registry(backend: ProceduralBackend) -> None:
    d = backend.describe()
    assert d["backend"] == "procedural" and d["model_id"] == "procedural"
    assert d["weights_sha256"] is None and d["device"] == "cpu" and d["dtype"] == "uint8"
    assert d["library_versions"]["numpy"] == np.__version__
    assert backend.name == "procedural" and backend.code_version == "procedural.1"
    assert isinstance(create_backend("procedural"), ProceduralBackend)


def test_hex_to_rgb() -> None:
    assert hex_to_rgb("#e07a5f") == (224, 122, 95)
    assert hex_to_rgb("FFFFFF") == (255, 255, 255)
    assert hex_to_rgb("#0a1") == (0, 170, 17)
    with pytest.raises(ValueError):
        hex_to_rgb("#12345g")


def test_output_types(catalog: Catalog, backend: ProceduralBackend) -> None:
    kf = backend.generate(make_prompt(catalog), 1, 200, 120)
    assert kf.image.shape == (120, 200, 3) and kf.image.dtype == np.uint8
    assert kf.depth is not None and kf.depth.shape == (120, 200) and kf.depth.dtype == np.float32
    assert float(kf.depth.min()) >= 0.0 and float(kf.depth.max()) <= 1.0
    assert {"scene", "subject_shape", "layers"} <= set(kf.params)
    json.dumps(kf.params)  # recorded with the candidate: must be plain JSON


def test_same_seed_same_bytes(catalog: Catalog, backend: ProceduralBackend) -> None:
    for style, beat in CASES:
        p = make_prompt(catalog, style, **beat)
        a = backend.generate(p, 42, 240, 180)
        b = ProceduralBackend().generate(json.loads(json.dumps(p)), 42, 240, 180)
        assert digest(a.image) == digest(b.image), beat
        assert a.depth is not None and b.depth is not None
        assert digest(a.depth) == digest(b.depth), beat
        assert a.params == b.params


_CHILD = """
import hashlib, json, sys
import numpy as np
from shots.backends.procedural import ProceduralBackend
p = json.loads(sys.stdin.read())
kf = ProceduralBackend().generate(p, 42, 320, 200)
print(hashlib.sha256(np.ascontiguousarray(kf.image).tobytes()).hexdigest())
print(hashlib.sha256(np.ascontiguousarray(kf.depth).tobytes()).hexdigest())
"""


def test_same_seed_same_bytes_in_another_process(catalog: Catalog, backend: ProceduralBackend) -> None:
    style, beat = CASES[0]
    p = make_prompt(catalog, style, **beat)
    here = backend.generate(p, 42, 320, 200)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONHASHSEED="123")
    out = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(p), capture_output=True,
                         text=True, cwd=REPO, env=env, timeout=120, check=True)
    img_hash, depth_hash = out.stdout.split()
    assert img_hash == digest(here.image)
    assert here.depth is not None and depth_hash == digest(here.depth)


def test_different_seeds_differ_visibly(catalog: Catalog, backend: ProceduralBackend) -> None:
    for style, beat in CASES:
        p = make_prompt(catalog, style, **beat)
        imgs = [backend.generate(p, seed, 192, 192).image.astype(np.int16) for seed in (1, 2, 3)]
        for i in range(3):
            for j in range(i + 1, 3):
                diff = np.abs(imgs[i] - imgs[j]).mean()
                assert diff > 2.0, (beat["subject"], i, j, diff)


def test_palette_adherence_high_and_noise_low(catalog: Catalog, backend: ProceduralBackend) -> None:
    for style, beat in CASES:
        p = make_prompt(catalog, style, **beat)
        for seed in (3, 4):
            s = score_keyframe(backend.generate(p, seed, 256, 256).image, p, specs(catalog))
            assert s.components["palette"] >= 0.7, (style, beat["subject"], s.reason)
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    for style in ("golden-hour", "neon-night", "nordic-cool"):
        s = score_keyframe(noise, make_prompt(catalog, style), specs(catalog))
        assert s.components["palette"] <= 0.2, s.reason


@pytest.mark.parametrize("subject", ["a glowing orb", "a runner", "a perfume bottle", "a smartphone"])
def test_subject_centred_on_focus(catalog: Catalog, backend: ProceduralBackend, subject: str) -> None:
    w, h = 320, 240
    for focus in ((0.3, 0.4), (0.7, 0.6)):
        p = make_prompt(catalog, subject=subject, environment="hills", composition="medium shot",
                        focus=list(focus))
        kf = backend.generate(p, 5, w, h)
        assert kf.depth is not None
        ys, xs = np.nonzero(kf.depth > 0.8)
        assert len(xs) > 50, "no near subject in the depth map"
        cx, cy = (xs.mean() + 0.5) / w, (ys.mean() + 0.5) / h
        assert abs(cx - focus[0]) < 0.05 and abs(cy - focus[1]) < 0.06, (subject, focus, cx, cy)
        # its height follows subject_scale (fraction of the frame height)
        extent = (ys.max() - ys.min() + 1) / h
        scale = p["composition"]["subject_scale"]
        assert 0.6 * scale <= extent <= 1.25 * scale, (subject, extent, scale)


def test_depth_layers(catalog: Catalog, backend: ProceduralBackend) -> None:
    p = make_prompt(catalog, subject="a hiker", environment="mountain range", composition="centered")
    kf = backend.generate(p, 9, 300, 300)
    assert kf.depth is not None
    assert float(kf.depth[:20].mean()) <= 0.3  # the sky is far
    assert float(kf.depth[150, 150]) >= 0.9  # the subject at the focus is near
    near = kf.depth > 0.8
    assert near.mean() < 0.2  # ... and only the subject is that near


def test_copy_region_calm_and_contrasting(catalog: Catalog, backend: ProceduralBackend) -> None:
    for style, beat in CASES:
        p = make_prompt(catalog, style, **beat)
        comp = p["composition"]
        assert comp["copy_rect"] is not None
        text_lum = float(relative_luminance(np.array(hex_to_rgb(p["text_color"])) / 255.0))
        for seed in (1, 2):
            img = backend.generate(p, seed, 400, 300).image
            h, w = img.shape[:2]
            x0, y0, x1, y1 = comp["copy_rect"]
            region = img[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)].astype(np.float64) / 255.0
            lum = relative_luminance(region)
            assert float(lum.std()) < 0.06, (beat["subject"], seed, float(lum.std()))
            ratio = contrast_ratio(float(relative_luminance(region.reshape(-1, 3).mean(axis=0))), text_lum)
            assert ratio >= 3.0, (beat["subject"], seed, ratio)


@pytest.mark.parametrize("size", [(96, 96), (160, 90), (90, 160), (37, 23), (1, 1), (728, 90)])
def test_odd_and_tiny_sizes(catalog: Catalog, backend: ProceduralBackend, size: tuple[int, int]) -> None:
    w, h = size
    for style, beat in CASES:
        kf = backend.generate(make_prompt(catalog, style, **beat), 3, w, h)
        assert kf.image.shape == (h, w, 3) and kf.image.dtype == np.uint8
        assert kf.depth is not None and kf.depth.shape == (h, w)
        assert np.isfinite(kf.depth).all()


def test_bad_size_is_refused(catalog: Catalog, backend: ProceduralBackend) -> None:
    with pytest.raises(ValueError):
        backend.generate(make_prompt(catalog), 1, 0, 10)


def test_missing_fields_still_render(backend: ProceduralBackend) -> None:
    kf = backend.generate({"subject": "a thing"}, 1, 64, 48)
    assert kf.image.shape == (48, 64, 3)


def test_scene_and_subject_from_keywords() -> None:
    assert pick_scene({"environment": "a busy city street"})[0] == "skyline"
    assert pick_scene({"environment": "the beach at dawn"})[0] == "ocean"
    assert pick_scene({"environment": "misty mountain peaks"}) == ("hills", "peaks")
    assert pick_scene({"environment": "pine forest"}) == ("hills", "forest")
    assert pick_scene({"environment": "white studio table"})[0] == "studio"
    assert pick_scene({"environment": "outer space, stars"})[0] == "starfield"
    assert pick_scene({"environment": "", "subject": "logo"})[0] == "abstract"
    assert pick_subject({"subject": "a cold soda can"}) == ("product", "can")
    assert pick_subject({"subject": "a phone on a desk"}) == ("product", "phone")
    assert pick_subject({"subject": "a runner at dawn"}) == ("person", "running")
    assert pick_subject({"subject": "sun"}) == ("orb", "")
    assert pick_subject({"subject": "hero shot", "characters": ["ana"]})[0] == "person"


def test_scene_params_follow_keywords(catalog: Catalog, backend: ProceduralBackend) -> None:
    p = make_prompt(catalog, subject="a can of soda", environment="studio")
    params = backend.generate(p, 1, 96, 96).params
    assert params["scene"] == "studio" and params["subject_shape"] == "product/can"
    p = make_prompt(catalog, subject="a runner", environment="city skyline")
    params = backend.generate(p, 1, 96, 96).params
    assert params["scene"] == "skyline" and params["subject_shape"] == "person/running"


def test_full_size_renders(catalog: Catalog, backend: ProceduralBackend) -> None:
    style, beat = CASES[0]
    p = make_prompt(catalog, style, **beat)
    kf = backend.generate(p, 1, 1920, 1920)  # its speed: bench/bench_stages.py
    assert kf.image.shape == (1920, 1920, 3)
