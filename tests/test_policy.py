"""Policy as code (studio.policy): the seeded violations are each blocked with their rule and
reason, a clean deliverable passes, a recorded sign-off lets one violation through and no
other, and a policy file's mistakes name the file and the field."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from studio import db, documents
from studio.brief import Brief
from studio.errors import StudioError
from studio.policy import (
    RULES,
    Override,
    Policy,
    covers,
    evaluate,
    load_policy,
    medium,
    overrides_for,
    record_override,
)
from studio.rights import Consent, Part, RightsRecord
from studio.settings import Settings, get_settings
from studio.specs import Catalog, ChannelSpec

ROOT = Path(__file__).resolve().parent.parent
ON = dt.date(2025, 6, 1)
CATALOG = Catalog()
YOUTUBE = CATALOG.spec("youtube-1080p")
EBU = CATALOG.spec("broadcast-ebu-1080p25")
BANNER = CATALOG.spec("banner-300x250")


def part(kind: str, ident: str, *, node_kind: str | None = None, model: str | None = None,
         generated: bool = False, **rights: Any) -> Part:
    """A component with a complete rights record: public, worldwide, every medium and channel,
    no term, unless ``rights`` says otherwise."""
    record = {"licence_id": f"LIC-{ident}", "licence": "Studio test licence", "licensor": "Test Licensor Ltd",
              "usage_classes": ["experiment", "internal", "public"], **rights}
    return Part(node=(node_kind or kind, ident), kind=kind, name=ident,  # type: ignore[arg-type]
                rights=RightsRecord(**record), generated=generated, model=model)


def clean_parts() -> list[Part]:
    return [
        part("model", "sdxl-base", licence="CreativeML Open RAIL++-M"),
        part("shot", "render_b01", node_kind="render", model="sdxl-base", generated=True),
        part("voice", "studio-narrator", expires=dt.date(2027, 12, 31)),
        part("music", "dawn-chorus", node_kind="track", territories=["EEA", "GB", "US"],
             expires=dt.date(2026, 1, 31)),
        part("font", "aurora-sans", media=["digital", "broadcast", "print"]),
        part("logo", "aurora-logo", channels=["youtube-*", "reels-*", "broadcast-*"]),
    ]


@pytest.fixture(scope="module")
def default() -> Policy:
    return load_policy(Settings(policy=None))


def check(policy: Policy, parts: list[Part], *, usage_class: str = "public", spec: ChannelSpec = YOUTUBE,
          regions: list[str] | None = None, on: dt.date = ON, **kw: Any):  # noqa: ANN201
    return evaluate(policy, parts, usage_class=usage_class, spec=spec, regions=regions or ["GB", "FR"], on=on, **kw)


def only(report, rule: str):  # noqa: ANN001, ANN201
    found = [v for v in report.violations if v.rule == rule]
    assert len(found) == 1, (rule, report.lines())
    return found[0]


# -- the seeded violations ------------------------------------------------------------------


def test_a_clean_deliverable_passes(default: Policy) -> None:
    report = check(default, clean_parts())
    assert report.violations == [] and report.passed
    d = report.to_dict()
    assert (d["schema"], d["policy"], d["version"], d["spec"], d["usage_class"], d["regions"], d["on"],
            d["passed"]) == ("PolicyReport.1", "studio-default", 1, "youtube-1080p", "public", ["GB", "FR"],
                             "2025-06-01", True)
    json.dumps(d)  # JSON as it is


def test_a_non_commercial_model_in_public_work_is_blocked(default: Policy) -> None:
    flux = part("model", "flux-dev", licence="FLUX.1 [dev] Non-Commercial License", usage_classes=["experiment"])
    shot = part("shot", "render_b02", node_kind="render", model="flux-dev", generated=True)
    report = check(default, [*clean_parts(), flux, shot])
    assert not report.passed
    assert sorted(report.rules()) == ["licence.usage-class", "models.denied"]
    licence = only(report, "licence.usage-class")
    assert licence.component == "model:flux-dev" and licence.blocking and licence.blocks
    assert licence.reason == ("model 'flux-dev' is licensed for experiment only, not public use "
                            "(licence: FLUX.1 [dev] Non-Commercial License)")
    assert licence.fix == ("pick a model licensed for public use (`studio models`), extend its licence "
                           "(rights.usage_classes), or change the brief's usage_class")
    denied = only(report, "models.denied")  # once, though the model and a shot it made are both parts
    assert denied.component == "model:flux-dev" and denied.blocks
    assert denied.reason == ("model 'flux-dev' is not allowed in public work by the policy's usage_classes.public "
                           "(deny 'flux-dev')")
    assert "studio policy override --rule models.denied --component model:flux-dev" in denied.fix


def test_the_policy_denies_a_model_whatever_its_registry_entry_claims(default: Policy) -> None:
    # A user's registry entry that calls musicgen public does not get it past the policy.
    mislabelled = part("model", "musicgen-small")
    report = check(default, [mislabelled])
    assert report.rules() == ["models.denied"] and not report.passed
    assert "(deny 'musicgen-*')" in report.violations[0].reason


def test_a_non_commercial_voice_in_public_work_is_blocked(default: Policy) -> None:
    voice = part("voice", "mms-tts-eng", licence="CC-BY-NC 4.0", usage_classes=["experiment"])
    line = part("voice", "audio_line_b01", node_kind="audio", model="mms-tts-eng", generated=True)
    report = check(default, [*clean_parts(), voice, line])
    assert sorted(report.rules()) == ["licence.usage-class", "voices.denied"] and not report.passed
    assert only(report, "voices.denied").reason == (
        "voice 'mms-tts-eng' is not allowed in public work by the policy's usage_classes.public (deny 'mms-tts-*')")
    usage = only(report, "licence.usage-class")
    assert usage.reason == "voice 'mms-tts-eng' is licensed for experiment only, not public use (licence: CC-BY-NC 4.0)"
    assert "(`studio voices`)" in usage.fix
    # In an experiment the same voice is fine (the default policy keeps NC voices there).
    assert check(default, [voice, line], usage_class="experiment", spec=BANNER).passed


def test_an_expired_music_licence_is_blocked(default: Policy) -> None:
    track = part("music", "dawn-chorus", node_kind="track", licence_id="PML-2291", licensor="Pond Music",
                 expires=dt.date(2025, 3, 31))
    report = check(default, [track])
    v = only(report, "licence.expired")
    assert not report.passed and v.component == "track:dawn-chorus"
    assert v.reason == ("music 'dawn-chorus': licence PML-2291 (Pond Music) expired on 2025-03-31; "
                      "the delivery is on 2025-06-01")
    assert v.fix == "renew the licence and set its new end in rights.expires, or replace the music and render again"
    # On its last day it still counts.
    assert check(default, [track], on=dt.date(2025, 3, 31)).passed


def test_a_licence_for_the_wrong_region_is_blocked(default: Policy) -> None:
    music = part("music", "city-pulse", node_kind="track", territories=["US"])
    report = check(default, [music], regions=["FR"])
    v = only(report, "licence.territory")
    assert not report.passed
    assert v.reason == "music 'city-pulse' is licensed for US only; the brief ships to FR"
    assert v.fix == "license it for FR (rights.territories), or replace it"
    both = check(default, [music], regions=["US", "FR"])
    assert only(both, "licence.territory").fix == "license it for FR (rights.territories), or ship to US only " \
                                                  "(the brief's regions)"
    assert not check(default, [music], regions=["worldwide"]).passed
    assert check(default, [music], regions=["US"]).passed


def test_territories_cover_by_union() -> None:
    assert covers(["EU"], "FR") and covers(["EU"], "GR") and not covers(["EU"], "GB")
    assert covers(["EEA"], "NO") and covers(["EEA"], "EU") and not covers(["EU"], "EEA")
    assert covers(["FR", "DE"], "FR") and not covers(["FR"], "EU")
    assert covers(["worldwide"], "worldwide") and not covers(["EEA", "US"], "worldwide")


def test_a_cloned_voice_without_consent_is_blocked(default: Policy) -> None:
    clone = part("voice", "jo-clone", real_person="Jo Bloggs")
    report = check(default, [clone])
    v = only(report, "consent.real-person")
    assert not report.passed and v.component == "voice:jo-clone"
    assert v.reason == "voice 'jo-clone' is a cloned voice of Jo Bloggs with no recorded consent"
    assert v.fix.startswith("record Jo Bloggs's signed consent in its rights (consent: subject, document,")


def test_a_cloned_voice_with_expired_or_narrower_consent_is_blocked(default: Policy) -> None:
    consent = Consent(subject="Jo Bloggs", document="releases/jo-bloggs-2024.pdf", granted=dt.date(2024, 1, 1),
                      expires=dt.date(2024, 12, 31))
    expired = part("voice", "jo-clone", real_person="Jo Bloggs", consent=consent)
    v = only(check(default, [expired]), "consent.real-person")
    assert v.reason == ("voice 'jo-clone' is a cloned voice of Jo Bloggs; their consent (releases/jo-bloggs-2024.pdf) "
                      "expired on 2024-12-31 and the delivery is on 2025-06-01")
    internal_only = consent.model_copy(update={"expires": None, "usage_classes": ["internal"]})
    narrow = part("voice", "jo-clone", real_person="Jo Bloggs", consent=internal_only)
    v = only(check(default, [narrow]), "consent.real-person")
    assert v.reason.endswith("covers internal use only, not public")
    assert check(default, [narrow], usage_class="internal").passed
    # A likeness (not a voice) is named as one.
    face = part("footage", "jo-face", real_person="Jo Bloggs")
    assert "is a likeness of Jo Bloggs" in only(check(default, [face]), "consent.real-person").reason


def test_a_channel_that_needs_disclosure_without_it_is_blocked(default: Policy) -> None:
    bare = YOUTUBE.model_copy(update={"disclosure": []})
    report = check(default, clean_parts(), spec=bare)
    v = only(report, "disclosure.required")
    assert not report.passed and v.component == "spec:youtube-1080p"
    assert v.reason == ("youtube-1080p needs its platform's AI-content disclosure (the policy's channel rule for "
                      "'youtube-*') but its spec has no disclosure entries")
    assert "add disclosure: [{platform, label, setting}] to youtube-1080p's spec" in v.fix
    # A user's TikTok spec without one, too; a banner or broadcast spec asks none.
    tiktok = ChannelSpec.model_validate({**bare.model_dump(by_alias=True), "name": "tiktok-9x16"})
    assert check(default, [], spec=tiktok).rules() == ["disclosure.required"]
    assert check(default, [], spec=EBU).passed and check(default, [], spec=BANNER).passed


def test_a_font_licensed_for_print_only_is_blocked_on_digital_and_broadcast(default: Policy) -> None:
    font = part("font", "aurora-serif", licence="Foundry desktop licence (print)", media=["print"])
    v = only(check(default, [font]), "licence.medium")
    assert v.component == "font:aurora-serif" and v.blocks
    assert v.reason == "font 'aurora-serif' is licensed for print only, not digital use (youtube-1080p is a digital channel)"
    assert v.fix == "license it for digital use (rights.media) or replace it with one that is"
    assert medium(EBU) == "broadcast" and medium(YOUTUBE) == "digital" and medium(BANNER) == "digital"
    assert "not broadcast use" in only(check(default, [font], spec=EBU), "licence.medium").reason
    assert check(default, [font], spec=YOUTUBE.model_copy(update={"medium": "print"})).passed


def test_every_seeded_violation_is_blocked_together(default: Policy) -> None:
    """The issue's seeded set, all in one deliverable: each is blocked, with its reason."""
    seeded = [
        part("model", "flux-dev", usage_classes=["experiment"]),
        part("voice", "mms-tts-eng", usage_classes=["experiment"]),
        part("music", "old-bed", node_kind="track", expires=dt.date(2024, 12, 31)),
        part("music", "us-bed", node_kind="track", territories=["US"]),
        part("voice", "jo-clone", real_person="Jo Bloggs"),
        part("font", "print-serif", media=["print"]),
    ]
    report = check(default, seeded, spec=YOUTUBE.model_copy(update={"disclosure": []}), regions=["FR"])
    got = {(v.rule, v.component) for v in report.violations if v.blocks}
    assert got == {
        ("models.denied", "model:flux-dev"), ("licence.usage-class", "model:flux-dev"),
        ("voices.denied", "voice:mms-tts-eng"), ("licence.usage-class", "voice:mms-tts-eng"),
        ("licence.expired", "track:old-bed"), ("licence.territory", "track:us-bed"),
        ("consent.real-person", "voice:jo-clone"), ("licence.medium", "font:print-serif"),
        ("disclosure.required", "spec:youtube-1080p"),
    }
    assert all(v.reason and v.fix for v in report.violations) and not report.passed
    assert len(report.lines()) == len(report.violations)


