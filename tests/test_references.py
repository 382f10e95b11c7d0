"""Reference images, and every other path a brief names: confined to the brief's folder
(or STUDIO_ASSETS_ROOTS), checked to be real images within limits before anything
renders, and used for real by every keyframe backend."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import wave
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image
from sqlmodel import Session, select

from studio import db
from studio.assets import MAX_IMAGE_BYTES, resolve_asset
from studio.brief import check_against, load_brief
from studio.errors import StudioError
from studio.specs import Catalog

from .conftest import EXAMPLE_BRIEF, ROOT

# --------------------------------------------------------------------------- helpers


def _brief(folder: Path, refs: list[str] | None = None, **changes: Any) -> Path:
    """A one-beat, one-channel brief with no voice, effects or captions (the procedural
    music bed stays: a silent mix cannot be mastered): the cheapest real render, so the
    candidates stage is what the test is about."""
    d = yaml.safe_load(EXAMPLE_BRIEF.read_text())
    beat = d["beats"][3]  # b04-product: a bottle on a studio backdrop, copy space right
    beat.update(duration=1, narration="", reference_images=refs or [])
    d.update(beats=[beat], characters=[], hero_beat=None, channels=["youtube-1080p"], candidates=1,
             handles=0, captions=False, effects={"enabled": False})
    d.update(changes)
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / "brief.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


TEAL, RED, YELLOW = (20, 90, 100), (230, 60, 40), (250, 210, 60)


def _reference(path: Path, fmt: str = "PNG", busy_at: str = "right") -> Path:
    """A reference with a clear layout: a flat, calm teal field, and a busy red and yellow
    checkerboard on the right (middle height) or at the lower left."""
    h, w = 300, 400
    a = np.zeros((h, w, 3), np.uint8)
    a[:] = TEAL
    yy, xx = np.mgrid[0:h, 0:w]
    chk = ((yy // 10 + xx // 10) % 2).astype(bool)
    if busy_at == "right":
        busy = (xx > 250) & (yy > 60) & (yy < 240)
    else:
        busy = (xx < 100) & (yy > 140)
    a[busy & chk] = RED
    a[busy & ~chk] = YELLOW
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path, format=fmt)
    return path


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _png_bomb(path: Path, side: int = 30000) -> Path:
    """A real, valid side x side 1-bit PNG of zeros, written by hand: about 110 KB on disk,
    900 megapixels (and a GB of RGB) once decoded."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    c = zlib.compressobj(9)
    body, left = [], side
    while left:
        n = min(left, 1024)
        body.append(c.compress(row * n))
        left -= n
    body.append(c.flush())
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + _chunk(b"IDAT", b"".join(body)) + _chunk(b"IEND", b""))
    return path


def _store_files(settings) -> int:
    root = settings.store_root
    return sum(1 for p in root.rglob("*") if p.is_file()) if root.exists() else 0


def _refused(brief: Path, settings, expected: list[str]) -> StudioError:
    """Render the brief; it must fail at the brief check: the expected words in one line,
    nothing under --out, no work folder, nothing new in the store."""
    from studio.pipeline import render

    out = brief.parent / "out"
    before = _store_files(settings)
    with pytest.raises(StudioError) as ei:
        render(brief, out, settings=settings)
    lines = ei.value.lines()
    assert any(all(w in ln for w in expected) for ln in lines), lines
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.partial-*"))
    assert _store_files(settings) == before
    return ei.value


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that is not the brief's, holding a perfectly good PNG."""
    folder = tmp_path_factory.mktemp("outside")
    _reference(folder / "real.png")
    return folder


# ------------------------------------------------------- refused at the brief check

FIX = "keep reference images inside the brief's folder"


def _traversal(folder: Path, outside: Path) -> tuple[list[str], list[str]]:
    up = "../" * (len(folder.resolve().parts) + 2)  # enough to climb to / from any depth
    return [f"{up}etc/passwd"], ["beats[0].reference_images[0]: reference image '../../", "etc/passwd'",
                                 "is outside the brief's folder", FIX, "STUDIO_ASSETS_ROOTS"]


