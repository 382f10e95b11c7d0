"""Channel specs and style packs: versioned data shipped in the package, extendable from
the user's own folders (``STUDIO_SPECS_DIR``, ``STUDIO_STYLES_DIR``). A user file with the
same name as a shipped one replaces it."""

from __future__ import annotations

import re
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from studio import documents
from studio.brand import BrandKit
from studio.errors import StudioError
from studio.timecode import Timecode, check_label

NAME_RE = r"^[a-z0-9][a-z0-9._-]*$"


class Insets(BaseModel):
    """Fractions of the frame kept clear at each edge (0.05 = 5%)."""

    model_config = ConfigDict(extra="forbid")
    top: float = Field(0.0, ge=0, lt=0.5)
    right: float = Field(0.0, ge=0, lt=0.5)
    bottom: float = Field(0.0, ge=0, lt=0.5)
    left: float = Field(0.0, ge=0, lt=0.5)

    def rect(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The safe rectangle in pixels: x0, y0, x1, y1."""
        return (
            round(self.left * width),
            round(self.top * height),
            round(width - self.right * width),
            round(height - self.bottom * height),
        )


def parse_rate(value: str | int | float) -> Fraction:
    """Frame rates are exact rationals: "30", "25", "30000/1001"."""
    try:
        rate = Fraction(str(value))
    except (ValueError, ZeroDivisionError) as e:
        raise ValueError(f"not a frame rate; write e.g. 25 or 30000/1001 ({e})") from e
    if rate <= 0 or rate > 240:
        raise ValueError("frame rate must be between 0 and 240")
    return rate


def parse_aspect(value: str | int | float) -> Fraction:
    """Aspect ratios as exact rationals: "2.39:1", "1.85", "4:3"."""
    text = str(value).strip()
    num, _, den = text.partition(":")
    try:
        aspect = Fraction(num.strip()) / Fraction(den.strip() or "1")
    except (ValueError, ZeroDivisionError) as e:
        raise ValueError(f"{text!r} is not an aspect ratio; write e.g. 2.39:1 or 4:3") from e
    if not Fraction(1, 10) <= aspect <= 10:
        raise ValueError(f"aspect ratio {text} is outside 1:10 to 10:1")
    return aspect


class CaptionRules(BaseModel):
    """How captions are cut and checked for a channel. Defaults follow common subtitle
    guidance (two lines of at most 42 characters, at most 17 characters per second, at
    least 5/6 s on screen); vertical formats set shorter lines."""

    model_config = ConfigDict(extra="forbid")
    max_chars_per_line: int = Field(42, ge=10, le=80)
    max_lines: int = Field(2, ge=1, le=3)
    max_cps: float = Field(17.0, gt=0, le=40, description="reading speed, characters per second")
    min_duration: float = Field(0.83, ge=0, le=5, description="seconds a caption stays up at least")
    font_size: float = Field(0.045, gt=0.01, le=0.2, description="text height as a fraction of frame height")


class PlatformDisclosure(BaseModel):
    """A disclosure a platform asks of AI-generated or altered media: which setting or label
    says so at upload. Recorded in the deliverable's signed C2PA manifest (studio.provenance,
    ``studio.disclosure`` assertion) so whoever uploads it knows what to set."""

    model_config = ConfigDict(extra="forbid")
    platform: str = Field(min_length=1, max_length=40, description="e.g. youtube, tiktok, instagram")
    label: str = Field(min_length=1, max_length=80, description="the platform's name for it, e.g. "
                                                                "altered-or-synthetic-content")
    setting: str = Field("", max_length=300, description="where the uploader sets it")
    when: str = Field("", max_length=300, description="what the platform's rule covers")
    source: str = Field("", max_length=300, description="where the rule comes from")


# The technical QC battery's checks (studio.qc); a spec's ``qc`` says which block delivery.
QC_CHECKS = ("format", "colour", "audio_format", "duration", "file_size", "decode", "black", "freeze",
             "silence", "loudness", "true_peak", "lra", "clipping", "levels", "captions", "av_length",
             "palette", "flash", "red_flash")
QC_DEFAULT_BLOCK = ("format", "colour", "audio_format", "duration", "file_size", "decode", "flash",
                    "red_flash")


class QcPolicy(BaseModel):
    """Which QC checks block delivery and which only warn. A check named in ``skip`` is not
    run, in ``block`` blocks, in ``warn`` warns; one named nowhere blocks if it is in
    QC_DEFAULT_BLOCK (the file's format, colour tags, duration, size, decode errors and the
    photosensitive flash screen) and warns otherwise."""

    model_config = ConfigDict(extra="forbid")
    block: list[str] = []
    warn: list[str] = []
    skip: list[str] = []
    black_seconds: float = Field(0.5, gt=0, le=60, description="black at least this long is reported")
    freeze_seconds: float = Field(1.0, gt=0, le=60, description="a still picture at least this long")
    silence_seconds: float = Field(1.0, gt=0, le=60, description="silence at least this long")
    silence_db: float = Field(-60.0, ge=-120, le=-20, description="silence is below this level, dBFS")
    loudness_tolerance: float = Field(1.0, gt=0, le=10, description="LU either side of loudness_target "
                                                                    "(EBU R 128: ±1 LU)")
    palette_delta_e: float = Field(20.0, gt=0, le=100, description="mean CIEDE2000 from the palette")

    @model_validator(mode="after")
    def _known(self) -> QcPolicy:
        seen: dict[str, str] = {}
        for group in ("block", "warn", "skip"):
            for check in getattr(self, group):
                if check not in QC_CHECKS:
                    raise ValueError(f"unknown QC check {check!r} in qc.{group}; known: {', '.join(QC_CHECKS)}")
                if check in seen:
                    raise ValueError(f"QC check {check!r} is in both qc.{seen[check]} and qc.{group}")
                seen[check] = group
        return self

    def severity(self, check: str) -> str:
        """"block", "warn" or "skip" for ``check``."""
        for group in ("skip", "block", "warn"):
            if check in getattr(self, group):
                return group
        return "block" if check in QC_DEFAULT_BLOCK else "warn"


class ChannelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_: str = Field("ChannelSpec.1", alias="schema")
    name: str = Field(pattern=NAME_RE)
    title: str
    kind: Literal["video", "still"]
    width: int = Field(gt=0, le=8192)
    height: int = Field(gt=0, le=8192)
    fps: str = "30"
    # video
    codec: Literal["h264", "hevc", "png", "jpeg"] = "h264"
    profile: str | None = "high"
    pix_fmt: str = "yuv420p"
    crf: int | None = Field(None, ge=0, le=51)
    video_bitrate: str | None = Field(None, pattern=r"^\d+(\.\d+)?[kM]?$")
    max_bitrate: str | None = Field(None, pattern=r"^\d+(\.\d+)?[kM]?$")
    gop_seconds: float = Field(0.5, gt=0, le=10)
    bframes: int = Field(2, ge=0, le=16)
    min_duration: float = Field(0.0, ge=0)
    max_duration: float | None = Field(None, gt=0)
    max_file_size: int | None = Field(None, gt=0, description="bytes")
    # where text and the subject must stay (UI overlays, title safe)
    safe_area: Insets = Insets()
    # sound
    loudness_target: float | None = Field(None, le=0, description="integrated LUFS")
    true_peak: float | None = Field(None, le=0, description="dBTP ceiling")
    audio_rate: int = 48000
    audio_bitrate: str = "192k"
    captions_burn_in: bool = False
    legal_min_seconds: float | None = Field(
        None, gt=0, le=60, description="least time a legal super stays on screen in this channel (a "
                                       "broadcaster's clearance rule); default: its reading time only")
    captions: CaptionRules = CaptionRules()
    qc: QcPolicy = Field(QcPolicy(), description="which QC checks block and which warn (studio.qc)")
    color: Literal["bt709"] = "bt709"
    # Letterbox / pillarbox: the picture's own aspect inside the frame, the rest black.
    # The safe area is then a fraction of the active picture, not of the frame.
    active_aspect: str | None = Field(
        None, description='aspect of the active picture, e.g. "2.39:1" (letterbox in 16:9) or '
                          '"4:3" (pillarbox); the rest of the frame is black. Default: the frame\'s')
    # Editorial timecode of the programme's first frame, written by every export.
    start_timecode: str = Field(
        "01:00:00:00", description="record timecode of the first frame, HH:MM:SS:FF "
                                   "(HH:MM:SS;FF for drop-frame); broadcast starts at one hour")
    drop_frame: bool | None = Field(
        None, description="drop-frame timecode; default: yes at 30000/1001 and 60000/1001 "
                          "(US broadcast counts DF), no elsewhere (DF exists only at those rates)")
    source: str = Field("", description="where the figures come from")
    medium: Literal["digital", "broadcast", "print"] = Field(
        "digital", description="where its deliverables appear: digital (web, social, apps), broadcast (on "
        "air) or print; a component's licence must cover it (studio.policy)")
    disclosure: list[PlatformDisclosure] = Field(
        default_factory=list, max_length=10, description="the platform's AI-content disclosures "
        "(studio.provenance records them in the signed manifest); none: the channel asks none")

    @field_validator("fps")
    @classmethod
    def _rate(cls, v: str) -> str:
        parse_rate(v)
        return str(v)

    @field_validator("start_timecode")
    @classmethod
    def _timecode_label(cls, v: str) -> str:
        return check_label(v)

    @field_validator("active_aspect")
    @classmethod
    def _aspect(cls, v: str | None) -> str | None:
        if v is not None:
            parse_aspect(v)
        return v

    @model_validator(mode="after")
    def _check(self) -> ChannelSpec:
        if self.kind == "video":
            if self.codec == "hevc" and self.profile == "high":
                self.profile = "main"  # the field's default is H.264's; HEVC has no "high"
            if self.codec not in ("h264", "hevc"):
                raise ValueError(f"a video spec needs codec h264 or hevc, not {self.codec}")
            if self.crf is None and self.video_bitrate is None:
                raise ValueError("a video spec needs crf or video_bitrate")
            if self.width % 2 or self.height % 2:
                raise ValueError("4:2:0 video needs even width and height")
        else:
            if self.codec not in ("png", "jpeg"):
                raise ValueError(f"a still spec needs codec png or jpeg, not {self.codec}")
            if self.active_aspect is not None:
                raise ValueError("active_aspect (letterboxing) is for video specs; a still is cropped "
                                 "to its own frame")
        # A label the rate cannot have (01:00:00:29 at 25, DF at 25) raises ValueError here.
        Timecode.parse(self.start_timecode, self.rate, self.drop_frame)
        aw, ah = self.active_size
        if min(aw, ah) < 16:
            raise ValueError(f"active_aspect {self.active_aspect} leaves a {aw}x{ah} picture in "
                             f"{self.width}x{self.height}; it needs at least 16 pixels each way")
        return self

    @property
    def rate(self) -> Fraction:
        return parse_rate(self.fps)

    @property
    def aspect(self) -> Fraction:
        return Fraction(self.width, self.height)

    @property
    def timecode(self) -> Timecode:
        """The start timecode at the spec's rate, drop-frame resolved."""
        return Timecode.parse(self.start_timecode, self.rate, self.drop_frame)

    @property
    def active_size(self) -> tuple[int, int]:
        """Width and height of the active picture: the frame's, or the largest of
        ``active_aspect`` that fits it. Even sizes with bars a multiple of 4 pixels in
        all, so each bar is even (4:2:0) and top and bottom (left and right) are equal;
        the aspect is then off by at most 2 pixels' worth."""
        if self.active_aspect is None:
            return self.width, self.height
        a = parse_aspect(self.active_aspect)
        if a > self.aspect:  # wider than the frame: letterbox
            return self.width, self.height - 4 * round((self.height - self.width / a) / 4)
        if a < self.aspect:  # narrower: pillarbox
            return self.width - 4 * round((self.width - self.height * a) / 4), self.height
        return self.width, self.height

    def active_rect(self) -> tuple[int, int, int, int]:
        """The active picture in frame pixels: x0, y0, x1, y1 (end exclusive), centred."""
        w, h = self.active_size
        x0, y0 = (self.width - w) // 2, (self.height - h) // 2
        return x0, y0, x0 + w, y0 + h

    def safe_rect(self) -> tuple[int, int, int, int]:
        """The safe area in frame pixels: ``safe_area``'s insets are fractions of the
        active picture, so text stays off the bars and inside title safe."""
        x0, y0, x1, y1 = self.active_rect()
        sx0, sy0, sx1, sy1 = self.safe_area.rect(x1 - x0, y1 - y0)
        return x0 + sx0, y0 + sy0, x0 + sx1, y0 + sy1


