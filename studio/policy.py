"""Policy as code: what a deliverable may contain, where, and for whom.

A policy is a versioned YAML document (``schema: Policy.1``, an integer ``version`` every
report records): per usage class (experiment, internal, public) the models and voices it
allows and denies and the channels its work may go to (the segregation of experiment,
internal and public work); per channel (globs over spec names) whether the platform needs
an AI-content disclosure, and models or voices it denies; per region the models or voices
it denies; which usage classes need a real person's consent to a cloned voice or likeness;
and how severe each rule is. Studio ships ``studio/data/policy/default.yaml`` (its comments
document the format); ``STUDIO_POLICY`` points at an organisation's own.

``evaluate`` checks one deliverable: its parts (:class:`studio.rights.Part`, resolved
through its lineage) against the policy and against their own licences (usage class,
term, revocation, territory, medium, channel, consent), for one channel spec, the regions
the brief ships to and the delivery date. The :class:`PolicyReport` lists each violation
with its rule id, the component, what was wrong and the fix. An override (a person's
recorded sign-off, :func:`record_override`) turns one violation of one component into a
signed-off one; nothing else does.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from studio import documents
from studio.errors import StudioError, quote
from studio.rights import USAGE_CLASSES, WORLDWIDE, Part, UsageClass
from studio.specs import NAME_RE, ChannelSpec
from studio.versioning import schema_string

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from studio.settings import Settings

# -- regions ----------------------------------------------------------------------------

# ISO 3166-1 alpha-2, the officially assigned codes (249), and XK (Kosovo: user-assigned,
# but what the EU, banks and platforms use).
ISO_COUNTRIES = frozenset("""
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR
BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ
EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW
GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY
KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV
MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY
QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG
TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM
ZW XK
""".split())
# The 27 member states (ISO codes: Greece is GR, not the EU's own EL).
EU_MEMBERS = frozenset("AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK "
                       "SI ES SE".split())
EEA_MEMBERS = EU_MEMBERS | {"IS", "LI", "NO"}
UNIONS: dict[str, frozenset[str]] = {"EU": EU_MEMBERS, "EEA": EEA_MEMBERS}
# Codes people write for a country that ISO spells otherwise.
_NOT_ISO = {"UK": "GB (the United Kingdom)", "EL": "GR (Greece)", "EN": "a country code such as GB or US "
            "(en is a language)"}


def region_problem(code: str) -> str | None:
    """Why ``code`` is not a region a brief or policy may name ("is not ...", to follow
    the code), or None."""
    if code == WORLDWIDE or code in UNIONS or code in ISO_COUNTRIES:
        return None
    if code.upper() in _NOT_ISO:
        return f"is not an ISO 3166-1 alpha-2 code; write {_NOT_ISO[code.upper()]}"
    if code.upper() in ISO_COUNTRIES or code.upper() in UNIONS or code.lower() == WORLDWIDE:
        right = WORLDWIDE if code.lower() == WORLDWIDE else code.upper()
        return f"is not a region as written; write {right}"
    return (f"is not a region: write an ISO 3166-1 alpha-2 country code in capitals (GB, FR, US), EU, EEA "
            f"or {WORLDWIDE}")


def countries(code: str) -> frozenset[str] | None:
    """The countries a region stands for; None for worldwide (every one)."""
    if code == WORLDWIDE:
        return None
    return UNIONS.get(code, frozenset({code}))


def covers(territories: list[str], region: str) -> bool:
    """Whether a licence for ``territories`` covers all of ``region``."""
    if WORLDWIDE in territories:
        return True
    need = countries(region)
    if need is None:
        return False
    have: set[str] = set()
    for t in territories:
        have |= countries(t) or set()
    return need <= have


def overlaps(a: list[str], b: list[str]) -> bool:
    """Whether the regions ``a`` and ``b`` share a country."""
    ca, cb = [countries(x) for x in a], [countries(x) for x in b]
    if any(c is None for c in ca) or any(c is None for c in cb):
        return bool(ca) and bool(cb)
    return bool(set().union(*ca) & set().union(*cb))  # type: ignore[arg-type]


def check_regions(regions: list[str]) -> list[str]:
    """``regions`` as a brief ships to them, or ValueError saying what is wrong."""
    if not regions:
        raise ValueError(f"lists no region; write [{WORLDWIDE}] or the countries (GB, FR) and unions (EU, EEA)")
    for code in regions:
        problem = region_problem(code)
        if problem:
            raise ValueError(f"{quote(code)} {problem}")
    if len(set(regions)) != len(regions):
        raise ValueError("lists a region twice")
    if WORLDWIDE in regions and len(regions) > 1:
        raise ValueError(f"{WORLDWIDE} already covers every region; list either {WORLDWIDE} or the regions")
    return regions


# -- the policy document --------------------------------------------------------------

# Every rule a violation can name: its id (stable: overrides, reports and tests name it)
# and what it checks.
RULES: dict[str, str] = {
    "licence.usage-class": "a component's licence covers the brief's usage class",
    "licence.expired": "a component's licence term has not ended by the delivery date",
    "licence.not-yet-valid": "a component's licence term has begun by the delivery date",
    "licence.revoked": "a component's licence has not been revoked",
    "licence.territory": "a component's licence territories cover every region the brief ships to",
    "licence.medium": "a component's licence media cover the channel's medium (digital, broadcast, print)",
    "licence.channel": "a component's licence channels cover the channel spec",
    "consent.real-person": "a cloned voice or likeness of a real person has that person's consent, "
                           "covering the usage class and the delivery date",
    "models.denied": "the policy allows every model that made a part, for the usage class, channel "
                     "and regions",
    "voices.denied": "the policy allows every voice, for the usage class, channel and regions",
    "channel.segregation": "the usage class's work may go to the channel (experiment, internal and "
                           "public work kept apart)",
    "disclosure.required": "a channel whose platform needs an AI-content disclosure has it in its spec",
}
Severity = Literal["block", "warn", "off"]
Medium = Literal["digital", "broadcast", "print"]
DEFAULT_POLICY = "default.yaml"


class Globs(BaseModel):
    """Names a rule allows and denies, as fnmatch globs (``*``, ``?``, ``[ab]``): a name
    matching ``deny`` is denied; otherwise one matching no ``allow`` glob is not allowed."""

    model_config = ConfigDict(extra="forbid")
    allow: list[str] = Field(default_factory=lambda: ["*"], description="globs; default: everything")
    deny: list[str] = Field(default_factory=list, description="globs, checked first")

    def refusal(self, name: str) -> str | None:
        """Why ``name`` is refused ("denied by 'x*'", "not in allow [...]"), or None."""
        hit = next((g for g in self.deny if fnmatch.fnmatchcase(name, g)), None)
        if hit is not None:
            return f"deny {hit!r}"
        if not any(fnmatch.fnmatchcase(name, g) for g in self.allow):
            return f"allow [{', '.join(self.allow)}] has no match"
        return None


class ChannelGlobs(Globs):
    """Channel specs a usage class's work may go to. ``warn``: allowed, but every delivery
    there is reported (not blocking) as work of that class on that channel."""

    warn: list[str] = Field(default_factory=list, description="globs: reported, not blocked")


class UsageClassRules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: Globs = Globs()
    voices: Globs = Globs()
    channels: ChannelGlobs = ChannelGlobs()


class ChannelRule(BaseModel):
    """Rules for the channel specs whose names match ``match``."""

    model_config = ConfigDict(extra="forbid")
    match: list[str] = Field(min_length=1, description="globs over channel spec names")
    usage_classes: list[UsageClass] = Field(default_factory=lambda: list(USAGE_CLASSES), min_length=1,
                                            description="the usage classes the rule applies to")
    disclosure: Literal["required", "none"] = Field(
        "none", description="required: the spec must carry its platform's AI-content disclosure")
    models: Globs = Globs()
    voices: Globs = Globs()
    note: str = ""

    def applies(self, spec_name: str, usage_class: str) -> bool:
        return usage_class in self.usage_classes and any(fnmatch.fnmatchcase(spec_name, g) for g in self.match)


class RegionRule(BaseModel):
    """Rules for work shipped to any of ``regions`` (a brief shipping worldwide ships to all)."""

    model_config = ConfigDict(extra="forbid")
    regions: list[str] = Field(min_length=1, description="ISO 3166-1 alpha-2 codes, EU, EEA or worldwide")
    usage_classes: list[UsageClass] = Field(default_factory=lambda: list(USAGE_CLASSES), min_length=1)
    models: Globs = Globs()
    voices: Globs = Globs()
    note: str = ""

    @field_validator("regions")
    @classmethod
    def _regions(cls, v: list[str]) -> list[str]:
        return check_regions(v)


class LikenessRules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    consent_required_for: list[UsageClass] = Field(
        default_factory=lambda: list(USAGE_CLASSES),
        description="usage classes in which a real person's cloned voice or likeness needs their consent")


class Policy(BaseModel):
    """A policy document (``schema: Policy.1``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    schema_: str = Field("Policy.1", alias="schema")
    name: str = Field(pattern=NAME_RE)
    version: int = Field(ge=1, description="the policy's own version, recorded in every report")
    title: str = ""
    usage_classes: dict[UsageClass, UsageClassRules] = Field(
        default_factory=dict, description="per usage class; a class left out allows everything")
    channel_rules: list[ChannelRule] = []
    region_rules: list[RegionRule] = []
    likeness: LikenessRules = LikenessRules()
    severity: dict[str, Severity] = Field(
        default_factory=dict, description="rule id -> block, warn or off; a rule left out blocks")
    _source: str = PrivateAttr("")

    @field_validator("severity")
    @classmethod
    def _known_rules(cls, v: dict[str, str]) -> dict[str, str]:
        for rule in v:
            if rule not in RULES:
                raise ValueError(f"unknown rule {rule!r}; the rules are: {', '.join(RULES)}")
        return v

    @model_validator(mode="after")
    def _globs(self) -> Policy:
        for rule in self.channel_rules:
            for g in rule.match:
                if not g.strip():
                    raise ValueError("channel_rules: an empty glob in match")
        return self

    @property
    def source(self) -> str:
        """The file it was read from ("" when made in code)."""
        return self._source

    def for_class(self, usage_class: str) -> UsageClassRules:
        return self.usage_classes.get(usage_class, UsageClassRules())  # type: ignore[call-overload]

    def severity_of(self, rule: str) -> str:
        return self.severity.get(rule, "block")

    def summary(self) -> dict[str, Any]:
        """What ``studio policy show`` prints."""
        return {"name": self.name, "version": self.version, "title": self.title, "source": self.source,
                **self.model_dump(mode="json", exclude={"schema_", "name", "version", "title"})}


def policy_path(settings: Settings | None = None) -> Path:
    """The active policy file: ``STUDIO_POLICY``, else the one Studio ships."""
    if settings is None:
        from studio.settings import get_settings

        settings = get_settings()
    if settings.policy is not None:
        return Path(settings.policy).expanduser()
    return Path(str(resources.files("studio") / "data" / "policy" / DEFAULT_POLICY))


def load_policy(settings: Settings | None = None, path: str | Path | None = None) -> Policy:
    """The active policy (``path``, else ``STUDIO_POLICY``, else the shipped default);
    errors name the file and the field."""
    p = Path(path) if path is not None else policy_path(settings)
    try:
        policy = documents.load(p, Policy, "Policy")
    except StudioError as e:
        if not e.source:
            e.source = str(p)
        if settings is not None and settings.policy is not None and path is None:
            for each in {id(x): x for x in [e, *getattr(e, "errors", [])]}.values():
                each.fix = (each.fix + "; " if each.fix else "") + "STUDIO_POLICY names this file"
        raise
    policy._source = str(p)
    return policy


def medium(spec: ChannelSpec) -> Medium:
    """Where a channel's deliverables appear: on screens, on air, or on paper."""
    return spec.medium


# -- overrides --------------------------------------------------------------------------


@dataclass(frozen=True)
class Override:
    """A person's recorded sign-off on one rule for one component, in one scope: the
    brief's ``project/campaign`` (studio.release evaluates every render of it with these)."""

    rule: str
    component: str
    scope: str
    approver: str
    reason: str
    role: str = "legal"
    created_at: dt.datetime | None = None
    expires: dt.date | None = None  # the last day it counts; None: no end
    id: int | None = None

    def covers(self, rule: str, component: str, on: dt.date) -> bool:
        return (self.rule == rule and self.component == component
                and (self.expires is None or on <= self.expires))

    def signed(self) -> dict[str, Any]:
        """What a violation records of it."""
        at = self.created_at.isoformat(timespec="seconds") if self.created_at else None
        return {"id": self.id, "approver": self.approver, "role": self.role, "reason": self.reason, "at": at,
                "expires": self.expires.isoformat() if self.expires else None}


_COMPONENT_RE = re.compile(r"^[a-z][a-z0-9_-]*:.+$")


def record_override(engine: Engine, *, rule: str, component: str, scope: str, approver: str, reason: str,
                    role: str = "legal", expires: dt.date | None = None) -> Override:
    """Record an approver's sign-off that ``rule`` may be broken by ``component`` in
    ``scope``. Refused without a rule Studio knows, a component as "kind:id", a scope, an
    approver and a reason."""
    from sqlmodel import Session

    from studio.db import PolicyOverride, now

    if rule not in RULES:
        raise StudioError(f"unknown rule {rule!r}", field="rule", fix="use one of: " + ", ".join(RULES))
    if not _COMPONENT_RE.match(component.strip()):
        raise StudioError(f"component {quote(component)} is not kind:id", field="component",
                          fix="name it as the policy report does, e.g. model:flux-dev or voice:joe-us")
    for name, value in (("scope", scope), ("approver", approver), ("reason", reason), ("role", role)):
        if not value.strip():
            what = {"approver": "an override needs the approver who signs it off",
                    "reason": "an override needs the reason it is granted",
                    "scope": "an override needs the project/campaign it is for",
                    "role": "an override needs the approver's role"}[name]
            fix = {"approver": "give --approver NAME (the person, as they sign)",
                   "reason": "give --reason TEXT (why the rule may be broken here)",
                   "scope": "give --scope PROJECT/CAMPAIGN (the brief's project and campaign)",
                   "role": "give --role (e.g. legal)"}[name]
            raise StudioError(what, field=name, fix=fix)
    row = PolicyOverride(rule=rule, component=component.strip(), scope=scope.strip(), approver=approver.strip(),
                         role=role.strip(), reason=reason.strip(), created_at=now(), expires=expires)
    with Session(engine) as s:
        s.add(row)
        s.commit()
        s.refresh(row)
        return _override(row)


def _override(row: Any) -> Override:
    return Override(rule=row.rule, component=row.component, scope=row.scope, approver=row.approver,
                    reason=row.reason, role=row.role, created_at=row.created_at, expires=row.expires, id=row.id)


def overrides_for(engine: Engine, scope: str) -> list[Override]:
    """Every override recorded for ``scope``, oldest first."""
    from sqlmodel import Session, select

    from studio.db import PolicyOverride

    with Session(engine) as s:
        rows = s.exec(select(PolicyOverride).where(PolicyOverride.scope == scope)
                      .order_by(PolicyOverride.created_at, PolicyOverride.id)).all()  # type: ignore[arg-type]
        return [_override(r) for r in rows]


# -- evaluation -------------------------------------------------------------------------

REPORT_SCHEMA = schema_string("PolicyReport")


@dataclass
class Violation:
    """One broken rule: ``component`` is "kind:id" (a part's lineage node, or the channel
    spec as spec:NAME), ``name`` what people call it."""

    rule: str
    component: str
    name: str
    reason: str  # what was wrong, in one sentence naming the values
    fix: str
    blocking: bool
    overridden_by: dict[str, Any] | None = None
    licence_id: str | None = None  # the licence a licence or consent rule is about

    @property
    def blocks(self) -> bool:
        """Whether it stops delivery: blocking and not signed off."""
        return self.blocking and self.overridden_by is None

    def line(self) -> str:
        state = "blocks" if self.blocks else ("signed off by " + self.overridden_by["approver"]
                                               if self.overridden_by else "warning")
        return f"{self.component}: {self.rule}: {self.reason} — {self.fix} [{state}]"

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "component": self.component, "name": self.name, "reason": self.reason,
                "fix": self.fix, "blocking": self.blocking, "overridden_by": self.overridden_by,
                "licence_id": self.licence_id}