def test_one_violation_per_licensed_component_as_the_lineage_resolves_parts(default: Policy) -> None:
    """Parts as studio.rights.deliverable_parts makes them: the model, and each keyframe and
    shot it made with the model's record; each voice line with its voice's. A violation is
    the licensed thing's, once, named after it; a sign-off by licence covers it too."""
    nc = {"usage_classes": ["experiment"], "licence_id": "model:sd15", "licence": "CreativeML OpenRAIL-M"}
    parts = [
        part("keyframe", "cand_1", node_kind="candidate", model="sd15", generated=True, **nc),
        part("shot", "render_1", node_kind="render", model="sd15", generated=True, **nc),
        part("model", "sd15", model="sd15", **nc),
        part("voice", "aud_1", node_kind="audio", model="joe-us", generated=True, licence_id="voice:joe-us",
             expires=dt.date(2025, 1, 31)),
        part("voice", "aud_2", node_kind="audio", model="joe-us", generated=True, licence_id="voice:joe-us",
             expires=dt.date(2025, 1, 31)),
        part("music", "aud_3", node_kind="audio", licence_id="track:dawn", territories=["US"]),
    ]
    report = check(default, parts)
    assert [(v.rule, v.component, v.name, v.licence_id) for v in report.violations] == [
        ("licence.usage-class", "model:sd15", "sd15", "model:sd15"),
        ("licence.expired", "voice:joe-us", "joe-us", "voice:joe-us"),
        ("licence.territory", "licence:track:dawn", "aud_3", "track:dawn"),
    ]
    assert report.violations[1].reason.startswith("voice 'joe-us': licence voice:joe-us")
    by_licence = Override(rule="licence.territory", component="licence:track:dawn", scope="s", approver="Dana Reyes",
                          reason="US-only bed cleared for GB and FR by the label")
    signed = check(default, parts, overrides=[by_licence])
    assert only(signed, "licence.territory").overridden_by["approver"] == "Dana Reyes"
    assert only(signed, "licence.expired").blocks


