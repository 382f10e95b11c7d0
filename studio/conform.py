"""``studio conform RUN EDITED_TIMELINE``: an editor's timeline re-rendered as a new run.

The mapping of the edit back to the run's shot renders is the timelines package's
(``timelines.roundtrip``); re-running the stages after it (mix, captions, conform,
manifest) is runner work, so it lives here, above the stage packages.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlmodel import Session

from studio import db, lineage
from studio.brief import Brief, edit_rate
from studio.context import RunContext
from studio.inspect import describe_run
from studio.pipeline import prepare_out, publish, run_stages
from studio.specs import Catalog
from studio.store import Store
from timelines.assemble import write_timeline
from timelines.roundtrip import is_stills_edit, map_edit, map_stills


def conform_record(source_run: str, edited: Path, tl: Any, changes: dict[str, Any]) -> dict[str, Any]:
    """What the conform's manifest says of its origin: the source run, the editor's file,
    what changed, and each clip of the edited timeline as a beat (its shot's selected
    candidate and keyframe from the source run), so the manifest traces to seeds too."""
    beats = []
    for clip in tl.video_tracks()[0].find_clips():
        meta = dict(clip.metadata.get("studio", {}))
        ref = getattr(clip.media_reference, "metadata", {}).get("studio", {})
        sr = clip.source_range or clip.available_range()
        beats.append({
            "id": meta.get("beat_id", clip.name), "frames": int(round(sr.duration.value)),
            "candidates": [], "selected": meta.get("candidate_id"), "seed": meta.get("seed"),
            "selected_keyframe_sha256": meta.get("keyframe_sha256"),
            "prompt_hash": meta.get("prompt_hash"), "clip_sha256": ref.get("sha256"),
            "from_run": source_run,
        })
    keep = ("order_before", "order_after", "dropped", "not_conformed", "graphics")
    return {"run_id": source_run, "edited": str(edited.resolve()),
            "changes": {k: changes[k] for k in keep if k in changes}, "beats": beats}


def conform_edit(run_id: str, edited: Path, out_dir: Path, *, settings: Any, reporter: Any) -> Any:
    """Re-render ``run_id``'s video deliverables from an editor's timeline into ``out_dir``."""
    engine = db.make_engine(settings.db_url)
    db.init_db(engine)
    old = describe_run(engine, run_id)["run"]
    stills = is_stills_edit(engine, old["id"], edited)
    edited_tl, changes = map_stills(engine, old["id"], edited) if stills else map_edit(engine, old["id"], edited)
    with Session(engine) as s:
        run = s.get(db.Run, old["id"])
        bv = s.get(db.BriefVersion, run.brief_version_id)  # type: ignore[union-attr]
        brief = Brief.model_validate(bv.document)  # type: ignore[union-attr]
        bv_id = bv.id  # type: ignore[union-attr]
        brief_path = Path(bv.source_path)  # type: ignore[union-attr]
    catalog = Catalog(settings.specs_dir, settings.styles_dir)
    kind = "stills" if stills else "edit"
    specs = [catalog.spec(n) for n in brief.channels if catalog.spec(n).kind == ("still" if stills else "video")]
    work = prepare_out(out_dir)
    new_id = db.new_id("run")
    try:
        with Session(engine) as s:
            s.add(db.Run(id=new_id, brief_version_id=bv_id, out_dir=str(out_dir.resolve()),
                         settings={"conform_of": old["id"], "edited": str(edited.resolve()), **changes}))
            s.commit()
            version = db.run_number(s, s.get(db.BriefVersion, bv_id))  # type: ignore[arg-type]
        # The editor's timeline is the first locale's edit (the one recorded as "edit").
        locales = brief.all_locales
        ctx = RunContext(
            locale=locales[0] if len(locales) > 1 else None,
            run_id=new_id, brief=brief.localized(locales[0]), brief_path=brief_path, brief_dir=brief_path.parent,
            brief_version_id=bv_id, version=version, specs=specs, style=catalog.style(brief.style_pack),
            catalog=catalog, settings=settings, store=Store(settings.store_root), engine=engine,
            reporter=reporter, out_dir=out_dir.resolve(), work_dir=work, edit_rate=edit_rate(brief, specs),
            master_size=(0, 0),
        )
        with Session(engine) as s:  # the new edit is a version of the old one
            parent = s.get(db.Timeline, edited_tl.metadata["studio"]["parent_timeline"])
            parent_id, parent_version = parent.id, parent.version  # type: ignore[union-attr]
        ctx.timelines[kind] = write_timeline(ctx.env(), edited_tl, kind, brief=brief, specs=specs,
                                             rate=ctx.edit_rate, parent_id=parent_id, version=parent_version + 1)
        ctx.conform_of = conform_record(old["id"], edited, edited_tl, changes)
        # The edit is keyed by the editor's file itself (its content, and the run it edits):
        # the mix and the conform below are the pipeline's own stages, cached alike.
        from studio.cache import key_of
        from studio.store import sha256_file

        edit_doc = {"edited": sha256_file(edited), "of": old["id"], "kind": kind}
        ctx.edit_key = key_of("timeline", "edited", edit_doc)
        ctx.sound_key = ctx.edit_key  # an editor may move the sound too: keyed by the whole file
        ctx.recipes["timeline"] = {"edit": {"key": ctx.edit_key, "doc": edit_doc}}
        for item in changes.get("not_conformed", []):
            at = f" at {item['at']}" if item.get("at") else ""
            reporter.warn(f"{edited}: {item['kind']} {item['name']!r}{at}: {item['what']}")
        run_stages(ctx, ["mix", "captions", "conform", "release", "manifest"])
        publish(work, out_dir)
        # Its edges point at the source run's renders and sound (settings["conform_of"]),
        # so a conformed deliverable traces back to the same seeds.
        lineage.record_run_edges(engine, new_id, settings)
        db.finish_run(engine, new_id)
        return ctx, changes
    except BaseException as e:
        shutil.rmtree(work, ignore_errors=True)
        db.finish_run(engine, new_id, e)
        raise
    finally:
        engine.dispose()
