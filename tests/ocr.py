"""Measuring copy and logos on rendered pictures, for the tests (issue 13).

Taken from tests/test_layout.py so that every test reading copy back (stills, video
supers, the end card) measures it the same way:

- ``ocr(image, lang)``: what Tesseract (Debian's tesseract-ocr, eng and fra; installed by
  ``scripts/setup.sh --test``) reads, normalised, one line per binarisation;
- ``words_in_order(words, read)``: every word of ``words`` found, in order, in one of those
  readings (a line break of the layout may put other words between two lines);
- ``colour_key(picture, colour)``: the pixels of one colour alone, black on white, for OCR
  where page segmentation drowns in a busy picture;
- ``find_logo(image, logo)``: top-left and score of the best normalised cross-correlation
  match of a logo (a PIL image at the size it is drawn) in a picture;
- ``find_template`` / ``grey``: the same on 2-D grey arrays.

Nothing here reads a placement: the numbers come from the pixels."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["colour_key", "find_logo", "find_template", "grey", "make_logo_png", "norm", "ocr", "ocr_readings",
           "tesseract", "words_in_order"]


def tesseract() -> str:
    exe = shutil.which("tesseract")
    # Required, not skipped: a missing OCR would let every read-back pass unseen.
    assert exe, "tesseract is not installed: run scripts/setup.sh --test (Debian tesseract-ocr)"
    return exe


def norm(text: str) -> str:
    """Lower case, one space, straight apostrophes (Tesseract reads ' as ’ at times)."""
    text = text.replace("’", "'").replace("‘", "'").replace("|", " ")
    return re.sub(r"\s+", " ", text).strip().lower()


def ocr_readings(image: Image.Image, lang: str = "eng") -> list[str]:
    """What Tesseract reads in ``image``, normalised, once per binarisation: global Otsu
    (Tesseract's default) loses dark text on a mid-tone button in a picture with a bright
    side, Sauvola's local threshold finds it. Small pictures are enlarged first (Tesseract
    wants ~30 px capitals)."""
    im = image.convert("RGB")
    scale = max(1, round(900 / max(im.size)), 3 if min(im.size) < 120 else 1)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    readings = []
    for method in ("0", "2"):  # Otsu, Sauvola
        proc = subprocess.run([tesseract(), "stdin", "stdout", "-l", lang, "--psm", "11",
                               "-c", f"thresholding_method={method}"], input=buf.getvalue(),
                              capture_output=True, check=True, env={**os.environ, "OMP_THREAD_LIMIT": "1"})
        readings.append(norm(proc.stdout.decode("utf-8")))
    return readings


def ocr(image: Image.Image, lang: str = "eng") -> str:
    """The readings of ``ocr_readings``, one per line (each is normalised to one line, so
    ``words_in_order`` can tell them apart again)."""
    return "\n".join(ocr_readings(image, lang))


def words_in_order(words: str, read: str | list[str]) -> bool:
    """Every word of ``words`` in one of the readings (lines of ``ocr``'s text, or
    ``ocr_readings``' list), in order."""
    readings = read.split("\n") if isinstance(read, str) else read
    return any(_in_order(words, r) for r in readings)


def _in_order(words: str, read: str) -> bool:
    pos = 0
    for w in norm(words).split():
        m = re.search(r"(?<![\w'])" + re.escape(w) + r"(?![\w'])", read[pos:])
        if m is None:
            return False
        pos += m.end()
    return True


def colour_key(picture: Image.Image, colour: str | tuple[int, int, int], tolerance: float = 60.0) -> Image.Image:
    """Black where ``picture`` is within ``tolerance`` (RGB distance) of ``colour`` (hex or
    RGB), white elsewhere: text of that colour alone, for OCR."""
    if isinstance(colour, str):
        c = colour.lstrip("#")
        colour = (int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16))
    rgb = np.asarray(picture.convert("RGB"), dtype=np.float64)
    near = np.linalg.norm(rgb - np.array(colour, dtype=np.float64), axis=-1) < tolerance
    return Image.fromarray(np.where(near, 0, 255).astype(np.uint8))


def grey(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float64)


def find_template(picture: np.ndarray, template: np.ndarray) -> tuple[int, int, float]:
    """Top-left of the best normalised cross-correlation match of ``template`` in
    ``picture`` (both 2-D grey), by FFT over every position, and its score."""
    ph, pw = picture.shape
    th, tw = template.shape
    t0 = template - template.mean()
    fh, fw = ph + th, pw + tw
    corr = np.fft.irfft2(np.fft.rfft2(picture, (fh, fw)) * np.conj(np.fft.rfft2(t0, (fh, fw))), (fh, fw))
    num = corr[: ph - th + 1, : pw - tw + 1]
    # Local sums of the picture and its square under each window (integral images).
    s1 = np.pad(picture, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    s2 = np.pad(picture ** 2, ((1, 0), (1, 0))).cumsum(0).cumsum(1)

    def window(s: np.ndarray) -> np.ndarray:
        return s[th:, tw:] - s[:-th, tw:] - s[th:, :-tw] + s[:-th, :-tw]

    n = th * tw
    var = window(s2) - window(s1) ** 2 / n
    score = num / np.sqrt(np.maximum(var, 1e-9) * (t0 ** 2).sum())
    y, x = np.unravel_index(int(np.argmax(score)), score.shape)
    return int(x), int(y), float(score[y, x])


def find_logo(image: Image.Image, logo: Image.Image) -> tuple[int, int, float]:
    """Where ``logo`` (already at the size it is drawn; transparent pixels count as
    drawn on black, as Pillow's grey conversion of RGBA ignores alpha, so prefer opaque
    logos or flatten them first) best matches in ``image``: top-left x, y and the NCC
    score (1.0 a perfect match; > 0.9 is a confident find on real renders)."""
    return find_template(grey(image), grey(logo))


def make_logo_png(path: Path) -> Path:
    """A logo for the tests, written to ``path``: opaque, with structure at every scale (a
    plain block would match anywhere)."""
    im = Image.new("RGBA", (240, 120), (24, 40, 120, 255))
    d = ImageDraw.Draw(im)
    d.ellipse((10, 10, 110, 110), fill=(235, 70, 50, 255))
    d.rectangle((130, 14, 226, 106), fill=(250, 215, 40, 255))
    d.polygon([(140, 100), (178, 24), (216, 100)], fill=(20, 150, 90, 255))
    d.rectangle((45, 45, 75, 75), fill=(255, 255, 255, 255))
    im.save(path)
    return path
