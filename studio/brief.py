"""The brief: what a producer asks for. Schema ``Brief.1``.

Validation happens here, at the edge, before any work starts: field errors name the
path (``beats[2].duration``), the bad value and the fix. Checks that need the catalog
(unknown specs, beats longer than a channel allows, missing reference images) live in
``check_against``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from studio import documents
from studio.brand import Copy
from studio.errors import ManyErrors, StudioError
from studio.policy import region_problem
from studio.rights import WORLDWIDE, Consent
from studio.specs import NAME_RE, Catalog, ChannelSpec, parse_rate
from studio.timecode import Timecode, check_label

ID_RE = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
LOCALE_RE = r"^[a-z]{2,3}(-[A-Z]{2})?$"
COPY_FIELDS = ("headline", "subline", "cta", "legal")
MAX_NARRATION = 2000  # characters of one beat's narration in one locale

# A piece of copy: one text for every locale, or one per locale ({en-GB: ..., fr-FR: ...}).
LocalText = str | dict[Annotated[str, Field(pattern=LOCALE_RE)], str]


class CopyText(BaseModel):
    """Copy as a brief writes it. Each text is one string for every locale the brief ships
    in, or a mapping with one string per locale; its length limits are studio.brand.Copy's
    (what a layout can set), checked for each locale's text."""

    model_config = ConfigDict(extra="forbid")
    headline: LocalText | None = Field(None, description="the main line (at most 90 characters)")
    subline: LocalText | None = Field(None, description="a second, smaller line (at most 160 characters)")
    cta: LocalText | None = Field(None, description="call to action, set on a button (at most 30 characters)")
    legal: LocalText | None = Field(None, description="legal super / disclaimer (at most 400 characters)")

    @field_validator(*COPY_FIELDS)
    @classmethod
    def _each(cls, v: LocalText | None, info: ValidationInfo) -> LocalText | None:
        if v is None:
            return v
        if isinstance(v, dict) and not v:
            raise ValueError("is an empty mapping; give a text, or one text per locale")
        for locale, text in (v.items() if isinstance(v, dict) else [(None, v)]):
            try:
                Copy.model_validate({info.field_name: text})
            except ValueError as e:
                problem = e.errors()[0]["msg"] if hasattr(e, "errors") else str(e)  # type: ignore[attr-defined]
                where = f" ({locale})" if locale else ""
                raise ValueError(f"{problem.lower()}{where}") from None
        return v

    def locales_given(self) -> set[str]:
        return {loc for f in COPY_FIELDS if isinstance(v := getattr(self, f), dict) for loc in v}

    def for_locale(self, locale: str) -> Copy:
        """The copy a layout sets in ``locale`` (a brief's checks made sure each text has it)."""
        out: dict[str, str] = {}
        for f in COPY_FIELDS:
            v = getattr(self, f)
            if isinstance(v, dict):
                if locale not in v:
                    raise StudioError(f"has no {locale} text", field=f, fix=f"add {locale}: ... to it")
                out[f] = v[locale]
            elif v is not None:
                out[f] = v
        return Copy(**out)

    def missing(self, locales: list[str]) -> list[tuple[str, str]]:
        """(field, locale) for each per-locale text without one of ``locales``."""
        return [(f, loc) for f in COPY_FIELDS if isinstance(v := getattr(self, f), dict)
                for loc in locales if loc not in v]


class EndCard(BaseModel):
    """The spot's end card: its copy and the brand's logo over the last seconds of every
    video deliverable."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    duration: float = Field(3.0, gt=0, le=15, description="seconds at the end of the spot it is shown")
    copy_: CopyText | None = Field(None, alias="copy", description="default: the brief's copy")
    layout: str = Field("end-card-centred", description="a layout name (`studio layouts`)")
    background: Literal["brand", "picture"] = Field(
        "brand", description="brand: the brand's primary colour fills the frame; picture: over the last beat")

CameraMove = Literal["push-in", "pull-out", "pan-left", "pan-right", "parallax", "static"]


class Likeness(BaseModel):
    """The real person a character is drawn from (its reference images are of them): the
    release gate's policy asks for their recorded consent (rule consent.real-person)."""

    model_config = ConfigDict(extra="forbid")
    person: str = Field(min_length=1, max_length=200, description="the person, as named in their release")
    consent: Consent | None = Field(None, description="their signed release: subject, document, granted, "
                                                      "expires, usage_classes")