@dataclass
class PolicyReport:
    policy: str
    policy_version: int
    policy_source: str
    spec: str
    usage_class: str
    regions: list[str]
    on: dt.date
    violations: list[Violation] = field(default_factory=list)
    schema: str = REPORT_SCHEMA

    @property
    def passed(self) -> bool:
        """No blocking violation left without a sign-off."""
        return not any(v.blocks for v in self.violations)

    @property
    def blocking(self) -> list[Violation]:
        return [v for v in self.violations if v.blocks]

    def rules(self) -> list[str]:
        return [v.rule for v in self.violations]

    def lines(self) -> list[str]:
        return [v.line() for v in self.violations]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "policy": self.policy, "version": self.policy_version,
                "policy_file": self.policy_source, "spec": self.spec, "usage_class": self.usage_class,
                "regions": list(self.regions), "on": self.on.isoformat(), "passed": self.passed,
                "violations": [v.to_dict() for v in self.violations]}


# Lineage node kinds that are licensed things themselves (studio.rights.LICENSED_KINDS).
LICENSED_NODES = ("model", "voice", "track", "composer", "effect", "font", "logo", "likeness")


def licensed(part: Part) -> tuple[str, str, str]:
    """What a part's licence is the licence of, as (component "kind:id", kind word, name):
    the part itself where its node is a licensed thing (model:sdxl-base, track:dawn-chorus,
    font:...); the voice or model that made it where it is a voice line, keyframe or shot
    (all of one model's keyframes are one component); else its licence (licence:ID, what
    `studio where` finds). A sign-off and a report name that one component, once."""
    kind, ident = part.node
    if kind in LICENSED_NODES:
        return f"{kind}:{ident}", part.kind, part.name
    if part.model and (part.kind == "voice" or kind == "voice"):
        return f"voice:{part.model}", "voice", part.model
    if part.model:
        return f"model:{part.model}", "model", part.model
    return f"licence:{part.rights.licence_id}", part.kind, part.name


