"""Lineage and where-used (studio.lineage): edges from every artefact to what it was made
from, recorded when a run succeeds, and the two recursive queries over them, on SQLite
and PostgreSQL; a conform's deliverables trace back to the original seeds."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select

from studio import db, lineage
from studio.errors import StudioError

# -- a small synthetic run, written as the stages write their rows ----------------------


def h(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def make_run(engine: Any, tag: str, *, beats: int = 3, candidates: int = 3,
             lut: Path | None = None, kf_prefix: str = "") -> dict[str, Any]:
    """A run of ``beats`` shots with ``candidates`` candidates each (candidate 1 of each
    selected), an edit and a stills timeline, two video deliverables with their masters,
    mix, stems, voice lines, bed and a cue, and one still cut from the first beat."""
    run_id = f"run_{tag}"
    out: dict[str, Any] = {"run": run_id, "selected": [], "unselected": [], "seeds": {}, "prompts": {},
                           "video": [], "still": None}
    with Session(engine) as s:
        project = db.get_or_create_project(s, f"p{tag}")
        bv = db.record_brief(s, project, "c", f"sha{tag}", {"style_pack": "clean_product"}, "Brief.1", "b.yaml")
        s.add(db.Run(id=run_id, brief_version_id=bv.id, status="succeeded",  # type: ignore[arg-type]
                     settings={"backend": "procedural"}))
        s.flush()
        renders = []
        for b in range(beats):
            ph = f"{tag}prompt{b:02d}".ljust(64, "0")
            s.add(db.PromptRecordRow(hash=ph, beat_id=f"b{b}", document={"subject": f"beat {b}"}))
            shot = f"shot_{tag}_{b}"
            s.add(db.Shot(id=shot, run_id=run_id, beat_id=f"b{b}", kind="video", position=b, duration=2.0,
                          rate="30/1", frames=60, handles=12, focus_x=0.5, focus_y=0.5, prompt_hash=ph))
            s.flush()
            for i in range(candidates):
                cid = f"cand_{tag}_{b}_{i}"
                seed = 1000 * b + i + 7
                s.add(db.Candidate(id=cid, shot_id=shot, index=i, seed=seed, backend="procedural",
                                   model_id="procedural", width=64, height=64, prompt_hash=ph,
                                   code_version="x", recipe_hash="r", media_sha256=(kf_prefix + h(f"{tag}kf{b}{i}"))[:64]))
                out["seeds"][cid] = seed
                out["prompts"][cid] = ph
                (out["selected"] if i == 1 else out["unselected"]).append(cid)
            s.flush()
            rid = f"render_{tag}_{b}"
            s.add(db.Render(id=rid, run_id=run_id, shot_id=shot, candidate_id=f"cand_{tag}_{b}_1", kind="clip",
                            media_sha256=h(f"{tag}clip{b}"), media_ext=".mp4", code_version="x"))
            renders.append(rid)
        s.add(db.Timeline(id=f"tl_{tag}_edit", run_id=run_id, name="edit", kind="edit", sha256="t", path="e.otio"))
        s.add(db.Timeline(id=f"tl_{tag}_stills", run_id=run_id, name="stills", kind="stills", sha256="t",
                          path="s.otio"))
        s.flush()
        finishing = {"lut": str(lut) if lut else None, "grain": 0.0, "sharpen": 0.0}
        for spec in ("youtube_16x9", "reels_9x16"):
            did = f"dlv_{tag}_{spec}"
            s.add(db.Deliverable(id=did, run_id=run_id, timeline_id=f"tl_{tag}_edit", spec=spec, kind="video",
                                 path=f"/out/{tag}/{spec}.mp4", sha256=h(f"{tag}{spec}"),
                                 width=64, height=64, size=1, code_version="x", params={"finishing": finishing}))
            s.add(db.AudioAsset(id=f"mst_{tag}_{spec}", run_id=run_id, kind="master", name=spec, spec=spec,
                                sha256=f"{tag}m{spec}", code_version="x"))
            out["video"].append(did)
        did = f"dlv_{tag}_banner"
        s.add(db.Deliverable(id=did, run_id=run_id, timeline_id=f"tl_{tag}_stills", spec="banner", kind="still",
                             path=f"/out/{tag}/banner.jpg", sha256=h(f"{tag}banner"),
                             width=64, height=64, size=1, code_version="x",
                             params={"frame": {"beat_id": "b0", "candidate_id": f"cand_{tag}_0_1"}}))
        out["still"] = did
        for b in range(beats):
            s.add(db.AudioAsset(id=f"vl_{tag}_{b}", run_id=run_id, kind="voice-line", name=f"b{b}", beat_id=f"b{b}",
                                sha256=f"{tag}vl{b}", code_version="x",
                                params={"text": f"line {b}", "voice": "en_us_amy"}))
        s.add(db.AudioAsset(id=f"bed_{tag}", run_id=run_id, kind="music-bed", name="procedural", sha256=f"{tag}bed",
                            code_version="x", params={"source": "procedural", "track": None, "tempo": 96}))
        s.add(db.AudioAsset(id=f"cue_{tag}", run_id=run_id, kind="effect-cue", name="c1", sha256=f"{tag}fx",
                            code_version="x", params={"effect": "whoosh_soft"}))
        for name in ("voice", "music", "effects"):
            s.add(db.AudioAsset(id=f"stem_{tag}_{name}", run_id=run_id, kind="stem", name=name,
                                sha256=f"{tag}stem{name}", code_version="x"))
        s.commit()
    out["renders"] = renders
    return out


def make_conform(engine: Any, src: dict[str, Any], tag: str, keep: list[str]) -> dict[str, Any]:
    """A conform of ``src`` keeping the beats ``keep``, as studio.conform records it."""
    run_id = f"run_{tag}"
    with Session(engine) as s:
        bv_id = s.get(db.Run, src["run"]).brief_version_id  # type: ignore[union-attr]
        s.add(db.Run(id=run_id, brief_version_id=bv_id, status="succeeded",
                     settings={"conform_of": src["run"], "edited": "cut.otio", "order_after": keep}))
        s.add(db.Timeline(id=f"tl_{tag}", run_id=run_id, name="edit", kind="edit", version=2,
                          parent_id=f"tl_{src['run'][4:]}_edit", sha256="t", path="e2.otio"))
        s.flush()
        s.add(db.Deliverable(id=f"dlv_{tag}", run_id=run_id, timeline_id=f"tl_{tag}", spec="youtube_16x9",
                             kind="video", path=f"/out/{tag}/y.mp4", sha256="f" * 64, width=64, height=64, size=1,
                             code_version="x", params={}))
        s.add(db.AudioAsset(id=f"mst_{tag}", run_id=run_id, kind="master", name="youtube_16x9",
                            spec="youtube_16x9", sha256=f"{tag}m", code_version="x"))
        s.add(db.AudioAsset(id=f"stem_{tag}_voice", run_id=run_id, kind="stem", name="voice",
                            sha256=f"{tag}sv", code_version="x"))
        s.commit()
    return {"run": run_id, "deliverable": f"dlv_{tag}"}


def _walk(item: dict[str, Any]) -> list[dict[str, Any]]:
    out = [item]
    for c in item.get("children", []):
        out += _walk(c)
    return out


def check_queries(engine: Any, tmp_path: Path) -> None:
    """The where/lineage contract on a fresh database of two runs and a conform."""
    lut = tmp_path / "teal.cube"
    lut.write_text("LUT_3D_SIZE 2\n" + "0 0 0\n" * 8)
    a = make_run(engine, "a", lut=lut)
    b = make_run(engine, "b")
    for r in (a, b):
        assert lineage.record_run_edges(engine, r["run"]) > 0
    all_a = set(a["video"]) | {a["still"]}
    every = all_a | set(b["video"]) | {b["still"]}

    def where(thing: str) -> set[str]:
        return {d["id"] for d in lineage.where(engine, thing)["deliverables"]}

    # A selected candidate: the video deliverables through its render, and the still cut
    # from it; an unselected one: none (but it is known).
    assert where("cand_a_0_1") == all_a
    assert where("cand_a_1_1") == set(a["video"])
    assert where("cand_a_1_0") == set()
    # Shared things reach every deliverable of every run that used them.
    assert where("procedural") == every  # the keyframe model (and the composer)
    assert where("model:procedural") == every
    assert where("style:clean_product") == every
    assert where("en_us_amy") == set(a["video"]) | set(b["video"])  # the voice: video only
    assert where("whoosh_soft") == set(a["video"]) | set(b["video"])
    assert where("teal.cube") == set(a["video"])  # the LUT by file name
    lut_sha = lineage._lut_node(str(lut))[0]
    assert where(lut_sha[:10]) == set(a["video"])  # and by a prefix of its sha256
    # A keyframe by a prefix of its sha256; a seed with kind:id.
    assert where(h("akf11")[:10]) == set(a["video"])
    assert where(f"seed:{a['seeds']['cand_a_2_1']}") == set(a["video"]) | set(b["video"])
    with pytest.raises(StudioError, match="nothing recorded is called 'no-such-thing'"):
        lineage.where(engine, "no-such-thing")

    # Lineage reaches, for each selected candidate, its seed and prompt record; the voice
    # and the music bed's composer.
    info = lineage.lineage(engine, a["video"][0])
    nodes = _walk(info["tree"])
    got = {(n["kind"], n["id"]) for n in nodes}
    for cid in [c for c in a["selected"]]:
        assert ("candidate", cid) in got
        assert ("seed", str(a["seeds"][cid])) in got
        assert ("prompt", a["prompts"][cid]) in got
    assert not {("candidate", c) for c in a["unselected"]} & got
    assert {("voice", "en_us_amy"), ("composer", "procedural"), ("effect", "whoosh_soft"),
            ("model", "procedural"), ("spec", "youtube_16x9"), ("style", "clean_product"),
            ("lut-file", "teal.cube")} <= got
    text = "\n".join(lineage.format_tree(info["tree"]))
    assert "  timeline: tl_a_edit edit v1" in text
    assert "        seed: 1008" in text  # deliverable > timeline > render > candidate > seed
    # By the file's sha256 prefix and by its path, the same deliverable.
    dlv = lineage.find_deliverable(engine, a["video"][0])[0]
    assert lineage.find_deliverable(engine, dlv.sha256[:12])[0].id == dlv.id
    assert lineage.find_deliverable(engine, dlv.path)[0].id == dlv.id
    with pytest.raises(StudioError, match="no deliverable is 'dlv_nope'"):
        lineage.lineage(engine, "dlv_nope")

    # A conform that dropped beat b2 traces back to the source's seeds for b0 and b1 only,
    # and its voice stem to the source's voice lines.
    c = make_conform(engine, a, "c", ["b1", "b0"])
    lineage.record_run_edges(engine, c["run"])
    got = {(n["kind"], n["id"]) for n in _walk(lineage.lineage(engine, c["deliverable"])["tree"])}
    assert ("seed", str(a["seeds"]["cand_a_0_1"])) in got and ("seed", str(a["seeds"]["cand_a_1_1"])) in got
    assert ("candidate", "cand_a_2_1") not in got
    assert ("voice", "en_us_amy") in got
    assert lineage.lineage(engine, c["deliverable"])["conform_of"] == a["run"]
    assert c["deliverable"] in where("cand_a_0_1") and c["deliverable"] not in where("cand_a_2_1")
    # Re-recording replaces, never duplicates.
    with engine.connect() as conn:
        n = conn.execute(lineage.EDGE.select().where(lineage.EDGE.c.run_id == a["run"])).all()
    assert lineage.record_run_edges(engine, a["run"]) == len(n)


def test_queries_sqlite(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'studio.db'}")
    db.init_db(engine)
    check_queries(engine, tmp_path)


def test_queries_postgres(postgres_url: str, tmp_path: Path) -> None:
    from tests.test_migrations import _fresh_pg

    engine = db.make_engine(_fresh_pg(postgres_url, f"lineage_{tmp_path.name}"))
    try:
        db.init_db(engine)
        check_queries(engine, tmp_path)
    finally:
        engine.dispose()


def test_ambiguous_prefix_names_the_matches(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'studio.db'}")
    db.init_db(engine)
    make_run(engine, "a", kf_prefix="abcdef12")
    lineage.record_run_edges(engine, "run_a")
    with pytest.raises(StudioError, match="'ABCDEF12' is the start of 9 different hashes"):
        lineage.where(engine, "ABCDEF12")
    assert lineage.where(engine, "ABCDEF12" + h("akf00")[:4])["nodes"] == [
        {"kind": "media", "id": ("abcdef12" + h("akf00"))[:64]}]


def test_runs_without_edges_are_recorded_by_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database from before lineage: `studio where` records the missing runs first."""
    from studio.cli import main

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path))
    monkeypatch.delenv("STUDIO_DATABASE_URL", raising=False)
    from studio.settings import get_settings

    engine = db.make_engine(get_settings().db_url)
    db.init_db(engine)
    a = make_run(engine, "a")
    res = CliRunner().invoke(main, ["where", "cand_a_0_1"])
    assert res.exit_code == 0, res.output
    assert a["still"] in res.output and all(d in res.output for d in a["video"])
    res = CliRunner().invoke(main, ["where", "cand_a_0_0"])
    assert res.exit_code == 0 and "in no deliverable" in res.output
    res = CliRunner().invoke(main, ["lineage", a["video"][0]])
    assert res.exit_code == 0, res.output
    assert "    shot: render render_a_0 clip master, beat b0" in res.output
    res = CliRunner().invoke(main, ["where", "nothing-here"])
    assert res.exit_code == 2 and "studio: error:" in res.output
    res = CliRunner().invoke(main, ["lineage", a["video"][0], "--json"])
    assert json.loads(res.output)["deliverable"]["id"] == a["video"][0]


