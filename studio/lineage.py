"""Lineage and where-used: every artefact linked to what it was made from.

The ``edge`` table (``studio.db.Edge``) holds one row per "src was made from dst":
edges point from a product to its ingredients, so walking *down* from a deliverable
(``lineage``) reaches its seeds and weights, and walking *up* from a thing (``where``)
reaches every deliverable containing it. Both walks are one recursive query
(``WITH RECURSIVE``, SQLAlchemy Core), the same on SQLite and PostgreSQL.

The edges are derived in one place, ``record_run_edges``, from the rows a run already
wrote (candidates, renders, timelines, deliverables, audio assets, the run's settings
and brief); the runner calls it when a run succeeds, and so does ``studio conform``,
whose run links to the run it came from and to that run's renders, so a conformed
deliverable traces back to the same seeds.

The graph, top down (node kinds in brackets)::

    [deliverable] -timeline-> [timeline] -shot-> [render] (a clip master) -selected->
        [candidate] -prompt-> [prompt], -seed-> [seed], -model-> [model], -likeness-> [likeness],
        -weights-> [weights], -backend-> [backend], -keyframe-> [media]
    [deliverable] -audio-> [audio] (master) -mix-> [mix] -stem-> [audio] (stem)
        -line-> [audio] (voice line) -voice-> [voice], -text-> [text] (sha256 of the words)
        -bed-> [audio] (music bed) -track-> [track] | -composer-> [composer], -params-> [params]
        -cue-> [audio] (effect cue) -effect-> [effect]
    [deliverable] -spec-> [spec], -style-> [style], -lut-> [lut] (file sha256) -file-> [lut-file]
    [deliverable] -font-> [font] (file sha256), -logo-> [logo] (file sha256): what its copy is set with
    [deliverable] (a still) -frame-> [candidate]
    [render] -model-> [model] (a clip model's master)
    [run] (a conform) -conform-of-> [run]

Every component that carries rights points at its licence (studio.rights: the ledger)::

    [model] | [voice] | [track] | [composer] | [effect] | [font] | [logo] -licence-> [licence]

so ``where licence:ID`` (or the bare licence id) walks up to every deliverable a licence
reaches: what a revoked or expired licence blocks.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from studio import db
from studio.errors import StudioError

EDGE = db.Edge.__table__  # type: ignore[attr-defined]

# Nodes that are rows of a table (their id is the row's id); the rest are values.
ROW_KINDS = ("deliverable", "timeline", "render", "candidate", "audio", "run", "mix")
VALUE_KINDS = ("prompt", "seed", "model", "weights", "backend", "media", "spec", "style", "lut",
               "lut-file", "voice", "text", "track", "composer", "params", "effect", "font", "logo",
               "licence", "likeness")
KINDS = ROW_KINDS + VALUE_KINDS
# Values that are hashes: ``where`` accepts a prefix of these.
HASH_KINDS = ("media", "weights", "prompt", "lut", "text", "params", "font", "logo")
MIN_PREFIX = 6
_HEX = re.compile(r"^[0-9a-f]+$")

Node = tuple[str, str]


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _params_hash(params: dict[str, Any]) -> str:
    return _sha256_text(json.dumps(params, sort_keys=True, separators=(",", ":"), default=str))


def _source_run(s: Session, run: db.Run) -> db.Run:
    """The run whose renders, candidates and sound a run used: itself, or for a conform
    the run it was conformed from (followed back, should a conform ever be conformed)."""
    seen = {run.id}
    while (parent_id := (run.settings or {}).get("conform_of")) and parent_id not in seen:
        parent = s.get(db.Run, parent_id)
        if parent is None:
            break
        seen.add(parent_id)
        run = parent
    return run


def _lut_node(path: str) -> tuple[str, str]:
    """A LUT as (sha256 of the file, file name); a file gone since names its path instead."""
    p = Path(path)
    try:
        from studio.store import sha256_file

        return sha256_file(p), p.name
    except OSError:
        return f"missing:{path}", p.name


def brand_inputs(d: db.Deliverable) -> dict[str, Any]:
    """The font and logo a deliverable's copy was set with, as its record keeps them
    (studio.copyfit.brand_inputs: file, sha256, licence or rights): a still's ``copy``, a
    video's ``graphics``; empty when it shows no copy."""
    params = d.params or {}
    return (params.get("copy") or params.get("graphics") or {}).get("inputs") or {}


