"""A brand kit (logo, font, colours, logo clear space, type scale) as part of a style pack,
and the copy a layout sets (headline, subline, call to action, legal super).

``studio.layout`` fits the copy into a layout with the kit and renders it. Paths in a kit
are relative to the style pack file that holds it (``BrandKit.resolve``), like the pack's
LUT; an absolute path (the default font, a Debian package's file) is used as it is.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from PIL import Image
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from studio.errors import StudioError
from studio.rights import RightsTerms
from studio.vector import is_svg, rasterize, svg_size
from studio.versioning import upgrade

HEX_RE = re.compile(r"^#[0-9a-fA-F]{6}$")

# Debian's fonts-dejavu-core (also what timelines.captions burns captions with): an open
# licence, every Latin accent, and bold, which reads well small.
DEFAULT_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
DEFAULT_FONT_LICENCE = "Bitstream Vera/DejaVu licence (open)"
DEFAULT_FONT_LICENSOR = "Bitstream, Inc. and the DejaVu fonts project"


def _hex(v: str) -> str:
    if not HEX_RE.match(v):
        raise ValueError(f"{v!r} is not #rrggbb")
    return v.lower()


class Rights(BaseModel):
    """Who owns an asset, under what licence, and where it came from."""

    model_config = ConfigDict(extra="forbid")
    owner: str = Field(min_length=1, max_length=200)
    licence: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=500, description="where the file came from (URL, brand portal, agency)")
    # The rights ledger's terms (studio.rights): licence id (default logo:<sha256[:12]>),
    # licensor (default: owner), territories, media, channels, term.
    terms: RightsTerms | None = None

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _drop_unset_terms(handler(self))


def _drop_unset_terms(out: Any) -> Any:
    # terms came later: left out while unset, so the kit's dump (which stills' and videos'
    # keys hold) and the deliverables' records of a kit without them stay as they were.
    if isinstance(out, dict) and out.get("terms", 0) is None:
        out.pop("terms")
    return out


class Logo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, description="an SVG, or a PNG with transparency, relative to the style pack "
                                                "file (an SVG is drawn at the size each layout places it)")
    rights: Rights

    @field_validator("path")
    @classmethod
    def _png_or_svg(cls, v: str) -> str:
        if not v.lower().endswith((".png", ".svg")):
            raise ValueError(f"{v!r} is not a .png or .svg file (export the logo as SVG, or as PNG with transparency)")
        return v


class Font(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(DEFAULT_FONT, min_length=1,
                      description="a TrueType/OpenType file, relative to the style pack file or absolute")
    licence: str = Field(DEFAULT_FONT_LICENCE, min_length=1, max_length=200)
    # The rights ledger's terms (studio.rights): licence id (default font:<sha256[:12]>),
    # licensor, media (a font licensed for print only is not for a video), term.
    terms: RightsTerms | None = None

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _drop_unset_terms(handler(self))

    @field_validator("path")
    @classmethod
    def _font(cls, v: str) -> str:
        if not v.lower().endswith((".ttf", ".otf", ".ttc")):
            raise ValueError(f"{v!r} is not a TrueType/OpenType file (.ttf, .otf, .ttc)")
        return v


class BrandColours(BaseModel):
    model_config = ConfigDict(extra="forbid")
    primary: str = "#1d2a44"
    secondary: str = "#e07a5f"
    text: str = "#ffffff"
    cta_background: str = "#f2a65a"
    cta_foreground: str = "#1d2a44"

    @field_validator("primary", "secondary", "text", "cta_background", "cta_foreground")
    @classmethod
    def _colour(cls, v: str) -> str:
        return _hex(v)


class TypeRange(BaseModel):
    """Smallest and largest text size as fractions of the safe area's height."""

    model_config = ConfigDict(extra="forbid")
    min: float = Field(gt=0, le=0.5)
    max: float = Field(gt=0, le=0.8)

    @model_validator(mode="after")
    def _order(self) -> TypeRange:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is larger than max {self.max}")
        return self


class TypeScale(BaseModel):
    """Sizes per role, as fractions of the safe area's height (a layout may scale them: a
    728x90 strip's height is a small part of its size). ``min_px`` is a floor below which
    no text is set whatever the fractions give: an 8 px legal line is unreadable."""

    model_config = ConfigDict(extra="forbid")
    headline: TypeRange = TypeRange(min=0.05, max=0.14)
    subline: TypeRange = TypeRange(min=0.03, max=0.07)
    cta: TypeRange = TypeRange(min=0.035, max=0.07)
    legal: TypeRange = TypeRange(min=0.02, max=0.035)
    min_px: int = Field(9, ge=6, le=64)