HEX_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


class Look(BaseModel):
    """A style pack's grade as OpenColorIO transforms, from video in to video out (BT.709
    code values, read as gamma 2.4 Rec.709). ``timelines.grade.bake_lut`` bakes it into the
    .cube that ``Finishing.lut`` names; every field's default leaves the picture as it is.

    The order is a colourist's: exposure and white balance in scene-linear ACEScg (gains,
    so black stays black), colour and saturation in log ACEScct (ASC CDL, where equal
    offsets are equal stops), then the tone curve on the display-encoded picture."""

    model_config = ConfigDict(extra="forbid")
    exposure: float = Field(0.0, ge=-3, le=3, description="stops, in ACEScg")
    white_balance: tuple[float, float, float] = Field(
        (1.0, 1.0, 1.0), description="R, G, B gains in ACEScg (CDL slope): warm is R up, B down")
    tint: tuple[float, float, float] = Field(
        (0.0, 0.0, 0.0), description="R, G, B offsets in ACEScct (CDL offset; 0.057 = one stop): "
        "a cast that shows most in the shadows")
    saturation: float = Field(1.0, ge=0, le=2, description="ASC CDL saturation, in ACEScct")
    contrast: float = Field(1.0, ge=0.5, le=2, description="slope of the tone curve at mid grey")
    black: float = Field(0.0, ge=0, le=0.2, description="output black level (matte when > 0)")
    white: float = Field(1.0, ge=0.8, le=1, description="output white level (soft when < 1)")

    @field_validator("white_balance")
    @classmethod
    def _gains(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if not all(0.5 <= g <= 2 for g in v):
            raise ValueError("white balance gains must be between 0.5 and 2")
        return v

    @field_validator("tint")
    @classmethod
    def _tint(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if not all(-0.1 <= t <= 0.1 for t in v):
            raise ValueError("tint offsets must be between -0.1 and 0.1")
        return v


class Finishing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lut: str | None = Field(None, description="a .cube file, relative to the style pack")
    look: Look | None = Field(None, description="the grade the LUT was baked from (timelines.grade)")
    grain: float = Field(0.0, ge=0, le=1)
    sharpen: float = Field(0.0, ge=0, le=2)


class StylePack(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_: str = Field("StylePack.1", alias="schema")
    name: str = Field(pattern=NAME_RE)
    title: str
    palette: list[str] = Field(min_length=2, max_length=12)
    look_tokens: list[str] = []
    negative_tokens: list[str] = []
    text_color: str = "#ffffff"
    camera: Literal["push-in", "pull-out", "pan-left", "pan-right", "parallax", "static"] = "push-in"
    finishing: Finishing = Finishing()
    brand: BrandKit | None = Field(None, description="logo, font, colours and type scale (studio.layout)")

    @field_validator("palette")
    @classmethod
    def _hex(cls, v: list[str]) -> list[str]:
        for c in v:
            if not HEX_RE.match(c):
                raise ValueError(f"palette colour {c!r} is not #rrggbb")
        return [c.lower() for c in v]

    @field_validator("text_color")
    @classmethod
    def _hex1(cls, v: str) -> str:
        if not HEX_RE.match(v):
            raise ValueError(f"{v!r} is not #rrggbb")
        return v.lower()


class Catalog:
    """All channel specs and style packs known to this process."""

    def __init__(self, specs_dir: Path | None = None, styles_dir: Path | None = None) -> None:
        self.specs: dict[str, ChannelSpec] = {}
        self.styles: dict[str, StylePack] = {}
        self.style_paths: dict[str, Path] = {}
        pkg = resources.files("studio") / "data"
        for entry in sorted((pkg / "specs").iterdir(), key=lambda p: p.name):
            if entry.name.endswith((".yaml", ".yml", ".json")):
                self._add_spec(Path(str(entry)))
        for entry in sorted((pkg / "styles").iterdir(), key=lambda p: p.name):
            if entry.name.endswith((".yaml", ".yml", ".json")):
                self._add_style(Path(str(entry)))
        for folder, add in ((specs_dir, self._add_spec), (styles_dir, self._add_style)):
            if folder is None:
                continue
            if not Path(folder).is_dir():
                raise StudioError("is not a folder", fix="create it or unset the setting", source=str(folder))
            for p in sorted(Path(folder).iterdir()):
                if p.suffix in (".yaml", ".yml", ".json"):
                    add(p)

    def _add_spec(self, path: Path) -> None:
        spec = documents.load(path, ChannelSpec, "ChannelSpec")
        self.specs[spec.name] = spec

    def _add_style(self, path: Path) -> None:
        style = documents.load(path, StylePack, "StylePack")
        self.styles[style.name] = style
        self.style_paths[style.name] = path

    def spec(self, name: str, field: str = "channels") -> ChannelSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise StudioError(
                f"unknown channel spec {name!r}",
                fix="use one of: " + ", ".join(sorted(self.specs)) + " (or add a file to STUDIO_SPECS_DIR)",
                field=field,
            ) from None

    def style(self, name: str, field: str = "style_pack") -> StylePack:
        try:
            return self.styles[name]
        except KeyError:
            raise StudioError(
                f"unknown style pack {name!r}",
                fix="use one of: " + ", ".join(sorted(self.styles)) + " (or add a file to STUDIO_STYLES_DIR)",
                field=field,
            ) from None

    def lut_path(self, style: StylePack) -> Path | None:
        if not style.finishing.lut:
            return None
        return (self.style_paths[style.name].parent / style.finishing.lut).resolve()