def run_edges(s: Session, run_id: str, *, licences: bool = True,
              settings: Any = None) -> set[tuple[str, str, str, str, str]]:
    """The edges a run's rows imply, as (src_kind, src_id, dst_kind, dst_id, role). With
    ``licences``, each component's edge to its licence too (studio.rights.node_records,
    with the model registry of ``settings``, else of the environment)."""
    out = _structure_edges(s, run_id)
    if licences:
        from studio import rights

        out |= rights.licence_edges(rights.node_records(s, out, settings))
    return out


def _structure_edges(s: Session, run_id: str) -> set[tuple[str, str, str, str, str]]:
    run = s.get(db.Run, run_id)
    if run is None:
        raise StudioError(f"no run {run_id!r} in the database", fix="see `studio runs`", field="RUN")
    settings = run.settings or {}
    source = _source_run(s, run)
    bv = s.get(db.BriefVersion, run.brief_version_id)
    style = (bv.document or {}).get("style_pack") if bv is not None else None
    out: set[tuple[str, str, str, str, str]] = set()

    def add(src: Node, dst: Node, role: str) -> None:
        if dst[1] is not None and dst[1] != "":
            out.add((src[0], src[1], dst[0], str(dst[1]), role))

    if source.id != run.id:
        add(("run", run.id), ("run", source.id), "conform-of")

    # Picture: renders (clip masters) from their selected candidates, candidates from their
    # prompt, seed and weights. A conform made none of these: its timeline uses the source's.
    renders = s.exec(select(db.Render, db.Shot.beat_id)
                     .join(db.Shot, db.Render.shot_id == db.Shot.id)  # type: ignore[arg-type]
                     .where(db.Render.run_id == source.id)).all()
    if "order_after" in settings:  # the beats the editor kept
        kept = set(settings["order_after"])
        renders = [(r, b) for r, b in renders if b in kept]
    candidate_ids: set[str] = set()
    if source.id == run.id:
        for r, _beat in renders:
            add(("render", r.id), ("candidate", r.candidate_id), "selected")
            add(("render", r.id), ("media", r.media_sha256), "file")
            if (r.params or {}).get("model_id"):  # moved by a clip model, not the procedural camera
                add(("render", r.id), ("model", r.params["model_id"]), "model")
            candidate_ids.add(r.candidate_id)

    timelines = s.exec(select(db.Timeline).where(db.Timeline.run_id == run.id)).all()
    for tl in timelines:
        if tl.kind == "edit" or tl.kind.startswith("edit."):  # edit.<locale>: a later locale's
            for r, _beat in renders:
                add(("timeline", tl.id), ("render", r.id), "shot")

    deliverables = s.exec(select(db.Deliverable).where(db.Deliverable.run_id == run.id)).all()
    for d in deliverables:
        node = ("deliverable", d.id)
        if d.timeline_id:
            add(node, ("timeline", d.timeline_id), "timeline")
        add(node, ("spec", d.spec), "spec")
        if style:
            add(node, ("style", style), "style")
        params = d.params or {}
        frame = params.get("frame") or {}
        if frame.get("candidate_id"):  # a still: cut from one keyframe
            add(node, ("candidate", frame["candidate_id"]), "frame")
            candidate_ids.add(frame["candidate_id"])
        fin = params.get("finishing") or {}
        lut = fin.get("lut")
        if lut:
            sha, name = _lut_node(lut)
            # The hash recorded when the LUT graded the masters names the file as it was
            # then; the file at the path may have changed since.
            sha = fin.get("lut_sha256") or sha
            add(node, ("lut", sha), "lut")
            add(("lut", sha), ("lut-file", name), "file")
        brand = brand_inputs(d)
        for role in ("font", "logo"):  # each by its file's sha256, as the record keeps it
            if (brand.get(role) or {}).get("sha256"):
                add(node, (role, brand[role]["sha256"]), role)

    if source.id == run.id:  # every candidate, selected or not: where() knows them all
        cands = s.exec(select(db.Candidate).join(db.Shot, db.Candidate.shot_id == db.Shot.id)  # type: ignore[arg-type]
                       .where(db.Shot.run_id == run.id)).all()
    else:
        # A conform's stills may swap in another candidate of the source run: record it
        # only if the source's recording did not (it records the ones its outputs used).
        have = {r[0] for r in s.exec(sa.select(EDGE.c.src_id).where(
            EDGE.c.src_kind == "candidate", EDGE.c.src_id.in_(candidate_ids)))} if candidate_ids else set()
        todo = candidate_ids - have
        cands = s.exec(select(db.Candidate).where(db.Candidate.id.in_(todo))).all() if todo else []  # type: ignore[attr-defined]
    # A character drawn from a real person (the brief's characters[].likeness): each
    # candidate of a beat that casts it is made from their likeness (studio.rights).
    likeness = likeness_by_beat(bv.document if bv is not None else None)
    beat_of = {sh.id: sh.beat_id for sh in s.exec(select(db.Shot).where(
        db.Shot.id.in_({c.shot_id for c in cands})))} if likeness and cands else {}  # type: ignore[attr-defined]
    for c in cands:
        node = ("candidate", c.id)
        for ident in likeness.get(beat_of.get(c.shot_id, ""), []):
            add(node, ("likeness", ident), "likeness")
        add(node, ("prompt", c.prompt_hash), "prompt")
        add(node, ("seed", str(c.seed)), "seed")
        add(node, ("model", c.model_id), "model")
        add(node, ("backend", c.backend), "backend")
        if c.weights_sha256:
            add(node, ("weights", c.weights_sha256), "weights")
        add(node, ("media", c.media_sha256), "keyframe")

    # Sound: a channel's master from the run's mix, the mix from its stems, each stem from
    # the lines, bed or cues in it (a conform's stems are made of its source run's).
    audio = s.exec(select(db.AudioAsset).where(db.AudioAsset.run_id.in_({run.id, source.id}))).all()  # type: ignore[attr-defined]
    own = [a for a in audio if a.run_id == run.id]
    parts = {"voice": [a for a in audio if a.run_id == source.id and a.kind == "voice-line"],
             "music": [a for a in audio if a.run_id == source.id and a.kind == "music-bed"],
             "effects": [a for a in audio if a.run_id == source.id and a.kind == "effect-cue"]}
    # A brief in several locales has a mix per locale (params["locale"]; none for the
    # first locale of a one-locale brief): each locale's masters, stems and voice lines
    # are its own, its bed and cues the run's. A locale that ships subtitled has no lines
    # of its own: its voice stem is the first locale's lines.
    def loc(a: Any) -> str | None:
        return (a.params or {}).get("locale")

    masters = {(a.spec or a.name, loc(a)): a for a in own if a.kind == "master"}
    stems = [a for a in own if a.kind == "stem"]
    locales = ((bv.document or {}).get("locales") or []) if bv is not None else []
    first = locales[0] if len(locales) > 1 else None  # the voice a subtitled locale keeps

    def mix_of(locale: str | None) -> Node:
        return ("mix", f"{run.id}.{locale}" if locale else run.id)

    for d in deliverables:
        key = (d.spec, (d.params or {}).get("locale"))
        if d.kind == "video" and key in masters:
            add(("deliverable", d.id), ("audio", masters[key].id), "audio")
    for (_spec, locale), a in masters.items():
        add(("audio", a.id), mix_of(locale), "mix")
    role_of = {"voice": "line", "music": "bed", "effects": "cue"}
    for a in stems:
        add(mix_of(loc(a)), ("audio", a.id), "stem")
        members = parts.get(a.name, [])
        if a.name == "voice":
            members = [p for p in members if loc(p) == loc(a)] or [p for p in members if loc(p) == first]
        for part in members:
            add(("audio", a.id), ("audio", part.id), role_of[a.name])
    for a in own:
        node = ("audio", a.id)
        if a.sha256:
            add(node, ("media", a.sha256), "file")
        p = a.params or {}
        if a.kind == "voice-line":
            add(node, ("voice", p.get("voice") or (a.rights or {}).get("voice")), "voice")
            if p.get("text"):
                add(node, ("text", _sha256_text(p["text"])), "text")
        elif a.kind == "music-bed":
            if p.get("track"):
                add(node, ("track", p["track"]), "track")
            elif p.get("source") in (None, "procedural", "library"):
                add(node, ("composer", p.get("source") or "procedural"), "composer")
                rest = {k: v for k, v in p.items() if k not in ("source", "track")}
                if rest:
                    add(node, ("params", _params_hash(rest)), "params")
            else:  # a text-to-music model
                add(node, ("model", p["source"]), "model")
        elif a.kind == "effect-cue":
            add(node, ("effect", p.get("effect")), "effect")
    return out


