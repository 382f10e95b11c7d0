"""Every file or folder a brief names, checked in one place before anything renders.

A brief is a document a producer (or anyone who can hand Studio a file) writes; the
paths in it are input, not trust. ``resolve_asset`` is the one function that turns such a
path into a real path, and it refuses:

* a path outside the **allowed roots**: the brief's own folder, plus any folder listed in
  ``STUDIO_ASSETS_ROOTS`` (``os.pathsep``-separated), plus ``HOME/uploads/PROJECT`` (the
  images ``POST /v1/uploads`` stored for the brief's own project; another project's
  uploads are outside, at the server's check and at the render's). ``../../etc/passwd`` and absolute
  paths elsewhere are refused, and so is a symbolic link (anywhere along the path) whose
  target lies outside the roots: the check is made on the fully resolved path;
* for images: anything but a real PNG, JPEG or WebP (magic bytes, and Pillow must parse
  the header), a file over the byte limit (checked with ``stat`` before reading), and an
  image over the pixel limit (checked from the header *before* any pixel is decoded, so a
  decompression bomb costs a few hundred bytes of reading).

Each refusal is a StudioError naming the brief field (``beats[0].reference_images[0]``),
the value as written (shortened), what was wrong and the fix.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from studio.errors import StudioError
from studio.specs import NAME_RE

# Defaults; Settings can lower or raise them (STUDIO_MAX_IMAGE_PIXELS, STUDIO_MAX_IMAGE_BYTES).
MAX_IMAGE_PIXELS = 40_000_000
MAX_IMAGE_BYTES = 50_000_000

# Magic bytes of the image types a brief may name, and Pillow's name for each.
_MAGIC: list[tuple[bytes, int, str]] = [
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"WEBP", 8, "WEBP"),  # b"RIFF" <size> b"WEBP"
]
IMAGE_TYPES = "PNG, JPEG or WebP"

Kind = Literal["image", "folder"]


class NotAnImage(ValueError):
    """The file is not an image of an allowed type, or its header cannot be read."""


class OverLimit(ValueError):
    """The image is over the byte or the pixel limit."""


@dataclass(frozen=True)
class ImageInfo:
    path: Path
    format: str  # PNG, JPEG, WEBP
    width: int
    height: int
    bytes: int


def _short(value: str, limit: int = 60) -> str:
    value = str(value)
    return value if len(value) <= limit else value[: limit // 2 - 1] + "…" + value[-(limit // 2 - 1):]


_PROJECT = re.compile(NAME_RE)  # a brief's project code: one path part, never "." or ".."


def uploads_folder(settings: Any, project: str | None) -> Path | None:
    """``HOME/uploads/PROJECT``: where the server keeps PROJECT's uploaded images, an
    allowed root for PROJECT's briefs only. None without settings or without a valid
    project code (so a project name is never more than one folder's name)."""
    base = getattr(settings, "uploads_dir", None)
    if base is None or not isinstance(project, str) or not _PROJECT.match(project):
        return None
    return Path(base).expanduser() / project


def allowed_roots(base_dir: Path, settings: Any = None, project: str | None = None) -> list[Path]:
    """The brief's folder, the settings' extra asset roots and (given the brief's
    ``project``) that project's uploads folder, fully resolved."""
    roots = [Path(base_dir).resolve()]
    for root in getattr(settings, "asset_roots", None) or []:
        roots.append(Path(root).expanduser().resolve())
    uploads = uploads_folder(settings, project)
    if uploads is not None:
        roots.append(uploads.resolve())
    return roots


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def is_allowed(path: Path, base_dir: Path, settings: Any = None) -> bool:
    """Whether ``path``, symlinks followed, lies inside the allowed roots (for files a
    brief reaches indirectly, e.g. the tracks a library folder's sidecars name)."""
    return _inside(Path(path).resolve(), allowed_roots(base_dir, settings))


def _limits(settings: Any) -> tuple[int, int]:
    pixels = getattr(settings, "max_image_pixels", None) or MAX_IMAGE_PIXELS
    size = getattr(settings, "max_image_bytes", None) or MAX_IMAGE_BYTES
    return int(pixels), int(size)


def _megabytes(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n < 10_000_000 else f"{n / 1_000_000:.0f} MB"


def read_image_header(path: Path, *, max_pixels: int = MAX_IMAGE_PIXELS,
                      max_bytes: int = MAX_IMAGE_BYTES) -> ImageInfo:
    """Type, size and byte count of an image file, without decoding a pixel.

    Raises NotAnImage or OverLimit with a sentence saying what is wrong (the caller adds
    where and the fix). Also used by backends before they decode a reference."""
    size = path.stat().st_size
    if size > max_bytes:
        raise OverLimit(f"is {size:,} bytes; the limit is {max_bytes:,} bytes ({_megabytes(max_bytes)})")
    with open(path, "rb") as f:
        kind, width, height = _header(f, max_pixels)
    return ImageInfo(path=path, format=kind, width=width, height=height, bytes=size)


def read_image_bytes_header(data: bytes, *, max_pixels: int = MAX_IMAGE_PIXELS,
                            max_bytes: int = MAX_IMAGE_BYTES) -> tuple[str, int, int]:
    """``read_image_header`` for bytes in memory (an upload): (format, width, height),
    the same checks, in the same words, before any pixel is decoded."""
    if len(data) > max_bytes:
        raise OverLimit(f"is {len(data):,} bytes; the limit is {max_bytes:,} bytes ({_megabytes(max_bytes)})")
    return _header(io.BytesIO(data), max_pixels)


def _bomb_size(fp: Any, kind: str) -> tuple[int, int] | None:
    """The size a header Pillow refused as a bomb claims, read by the format's own parser
    (``Image.open`` refuses it before saying the size); None if that fails too."""
    from PIL import Image

    try:
        fp.seek(0)
        Image.init()
        factory, _accept = Image.OPEN[kind]
        with factory(fp) as im:  # parses the header only; the bomb check is Image.open's
            return im.size
    except Exception:  # noqa: BLE001 - a size for the message, nothing more
        return None


def _header(fp: Any, max_pixels: int) -> tuple[str, int, int]:
    """(format, width, height) from an open binary file at its start."""
    from PIL import Image, UnidentifiedImageError

    head = fp.read(16)
    fp.seek(0)
    kind = next((name for magic, at, name in _MAGIC if head[at:at + len(magic)] == magic), None)
    if kind == "WEBP" and not head.startswith(b"RIFF"):
        kind = None
    if kind is None:
        if not head:
            raise NotAnImage(f"is empty, not a {IMAGE_TYPES} image")
        printable = all(32 <= b < 127 or b in (9, 10, 13) for b in head)
        what = "text" if printable else f"bytes {head[:8].hex(' ')}"
        raise NotAnImage(f"is not a {IMAGE_TYPES} image (it starts with {what})")
    try:
        # Image.open reads the header only. Pillow's own bomb guard raises past twice its
        # MAX_IMAGE_PIXELS and warns past it; our limit is lower and checked below, so the
        # warning is noise and the error is reported as what it is.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fp, formats=[kind]) as im:
                width, height = im.size
    except Image.DecompressionBombError:
        claimed = _bomb_size(fp, kind)
        said = (f" ({claimed[0]}x{claimed[1]}, {claimed[0] * claimed[1] / 1e6:.0f} megapixels: a decompression "
                "bomb?)" if claimed else " (a decompression bomb?)")
        raise OverLimit(f"has more pixels than Pillow will open{said}; "
                         f"the limit is {max_pixels / 1e6:g} megapixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise NotAnImage(f"starts like a {kind} file but its header cannot be read ({e})") from None
    if width < 1 or height < 1:
        raise NotAnImage(f"has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise OverLimit(f"is {width}x{height} ({width * height / 1e6:.0f} megapixels); "
                         f"the limit is {max_pixels / 1e6:g} megapixels")
    return kind, width, height


def resolve_asset(value: str, base_dir: Path, *, field: str, kind: Kind, settings: Any = None,
                  source: str | None = None, label: str = "reference image",
                  stage: str | None = None, project: str | None = None) -> Path:
    """The real path of a file or folder a brief names, confined and checked.

    ``value`` is as written in the brief (relative to ``base_dir``, the brief's folder, or
    absolute); ``kind`` is what it must be; ``project`` (the brief's) adds its uploads
    folder to the allowed roots. Returns the fully resolved path."""
    shown = repr(_short(value))
    roots = allowed_roots(base_dir, settings, project)
    env_hint = "or add its folder to STUDIO_ASSETS_ROOTS"
    fix_where = f"keep {label}s inside the brief's folder ({roots[0]}), {env_hint}"

    def fail(what: str, fix: str) -> StudioError:
        return StudioError(f"{label} {shown} {what}", fix=fix, field=field, source=source, stage=stage)

    if not str(value).strip():
        raise fail("is empty", "name a file, relative to the brief")
    given = Path(str(value)).expanduser()
    lexical = Path(os.path.normpath(given if given.is_absolute() else Path(base_dir).resolve() / given))
    real = lexical.resolve()  # every symlink along the way followed
    if not _inside(real, roots):
        # Inside as written, outside once links are followed: a link points out.
        written_roots = [*roots, *(Path(os.path.abspath(Path(r).expanduser()))
                                   for r in getattr(settings, "asset_roots", None) or [])]
        if _inside(lexical, written_roots):
            raise fail(f"is a symbolic link to {_short(str(real), 80)}, outside the allowed folders",
                       f"copy the file into the brief's folder instead of linking it, {env_hint}")
        where = "an absolute path outside" if given.is_absolute() else "outside"
        raise fail(f"is {where} the brief's folder", fix_where)
    if kind == "folder":
        if not real.is_dir():
            raise fail(f"not found or not a folder (looked for {real})", "fix the path, relative to the brief")
        return real
    if not real.exists():
        raise fail(f"not found (looked in {base_dir})", "fix the path, relative to the brief")
    if not real.is_file():
        raise fail("is not a regular file", f"name a {IMAGE_TYPES} file")
    max_pixels, max_bytes = _limits(settings)
    try:
        read_image_header(real, max_pixels=max_pixels, max_bytes=max_bytes)
    except OSError as e:
        raise fail(f"cannot be read ({e.strerror or e})", "make the file readable") from None
    except OverLimit as e:
        raise fail(str(e), "downscale it (references are analysed at a few hundred pixels), or raise "
                           "STUDIO_MAX_IMAGE_PIXELS / STUDIO_MAX_IMAGE_BYTES") from None
    except NotAnImage as e:
        raise fail(str(e), f"use a {IMAGE_TYPES} file") from None
    return real


def check_brief_assets(brief: Any, base_dir: Path, settings: Any = None,
                       source: str | None = None) -> list[StudioError]:
    """Every reference image of the brief's beats and character sheets."""
    errors: list[StudioError] = []
    groups = [(f"beats[{i}]", b.reference_images) for i, b in enumerate(brief.beats)]
    groups += [(f"characters[{i}]", c.reference_images) for i, c in enumerate(brief.characters)]
    for where, refs in groups:
        for j, ref in enumerate(refs):
            try:
                resolve_asset(ref, base_dir, field=f"{where}.reference_images[{j}]", kind="image",
                              settings=settings, source=source, project=getattr(brief, "project", None))
            except StudioError as e:
                errors.append(e)
    return errors
