"""Rights records: what each component of a deliverable may be used for.

Every component (a model, a voice, a music track or cue, a font, a logo, a reference)
carries a :class:`RightsRecord`: who licensed it, under which licence (``licence_id`` is
the ledger's key: a contract or grant number, or one derived from the component), for which
usage classes, territories, media and channels, for which dates, with the consent of the
real person a cloned voice or a likeness is of, and where it came from.

Registries and sidecars carry what they know in their own fields (a model's ``licence``,
``usage_classes`` and ``provenance``; a music track's ``rights``; a font's ``licence``) plus
an optional :class:`RightsTerms` block for the ledger's fields they lack; the record is
their union. A deliverable's rights are its components' records, found through its lineage
(:mod:`studio.lineage`): :class:`Part` is one such component with its record.

Below the types: builders of each source's record (``model_record``, ``voice_record``,
``track_record``, ``effect_record``, ``font_record``, ``logo_record``, the ``BUILTIN`` records
of Studio's own generators), ``deliverable_parts`` (a run's deliverables' parts, mid-run
too), and the ledger in the database: each licence under its id (``licence`` table, written
when a run's lineage is recorded), ``revoke`` and ``check_expiry``, which block every
deliverable a licence reaches (``deliverable_block``; ``studio where`` shows them), and
``rights_of`` (``studio rights DELIVERABLE``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

UsageClass = Literal["experiment", "internal", "public"]
USAGE_CLASSES: tuple[str, ...] = ("experiment", "internal", "public")
# Where a component may appear: on screens (web, social, apps), on air, on paper.
Medium = Literal["digital", "broadcast", "print"]
MEDIA: tuple[str, ...] = ("digital", "broadcast", "print")
WORLDWIDE = "worldwide"
TERRITORY_RE = r"^(worldwide|[A-Z]{2}|EU|EEA)$"  # ISO 3166-1 alpha-2, or a union named here


class Consent(BaseModel):
    """A real person's recorded consent to the use of their voice or likeness."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    subject: str = Field(min_length=1, max_length=200, description="the person, as named in the release")
    document: str = Field(min_length=1, max_length=500, description="where the signed release is kept")
    granted: dt.date
    expires: dt.date | None = Field(None, description="last day the consent covers")
    usage_classes: list[UsageClass] = Field(default_factory=lambda: list(USAGE_CLASSES), min_length=1)


class RightsTerms(BaseModel):
    """The ledger's fields a registry entry or sidecar may add to what it already records
    (each optional: a field left out keeps the default of :class:`RightsRecord`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    licence_id: str | None = Field(None, min_length=1, max_length=200,
                                   description="the contract or grant number (the ledger's key)")
    licensor: str | None = Field(None, min_length=1, max_length=200)
    territories: list[str] | None = Field(None, min_length=1, description="ISO 3166-1 alpha-2 codes, EU, EEA or worldwide")
    media: list[Medium] | None = Field(None, min_length=1, description="digital, broadcast, print")
    channels: list[str] | None = Field(None, min_length=1, description="channel spec names or globs (* = any)")
    starts: dt.date | None = None
    expires: dt.date | None = Field(None, description="last day the licence allows use")
    real_person: str | None = Field(None, min_length=1, max_length=200,
                                    description="whose voice or likeness this is (cloned voice, likeness)")
    consent: Consent | None = None


class RightsRecord(BaseModel):
    """A component's rights, complete: what the ledger keeps and the policy reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    licence_id: str = Field(min_length=1, max_length=300)
    licence: str = Field(min_length=1, max_length=300, description="licence name or SPDX id")
    licensor: str = Field(min_length=1, max_length=300)
    usage_classes: list[UsageClass] = Field(min_length=1)
    territories: list[str] = Field(default_factory=lambda: [WORLDWIDE], min_length=1)
    media: list[Medium] = Field(default_factory=lambda: list(MEDIA), min_length=1)
    channels: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    starts: dt.date | None = None
    expires: dt.date | None = None
    provenance: str = ""
    attribution: str | None = None
    real_person: str | None = None
    consent: Consent | None = None

    @model_validator(mode="after")
    def _dates(self) -> RightsRecord:
        if self.starts and self.expires and self.expires < self.starts:
            raise ValueError(f"expires {self.expires} is before starts {self.starts}")
        return self

    def with_terms(self, terms: RightsTerms | None) -> RightsRecord:
        """This record with the fields ``terms`` sets replaced."""
        if terms is None:
            return self
        return self.model_copy(update={k: v for k, v in terms.model_dump().items() if v is not None})


PartKind = Literal["shot", "keyframe", "voice", "music", "effect", "font", "logo", "footage",
                   "product", "reference", "caption", "model", "other"]