def likeness_by_beat(doc: dict[str, Any] | None) -> dict[str, list[str]]:
    """Beat id -> the likenesses it casts (``<project>/<character id>`` of each character
    with ``likeness``), from a recorded brief document."""
    if not doc:
        return {}
    real = {c.get("id") for c in doc.get("characters") or [] if c.get("likeness")}
    return {b.get("id"): [f"{doc.get('project')}/{c}" for c in b.get("characters") or [] if c in real]
            for b in doc.get("beats") or [] if any(c in real for c in b.get("characters") or [])}


def record_run_edges(engine: Engine, run_id: str, settings: Any = None) -> int:
    """Write the lineage edges of ``run_id`` (replacing any it had: re-recording is safe),
    and put the licences its components carry in the rights ledger (studio.rights).
    Returns how many edges were written. A conform whose source run has no edges yet (made
    before lineage was recorded) records the source's first."""
    from studio import rights

    with Session(engine) as s:
        run = s.get(db.Run, run_id)
        source = _source_run(s, run) if run is not None else None
        if source is not None and source.id != run_id and s.connection().execute(
                sa.select(EDGE.c.id).where(EDGE.c.run_id == source.id).limit(1)).first() is None:
            record_run_edges(engine, source.id, settings)
        edges = run_edges(s, run_id, licences=False)
        records = rights.node_records(s, edges, settings)
        edges |= rights.licence_edges(records)
    rights.record_licences(engine, records.values())
    stamp = db.now()
    with engine.begin() as conn:
        conn.execute(EDGE.delete().where(EDGE.c.run_id == run_id))
        if edges:
            conn.execute(EDGE.insert(), [
                {"run_id": run_id, "src_kind": a, "src_id": b, "dst_kind": c, "dst_id": d, "role": r,
                 "created_at": stamp} for a, b, c, d, r in sorted(edges)])
    return len(edges)