class LogoBug(BaseModel):
    """The brand's logo small in a corner of every video deliverable's safe area for the
    whole spot up to the end card (timelines.graphics)."""

    model_config = ConfigDict(extra="forbid")
    corner: Literal["top-left", "top-right", "bottom-left", "bottom-right"] = "top-right"
    height: float = Field(0.06, gt=0, le=0.25, description="the logo's height as a fraction of the safe area's "
                                                          "height (never below the kit's logo_min_height_px)")
    opacity: float = Field(0.85, ge=0, le=1)


class BrandKit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_: str = Field("BrandKit.1", alias="schema")
    logo: Logo | None = None
    font: Font = Font()
    colours: BrandColours = BrandColours()
    logo_clear_space: float = Field(0.25, ge=0, le=2, description="space kept free of text round the logo, "
                                                                  "as a fraction of the logo's height")
    logo_min_height_px: int = Field(16, ge=1, le=2000)
    type_scale: TypeScale = TypeScale()
    logo_bug: LogoBug | None = None
    motion: Literal["fade", "slide", "scale"] = Field(
        "fade", description="how supers and the logo bug come on in videos: fade in, slide up into place, or "
                            "scale in about their centre, all while fading (timelines.conform); the end card fades")

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # logo_bug came later: left out while unset, so the keys of deliverables (stills'
        # and videos' recipes dump the kit) made with a pack without one stay as they were.
        out = handler(self)
        if isinstance(out, dict) and out.get("logo_bug", 0) is None:
            out.pop("logo_bug")
        # motion too, while the default fade: a kit that does not choose keeps its keys.
        if isinstance(out, dict) and out.get("motion") == "fade":
            out.pop("motion")
        return out

    @model_validator(mode="after")
    def _bug_needs_logo(self) -> BrandKit:
        if self.logo_bug is not None and self.logo is None:
            raise ValueError("logo_bug needs a logo: add brand.logo (an SVG or PNG with its rights) or drop logo_bug")
        return self

    @model_validator(mode="before")
    @classmethod
    def _version(cls, data: Any) -> Any:
        # Nested in a style pack, the kit still says which version it is written in; an
        # older one is upgraded, a newer one refused (studio.versioning).
        if isinstance(data, dict):
            try:
                return upgrade(data, "BrandKit")
            except StudioError as e:
                raise ValueError(f"{e.what} ({e.fix})") from None
        return data

    def resolve(self, path: str, style_file: Path | None) -> Path:
        """A kit path as a file: relative ones from the style pack's folder."""
        p = Path(path)
        if p.is_absolute() or style_file is None:
            return p
        return (Path(style_file).parent / p).resolve()

    def font_file(self, style_file: Path | None = None) -> Path:
        p = self.resolve(self.font.path, style_file)
        if not p.is_file():
            raise StudioError(
                f"font file {str(p)!r} not found", field="brand.font.path",
                source=str(style_file) if style_file else None,
                fix="install it (Debian: apt-get install fonts-dejavu-core) or point brand.font.path at a .ttf/.otf",
            )
        return p

    def logo_file(self, style_file: Path | None = None) -> Path | None:
        if self.logo is None:
            return None
        p = self.resolve(self.logo.path, style_file)
        if not p.is_file():
            raise StudioError(f"logo file {str(p)!r} not found", field="brand.logo.path",
                              source=str(style_file) if style_file else None,
                              fix="check the path (relative to the style pack file)")
        if is_svg(p):
            # Checked here (studio.vector: read once, cached), so every user of the logo
            # (layouts, the logo bug, a recipe) refuses a bad SVG alike, before drawing.
            try:
                svg_size(p)
            except StudioError as e:
                e.source = e.source or (str(style_file) if style_file else None)
                raise
        return p


def logo_size(path: Path) -> tuple[float, float]:
    """A logo file's size in px: an SVG's intrinsic size (studio.vector), a PNG's pixels.
    Layouts and the logo bug take its aspect and check minimum sizes from this."""
    if is_svg(path):
        return svg_size(path)
    with Image.open(path) as im:
        return im.size


def logo_image(path: Path, width: int, height: int) -> Image.Image:
    """A logo file drawn at exactly ``width`` x ``height`` px, RGBA: an SVG rasterized at
    that size (sharp at any channel's size), a PNG resized with Lanczos."""
    if is_svg(path):
        return rasterize(path, width, height)
    with Image.open(path) as im:
        return im.convert("RGBA").resize((width, height), Image.Resampling.LANCZOS)


class Copy(BaseModel):
    """The words a layout sets. Each is optional: a layout's region with no copy stays empty."""

    model_config = ConfigDict(extra="forbid")
    headline: str | None = Field(None, min_length=1, max_length=90)
    subline: str | None = Field(None, min_length=1, max_length=160)
    cta: str | None = Field(None, min_length=1, max_length=30)
    legal: str | None = Field(None, min_length=1, max_length=400)

    @field_validator("headline", "subline", "cta", "legal")
    @classmethod
    def _words(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("is only spaces; write the copy or leave the field out")
        return v
