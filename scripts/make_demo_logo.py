"""Draw the demo brand's logo (Aurora, the example brief's bottle): our own artwork,
rights owner "Studio project", licence CC0-1.0.

    .venv/bin/python scripts/make_demo_logo.py   # writes studio/data/styles/brand/aurora-logo.png

The mark is opaque (a navy badge: a low sun over two peaks and a horizon line) so it reads
on any picture and a test can find it by cross-correlation; it has structure at every
scale (a plain block would match anywhere). Drawn at 4x and reduced, for smooth edges;
the output is byte-for-byte the same on every run (no timestamps in the PNG)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent.parent / "studio" / "data" / "styles" / "brand" / "aurora-logo.png"
W, H, S = 240, 120, 4  # size and supersampling
NAVY, SUN, CORAL, SAND, CREAM = (29, 42, 68), (242, 166, 90), (224, 122, 95), (246, 209, 134), (255, 244, 224)


def draw() -> Image.Image:
    im = Image.new("RGB", (W * S, H * S), NAVY)
    d = ImageDraw.Draw(im)
    # the sun, low on the horizon, with a ring
    d.ellipse((70 * S, 22 * S, 170 * S, 122 * S), fill=SUN)
    d.ellipse((95 * S, 47 * S, 145 * S, 97 * S), fill=SAND)
    # two peaks in front of it
    d.polygon([(18 * S, 92 * S), (78 * S, 34 * S), (128 * S, 92 * S)], fill=CORAL)
    d.polygon([(104 * S, 92 * S), (168 * S, 44 * S), (226 * S, 92 * S)], fill=CREAM)
    d.polygon([(150 * S, 58 * S), (168 * S, 44 * S), (186 * S, 58 * S), (168 * S, 64 * S)], fill=SAND)
    # the horizon and a reflection line
    d.rectangle((14 * S, 92 * S, 226 * S, 98 * S), fill=SAND)
    d.rectangle((60 * S, 104 * S, 180 * S, 108 * S), fill=SUN)
    return im.resize((W, H), Image.Resampling.LANCZOS)


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    draw().save(OUT, format="PNG", optimize=True)
    print(OUT)
