"""studio.layout: copy, button and logo fitted into each channel's safe area and rendered.

Everything here is measured on the rendered pixels, never taken from the placement's own
numbers: Tesseract (Debian's tesseract-ocr, eng and fra; scripts/setup.sh --test installs
it) reads the copy back, the logo is found by normalised cross-correlation, the safe area
is checked from the layer's alpha, and contrast from the composited picture."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio import layout as L
from studio.brand import BrandKit, Copy
from studio.errors import StudioError
from studio.specs import Catalog, StylePack

# OCR, colour keying and NCC template matching, shared with the stills and video copy tests
from .ocr import colour_key, find_template, grey, make_logo_png, words_in_order
from .ocr import ocr_readings as ocr

CATALOG = Catalog()
RIGHTS = {"owner": "Studio tests", "licence": "CC0-1.0", "source": "drawn by tests/test_layout.py"}
COPY = Copy(headline="Summer sale on every flight", subline="Book by Friday and save on fares",
            cta="Book now", legal="Fares from 49 GBP one way. Terms apply.")


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def logo_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_logo_png(tmp_path_factory.mktemp("brand") / "logo.png")


@pytest.fixture(scope="module")
def brand(logo_png: Path) -> BrandKit:
    return BrandKit.model_validate({"logo": {"path": str(logo_png), "rights": RIGHTS}})


def gradient(w: int, h: int) -> Image.Image:
    """Dark blue at the left to light orange at the right: white text fails on the right."""
    t = np.linspace(0.0, 1.0, w)[None, :, None]
    a, b = np.array([10, 20, 60]), np.array([250, 200, 150])
    return Image.fromarray(np.broadcast_to(a + (b - a) * t, (h, w, 3)).astype(np.uint8))


def noise(w: int, h: int) -> Image.Image:
    """A busy picture: coloured blocks of 1-8 px, every tone from black to white."""
    rng = np.random.default_rng(13)
    coarse = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    fine = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    big = np.repeat(np.repeat(coarse, 4, axis=0), 4, axis=1)[:h, :w]
    return Image.fromarray(np.where(rng.random((h, w, 1)) < 0.3, fine, big).astype(np.uint8))


def white(w: int, h: int) -> Image.Image:
    return Image.new("RGB", (w, h), (255, 255, 255))


def spec_frame(channel: str) -> tuple[int, int, tuple[int, int, int, int]]:
    spec = CATALOG.spec(channel)
    return spec.width, spec.height, spec.safe_rect()


CASES = [  # channel, layout, background
    ("banner-300x250", "copy-top", gradient),
    ("banner-300x250", "end-card-centred", noise),
    ("banner-728x90", "banner-strip", gradient),
    ("banner-728x90", "banner-strip", noise),
    ("social-still-1080", "hero-left-copy-right", noise),
    ("social-still-1080", "copy-top", white),
    ("youtube-1080p", "lower-third", gradient),
    ("youtube-1080p", "end-card-centred", white),
]


# ---------------------------------------------------------------- rendered and read back


@pytest.mark.parametrize(("channel", "name", "make_bg"), CASES,
                         ids=[f"{c}-{n}-{b.__name__}" for c, n, b in CASES])
def test_layout_reads_back_logo_and_safe_area(channel: str, name: str, make_bg, brand: BrandKit,
                                              logo_png: Path) -> None:
    w, h, safe = spec_frame(channel)
    bg = make_bg(w, h)
    placement = L.fit(L.get_layout(name), COPY, brand, w, h, safe, channel=channel, background=bg)
    layer = L.render(placement, None, (w, h))
    picture = L.composite(bg, layer)

    # OCR reads the headline and the call to action back from the whole picture; where
    # Tesseract's page segmentation drowns in a busy picture, from the picture keyed to
    # the text's colour (the brand's, an input: where the glyphs are is still measured).
    whole = ocr(picture)
    for t in placement.texts:
        if t.role in ("headline", "cta") and not words_in_order(t.text, whole):
            keyed = ocr(colour_key(picture, t.colour))
            assert words_in_order(t.text, keyed), (channel, name, t.role, whole, keyed)

    # The logo is where the layout put it: the brand's PNG at the placed size, found by
    # cross-correlation over the whole picture.
    x0, y0, x1, y1 = placement.logo.box
    with Image.open(logo_png) as im:
        template = grey(im.convert("RGBA").resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS))
    fx, fy, score = find_template(grey(picture), template)
    assert score > 0.9, score
    assert abs(fx - x0) <= 2 and abs(fy - y0) <= 2, ((fx, fy), (x0, y0))

    # Nothing of the layer (text, button, scrim, logo) outside the channel's safe area,
    # from the pixels: the safe rectangle comes from the spec, not from the placement.
    alpha = np.asarray(layer)[..., 3]
    ys, xs = np.nonzero(alpha)
    assert len(xs) > 0
    sx0, sy0, sx1, sy1 = safe
    assert xs.min() >= sx0 and xs.max() < sx1 and ys.min() >= sy0 and ys.max() < sy1, \
        ((xs.min(), ys.min(), xs.max(), ys.max()), safe)


def test_french_copy_reads_back_with_its_accents(brand: BrandKit) -> None:
    copy = Copy(headline="Découvrez l'été à prix réduit", cta="Réservez !")
    w, h, safe = spec_frame("social-still-1080")
    bg = gradient(w, h)
    placement = L.fit(L.get_layout("copy-top"), copy, brand, w, h, safe, channel="social-still-1080",
                      background=bg)
    read = ocr(L.render(placement, bg), lang="fra")
    assert words_in_order("Découvrez l'été à prix réduit", read), read
    assert words_in_order("Réservez", read), read
    # "Réservez !": the French space before "!" never becomes a line break.
    cta = next(t for t in placement.texts if t.role == "cta")
    assert [ln.text for ln in cta.lines] == ["Réservez !"]


def test_french_punctuation_stays_with_its_word() -> None:
    assert L.units("« Vite » : c'est l'été !") == ["« Vite » :", "c'est", "l'été !"]
    # a no-break space holds, an ordinary one breaks
    assert L.units("49\u00a0€ par personne") == ["49\u00a0€", "par", "personne"]
    brand = BrandKit()
    text = "Les « soldes » d'été sont là ! Venez vite : tout doit partir ?"
    w, h, safe = spec_frame("banner-300x250")
    p = L.fit(L.get_layout("copy-top"), Copy(headline=text), brand, w, h, safe, channel="banner-300x250")
    lines = [ln.text for ln in p.texts[0].lines]
    assert len(lines) > 1 and " ".join(lines) == text
    for ln in lines:
        assert not ln.startswith(("!", "?", ":", "»")) and not ln.endswith("«"), lines


def test_copy_space_from_the_beat_moves_the_copy(brand: BrandKit) -> None:
    """hero-left-copy-right with the beat's copy space on the left: every drawn pixel
    (no legal line here, whose region is the safe area's) lies in that space."""
    w, h, safe = spec_frame("youtube-1080p")
    space = (0, 200, 800, 1000)  # frame pixels; the part outside the safe area is dropped
    copy = Copy(headline=COPY.headline, subline=COPY.subline, cta=COPY.cta)
    p = L.fit(L.get_layout("hero-left-copy-right"), copy, brand, w, h, safe, space, channel="youtube-1080p",
              background=Image.new("RGB", (w, h), (0, 0, 0)))
    ys, xs = np.nonzero(np.asarray(L.render(p))[..., 3])
    assert xs.min() >= max(space[0], safe[0]) and xs.max() < space[2], (xs.min(), xs.max())
    assert ys.min() >= space[1] and ys.max() < space[3], (ys.min(), ys.max())
    with pytest.raises(StudioError, match="copy space .* lies outside the safe area"):
        L.fit(L.get_layout("hero-left-copy-right"), copy, brand, w, h, safe, (0, 0, 40, 40), channel="youtube-1080p")


def test_text_is_never_clipped(brand: BrandKit) -> None:
    """Each line drawn on its own on an unbounded canvas (Pillow, not the layer) keeps all
    its ink inside the text's box and region, so nothing the layer cuts to the box is lost."""
    for channel, name in [("banner-300x250", "copy-top"), ("banner-728x90", "banner-strip"),
                          ("youtube-1080p", "lower-third")]:
        w, h, safe = spec_frame(channel)
        copy = Copy(headline="Jérôme's «quirky» gift: 50% off — ÀÉÎÕÜ gjpqy!", cta="Get yours",
                    legal="Offer ends 31/08. Terms & conditions apply.")
        p = L.fit(L.get_layout(name), copy, brand, w, h, safe, channel=channel)
        layer_alpha = np.asarray(L.render(p))[..., 3]
        for t in p.texts:
            canvas = Image.new("L", (w + 200, h + 200), 0)
            draw = ImageDraw.Draw(canvas)
            font = L._font(p.font, t.size_px)
            for ln in t.lines:
                draw.text((ln.x + 100, ln.y + 100), ln.text, font=font, fill=255, anchor="ls")
            x0, y0, x1, y1 = (v - 100 if i < 2 else v - 100 for i, v in enumerate(canvas.getbbox()))
            bx0, by0, bx1, by1 = t.box
            rx0, ry0, rx1, ry1 = t.region
            assert bx0 <= x0 and by0 <= y0 and x1 <= bx1 and y1 <= by1, (channel, t.role, (x0, y0, x1, y1), t.box)
            assert rx0 <= x0 and ry0 <= y0 and x1 <= rx1 and y1 <= ry1, (channel, t.role, t.region)
            # and the layer holds the same ink there
            ink = np.asarray(canvas)[100:100 + h, 100:100 + w] > 0
            assert layer_alpha[ink].min() > 0


# ---------------------------------------------------------------- contrast


def _scrim_contrast(picture: Image.Image) -> tuple[float, int]:
    """The contrast between the glyphs and the pixels just around them, from a rendered
    white-on-white picture: the scrim is where the picture is not white; glyph cores are
    the brightest pixels inside it; the surround is 2-4 px from a glyph (past the
    antialiased edge). Worst case: the surround's 95th percentile of luminance."""
    lum = L.luminance(np.asarray(picture.convert("RGB")))
    dark = lum < 0.9
    ys, xs = np.nonzero(dark)
    assert len(xs), "no scrim: the picture is white everywhere"
    box = lum[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    glyph = box > 0.95

    def dilate(mask: np.ndarray, r: int) -> np.ndarray:
        out = mask.copy()
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                out |= np.roll(np.roll(mask, dy, 0), dx, 1)
        return out

    ring = dilate(glyph, 4) & ~dilate(glyph, 1)
    text_lum = float(np.median(box[glyph]))
    worst = float(np.percentile(box[ring], 95))
    return (max(text_lum, worst) + 0.05) / (min(text_lum, worst) + 0.05), int(glyph.sum())


@pytest.mark.parametrize(("role", "need"), [("subline", 4.5), ("legal", 4.5), ("headline", 3.0)])
def test_white_on_white_gets_a_scrim_that_passes(role: str, need: float) -> None:
    brand = BrandKit(colours={"text": "#ffffff"})  # no logo: only the one text and its scrim
    w, h, safe = spec_frame("banner-300x250")
    bg = white(w, h)
    copy = Copy(**{role: {"headline": "Summer sale", "subline": "Book by Friday and save",
                          "legal": "Fares from 49 GBP. Terms apply."}[role]})
    p = L.fit(L.get_layout("copy-top"), copy, brand, w, h, safe, channel="banner-300x250", background=bg)
    (t,) = p.texts
    assert t.ratio_before == pytest.approx(1.0) and t.scrim is not None
    # WCAG's large text is 18.66 px bold and up: the headline is large here, the rest body.
    assert (t.required_ratio == 3.0) == (role == "headline") == (t.size_px >= 18.66)
    ratio, glyph_px = _scrim_contrast(L.render(p, bg))
    assert glyph_px > 50
    assert ratio >= need, (role, ratio)
    assert ratio >= 4.5 or role == "headline"
    # the placement's own record agrees with the pixels to within rounding and antialiasing
    assert abs(t.ratio_after - ratio) / ratio < 0.1, (t.ratio_after, ratio)


def test_scrims_that_meet_do_not_darken_twice() -> None:
    """Headline and subline scrims overlap on a white picture; the darkest pixel drawn
    is the strongest single scrim's, not the two stacked."""
    w, h, safe = spec_frame("social-still-1080")
    bg = white(w, h)
    p = L.fit(L.get_layout("hero-left-copy-right"), Copy(headline=COPY.headline, subline=COPY.subline),
              BrandKit(), w, h, safe, channel="social-still-1080", background=bg)
    a, b = (t.scrim for t in p.texts)
    assert L._intersect(tuple(a.box), tuple(b.box)) is not None  # they do meet here
    darkest = int(np.asarray(L.render(p, bg).convert("RGB")).min())
    strongest = max(a.rgba[3], b.rgba[3])
    assert abs(darkest - round(255 * (1 - strongest / 255))) <= 1, (darkest, a.rgba, b.rgba)


def test_text_that_passes_gets_no_scrim(brand: BrandKit) -> None:
    w, h, safe = spec_frame("youtube-1080p")
    black = Image.new("RGB", (w, h), (0, 0, 0))
    p = L.fit(L.get_layout("end-card-centred"), COPY, brand, w, h, safe, channel="youtube-1080p", background=black)
    assert all(t.scrim is None for t in p.texts)
    assert all(t.ratio_before == pytest.approx(21.0) for t in p.texts if t.role != "cta")
    # no scrim in the pixels either: outside the button and the logo every drawn pixel
    # is the text colour (white over black), so the picture holds only black and white
    picture = np.asarray(L.render(p, black).convert("RGB")).copy()
    for box in [p.logo.box] + [t.button.box for t in p.texts if t.button]:
        picture[box[1]:box[3], box[0]:box[2]] = 0
    assert set(np.unique(picture[..., 0] - picture[..., 2])) == {0}, "a coloured or grey box was drawn"
    # and the logo's clear space holds no text pixel
    x0, y0, x1, y1 = p.logo.clear_box
    lx0, ly0, lx1, ly1 = p.logo.box
    ring = np.asarray(L.render(p))[y0:y1, x0:x1, 3].copy()
    ring[ly0 - y0:ly1 - y0, lx0 - x0:lx1 - x0] = 0
    assert ring.max() == 0


def test_cta_colours_that_fail_contrast_are_refused() -> None:
    brand = BrandKit(colours={"cta_background": "#777777", "cta_foreground": "#888888"})
    w, h, safe = spec_frame("banner-300x250")
    with pytest.raises(StudioError) as e:
        L.fit(L.get_layout("copy-top"), Copy(headline="Sale", cta="Buy"), brand, w, h, safe, channel="banner-300x250")
    assert e.value.field == "brand.colours.cta_foreground"
    assert re.search(r"has 1\.\d\d:1 contrast at \d+ px in banner-300x250; WCAG AA needs 4\.5:1", str(e.value))


# ---------------------------------------------------------------- refusals


def test_too_long_text_names_field_channel_and_overrun(brand: BrandKit) -> None:
    w, h, safe = spec_frame("banner-300x250")
    copy = Copy(headline="The longest summer sale we have ever run, on every flight to every city we fly to",
                cta="Book")
    with pytest.raises(StudioError) as e:
        L.fit(L.get_layout("copy-top"), copy, brand, w, h, safe, channel="banner-300x250")
    msg = str(e.value)
    assert e.value.field == "copy.headline"
    assert "channel banner-300x250" in msg
    m = re.search(r"needs (\d+) px, the region has (\d+) px: (\d+)% too long", msg)
    assert m, msg
    need, have, pct = (int(g) for g in m.groups())
    assert need > have and pct == -(-(need - have) * 100 // have)  # ceil
    assert re.search(r"% too long \(high: \d lines at 12 px, at most 2 lines\)", msg), msg
    assert "shorten the headline for banner-300x250 or pick another layout" in msg
    # the same copy fits a bigger frame
    w, h, safe = spec_frame("youtube-1080p")
    L.fit(L.get_layout("end-card-centred"), copy, brand, w, h, safe, channel="youtube-1080p")


def test_a_word_wider_than_its_region_is_refused_not_broken(brand: BrandKit) -> None:
    w, h, safe = spec_frame("banner-300x250")
    with pytest.raises(StudioError) as e:
        L.fit(L.get_layout("copy-top"), Copy(headline="Supercalifragilisticexpialidocious-extraordinaire"),
              brand, w, h, safe, channel="banner-300x250")
    msg = str(e.value)
    assert e.value.field == "copy.headline"
    assert re.search(r"needs \d+ px, the region has 276 px: \d+% too long \(across: the word "
                     r"'Supercalifragilisticexpialidocious-extraordinaire' at 12 px is wider", msg), msg
    assert "shorten the headline for banner-300x250" in msg


def test_logo_below_its_minimum_and_missing_regions_are_refused(logo_png: Path) -> None:
    big = BrandKit.model_validate({"logo": {"path": str(logo_png), "rights": RIGHTS}, "logo_min_height_px": 60})
    w, h, safe = spec_frame("banner-728x90")
    with pytest.raises(StudioError) as e:
        L.fit(L.get_layout("banner-strip"), Copy(headline="Sale"), big, w, h, safe, channel="banner-728x90")
    assert e.value.field == "brand.logo" and "minimum is 60 px" in str(e.value)
    # a subline the strip omits on purpose is recorded; a field with no region is refused
    p = L.fit(L.get_layout("banner-strip"), Copy(headline="Sale", subline="Now"), BrandKit(), w, h, safe,
              channel="banner-728x90")
    assert p.omitted == ["subline"]
    lay = L.get_layout("banner-strip").model_copy(update={"omit": []})
    with pytest.raises(StudioError, match="has no place for the subline in channel banner-728x90"):
        L.fit(lay, Copy(headline="Sale", subline="Now"), BrandKit(), w, h, safe, channel="banner-728x90")


# ---------------------------------------------------------------- data


def test_layout_files_are_checked_with_file_and_field(tmp_path: Path) -> None:
    assert {"hero-left-copy-right", "copy-top", "end-card-centred", "lower-third", "banner-strip"} <= set(L.layouts())
    bad = tmp_path / "odd.yaml"
    bad.write_text("schema: Layout.1\nname: odd\ntitle: Odd\nregions:\n  headline: {box: [0.6, 0, 0.2, 1]}\n"
                   "  sticker: {box: [0, 0, 1, 1]}\n")
    with pytest.raises(StudioError) as e:
        L.load_layout(bad)
    lines = "\n".join(e.value.lines())
    assert str(bad) in lines and "regions.headline.box" in lines and "x0 < x1" in lines
    assert "regions.sticker" in lines
    newer = tmp_path / "new.yaml"
    newer.write_text("schema: Layout.2\nname: new\ntitle: New\nregions: {headline: {box: [0, 0, 1, 1]}}\n")
    with pytest.raises(StudioError, match="newer than this Studio understands"):
        L.load_layout(newer)
    with pytest.raises(StudioError, match="unknown layout 'nope'.*banner-strip"):
        L.get_layout("nope")


def test_style_pack_brand_is_optional_and_versioned(logo_png: Path) -> None:
    # optional: only the demo brand's pack ships one (the others load without)
    assert {n for n, s in CATALOG.styles.items() if s.brand is not None} == {"golden-hour"}
    pack = {"name": "acme", "title": "Acme", "palette": ["#000000", "#ffffff"],
            "brand": {"schema": "BrandKit.1", "logo": {"path": "logo.png", "rights": RIGHTS},
                      "colours": {"primary": "#112233"}}}
    style = StylePack.model_validate(pack)
    assert style.brand.font.path.endswith("DejaVuSans-Bold.ttf")
    assert style.brand.logo_file(logo_png.parent / "acme.yaml") == logo_png
    with pytest.raises(ValueError, match="newer than this Studio understands"):
        StylePack.model_validate({**pack, "brand": {"schema": "BrandKit.2"}})
    with pytest.raises(ValueError, match="not #rrggbb"):
        StylePack.model_validate({**pack, "brand": {"colours": {"text": "white"}}})
    with pytest.raises(ValueError, match=r"not a \.png or \.svg file"):  # SVG is taken: tests/test_svg_logo.py
        StylePack.model_validate({**pack, "brand": {"logo": {"path": "logo.gif", "rights": RIGHTS}}})


# ---------------------------------------------------------------- determinism and records


def test_render_is_deterministic_and_the_placement_round_trips(brand: BrandKit) -> None:
    w, h, safe = spec_frame("banner-300x250")
    bg = noise(w, h)
    lay = L.get_layout("copy-top")
    a = L.fit(lay, COPY, brand, w, h, safe, channel="banner-300x250", background=bg)
    b = L.fit(lay, COPY, brand, w, h, safe, channel="banner-300x250", background=bg)
    assert a.to_json() == b.to_json()
    # the placement names the font and logo files it drew, by content
    assert a.font_sha256 == hashlib.sha256(Path(a.font).read_bytes()).hexdigest()
    assert a.logo.sha256 == hashlib.sha256(Path(a.logo.path).read_bytes()).hexdigest()
    one, two = L.render(a, bg), L.render(b, bg)
    assert one.mode == "RGBA" and one.tobytes() == two.tobytes()
    again = L.Placement.from_dict(json.loads(a.to_json()))
    assert L.render(again, bg).tobytes() == one.tobytes()
    png1, png2 = io.BytesIO(), io.BytesIO()
    one.save(png1, format="PNG")
    L.render(again, bg).save(png2, format="PNG")
    assert png1.getvalue() == png2.getvalue()
