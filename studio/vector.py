"""SVG logos: checked, measured and drawn at the exact pixel size asked (issue 13).

A brand kit's logo may be an SVG (``studio.brand``). It is rasterized by resvg (the
``resvg-py`` wheel: Rust, no system library, no network code in it) at the size a layout
or the logo bug places it, so it is sharp at every channel's size, never scaled from a
small bitmap.

The file is read once with expat before anything is drawn, and refused with a
StudioError (field ``brand.logo``, the file, what is wrong, what to do) when it:

- is not an SVG (not XML, not UTF-8, its root is not ``<svg>``) or is over ``MAX_BYTES``;
- has no size: no viewBox and not both width and height on its ``<svg>``;
- claims more pixels than Pillow would open from a PNG (``Image.MAX_IMAGE_PIXELS``): a
  few bytes can ask for a gigapixel, and resvg aborts the whole process when it cannot
  allocate one (measured: ``width="100000" height="100000"`` kills Python);
- refers to anything outside itself: an href that is not ``#id`` (``<image>`` may embed
  a ``data:`` image, itself checked), ``url(...)`` other than ``url(#id)``, CSS
  ``@import``, an external XML entity. Drawing a logo reads the logo file and nothing
  else: no network, no other file;
- holds a script or an event handler (``onload=...``): a logo is drawn, never run, and
  what a script draws in a browser would be missing here;
- sets live text (``<text>``): it would be drawn in whatever fonts this machine has, not
  the brand's.

What resvg itself cannot draw (more nodes than its limit, say) is refused the same way.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import math
import re
import urllib.parse
import warnings
from functools import lru_cache
from pathlib import Path
from xml.parsers import expat

import resvg_py
from PIL import Image, UnidentifiedImageError

from studio.errors import StudioError, quote

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
# A logo is kilobytes; Illustrator's "preserve editing" exports carry megabytes of private
# data. Past this it is not a logo.
MAX_BYTES = 20 * 1024 * 1024
# CSS px per unit (96 dpi), as browsers take them; em and ex at the default 16 px font.
UNITS = {"": 1.0, "px": 1.0, "in": 96.0, "cm": 96 / 2.54, "mm": 96 / 25.4, "pt": 4 / 3, "pc": 16.0,
         "em": 16.0, "ex": 8.0}
LENGTH_RE = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(px|in|cm|mm|pt|pc|em|ex|%)?\s*$")
URL_RE = re.compile(r"url\(\s*(['\"]?)(.*?)\1\s*\)", re.IGNORECASE | re.DOTALL)
DATA_RE = re.compile(r"^data:([^;,]*)((?:;[^;,]*)*),(.*)$", re.IGNORECASE | re.DOTALL)
# What resvg decodes inside an <image>; an embedded SVG is checked like the file itself.
DATA_IMAGES = {"image/png", "image/jpeg", "image/jpg", "image/gif", "image/webp", "image/svg+xml"}
TEXT_TAGS = ("text", "textPath", "tspan")
NESTING = 3  # SVG inside SVG inside SVG... as data: images, at most this deep

FIX_EXPORT = "export the logo again as a plain SVG (or as a PNG with transparency) and point brand.logo.path at it"


class _Refused(Exception):
    """Raised inside the expat handlers (expat passes it on): what is wrong, and the fix."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(what)
        self.what, self.fix = what, fix


@dataclasses.dataclass(frozen=True)
class _Svg:
    data: bytes  # the file's bytes, as read
    size: tuple[float, float]  # its intrinsic size in CSS px
    root: tuple[int, int]  # byte span of the root start tag, '<' to '>' inclusive
    view_box: str | None  # the root's viewBox as written (None: none)


def is_svg(path: str | Path) -> bool:
    """Whether a logo file is an SVG (by its name: ``Logo.path`` allows .svg and .png)."""
    return str(path).lower().endswith(".svg")


def svg_size(path: str | Path, *, field: str = "brand.logo") -> tuple[float, float]:
    """The SVG's intrinsic size in CSS px (96 dpi), as a browser sizes it: width and
    height, or the one given and the viewBox's aspect, or the viewBox's own size. The file
    is checked first (see the module): StudioError on ``field`` if it is refused."""
    return _load(Path(path), field).size