def test_a_revoked_licence_and_one_for_other_channels(default: Policy) -> None:
    logo = part("logo", "partner-logo", licence_id="CO-BRAND-7", channels=["broadcast-*"])
    report = check(default, [logo], revoked={"CO-BRAND-7": "the co-branding deal ended on 2025-05-01"})
    assert sorted(report.rules()) == ["licence.channel", "licence.revoked"]
    assert only(report, "licence.revoked").reason == ("logo 'partner-logo': licence CO-BRAND-7 (Test Licensor Ltd) "
                                                    "was revoked: the co-branding deal ended on 2025-05-01")
    assert "`studio where licence:CO-BRAND-7`" in only(report, "licence.revoked").fix
    assert only(report, "licence.channel").reason == ("logo 'partner-logo' is licensed for the channels broadcast-* "
                                                    "only, not youtube-1080p")


def test_the_default_policy_blocks_no_shipped_channel_for_any_usage_class(default: Policy) -> None:
    """Every spec the catalog ships, for every usage class (the examples and the tests render
    experiment work to YouTube and broadcast): nothing blocks; experiment work on a platform
    or on-air channel is reported, not blocked."""
    unrestricted = [part("model", "sdxl-base"), part("voice", "studio-narrator"), part("font", "aurora-sans")]
    for spec in CATALOG.specs.values():
        for uc in ("experiment", "internal", "public"):
            report = check(default, unrestricted, usage_class=uc, spec=spec, regions=["worldwide"])
            assert report.passed, (spec.name, uc, report.lines())
            assert all(v.rule == "channel.segregation" and uc == "experiment" for v in report.violations)
    warned = only(check(default, [], usage_class="experiment", spec=EBU), "channel.segregation")
    assert not warned.blocking and warned.component == "spec:broadcast-ebu-1080p25"
    for path in sorted((ROOT / "examples" / "briefs").glob("*.yaml")):
        brief = documents.load(path, Brief, "Brief")
        for name in brief.channels:
            assert check(default, [], usage_class=brief.usage_class, spec=CATALOG.spec(name),
                         regions=brief.regions).passed, (path.name, name)


