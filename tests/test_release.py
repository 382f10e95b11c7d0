"""The release gate (studio.release) on real renders: every demo deliverable carries its QC
report, its policy result and rights, IPTC digitalSourceType in XMP (read back with
exiftool) and a C2PA manifest that c2pa-python's reader validates against the session's
development root, with an ingredient per shot, keyframe, voice line, music, font and logo.
A second render reuses every release step and delivers the same bytes (what a sign-off's
release hash covers). A seeded violation blocks the run before anything is published,
with its reason, and an approver's recorded override lets it through."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import Session, select

from studio import db, provenance
from studio.errors import ReleaseBlocked
from studio.progress import QuietReporter
from studio.store import sha256_file

from .conftest import EXAMPLE_BRIEF, ROOT


class Counts(QuietReporter):
    def __init__(self) -> None:
        super().__init__()
        self.done: dict[str, dict[str, int]] = {}

    def stage_done(self, stage: str, **counts: Any) -> None:
        self.done[stage] = dict(counts)


@pytest.fixture(scope="module")
def demo(demo_run) -> tuple[Any, Path, dict[str, Any]]:
    ctx, out = demo_run
    return ctx, out, json.loads((out / "manifest.json").read_text())


def _exif_source_type(path: Path) -> str:
    out = subprocess.run(["exiftool", "-j", "-XMP-iptcExt:DigitalSourceType", str(path)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]["DigitalSourceType"]


def test_every_demo_deliverable_is_signed_verifies_and_shows_its_ingredients(demo, studio_home: Path) -> None:
    _, out, manifest = demo
    root = (studio_home / "signing" / "root.pem").read_bytes()
    assert manifest["release"]["signer"] and "Studio dev signer" in manifest["release"]["signer"]
    assert manifest["deliverables"]
    for d in manifest["deliverables"]:
        path = out / d["path"]
        assert sha256_file(path) == d["sha256"], d["spec"]  # the manifest names the signed bytes
        prov = d["provenance"]
        assert prov["signed"] and prov["unsigned_sha256"] != d["sha256"]
        report = provenance.verify(path, trust_anchors_pem=root)
        assert report["trusted"], report
        kinds = {i.get("kind") for i in report["chain"]["ingredients"]}
        models = {i.get("model") for i in report["chain"]["ingredients"] if i.get("model")}
        if d["kind"] == "video":
            # Piper's neural voice is a trained model; the procedural pictures and sound are code.
            assert {"keyframe", "shot", "voice", "music", "font", "logo"} <= kinds, kinds
            assert report["digital_source_type"] == provenance.COMPOSITE
            assert "joe-us" in models
        else:
            assert {"keyframe", "font", "logo"} <= kinds and "voice" not in kinds, kinds
            assert report["digital_source_type"] == provenance.COMPOSITE_SYNTHETIC
        assert prov["source_type"] == report["digital_source_type"]
        # XMP, read back by exiftool, says the same.
        assert _exif_source_type(path) == report["digital_source_type"]
        platforms = [p["platform"] for p in (report["disclosure"] or {}).get("platforms", [])]
        assert platforms == prov["disclosures"]
    youtube = next(d for d in manifest["deliverables"] if d["spec"] == "youtube-1080p")
    assert youtube["provenance"]["disclosures"] == ["youtube"]


def test_every_demo_deliverable_has_its_qc_reports_policy_and_rights(demo) -> None:
    _, out, manifest = demo
    for d in manifest["deliverables"]:
        qc = d["qc"]
        assert qc["verdict"] in ("pass", "warn") and not qc["blocked"], (d["spec"], qc)
        report = json.loads((out / qc["report"]).read_text())
        assert report["schema"] == "QcReport.1" and report["verdict"] == qc["verdict"]
        assert report["spec"] == d["spec"]
        html = (out / qc["html"]).read_text()
        assert d["spec"] in html and "<table" in html
        # The end card is a designed still (an intended span), and the slow camera moves are
        # motion: no freeze anywhere in the demo.
        assert "freeze" not in [w["check"] for w in qc["warned"]], qc["warned"]
        assert d["policy"]["name"] == "studio-default" and d["policy"]["passed"]
        assert not [v for v in d["policy"]["violations"] if v["blocking"]]
        assert any(r.startswith("font:") for r in d["rights"]) and any(r.startswith("logo:") for r in d["rights"])
        assert "builtin:procedural-keyframes" in d["rights"]
        if d["kind"] == "video":
            assert "voice:joe-us" in d["rights"]
    files = {f["path"] for f in manifest["files"]}
    assert all(d["qc"]["report"] in files and d["qc"]["html"] in files for d in manifest["deliverables"])


def test_the_database_records_the_release_of_each_deliverable(demo, settings) -> None:
    ctx, _, manifest = demo
    with Session(db.make_engine(settings.db_url)) as s:
        rows = s.exec(select(db.Deliverable).where(db.Deliverable.run_id == ctx.run_id)).all()
    by_sha = {r.sha256: r for r in rows}
    for d in manifest["deliverables"]:
        row = by_sha[d["sha256"]]  # the row names the signed bytes too (studio where finds them)
        rel = row.params["release"]
        assert rel["provenance"]["signed"] and rel["qc"]["verdict"] == d["qc"]["verdict"]
        assert rel["policy"]["passed"]


def test_a_second_render_reuses_every_release_step_and_delivers_the_same_bytes(demo, settings, tmp_path) -> None:
    from studio.pipeline import render

    _, _, manifest = demo
    counts = Counts()
    render(EXAMPLE_BRIEF, tmp_path / "again", settings=settings, reporter=counts)
    again = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert counts.done["release"] == {"reused": len(manifest["deliverables"]), "made": 0}
    assert sorted(d["sha256"] for d in again["deliverables"]) == sorted(d["sha256"] for d in manifest["deliverables"])


# ---------------------------------------------------------------- a seeded violation, end to end


def _print_only_font_pack(folder: Path) -> Path:
    """The example's style pack whose font is licensed for print only."""
    shipped = ROOT / "studio" / "data" / "styles"
    doc = yaml.safe_load((shipped / "golden-hour.yaml").read_text())
    doc["brand"]["logo"]["path"] = str(shipped / doc["brand"]["logo"]["path"])
    if doc.get("finishing", {}).get("lut"):
        doc["finishing"]["lut"] = str(shipped / doc["finishing"]["lut"])
    doc["brand"]["font"] = {**doc["brand"]["font"], "licence": "Desktop print licence (Acme Type)",
                            "terms": {"licence_id": "ACME-TYPE-0042", "licensor": "Acme Type Foundry",
                                      "media": ["print"]}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "golden-hour.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder


def test_a_print_only_font_blocks_the_release_until_an_approver_overrides(settings, ray_session,
                                                                          tmp_path: Path) -> None:
    from studio.pipeline import render
    from studio.policy import record_override

    styles = _print_only_font_pack(tmp_path / "styles")
    st = settings.model_copy(update={"styles_dir": styles})
    doc = yaml.safe_load(EXAMPLE_BRIEF.read_text())
    doc.update(channels=["banner-300x250"], candidates=1, campaign="print-font")
    doc.pop("stills", None)
    brief = tmp_path / "brief.yaml"
    brief.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = tmp_path / "out"
    with pytest.raises(ReleaseBlocked) as info:
        render(brief, out, settings=st)
    err = info.value
    lines = err.lines()
    assert len(lines) == 1, lines
    font = sha256_file(Path(yaml.safe_load((styles / "golden-hour.yaml").read_text())["brand"]["font"]["path"]))
    assert lines[0].startswith("stage release: banner-300x250: font 'DejaVuSans-Bold.ttf' is licensed for print "
                               "only, not digital use (banner-300x250 is a digital channel) (policy rule "
                               f"licence.medium; font:{font[:12]}, licence ACME-TYPE-0042) — "), lines[0]
    assert lines[0].endswith("or an approver signs it off: `studio policy override --rule licence.medium --component "
                             f"font:{font} --scope aurora/print-font --approver NAME --reason TEXT`"), lines[0]
    assert not out.exists()  # nothing published
    # Found before anything was generated: the brand's font is known from the style pack.
    assert err.gate["preflight"] and err.gate["qc"] == []
    with Session(db.make_engine(settings.db_url)) as s:
        run = s.exec(select(db.Run).order_by(db.Run.started_at.desc())).first()  # type: ignore[attr-defined]
        assert run is not None and not s.exec(select(db.Shot).where(db.Shot.run_id == run.id)).all()
    (v,) = err.gate["violations"]
    assert v["rule"] == "licence.medium" and v["spec"] == "banner-300x250"
    assert err.gate["scope"] == "aurora/print-font"
    with Session(db.make_engine(settings.db_url)) as s:
        run = s.exec(select(db.Run).order_by(db.Run.started_at.desc())).first()  # type: ignore[attr-defined]
        assert run is not None and run.status == "failed" and "licence.medium" in (run.error or "")

    record_override(db.make_engine(settings.db_url), rule="licence.medium", component=v["component"],
                    scope=err.gate["scope"], approver="Dana Legal", reason="print licence extended to web by email "
                    "2026-12-01 (ticket LEG-88)")
    render(brief, out, settings=st)
    manifest = json.loads((out / "manifest.json").read_text())
    (d,) = manifest["deliverables"]
    assert d["policy"]["passed"]
    (ov,) = d["policy"]["violations"]
    assert ov["rule"] == "licence.medium" and ov["overridden_by"]["approver"] == "Dana Legal"
    assert "LEG-88" in ov["overridden_by"]["reason"]
    assert d["provenance"]["signed"]
    assert "ACME-TYPE-0042" in d["rights"]


def test_a_blocking_qc_failure_stops_the_release_and_keeps_its_report(settings, ray_session, tmp_path: Path) -> None:
    from studio.pipeline import render

    # The banner spec, told to block on a palette distance no picture meets.
    specs = tmp_path / "specs"
    specs.mkdir()
    for f in (ROOT / "studio" / "data" / "specs").glob("*.yaml"):
        (specs / f.name).write_text(f.read_text())
    doc = yaml.safe_load((specs / "banner-300x250.yaml").read_text())
    doc["qc"] = {"block": ["palette"], "palette_delta_e": 0.5}
    (specs / "banner-300x250.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    brief_doc = yaml.safe_load(EXAMPLE_BRIEF.read_text())
    brief_doc.update(channels=["banner-300x250"], candidates=1, campaign="qc-block")
    brief_doc.pop("stills", None)
    brief = tmp_path / "brief.yaml"
    brief.write_text(yaml.safe_dump(brief_doc, sort_keys=False))
    out = tmp_path / "out"
    with pytest.raises(ReleaseBlocked) as info:
        render(brief, out, settings=settings.model_copy(update={"specs_dir": specs}))
    (line,) = info.value.lines()
    (q,) = info.value.gate["qc"]
    assert q["check"] == "palette" and q["spec"] == "banner-300x250"
    assert line.startswith(f"{q['report']}: stage release: banner-300x250: QC check palette failed: dominant "
                           "colours are ΔE00 "), line
    assert line.endswith("(limit 0.5) — check the grade (the style pack's LUT) was applied; regenerate "
                         "off-palette shots"), line
    assert not out.exists()
    # The report outlives the run's work folder: kept in the store, where the error says.
    report = json.loads(Path(q["report"]).read_text())
    assert report["verdict"] == "fail" and report["spec"] == "banner-300x250"
    assert "<html" in Path(q["html"]).read_text().lower()


def test_a_character_drawn_from_a_real_person_needs_their_consent(settings, ray_session, tmp_path: Path) -> None:
    from studio import lineage, rights
    from studio.pipeline import render

    doc = yaml.safe_load(EXAMPLE_BRIEF.read_text())
    doc.update(channels=["banner-300x250"], candidates=1, campaign="likeness", hero_beat="b01-sunrise")
    doc.pop("stills", None)
    doc["characters"][0]["likeness"] = {"person": "Maya Lind"}
    brief = tmp_path / "brief.yaml"
    brief.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = tmp_path / "out"
    with pytest.raises(ReleaseBlocked) as info:
        render(brief, out, settings=settings)
    (line,) = info.value.lines()
    assert line.startswith("stage release: banner-300x250: reference 'character hiker (likeness)' is a likeness "
                           "of Maya Lind"), line
    assert "(policy rule consent.real-person; likeness:aurora/hiker, licence likeness:aurora/hiker)" in line
    assert info.value.gate["preflight"] and not out.exists()

    doc["characters"][0]["likeness"]["consent"] = {
        "subject": "Maya Lind", "document": "releases/maya-lind-2026.pdf", "granted": "2026-01-10",
        "usage_classes": ["internal"]}
    brief.write_text(yaml.safe_dump(doc, sort_keys=False))
    render(brief, out, settings=settings)
    manifest = json.loads((out / "manifest.json").read_text())
    (d,) = manifest["deliverables"]
    assert "likeness:aurora/hiker" in d["rights"] and d["policy"]["passed"]
    engine = db.make_engine(settings.db_url)
    found = lineage.where(engine, "likeness:aurora/hiker")["deliverables"]
    assert [f["sha256"] for f in found] == [d["sha256"]]
    info_rights = rights.rights_of(engine, d["sha256"])
    (part,) = [p for p in info_rights["parts"] if p["node"][0] == "likeness"]
    assert part["rights"]["real_person"] == "Maya Lind" and part["rights"]["consent"]["subject"] == "Maya Lind"