def _words(items: list[str]) -> str:
    return " and ".join(items) if len(items) <= 2 else ", ".join(items[:-1]) + " and " + items[-1]


def _listing(kind: str) -> str:
    return {"model": " (`studio models`)", "voice": " (`studio voices`)"}.get(kind, "")


def _names(part: Part) -> tuple[set[str], set[str]]:
    """The models and the voices a part is, or was made by."""
    models: set[str] = set()
    voices: set[str] = set()
    if part.kind == "voice" or part.node[0] == "voice":
        if part.node[0] == "voice":
            voices.add(part.node[1])
        if part.model:
            voices.add(part.model)
    else:
        if part.kind == "model" or part.node[0] == "model":
            models.add(part.node[1])
        if part.model:
            models.add(part.model)
    return models, voices


class _Collector:
    def __init__(self, policy: Policy, on: dt.date, overrides: list[Override]) -> None:
        self.policy, self.on, self.overrides = policy, on, overrides
        self.out: list[Violation] = []
        self._seen: set[tuple[str, str]] = set()

    def add(self, rule: str, component: str, name: str, reason: str, fix: str, *, warn_only: bool = False,
            licence_id: str | None = None) -> None:
        """Report a violation once per (rule, component), as severe as the policy says (a
        ``warn_only`` one never blocks)."""
        severity = self.policy.severity_of(rule)
        if severity == "off" or (rule, component) in self._seen:
            return
        self._seen.add((rule, component))
        blocking = severity == "block" and not warn_only
        self.out.append(self._signed(Violation(rule, component, name, reason, fix, blocking,
                                               licence_id=licence_id)))

    def _signed(self, v: Violation) -> Violation:
        for o in reversed(self.overrides):  # the newest sign-off is the one shown
            if o.covers(v.rule, v.component, self.on) or (
                    v.licence_id is not None and o.covers(v.rule, f"licence:{v.licence_id}", self.on)):
                v.overridden_by = o.signed()
                break
        return v