# -- policies of one's own ---------------------------------------------------------------------


STRICT = {
    "schema": "Policy.1", "name": "acme-strict", "version": 7,
    "usage_classes": {"experiment": {"channels": {"allow": ["banner-*"], "deny": ["broadcast-*"]}},
                      "public": {"voices": {"allow": ["acme-*"]}}},
    "region_rules": [{"regions": ["CN"], "models": {"deny": ["sdxl-*"]}, "note": "not cleared there"}],
    "severity": {"licence.channel": "warn", "licence.medium": "off"},
}


def write_policy(folder: Path, doc: dict[str, Any], name: str = "policy.yaml") -> Path:
    p = folder / name
    p.write_text(yaml.safe_dump(doc))
    return p


def test_studio_policy_loads_a_users_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write_policy(tmp_path, STRICT)
    monkeypatch.setenv("STUDIO_POLICY", str(p))
    policy = load_policy(Settings())
    assert (policy.name, policy.version, policy.source) == ("acme-strict", 7, str(p))

    # Segregation: experiment work may not go on air.
    report = check(policy, [], usage_class="experiment", spec=EBU)
    v = only(report, "channel.segregation")
    assert v.blocks and v.reason == ("experiment work may not be delivered to broadcast-ebu-1080p25 (the policy's "
                                   "usage_classes.experiment.channels: deny 'broadcast-*')")
    assert v.fix == "change the brief's usage_class to internal or public, or drop broadcast-ebu-1080p25 from the " \
                    "brief's channels"
    assert only(check(policy, [], usage_class="experiment", spec=YOUTUBE), "channel.segregation").reason.endswith(
        "(the policy's usage_classes.experiment.channels: allow [banner-*] has no match)")
    assert check(policy, [], usage_class="experiment", spec=BANNER).passed
    # An allow list: only the organisation's own voices in public work.
    assert only(check(policy, [part("voice", "studio-narrator")]), "voices.denied").reason == (
        "voice 'studio-narrator' is not allowed in public work by the policy's usage_classes.public "
        "(allow [acme-*] has no match)")
    # A region rule: applies to briefs shipping to CN, or worldwide; not to FR.
    sdxl = part("model", "sdxl-base")
    assert only(check(policy, [sdxl], regions=["CN"]), "models.denied").reason.endswith(
        "by the policy's region rule for CN (deny 'sdxl-*')")
    assert not check(policy, [sdxl], regions=["worldwide"]).passed
    assert check(policy, [sdxl], regions=["FR"]).passed
    # Severity: a channel licence only warns, the medium is not checked.
    logo = part("logo", "l", channels=["broadcast-*"], media=["print"])
    report = check(policy, [logo])
    assert report.passed and report.rules() == ["licence.channel"] and not report.violations[0].blocking