def rasterize(path: str | Path, width: int | None = None, height: int | None = None, *,
              field: str = "brand.logo") -> Image.Image:
    """The SVG drawn as an RGBA image on a transparent background at exactly ``width`` x
    ``height`` px: with one of them the other keeps the SVG's aspect, with neither its
    intrinsic size. With both, a different aspect leaves the drawing centred and whole
    (the SVG's preserveAspectRatio decides, as in a browser)."""
    svg = _load(Path(path), field)
    iw, ih = svg.size
    if width is None and height is None:
        w, h = max(1, round(iw)), max(1, round(ih))
    elif height is None:
        w, h = int(width), max(1, round(width * ih / iw))  # type: ignore[operator]
    elif width is None:
        w, h = max(1, round(height * iw / ih)), int(height)
    else:
        w, h = int(width), int(height)
    if w < 1 or h < 1:
        raise ValueError(f"cannot draw an SVG at {w}x{h} px")
    if (bomb := _bomb(w, h, "would be drawn at")) is not None:
        raise _error(path, bomb.what, bomb.fix, field)
    # The root's width and height become the pixels wanted (and a viewBox keeps the
    # drawing's own coordinates), so resvg draws at exactly that size: given a width and a
    # height of another aspect it would fit and round instead (401x200 came out 400x200).
    start, end = svg.root
    tag = _resize_root(svg.data[start:end + 1], w, h, svg.view_box, svg.size)
    data = svg.data[:start] + tag + svg.data[end + 1:]
    try:
        # dpi 96: resvg-py's default 0 turns mm, pt and in lengths into nothing.
        png = resvg_py.svg_to_bytes(svg_string=data.decode("utf-8-sig"), skip_system_fonts=True, dpi=96.0)
    except (ValueError, RuntimeError) as e:
        raise _error(path, f"cannot be drawn by resvg ({e})",
                     "simplify the drawing (fewer elements) or export the logo as a PNG", field) from None
    with Image.open(io.BytesIO(png)) as im:
        out = im.convert("RGBA")
    if out.size != (w, h):  # never seen; a wrong size must not reach a layout quietly
        raise RuntimeError(f"resvg drew {path} at {out.size[0]}x{out.size[1]} px, not {w}x{h}")
    return out


# ---------------------------------------------------------------- reading and checking


def _error(path: str | Path, what: str, fix: str, field: str) -> StudioError:
    # The file is named in the message itself: a brief's check replaces ``source`` with
    # the style pack's file (studio.copyfit), and the user still needs to know which logo.
    return StudioError(f"logo file {str(path)!r} {what}", fix=fix, field=field)


def _bomb(w: float, h: float, verb: str) -> _Refused | None:
    """Why a size is refused as a decompression bomb, or None."""
    limit = Image.MAX_IMAGE_PIXELS or 0
    if math.isfinite(w) and math.isfinite(h) and not (limit and w * h > limit):
        return None
    return _Refused(f"{verb} {w:g}x{h:g} px, over the limit of {limit:,} pixels (a decompression bomb)",
                    'give the <svg> element a sensible width and height (e.g. width="400" height="200"; '
                    "the viewBox keeps the drawing's coordinates)")


def _load(path: Path, field: str) -> _Svg:
    try:
        st = path.stat()
    except OSError as e:
        raise _error(path, f"cannot be read ({e.strerror})", "check brand.logo.path", field) from None
    try:
        return _load_cached(str(path), st.st_mtime_ns, st.st_size)
    except _Refused as r:
        raise _error(path, r.what, r.fix, field) from None


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int, size: int) -> _Svg:
    # Keyed on the file's time and size: a logo replaced under the same name is read again.
    if size > MAX_BYTES:
        raise _Refused(f"is {size:,} bytes, over the {MAX_BYTES:,} bytes an SVG logo may be",
                       "save it without editor data (Illustrator: untick Preserve Illustrator Editing; "
                       "Inkscape: Save As Plain or Optimized SVG) or export the logo as a PNG")
    data = Path(path).read_bytes()
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _Refused(f"is not an SVG in UTF-8 ({e.reason} at byte {e.start})",
                       "save it as UTF-8 SVG (every editor's default)") from None
    root, attrs = _check(data, 0)
    view_box = attrs.get("viewBox")
    size = _intrinsic(attrs)
    if (bomb := _bomb(*size, "claims")) is not None:
        raise bomb
    return _Svg(data=data, size=size, root=root, view_box=view_box)


def _length(name: str, value: str | None) -> float | None:
    """A root width or height in px; None where it says nothing absolute (missing, a
    percentage, 'auto')."""
    if value is None:
        return None
    m = LENGTH_RE.match(value)
    if not m or m[2] == "%":
        return None
    px = float(m[1]) * UNITS[m[2] or ""]
    if not px > 0:
        raise _Refused(f"has {name}={value!r} on its <svg> element: nothing to draw",
                       f"set a {name} above 0, or remove it and keep the viewBox")
    return px