def _absolute(folder: Path, outside: Path) -> tuple[list[str], list[str]]:
    # a valid image: refused for where it is, not for what it is
    return [str(outside / "real.png")], ["beats[0].reference_images[0]:", "is an absolute path outside the "
                                                                        "brief's folder", FIX]


def _symlink(folder: Path, outside: Path) -> tuple[list[str], list[str]]:
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "mood.png").symlink_to(outside / "real.png")
    return ["refs/mood.png"], ["beats[0].reference_images[0]: reference image 'refs/mood.png' is a symbolic "
                               f"link to {(outside / 'real.png').resolve()}, outside the allowed folders",
                               "copy the file into the brief's folder"]


def _symlinked_folder(folder: Path, outside: Path) -> tuple[list[str], list[str]]:
    folder.mkdir(parents=True)
    (folder / "refs").symlink_to(outside, target_is_directory=True)
    return ["refs/real.png"], ["reference image 'refs/real.png' is a symbolic link to"]


def _fake_png(folder: Path, outside: Path) -> tuple[list[str], list[str]]:
    folder.mkdir(parents=True)
    (folder / "fake.png").write_text("root:x:0:0:root:/root:/bin/bash\n")
    return ["fake.png"], ["beats[0].reference_images[0]: reference image 'fake.png' is not a PNG, JPEG or "
                          "WebP image (it starts with text)", "use a PNG, JPEG or WebP file"]


def _bomb(folder: Path, outside: Path) -> tuple[list[str], list[str]]:
    folder.mkdir(parents=True)
    assert _png_bomb(folder / "bomb.png").stat().st_size < 200_000
    return ["bomb.png"], ["reference image 'bomb.png' has more pixels than Pillow will open",
                          "the limit is 40 megapixels", "downscale it"]


def _over_pixel_limit(folder: Path, outside: Path) -> tuple[list[str], list[str]]:
    # under Pillow's own guard (89 MP), over ours: our header check is what refuses it
    folder.mkdir(parents=True)
    _png_bomb(folder / "big.png", side=7000)
    return ["big.png"], ["reference image 'big.png' is 7000x7000 (49 megapixels); the limit is 40 megapixels"]


def _oversized(folder: Path, outside: Path) -> tuple[list[str], list[str]]:
    folder.mkdir(parents=True)
    big = folder / "huge.png"
    with open(big, "wb") as f:  # sparse: the size is what is checked, before any read
        f.write(b"\x89PNG\r\n\x1a\n")
        f.truncate(MAX_IMAGE_BYTES + 1)
    return ["huge.png"], ["reference image 'huge.png' is 50,000,001 bytes; the limit is 50,000,000 bytes (50 MB)"]


def _character_sheet(folder: Path, outside: Path) -> tuple[list[str], list[str]]:
    return [], ["characters[0].reference_images[0]: reference image '/etc/passwd' is an absolute path outside"]