class Character(BaseModel):
    """A character sheet: one description and its reference images, reused in every beat
    that casts it, so the character stays the same."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=ID_RE)
    description: str = Field(min_length=1, max_length=1000)
    reference_images: list[str] = []
    likeness: Likeness | None = Field(None, description="a real person's likeness: who, and their consent")


class Beat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID_RE, description="unique within the brief, e.g. b01-open")
    duration: float = Field(gt=0, le=600, description="seconds on screen")
    narration: LocalText = Field(
        "", description="what the voice says over the beat: one text, or one per locale ({en-GB: ..., fr-FR: ...}); "
                        "at most 2000 characters each",
        # the one text's limit, for forms built from the schema (a mapping's texts are checked alike)
        json_schema_extra={"maxLength": 2000})
    subject: str = Field(min_length=1, max_length=500)
    environment: str = Field("", max_length=500)
    composition: str = Field(
        "", max_length=500, description='free text, e.g. "subject left third, copy space right"'
    )
    mood: str = Field("", max_length=200)
    style: str = Field("", max_length=500, description="beat-specific style on top of the pack")
    disallowed: list[str] = Field([], description="elements that must not appear")
    reference_images: list[str] = Field([], description="paths relative to the brief")
    characters: list[str] = Field([], description="ids from the brief's characters")
    focus: tuple[float, float] | None = Field(
        None, description="subject position as fractions of the frame (x, y); overrides composition"
    )
    copy_space: Literal["left", "right", "top", "bottom", "none"] | None = Field(
        None, description="where text goes; overrides composition"
    )
    camera: CameraMove | None = Field(None, description="camera move; default from the style pack")
    supers: CopyText | None = Field(
        None, title="Supers", description="text on screen while this beat plays in video deliverables (headline, subline, "
                          "legal); held at least its reading time")
    more: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        [], max_length=8,
        description="more rounds of candidates, each steered by a note added to the prompt (new seeds; "
                    "the new candidates join the beat's sheet); the server's 'more candidates' adds these")

    @field_validator("focus")
    @classmethod
    def _focus(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not all(0.0 <= c <= 1.0 for c in v):
            raise ValueError("focus coordinates are fractions between 0 and 1")
        return v

    @field_validator("narration")
    @classmethod
    def _narration(cls, v: LocalText) -> LocalText:
        if isinstance(v, dict) and not v:
            raise ValueError("is an empty mapping; give a text, or one text per locale")
        for locale, text in (v.items() if isinstance(v, dict) else [(None, v)]):
            if len(text) > MAX_NARRATION:
                where = f" ({locale})" if locale else ""
                raise ValueError(f"is {len(text):,} characters{where}; the limit is {MAX_NARRATION:,}: "
                                 "split the line over more beats")
        return v

    def narration_in(self, locale: str) -> str:
        """The beat's narration in ``locale`` (one text for every locale, or that locale's)."""
        v = self.narration
        return v.get(locale, "") if isinstance(v, dict) else v

    @property
    def narrated(self) -> bool:
        """Whether the beat has words to speak in some locale."""
        v = self.narration
        return any(t.strip() for t in (v.values() if isinstance(v, dict) else [v]))


class MusicPlan(BaseModel):
    """The spot's music bed: one bed for the whole spot, never one per clip."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(
        "procedural",
        description="procedural (the built-in composer), library (a track from the music "
                    "library), none, or a text-to-music model registry id (e.g. musicgen-small)",
    )
    track: str | None = Field(None, description="library track id; default: best match for the mood")
    library: str | None = Field(None, description="music library folder, relative to the brief")
    tempo: float | None = Field(None, ge=40, le=220, description="beats per minute; default from the mood")
    key: str | None = Field(None, pattern=r"^[A-G][#b]?( ?(major|minor|m))?$",
                            description="e.g. D, F# minor, Bb major; default from the mood")
    mood: str | None = Field(None, max_length=200, description="default: the beats' moods")
    prompt: str | None = Field(None, max_length=500, description="text prompt for a model source")
    gain_db: float = Field(-9.0, ge=-40, le=0, description="bed level under the voice, before ducking")


class EffectsPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    library: str | None = Field(None, description="effects library folder, relative to the brief; "
                                                  "default: Studio's own procedural effects")


