"""What a brief can name, for a client that writes one (the review page's brief form):

- ``GET /v1/catalog``: the channel specs with the figures a producer chooses by (kind,
  frame size and aspect, frame rate, duration limits, loudness target, codec and container,
  safe area, byte limit), the style packs (palette swatches, look, the grade's LUT), and
  the keyframe/clip models and narration voices with the usage classes each is licensed
  for (what `studio specs`, `studio styles`, `studio models` and `studio voices` list);
- ``GET /v1/schemas/brief``: the brief's JSON Schema, as `studio schema brief` prints it.

Both are read from the same files and settings (STUDIO_SPECS_DIR, STUDIO_STYLES_DIR,
STUDIO_MODELS_DIR, STUDIO_VOICES_DIR) the brief is checked against at submit. Any token
of any project reads them (viewer): they say nothing about any job."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from studio.api.bodies import ApiError
from studio.api.deps import SettingsDep
from studio.api.schemas import ErrorOut
from studio.brief import brief_json_schema
from studio.errors import StudioError
from studio.specs import Catalog, ChannelSpec, StylePack


class SafeAreaOut(BaseModel):
    """Fractions of the (active) picture kept clear at each edge."""

    top: float
    right: float
    bottom: float
    left: float


class SpecOut(BaseModel):
    name: str
    title: str
    kind: Literal["video", "still"]
    width: int
    height: int
    aspect: str = Field(description="the frame's aspect, reduced, e.g. 16:9")
    fps: str | None = Field(description="frame rate (video); null for a still")
    codec: str
    container: str = Field(description="the deliverable's file type: mp4, jpg or png")
    min_duration: float | None = Field(description="seconds (video); null for a still")
    max_duration: float | None = Field(description="seconds (video); null: no limit")
    max_file_size: int | None = Field(description="bytes; null: no limit")
    loudness_target: float | None = Field(description="integrated LUFS (video)")
    true_peak: float | None = Field(description="dBTP ceiling (video)")
    active_aspect: str | None = Field(description="letterbox/pillarbox aspect of the picture; null: the frame's")
    safe_area: SafeAreaOut
    captions_burn_in: bool
    source: str = Field(description="where the figures come from")


class StyleOut(BaseModel):
    name: str
    title: str
    description: str = Field(description="the look, as the pack's look tokens say it")
    palette: list[str] = Field(description="swatches, #rrggbb")
    text_color: str
    camera: str = Field(description="the default camera move")
    lut: str | None = Field(description="the grade's LUT file name (.cube); null: no grade")
    look: dict[str, Any] | None = Field(description="the grade the LUT was baked from")


UsageClass = Literal["experiment", "internal", "public"]


class ModelOut(BaseModel):
    id: str
    title: str
    kind: str = Field(description="text-to-image, image-to-image, image-to-video, text-to-music")
    backend: str
    usage_classes: list[UsageClass] = Field(description="the usage classes it is licensed for")
    licence: str
    pinned: bool = Field(description="its weights are pinned by sha256")


class VoiceOut(BaseModel):
    id: str
    title: str
    kind: str
    backend: str
    language: str
    usage_classes: list[UsageClass] = Field(description="the usage classes it is licensed for")
    usage_reason: str = Field(description="why usage_classes is what it is")


class CatalogOut(BaseModel):
    specs: list[SpecOut]
    styles: list[StyleOut]
    models: list[ModelOut]
    voices: list[VoiceOut]


def spec_out(spec: ChannelSpec) -> SpecOut:
    aspect = Fraction(spec.width, spec.height)
    video = spec.kind == "video"
    container = "mp4" if video else ("jpg" if spec.codec == "jpeg" else "png")
    return SpecOut(
        name=spec.name, title=spec.title, kind=spec.kind, width=spec.width, height=spec.height,
        aspect=f"{aspect.numerator}:{aspect.denominator}", fps=spec.fps if video else None, codec=spec.codec,
        container=container, min_duration=spec.min_duration if video else None,
        max_duration=spec.max_duration if video else None, max_file_size=spec.max_file_size,
        loudness_target=spec.loudness_target if video else None, true_peak=spec.true_peak if video else None,
        active_aspect=spec.active_aspect, safe_area=SafeAreaOut(**spec.safe_area.model_dump()),
        captions_burn_in=spec.captions_burn_in, source=spec.source)


def style_out(style: StylePack) -> StyleOut:
    finishing = style.finishing
    return StyleOut(
        name=style.name, title=style.title, description=", ".join(style.look_tokens), palette=style.palette,
        text_color=style.text_color, camera=style.camera,
        lut=Path(finishing.lut).name if finishing.lut else None,
        look=finishing.look.model_dump(mode="json") if finishing.look else None)


def catalog(settings: Any) -> CatalogOut:
    """Everything from the settings' folders and the shipped data; a bad folder or file
    is a StudioError (the server's setup, not the request)."""
    # The registries live in their stage packages; the API is a face and may use them.
    from audio.voices import VoiceRegistry
    from studio.models import ModelRegistry

    cat = Catalog(settings.specs_dir, settings.styles_dir)
    models = ModelRegistry(settings.models_dir)
    voices = VoiceRegistry(settings.voices_dir)
    return CatalogOut(
        specs=[spec_out(s) for s in cat.specs.values()],
        styles=[style_out(s) for s in cat.styles.values()],
        models=[ModelOut(id=m.id, title=m.title or m.id, kind=m.kind, backend=m.backend,
                         usage_classes=list(m.usage_classes), licence=m.licence, pinned=bool(m.weights_sha256))
                for m in (models.entries[i] for i in sorted(models.entries))],
        voices=[VoiceOut(id=v.id, title=v.title, kind=v.kind, backend=v.backend, language=v.language,
                         usage_classes=list(v.usage_classes), usage_reason=" ".join(v.usage_reason.split()))
                for v in (voices.entries[i] for i in voices.ids())])


SETUP_ERROR = {500: {"model": ErrorOut, "description": "the server's catalog folders or files cannot be read "
                                                       "(its setup; the detail names the file)"}}


def add_routes(v1: APIRouter) -> None:
    @v1.get("/catalog", response_model=CatalogOut, tags=["catalog"], responses=SETUP_ERROR)
    def get_catalog(settings: SettingsDep) -> CatalogOut:
        """The channel specs, style packs, models and voices a brief can name, with their
        key figures and the usage classes each model and voice is licensed for."""
        try:
            return catalog(settings)
        except StudioError as e:
            raise ApiError(500, e.line(), fix=e.fix) from None

    @v1.get("/schemas/brief", tags=["catalog"],
            responses={200: {"content": {"application/json": {"schema": {"type": "object"}}},
                             "description": "the brief's JSON Schema (draft 2020-12), as `studio schema brief` "
                                            "prints it"}})
    def get_brief_schema() -> dict[str, Any]:
        """The brief's JSON Schema: field names, types, limits and descriptions."""
        return brief_json_schema()