# -- on a real render of the example brief ----------------------------------------------


@pytest.fixture(scope="module")
def demo(demo_run, settings) -> Any:
    """The demo run's engine, its deliverables and its candidates by shot."""
    ctx, _out = demo_run
    engine = db.make_engine(settings.db_url)
    with Session(engine) as s:
        dlv = s.exec(select(db.Deliverable).where(db.Deliverable.run_id == ctx.run_id)).all()
        cands = s.exec(select(db.Candidate, db.Shot.beat_id).join(db.Shot, db.Candidate.shot_id == db.Shot.id)
                       .where(db.Shot.run_id == ctx.run_id)).all()
    yield ctx, engine, {d.id: d for d in dlv}, cands
    engine.dispose()


def test_where_on_the_demo(demo) -> None:
    ctx, engine, dlv, cands = demo
    video = {i for i, d in dlv.items() if d.kind == "video"}
    stills = {i for i, d in dlv.items() if d.kind == "still"}
    assert video and stills

    def where(thing: str) -> set[str]:
        return {d["id"] for d in lineage.where(engine, thing)["deliverables"]} & set(dlv)

    selected = {sel.candidate_id for sel in ctx.selected.values()}
    for c, _beat in cands:
        if c.id in selected:
            used = {i for i, d in dlv.items() if d.kind == "video"
                    or (d.params.get("frame") or {}).get("candidate_id") == c.id}
            assert where(c.id) == used, c.id
            assert where(c.media_sha256[:12]) == used  # its keyframe, by a prefix
        else:
            assert where(c.id) == set(), c.id
    assert where(ctx.brief.style_pack) == set(dlv)
    assert where(ctx.voice.id) == video
    assert where("model:procedural") == set(dlv)