@pytest.mark.parametrize(("change", "field", "message"), [
    (lambda d: d["usage_classes"]["public"].update(modells={"deny": ["x"]}), "usage_classes.public.modells",
     "extra inputs are not permitted — remove it (or check its spelling)"),
    (lambda d: d.update(severity={"licence.colour": "warn"}), "severity",
     "unknown rule 'licence.colour'; the rules are: licence.usage-class, licence.expired, licence.not-yet-valid, "
     "licence.revoked, licence.territory, licence.medium, licence.channel, consent.real-person, models.denied, "
     "voices.denied, channel.segregation, disclosure.required — see `studio schema policy`"),
    (lambda d: d.update(severity={"licence.expired": "sometimes"}), "severity.licence.expired",
     "'sometimes': input should be 'block', 'warn' or 'off'"),
    (lambda d: d["region_rules"][0].update(regions=["UK"]), "region_rules[0].regions",
     "'UK' is not an ISO 3166-1 alpha-2 code; write GB (the United Kingdom)"),
    (lambda d: d.pop("version"), "version", "field required — add it"),
    (lambda d: d.update(schema="Policy.2"), "schema", "schema 'Policy.2' is newer than this Studio understands"),
])
def test_a_bad_policy_file_names_the_file_and_the_field(tmp_path: Path, change: Any, field: str,
                                                        message: str) -> None:
    doc = json.loads(json.dumps(STRICT))
    change(doc)
    p = write_policy(tmp_path, doc, "acme.yaml")
    with pytest.raises(StudioError) as e:
        load_policy(Settings(policy=p))
    line = e.value.lines()[0]
    assert line.startswith(f"{p}: {field}: ") and message in line, line
    assert "STUDIO_POLICY names this file" in line


