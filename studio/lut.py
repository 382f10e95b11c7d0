"""3D LUTs (.cube) read and applied in numpy, for the stages that grade pictures.

The style pack's look is baked into a ``.cube`` (``timelines.grade``); the clips stage
grades each shot master once, on its keyframe before the camera move, with
:func:`apply_lut` here. The interpolation is tetrahedral, as OpenColorIO applies the
same file (``timelines.grade.ocio_apply``, which the tests hold this to) and as ffmpeg's
``lut3d`` does with the options :func:`lut3d_filter` gives (for a video model's clips,
graded in ffmpeg).

Only what the pipeline ships and checks is read: a plain 3D table (``LUT_3D_SIZE``),
optional ``DOMAIN_MIN``/``DOMAIN_MAX``, ``TITLE`` and comment lines, red varying fastest.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from studio.errors import StageError

# How ffmpeg applies a LUT where a stage does it in a filter graph: lut3d has AVX2 code
# for 16-bit and float planar RGB only (8-bit gbrp is plain C, 3-4x slower, and truncates
# to 8 bits); tetrahedral, as OpenColorIO and apply_lut interpolate.
LUT_PIX_FMT = "gbrp16le"
FFMPEG_INTERP = "tetrahedral"

_ROWS = 1 << 18  # pixels per block in apply_lut: bounds the temporaries (~20 MB)


@dataclass(frozen=True)
class Cube:
    """A parsed 3D LUT: ``table[b, g, r]`` is the output RGB at that lattice node."""

    size: int
    table: np.ndarray  # (size, size, size, 3) float32, indexed [b, g, r]
    domain_min: tuple[float, float, float]
    domain_max: tuple[float, float, float]
    sha256: str


def lut_sha256(path: Path | str) -> str:
    """The LUT file's sha256: what a cache key names (a path says nothing of the content)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _bad(path: Path, what: str, stage: str) -> StageError:
    return StageError(f"LUT {path}: {what}", fix="point the style pack's finishing.lut at a 3D "
                      ".cube, or re-bake the shipped ones with: python -m timelines.grade",
                      stage=stage, field="finishing.lut")


def read_cube(path: Path | str, *, stage: str = "clips") -> Cube:
    """Parse a 3D ``.cube``; errors name the file and the line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise _bad(path, f"cannot be read: {e}", stage) from e
    return _parse(path, data, stage)


@lru_cache(maxsize=8)
def _parse_cached(path: str, sha: str, stage: str) -> Cube:
    return _parse(Path(path), Path(path).read_bytes(), stage)


def _parse(path: Path, data: bytes, stage: str) -> Cube:
    size = 0
    lo, hi = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    values: list[list[float]] = []
    for n, raw in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        head = line.split()[0].upper()
        if head == "TITLE":
            continue
        if head == "LUT_1D_SIZE":
            raise _bad(path, f"line {n}: a 1D table (LUT_1D_SIZE); a plain 3D cube is needed", stage)
        if head in ("LUT_3D_SIZE", "DOMAIN_MIN", "DOMAIN_MAX"):
            parts = line.split()[1:]
            try:
                if head == "LUT_3D_SIZE":
                    size = int(parts[0])
                else:
                    vals = [float(v) for v in parts[:3]]
                    if len(vals) != 3:
                        raise ValueError
                    (lo if head == "DOMAIN_MIN" else hi)[:] = vals
            except (ValueError, IndexError) as e:
                raise _bad(path, f"line {n}: cannot read {line!r}", stage) from e
            continue
        if re.match(r"^[A-Za-z_]", line):
            continue  # other keywords (LUT_3D_INPUT_RANGE and the like) do not change a 3D table
        try:
            rgb = [float(v) for v in line.split()]
        except ValueError as e:
            raise _bad(path, f"line {n}: cannot read {line!r}", stage) from e
        if len(rgb) != 3:
            raise _bad(path, f"line {n}: {len(rgb)} values where R G B were expected", stage)
        values.append(rgb)
    if not 2 <= size <= 256:
        raise _bad(path, "no LUT_3D_SIZE between 2 and 256", stage)
    if len(values) != size ** 3:
        raise _bad(path, f"{len(values)} table rows, LUT_3D_SIZE {size} needs {size ** 3}", stage)
    if any(h <= lo_ for lo_, h in zip(lo, hi, strict=True)):
        raise _bad(path, f"DOMAIN_MAX {hi} is not above DOMAIN_MIN {lo}", stage)
    # Rows run red fastest, then green, then blue: reshaped C-order that is [b, g, r].
    table = np.asarray(values, dtype=np.float32).reshape(size, size, size, 3)
    return Cube(size, table, (lo[0], lo[1], lo[2]), (hi[0], hi[1], hi[2]),
                hashlib.sha256(data).hexdigest())


def load_cube(path: Path | str, *, stage: str = "clips") -> Cube:
    """read_cube, memoised on the file's content (a render grades every shot with one LUT)."""
    path = Path(path)
    try:
        sha = lut_sha256(path)
    except OSError as e:
        raise _bad(path, f"cannot be read: {e}", stage) from e
    return _parse_cached(str(path.resolve()), sha, stage)


