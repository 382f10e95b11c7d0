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
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

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