def record_missing(engine: Engine) -> list[str]:
    """Record the edges of succeeded runs that have none (runs made before lineage was
    recorded), oldest first so a conform finds its source's edges. Returns their ids."""
    with Session(engine) as s:
        have = sa.select(EDGE.c.run_id).distinct()
        ids = list(s.exec(select(db.Run.id).where(db.Run.status == "succeeded",
                                                  db.Run.id.not_in(have))  # type: ignore[attr-defined]
                          .order_by(db.Run.started_at)).all())  # type: ignore[arg-type]
    for run_id in ids:
        record_run_edges(engine, run_id)
    return ids


# -- queries ---------------------------------------------------------------------------


def _match(nodes: Iterable[Node], kind_col: Any, id_col: Any) -> Any:
    return sa.or_(*(sa.and_(kind_col == k, id_col == i) for k, i in nodes))


def resolve(engine: Engine, thing: str) -> list[Node]:
    """The nodes ``thing`` names: ``kind:id`` explicitly, else any node with that id (a
    candidate id, a model, voice, track or style name, a LUT file name, a seed), else
    any hash node starting with it (a keyframe or media sha256 prefix, at least 6 digits)."""
    thing = thing.strip()
    kind, sep, rest = thing.partition(":")
    if sep and kind in KINDS and rest:
        with engine.connect() as c:
            # A licence id may look like kind:id too (model:sdxl-base, font:<sha256[:12]>):
            # the licence it names is meant as well.
            named = c.execute(sa.select(EDGE.c.dst_id).where(EDGE.c.dst_kind == "licence",
                                                             EDGE.c.dst_id == thing).limit(1)).first()
        return sorted({(kind, rest)} | ({("licence", thing)} if named else set()))
    with engine.connect() as c:
        found = set(c.execute(sa.select(EDGE.c.dst_kind, EDGE.c.dst_id)
                              .where(EDGE.c.dst_kind.in_(KINDS), EDGE.c.dst_id == thing)).all())
        found |= set(c.execute(sa.select(EDGE.c.src_kind, EDGE.c.src_id)
                               .where(EDGE.c.src_kind.in_(ROW_KINDS), EDGE.c.src_id == thing)).all())
        low = thing.lower()
        if not found and len(low) >= MIN_PREFIX and _HEX.match(low):
            # A range, not LIKE: it uses the (dst_kind, dst_id) index on both databases.
            found = set(c.execute(sa.select(EDGE.c.dst_kind, EDGE.c.dst_id).where(
                EDGE.c.dst_kind.in_(HASH_KINDS), EDGE.c.dst_id >= low, EDGE.c.dst_id < low + "g")).all())
            if len({i for _, i in found}) > 1:
                shown = ", ".join(sorted(f"{k}:{i[:16]}" for k, i in found)[:5])
                raise StudioError(f"{thing!r} is the start of {len({i for _, i in found})} different "
                                  f"hashes ({shown})", fix="give more of the sha256", field="THING")
    return sorted((str(k), str(i)) for k, i in found)