def _label(kind: str, name: str) -> str:
    """``font 'DejaVuSans-Bold.ttf'``: a part's name may start with its kind already."""
    bare = name[len(kind) + 1:] if name.startswith(kind + " ") else name
    return f"{kind} {bare!r}"


def _licence_checks(c: _Collector, part: Part, *, usage_class: str, spec: ChannelSpec, regions: list[str],
                    on: dt.date, revoked: dict[str, str]) -> None:
    r = part.rights
    comp, kind, name = licensed(part)
    add = functools.partial(c.add, licence_id=r.licence_id)
    label = _label(kind, name)
    if r.licence_id in revoked:
        add("licence.revoked", comp, name,
              f"{label}: licence {r.licence_id} ({r.licensor}) was revoked: {revoked[r.licence_id]}",
              f"replace it and render again (`studio where licence:{r.licence_id}` lists every deliverable "
              "it reaches)")
    if usage_class not in r.usage_classes:
        allowed = _words([u for u in USAGE_CLASSES if u in r.usage_classes])
        add("licence.usage-class", comp, name,
              f"{label} is licensed for {allowed} only, not {usage_class} use (licence: {r.licence})",
              f"pick a {kind} licensed for {usage_class} use{_listing(kind)}, extend its licence "
              f"(rights.usage_classes), or change the brief's usage_class")
    if r.expires is not None and on > r.expires:
        add("licence.expired", comp, name,
              f"{label}: licence {r.licence_id} ({r.licensor}) expired on {r.expires.isoformat()}; the delivery "
              f"is on {on.isoformat()}",
              f"renew the licence and set its new end in rights.expires, or replace the {kind} and render again")
    if r.starts is not None and on < r.starts:
        add("licence.not-yet-valid", comp, name,
              f"{label}: licence {r.licence_id} ({r.licensor}) starts on {r.starts.isoformat()}; the delivery "
              f"is on {on.isoformat()}",
              f"deliver on or after {r.starts.isoformat()}, or get the term moved (rights.starts)")
    missing = [g for g in regions if not covers(list(r.territories), g)]
    if missing:
        covered = [g for g in regions if g not in missing]
        fix = f"license it for {_words(missing)} (rights.territories)"
        fix += f", or ship to {_words(covered)} only (the brief's regions)" if covered else ", or replace it"
        add("licence.territory", comp, name,
              f"{label} is licensed for {_words(list(r.territories))} only; the brief ships to {_words(missing)}",
              fix)
    where = medium(spec)
    if where not in r.media:
        add("licence.medium", comp, name,
              f"{label} is licensed for {_words(list(r.media))} only, not {where} use ({spec.name} is a "
              f"{where} channel)",
              f"license it for {where} use (rights.media) or replace it with one that is")
    if not any(fnmatch.fnmatchcase(spec.name, g) for g in r.channels):
        add("licence.channel", comp, name,
              f"{label} is licensed for the channels {_words(list(r.channels))} only, not {spec.name}",
              f"license it for {spec.name} (rights.channels) or drop {spec.name} from the brief's channels")