@dataclass(frozen=True)
class Part:
    """One component of a deliverable with its rights: ``node`` is its lineage node
    (kind, id), e.g. ("model", "sdxl-base") or ("voice", "joe-us")."""

    node: tuple[str, str]
    kind: PartKind
    name: str
    rights: RightsRecord
    generated: bool
    model: str | None = None  # the model or voice that made a generated part
    sha256: str | None = None


# -- builders: each source's rights as a complete record --------------------------------
#
# A licence id the source does not give is derived from the component, so every component
# is in the ledger under a stable key: model:<id>, voice:<id>, track:<id>, effect:<id>,
# font:<sha256[:12]>, logo:<sha256[:12]>; Studio's own generators share builtin:<what>.

ALL_CLASSES: list[UsageClass] = ["experiment", "internal", "public"]
NOT_RECORDED = "not recorded"
BUILTIN_LICENSOR = "the project"  # as audio's built-in composer and effects record their owner
BUILTIN_LICENCE = "Apache-2.0 (Studio's own code; no third-party material)"
BUILTIN_KEYFRAMES = "procedural"  # the model id (and backend) of the built-in keyframe generator


def _builtin(what: str, provenance: str) -> RightsRecord:
    return RightsRecord(licence_id=f"builtin:{what}", licence=BUILTIN_LICENCE, licensor=BUILTIN_LICENSOR,
                        usage_classes=list(ALL_CLASSES), provenance=provenance)


# Studio's own generators: made by its code, from no one else's material.
BUILTIN: dict[str, RightsRecord] = {
    "keyframes": _builtin("procedural-keyframes", "shots/backends/procedural.py: keyframes drawn by "
                                                  "Studio's procedural backend"),
    "composer": _builtin("procedural-composer", "audio/music.py: a bed composed by Studio's procedural "
                                                "composer"),
    "effects": _builtin("procedural-effects", "audio/effects.py: effects synthesised by Studio"),
}