def apply_lut(cube: Cube, rgb: np.ndarray) -> np.ndarray:
    """``rgb`` (..., 3), floats in the cube's domain, through the LUT with tetrahedral
    interpolation, as OpenColorIO applies it: the input clamped to the domain, then in
    each lattice cell the tetrahedron the point lies in, picked by the order of its
    fractional coordinates. Returns a new float32 array of the same shape."""
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.shape[-1] != 3:
        raise ValueError(f"expected RGB in the last axis, got shape {rgb.shape}")
    n = cube.size
    flat = cube.table.reshape(-1, 3)
    lo = np.asarray(cube.domain_min, np.float32)
    scale = (n - 1) / (np.asarray(cube.domain_max, np.float32) - lo)
    src = rgb.reshape(-1, 3)
    out = np.empty_like(src)
    strides = np.array([1, n, n * n], np.int64)  # r, g, b in the flat [b, g, r] table
    for a in range(0, len(src), _ROWS):
        p = np.clip((src[a:a + _ROWS] - lo) * scale, 0.0, n - 1, dtype=np.float32)
        i0 = np.minimum(p.astype(np.int64), n - 2)  # the cell's lower corner (the top edge: last cell)
        f = p - i0.astype(np.float32)  # in [0, 1]
        base = i0 @ strides
        fr, fg, fb = f[:, 0], f[:, 1], f[:, 2]
        # The axis order of the fractions picks the tetrahedron: the path from the lower
        # corner to the upper one steps along the largest fraction first, then the next.
        rg, gb, rb = fr >= fg, fg >= fb, fr >= fb
        r1 = rg & rb  # red's fraction is the largest
        g1 = ~r1 & gb  # else green's
        b1 = ~r1 & ~gb  # else blue's
        first = np.where(r1, 1, np.where(g1, n, n * n))
        f1 = np.where(r1, fr, np.where(g1, fg, fb))
        # the middle axis: of the two left, the larger fraction
        r2 = (g1 & rb) | (b1 & rg)
        g2 = (r1 & gb) | (b1 & ~rg)
        second = np.where(r2, 1, np.where(g2, n, n * n))
        f2 = np.where(r2, fr, np.where(g2, fg, fb))
        f3 = np.minimum(np.minimum(fr, fg), fb)
        c0 = flat[base]
        c1 = flat[base + first]
        c2 = flat[base + first + second]
        c3 = flat[base + strides.sum()]
        out[a:a + _ROWS] = (c0 + (c1 - c0) * (f1[:, None]) + (c2 - c1) * f2[:, None]
                            + (c3 - c2) * f3[:, None])
    return out.reshape(rgb.shape)


def lut3d_filter(name: str) -> str:
    """The ``lut3d`` filter for a cube named ``name`` (a plain file name, no characters a
    filter graph would need escaped: callers copy the cube beside the job under it)."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise ValueError(f"LUT file name {name!r} needs escaping in a filter graph")
    return f"lut3d=file={name}:interp={FFMPEG_INTERP}"
