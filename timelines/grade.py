"""Grade: a style pack's look, defined as OpenColorIO transforms and baked into a 3D LUT.

Every shot gets the same look, applied once per shot in the clips stage: the baked
``.cube`` grades the keyframe before the camera move (``studio.lut.apply_lut``, numpy,
tetrahedral) or, for a video model's clips, the master with ffmpeg's ``lut3d``; the
deliverables cut graded masters, and the conform adds grain and output sharpening only.
(conform can still apply a ``.cube`` itself, in its one encode pass, for masters made
before the grade moved to the clips stage and for callers that pass one.) OpenColorIO stays the
authority: it builds the look from its built-in ACES config (no config files, no network),
bakes the LUT with its own Baker, and :func:`ocio_apply` runs the LUT through OpenColorIO
itself, which is the reference the tests hold ffmpeg to.

The look (``studio.specs.Look``) runs video in to video out. BT.709 code values are read
as gamma 2.4 Rec.709 (BT.1886 with a zero black level, what a grading monitor shows) and
graded in the order a colourist works: exposure and white balance as gains in scene-linear
ACEScg (black stays black), cast and saturation as an ASC CDL in log ACEScct (equal
offsets are equal stops), then the tone curve (contrast, black and white level) on the
display-encoded picture, clamped to the legal [0, 1] range an 8-bit deliverable can hold.

``python -m timelines.grade`` re-bakes the shipped style packs' LUTs into
``studio/data/luts/``.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from pathlib import Path
from typing import Any

import numpy as np
import PyOpenColorIO as OCIO

from studio import lut
from studio.errors import StageError
from studio.specs import Catalog, Look, StylePack
from studio.store import atomic_write_text

CODE_VERSION = "grade.1"

# The built-in config, by its exact name rather than "studio-config-latest": a later
# OpenColorIO may point "latest" at a newer ACES release, and a re-bake must give the
# same LUT. Built-in configs ship inside the library, so this works offline.
CONFIG_NAME = "studio-config-v5.0.0_aces-v2.1_ocio-v2.6"
VIDEO_SPACE = "Gamma 2.4 Encoded Rec.709"  # BT.709 video code values, as a monitor shows them
LINEAR_SPACE = "ACEScg"  # scene-linear AP1: gains here are exposure and white balance
LOG_SPACE = "ACEScct"  # log AP1: the working space CDL grades are made in
LUT_FORMAT = "resolve_cube"  # the .cube dialect ffmpeg's lut3d reads ([0, 1] domain, no shaper)
LUT_FORMAT_3D_ONLY = "iridas_cube"  # the fallback for looks without crosstalk (see bake_lut)
LUT_SIZE = 33  # the usual grading size: 33³ nodes, tetrahedral in between

# How ffmpeg applies the LUT (studio.lut, shared with the clips stage, which grades a
# video model's masters with it). lut3d has AVX2 code for 16-bit and float planar RGB
# only; on 8-bit gbrp it falls back to C that is 3-4x slower (measured on the 1080p
# bench) and truncates its output to 8 bits. 16 bits also keep the graded picture free of
# an extra 8-bit rounding before the encoder's own. All sides interpolate tetrahedrally.
LUT_PIX_FMT = lut.LUT_PIX_FMT
FFMPEG_INTERP = lut.FFMPEG_INTERP
OCIO_INTERP = OCIO.INTERP_TETRAHEDRAL

SHIPPED_LUTS = Path(__file__).resolve().parent.parent / "studio" / "data" / "luts"


def _where(field: str) -> dict[str, str]:
    return {"stage": "conform", "field": field}


# ---------------------------------------------------------------------------- the look


def _curve(look: Look) -> OCIO.GradingBSplineCurve:
    """The tone curve through five points: black and white level at the ends, slope
    ``contrast`` about mid grey (0.5 in gamma 2.4 is 18% grey's neighbour, 0.19 linear).
    The defaults make a straight line, so the identity look bakes an identity LUT."""
    lo, hi = look.black, look.white
    pts: list[float] = []
    for x in (0.0, 0.25, 0.5, 0.75, 1.0):
        if x in (0.0, 1.0):
            y = x
        else:
            # keep the inner points off the ends: a flat segment would crush, not grade
            y = min(max(0.5 + (x - 0.5) * look.contrast, 0.04), 0.96)
        pts += [x, lo + (hi - lo) * y]
    return OCIO.GradingBSplineCurve(pts)


def look_transform(look: Look) -> OCIO.GroupTransform:
    """The look as one OpenColorIO transform from ``VIDEO_SPACE`` to ``VIDEO_SPACE``."""
    wb = OCIO.CDLTransform(slope=list(look.white_balance))
    cdl = OCIO.CDLTransform(offset=list(look.tint), sat=look.saturation)
    for t in (wb, cdl):
        # ASC clamping would cut scene-linear values above 1 and the ACEScct toe below 0;
        # the one clamp belongs at the end, on the display-encoded picture.
        t.setStyle(OCIO.CDL_NO_CLAMP)
    curves = OCIO.GradingRGBCurve(OCIO.GRADING_VIDEO)
    curves.master = _curve(look)
    return OCIO.GroupTransform([
        OCIO.ColorSpaceTransform(src=VIDEO_SPACE, dst=LINEAR_SPACE),
        OCIO.ExposureContrastTransform(style=OCIO.EXPOSURE_CONTRAST_LINEAR,
                                       exposure=look.exposure, contrast=1.0, pivot=0.18),
        wb,
        OCIO.ColorSpaceTransform(src=LINEAR_SPACE, dst=LOG_SPACE),
        cdl,
        OCIO.ColorSpaceTransform(src=LOG_SPACE, dst=VIDEO_SPACE),
        OCIO.GradingRGBCurveTransform(values=curves, style=OCIO.GRADING_VIDEO),
        OCIO.RangeTransform(minInValue=0.0, maxInValue=1.0, minOutValue=0.0, maxOutValue=1.0),
    ])


def config() -> OCIO.Config:
    """A fresh copy of the built-in config (bakes add a look to it)."""
    return OCIO.Config.CreateFromBuiltinConfig(CONFIG_NAME)


def _look_of(style_or_look: Look | StylePack) -> tuple[str, Look]:
    if isinstance(style_or_look, StylePack):
        if style_or_look.finishing.look is None:
            raise StageError(f"style pack {style_or_look.name} has no finishing.look to bake",
                             fix="add a look (exposure, white_balance, tint, saturation, "
                                 "contrast, black, white) or ship a .cube as finishing.lut",
                             stage="conform", field="finishing.look")
        return style_or_look.name, style_or_look.finishing.look
    return "look", style_or_look


def _bake(cfg: OCIO.Config, look_name: str, fmt: str, size: int) -> str:
    baker = OCIO.Baker()
    baker.setConfig(cfg)
    baker.setFormat(fmt)
    baker.setInputSpace(VIDEO_SPACE)
    baker.setTargetSpace(VIDEO_SPACE)
    baker.setLooks(look_name)
    baker.setCubeSize(size)
    return str(baker.bake())


def bake_lut(style_or_look: Look | StylePack, out_cube: Path, size: int = LUT_SIZE
             ) -> dict[str, Any]:
    """Bake the look into ``out_cube`` (written atomically) with OpenColorIO's Baker.

    The file starts with comment lines naming what made it (both OpenColorIO and ffmpeg
    skip them). Returns that record: OpenColorIO version, config, spaces, the look's
    parameters and its transform chain, the LUT's size and sha256."""
    if not 2 <= size <= 129:
        raise ValueError(f"LUT size {size} is outside 2..129")
    name, look = _look_of(style_or_look)
    look_name = f"studio-{name}"
    chain = look_transform(look)
    cfg = config()
    # A look in the video space whose transform does its own colour-space round trips:
    # one named look, so the Baker's input and target can both be the video space.
    cfg.addLook(OCIO.Look(name=look_name, processSpace=VIDEO_SPACE, transform=chain,
                          description=f"Studio style pack {name}"))
    fmt = LUT_FORMAT
    body = _bake(cfg, look_name, fmt, size)
    if not re.search(r"^LUT_3D_SIZE", body, re.MULTILINE):
        # The Resolve writer bakes a 1D table when the look has no channel crosstalk (the
        # identity look, or one of exposure and curve only); lut3d needs a 3D table, which
        # the Iridas writer always makes, in the same .cube syntax.
        fmt = LUT_FORMAT_3D_ONLY
        body = _bake(cfg, look_name, fmt, size)
    record: dict[str, Any] = {
        "look_name": name,
        "ocio_version": OCIO.__version__,
        "config": cfg.getName(),
        "format": fmt,
        "size": size,
        "input_space": VIDEO_SPACE,
        "target_space": VIDEO_SPACE,
        "look": look.model_dump(mode="json"),
        "transforms": [str(t) for t in chain],
        "code_version": CODE_VERSION,
    }
    header = [
        f"# Studio look {name}: baked by OpenColorIO {record['ocio_version']} "
        f"({fmt}, {size}^3), config {record['config']}",
        f"# {VIDEO_SPACE} -> {VIDEO_SPACE}; look {record['look']}",
        "# re-bake: python -m timelines.grade",
    ]
    text = "\n".join(header) + "\n" + body
    out_cube = Path(out_cube)
    atomic_write_text(out_cube, text)
    record["cube"] = str(out_cube)
    record["sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return record


# ---------------------------------------------------------------------------- reading


def _ocio_message(e: Exception) -> str:
    """OpenColorIO's parse error in one line: the .cube readers' own words."""
    text = " ".join(str(e).split())
    m = re.search(r"'resolve_cube' failed with: (.*?)(?:\s+'[a-z_]+' failed with:|$)", text)
    return m.group(1).strip() if m else text


def _cpu_processor(cube: Path) -> OCIO.CPUProcessor:
    # OpenColorIO caches files by path; a .cube rewritten in place must be read again.
    OCIO.ClearAllCaches()
    ft = OCIO.FileTransform(src=str(Path(cube).resolve()), interpolation=OCIO_INTERP)
    proc = OCIO.Config.CreateRaw().getProcessor(ft)
    # No optimisation: the reference is the LUT as written, not a simplified stand-in.
    return proc.getOptimizedCPUProcessor(OCIO.OPTIMIZATION_NONE)


def check_lut(cube: Path | str, *, field: str = "finishing.lut") -> int:
    """Refuse, before anything is rendered, a LUT ffmpeg's ``lut3d`` would fail on or that
    OpenColorIO cannot parse. Returns the cube's size (nodes per side)."""
    path = Path(cube)
    fix = ("point the style pack's finishing.lut at a 3D .cube, or re-bake the shipped ones "
           "with: python -m timelines.grade")
    if not path.is_file():
        raise StageError(f"LUT {path} does not exist", fix=fix, **_where(field))
    if path.suffix.lower() != ".cube":
        # lut3d picks its parser by the extension; the pipeline ships and checks .cube only
        raise StageError(f"LUT {path} is not a .cube file", fix=fix, **_where(field))
    try:
        _cpu_processor(path)
    except OCIO.Exception as e:
        raise StageError(f"LUT {path} is not a readable .cube: OpenColorIO says: "
                         f"{_ocio_message(e)}", fix=fix, **_where(field)) from e
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise StageError(f"cannot read LUT {path}: {e}", fix=fix, **_where(field)) from e
    m = re.search(r"^\s*LUT_3D_SIZE\s+(\d+)", text, re.MULTILINE)
    if m is None or re.search(r"^\s*LUT_1D_SIZE", text, re.MULTILINE):
        # OpenColorIO reads 1D and shaper+3D cubes too; ffmpeg's lut3d reads a bare 3D table
        raise StageError(f"LUT {path} is not a plain 3D cube (LUT_3D_SIZE only)",
                         fix=fix, **_where(field))
    size = int(m.group(1))
    if not 2 <= size <= 256:
        raise StageError(f"LUT {path}: LUT_3D_SIZE {size} is outside ffmpeg's 2..256",
                         fix=fix, **_where(field))
    return size


def ocio_apply(cube: Path, rgb: np.ndarray) -> np.ndarray:
    """OpenColorIO's own application of ``cube`` (tetrahedral, as conform's lut3d) to a
    float RGB image (..., 3) in [0, 1]; returns a new float32 array."""
    img = np.array(rgb, dtype=np.float32, copy=True, order="C")
    if img.shape[-1] != 3:
        raise ValueError(f"expected RGB in the last axis, got shape {img.shape}")
    _cpu_processor(Path(cube)).applyRGB(img)
    return img


def lut3d_options(cube: Path) -> dict[str, str]:
    """The ``lut3d`` filter's options as conform uses them (tests build the same filter)."""
    return {"file": str(cube), "interp": FFMPEG_INTERP}


# ---------------------------------------------------------------------------- shipped


def bake_shipped(out_dir: Path | None = None, size: int = LUT_SIZE) -> list[dict[str, Any]]:
    """Re-bake every shipped style pack that has a look into ``studio/data/luts``."""
    catalog = Catalog()
    records = []
    for name in sorted(catalog.styles):
        style = catalog.styles[name]
        if style.finishing.look is None:
            continue
        if out_dir is not None:
            target = Path(out_dir) / f"{name}.cube"
        else:
            target = catalog.lut_path(style) or SHIPPED_LUTS / f"{name}.cube"
        records.append(bake_lut(style, target, size))
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description="Re-bake the style packs' LUTs with OpenColorIO")
    ap.add_argument("--out", type=Path, default=None, help="folder (default: where "
                    "each style pack's finishing.lut points)")
    ap.add_argument("--size", type=int, default=LUT_SIZE)
    ns = ap.parse_args()
    for rec in bake_shipped(ns.out, ns.size):
        print(f"{rec['look_name']}: {rec['cube']} ({rec['size']}^3, {rec['config']}, "
              f"sha256 {rec['sha256'][:12]})")


if __name__ == "__main__":
    main()