def _consent_check(c: _Collector, part: Part, *, usage_class: str, on: dt.date, policy: Policy) -> None:
    r = part.rights
    if r.real_person is None or usage_class not in policy.likeness.consent_required_for:
        return
    comp, kind, name = licensed(part)
    add = functools.partial(c.add, licence_id=r.licence_id)
    what = "a cloned voice" if kind == "voice" else "a likeness"
    label = f"{_label(kind, name)} is {what} of {r.real_person}"
    fix = (f"record {r.real_person}'s signed consent in its rights (consent: subject, document, granted, "
           f"expires, usage_classes) or replace it")
    k = r.consent
    if k is None:
        add("consent.real-person", comp, name, f"{label} with no recorded consent", fix)
    elif k.expires is not None and on > k.expires:
        add("consent.real-person", comp, name,
              f"{label}; their consent ({k.document}) expired on {k.expires.isoformat()} and the delivery is on "
              f"{on.isoformat()}", f"renew {r.real_person}'s consent (consent.expires) or replace it")
    elif on < k.granted:
        add("consent.real-person", comp, name,
              f"{label}; their consent ({k.document}) starts on {k.granted.isoformat()}, after the delivery on "
              f"{on.isoformat()}", f"deliver on or after {k.granted.isoformat()}")
    elif usage_class not in k.usage_classes:
        add("consent.real-person", comp, name,
              f"{label}; their consent ({k.document}) covers {_words(list(k.usage_classes))} use only, not "
              f"{usage_class}", f"get {r.real_person}'s consent to {usage_class} use (consent.usage_classes) "
                                "or change the brief's usage_class")