def test_a_missing_policy_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(StudioError) as e:
        load_policy(Settings(policy=tmp_path / "nope.yaml"))
    assert str(e.value) == f"{tmp_path / 'nope.yaml'}: file not found — check the path; STUDIO_POLICY names this file"


# -- overrides -------------------------------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path):  # noqa: ANN201
    e = db.make_engine(f"sqlite:///{tmp_path / 'studio.db'}")
    db.init_db(e)
    yield e
    e.dispose()


def test_an_override_signs_off_one_violation_and_no_other(default: Policy, engine: Any) -> None:
    track = part("music", "city-pulse", node_kind="track", territories=["US"])
    clone = part("voice", "jo-clone", real_person="Jo Bloggs")
    o = record_override(engine, rule="licence.territory", component="track:city-pulse", scope="aurora/spring",
                        approver="Dana Reyes", reason="FR sync licence signed, ledger entry pending")
    assert o.id is not None and o.role == "legal" and o.created_at is not None
    record_override(engine, rule="licence.territory", component="track:city-pulse", scope="other/brief",
                    approver="Someone", reason="another brief's")
    signed = overrides_for(engine, "aurora/spring")
    assert [(x.rule, x.component, x.approver) for x in signed] == [
        ("licence.territory", "track:city-pulse", "Dana Reyes")]

    report = check(default, [track, clone], regions=["FR"], overrides=signed)
    territory, consent = only(report, "licence.territory"), only(report, "consent.real-person")
    assert territory.blocking and not territory.blocks
    assert territory.overridden_by is not None and territory.overridden_by["approver"] == "Dana Reyes"
    assert territory.overridden_by["reason"] == "FR sync licence signed, ledger entry pending"
    assert territory.to_dict()["overridden_by"]["role"] == "legal"
    assert consent.blocks and not report.passed  # the cloned voice still blocks
    assert "signed off by Dana Reyes" in territory.line()
    # Without the cloned voice, the deliverable passes on the sign-off alone.
    assert check(default, [track], regions=["FR"], overrides=signed).passed
    assert not check(default, [track], regions=["FR"]).passed


def test_an_override_counts_until_it_expires(default: Policy) -> None:
    track = part("music", "city-pulse", node_kind="track", territories=["US"])
    o = Override(rule="licence.territory", component="track:city-pulse", scope="s", approver="Dana Reyes",
                 reason="r", expires=dt.date(2025, 5, 31))
    assert not check(default, [track], regions=["FR"], overrides=[o]).passed
    assert check(default, [track], regions=["FR"], overrides=[o], on=dt.date(2025, 5, 31)).passed
    # Another rule or another component is not signed off.
    other = Override(rule="licence.expired", component="track:city-pulse", scope="s", approver="A", reason="r")
    assert not check(default, [track], regions=["FR"], overrides=[other]).passed


@pytest.mark.parametrize(("kw", "line"), [
    ({"approver": " "}, "approver: an override needs the approver who signs it off — give --approver NAME"),
    ({"reason": ""}, "reason: an override needs the reason it is granted — give --reason TEXT"),
    ({"rule": "licence.colour"}, "rule: unknown rule 'licence.colour' — use one of: licence.usage-class"),
    ({"component": "flux-dev"}, "component: component 'flux-dev' is not kind:id — name it as the policy report"),
])
def test_an_override_needs_an_approver_and_a_reason(engine: Any, kw: dict[str, str], line: str) -> None:
    args = {"rule": "models.denied", "component": "model:flux-dev", "scope": "aurora/spring",
            "approver": "Dana Reyes", "reason": "cleared by counsel", **kw}
    with pytest.raises(StudioError) as e:
        record_override(engine, **args)
    assert str(e.value).startswith(line), str(e.value)
    assert overrides_for(engine, "aurora/spring") == []


