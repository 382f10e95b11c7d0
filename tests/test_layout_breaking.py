"""studio.layout's line breaking: headlines and sublines in even lines (no word left alone
on the last line), the language's no-break rules kept (French spacing, the kinsoku rules of
Chinese and Japanese, studio.textbreak), and copy the brand font cannot draw refused
before anything is measured or rendered.

Line widths are measured from drawn pixels (the rendered layer, or each line drawn on its
own with Pillow), never taken from the placement's numbers. The CJK tests need a font with
Chinese and Japanese glyphs: Debian's fonts-wqy-microhei (scripts/setup.sh --test installs
it); they skip, saying so, where none is installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from studio import layout as L
from studio import textbreak
from studio.brand import BrandKit, Copy
from studio.errors import StudioError
from studio.specs import Catalog

CATALOG = Catalog()
WIDOW = "Cold from sunrise to city lights"
# Fonts with Chinese and Japanese glyphs, by their Debian packages' paths.
CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",  # fonts-wqy-microhei (Apache-2.0)
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",  # fonts-wqy-zenhei
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",  # fonts-noto-cjk (OFL-1.1)
)
JAPANESE = [
    "東京から大阪へ、夏のセールがいよいよ始まります。「早割」でチケットをお得にゲットしよう！",
    "ちょっと待って！キャンペーンは今週まで。ショッピングはお早めに・・・ぜひチェックしてね。",
    "「限定」『特別』（先着順）【今だけ】ご予約はウェブサイトからどうぞ。ソフトドリンク付き！",
]
CHINESE = [
    "夏日限定优惠：从东京到大阪的机票现在只要四千九百日元，快来预订吧！",
    "「新品上市」全场商品八折，（限时三天）欢迎光临，先到先得，售完即止。",
]


def spec_frame(channel: str) -> tuple[int, int, tuple[int, int, int, int]]:
    spec = CATALOG.spec(channel)
    return spec.width, spec.height, spec.safe_rect()


def drawn_width(font: ImageFont.FreeTypeFont, text: str) -> int:
    """The ink width of ``text`` drawn on its own (left bearing to right edge)."""
    pad = font.size * 2
    canvas = Image.new("L", (font.size * (len(text) + 4) + 2 * pad, font.size * 4), 0)
    ImageDraw.Draw(canvas).text((pad, font.size * 2), text, font=font, fill=255, anchor="ls")
    box = canvas.getbbox()
    assert box is not None, text
    return box[2] - box[0]


def rendered_lines(placement: L.Placement, t: L.TextBox) -> list[tuple[int, int]]:
    """Each line's ink extent (first and last column + 1) in the rendered layer, from the
    rows between its ascent and its descent. The placement holds no button or scrim."""
    alpha = np.asarray(L.render(placement))[..., 3]
    ascent, descent = L._font(placement.font, t.size_px).getmetrics()
    out = []
    for ln in t.lines:
        band = alpha[max(0, ln.y - ascent):ln.y + descent]
        cols = np.nonzero(band.max(axis=0))[0]
        assert len(cols), ln.text
        out.append((int(cols.min()), int(cols.max()) + 1))
    return out


def slack_cost(widths: list[int], width: int) -> int:
    """How uneven lines are: the sum of their squared leftover widths in ``width``."""
    return sum((width - w) ** 2 for w in widths)


def cjk_font() -> str:
    for path in CJK_FONTS:
        if Path(path).is_file():
            return path
    if shutil.which("fc-list"):
        found = subprocess.run(["fc-list", ":lang=ja", "file"], capture_output=True, text=True, check=False)
        for line in sorted(found.stdout.splitlines()):
            path = line.split(":")[0].strip()
            if path and not L.missing_glyphs("".join(JAPANESE + CHINESE), path):
                return path
    pytest.skip("no font with Chinese and Japanese glyphs is installed (Debian: apt-get install "
                "fonts-wqy-microhei; scripts/setup.sh --test installs it)")


# ---------------------------------------------------------------- balanced lines


def test_the_widow_headline_gets_two_even_lines() -> None:
    w, h, safe = spec_frame("youtube-1080p")
    p = L.fit(L.get_layout("end-card-centred"), Copy(headline=WIDOW), BrandKit(), w, h, safe,
              channel="youtube-1080p")
    t = p.texts[0]
    assert [ln.text for ln in t.lines] == ["Cold from sunrise", "to city lights"]
    # The region is inside the safe area, so no scrim margin: its width is the line width.
    assert t.region[0] > safe[0] and t.region[2] < safe[2]
    width = t.region[2] - t.region[0]

    # Greedy filling at the same size leaves "lights" alone on the last line.
    greedy = L._set_text(WIDOW, p.font, t.size_px, width).lines
    assert greedy == ["Cold from sunrise to city", "lights"]

    font = L._font(p.font, t.size_px)
    drawn = rendered_lines(p, t)
    even = [x1 - x0 for x0, x1 in drawn]
    assert even == [drawn_width(font, ln.text) for ln in t.lines]  # the layer draws what was set
    ragged = [drawn_width(font, s) for s in greedy]
    assert max(even) <= width and max(ragged) <= width
    assert slack_cost(even, width) < slack_cost(ragged, width), (even, ragged, width)
    assert min(even) > 0.66 * max(even), even  # even: the shorter line two thirds of the longer or more
    assert min(ragged) < 0.3 * max(ragged), ragged  # the widow


def test_balanced_breaking_is_the_fewest_lines_and_the_same_every_time() -> None:
    w, h, safe = spec_frame("social-still-1080")
    copy = Copy(headline=WIDOW, subline="Book by Friday and save on fares to every city we fly to",
                legal="Fares from 49 GBP one way. Terms apply.")
    layout = L.get_layout("copy-top")
    a = L.fit(layout, copy, BrandKit(), w, h, safe, channel="social-still-1080")
    b = L.fit(layout, copy, BrandKit(), w, h, safe, channel="social-still-1080")
    assert a.to_json() == b.to_json()
    for t in a.texts:
        width = t.region[2] - t.region[0] - 2 * round(L.SCRIM_PAD * t.size_px)
        greedy = L._set_text(t.text, a.font, t.size_px, width).lines
        # As many lines as greedy filling (the fewest), the words in the same order.
        assert len(t.lines) == len(greedy) and " ".join(ln.text for ln in t.lines) == t.text
        font = L._font(a.font, t.size_px)
        set_widths = [drawn_width(font, ln.text) for ln in t.lines]
        assert max(set_widths) <= width
        if t.role in ("headline", "subline"):
            assert slack_cost(set_widths, width) <= slack_cost([drawn_width(font, s) for s in greedy], width)
        else:  # the legal line fills its lines like a paragraph
            assert [ln.text for ln in t.lines] == greedy
    subline = next(t for t in a.texts if t.role == "subline")
    assert [ln.text for ln in subline.lines] == ["Book by Friday and save on", "fares to every city we fly to"]


def test_french_no_break_rules_hold_in_balanced_lines() -> None:
    assert L.units("« Vite » : c'est l'été !") == ["« Vite » :", "c'est", "l'été !"]
    texts = ["Les « soldes » d'été sont là ! Venez vite : tout doit partir ?",
             "Prêts ? Partez ! « Été » : nos prix ; vos vacances !",
             "Réservez maintenant : « Partez léger » ! Offre limitée ?"]
    brand = BrandKit()
    broke = 0
    for channel, name in [("banner-300x250", "copy-top"), ("social-still-1080", "end-card-centred"),
                          ("youtube-1080p", "hero-left-copy-right"), ("banner-728x90", "banner-strip")]:
        w, h, safe = spec_frame(channel)
        for text in texts:
            p = L.fit(L.get_layout(name), Copy(headline=text, subline=text), brand, w, h, safe, channel=channel)
            for t in p.texts:
                lines = [ln.text for ln in t.lines]
                broke += len(lines) > 1
                assert " ".join(lines) == text
                for ln in lines:
                    assert not ln.startswith(("!", "?", ":", ";", "»")) and not ln.endswith("«"), lines
    assert broke >= 10  # the rules were tested on broken lines


def test_max_lines_and_the_overrun_error_still_hold() -> None:
    w, h, safe = spec_frame("banner-300x250")
    copy = Copy(headline="The longest summer sale we have ever run, on every flight to every city we fly to",
                cta="Book")
    with pytest.raises(StudioError) as e:
        L.fit(L.get_layout("copy-top"), copy, BrandKit(), w, h, safe, channel="banner-300x250")
    assert e.value.field == "copy.headline"
    assert "at most 2 lines" in str(e.value) and "% too long" in str(e.value)
    # hero-left-copy-right allows three lines: balanced lines never take more.
    w, h, safe = spec_frame("youtube-1080p")
    p = L.fit(L.get_layout("hero-left-copy-right"), Copy(headline=WIDOW, subline=copy.headline), BrandKit(),
              w, h, safe, channel="youtube-1080p")
    for t in p.texts:
        assert 1 < len(t.lines) <= 3, [ln.text for ln in t.lines]


def test_a_call_to_action_stays_on_one_line_when_it_can() -> None:
    """A layout that lets the call to action take two lines: it still gets one, at the
    largest size where one line fits, although two lines would fit a larger size."""
    w, h, safe = spec_frame("social-still-1080")
    layout = L.Layout.model_validate({
        "name": "cta-two-lines", "title": "a call to action that may break",
        "regions": {"headline": {"box": [0, 0, 1, 0.3]},
                    "cta": {"box": [0.2, 0.5, 0.8, 0.9], "align": "centre", "max_lines": 2}}})
    cta = "Book your seat now"
    p = L.fit(layout, Copy(headline="Hi", cta=cta), BrandKit(), w, h, safe, channel="social-still-1080")
    t = next(t for t in p.texts if t.role == "cta")
    assert [ln.text for ln in t.lines] == [cta]
    rw, rh = t.region[2] - t.region[0], t.region[3] - t.region[1]
    bigger = t.size_px + 8
    room = (rw - 2 * round(L.BUTTON_PAD_X * bigger), rh - 2 * round(L.BUTTON_PAD_Y * bigger))
    two = L._set_text(cta, p.font, bigger, room[0])
    assert len(two.lines) == 2 and L._fits(two, *room, 2)


# ---------------------------------------------------------------- Chinese and Japanese


def test_text_without_spaces_breaks_between_characters_by_kinsoku() -> None:
    # Small kana and closing marks stay with the character before, opening brackets with
    # the one after; the katakana middle dot and full-width full stop too (beyond captions).
    assert L.units("「早割」でチケットをゲット！") == ["「早", "割」", "で", "チ", "ケッ", "ト", "を", "ゲッ", "ト！"]
    assert L.units("東京・大阪．ラーメン") == ["東", "京・", "大", "阪．", "ラー", "メ", "ン"]
    assert L.units("新しいiPhone（限定）") == ["新", "し", "い", "iPhone（限", "定）"]
    assert L.units("夏日优惠，快来！") == ["夏", "日", "优", "惠，", "快", "来！"]
    # Korean keeps its words whole where it sets spaces; run together, it breaks anywhere.
    assert L.units("여름 세일 시작!") == ["여름", "세일", "시작!"]
    assert L.units("여름세일!") == ["여", "름", "세", "일!"]


def test_cjk_lines_keep_kinsoku_and_fit_their_width_as_rendered() -> None:
    brand = BrandKit.model_validate({"font": {"path": cjk_font(), "licence": "Apache-2.0 (test font)"}})
    broke = 0
    for channel, name in [("banner-300x250", "copy-top"), ("social-still-1080", "end-card-centred"),
                          ("youtube-1080p", "hero-left-copy-right"), ("banner-728x90", "banner-strip")]:
        w, h, safe = spec_frame(channel)
        for text in JAPANESE + CHINESE:
            p = L.fit(L.get_layout(name), Copy(headline=text[:30], subline=text), brand, w, h, safe,
                      channel=channel)
            drawn = {t.role: rendered_lines(p, t) for t in p.texts}
            for t in p.texts:
                lines = [ln.text for ln in t.lines]
                broke += len(lines) > 1
                assert "".join(lines) == t.text, lines  # broken between characters, none lost
                for i, ln in enumerate(lines):
                    assert ln[0] not in textbreak.NO_LINE_START or i == 0, (channel, lines)
                    assert ln[-1] not in textbreak.NO_LINE_END, (channel, lines)
                width = t.region[2] - t.region[0]
                for x0, x1 in drawn[t.role]:
                    assert t.region[0] <= x0 and x1 <= t.region[2], (channel, t.role, (x0, x1), t.region)
                    assert x1 - x0 <= width
    assert broke >= 25  # most texts ran over several lines


# ---------------------------------------------------------------- missing glyphs


def test_copy_the_brand_font_cannot_draw_is_refused_before_rendering() -> None:
    w, h, safe = spec_frame("youtube-1080p")
    with pytest.raises(StudioError) as e:
        L.fit(L.get_layout("end-card-centred"), Copy(headline="Summer", subline="東京から大阪へ、夏のセール"),
              BrandKit(), w, h, safe, channel="youtube-1080p")
    err = e.value
    assert err.field == "copy.subline" and err.stage == "layout"
    assert ("the brand font DejaVu Sans Bold (/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf) has no glyph "
            "for 東 (U+6771), 京 (U+4EAC), か (U+304B), ら (U+3089), 大 (U+5927), 阪 (U+962A), へ (U+3078), "
            "、 (U+3001) and 5 more in the subline in channel youtube-1080p") in err.what
    assert err.fix == ("give the brand a font that covers them in brand.font.path (for Chinese, Japanese or Korean: "
                       "Noto Sans CJK, Debian's fonts-noto-cjk, SIL Open Font Licence), with its licence in "
                       "brand.font.licence")
    # Latin copy with accents and French punctuation is drawn: nothing missing.
    assert L.missing_glyphs("Découvrez l'été « à prix réduit » ! 49\u00a0€", str(BrandKit().font_file())) == ""