def test_lineage_on_the_demo_reaches_seeds_voice_and_music(demo) -> None:
    ctx, engine, dlv, _cands = demo
    for d in (d for d in dlv.values() if d.kind == "video"):
        info = lineage.lineage(engine, d.sha256)  # by its file's hash
        got = {(n["kind"], n["id"]) for n in _walk(info["tree"])}
        for sel in ctx.selected.values():
            assert ("seed", str(sel.seed)) in got, (d.spec, sel.beat_id)
            assert ("prompt", sel.record["prompt_hash"]) in got
            assert ("candidate", sel.candidate_id) in got
        assert ("voice", ctx.voice.id) in got
        bed = ctx.sound["bed"]
        assert ("track", bed["track"]) in got if bed["track"] else ("composer", bed["source"]) in got
        assert ("spec", d.spec) in got and ("style", ctx.brief.style_pack) in got
        assert any(k == "audio" for k, _ in got) and any(k == "mix" for k, _ in got)


def test_a_conform_traces_back_to_the_original_seeds(demo_run, demo, settings, tmp_path: Path) -> None:
    import opentimelineio as otio

    from studio.conform import conform_edit
    from studio.progress import QuietReporter
    from tests.test_roundtrip import _edit

    ctx, out = demo_run
    _ctx, engine, _dlv, _cands = demo
    m = json.loads((out / "manifest.json").read_text())
    edit = next(t for t in m["timelines"] if t["kind"] == "edit" and t["format"] == "otio_json")
    path = tmp_path / "edited.otio"
    otio.adapters.write_to_file(_edit(otio.adapters.read_from_file(str(out / edit["path"]))), str(path))
    new_ctx, changes = conform_edit(ctx.run_id, path, tmp_path / "out", settings=settings,
                                    reporter=QuietReporter())
    assert changes["dropped"] == ["b04-product"]
    by_beat = {sel.beat_id: sel for sel in ctx.selected.values()}
    with Session(engine) as s:
        new = s.exec(select(db.Deliverable).where(db.Deliverable.run_id == new_ctx.run_id)).all()
    assert new
    for d in new:
        info = lineage.lineage(engine, d.id)
        assert info["conform_of"] == ctx.run_id
        got = {(n["kind"], n["id"]) for n in _walk(info["tree"])}
        for beat in changes["order_after"]:
            assert ("seed", str(by_beat[beat].seed)) in got and ("candidate", by_beat[beat].candidate_id) in got
        assert ("candidate", by_beat["b04-product"].candidate_id) not in got  # dropped by the editor
        assert ("voice", ctx.voice.id) in got
        assert d.id in {x["id"] for x in lineage.where(engine, by_beat["b01-sunrise"].candidate_id)["deliverables"]}