def _intrinsic(attrs: dict[str, str]) -> tuple[float, float]:
    vb = None
    if "viewBox" in attrs:
        parts = [p for p in re.split(r"[\s,]+", attrs["viewBox"].strip()) if p]
        try:
            nums = [float(p) for p in parts]
        except ValueError:
            nums = []
        if len(nums) != 4 or not all(math.isfinite(n) for n in nums):
            raise _Refused(f"has viewBox={quote(attrs['viewBox'])}, not four numbers",
                           'write it as viewBox="min-x min-y width height" (e.g. "0 0 400 200")')
        if nums[2] <= 0 or nums[3] <= 0:
            raise _Refused(f"has viewBox={quote(attrs['viewBox'])}: a width or height of 0 or less draws nothing",
                           "give the viewBox the drawing's width and height")
        vb = (nums[2], nums[3])
    w, h = _length("width", attrs.get("width")), _length("height", attrs.get("height"))
    if w is not None and h is not None:
        return w, h
    if vb is not None:
        if w is not None:
            return w, w * vb[1] / vb[0]
        if h is not None:
            return h * vb[0] / vb[1], h
        return vb
    raise _Refused("has no size: its <svg> element has no viewBox and not both a width and a height",
                   'add a viewBox with the drawing\'s extent (e.g. viewBox="0 0 400 200") to the <svg> element')


def _local(name: str) -> tuple[str, str]:
    """(namespace, local name) of an expat name split on ' '."""
    ns, _, local = name.rpartition(" ")
    return ns, local


def _check(data: bytes, depth: int) -> tuple[tuple[int, int], dict[str, str]]:
    """Parse ``data`` with expat (internal entities expanded, under expat's own limit on
    their amplification) and refuse what the module lists. Returns the root start tag's
    byte span and its attributes (unprefixed names)."""
    p = expat.ParserCreate(namespace_separator=" ")
    root: tuple[int, int] | None = None
    root_attrs: dict[str, str] = {}
    in_text = in_style = 0
    css: list[str] = []

    def entity(name: str, is_param: int, value: str | None, base: str | None, system_id: str | None,
               public_id: str | None, notation: str | None) -> None:
        # Internal entities are fine (Illustrator declares its namespaces so); external
        # ones would read a file or the network.
        if is_param or system_id or public_id or notation:
            raise _Refused(f"declares the external entity {name!r} ({quote(system_id or public_id or notation)}): "
                           "drawing a logo reads no other file and no network",
                           "remove the <!ENTITY> (or give it its text) from the DOCTYPE")

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal root, root_attrs, in_text, in_style
        ns, tag = _local(name)
        if root is None:
            if tag != "svg" or ns not in ("", SVG_NS):
                raise _Refused(f"is not an SVG: its root element is <{tag}>, not <svg>", FIX_EXPORT)
            root = (p.CurrentByteIndex, _tag_end(data, p.CurrentByteIndex))
            root_attrs = {k: v for k, v in attrs.items() if " " not in k}
        if tag == "script":
            raise _Refused("holds a script (<script>): a logo is drawn, never run, and what a script would "
                           "draw in a browser would be missing", "remove the <script> element from the SVG")
        in_text += tag in TEXT_TAGS
        in_style += tag == "style"
        for key, value in attrs.items():
            ans, attr = _local(key)
            if not ans and attr.lower().startswith("on"):
                raise _Refused(f"holds a script (the event handler {attr}= on <{tag}>): a logo is drawn, never run",
                               f"remove the {attr} attribute from the SVG")
            if attr == "href" and ans in ("", XLINK_NS) and tag != "a":  # a link is never followed
                _href(tag, value, depth)
            if "url(" in value.lower():
                _urls(value, f"<{tag} {attr}>")

    def end(name: str) -> None:
        nonlocal in_text, in_style
        tag = _local(name)[1]
        in_text -= tag in TEXT_TAGS
        in_style -= tag == "style"

    def chars(text: str) -> None:
        if in_text and text.strip():
            raise _Refused(f"sets live text (<text> {quote(text.strip())}): it would be drawn in this machine's "
                           "fonts, not the brand's",
                           "convert the text to outlines (Inkscape: Path > Object to Path; Illustrator: Type > "
                           "Create Outlines) and export the SVG again")
        if in_style:
            css.append(text)

    p.EntityDeclHandler = entity
    p.StartElementHandler = start
    p.EndElementHandler = end
    p.CharacterDataHandler = chars
    try:
        p.Parse(data, True)
    except expat.ExpatError as e:
        raise _Refused(f"is not an SVG: its XML does not parse ({expat.ErrorString(e.code)} at line {e.lineno}, "
                       f"column {e.offset})", FIX_EXPORT) from None
    if root is None:
        raise _Refused("is not an SVG: it has no <svg> element", FIX_EXPORT)
    sheet = "".join(css)
    if re.search(r"@import\b", sheet, re.IGNORECASE):
        raise _Refused("imports a style sheet (@import in <style>): drawing a logo reads no other file and no "
                       "network", "put the rules in the <style> element itself")
    if "url(" in sheet.lower():
        _urls(sheet, "<style>")
    return root, root_attrs