def test_policy_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from studio.cli import main

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STUDIO_DATABASE_URL", raising=False)
    monkeypatch.setenv("STUDIO_POLICY", str(write_policy(tmp_path, STRICT)))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        shown = runner.invoke(main, ["policy", "show"])
        assert shown.exit_code == 0, shown.output
        assert shown.output.splitlines()[0] == f"acme-strict version 7: {tmp_path / 'policy.yaml'}"
        assert "  experiment: channels: allow banner-*, deny broadcast-*" in shown.output
        assert "  regions CN: models deny sdxl-*" in shown.output
        # A policy error's fix names `studio schema policy`: it prints the format.
        schema = json.loads(runner.invoke(main, ["schema", "policy"]).output)
        assert {"usage_classes", "channel_rules", "region_rules", "severity"} <= set(schema["properties"])
        as_json = json.loads(runner.invoke(main, ["policy", "show", "--json"]).output)
        assert (as_json["name"], as_json["version"]) == ("acme-strict", 7)
        assert as_json["severity"] == {"licence.channel": "warn", "licence.medium": "off"}

        made = runner.invoke(main, ["policy", "override", "--rule", "models.denied", "--component",
                                    "model:sdxl-base", "--scope", "aurora/spring", "--approver", "Dana Reyes",
                                    "--reason", "cleared for CN by counsel", "--expires", "2025-12-31"])
        assert made.exit_code == 0, made.output
        assert made.output.startswith("override 1: models.denied for model:sdxl-base in aurora/spring until "
                                      "2025-12-31, signed off by Dana Reyes (legal): cleared for CN by counsel")
        refused = runner.invoke(main, ["policy", "override", "--rule", "models.denied", "--component",
                                       "model:sdxl-base", "--scope", "aurora/spring", "--approver", "",
                                       "--reason", "x"])
        assert refused.exit_code == 2
        assert "studio: error: approver: an override needs the approver who signs it off" in refused.output
        e = db.make_engine(get_settings().db_url)
        try:
            (o,) = overrides_for(e, "aurora/spring")
        finally:
            e.dispose()
        assert (o.approver, o.expires) == ("Dana Reyes", dt.date(2025, 12, 31))
    finally:
        get_settings.cache_clear()


# -- the brief's regions and the spec's medium -------------------------------------------------


def test_a_brief_ships_worldwide_unless_it_says_where() -> None:
    doc = yaml.safe_load((ROOT / "examples" / "briefs" / "launch.yaml").read_text())
    brief = documents.parse(Brief, doc, "Brief", "launch.yaml")
    assert brief.regions == ["worldwide"]
    # The default stays out of the brief's hash: briefs written before regions keep theirs.
    assert "regions" not in json.loads(brief.canonical_json())
    fr = documents.parse(Brief, {**doc, "regions": ["FR", "EU"]}, "Brief", "launch.yaml")
    assert fr.regions == ["FR", "EU"] and fr.content_hash() != brief.content_hash()


@pytest.mark.parametrize(("regions", "line"), [
    (["UK"], "launch.yaml: regions[0]: 'UK': is not an ISO 3166-1 alpha-2 code; write GB (the United Kingdom)"),
    (["fr"], "launch.yaml: regions[0]: 'fr': is not a region as written; write FR"),
    (["ZZ"], "launch.yaml: regions[0]: 'ZZ': is not a region: write an ISO 3166-1 alpha-2 country code in "
             "capitals (GB, FR, US), EU, EEA or worldwide"),
    (["worldwide", "FR"], "launch.yaml: regions: worldwide already covers every region; list either worldwide "
                          "or the countries and unions"),
    (["FR", "FR"], "launch.yaml: regions: lists a region twice"),
])
def test_a_brief_with_bad_regions_is_refused(regions: list[str], line: str) -> None:
    doc = yaml.safe_load((ROOT / "examples" / "briefs" / "launch.yaml").read_text())
    with pytest.raises(StudioError) as e:
        documents.parse(Brief, {**doc, "regions": regions}, "Brief", "launch.yaml")
    assert str(e.value).startswith(line), str(e.value)


def test_the_medium_shapes_no_deliverable() -> None:
    from timelines.deliver import NOT_IN_KEY, conform_recipe, spec_key

    def video(s: ChannelSpec) -> dict[str, Any]:
        return conform_recipe("edit", s, lut_sha=None, grain=0.0, sharpen=0.0, preset="veryfast", master=None,
                              captions={}, graph="g")

    assert "medium" in NOT_IN_KEY and "medium" not in spec_key(EBU)
    assert video(EBU) == video(EBU.model_copy(update={"medium": "digital"}))


def test_every_rule_is_documented_in_the_default_policy() -> None:
    text = (ROOT / "studio" / "data" / "policy" / "default.yaml").read_text()
    for rule in RULES:
        assert rule in text, rule
