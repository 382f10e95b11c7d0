"""SVG logos in the brand kit (issue 13): drawn by resvg at the exact size a layout places
them, checked before anything is drawn, refused with the file and the fix.

The logo is written here as SVG (coloured shapes on a transparent background) and the
same shapes are drawn with Pillow at each size (8x supersampled): the rendered logo must
match that drawing edge for edge, where a logo scaled up from a small bitmap does not
(the same measure is shown to tell the two apart). The logo is found in the rendered
picture by cross-correlation (tests/ocr.find_logo), not read from the placement."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

from studio import layout as L
from studio.brand import BrandKit, Copy, Logo, logo_image, logo_size
from studio.brief import Brief
from studio.copyfit import copy_problems, still_copies
from studio.errors import StudioError
from studio.specs import Catalog
from studio.vector import rasterize, svg_size
from timelines.conform import conform_still

from .conftest import EXAMPLE_BRIEF, ROOT
from .ocr import find_logo

CATALOG = Catalog()
RIGHTS = {"owner": "Studio tests", "licence": "CC0-1.0", "source": "written by tests/test_svg_logo.py"}
BG = (29, 42, 68)  # the banner's plain background (the demo brand's navy)
SVG_NS = 'xmlns="http://www.w3.org/2000/svg"'

# The logo's shapes in its 240 x 120 viewBox: written as SVG and drawn by Pillow alike.
SHAPES = [
    ("circle", (60, 60, 50), (235, 70, 50)),
    ("rect", (130, 14, 96, 92), (250, 215, 40)),
    ("polygon", ((140, 100), (178, 24), (216, 100)), (20, 150, 90)),
    ("rect", (45, 45, 30, 30), (255, 255, 255)),
]
PLATE = (24, 40, 120)  # an opaque plate behind the shapes, for the still (see there)


def logo_svg(plate: bool = False) -> str:
    parts = [f'<svg {SVG_NS} viewBox="0 0 240 120">']
    if plate:
        parts.append('<rect width="240" height="120" fill="#{:02x}{:02x}{:02x}"/>'.format(*PLATE))
    for kind, g, c in SHAPES:
        fill = "#{:02x}{:02x}{:02x}".format(*c)
        if kind == "circle":
            parts.append(f'<circle cx="{g[0]}" cy="{g[1]}" r="{g[2]}" fill="{fill}"/>')
        elif kind == "rect":
            parts.append(f'<rect x="{g[0]}" y="{g[1]}" width="{g[2]}" height="{g[3]}" fill="{fill}"/>')
        else:
            parts.append(f'<polygon points="{" ".join(f"{x},{y}" for x, y in g)}" fill="{fill}"/>')
    return "".join(parts) + "</svg>"


def pillow_logo(w: int, h: int, plate: bool = False, ss: int = 8) -> Image.Image:
    """The same shapes drawn by Pillow at ``w`` x ``h`` (fitted and centred like the
    SVG's default preserveAspectRatio), supersampled ``ss`` times then box-filtered."""
    s = min(w / 240, h / 120)
    ox, oy = (w - 240 * s) / 2, (h - 120 * s) / 2
    im = Image.new("RGBA", (w * ss, h * ss), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)

    def px(x: float, y: float) -> tuple[float, float]:
        return (ox + x * s) * ss, (oy + y * s) * ss

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        (a, b), (c, e) = px(x0, y0), px(x1, y1)
        return a, b, c - 1, e - 1  # Pillow's boxes include their last pixel

    if plate:
        d.rectangle(box(0, 0, 240, 120), fill=(*PLATE, 255))
    for kind, g, c in SHAPES:
        if kind == "circle":
            cx, cy, r = g
            d.ellipse(box(cx - r, cy - r, cx + r, cy + r), fill=(*c, 255))
        elif kind == "rect":
            x, y, ww, hh = g
            d.rectangle(box(x, y, x + ww, y + hh), fill=(*c, 255))
        else:
            d.polygon([px(x, y) for x, y in g], fill=(*c, 255))
    return im.resize((w, h), Image.Resampling.BOX)


def flat(im: Image.Image, colour: tuple[int, int, int] = BG) -> Image.Image:
    """``im`` over a plain colour, RGB."""
    return Image.alpha_composite(Image.new("RGBA", im.size, (*colour, 255)), im.convert("RGBA")).convert("RGB")


def likeness(a: Image.Image, b: Image.Image) -> tuple[float, float, float]:
    """Correlation of the pixels, mean absolute error (levels of 255) and correlation of
    the luma gradients (where edges are: a soft edge spreads and lowers it)."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)

    def grad(v: np.ndarray) -> np.ndarray:
        g = v.mean(axis=2)
        return np.hypot(np.diff(g, axis=1)[:-1, :], np.diff(g, axis=0)[:, :-1])

    return (float(np.corrcoef(x.ravel(), y.ravel())[0, 1]), float(np.abs(x - y).mean()),
            float(np.corrcoef(grad(x).ravel(), grad(y).ravel())[0, 1]))


def sharp(m: tuple[float, float, float]) -> bool:
    # Measured (resvg 0.48 via resvg-py 0.5.0) at 27-400 px high: corr >= 0.998, error <= 0.9,
    # gradient corr >= 0.988; the 27 px render scaled up to 177 px: 0.979, 6.3, 0.51.
    corr, err, gcorr = m
    return corr > 0.995 and err < 2.0 and gcorr > 0.95


@pytest.fixture(scope="module")
def svg_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("brand") / "logo.svg"
    p.write_text(logo_svg(), encoding="utf-8")
    return p


def spec_frame(channel: str) -> tuple[int, int, tuple[int, int, int, int]]:
    spec = CATALOG.spec(channel)
    return spec.width, spec.height, spec.safe_rect()


# ---------------------------------------------------------------- drawn at the placed size


@pytest.mark.parametrize(("channel", "name"), [("banner-300x250", "copy-top"),
                                               ("social-still-1080", "end-card-centred")])
def test_svg_logo_is_drawn_sharp_where_the_layout_places_it(channel: str, name: str, svg_file: Path) -> None:
    brand = BrandKit.model_validate({"logo": {"path": str(svg_file), "rights": RIGHTS}})
    w, h, safe = spec_frame(channel)
    bg = Image.new("RGB", (w, h), BG)
    placement = L.fit(L.get_layout(name), Copy(headline="Summer sale"), brand, w, h, safe, channel=channel,
                      background=bg)
    picture = L.render(placement, bg).convert("RGB")
    x0, y0, x1, y1 = placement.logo.box
    lw, lh = x1 - x0, y1 - y0
    # the SVG's aspect (2:1 from its viewBox) sizes the box; the two channels are far apart
    assert abs(lw - 2 * lh) <= 1, (lw, lh)
    assert lh == (27 if channel == "banner-300x250" else 177), lh
    # the record hashes the file's bytes, as for a PNG
    assert placement.logo.sha256 == hashlib.sha256(svg_file.read_bytes()).hexdigest()

    # found by cross-correlation over the whole picture, where the layout put it
    reference = flat(pillow_logo(lw, lh))
    fx, fy, score = find_logo(picture, reference)
    assert score > 0.95 and abs(fx - x0) <= 1 and abs(fy - y0) <= 1, (fx, fy, score, placement.logo.box)

    # edge for edge the shapes Pillow draws at that size
    drawn = picture.crop((x0, y0, x1, y1))
    m = likeness(drawn, reference)
    assert sharp(m), m
    if lh > 100:
        # The same measure fails a logo drawn small and scaled up (what a PNG export
        # sized for the banner would give at this channel's size): it can tell.
        small = rasterize(svg_file, height=27).resize((lw, lh), Image.Resampling.LANCZOS)
        blurred = likeness(flat(small), reference)
        assert not sharp(blurred), blurred


def test_rasterize_gives_the_exact_size_asked_on_a_transparent_background(svg_file: Path) -> None:
    assert svg_size(svg_file) == (240.0, 120.0)
    for (w, h), want in [((401, 200), (401, 200)), ((37, 19), (37, 19)), ((None, 50), (100, 50)),
                         ((1000, None), (1000, 500)), ((None, None), (240, 120)), ((240, 240), (240, 240))]:
        im = rasterize(svg_file, w, h)
        assert im.mode == "RGBA" and im.size == want, ((w, h), im.size)
        a = np.asarray(im)
        assert a[0, 0, 3] == 0 and a[-1, -1, 3] == 0  # nothing drawn behind the shapes
    # the circle's fill, exactly, inside it (25, 60 of 240 x 120 -> 104, 250 at 1000 x 500)
    assert rasterize(svg_file, 1000).getpixel((104, 250)) == (235, 70, 50, 255)
    # another aspect: the drawing whole and centred (240 x 120 in 240 x 240: 60 px free above)
    a = np.asarray(rasterize(svg_file, 240, 240))[..., 3]
    rows = np.nonzero(a.max(axis=1))[0]
    assert rows.min() >= 60 and rows.max() < 180, (rows.min(), rows.max())
    # brand's helpers: the SVG by its intrinsic size and drawn at the size asked
    assert logo_size(svg_file) == (240.0, 120.0)
    assert logo_image(svg_file, 64, 32).size == (64, 32)


@pytest.mark.parametrize(("attrs", "size"), [
    ('viewBox="0 0 240 120"', (240, 120)),
    ('width="300" height="100"', (300, 100)),
    ('width="480" viewBox="0 0 240 120"', (480, 240)),  # the other side from the viewBox's aspect
    ('height="60px" viewBox="0,0,240,120"', (120, 60)),
    ('width="100%" height="100%" viewBox="0 0 240 120"', (240, 120)),  # percentages: the viewBox
    ('width="1in" height="36pt"', (96, 48)),
    ('width="50.8mm" height="2.54cm"', (192, 96)),
])
def test_svg_size_from_width_height_and_viewbox(tmp_path: Path, attrs: str, size: tuple[float, float]) -> None:
    p = tmp_path / "logo.svg"
    p.write_text(f'<svg {SVG_NS} {attrs}><rect width="10" height="10"/></svg>', encoding="utf-8")
    w, h = svg_size(p)
    assert abs(w - size[0]) < 1e-6 and abs(h - size[1]) < 1e-6, (w, h)
    assert rasterize(p).size == (round(size[0]), round(size[1]))


def test_a_replaced_logo_is_read_again(tmp_path: Path) -> None:
    p = tmp_path / "logo.svg"
    p.write_text(f'<svg {SVG_NS} viewBox="0 0 240 120"/>', encoding="utf-8")
    assert svg_size(p) == (240, 120)
    p.write_text(f'<svg {SVG_NS} viewBox="0 0 100 100"/>', encoding="utf-8")
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    assert svg_size(p) == (100, 100)


def _png_bytes(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def test_an_illustrator_style_export_is_drawn(tmp_path: Path) -> None:
    """What editors write: an XML declaration, a DOCTYPE with internal entities
    (Illustrator's namespaces), a <switch> whose foreignObject a renderer skips, private
    data in CDATA, class styles, a gradient, a link and an embedded PNG: all drawn."""
    blue = base64.b64encode(_png_bytes((8, 8), (0, 0, 255))).decode()
    svg = f"""<?xml version="1.0" encoding="utf-8"?>
<!-- Generator: Adobe Illustrator 27.0.0, SVG Export Plug-In -->
<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd" [
  <!ENTITY ns_extend "http://ns.adobe.com/Extensibility/1.0/">
  <!ENTITY ns_ai "http://ns.adobe.com/AdobeIllustrator/10.0/">
]>
<svg version="1.1" xmlns:x="&ns_extend;" xmlns:i="&ns_ai;" xmlns="http://www.w3.org/2000/svg"
     xmlns:xlink="http://www.w3.org/1999/xlink" x="0px" y="0px" width="300px" height="100px"
     viewBox="0 0 300 100" style="enable-background:new 0 0 300 100;" xml:space="preserve">
<style type="text/css">
  .st0{{fill:#E03020;}}
  .st1{{fill:url(#fade);}}
</style>
<defs><linearGradient id="fade" x1="0" x2="1"><stop offset="0" stop-color="#000000"/>
<stop offset="1" stop-color="#ffffff"/></linearGradient></defs>
<switch>
  <foreignObject requiredExtensions="&ns_ai;" x="0" y="0" width="1" height="1">
    <i:pgfRef xlink:href="#adobe_illustrator_pgf"></i:pgfRef>
  </foreignObject>
  <g i:extraneous="self">
    <a href="https://example.com/brand"><rect class="st0" x="0" y="0" width="100" height="100"/></a>
    <rect class="st1" x="100" y="0" width="100" height="100"/>
    <image x="200" y="0" width="100" height="100" xlink:href="data:image/png;base64,{blue}"/>
  </g>
</switch>
<i:pgf id="adobe_illustrator_pgf"><![CDATA[KLUv/QBYbQ==]]></i:pgf>
</svg>"""
    p = tmp_path / "exported.svg"
    p.write_text(svg, encoding="utf-8")
    assert svg_size(p) == (300, 100)
    a = np.asarray(rasterize(p, 600, 200)).astype(int)
    assert tuple(a[100, 100]) == (224, 48, 32, 255)  # the class's red
    left, right = a[100, 210], a[100, 390]  # the gradient: dark at its left, light at its right
    assert left[3] == right[3] == 255 and left[:3].mean() < 40 and right[:3].mean() > 215, (left, right)
    assert tuple(a[100, 500]) == (0, 0, 255, 255)  # the embedded PNG


# ---------------------------------------------------------------- refused, with the file and the fix


def _huge_png_header(side: int) -> bytes:
    """A PNG whose header claims ``side`` x ``side`` px (nothing else needed: the size is
    read from the header, never decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


HEAD = f'<svg {SVG_NS} xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 100 50">'
RECT = '<rect width="10" height="10"/>'
EXPORT_FIX = "export the logo again as a plain SVG (or as a PNG with transparency)"
OUTSIDE_FIX = "embed what it refers to in the SVG"
BOMB_FIX = "give the <svg> element a sensible width and height"
REFUSED = [  # id, file content, what (regex matching the start after "logo file '<path>' "), fix (start)
    ("not-xml", "this is not a drawing",
     r"is not an SVG: its XML does not parse \(syntax error at line 1, column 0\)", EXPORT_FIX),
    ("a-png-named-svg", _png_bytes((4, 4), (1, 2, 3)), r"is not an SVG in UTF-8 \(invalid start byte at byte 0\)",
     "save it as UTF-8 SVG"),
    ("html", "<html><body><p>logo</p></body></html>", r"is not an SVG: its root element is <html>, not <svg>",
     EXPORT_FIX),
    ("no-size", f"<svg {SVG_NS}>{RECT}</svg>",
     r"has no size: its <svg> element has no viewBox and not both a width and a height", "add a viewBox"),
    ("width-only", f'<svg {SVG_NS} width="100">{RECT}</svg>',
     r"has no size: its <svg> element has no viewBox and not both a width and a height", "add a viewBox"),
    ("zero-viewbox", f'<svg {SVG_NS} viewBox="0 0 0 50">{RECT}</svg>',
     r"has viewBox='0 0 0 50': a width or height of 0 or less draws nothing", "give the viewBox"),
    ("http-image", HEAD + '<image href="http://example.com/logo.png" width="10" height="10"/></svg>',
     r"refers to 'http://example.com/logo.png' \(<image href>\) outside itself: drawing a logo reads no other "
     r"file and no network", OUTSIDE_FIX),
    ("file-image", HEAD + '<image xlink:href="../secret.png" width="10" height="10"/></svg>',
     r"refers to '\.\./secret\.png' \(<image href>\) outside itself", OUTSIDE_FIX),
    ("file-url-image", HEAD + '<image href="file:///etc/hostname" width="10" height="10"/></svg>',
     r"refers to 'file:///etc/hostname' \(<image href>\) outside itself", OUTSIDE_FIX),
    ("use-other-file", HEAD + '<use href="shapes.svg#star"/></svg>',
     r"refers to 'shapes\.svg#star' \(<use href>\) outside itself", OUTSIDE_FIX),
    ("css-url", HEAD + '<rect width="10" height="10" style="fill: url(https://example.com/p.svg#g)"/></svg>',
     r"refers to 'https://example\.com/p\.svg#g' \(<rect style> url\(\.\.\.\)\) outside itself", OUTSIDE_FIX),
    ("css-import", HEAD + '<style>@import url("https://example.com/brand.css");</style>' + RECT + "</svg>",
     r"imports a style sheet \(@import in <style>\): drawing a logo reads no other file and no network",
     "put the rules in the <style> element itself"),
    ("external-entity",
     '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
     + HEAD + "<title>&secret;</title></svg>",
     r"declares the external entity 'secret' \('file:///etc/passwd'\): drawing a logo reads no other file",
     "remove the <!ENTITY>"),
    ("script", HEAD + "<script>document.title = 1</script>" + RECT + "</svg>",
     r"holds a script \(<script>\): a logo is drawn, never run", "remove the <script> element"),
    ("onload", f'<svg {SVG_NS} viewBox="0 0 100 50" onload="alert(1)">{RECT}</svg>',
     r"holds a script \(the event handler onload= on <svg>\): a logo is drawn, never run",
     "remove the onload attribute"),
    ("bomb", f'<svg {SVG_NS} width="100000" height="100000">{RECT}</svg>',
     r"claims 100000x100000 px, over the limit of 89,478,485 pixels \(a decompression bomb\)", BOMB_FIX),
    ("bomb-viewbox", f'<svg {SVG_NS} viewBox="0 0 1e9 1e9">{RECT}</svg>',
     r"claims 1e\+09x1e\+09 px, over the limit of 89,478,485 pixels \(a decompression bomb\)", BOMB_FIX),
    ("embedded-bomb", HEAD + '<image width="10" height="10" href="data:image/png;base64,'
     + base64.b64encode(_huge_png_header(10000)).decode() + '"/></svg>',
     r"embeds a 10000x10000 px image in <image>, over the limit of 89,478,485 pixels \(a decompression bomb\)",
     "embed the image at the size it is shown"),
    ("embedded-huge-bomb", HEAD + '<image width="10" height="10" href="data:image/png;base64,'
     + base64.b64encode(_huge_png_header(30000)).decode() + '"/></svg>',
     r"embeds an image of more than 178,956,970 pixels in <image>, over the limit of 89,478,485 pixels "
     r"\(a decompression bomb\)", "embed the image at the size it is shown"),
    ("embedded-not-an-image", HEAD + '<image width="10" height="10" href="data:image/png;base64,aGVsbG8="/></svg>',
     r"embeds an image \(image/png\) in <image> that is not a readable image", EXPORT_FIX),
    ("nested-svg-outside", HEAD + '<image width="10" height="10" href="data:image/svg+xml;base64,'
     + base64.b64encode(f'<svg {SVG_NS} viewBox="0 0 9 9"><image href="http://example.com/x.png"/></svg>'
                        .encode()).decode() + '"/></svg>',
     r"refers to 'http://example\.com/x\.png' \(<image href>\) outside itself", OUTSIDE_FIX),
    ("live-text", HEAD + '<text x="0" y="20">ACME</text></svg>',
     r"sets live text \(<text> 'ACME'\): it would be drawn in this machine's fonts, not the brand's",
     "convert the text to outlines"),
]


@pytest.mark.parametrize(("content", "what", "fix"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_a_bad_svg_logo_is_refused_with_the_file_and_the_fix(tmp_path: Path, content: str | bytes, what: str,
                                                             fix: str) -> None:
    p = tmp_path / "logo.svg"
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    style_file = tmp_path / "acme.yaml"
    brand = BrandKit.model_validate({"logo": {"path": "logo.svg", "rights": RIGHTS}})
    # measured, drawn, or looked up through the kit: the same refusal, before resvg sees it
    for call in (lambda: svg_size(p), lambda: rasterize(p, 100, 50), lambda: brand.logo_file(style_file)):
        with pytest.raises(StudioError) as e:
            call()
        err = e.value
        assert err.field == "brand.logo", err.field
        assert re.match(re.escape(f"logo file '{p}' ") + what, err.what), err.what
        assert err.fix.startswith(fix), err.fix
    # the kit's lookup names the style pack as the source (its brand.logo is what to fix)
    assert err.source == str(style_file)
    assert err.line().startswith(f"{style_file}: brand.logo: logo file '{p}' "), err.line()


def test_drawing_far_over_the_pixel_limit_is_refused(svg_file: Path) -> None:
    with pytest.raises(StudioError, match=r"would be drawn at 20000x10000 px, over the limit of 89,478,485 pixels"):
        rasterize(svg_file, 20000)
    # the limit is Pillow's, as for a PNG: lowered, a small size is refused too
    limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = 1000
        with pytest.raises(StudioError, match=r"would be drawn at 100x50 px, over the limit of 1,000 pixels"):
            rasterize(svg_file, 100)
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def test_the_logo_path_takes_svg_or_png() -> None:
    assert Logo(path="brand/acme.SVG", rights=RIGHTS).path == "brand/acme.SVG"
    assert Logo(path="brand/acme.png", rights=RIGHTS).path == "brand/acme.png"
    with pytest.raises(ValueError, match=r"'brand/acme\.gif' is not a \.png or \.svg file"):
        Logo(path="brand/acme.gif", rights=RIGHTS)
    with pytest.raises(ValueError, match=r"is not a \.png or \.svg file"):
        Logo(path="brand/acme.svgz", rights=RIGHTS)  # compressed: not taken


# ---------------------------------------------------------------- through a style pack and a still


def _pack_with_svg_logo(tmp_path: Path, svg: str) -> Catalog:
    """golden-hour copied to ``tmp_path`` with its logo as brand/logo.svg."""
    styles = tmp_path / "styles"
    (styles / "brand").mkdir(parents=True)
    (styles / "brand" / "logo.svg").write_text(svg, encoding="utf-8")
    pack = yaml.safe_load((ROOT / "studio" / "data" / "styles" / "golden-hour.yaml").read_text())
    pack["finishing"]["lut"] = str(ROOT / "studio" / "data" / "luts" / "golden-hour.cube")
    pack["brand"]["logo"]["path"] = "brand/logo.svg"
    (styles / "golden-hour.yaml").write_text(yaml.safe_dump(pack, sort_keys=False), encoding="utf-8")
    return Catalog(styles_dir=styles)


def _still_brief() -> Brief:
    d = yaml.safe_load(EXAMPLE_BRIEF.read_text())
    d.update(channels=["social-still-1080"], candidates=1)
    d.pop("stills", None)
    return Brief.model_validate(d)


def test_a_bad_svg_in_a_style_pack_is_one_line_before_any_work(tmp_path: Path) -> None:
    catalog = _pack_with_svg_logo(tmp_path, HEAD + '<image href="https://cdn.example.com/a.png"/></svg>')
    specs = [catalog.spec(n) for n in ("banner-300x250", "banner-728x90", "social-still-1080")]
    lines = [e.line() for e in copy_problems(_still_brief(), specs, catalog, "brief.yaml")]
    pack = tmp_path / "styles" / "golden-hour.yaml"
    logo = tmp_path / "styles" / "brand" / "logo.svg"
    assert lines == [f"{pack}: brand.logo: logo file '{logo}' refers to 'https://cdn.example.com/a.png' "
                     "(<image href>) outside itself: drawing a logo reads no other file and no network — embed "
                     "what it refers to in the SVG (shapes, or an image as a data: URI) or export the logo as a "
                     "PNG"], lines


def test_a_still_is_conformed_with_the_svg_logo(tmp_path: Path) -> None:
    """The still path for real: the style pack's SVG logo through copyfit's StillCopy and
    timelines.conform.conform_still onto a keyframe, read back from the delivered file.
    The logo here has an opaque plate: find_logo matches grey pixels, and a transparent
    logo's template would be black where the picture shows through."""
    svg = logo_svg(plate=True)
    catalog = _pack_with_svg_logo(tmp_path, svg)
    brief = _still_brief()
    spec = catalog.spec("social-still-1080")
    assert copy_problems(brief, [spec], catalog) == []
    copy = still_copies(brief, spec, catalog)[0]
    sha = hashlib.sha256(svg.encode()).hexdigest()
    assert copy.recipe()["logo_sha256"] == sha  # the cache key: the SVG file's bytes

    t = np.linspace(0.0, 1.0, 1920)[None, :, None]
    frame = np.broadcast_to(np.array([60, 30, 20]) + np.array([120, 140, 150]) * t, (1080, 1920, 3))
    keyframe = tmp_path / "keyframe.png"
    Image.fromarray(frame.astype(np.uint8)).save(keyframe)
    out = tmp_path / "still.jpg"
    res = conform_still(keyframe, (0.5, 0.5), spec, out, copy=copy)
    placed = res["copy"]["placement"]["logo"]
    assert placed["sha256"] == sha
    x0, y0, x1, y1 = placed["box"]
    with Image.open(out) as im:
        picture = im.convert("RGB")
    reference = flat(pillow_logo(x1 - x0, y1 - y0, plate=True))
    fx, fy, score = find_logo(picture, reference)
    assert score > 0.95 and abs(fx - x0) <= 1 and abs(fy - y0) <= 1, (fx, fy, score, placed["box"])
    m = likeness(picture.crop((x0, y0, x1, y1)), reference)
    assert m[0] > 0.99 and m[1] < 6, m  # through a JPEG: a little looser than the layer itself