def _tag_end(data: bytes, start: int) -> int:
    """The index of the '>' closing the start tag at ``start`` (quotes respected)."""
    quote_char = 0
    for i in range(start, len(data)):
        c = data[i]
        if quote_char:
            if c == quote_char:
                quote_char = 0
        elif c in (0x22, 0x27):
            quote_char = c
        elif c == 0x3E:
            return i
    raise _Refused("is not an SVG: its <svg> start tag never closes", FIX_EXPORT)


OUTSIDE_FIX = ("embed what it refers to in the SVG (shapes, or an image as a data: URI) or export the logo as a "
               "PNG")


def _href(tag: str, value: str, depth: int) -> None:
    ref = value.strip()
    if ref.startswith("#"):
        return
    m = DATA_RE.match(ref)
    if m is None or tag not in ("image", "feImage"):
        raise _Refused(f"refers to {quote(ref)} (<{tag} href>) outside itself: drawing a logo reads no other "
                       "file and no network", OUTSIDE_FIX)
    mime = m[1].strip().lower() or "text/plain"
    if mime not in DATA_IMAGES:
        raise _Refused(f"embeds {mime} in <{tag}>, not a PNG, JPEG, GIF, WebP or SVG image",
                       "embed the image as PNG or JPEG, or export the logo as a PNG")
    try:
        payload = (base64.b64decode(m[3]) if ";base64" in m[2].lower()
                   else urllib.parse.unquote_to_bytes(m[3]))
    except ValueError:
        raise _Refused(f"embeds an image ({mime}) in <{tag}> whose base64 does not decode", FIX_EXPORT) from None
    if mime == "image/svg+xml":
        if depth + 1 >= NESTING:
            raise _Refused(f"nests SVG images {NESTING} deep (<{tag}> data:image/svg+xml)", FIX_EXPORT)
        _check(payload, depth + 1)  # its references and scripts, as the file's own
        return
    limit = Image.MAX_IMAGE_PIXELS or 0
    bomb_fix = "embed the image at the size it is shown"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # measured below
            with Image.open(io.BytesIO(payload)) as im:
                w, h = im.size  # the header only: nothing decoded
    except Image.DecompressionBombError:  # Pillow's own refusal, past twice its limit
        raise _Refused(f"embeds an image of more than {2 * limit:,} pixels in <{tag}>, over the limit of "
                       f"{limit:,} pixels (a decompression bomb)", bomb_fix) from None
    except (UnidentifiedImageError, OSError):
        raise _Refused(f"embeds an image ({mime}) in <{tag}> that is not a readable image", FIX_EXPORT) from None
    if limit and w * h > limit:
        raise _Refused(f"embeds a {w}x{h} px image in <{tag}>, over the limit of {limit:,} pixels "
                       "(a decompression bomb)", bomb_fix)


def _urls(text: str, where: str) -> None:
    for m in URL_RE.finditer(text):
        if not m[2].strip().startswith("#"):
            raise _Refused(f"refers to {quote(m[2].strip())} ({where} url(...)) outside itself: drawing a logo "
                           "reads no other file and no network", OUTSIDE_FIX)


ATTR_RE = re.compile(rb"""\s*([^\s=/>]+)\s*=\s*("[^"]*"|'[^']*')""")


def _resize_root(tag: bytes, w: int, h: int, view_box: str | None, size: tuple[float, float]) -> bytes:
    """The root start tag with width and height set to ``w`` x ``h`` px. A root without a
    viewBox gets one of its intrinsic size, so its drawing (in px at that size) scales."""
    m = re.match(rb"<\s*[^\s/>]+", tag)
    assert m is not None  # expat parsed it as an element
    out = [m.group(0)]
    pos = m.end()
    while True:
        a = ATTR_RE.match(tag, pos)
        if a is None:
            break
        if a[1] not in (b"width", b"height"):
            out.append(b" " + a[1] + b"=" + a[2])
        pos = a.end()
    closing = tag[pos:].strip()  # b">" or b"/>"
    out.append(f' width="{w}" height="{h}"'.encode())
    if view_box is None:
        out.append(f' viewBox="0 0 {size[0]!r} {size[1]!r}"'.encode())
    out.append(closing if closing.startswith(b"/") else b">")
    return b"".join(out)