def _text(value: Any, limit: int = 300) -> str:
    """A recorded text as a record field: spaces folded, cut to ``limit`` with an ellipsis
    (a licence recorded from a model card can be a paragraph)."""
    text = " ".join(str(value or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _terms(value: Any, what: str) -> RightsTerms | None:
    if value is None or isinstance(value, RightsTerms):
        return value
    try:
        return RightsTerms.model_validate(value)
    except ValueError as e:
        raise _bad(what, "terms", e) from None


def _bad(what: str, field: str, e: Exception) -> Exception:
    from studio.errors import StudioError

    first = str(e).splitlines()
    detail = "; ".join(ln.strip() for ln in first[1:3]) if len(first) > 1 else str(e)
    return StudioError(f"{what}: its rights record is not valid: {detail}", field=field,
                       fix="correct the rights in its registry entry, sidecar or style pack "
                           "(studio.rights.RightsTerms lists the fields)")


def _record(what: str, **fields: Any) -> RightsRecord:
    try:
        return RightsRecord(**fields)
    except ValueError as e:
        raise _bad(what, "rights", e) from None


def _with(base: RightsRecord, terms: RightsTerms | None, what: str) -> RightsRecord:
    """``base`` with ``terms``, checked as a whole (with_terms copies without checking: terms
    that end before they start are refused here)."""
    if terms is None:
        return base
    return _record(what, **base.with_terms(terms).model_dump())


def _classes(value: Any) -> list[UsageClass]:
    classes = [c for c in (value or []) if c in USAGE_CLASSES]
    # A record without usage classes allows the least: experiments.
    return classes or ["experiment"]


def _consent(value: Any) -> Consent | None:
    """A recorded consent as the ledger's: its own shape, or a voice entry's {who, when,
    scope, reference}."""
    if not value:
        return None
    if isinstance(value, Consent):
        return value
    if "who" in value:
        scope = value.get("scope") or ""
        return Consent(subject=_text(value["who"], 200), granted=value["when"],
                       document=_text(value.get("reference") or f"{NOT_RECORDED} (scope: {scope})", 500))
    return Consent.model_validate(value)


def model_record(entry: Any) -> RightsRecord:
    """A model registry entry's (studio.models.ModelEntry) record: its licence, usage
    classes and provenance, licensed by the hub repository's owner unless its ``rights``
    say who, under ``model:<id>`` unless they give the licence id."""
    src = entry.source
    licensor = src.hub_id.split("/")[0] if src.hub_id else f"{NOT_RECORDED} (a local model folder)"
    base = _record(f"model {entry.id!r}", licence_id=f"model:{entry.id}", licence=_text(entry.licence),
                   licensor=licensor, usage_classes=list(entry.usage_classes), provenance=entry.provenance,
                   attribution=entry.licence_url)
    what = f"model {entry.id!r}"
    return _with(base, _terms(getattr(entry, "rights", None), what), what)


def unknown_model_record(model_id: str, recorded: dict[str, Any] | None = None) -> RightsRecord:
    """A model the registry does not know (any more): what its records kept, else nothing
    but experiments, since nobody can say what its licence allows."""
    recorded = recorded or {}
    return _record(f"model {model_id!r}", licence_id=f"model:{model_id}",
                   licence=_text(recorded.get("licence") or f"unknown: model {model_id!r} is not in the model registry"),
                   licensor=NOT_RECORDED, usage_classes=_classes(recorded.get("usage_classes")),
                   provenance=_text(recorded.get("provenance") or "", 2000),
                   attribution=recorded.get("licence_url"))


def voice_record(rights: dict[str, Any], voice_id: str | None = None) -> RightsRecord:
    """A voice's record from what a voice line keeps of it (AudioAsset.rights, written by
    audio.voices.VoiceEntry.ledger_rights): licence, usage classes, licensor, whose voice it
    is and their consent, and the entry's ledger terms; under ``voice:<id>``."""
    vid = voice_id or rights.get("voice") or "unknown"
    what = f"voice {vid!r}"
    base = _record(what, licence_id=f"voice:{vid}", licence=_text(rights.get("licence") or NOT_RECORDED),
                   licensor=_text(rights.get("licensor") or NOT_RECORDED),
                   usage_classes=_classes(rights.get("usage_classes")),
                   provenance=_text(rights.get("provenance") or "", 2000),
                   real_person=rights.get("real_person"), consent=_consent(rights.get("consent")))
    return _with(base, _terms(rights.get("terms"), what), what)


def library_record(rights: dict[str, Any], licence_id: str, what: str) -> RightsRecord:
    """A music or effects library track's record (audio.library.Rights as recorded: licence,
    owner, source, usage classes, attribution, expiry and the ledger's optional fields),
    licensed by its ``licensor``, else its owner."""
    fields = {k: rights[k] for k in ("territories", "media", "channels", "starts", "expires", "real_person")
              if rights.get(k) is not None}
    return _record(what, licence_id=rights.get("licence_id") or licence_id,
                   licence=_text(rights.get("licence") or NOT_RECORDED),
                   licensor=_text(rights.get("licensor") or rights.get("owner") or NOT_RECORDED),
                   usage_classes=_classes(rights.get("usage_classes")),
                   provenance=_text(rights.get("source") or "", 2000), attribution=rights.get("attribution"),
                   consent=_consent(rights.get("consent")), **fields)


def track_record(rights: dict[str, Any], track_id: str) -> RightsRecord:
    """A music library track's record, under ``track:<id>`` unless it gives a licence id."""
    return library_record(rights, f"track:{track_id}", f"music track {track_id!r}")


def effect_record(rights: dict[str, Any], effect_id: str) -> RightsRecord:
    """An effect's record: Studio's own synthesised effects share ``builtin:procedural-effects``;
    a library's effect is its track's record, under ``effect:<id>``."""
    if str(rights.get("source") or "").startswith("audio/effects.py") and not rights.get("licence_id"):
        return BUILTIN["effects"]
    return library_record(rights, f"effect:{effect_id}", f"effect {effect_id!r}")


def font_record(font: dict[str, Any]) -> RightsRecord:
    """A brand font's record, from what a deliverable keeps of it (studio.copyfit.brand_inputs:
    file, sha256, licence, terms), under ``font:<sha256[:12]>`` unless its terms give one."""
    from studio.brand import DEFAULT_FONT_LICENCE, DEFAULT_FONT_LICENSOR

    sha = str(font.get("sha256") or "")
    licence = font.get("licence") or NOT_RECORDED
    licensor = DEFAULT_FONT_LICENSOR if licence == DEFAULT_FONT_LICENCE else NOT_RECORDED
    what = f"font {font.get('file')!r}"
    base = _record(what, licence_id=f"font:{sha[:12]}", licence=_text(licence), licensor=licensor,
                   usage_classes=list(ALL_CLASSES), provenance=f"font file {font.get('file')} (sha256 {sha})")
    return _with(base, _terms(font.get("terms"), what), what)


def likeness_record(character: dict[str, Any], project: str) -> RightsRecord:
    """A character drawn from a real person (a brief's ``characters[].likeness``), under
    ``likeness:<project>/<character id>``: licensed by that person, every usage class,
    territory and medium open, so their consent is what the policy judges it by."""
    like = character.get("likeness") or {}
    consent = _consent(like.get("consent"))
    person = _text(like.get("person") or NOT_RECORDED, 200)
    return _record(f"character {character.get('id')!r}", licence_id=f"likeness:{project}/{character.get('id')}",
                   licence=_text(f"likeness release ({consent.document})" if consent else "no release recorded"),
                   licensor=person, usage_classes=list(ALL_CLASSES), real_person=person, consent=consent,
                   provenance=_text(f"character {character.get('id')}: reference images of {person}", 2000))


def logo_record(logo: dict[str, Any]) -> RightsRecord:
    """A brand logo's record (studio.brand.Rights as a deliverable keeps it: owner, licence,
    source, terms), licensed by its owner, under ``logo:<sha256[:12]>`` unless its terms
    give a licence id."""
    sha = str(logo.get("sha256") or "")
    rights = logo.get("rights") or {}
    what = f"logo {logo.get('file')!r}"
    base = _record(what, licence_id=f"logo:{sha[:12]}", licence=_text(rights.get("licence") or NOT_RECORDED),
                   licensor=_text(rights.get("owner") or NOT_RECORDED), usage_classes=list(ALL_CLASSES),
                   provenance=_text(rights.get("source") or f"logo file {logo.get('file')}", 2000))
    return _with(base, _terms(rights.get("terms"), what), what)


# -- resolving: a run's components and each deliverable's parts ------------------------

Edge = tuple[str, str, str, str, str]
Node = tuple[str, str]
LICENSED_KINDS = ("model", "voice", "track", "composer", "effect", "font", "logo", "likeness")


def _registry(settings: Any) -> Any:
    from studio.errors import StudioError
    from studio.models import ModelRegistry

    folder = getattr(settings, "models_dir", None) if settings is not None else None
    try:
        return ModelRegistry(folder) if folder is not None else ModelRegistry.from_env()
    except StudioError:
        # The user's folder is gone or broken since the run checked it: the shipped entries
        # still say what they say, and any other model is recorded as unknown (experiment
        # only) rather than failing the recording of a finished run.
        return ModelRegistry(None)


def node_records(s: Any, edges: set[Edge], settings: Any = None) -> dict[Node, RightsRecord]:
    """The rights record of every licensed node (model, voice, track, composer, effect,
    font, logo) the edges reach: from the model registry (``settings``' models folder, else
    the environment's), the audio assets' recorded rights and the deliverables' records of
    their font and logo."""
    from sqlmodel import select

    from studio import db, lineage

    dsts = {(e[2], e[3]) for e in edges}
    srcs = {(e[0], e[1]) for e in edges}
    out: dict[Node, RightsRecord] = {}
    audio_ids = sorted(i for k, i in srcs if k == "audio")
    rows = s.exec(select(db.AudioAsset).where(db.AudioAsset.id.in_(audio_ids))).all() if audio_ids else []  # type: ignore[attr-defined]
    recorded_models: dict[str, dict[str, Any]] = {}
    for a in sorted(rows, key=lambda a: (a.created_at, a.id)):  # the newest record of a thing wins
        p, r = a.params or {}, a.rights or {}
        if a.kind == "voice-line":
            vid = p.get("voice") or r.get("voice")
            if vid and ("voice", vid) in dsts:
                out[("voice", vid)] = voice_record(r, vid)
        elif a.kind == "music-bed":
            if p.get("track") and ("track", p["track"]) in dsts:
                out[("track", p["track"])] = track_record(r, p["track"])
            elif p.get("source") not in (None, "procedural", "library"):
                recorded_models[p["source"]] = r
        elif a.kind == "effect-cue" and p.get("effect") and ("effect", p["effect"]) in dsts:
            out[("effect", p["effect"])] = effect_record(r, p["effect"])
    for kind, ident in dsts:
        if kind == "composer":
            out[(kind, ident)] = BUILTIN["composer"]
    models = sorted(i for k, i in dsts if k == "model")
    if models:
        registry = _registry(settings)
        for mid in models:
            if mid in registry.entries:
                out[("model", mid)] = model_record(registry.entries[mid])
            elif mid == BUILTIN_KEYFRAMES:
                out[("model", mid)] = BUILTIN["keyframes"]
            else:
                out[("model", mid)] = unknown_model_record(mid, recorded_models.get(mid))
    likeness = {(e[0], e[1]): e[3] for e in edges if e[2] == "likeness" and e[0] == "candidate"}
    if likeness:  # from the brief the candidates were made for
        cand = next(iter(likeness))[1]
        bv = s.exec(select(db.BriefVersion).join(db.Run, db.Run.brief_version_id == db.BriefVersion.id)  # type: ignore[arg-type]
                    .join(db.Shot, db.Shot.run_id == db.Run.id)  # type: ignore[arg-type]
                    .join(db.Candidate, db.Candidate.shot_id == db.Shot.id)  # type: ignore[arg-type]
                    .where(db.Candidate.id == cand)).first()
        doc = (bv.document or {}) if bv is not None else {}
        for ch in doc.get("characters") or []:
            ident = f"{doc.get('project')}/{ch.get('id')}"
            if ch.get("likeness") and ("likeness", ident) in dsts:
                out[("likeness", ident)] = likeness_record(ch, str(doc.get("project")))
    ids = sorted(i for k, i in srcs if k == "deliverable")
    for d in s.exec(select(db.Deliverable).where(db.Deliverable.id.in_(ids))).all() if ids else []:  # type: ignore[attr-defined]
        brand = lineage.brand_inputs(d)
        if (brand.get("font") or {}).get("sha256"):
            out[("font", brand["font"]["sha256"])] = font_record(brand["font"])
        if (brand.get("logo") or {}).get("sha256"):
            out[("logo", brand["logo"]["sha256"])] = logo_record(brand["logo"])
    return out


def licence_edges(records: dict[Node, RightsRecord]) -> set[Edge]:
    """Each licensed node's edge to its licence: ``where licence:ID`` walks up from it."""
    return {(k, i, "licence", r.licence_id, "licence") for (k, i), r in records.items()}


def _children(edges: set[Edge]) -> dict[Node, list[tuple[str, Node]]]:
    kids: dict[Node, list[tuple[str, Node]]] = {}
    for sk, si, dk, di, role in edges:
        kids.setdefault((sk, si), []).append((role, (dk, di)))
    return kids


def _reach(kids: dict[Node, list[tuple[str, Node]]], root: Node) -> set[Node]:
    seen, todo = {root}, [root]
    while todo:
        for _role, n in kids.get(todo.pop(), []):
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


PART_ORDER = {k: n for n, k in enumerate(("model", "keyframe", "shot", "voice", "music", "effect", "font",
                                          "logo"))}


def deliverable_parts(s: Any, run_id: str, settings: Any = None) -> dict[str, list[Part]]:
    """Each deliverable of run ``run_id`` (by id): its components with their rights, found
    by walking down its lineage (studio.lineage.run_edges of the run, and for a conform of
    the run it came from). Works mid-run, once the Deliverable rows are written: nothing
    needs the run's edges to be recorded. Models' rights come from the registry of
    ``settings`` (its models folder; else the environment's)."""
    from sqlmodel import select

    from studio import db, lineage
    from studio.errors import StudioError

    run = s.get(db.Run, run_id)
    if run is None:
        raise StudioError(f"no run {run_id!r} in the database", fix="see `studio runs`", field="RUN")
    edges = lineage.run_edges(s, run_id, licences=False)
    source = lineage._source_run(s, run)
    if source.id != run_id:  # a conform's renders, candidates and sound are its source's
        edges |= lineage.run_edges(s, source.id, licences=False)
    records = node_records(s, edges, settings)
    kids = _children(edges)
    nodes = {(e[2], e[3]) for e in edges} | {(e[0], e[1]) for e in edges}

    def ids(kind: str) -> list[str]:
        return sorted(i for k, i in nodes if k == kind)

    cands = {c.id: (c, beat) for c, beat in s.exec(
        select(db.Candidate, db.Shot.beat_id).join(db.Shot, db.Candidate.shot_id == db.Shot.id)  # type: ignore[arg-type]
        .where(db.Candidate.id.in_(ids("candidate")))).all()}  # type: ignore[attr-defined]
    renders = {r.id: (r, beat) for r, beat in s.exec(
        select(db.Render, db.Shot.beat_id).join(db.Shot, db.Render.shot_id == db.Shot.id)  # type: ignore[arg-type]
        .where(db.Render.id.in_(ids("render")))).all()}  # type: ignore[attr-defined]
    audio = {a.id: a for a in s.exec(select(db.AudioAsset).where(db.AudioAsset.id.in_(ids("audio")))).all()}  # type: ignore[attr-defined]

    def model_of(node: Node) -> str | None:
        return next((n[1] for role, n in kids.get(node, []) if role == "model"), None)

    parts: dict[Node, Part] = {}
    for (kind, ident), rec in records.items():
        if kind == "model":
            parts[(kind, ident)] = Part(node=(kind, ident), kind="model", name=f"model {ident}", rights=rec,
                                        generated=False, model=ident)
        elif kind == "likeness":
            parts[(kind, ident)] = Part(node=(kind, ident), kind="reference",
                                        name=f"character {ident.split('/', 1)[-1]} (likeness)", rights=rec,
                                        generated=False)
    for cid, (c, beat) in cands.items():
        rec = records.get(("model", c.model_id))
        if rec is not None:
            parts[("candidate", cid)] = Part(node=("candidate", cid), kind="keyframe",
                                             name=f"keyframe {beat} #{c.index}", rights=rec, generated=True,
                                             model=c.model_id, sha256=c.media_sha256)
    for rid, (r, beat) in renders.items():
        # A shot is its keyframe moved: by a clip model (whose rights it has), or by the
        # procedural camera (it has its keyframe's).
        clip = model_of(("render", rid))
        cand = cands.get(r.candidate_id)
        model = clip or (cand[0].model_id if cand else None)
        rec = records.get(("model", model)) if model else None
        if rec is not None:
            parts[("render", rid)] = Part(node=("render", rid), kind="shot", name=f"shot {beat}", rights=rec,
                                          generated=True, model=model, sha256=r.media_sha256)
    for aid, a in audio.items():
        p = a.params or {}
        locale = f" ({p['locale']})" if p.get("locale") else ""
        if a.kind == "voice-line":
            vid = p.get("voice") or (a.rights or {}).get("voice")
            if ("voice", vid) in records:
                parts[("audio", aid)] = Part(node=("audio", aid), kind="voice",
                                             name=f"voice line {a.name}{locale} ({vid})",
                                             rights=records[("voice", vid)], generated=True, model=vid,
                                             sha256=a.sha256)
        elif a.kind == "music-bed":
            if p.get("track"):
                node, name, model = ("track", p["track"]), f"music bed: track {p['track']}", None
            elif p.get("source") in (None, "procedural", "library"):
                src = p.get("source") or "procedural"
                # The procedural composer writes the bed in code: algorithmic media, made by
                # "procedural" (studio.release discloses it as such, not as trained).
                node, name, model = ("composer", src), f"music bed: {src} composer", \
                    "procedural" if src == "procedural" else None
            else:
                node, name, model = ("model", p["source"]), f"music bed: model {p['source']}", p["source"]
            if node in records:
                parts[("audio", aid)] = Part(node=("audio", aid), kind="music", name=name, rights=records[node],
                                             generated=model is not None, model=model, sha256=a.sha256)
        elif a.kind == "effect-cue" and ("effect", p.get("effect")) in records:
            parts[("audio", aid)] = Part(node=("audio", aid), kind="effect",
                                         name=f"effect cue {a.name} ({p['effect']})",
                                         rights=records[("effect", p["effect"])],
                                         generated=_synthesized(records[("effect", p["effect"])]),
                                         model="procedural" if _synthesized(records[("effect", p["effect"])]) else None,
                                         sha256=a.sha256)
    out: dict[str, list[Part]] = {}
    for d in s.exec(select(db.Deliverable).where(db.Deliverable.run_id == run_id)).all():
        reached = _reach(kids, ("deliverable", d.id))
        mine = [parts[n] for n in reached if n in parts]
        brand = lineage.brand_inputs(d)
        for role in ("font", "logo"):
            item = brand.get(role) or {}
            node = (role, item.get("sha256") or "")
            if node in records:
                mine.append(Part(node=node, kind=role, name=f"{role} {item.get('file')}", rights=records[node],
                                 generated=False, sha256=node[1]))
        mine.sort(key=lambda p: (PART_ORDER.get(p.kind, 99), p.name, p.node))
        out[d.id] = mine
    return out


def planned_parts(*, models: list[tuple[str, Any]], voices: list[tuple[str, dict[str, Any]]],
                  font: dict[str, Any] | None, logo: dict[str, Any] | None) -> list[Part]:
    """The licensed things a render will use, known before it runs (studio.release's
    pre-flight): its models (id and registry entry, None for the built-in generator),
    its voices (id and what a voice line records of its rights), and the brand's font and
    logo as a deliverable records them (studio.copyfit.brand_inputs). Each is the
    component the policy names after a render too (model:ID, voice:ID, font:SHA, logo:SHA)."""
    parts: list[Part] = []
    for mid, entry in models:
        rec = (model_record(entry) if entry is not None else
               BUILTIN["keyframes"] if mid == BUILTIN_KEYFRAMES else unknown_model_record(mid))
        parts.append(Part(node=("model", mid), kind="model", name=f"model {mid}", rights=rec, generated=False,
                          model=mid))
    for vid, recorded in voices:
        parts.append(Part(node=("voice", vid), kind="voice", name=f"voice {vid}", rights=voice_record(recorded, vid),
                          generated=True, model=vid))
    if font and font.get("sha256"):
        parts.append(Part(node=("font", font["sha256"]), kind="font", name=f"font {font.get('file')}",
                          rights=font_record(font), generated=False, sha256=font["sha256"]))
    if logo and logo.get("sha256"):
        parts.append(Part(node=("logo", logo["sha256"]), kind="logo", name=f"logo {logo.get('file')}",
                          rights=logo_record(logo), generated=False, sha256=logo["sha256"]))
    return parts


def _synthesized(record: RightsRecord) -> bool:
    """An effect the built-in procedural synthesiser made (not a library recording)."""
    return record.licence_id.startswith("builtin:procedural")


def part_dict(part: Part) -> dict[str, Any]:
    """A part as JSON: its node, kind, name, whether generated and by which model or voice,
    its file's sha256 and its rights record."""
    return {"node": list(part.node), "kind": part.kind, "name": part.name, "generated": part.generated,
            "model": part.model, "sha256": part.sha256, "rights": part.rights.model_dump(mode="json")}


# -- the ledger: licences in the database, and the deliverables they block --------------

BLOCK_REASONS = ("expired", "revoked", "policy")
FIX_IDS = "`studio rights DELIVERABLE` lists the licence ids of a deliverable's parts"


def record_licences(engine: Any, records: Any) -> int:
    """Put each record in the ledger under its licence id: a new licence is added, a known
    one's record updated (its revocation, if any, stays). Safe to repeat and to run from
    two processes at once. Returns how many licences it wrote."""
    import sqlalchemy as sa

    from studio import db

    table = db.Licence.__table__  # type: ignore[attr-defined]
    docs = {r.licence_id: r.model_dump(mode="json") for r in records}
    if not docs:
        return 0
    stamp = db.now()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        conn.execute(insert(table).on_conflict_do_nothing(index_elements=["licence_id"]),
                     [{"licence_id": k, "record": v, "first_seen": stamp, "updated_at": stamp}
                      for k, v in sorted(docs.items())])
        have = dict(conn.execute(sa.select(table.c.licence_id, table.c.record)
                                 .where(table.c.licence_id.in_(list(docs)))).all())
        for k, v in sorted(docs.items()):
            if have.get(k) != v:
                conn.execute(table.update().where(table.c.licence_id == k).values(record=v, updated_at=stamp))
    return len(docs)


def _licence(s: Any, licence_id: str) -> Any:
    from studio import db
    from studio.errors import StudioError

    row = s.get(db.Licence, licence_id)
    if row is None:
        raise StudioError(f"no licence {licence_id!r} in the rights ledger",
                          fix=f"give a licence id as recorded: {FIX_IDS} (its LICENCE ID column)", field="LICENCE_ID")
    return row


def _block(engine: Any, licence_id: str, reason: str, detail: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Block every deliverable licence ``licence_id`` reaches (studio.lineage.where) for
    ``reason``. Returns the ids reached and the blocks newly made (one per deliverable,
    licence and reason: blocking twice makes none)."""
    from sqlmodel import Session, select

    from studio import db, lineage

    reached = [d["id"] for d in lineage.where(engine, f"licence:{licence_id}")["deliverables"]]
    made: list[dict[str, Any]] = []
    B = db.DeliverableBlock
    with Session(engine) as s:
        have = set(s.exec(select(B.deliverable_id).where(B.licence_id == licence_id, B.reason == reason)).all())
        for did in reached:
            if did not in have:
                row = B(deliverable_id=did, licence_id=licence_id, reason=reason, detail=detail)
                s.add(row)
                made.append(row)
        s.commit()
        made_dicts = [lineage.block_dict(b) for b in made]
    return reached, made_dicts


def add_block(engine: Any, deliverable_id: str, *, licence_id: str, reason: str, detail: str) -> bool:
    """Block one deliverable (a policy's refusal: ``reason`` "policy"; ``licence_id`` what
    it is about, a licence or the rule). False when it was blocked so already."""
    from sqlmodel import Session, select

    from studio import db

    if reason not in BLOCK_REASONS:
        raise ValueError(f"unknown block reason {reason!r}: one of {', '.join(BLOCK_REASONS)}")
    B = db.DeliverableBlock
    with Session(engine) as s:
        if s.exec(select(B.id).where(B.deliverable_id == deliverable_id, B.licence_id == licence_id,
                                     B.reason == reason)).first() is not None:
            return False
        s.add(B(deliverable_id=deliverable_id, licence_id=licence_id, reason=reason, detail=detail))
        s.commit()
    return True


def revoke(engine: Any, licence_id: str, *, reason: str, by: str) -> list[str]:
    """Record that licence ``licence_id`` is revoked (by whom, why) and block every
    deliverable it reaches. Returns the ids of the deliverables blocked (all it reaches; a
    second revocation keeps the first's record and blocks what has been made since)."""
    from sqlmodel import Session

    from studio import db
    from studio.errors import StudioError

    reason, by = reason.strip(), by.strip()
    if not reason:
        raise StudioError("a revocation needs a reason", fix="say why with --reason TEXT (e.g. the "
                                                              "licensor's notice)", field="--reason")
    if not by:
        raise StudioError("a revocation needs who revokes it", fix="name yourself with --by NAME", field="--by")
    with Session(engine) as s:
        row = _licence(s, licence_id)
        if row.revoked_at is None:
            row.revoked_at, row.revoked_by, row.revoked_reason = db.now(), by, reason
            s.add(row)
            s.commit()
        when = row.revoked_at.date().isoformat()
        detail = f"licence {licence_id} revoked by {row.revoked_by} on {when}: {row.revoked_reason}"
    reached, _made = _block(engine, licence_id, "revoked", detail)
    return reached


def check_expiry(engine: Any, on: dt.date) -> list[dict[str, Any]]:
    """Block what every ledger licence that has expired by ``on`` reaches: a licence whose
    last day (``expires``) is before ``on``, or whose real person's consent is. Returns the
    blocks made now (a deliverable already blocked for that licence's expiry is not blocked
    again)."""
    from sqlmodel import Session, select

    from studio import db

    with Session(engine) as s:
        rows = s.exec(select(db.Licence).order_by(db.Licence.licence_id)).all()  # type: ignore[arg-type]
        expired: list[tuple[str, str]] = []
        for row in rows:
            rec = RightsRecord.model_validate(row.record)
            if rec.expires is not None and rec.expires < on:
                expired.append((row.licence_id, f"licence {row.licence_id} ({rec.licence}, {rec.licensor}) "
                                                f"expired on {rec.expires.isoformat()}"))
            elif rec.consent is not None and rec.consent.expires is not None and rec.consent.expires < on:
                expired.append((row.licence_id, f"the consent of {rec.consent.subject} to licence "
                                                f"{row.licence_id} expired on {rec.consent.expires.isoformat()}"))
    made: list[dict[str, Any]] = []
    for licence_id, detail in expired:
        made += _block(engine, licence_id, "expired", detail)[1]
    return made


EXPIRY_CHECK_SECONDS = 3600.0  # how often `studio serve` looks for licences that expired


def watch_expiry(engine: Any, stop: Any, *, every: float = EXPIRY_CHECK_SECONDS,
                 today: Any = dt.date.today, log: Any = None) -> None:
    """The server's expiry watch (a thread of `studio serve`): :func:`check_expiry` for today
    at start, then every ``every`` seconds until ``stop`` (a threading.Event) is set, so a
    licence that runs out blocks what it reaches on its first day out without anyone
    running `studio rights check`. A database hiccup is logged and tried again next time."""
    while True:
        try:
            made = check_expiry(engine, today())
            if made and log is not None:
                for b in made:
                    log(f"rights: deliverable {b['deliverable_id']} blocked: {b['detail']}")
        except Exception as e:  # noqa: BLE001 - the watch outlives a failed check
            if log is not None:
                log(f"rights: the expiry check failed ({type(e).__name__}: {e}); trying again in {every:g} s")
        if stop.wait(every):
            return


def revoked_licences(engine: Any) -> dict[str, str]:
    """Every revoked licence in the ledger: licence id -> why ("by NAME on DATE: REASON"),
    what the policy's licence.revoked rule reports."""
    from sqlmodel import Session, select

    from studio import db

    with Session(engine) as s:
        rows = s.exec(select(db.Licence).where(db.Licence.revoked_at.is_not(None))).all()  # type: ignore[union-attr]
        return {r.licence_id: f"by {r.revoked_by} on {r.revoked_at.date().isoformat()}: {r.revoked_reason}"
                for r in rows if r.revoked_at is not None}


def blocks(engine: Any, deliverable_id: str) -> list[dict[str, Any]]:
    """The blocks on a deliverable (expired or revoked licences, policy), oldest first."""
    from sqlmodel import Session

    from studio import lineage

    with Session(engine) as s:
        return lineage.blocks_of(s, [deliverable_id])[deliverable_id]


def rights_of(engine: Any, ref: str, settings: Any = None) -> dict[str, Any]:
    """A deliverable's rights (``ref``: its id, its file's sha256 or a 6+ digit prefix, or
    its path): its parts with their records, each licence's state in the ledger (known,
    revoked, expired as of today) and the deliverable's blocks."""
    from sqlmodel import Session, select

    from studio import db, lineage

    d, matched = lineage.find_deliverable(engine, ref)
    today = dt.date.today()
    with Session(engine) as s:
        parts = deliverable_parts(s, d.run_id, settings).get(d.id, [])
        ids = sorted({p.rights.licence_id for p in parts})
        ledger = {r.licence_id: r for r in s.exec(select(db.Licence).where(db.Licence.licence_id.in_(ids))).all()}  # type: ignore[attr-defined]
        its_blocks = lineage.blocks_of(s, [d.id])[d.id]

    def state(rec: RightsRecord) -> dict[str, Any]:
        row = ledger.get(rec.licence_id)
        return {"in_ledger": row is not None,
                "revoked": None if row is None or row.revoked_at is None else {
                    "at": row.revoked_at.isoformat(timespec="seconds"), "by": row.revoked_by,
                    "reason": row.revoked_reason},
                "expired": rec.expires is not None and rec.expires < today}

    return {"deliverable": lineage._deliverable_dict(d), "matched": matched,
            "parts": [{**part_dict(p), "ledger": state(p.rights)} for p in parts],
            "blocked": bool(its_blocks), "blocks": its_blocks}