CASES: dict[str, Callable[[Path, Path], tuple[list[str], list[str]]]] = {
    "traversal": _traversal, "absolute": _absolute, "symlink": _symlink, "symlinked-folder": _symlinked_folder,
    "fake-png": _fake_png, "pixel-bomb": _bomb, "over-pixel-limit": _over_pixel_limit,
    "oversized-file": _oversized, "character-sheet": _character_sheet,
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_reference_refused_before_any_work(case: str, tmp_path: Path, outside: Path, settings) -> None:
    folder = tmp_path / "brief"
    refs, expected = CASES[case](folder, outside)
    changes: dict[str, Any] = {}
    if case == "character-sheet":
        d = yaml.safe_load(EXAMPLE_BRIEF.read_text())
        changes["characters"] = [{**d["characters"][0], "reference_images": ["/etc/passwd"]}]
    _refused(_brief(folder, refs, **changes), settings, expected)


def test_every_bad_reference_is_reported_at_once(tmp_path: Path, outside: Path, settings) -> None:
    folder = tmp_path / "brief"
    folder.mkdir()
    (folder / "fake.png").write_text("not an image")
    err = _refused(_brief(folder, ["../../etc/passwd", "fake.png", "missing.png"]), settings, ["outside"])
    lines = err.lines()
    assert [ln.split(":")[1].strip() for ln in lines] == [f"beats[0].reference_images[{j}]" for j in range(3)]
    assert "reference image 'missing.png' not found" in lines[2]


def test_cli_refuses_traversal_with_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    brief = _brief(tmp_path / "brief", ["../" * 12 + "etc/passwd"])
    out = tmp_path / "out"
    env = {**os.environ, "STUDIO_HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0"}
    r = subprocess.run([sys.executable, "-m", "studio", "render", str(brief), "--out", str(out)],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("studio: error: "), r.stderr
    assert "beats[0].reference_images[0]: reference image" in lines[0] and "is outside the brief's folder" in lines[0]
    assert not out.exists() and not (home / "store").exists()


# ------------------------------------------------------------------ what is allowed


def test_assets_roots_setting_allows_another_folder(tmp_path: Path, outside: Path, settings) -> None:
    folder = tmp_path / "brief"
    brief, base = load_brief(_brief(folder, [str(outside / "real.png"), "../" + "x" * 80 + ".png"]))
    roots = settings.model_copy(update={"assets_roots": os.pathsep.join([str(tmp_path / "nope"), str(outside)])})
    with pytest.raises(StudioError) as ei:
        check_against(brief, Catalog(), base, settings=roots)
    # the first is allowed now; the second is still outside, and its long value is shortened
    assert len(ei.value.lines()) == 1 and "reference_images[1]" in ei.value.lines()[0]
    assert "…" in ei.value.lines()[0] and "x" * 80 not in ei.value.lines()[0]


def test_inside_images_of_each_type_and_inside_links_pass(tmp_path: Path) -> None:
    folder = tmp_path / "brief"
    _reference(folder / "refs" / "a.png")
    _reference(folder / "refs" / "b.jpg", "JPEG")
    _reference(folder / "refs" / "c.webp", "WEBP")
    (folder / "link.png").symlink_to(folder / "refs" / "a.png")
    brief, base = load_brief(_brief(folder, ["refs/a.png", "refs/b.jpg", "refs/c.webp", "link.png",
                                             "refs/../refs/a.png"]))
    assert [s.name for s in check_against(brief, Catalog(), base)] == ["youtube-1080p"]
    assert resolve_asset("link.png", base, field="f", kind="image") == (folder / "refs" / "a.png").resolve()


# ------------------------------------------------- music and effects library folders


def _wav(path: Path, seconds: float = 0.5) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        t = np.arange(int(48000 * seconds)) / 48000
        w.writeframes((np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes())


def _sidecar(folder: Path, file: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "swish.yaml").write_text(yaml.safe_dump({
        "schema": "MusicTrack.1", "id": "swish", "file": file, "title": "Swish", "kind": "effects",
        "tags": ["whoosh"], "peak": 0.2,
        "rights": {"licence": "Demo", "owner": "SFX Co", "source": "a demo pack",
                   "usage_classes": ["experiment", "internal", "public"]}}))


def test_music_library_outside_the_brief_folder_refused(tmp_path: Path, settings) -> None:
    brief = _brief(tmp_path / "brief", music={"source": "library", "library": "../../lib"})
    _refused(brief, settings, ["music.library: music library folder '../../lib' is outside the brief's folder",
                               "STUDIO_ASSETS_ROOTS"])


def test_effects_library_symlinked_out_refused(tmp_path: Path, outside: Path, settings) -> None:
    folder = tmp_path / "brief"
    folder.mkdir()
    (folder / "fx").symlink_to(outside, target_is_directory=True)
    _refused(_brief(folder, effects={"enabled": True, "library": "fx"}), settings,
             ["effects.library: effects library folder 'fx' is a symbolic link to"])


def test_effects_library_track_outside_refused(tmp_path: Path, outside: Path, settings) -> None:
    """A library inside the folder whose sidecar plays a file from elsewhere."""
    folder = tmp_path / "brief"
    _wav(outside / "secret.wav")
    _sidecar(folder / "fx", os.path.relpath(outside / "secret.wav", folder / "fx"))
    _refused(_brief(folder, effects={"enabled": True, "library": "fx"}), settings,
             ["effects.library: track 'swish' plays", "secret.wav, outside the allowed folders"])


def test_effects_library_inside_passes_the_check(tmp_path: Path, settings) -> None:
    from audio.voices import VoiceRegistry
    from studio.pipeline import check_brief

    folder = tmp_path / "brief"
    _wav(folder / "fx" / "swish.wav")
    _sidecar(folder / "fx", "swish.wav")
    brief, base = load_brief(_brief(folder, effects={"enabled": True, "library": "fx"}))
    check_brief(brief, Catalog(), base, voices=VoiceRegistry(None), settings=settings)


# ------------------------------------------------- references used, for real, by backends


def _candidates(settings, run_id: str) -> list[db.Candidate]:
    engine = db.make_engine(settings.db_url)
    try:
        with Session(engine) as s:
            shots = s.exec(select(db.Shot).where(db.Shot.run_id == run_id)).all()
            return [c for sh in shots for c in s.exec(select(db.Candidate).where(db.Candidate.shot_id == sh.id)).all()]
    finally:
        engine.dispose()


def _near(palette: list[str], rgb: tuple[int, int, int], tol: float = 8.0) -> bool:
    return any(np.hypot.reduce(np.array([int(h[i:i + 2], 16) for i in (1, 3, 5)]) - np.array(rgb)) <= tol
               for h in palette)


def test_procedural_render_uses_the_reference(tmp_path: Path, settings, ray_session) -> None:
    """The real pipeline (Ray actors, the store, the records) with a reference PNG: the
    keyframe takes its palette and layout from it, says so, and re-renders byte for byte."""
    from shots.backends.procedural import MAX_FOCUS_SHIFT, ProceduralBackend
    from shots.generate import png_bytes
    from studio.pipeline import render
    from studio.store import Store

    folder = tmp_path / "brief"
    ref = _reference(folder / "refs" / "mood.png", busy_at="lower-left")
    ctx = render(_brief(folder, ["refs/mood.png"]), tmp_path / "out", settings=settings)
    assert (tmp_path / "out" / "manifest.json").exists()
    (cand,) = _candidates(settings, ctx.run_id)
    p = cand.params
    (used,) = p["references"]
    assert used["sha256"] == hashlib.sha256(ref.read_bytes()).hexdigest()
    assert used["format"] == "PNG" and used["size"] == [400, 300]
    # the reference's own colours, the teal field first (it covers most of it)
    assert len(used["palette"]) == 3 and all(_near(used["palette"], c) for c in (TEAL, RED, YELLOW))
    assert _near(used["palette"][:1], TEAL)
    # the busy checkerboard is at the lower left; the right (and the top) is calm
    assert used["focus"][0] < 0.2 and used["focus"][1] > 0.65 and used["calm_side"] in ("right", "top")
    use = p["reference_use"]
    assert use["palette"] == used["palette"] and (use["copy_space"], use["copy_space_from"]) == ("right", "brief")
    # scored against the palette it was painted with, not the style pack's it replaced
    from PIL import Image
    from sqlmodel import Session, select

    from shots.score import score_keyframe
    from studio import db

    with Session(db.make_engine(settings.db_url)) as s:
        score = s.exec(select(db.Score).where(db.Score.candidate_id == cand.id)).one()
    image = np.asarray(Image.open(Store(settings.store_root).find(cand.media_sha256)).convert("RGB"))
    (first,) = ctx.shots
    against_style = score_keyframe(image, first.prompt, ctx.specs).components["palette"]
    against_used = score_keyframe(image, {**first.prompt, "palette": use["palette"]}, ctx.specs)
    assert score.components == against_used.components  # what was recorded ...
    assert score.components["palette"] > against_style + 0.1  # ... is not the pack's palette

    # Against the same prompt record and seed without the reference: palette and focus differ.
    (shot,) = ctx.shots
    w, h = ctx.master_size
    brief_focus = list(shot.prompt["composition"]["focus"])
    assert use["focus_brief"] == brief_focus == [0.3333, 0.5]
    # toward the busy corner (away from the copy space on the right), by at most the shift
    # the channel crops allow
    assert use["focus"] == [round(0.3333 - MAX_FOCUS_SHIFT, 4), round(0.5 + MAX_FOCUS_SHIFT, 4)]
    plain = ProceduralBackend().generate(shot.prompt, cand.seed, w, h)
    assert "references" not in plain.params and use["palette"] != shot.prompt["palette"]
    assert plain.params["accent"] in shot.prompt["palette"] and p["accent"] in use["palette"] + use["style_anchors"]
    assert p["light"] != plain.params["light"]  # the light follows the subject
    image = np.asarray(Image.open(Store(settings.store_root).path(ctx.selected[shot.shot_id].image)))
    assert not np.array_equal(image, plain.image)

    # Deterministic: the same reference (from the store, as regeneration finds it) and seed
    # in this process give the actor's bytes and params.
    store = Store(settings.store_root)
    again = ProceduralBackend().generate(shot.prompt, cand.seed, w, h,
                                         references=[store.find(x) for x in shot.prompt["reference_images"]])
    assert hashlib.sha256(png_bytes(again.image)).hexdigest() == cand.media_sha256
    assert again.params == {k: v for k, v in p.items() if k in again.params}


def test_reference_copy_space_and_focus_when_the_brief_leaves_them_open(tmp_path: Path) -> None:
    from shots.backends.procedural import MAX_FOCUS_SHIFT, ProceduralBackend
    from studio.prompts import compile_prompt

    brief, _ = load_brief(_brief(tmp_path / "b"))
    beat = brief.beats[0].model_copy(update={"composition": "close-up", "copy_space": None})
    cat = Catalog()
    prompt = compile_prompt(brief, beat, cat.style(brief.style_pack), [cat.spec("youtube-1080p")], ["x"]).canonical()
    assert prompt["composition"]["copy_space"] == "none" and prompt["composition"]["focus"] == [0.5, 0.5]
    ref = _reference(tmp_path / "r.png")
    kf = ProceduralBackend().generate(prompt, 7, 256, 256, references=[ref])
    use = kf.params["reference_use"]
    # the calm left of the reference becomes the copy space; the subject moves right,
    # toward the busy region, by at most the shift the channel crops allow
    assert (use["copy_space"], use["copy_space_from"]) == ("left", "reference")
    assert use["focus"][0] == pytest.approx(0.5 + MAX_FOCUS_SHIFT)


def test_procedural_reference_of_each_type_and_several_references(tmp_path: Path) -> None:
    from shots.backends.procedural import ProceduralBackend
    from studio.prompts import compile_prompt

    brief, _ = load_brief(_brief(tmp_path / "b"))
    cat = Catalog()
    prompt = compile_prompt(brief, brief.beats[0], cat.style(brief.style_pack), [cat.spec("youtube-1080p")],
                            ["x"]).canonical()
    b = ProceduralBackend()
    for fmt, ext in (("JPEG", "jpg"), ("WEBP", "webp")):
        kf = b.generate(prompt, 3, 128, 128, references=[_reference(tmp_path / f"r.{ext}", fmt)])
        assert kf.params["references"][0]["format"] == fmt and kf.params["references"][0]["calm_side"] == "left"
    # a second, flat blue reference: its colour joins the palette, and it has no layout to give
    flat = tmp_path / "flat.png"
    Image.new("RGB", (64, 64), (30, 60, 200)).save(flat)
    two = b.generate(prompt, 3, 128, 128, references=[tmp_path / "r.jpg", flat])
    assert "#1e3cc8" in two.params["reference_use"]["palette"]
    assert two.params["references"][1]["focus"] is None
    assert two.params["reference_use"]["focus_reference"] == two.params["references"][0]["focus"]


def test_failing_backend_error_reaches_the_user(tmp_path: Path, settings, ray_session) -> None:
    """What goes wrong in a keyframe actor reaches the user as its own line, with the stage
    and the beat: a StudioError as it is, any other exception by type and message, and a
    backend that cannot take the brief's references says so. Never 'see the worker log'."""
    from studio.pipeline import render

    folder = tmp_path / "brief"
    _reference(folder / "mood.png")
    backend = "tests.test_references:RaisingBackend"
    cases = [
        ({"kind": "studio"}, [], "stage candidates: shot b04-product: field: the test backend refuses this — "
                                 "do something else"),
        ({"kind": "type"}, [], "stage candidates: shot b04-product: keyframe backend 'raising' failed: "
                               "TypeError: unsupported operand type(s) for +: 'int' and 'str' — check the "
                               "backend's settings and the brief's inputs for this beat"),
        ({"kind": "studio"}, ["mood.png"], "stage candidates: shot b04-product: reference_images: keyframe "
                                           "backend 'raising' does not take reference images — remove "
                                           "reference_images from the brief, or use a backend that takes them"),
    ]
    for i, (options, refs, expected) in enumerate(cases):
        out = tmp_path / f"out{i}"
        with pytest.raises(StudioError) as ei:
            render(_brief(folder, refs), out, settings=settings, backend=backend, backend_options=options)
        assert ei.value.line().startswith(expected), ei.value.line()
        assert "worker log" not in ei.value.line() and not out.exists()


class RaisingBackend:
    """A keyframe backend that fails in its actor, and takes no references."""

    name = "raising"
    code_version = "raising.1"

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model_id": "raising", "weights_sha256": None}

    def generate(self, prompt: dict[str, Any], seed: int, width: int, height: int) -> Any:
        if self.kind == "studio":
            raise StudioError("the test backend refuses this", fix="do something else", field="field")
        return 1 + "x"  # type: ignore[operator]


# --------------------------------------------------------------- diffusers-image, with a reference


def test_diffusers_image_render_uses_the_reference(tmp_path: Path, settings, models_dir: Path,
                                                   ray_session) -> None:
    """The image-to-image tiny model through the whole pipeline with a reference PNG: the
    reference is the init image, and the keyframe differs from the same seed without it."""
    from shots.backends import create_backend
    from studio.models import ModelRegistry
    from studio.pipeline import render
    from studio.store import Store

    model_settings = settings.model_copy(update={"models_dir": models_dir, "model_device": "cpu"})
    folder = tmp_path / "brief"
    ref = _reference(folder / "mood.png")
    ctx = render(_brief(folder, ["mood.png"], keyframe_model="tiny-sd-ref", usage_class="experiment"),
                 tmp_path / "out", settings=model_settings)
    (cand,) = _candidates(model_settings, ctx.run_id)
    p = cand.params
    assert cand.backend == "diffusers-image" and p["mode"] == "image-to-image"
    assert p["references"] == [{"sha256": hashlib.sha256(ref.read_bytes()).hexdigest(), "used_as": "init-image"}]
    (shot,) = ctx.shots
    entry = ModelRegistry(models_dir).get("tiny-sd-ref")
    backend = create_backend("diffusers-image", {"model": entry.dump(), "device": "cpu"})
    plain = backend.generate(shot.prompt, cand.seed, cand.width, cand.height)
    image = np.asarray(Image.open(Store(model_settings.store_root).path(ctx.selected[shot.shot_id].image)))
    assert plain.params["references"] == [] and not np.array_equal(image, plain.image)
