"""The pipeline, in order. Read this first.

    brief ─► prompts ─► voice ─► music ─► candidates ─► select ─► review ─► clips
          ─► timeline ─► mix ─► captions ─► conform ─► manifest

Sound comes early: the voice lines and the bed depend only on the brief and the beat
timing, and the review's animatic needs them before any clip is rendered.

Each stage declares what it reads and writes on the run context, the resources it uses
and a code version (recorded with the run, so a changed stage shows in the records).
Media moves between stages as store references, never as frames.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audio import mix, soundtrack, voiceover
from shots import clips, contact, generate, select
from studio import __version__, actors, db, lineage, manifest, prompts
from studio.brief import Brief, brief_problems, edit_rate, has_sound, load_brief
from studio.context import RunContext
from studio.errors import ManyErrors, StudioError
from studio.models import ModelRegistry
from studio.progress import QuietReporter, Reporter
from studio.settings import Settings, get_settings
from studio.specs import Catalog, ChannelSpec
from studio.store import Store
from timelines import assemble, captions, deliver, grade


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[RunContext], Any]  # a cached stage returns {"reused": N, "made": M}
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    code_version: str
    resources: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def total(self, ctx: RunContext) -> int:
        # Stills alone make shots of only the beats they use (prompts.planned_beats).
        beats = len(prompts.planned_beats(ctx.brief, ctx.specs))
        per = {
            "prompts": beats,
            "voice": sum(1 for b in ctx.brief.beats if b.narration.strip()) if ctx.voice and ctx.video_specs else 0,
            "music": 2 if ctx.video_specs else 0,
            "mix": len(ctx.video_specs),
            "captions": len(ctx.video_specs) if ctx.brief.captions and ctx.voice_lines else 0,
            "candidates": beats * ctx.brief.candidates,
            "select": beats,
            "review": 1,
            "clips": beats if ctx.video_specs else 0,
            "timeline": int(bool(ctx.video_specs)) + int(bool(ctx.still_specs)),
            "conform": len(ctx.specs),
            "manifest": 1,
        }
        return per.get(self.name, 1)


STAGES: list[Stage] = [
    Stage("prompts", prompts.plan_shots, ("brief", "style", "specs"), ("shots",), prompts.CODE_VERSION,
          description="beat + style pack + channels -> prompt record, seeds, timing"),
    Stage("voice", voiceover.voice_over, ("shots",), ("voice_lines", "stems"), voiceover.CODE_VERSION,
          {"ray": "a GPU voice runs on an actor; Piper in process"},
          "narration -> a voice line per beat, fitted to its beat; the voice stem"),
    Stage("music", soundtrack.music_stage, ("shots",), ("sound", "stems"), soundtrack.CODE_VERSION,
          description="one music bed for the spot; effects cued on the cuts; a premix for the animatic"),
    Stage("candidates", generate.generate_candidates, ("shots",), ("candidates",), generate.CODE_VERSION,
          {"ray": "KeyframeWorker actor pool, one backend per actor"},
          "N keyframes per beat on Ray actors, written to the store and scored there"),
    Stage("select", select.select_candidates, ("candidates",), ("selected",), select.CODE_VERSION,
          description="top score moves on; a 'selected' pointer with the reason"),
    Stage("review", contact.review, ("candidates", "selected", "sound"), ("review",), contact.CODE_VERSION,
          description="contact sheet of every candidate per beat; safe-area preview per channel"),
    Stage("clips", clips.render_clips, ("selected",), ("clips",), clips.CODE_VERSION,
          {"ray": "one task per shot, 1 CPU"}, "keyframe + camera move -> shot master with handles"),
    Stage("timeline", assemble.assemble_timelines, ("clips", "selected"), ("timelines",),
          assemble.CODE_VERSION, description="OpenTimelineIO edit (and stills) written as .otio"),
    Stage("mix", mix.mix_stage, ("stems",), ("masters",), mix.CODE_VERSION,
          {"ffmpeg": "one mix graph; two-pass master per channel"},
          "stems -> ducked mix -> a master per channel at its loudness, measured"),
    Stage("captions", captions.captions_stage, ("voice_lines",), ("captions",), captions.CODE_VERSION,
          description="SRT and WebVTT per video deliverable from the voice timing; burn-in overlays"),
    Stage("conform", deliver.conform_deliverables, ("timelines",), ("deliverables",), deliver.CODE_VERSION,
          {"ffmpeg": "one filter graph per deliverable"}, "reframe, scale, fps, finish, encode per spec"),
    Stage("manifest", manifest.write_manifest, ("deliverables", "timelines", "candidates"), ("manifest",),
          manifest.CODE_VERSION, description="manifest.json at the root of the output folder"),
]


def code_versions() -> dict[str, str]:
    return {"studio": __version__, **{s.name: s.code_version for s in STAGES}}


MIN_MASTER_SIDE = 256  # px: keyframes smaller than this score and review poorly


def master_size(specs: list[Any]) -> tuple[int, int]:
    """The keyframe (and shot master) size the brief's channels need: every channel's
    crop at its native resolution or better, and no bigger.

    A channel sees the largest box of its (active picture's) aspect in the master, placed
    around the focus (``studio.framing.crop_box``). A master as wide as the widest
    channel and as tall as the tallest holds every channel's box at native size: a 9:16-only brief gets a
    9:16 master, 16:9 with 9:16 a square, 16:9 with banners stays 16:9. Video channels
    also need the camera move's margin: a move's tightest frame shows
    1/``camera.MOVE_MARGIN`` of the keyframe, upscaled to the master, so their sides grow
    by that much (stills are cut from the keyframe itself). Sides are rounded up to a
    multiple of 16 (macroblocks; diffusion latents) and kept at least MIN_MASTER_SIDE."""
    from shots.camera import MOVE_MARGIN

    w = h = 0.0
    for s in specs:
        margin = MOVE_MARGIN if s.kind == "video" else 1.0
        aw, ah = s.active_size  # a letterboxed channel shows only its active picture
        w, h = max(w, aw * margin), max(h, ah * margin)

    def side(v: float) -> int:
        # round() first: 1920 * 1.1 is 2112.0000000000005, which must not become 2128
        return max(MIN_MASTER_SIDE, math.ceil(round(v, 6) / 16) * 16)

    return side(w), side(h)


def check_brief(brief: Brief, catalog: Catalog, base_dir: Path, source: str | None = None,
                registry: Any = None, voices: Any = None, settings: Any = None) -> list[ChannelSpec]:
    """The core's brief checks (``studio.brief.brief_problems``) and the stages' plan
    checks, all found in one pass and raised as one ManyErrors. Returns the channel specs.

    The stages' checks: the voice and the music/effects plans (when ``voices`` is given,
    and only if the brief has sound: a stills-only brief's narration is never spoken),
    and the style's LUT (for video channels: an unreadable LUT would otherwise fail at
    conform, after the models ran)."""
    specs, errors = brief_problems(brief, catalog, base_dir, source, registry, settings)
    if voices is not None and has_sound(brief, specs):
        errors += voiceover.check_voice_plan(brief, voices, source)
        errors += soundtrack.check_music_plan(brief, base_dir, settings, registry, source)
    try:
        style = catalog.style(brief.style_pack)
    except StudioError:
        pass  # brief_problems reported it
    else:
        lut = catalog.lut_path(style)
        if lut is not None and any(s.kind == "video" for s in specs):
            try:
                grade.check_lut(lut, field="finishing.lut")
            except StudioError as e:
                e.source = str(catalog.style_paths[style.name])  # the file to fix
                errors.append(e)
    if errors:
        raise ManyErrors(errors)
    return specs


def check_out(out_dir: Path) -> None:
    """Everything that would stop ``out_dir`` being created or replaced at the end of a
    run, found before the run starts (a full render must not end in a PermissionError)."""
    import os
    import stat

    out_dir = out_dir.expanduser()
    src = str(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise StudioError("exists and is not a folder", fix="choose another --out", field="--out", source=src)
    if out_dir.is_dir():
        try:
            entries = list(out_dir.iterdir())
        except OSError as e:
            raise StudioError(f"cannot be read ({e.strerror})", fix="choose a folder you can write to",
                              field="--out", source=src) from None
        if entries and not (out_dir / "manifest.json").exists():
            raise StudioError("is not empty and holds no Studio output", fix="choose an empty or new folder",
                              field="--out", source=src)
        if os.path.ismount(out_dir):
            raise StudioError("is a mount point, which cannot be replaced by a finished run",
                              fix="choose a folder inside it", field="--out", source=src)
    # The nearest folder that exists is where the work folder and the output are made.
    parent = out_dir.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise StudioError(f"cannot write here: {parent} is a file, not a folder",
                          fix="choose a folder you can write to", field="--out", source=src)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StudioError(f"cannot write here: {parent} is not writable",
                          fix="choose a folder you can write to", field="--out", source=src)
    if out_dir.is_dir() and os.geteuid() != 0:
        # In a sticky folder (like /tmp) only a folder's owner may rename it away.
        pst, ost = parent.stat(), out_dir.stat()
        if pst.st_mode & stat.S_ISVTX and os.geteuid() not in (pst.st_uid, ost.st_uid):
            raise StudioError(
                f"cannot be replaced: it belongs to another user (uid {ost.st_uid}) in the sticky "
                f"folder {parent}", fix="choose another --out, or remove the old output as its owner",
                field="--out", source=src)


def _prepare_out(out_dir: Path) -> Path:
    """Check the output folder up front and make the sibling work folder. Nothing lands
    in ``out_dir`` until the run is complete."""
    out_dir = out_dir.expanduser()
    check_out(out_dir)
    parent = out_dir.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=parent))
    except OSError as e:
        raise StudioError(f"cannot write here ({e.strerror})", fix="choose a folder you can write to",
                          field="--out", source=str(out_dir)) from None
    return work


class PublishError(StudioError):
    """The run finished but its folder could not be moved into place: the work is kept."""


def _published_modes(work: Path) -> None:
    """The finished folder gets the modes any other output would: mkdtemp made it 0700
    and mkstemp-written files are 0600, so folders become 0777 and files 0666, less the
    umask (0755 and 0644 under the usual 022)."""
    import os

    mask = os.umask(0)
    os.umask(mask)
    for path in [work, *work.rglob("*")]:
        if path.is_symlink():
            continue
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def _publish(work: Path, out_dir: Path) -> None:
    """Swap the finished work folder into place; an older Studio output is replaced.
    The stage scratch goes first: it is never part of the output."""
    from studio.context import SCRATCH

    shutil.rmtree(work / SCRATCH, ignore_errors=True)
    _published_modes(work)
    out_dir = out_dir.resolve()
    old = None
    try:
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{work.name[-8:]}")
            out_dir.rename(old)
        work.rename(out_dir)
    except OSError as e:
        if old is not None and old.exists() and not out_dir.exists():
            old.rename(out_dir)  # put the previous output back as it was
        raise PublishError(
            f"the run finished but could not be moved into place ({e.strerror}); the finished "
            f"output is kept in {work}", fix="move that folder where you want it, or fix the "
            "permissions and render again", field="--out", source=str(out_dir)) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _clean_after_killed_runs(engine: Any, out_dir: Path, keep: Path, store: Store) -> None:
    """What renders killed outright (SIGKILL, OOM, power) left, cleaned by the next one:
    their runs, still "running", are marked interrupted; their work folders beside
    ``out_dir`` (``.<out>.partial-*``) go when their run was interrupted or cancelled (a
    failed run's folder is gone already, or kept on purpose: PublishError), or, recorded
    by no run of this database, once idle ``store.STALE_AFTER``; and the store's temp
    files that no live process holds go (``Store.clean_stale``)."""
    import time

    from studio.store import STALE_AFTER, newest_mtime

    db.mark_interrupted(engine)
    parent = out_dir.expanduser().resolve().parent
    owners = db.run_work_folders(engine)
    for folder in parent.glob(f".{out_dir.name}.partial-*"):
        if folder == keep or not folder.is_dir():
            continue
        status = owners.get(str(folder))
        try:
            stale = (status in ("interrupted", "cancelled") if status is not None
                     else time.time() - newest_mtime(folder) >= STALE_AFTER)
        except OSError:
            continue  # removed meanwhile
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
    store.clean_stale()


def _keeping_sigterm(start: Callable[[Any], Any], settings: Settings) -> None:
    """Start Ray without losing the process's SIGTERM handler: ``ray.init`` replaces it with
    a plain ``sys.exit``, which would record a stopped render as failed and skip the
    cleanup a cancel does. A handler the caller set (the CLI's, which cancels like
    Ctrl-C) is put back; without one, Ray's stays."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        start(settings)
        return
    before = signal.getsignal(signal.SIGTERM)
    start(settings)
    if callable(before):
        signal.signal(signal.SIGTERM, before)


def render(
    brief_path: str | Path,
    out_dir: str | Path,
    *,
    settings: Settings | None = None,
    reporter: Reporter | None = None,
    candidates: int | None = None,
    backend: str = "procedural",
    backend_options: dict[str, Any] | None = None,
) -> RunContext:
    settings = settings or get_settings()
    reporter = reporter or QuietReporter()
    brief_path = Path(brief_path)
    out_dir = Path(out_dir)

    # Everything that can be wrong with the input is found before any work starts.
    brief, brief_dir = load_brief(brief_path)
    if candidates is not None:
        brief = brief.model_copy(update={"candidates": candidates})
    catalog = Catalog(settings.specs_dir, settings.styles_dir)
    registry = ModelRegistry(settings.models_dir)
    from audio.voiceover import choose_voice
    from audio.voices import VoiceRegistry

    voices = VoiceRegistry(settings.voices_dir)
    # One pass over everything the user can fix: the brief and the output folder.
    problems: list[StudioError] = []
    try:
        check_out(out_dir)
    except StudioError as e:
        problems.append(e)
    try:
        specs = check_brief(brief, catalog, brief_dir, source=str(brief_path), registry=registry,
                            voices=voices, settings=settings)
    except ManyErrors as e:
        problems += e.errors
    if problems:
        raise ManyErrors(problems)
    voice = choose_voice(brief, voices) if any(s.kind == "video" for s in specs) else None
    style = catalog.style(brief.style_pack)
    keyframe_model = registry.get(brief.keyframe_model) if brief.keyframe_model else None
    clip_model = registry.get(brief.clip_model) if brief.clip_model else None
    if keyframe_model is not None:
        backend = keyframe_model.backend
        backend_options = {"model": keyframe_model.dump(), "device": settings.model_device}
    work = _prepare_out(out_dir)

    from studio.ray_runtime import ensure_ray

    settings.home.mkdir(parents=True, exist_ok=True)
    engine = db.make_engine(settings.db_url)
    db.init_db(engine)
    _clean_after_killed_runs(engine, out_dir, work, Store(settings.store_root))
    run_id = db.new_id("run")
    ctx: RunContext | None = None
    # The stages' Ray actors are this run's (studio.actors): named for it, and any still
    # alive when the run ends, however it ends, are killed then.
    run_actors = actors.enter_run(run_id)
    try:
        _keeping_sigterm(ensure_ray, settings)
        from sqlmodel import Session

        with Session(engine) as s:
            project = db.get_or_create_project(s, brief.project)
            bv = db.record_brief(s, project, brief.campaign, brief.content_hash(),
                                 brief.model_dump(mode="json", by_alias=True), brief.schema_,
                                 str(brief_path.resolve()))
            s.add(db.Run(id=run_id, brief_version_id=bv.id, out_dir=str(out_dir.resolve()),  # type: ignore[arg-type]
                         code_version=__version__,
                         settings={"backend": backend, "code_versions": code_versions(),
                                   "x264_preset": settings.x264_preset,
                                   # who runs it (a killed run is found out) and where it works
                                   **db.process_record(), "work": str(work)}))
            s.commit()
            bv_id = bv.id
            version = db.run_number(s, bv)
        ctx = RunContext(
            run_id=run_id, brief=brief, brief_path=brief_path, brief_dir=brief_dir,
            brief_version_id=bv_id, version=version, specs=specs, style=style,  # type: ignore[arg-type]
            catalog=catalog, settings=settings, store=Store(settings.store_root), engine=engine,
            reporter=reporter, out_dir=out_dir.resolve(), work_dir=work,
            edit_rate=edit_rate(brief, specs),
            master_size=(keyframe_model.width, keyframe_model.height) if keyframe_model else master_size(specs),
            backend=backend, backend_options=backend_options or {},
            keyframe_model=keyframe_model, clip_model=clip_model, voice=voice,
        )
        reporter.event("run_start", run_id=run_id, brief=str(brief_path), out=str(out_dir))
        for stage in STAGES:
            total = stage.total(ctx)
            if total == 0:
                continue
            reporter.stage_start(stage.name, total)
            counts = stage.run(ctx)
            reporter.stage_done(stage.name, **(counts if isinstance(counts, dict) else {}))
        # Edges before publishing: a run whose records could not be completed publishes nothing.
        lineage.record_run_edges(engine, run_id)  # what each deliverable was made from
        _publish(work, out_dir)
        db.finish_run(engine, run_id)
        reporter.event("run_done", run_id=run_id, out=str(out_dir))
        return ctx
    except BaseException as e:
        # Ctrl-C (or a job's SIGINT) cancels: the work folder goes, the pool's actors were
        # killed by their stage, and the record says so. A finished run that could not be
        # moved into place keeps its folder (the error says where).
        if not isinstance(e, PublishError):
            shutil.rmtree(work, ignore_errors=True)
        db.finish_run(engine, run_id, e)
        raise
    finally:
        actors.leave_run(run_actors)
        engine.dispose()