def _beat_ref(value: str, info: ValidationInfo) -> str:
    """A ``stills`` value names a beat of this brief (``beats`` is declared, so validated,
    first); the error's path is ``stills.<channel>``."""
    beats = info.data.get("beats")
    if beats is None:  # the beats failed to validate; their own errors say why
        return value
    ids = [b.id for b in beats]
    if value not in ids:
        raise ValueError(f"is not a beat id (use one of: {', '.join(ids)})")
    return value


def _region(value: str) -> str:
    """A region a brief ships to: an assigned ISO 3166-1 alpha-2 code, EU, EEA or worldwide."""
    problem = region_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class Brief(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: str = Field("Brief.1", alias="schema")
    _source: Brief | None = PrivateAttr(None)  # the brief as written, for a localized() one
    project: str = Field(pattern=NAME_RE, description="project code, lower-case")
    campaign: str = Field(pattern=NAME_RE)
    purpose: str = Field(min_length=1, max_length=2000)
    channels: list[str] = Field(min_length=1, description="channel spec names")
    style_pack: str
    beats: list[Beat] = Field(min_length=1)
    characters: list[Character] = []
    candidates: int = Field(4, ge=1, le=64, description="candidates per beat")
    usage_class: Literal["experiment", "internal", "public"] = "internal"
    regions: list[Annotated[str, AfterValidator(_region)]] = Field(
        default_factory=lambda: [WORLDWIDE], min_length=1, max_length=300,
        description="where the deliverables ship: ISO 3166-1 alpha-2 country codes in capitals (GB, FR, "
                    "US), EU, EEA, or worldwide; every licence must cover each (studio.policy)")
    locale: str = Field("en-US", pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")
    fps: str | None = Field(None, description="edit rate; default: the first video channel's")
    seed: int | None = Field(None, ge=0, lt=2**31, description="base seed; default from project")
    hero_beat: str | None = Field(None, description="beat whose frame stills are made from")
    stills: dict[str, Annotated[str, AfterValidator(_beat_ref)]] = Field(
        {}, description="still channel -> the beat it is made from, e.g. {banner-728x90: b04}; "
                        "unlisted still channels use hero_beat (else the first beat)")
    handles: int = Field(12, ge=0, le=240, description="extra frames rendered each side of a shot")
    keyframe_model: str | None = Field(
        None, description="model registry id for keyframes (`studio models`); default: procedural"
    )
    clip_model: str | None = Field(
        None, description="model registry id for image-to-video shot clips; default: camera move"
    )
    voice: str | None = Field(
        None, description="voice registry id for the narration; default: the first voice "
                          "licensed for the usage class"
    )
    music: MusicPlan = MusicPlan()
    effects: EffectsPlan = EffectsPlan()
    captions: bool = Field(True, description="captions from the voice-over for every video deliverable")
    start_timecode: str | None = Field(
        None, description="record timecode of the edit's first frame, HH:MM:SS:FF (HH:MM:SS;FF "
                          "drop-frame); default: the first video channel's (01:00:00:00)")
    drop_frame: bool | None = Field(
        None, description="drop-frame timecode for the edit; default: the first video channel's "
                          "(drop-frame at 30000/1001 and 60000/1001)")
    selection: Literal["auto", "human"] = Field(
        "auto", description="auto: the top score moves on (unless a person picked); human: the render "
                            "stops after the candidates and contact sheet until a person picks one per "
                            "beat (`studio select`, or the server's picks)")
    approvals: list[Annotated[str, Field(pattern=ID_RE)]] = Field(
        [], max_length=8,
        description="sign-offs the server's job waits for before delivery, e.g. [brand, legal]; each "
                    "approval names the content hash it covers")
    copy_: CopyText | None = Field(
        None, alias="copy", title="Copy", description="the campaign's copy: headline, subline, call to action and legal "
                                        "super on every still (and the end card's, unless it has its own)")
    end_card: EndCard | None = Field(None, title="End card", description="an end card over the last seconds of each video")
    layouts: dict[str, str] = Field(
        {}, description="channel -> layout name for its copy (`studio layouts`); default: banner-strip for "
                        "wide banners, copy-top for other stills, lower-third for video supers")
    locales: list[Annotated[str, Field(pattern=LOCALE_RE)]] = Field(
        [], max_length=12, description="ship one set of deliverables per locale, each with its copy; "
                                       "default: [locale]")
    voices: dict[Annotated[str, Field(pattern=LOCALE_RE)], str] = Field(
        {}, description="locale -> voice registry id for that locale's narration; default: the first voice "
                        "licensed for the usage class that speaks its language (none registered: the "
                        "locale ships subtitled, with the first locale's voice and its own captions)")
    otioz: bool = Field(
        False, description="also write the edit as an .otioz bundle holding copies of every shot "
                           "master (hundreds of MB); the .otio references them in the store")

    @field_validator("fps")
    @classmethod
    def _fps(cls, v: str | None) -> str | None:
        if v is not None:
            parse_rate(v)
        return v

    @field_validator("start_timecode")
    @classmethod
    def _timecode(cls, v: str | None) -> str | None:
        return check_label(v) if v is not None else v

    @field_validator("regions")
    @classmethod
    def _regions(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("lists a region twice")
        if WORLDWIDE in v and len(v) > 1:
            raise ValueError(f"{WORLDWIDE} already covers every region; list either {WORLDWIDE} or the countries "
                             "and unions")
        return v

    @model_validator(mode="after")
    def _refs(self) -> Brief:
        seen: set[str] = set()
        for b in self.beats:
            if b.id in seen:
                raise ValueError(f"beat id {b.id!r} appears twice; beat ids must be unique")
            seen.add(b.id)
        chars = {c.id for c in self.characters}
        for i, b in enumerate(self.beats):
            for c in b.characters:
                if c not in chars:
                    raise ValueError(f"beats[{i}].characters: {c!r} is not in the brief's characters")
        if self.hero_beat is not None and self.hero_beat not in seen:
            raise ValueError(f"hero_beat {self.hero_beat!r} is not a beat id")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("channels lists a spec twice")
        if len(set(self.approvals)) != len(self.approvals):
            raise ValueError("approvals lists a sign-off twice")
        if len(set(self.locales)) != len(self.locales):
            raise ValueError("locales lists a locale twice")
        wanted = self.all_locales
        copies: list[tuple[str, CopyText | None]] = [("copy", self.copy_)]
        copies += [(f"beats[{i}].supers", b.supers) for i, b in enumerate(self.beats)]
        if self.end_card is not None:
            copies.append(("end_card.copy", self.end_card.copy_))
        for path, c in copies:
            if c is None:
                continue
            for f, loc in c.missing(wanted):
                raise ValueError(f"{path}.{f}: has no {loc} text; give one per locale in locales ({', '.join(wanted)})")
            extra = sorted(c.locales_given() - set(wanted))
            if extra:
                raise ValueError(f"{path}: has text for {', '.join(extra)}, which is not in locales "
                                 f"({', '.join(wanted)}); add it to locales or remove that text")
        for i, b in enumerate(self.beats):
            if isinstance(b.narration, dict):
                missing = [loc for loc in wanted if loc not in b.narration]
                if missing:
                    raise ValueError(f"beats[{i}].narration: has no {missing[0]} text; give one per locale in "
                                     f"locales ({', '.join(wanted)})")
                extra = sorted(set(b.narration) - set(wanted))
                if extra:
                    raise ValueError(f"beats[{i}].narration: has text for {', '.join(extra)}, which is not in "
                                     f"locales ({', '.join(wanted)}); add it to locales or remove that text")
        for loc in self.voices:
            if loc not in wanted:
                raise ValueError(f"voices: names a voice for {loc}, which is not in locales ({', '.join(wanted)}); "
                                 "add it to locales or remove it")
        if self.end_card is not None and self.end_card.copy_ is None and self.copy_ is None:
            raise ValueError("end_card: has no copy and the brief has none; give end_card.copy or copy")
        return self

    @property
    def all_locales(self) -> list[str]:
        """The locales the brief ships in: ``locales``, else its one ``locale``."""
        return list(self.locales) or [self.locale]

    def localized(self, locale: str) -> Brief:
        """The brief as one locale's pass renders it: each beat's narration that locale's
        text, ``locale`` set to it, and ``voice`` the one named for it (the brief's own
        ``voice`` for its first locale, ``voices[locale]`` for the others). Copy, supers and
        the locale list stay whole: stills set every locale's copy in one pass, and the
        graphics pick the pass's locale's texts."""
        src = self.written
        first = locale == src.all_locales[0]
        voice = src.voice if first else src.voices.get(locale)
        beats = [b.model_copy(update={"narration": b.narration_in(locale)}) for b in src.beats]
        out = src.model_copy(update={"beats": beats, "locale": locale, "voice": voice})
        out._source = self.written  # the records name the brief as written
        return out

    @property
    def written(self) -> Brief:
        """The brief as written: this one, or the one a localized() brief was made from."""
        return self._source or self

    @property
    def pass_locale(self) -> str:
        """The locale this brief renders: its ``locale`` where the brief ships in it (a
        localized brief), else its first."""
        return self.locale if self.locale in self.all_locales else self.all_locales[0]

    # -- derived -------------------------------------------------------------------
    def canonical_json(self) -> str:
        data = self.model_dump(mode="json", by_alias=True)
        # Fields added after briefs were first recorded are left out while unset, so a brief
        # written before them keeps its hash (and its runs stay current).
        for name, default in LATER_FIELDS.items():
            if data.get(name) == default:
                data.pop(name, None)
        for beat in data.get("beats", []):
            if beat.get("supers") is None:
                beat.pop("supers", None)
        for character in data.get("characters", []):
            if character.get("likeness") is None:
                character.pop("likeness", None)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def content_hash(self) -> str:
        """The brief's identity in the records; a localized brief keeps its source's."""
        if self._source is not None:
            return self._source.content_hash()
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    @property
    def base_seed(self) -> int:
        if self.seed is not None:
            return self.seed
        h = hashlib.sha256(f"{self.project}/{self.campaign}".encode()).digest()
        return int.from_bytes(h[:4], "big") & 0x7FFFFFFF

    @property
    def total_duration(self) -> float:
        return sum(b.duration for b in self.beats)

    def hero(self) -> Beat:
        if self.hero_beat:
            return next(b for b in self.beats if b.id == self.hero_beat)
        return self.beats[0]

    def still_beat(self, channel: str) -> Beat:
        """The beat a still channel is made from: ``stills[channel]``, else the hero beat."""
        beat_id = self.stills.get(channel)
        if beat_id is None:
            return self.hero()
        return next(b for b in self.beats if b.id == beat_id)


LATER_FIELDS: dict[str, Any] = {"copy": None, "end_card": None, "layouts": {}, "locales": [], "voices": {},
                                "regions": [WORLDWIDE]}


def brief_json_schema() -> dict[str, Any]:
    schema = Brief.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Brief.1"
    return schema


def load_brief(path: str | Path) -> tuple[Brief, Path]:
    path = Path(path)
    return documents.load(path, Brief, "Brief"), path.resolve().parent


def check_models(brief: Brief, registry: Any, source: str | None = None) -> list[StudioError]:
    """Models exist, fit their role, and are licensed for the brief's usage class."""
    errors: list[StudioError] = []
    for field, kinds in (("keyframe_model", ("text-to-image", "image-to-image")),
                         ("clip_model", ("image-to-video",))):
        model_id = getattr(brief, field)
        if model_id is None:
            continue
        try:
            entry = registry.get(model_id, field=field)
            if entry.kind not in kinds:
                raise StudioError(f"model {model_id!r} is {entry.kind}, not {' or '.join(kinds)}",
                                  fix="pick a model of that kind (`studio models`)", field=field)
            registry.check_usage(entry, brief.usage_class, field="usage_class")
        except StudioError as e:
            e.source = source
            errors.append(e)
    return errors


def has_sound(brief: Brief, specs: list[ChannelSpec]) -> bool:
    """Sound is made for video channels only: a stills-only brief's narration is never
    spoken (unless a channel is unknown: it may be video)."""
    return any(s.kind == "video" for s in specs) or len(specs) < len(brief.channels)


def brief_problems(brief: Brief, catalog: Catalog, base_dir: Path, source: str | None = None,
                   registry: Any = None, settings: Any = None) -> tuple[list[ChannelSpec], list[StudioError]]:
    """Everything the core can check that needs the catalog, the model registry or the
    filesystem: the channel specs found and every problem, none raised. The stages' own
    plan checks (voice, music, LUT) are added by the runner (``studio.pipeline.check_brief``)."""
    errors: list[StudioError] = check_models(brief, registry, source) if registry is not None else []
    specs: list[ChannelSpec] = []
    for i, name in enumerate(brief.channels):
        try:
            specs.append(catalog.spec(name, field=f"channels[{i}]"))
        except StudioError as e:
            e.source = source
            errors.append(e)
    kinds = {s.name: s.kind for s in specs}
    for name in brief.stills:
        if name not in brief.channels:
            errors.append(StudioError(
                f"{name!r} is not one of the brief's channels ({', '.join(brief.channels)})",
                fix="add it to channels or remove it from stills", field=f"stills.{name}", source=source))
        elif kinds.get(name, "still") != "still":
            errors.append(StudioError(
                f"{name!r} is a {kinds[name]} channel; stills maps still channels to beats",
                fix="remove it from stills (a video channel shows every beat)", field=f"stills.{name}",
                source=source))
    try:
        catalog.style(brief.style_pack)
    except StudioError as e:
        e.source = source
        errors.append(e)
    if len(specs) == len(brief.channels):
        try:
            edit_timecode(brief, specs)
        except StudioError as e:
            e.source = source
            errors.append(e)
    total = brief.total_duration
    for spec in specs:
        if spec.kind != "video":
            continue
        if spec.max_duration is not None and total > spec.max_duration:
            longest = max(brief.beats, key=lambda b: b.duration)
            errors.append(StudioError(
                f"the spot runs {total:g} s but {spec.name} allows at most {spec.max_duration:g} s "
                f"(longest beat: {longest.id}, {longest.duration:g} s)",
                fix="shorten the beats or drop that channel", field="beats", source=source,
            ))
        if total < spec.min_duration:
            errors.append(StudioError(
                f"the spot runs {total:g} s but {spec.name} needs at least {spec.min_duration:g} s",
                fix="lengthen the beats or drop that channel", field="beats", source=source,
            ))
    # Reference images (beats and character sheets): confined to the brief's folder or
    # STUDIO_ASSETS_ROOTS, real images, within the byte and pixel limits (studio.assets).
    from studio.assets import check_brief_assets

    errors += check_brief_assets(brief, base_dir, settings, source)
    # Copy: every text each channel shows fits its layout in every locale; layouts named
    # in the brief exist (studio.copyfit), before any work starts.
    from studio.copyfit import copy_problems

    errors += copy_problems(brief, specs, catalog, source)
    return specs, errors


def check_against(brief: Brief, catalog: Catalog, base_dir: Path, source: str | None = None,
                  registry: Any = None, settings: Any = None) -> list[ChannelSpec]:
    """``brief_problems``, raised as one ManyErrors. Returns the channel specs."""
    specs, errors = brief_problems(brief, catalog, base_dir, source, registry, settings)
    if errors:
        raise ManyErrors(errors)
    return specs


def edit_timecode(brief: Brief, specs: list[ChannelSpec]) -> Timecode:
    """The edit's start timecode, which every export writes: the brief's
    ``start_timecode``/``drop_frame`` where given, else the first video channel's (the
    first channel's for stills only), at the edit rate. A channel's ``drop_frame`` counts
    only at its own rate (a brief ``fps`` of 25 leaves 29.97's DF behind)."""
    rate = edit_rate(brief, specs)
    main = next((s for s in specs if s.kind == "video"), specs[0] if specs else None)
    label = brief.start_timecode or (main.start_timecode if main else "01:00:00:00")
    drop = brief.drop_frame
    if drop is None and main is not None and main.drop_frame is not None and main.rate == rate:
        drop = main.drop_frame
    try:
        return Timecode.parse(label, rate, drop)
    except ValueError as e:
        field = "drop_frame" if brief.drop_frame and "only at" in str(e) else "start_timecode"
        if brief.start_timecode is None and brief.drop_frame is None:
            field = "fps"  # the channel's own label is valid at its rate, not at the brief's
        raise StudioError(f"{e} (edit rate {rate})", fix="give start_timecode/drop_frame that fit the "
                          "edit rate", field=field) from None


def edit_rate(brief: Brief, specs: list[ChannelSpec]):  # -> Fraction
    if brief.fps:
        return parse_rate(brief.fps)
    for s in specs:
        if s.kind == "video":
            return s.rate
    return parse_rate("30")