def _deliverable_dict(d: db.Deliverable) -> dict[str, Any]:
    return {"id": d.id, "run_id": d.run_id, "spec": d.spec, "kind": d.kind, "path": d.path,
            "sha256": d.sha256, "created_at": d.created_at.isoformat(timespec="seconds")}


def block_dict(b: db.DeliverableBlock) -> dict[str, Any]:
    return {"deliverable_id": b.deliverable_id, "licence_id": b.licence_id, "reason": b.reason,
            "detail": b.detail, "created_at": b.created_at.isoformat(timespec="seconds")}


def blocks_of(s: Session, ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The blocks on each of the deliverables ``ids`` (studio.rights), oldest first."""
    B = db.DeliverableBlock
    out: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    if out:
        for b in s.exec(select(B).where(B.deliverable_id.in_(list(out)))  # type: ignore[attr-defined]
                        .order_by(B.created_at, B.id)).all():  # type: ignore[arg-type]
            out[b.deliverable_id].append(block_dict(b))
    return out


def where(engine: Engine, thing: str) -> dict[str, Any]:
    """Every deliverable containing ``thing``: one recursive walk up the edges from the
    nodes it names. An unknown thing is an error; a known one nothing used lists none."""
    nodes = resolve(engine, thing)
    if not nodes:
        raise StudioError(f"nothing recorded is called {thing!r}",
                          fix="give a candidate id, a keyframe or media sha256 (or its first 6+ "
                              "digits), a model, voice, music track or style pack name, a LUT file "
                              "name or sha256, a licence id (`studio rights DELIVERABLE` lists "
                              "them), or kind:id (e.g. seed:42)", field="THING")
    anchor = sa.select(EDGE.c.src_kind.label("kind"), EDGE.c.src_id.label("id")) \
        .where(_match(nodes, EDGE.c.dst_kind, EDGE.c.dst_id))
    up = anchor.cte("up", recursive=True)
    up = up.union(sa.select(EDGE.c.src_kind, EDGE.c.src_id)
                  .join(up, sa.and_(EDGE.c.dst_kind == up.c.kind, EDGE.c.dst_id == up.c.id)))
    ids = sa.select(up.c.id).where(up.c.kind == "deliverable")
    direct = [i for k, i in nodes if k == "deliverable"]
    D = db.Deliverable
    with Session(engine) as s:
        rows = s.exec(select(D).where(sa.or_(D.id.in_(ids), D.id.in_(direct)))  # type: ignore[attr-defined]
                      .order_by(D.created_at, D.id)).all()  # type: ignore[arg-type]
        blocked = blocks_of(s, [d.id for d in rows])
        # Each with its blocks: a deliverable a revoked or expired licence reaches is blocked.
        found = [{**_deliverable_dict(d), "blocked": bool(blocked[d.id]), "blocks": blocked[d.id]}
                 for d in rows]
    return {"thing": thing, "nodes": [{"kind": k, "id": i} for k, i in nodes], "deliverables": found}


def find_deliverable(engine: Engine, ref: str) -> tuple[db.Deliverable, int]:
    """A deliverable by id, by its file's sha256 (or a 6+ digit prefix) or by its path.
    Identical files (a re-render of the same brief) name the newest; the count says how
    many matched."""
    D = db.Deliverable
    with Session(engine) as s:
        rows = list(s.exec(select(D).where(D.id == ref)).all())
        low = ref.strip().lower()
        if not rows and len(low) >= MIN_PREFIX and _HEX.match(low):
            rows = list(s.exec(select(D).where(D.sha256 >= low, D.sha256 < low + "g")).all())
            if len({d.sha256 for d in rows}) > 1:
                raise StudioError(f"{ref!r} is the start of {len({d.sha256 for d in rows})} different "
                                  "deliverables' sha256", fix="give more of the sha256",
                                  field="DELIVERABLE")
        if not rows:
            p = Path(ref).expanduser()
            rows = list(s.exec(select(D).where(D.path.in_({ref, str(p.resolve())}))).all())  # type: ignore[attr-defined]
            if not rows and p.is_file():
                from studio.store import sha256_file

                rows = list(s.exec(select(D).where(D.sha256 == sha256_file(p))).all())
        if not rows:
            raise StudioError(f"no deliverable is {ref!r}",
                              fix="give a deliverable id (`studio show RUN`), its file's sha256 or "
                                  "its path", field="DELIVERABLE")
        rows.sort(key=lambda d: (d.created_at, d.id))
        return rows[-1], len(rows)


def _labels(s: Session, nodes: set[Node]) -> dict[Node, str]:
    """A readable line for each node: what the row says, or the value itself."""
    ids: dict[str, set[str]] = {}
    for k, i in nodes:
        ids.setdefault(k, set()).add(i)
    out: dict[Node, str] = {n: n[1] for n in nodes}
    for d in s.exec(select(db.Deliverable).where(db.Deliverable.id.in_(ids.get("deliverable", ())))).all():  # type: ignore[attr-defined]
        out[("deliverable", d.id)] = f"{d.id} {d.spec} ({d.kind}) {d.path} sha256 {d.sha256[:12]}"
    for t in s.exec(select(db.Timeline).where(db.Timeline.id.in_(ids.get("timeline", ())))).all():  # type: ignore[attr-defined]
        parent = f", made from {t.parent_id}" if t.parent_id else ""
        out[("timeline", t.id)] = f"{t.id} {t.kind} v{t.version} {t.name} (run {t.run_id}{parent})"
    for r, beat in s.exec(select(db.Render, db.Shot.beat_id).join(db.Shot, db.Render.shot_id == db.Shot.id)  # type: ignore[arg-type]
                          .where(db.Render.id.in_(ids.get("render", ())))).all():  # type: ignore[attr-defined]
        out[("render", r.id)] = f"{r.id} clip master, beat {beat}"
    for c, beat in s.exec(select(db.Candidate, db.Shot.beat_id).join(db.Shot, db.Candidate.shot_id == db.Shot.id)  # type: ignore[arg-type]
                          .where(db.Candidate.id.in_(ids.get("candidate", ())))).all():  # type: ignore[attr-defined]
        out[("candidate", c.id)] = f"{c.id} beat {beat}, candidate {c.index}, {c.width}x{c.height}"
    for p in s.exec(select(db.PromptRecordRow).where(db.PromptRecordRow.hash.in_(ids.get("prompt", ())))).all():  # type: ignore[attr-defined]
        out[("prompt", p.hash)] = f"{p.hash} (beat {p.beat_id})"
    for a in s.exec(select(db.AudioAsset).where(db.AudioAsset.id.in_(ids.get("audio", ())))).all():  # type: ignore[attr-defined]
        out[("audio", a.id)] = f"{a.id} {a.kind} {a.name}"
    for lic in s.exec(select(db.Licence).where(db.Licence.licence_id.in_(ids.get("licence", ())))).all():  # type: ignore[attr-defined]
        rec = lic.record or {}
        state = f", REVOKED by {lic.revoked_by}" if lic.revoked_at is not None else ""
        out[("licence", lic.licence_id)] = f"{lic.licence_id} ({rec.get('licence')}; {rec.get('licensor')}{state})"
    for k, i in nodes:
        if k == "mix":
            run_id, _, locale = i.partition(".")
            out[(k, i)] = f"the mix of run {run_id}" + (f" ({locale})" if locale else "")
    return out


def lineage(engine: Engine, ref: str) -> dict[str, Any]:
    """The tree below a deliverable, down to seeds and weights: one recursive walk down
    the edges. Nodes reached twice are expanded once (``"seen": true`` after)."""
    d, matched = find_deliverable(engine, ref)
    root: Node = ("deliverable", d.id)
    anchor = sa.select(EDGE.c.src_kind, EDGE.c.src_id, EDGE.c.dst_kind, EDGE.c.dst_id, EDGE.c.role) \
        .where(EDGE.c.src_kind == root[0], EDGE.c.src_id == root[1])
    down = anchor.cte("down", recursive=True)
    down = down.union(sa.select(EDGE.c.src_kind, EDGE.c.src_id, EDGE.c.dst_kind, EDGE.c.dst_id, EDGE.c.role)
                      .join(down, sa.and_(EDGE.c.src_kind == down.c.dst_kind,
                                          EDGE.c.src_id == down.c.dst_id)))
    with Session(engine) as s:
        edges = s.connection().execute(sa.select(down)).all()
        children: dict[Node, list[tuple[str, Node]]] = {}
        for sk, si, dk, di, role in edges:
            children.setdefault((sk, si), []).append((role, (dk, di)))
        nodes = {root} | {(dk, di) for _, _, dk, di, _ in edges}
        labels = _labels(s, nodes)
        conform = s.connection().execute(sa.select(EDGE.c.dst_id).where(
            EDGE.c.src_kind == "run", EDGE.c.src_id == d.run_id, EDGE.c.role == "conform-of")).scalar()
    order = {r: n for n, r in enumerate(("timeline", "shot", "selected", "frame", "prompt", "seed",
                                         "model", "weights", "backend", "keyframe", "audio", "mix",
                                         "stem", "line", "voice", "text", "bed", "track", "composer",
                                         "params", "cue", "effect", "file", "spec", "style", "lut",
                                         "font", "logo", "licence"))}
    seen: set[Node] = set()

    def tree(node: Node, role: str) -> dict[str, Any]:
        kids = sorted(children.get(node, []), key=lambda rn: (order.get(rn[0], 99), labels[rn[1]]))
        item: dict[str, Any] = {"kind": node[0], "id": node[1], "role": role, "label": labels[node]}
        if kids and node in seen:
            item["seen"] = True
            return item
        seen.add(node)
        item["children"] = [tree(n, r) for r, n in kids]
        return item

    return {"deliverable": _deliverable_dict(d), "matched": matched, "conform_of": conform,
            "edges": len(edges), "tree": tree(root, "deliverable")}


def format_tree(item: dict[str, Any], indent: str = "") -> list[str]:
    """The lineage tree as indented lines: ``role: kind label`` (the kind left out where
    the role says it: ``seed: 42``, ``timeline: tl_...``)."""
    kind = "" if item["kind"] == item["role"] else f"{item['kind']} "
    line = f"{indent}{item['role']}: {kind}{item['label']}"
    if item.get("seen"):
        line += "  (as above)"
    lines = [line]
    for child in item.get("children", []):
        lines += format_tree(child, indent + "  ")
    return lines