def evaluate(policy: Policy, parts: list[Part], *, usage_class: str, spec: ChannelSpec, regions: list[str],
             on: dt.date, revoked: dict[str, str] | None = None,
             overrides: list[Override] | None = None) -> PolicyReport:
    """Check one deliverable: its ``parts`` for channel ``spec``, in ``usage_class`` work
    shipped to ``regions``, delivered on ``on``. ``revoked``: licence id -> why it was
    revoked. ``overrides``: the sign-offs recorded for this brief or job
    (:func:`overrides_for`)."""
    if usage_class not in USAGE_CLASSES:
        raise StudioError(f"unknown usage class {usage_class!r}", field="usage_class",
                          fix="use one of: " + ", ".join(USAGE_CLASSES))
    try:
        check_regions(list(regions))
    except ValueError as e:
        raise StudioError(str(e), field="regions", fix="fix the brief's regions") from None
    c = _Collector(policy, on, list(overrides or []))
    rules = policy.for_class(usage_class)
    spec_comp = f"spec:{spec.name}"

    # The channel: may this class's work go there, and does its platform's disclosure come with it?
    refusal = rules.channels.refusal(spec.name)
    if refusal is not None:
        allowed = [u for u in USAGE_CLASSES if policy.for_class(u).channels.refusal(spec.name) is None]
        c.add("channel.segregation", spec_comp, spec.name,
              f"{usage_class} work may not be delivered to {spec.name} (the policy's usage_classes."
              f"{usage_class}.channels: {refusal})",
              (f"change the brief's usage_class to {' or '.join(allowed)}" if allowed else "drop the channel")
              + f", or drop {spec.name} from the brief's channels")
    else:
        hit = next((g for g in rules.channels.warn if fnmatch.fnmatchcase(spec.name, g)), None)
        if hit is not None:
            c.add("channel.segregation", spec_comp, spec.name,
                  f"{usage_class} work delivered to {spec.name} (the policy's usage_classes.{usage_class}."
                  f"channels warns on {hit!r}): not for publication",
                  "publish only public work there: render it again with usage_class: public", warn_only=True)
    channel_rules = [r for r in policy.channel_rules if r.applies(spec.name, usage_class)]
    needs = [r for r in channel_rules if r.disclosure == "required"]
    if needs and not spec.disclosure:
        globs = _words([repr(g) for g in needs[0].match if fnmatch.fnmatchcase(spec.name, g)])
        c.add("disclosure.required", spec_comp, spec.name,
              f"{spec.name} needs its platform's AI-content disclosure (the policy's channel rule for {globs}) "
              "but its spec has no disclosure entries",
              f"add disclosure: [{{platform, label, setting}}] to {spec.name}'s spec (a copy in STUDIO_SPECS_DIR) "
              "naming the platform's label and where the uploader sets it")

    # Models and voices: the usage class's lists, then every channel and region rule that applies.
    scopes: list[tuple[str, Globs, Globs]] = [(f"usage_classes.{usage_class}", rules.models, rules.voices)]
    for r in channel_rules:
        scopes.append((f"channel rule for {_words(r.match)}", r.models, r.voices))
    for r in policy.region_rules:
        if usage_class in r.usage_classes and overlaps(r.regions, list(regions)):
            scopes.append((f"region rule for {_words(r.regions)}", r.models, r.voices))
    # A licensed thing's own part first, so a violation is named after it, not after a
    # keyframe or voice line it made.
    for part in sorted(parts, key=lambda p: p.node[0] not in LICENSED_NODES):
        models, voices = _names(part)
        for rule, kind, names, which in (("models.denied", "model", models, 0),
                                          ("voices.denied", "voice", voices, 1)):
            for n in sorted(names):
                for where, model_globs, voice_globs in scopes:
                    why = (model_globs, voice_globs)[which].refusal(n)
                    if why is None:
                        continue
                    c.add(rule, f"{kind}:{n}", n,
                          f"{kind} {n!r} is not allowed in {usage_class} work by the policy's {where} ({why})",
                          f"pick a {kind} the policy allows{_listing(kind)} and render again, or have an approver "
                          f"sign it off (`studio policy override --rule {rule} --component {kind}:{n} ...`)")
                    break
        _licence_checks(c, part, usage_class=usage_class, spec=spec, regions=list(regions), on=on,
                        revoked=dict(revoked or {}))
        _consent_check(c, part, usage_class=usage_class, on=on, policy=policy)
    return PolicyReport(policy.name, policy.version, policy.source, spec.name, usage_class, list(regions), on,
                        c.out)
