"""The pipeline, in order. Read this first.

    brief ─► prompts ─► voice ─► music ─► candidates ─► select ─► review ─► clips
          ─► timeline ─► mix ─► captions ─► conform ─► release ─► manifest

Sound comes early: the voice lines and the bed depend only on the brief and the beat
timing, and the review's animatic needs them before any clip is rendered.

Each stage declares what it reads and writes on the run context, the resources it uses
and a code version (recorded with the run, so a changed stage shows in the records).
Media moves between stages as store references, never as frames.

Nothing is published until the release gate passes: every deliverable's technical QC
against its channel spec and the policy over the rights of everything it is made of; the
deliverables that pass are disclosed (XMP) and signed (C2PA) there (studio.release).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audio import mix, soundtrack, voiceover
from shots import clips, contact, generate, select
from studio import __version__, actors, db, lineage, manifest, prompts, release
from studio.brief import Brief, brief_problems, edit_rate, has_sound, load_brief
from studio.cache import record_counts
from studio.context import RunContext
from studio.errors import AwaitingDecision, ManyErrors, StudioError
from studio.models import ModelRegistry
from studio.progress import QuietReporter, Reporter
from studio.settings import Settings, get_settings
from studio.specs import Catalog, ChannelSpec
from studio.store import Store
from timelines import assemble, captions, deliver, grade, graphics


@dataclass(frozen=True)
class Stage:
    """A stage: ``run(env, inputs) -> outputs``, where ``inputs`` is a dataclass of exactly
    what the stage reads of the run and ``outputs`` one of what it adds (its ``counts``
    field, when it has one, is the cached steps it reused and made: reported, not kept).
    The runner builds the inputs from the run's state by their field names, hands the
    stage the run's services (studio.context.StageEnv) and nothing else, and stores the
    outputs' fields. ``inputs``/``outputs`` below are read off those types, so what
    `studio stages` prints is what the runner does."""

    name: str
    run: Callable[..., Any]
    code_version: str
    resources: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def types(self) -> tuple[type, type]:
        hints = typing.get_type_hints(self.run)
        return hints["inputs"], hints["return"]

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self.types()[0]))

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self.types()[1]) if f.name != "counts")

    def __call__(self, ctx: RunContext) -> dict[str, int]:
        """Run on ``ctx``: only the declared inputs in, only the declared outputs back."""
        take, give = self.types()
        inputs = take(**{name: getattr(ctx, name) for name in self.inputs})
        out = self.run(ctx.env(), inputs)
        if not isinstance(out, give):
            raise TypeError(f"stage {self.name} returned {type(out).__name__}, not {give.__name__}")
        for name in self.outputs:
            setattr(ctx, name, getattr(out, name))
        return dict(getattr(out, "counts", None) or {})

    def total(self, ctx: RunContext) -> int:
        # Stills alone make shots of only the beats they use (prompts.planned_beats).
        beats = len(prompts.planned_beats(ctx.brief, ctx.specs))
        per = {
            "prompts": beats,
            "voice": sum(1 for b in ctx.brief.beats if b.narration.strip()) if ctx.voice and ctx.video_specs else 0,
            "music": 2 if ctx.video_specs else 0,
            "mix": len(ctx.video_specs),
            "captions": len(ctx.video_specs) if ctx.brief.captions and ctx.sound.get("placed_lines") else 0,
            "candidates": sum(len(s.candidate_slots()) for s in ctx.shots) or beats * ctx.brief.candidates,
            "select": beats,
            "review": 1,
            "clips": beats if ctx.video_specs else 0,
            "timeline": int(bool(ctx.video_specs)) + int(bool(ctx.still_specs)),
            "conform": len(ctx.specs),
            "release": len(ctx.deliverables),
            "manifest": 1,
        }
        return per.get(self.name, 1)


STAGES: list[Stage] = [
    Stage("prompts", prompts.plan_shots, prompts.CODE_VERSION,
          description="beat + style pack + channels -> prompt record, seeds, timing"),
    Stage("voice", voiceover.voice_over, voiceover.CODE_VERSION, {"ray": "a GPU voice runs on an actor; Piper in process"},
          "narration -> a voice line per beat, fitted to its beat; the voice stem"),
    Stage("music", soundtrack.music_stage, soundtrack.CODE_VERSION,
          description="one music bed for the spot; effects cued on the cuts; a premix for the animatic"),
    Stage("candidates", generate.generate_candidates, generate.CODE_VERSION,
          {"ray": "KeyframeWorker actor pool, one backend per actor"},
          "N keyframes per beat on Ray actors, written to the store and scored there"),
    Stage("select", select.select_candidates, select.CODE_VERSION,
          description="top score moves on, unless a person picked; a 'selected' pointer with the reason"),
    Stage("review", contact.review, contact.CODE_VERSION,
          description="contact sheet of every candidate per beat; safe-area preview per channel"),
    Stage("clips", clips.render_clips, clips.CODE_VERSION, {"ray": "one task per shot, 1 CPU"},
          "keyframe + camera move -> shot master with handles"),
    Stage("timeline", assemble.assemble_timelines, assemble.CODE_VERSION,
          description="OpenTimelineIO edit (and stills) written as .otio"),
    Stage("mix", mix.mix_stage, mix.CODE_VERSION, {"ffmpeg": "one mix graph; two-pass master per channel"},
          "stems -> ducked mix -> a master per channel at its loudness, measured"),
    Stage("captions", captions.captions_stage, captions.CODE_VERSION,
          description="SRT and WebVTT per video deliverable from the voice timing; burn-in overlays"),
    Stage("conform", deliver.conform_deliverables, deliver.CODE_VERSION,
          {"ffmpeg": "one process per cut, segments joined by stream copy"},
          "reframe, scale, fps, finish, encode per spec; one cached deliverable per channel"),
    Stage("release", release.release, release.CODE_VERSION, {"ffmpeg": "one QC decode per deliverable"},
          "QC against the spec, policy over the rights, then XMP + a signed C2PA manifest; the gate"),
    Stage("manifest", manifest.write_manifest, manifest.CODE_VERSION,
          description="manifest.json at the root of the output folder"),
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
    # Supers held their reading time (and the legal line each channel's minimum) in beats
    # as long as the brief makes them; the conform checks again on the edit as cut.
    errors += graphics.supers_problems(brief, specs, source)
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


def prepare_out(out_dir: Path) -> Path:
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


def publish(work: Path, out_dir: Path) -> None:
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


@dataclass
class Prepared:
    """A brief checked and resolved against the catalog and registries: what a render and
    a plan both start from."""

    brief: Brief
    brief_path: Path
    brief_dir: Path
    specs: list[ChannelSpec]
    style: Any
    catalog: Catalog
    voice: Any
    keyframe_model: Any
    clip_model: Any
    backend: str
    backend_options: dict[str, Any]


def prepare(brief_path: Path, settings: Settings, *, candidates: int | None = None, backend: str = "procedural",
            backend_options: dict[str, Any] | None = None, out_dir: Path | None = None) -> Prepared:
    """Everything that can be wrong with the input, found before any work starts: the
    brief, its channels, style, models and voice, and the output folder, in one pass."""
    brief, brief_dir = load_brief(brief_path)
    if candidates is not None:
        brief = brief.model_copy(update={"candidates": candidates})
    catalog = Catalog(settings.specs_dir, settings.styles_dir)
    registry = ModelRegistry(settings.models_dir)
    from audio.voiceover import choose_voice
    from audio.voices import VoiceRegistry

    voices = VoiceRegistry(settings.voices_dir)
    problems: list[StudioError] = []
    if out_dir is not None:
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
    voice = choose_voice(brief.localized(brief.all_locales[0]), voices) if any(s.kind == "video" for s in specs) else None
    keyframe_model = registry.get(brief.keyframe_model) if brief.keyframe_model else None
    clip_model = registry.get(brief.clip_model) if brief.clip_model else None
    if keyframe_model is not None:
        backend = keyframe_model.backend
        backend_options = {"model": keyframe_model.dump(), "device": settings.model_device}
    return Prepared(brief, brief_path, brief_dir, specs, catalog.style(brief.style_pack), catalog, voice,
                    keyframe_model, clip_model, backend, backend_options or {})


def _context(prep: Prepared, settings: Settings, engine: Any, reporter: Reporter, *, run_id: str,
             brief_version_id: int, version: int, out_dir: Path, work_dir: Path) -> RunContext:
    km = prep.keyframe_model
    locales = prep.brief.all_locales
    return RunContext(
        # The stages render the brief's first locale (its narration, voice and copy); the
        # others follow in their own passes (render_locales).
        locale=locales[0] if len(locales) > 1 else None,
        run_id=run_id, brief=prep.brief.localized(locales[0]), brief_path=prep.brief_path, brief_dir=prep.brief_dir,
        brief_version_id=brief_version_id, version=version, specs=prep.specs, style=prep.style,
        catalog=prep.catalog, settings=settings, store=Store(settings.store_root), engine=engine,
        reporter=reporter, out_dir=out_dir, work_dir=work_dir, edit_rate=edit_rate(prep.brief, prep.specs),
        master_size=(km.width, km.height) if km else master_size(prep.specs),
        backend=prep.backend, backend_options=prep.backend_options,
        keyframe_model=km, clip_model=prep.clip_model, voice=prep.voice,
    )


def plan(brief_path: str | Path, *, settings: Settings | None = None, candidates: int | None = None,
         backend: str = "procedural", backend_options: dict[str, Any] | None = None,
         regenerate: bool | set[str] = False, out_dir: str | Path | None = None) -> Any:
    """`studio plan`: what rendering ``brief_path`` would run and why (studio.plan). Starts
    no Ray and no ffmpeg and records nothing (the database is created if it is new)."""
    from studio.plan import make_plan, planning_dir

    settings = settings or get_settings()
    prep = prepare(Path(brief_path), settings, candidates=candidates, backend=backend,
                   backend_options=backend_options)
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = db.make_engine(settings.db_url)
    try:
        db.init_db(engine)
        ctx = _context(prep, settings, engine, QuietReporter(), run_id="plan", brief_version_id=0, version=0,
                       out_dir=Path(out_dir or planning_dir()).resolve(), work_dir=planning_dir())
        result = make_plan(ctx, regenerate)
        if out_dir is not None:
            result.up_to_date = up_to_date(engine, prep, settings, result, Path(out_dir))
        return result
    finally:
        engine.dispose()


def up_to_date(engine: Any, prep: Prepared, settings: Settings, the_plan: Any, out_dir: Path) -> dict[str, Any] | None:
    """The published run ``out_dir`` holds, when it is exactly what this render would make:
    every cached step current with the keys that run recorded, the same brief content,
    stage code and settings, and the folder as its manifest lists it (every file there,
    same size and sha256). None otherwise."""
    import json

    from sqlmodel import Session, select

    from studio.store import sha256_file

    if the_plan.running():
        return None
    out = out_dir.expanduser().resolve()
    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        return None
    with Session(engine) as s:
        run = s.exec(select(db.Run).where(db.Run.out_dir == str(out), db.Run.status == "succeeded")
                     .order_by(db.Run.started_at.desc())).first()  # type: ignore[attr-defined]
        bv = s.get(db.BriefVersion, run.brief_version_id) if run is not None else None
    if run is None or bv is None or bv.sha256 != prep.brief.content_hash():
        return None
    rs = run.settings or {}
    if (rs.get("code_versions") != code_versions() or rs.get("backend") != prep.backend
            or rs.get("x264_preset") != settings.x264_preset):
        return None
    recorded = rs.get("recipes") or {}
    for step in the_plan.steps:
        if (recorded.get(step.stage, {}).get(step.item) or {}).get("key") != step.key:
            return None
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("run_id") != run.id:
            return None
        for f in manifest.get("files", []):
            path = out / f["path"]
            if not path.is_file() or path.stat().st_size != f["size"] or sha256_file(path) != f["sha256"]:
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {"run_id": run.id, "out": str(out), "version": int(manifest.get("version") or 0)}


class Gated(StudioError):
    """Generative steps whose model or voice changed, refused without --regenerate."""


def _gate(the_plan: Any, brief_path: Path) -> None:
    gated = the_plan.gated()
    if not gated:
        return
    what = "; ".join(f"{s.stage} {s.item} ({s.why[0] if s.why else 'changed'})" for s in gated[:6])
    beats = sorted({s.item for s in gated})
    raise Gated(f"{len(gated)} generative step(s) would be made again because their model or voice "
                f"changed: {what}", stage=gated[0].stage, field="--regenerate", source=str(brief_path),
                fix=f"`studio plan {brief_path}` lists them; render with --regenerate to spend the GPU time "
                f"(or --regenerate {','.join(beats)} for those beats only)")


def render(
    brief_path: str | Path,
    out_dir: str | Path,
    *,
    settings: Settings | None = None,
    reporter: Reporter | None = None,
    candidates: int | None = None,
    backend: str = "procedural",
    backend_options: dict[str, Any] | None = None,
    regenerate: bool | set[str] = False,
    force: bool = False,
) -> Any:
    """Render ``brief_path`` into ``out_dir``; returns the run's RunContext, or, when
    ``out_dir`` already holds exactly what this render would make (and not ``force``),
    the plan with ``up_to_date`` set: nothing runs, nothing is recorded. Generative steps
    whose model or voice changed need ``regenerate`` (True, or the beats to remake)."""
    from studio.plan import make_plan, planning_dir

    settings = settings or get_settings()
    reporter = reporter or QuietReporter()
    brief_path = Path(brief_path)
    out_dir = Path(out_dir)
    prep = prepare(brief_path, settings, candidates=candidates, backend=backend,
                   backend_options=backend_options, out_dir=out_dir)
    brief = prep.brief
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = db.make_engine(settings.db_url)
    db.init_db(engine)
    try:
        _clean_after_killed_runs(engine, out_dir, Path("/nonexistent"), Store(settings.store_root))
        # What would run, computed from the records alone (no Ray, no ffmpeg): a render of
        # something already in --out stops here; a changed model or voice needs consent.
        the_plan = make_plan(_context(prep, settings, engine, QuietReporter(), run_id="plan", brief_version_id=0,
                                      version=0, out_dir=out_dir.resolve(), work_dir=planning_dir()), regenerate)
        if not force:
            the_plan.up_to_date = up_to_date(engine, prep, settings, the_plan, out_dir)
            if the_plan.up_to_date:
                reporter.event("up_to_date", **the_plan.up_to_date)
                return the_plan
        _gate(the_plan, brief_path)
    except BaseException:
        engine.dispose()
        raise
    work = prepare_out(out_dir)
    from studio.ray_runtime import ensure_ray

    run_id = db.new_id("run")
    ctx: RunContext | None = None
    # The stages' Ray actors are this run's (studio.actors): named for it, and any still
    # alive when the run ends, however it ends, are killed then.
    run_actors = actors.enter_run(run_id)
    try:
        from sqlmodel import Session

        with Session(engine) as s:
            project = db.get_or_create_project(s, brief.project)
            bv = db.record_brief(s, project, brief.campaign, brief.content_hash(),
                                 brief.model_dump(mode="json", by_alias=True), brief.schema_,
                                 str(brief_path.resolve()))
            s.add(db.Run(id=run_id, brief_version_id=bv.id, out_dir=str(out_dir.resolve()),  # type: ignore[arg-type]
                         code_version=__version__,
                         settings={"backend": prep.backend, "code_versions": code_versions(),
                                   "x264_preset": settings.x264_preset,
                                   # who runs it (a killed run is found out) and where it works
                                   **db.process_record(), "work": str(work)}))
            s.commit()
            bv_id = bv.id
            version = db.run_number(s, bv)
        ctx = _context(prep, settings, engine, reporter, run_id=run_id, brief_version_id=bv_id,  # type: ignore[arg-type]
                       version=version, out_dir=out_dir.resolve(), work_dir=work)
        # Ray starts when a stage first has work for it: a render of cached steps starts none.
        ctx.start_ray = lambda: _keeping_sigterm(ensure_ray, settings)
        reporter.event("run_start", run_id=run_id, brief=str(brief_path), out=str(out_dir))
        # The policy over what it will use, before any of it runs (the release gate's rules).
        release.preflight(ctx.env(), brief, ctx.specs, planned_parts(ctx))
        names = [s.name for s in STAGES]
        upto = names.index("review") + 1
        run_stages(ctx, names[:upto])
        if brief.selection == "human":
            _selection_gate(ctx, brief_path)
        run_stages(ctx, names[upto:-2])
        render_locales(ctx, brief, settings)
        run_stages(ctx, names[-2:])  # the release gate, then the manifest
        # Edges before publishing: a run whose records could not be completed publishes nothing.
        lineage.record_run_edges(engine, run_id, settings)  # what each deliverable was made from
        publish(work, out_dir)
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


def planned_parts(ctx: RunContext) -> list[Any]:
    """The licensed things this render will use, known before it runs: the keyframe and clip
    models, the voice, and the brand's font and logo where copy or a logo bug shows them."""
    from studio.copyfit import brand_inputs, brand_kit
    from studio.rights import BUILTIN_KEYFRAMES
    from studio.rights import planned_parts as parts_of

    models: list[tuple[str, Any]] = []
    if ctx.keyframe_model is not None:
        models.append((ctx.keyframe_model.id, ctx.keyframe_model))
    elif ctx.backend == BUILTIN_KEYFRAMES:
        models.append((BUILTIN_KEYFRAMES, None))
    if ctx.clip_model is not None and ctx.video_specs:
        models.append((ctx.clip_model.id, ctx.clip_model))
    voices = [(ctx.voice.id, ctx.voice.ledger_rights())] if ctx.voice is not None and ctx.video_specs else []
    b = ctx.brief
    kit = brand_kit(ctx.style)
    copy = b.copy_ is not None or b.end_card is not None or any(beat.supers is not None for beat in b.beats)
    logo_bug = kit.logo_bug is not None and bool(ctx.video_specs)
    brand = brand_inputs(kit, ctx.catalog.style_paths.get(ctx.style.name), []) if copy or logo_bug else {}
    return parts_of(models=models, voices=voices, font=brand.get("font") if copy else None,
                    logo=brand.get("logo")) + release.likeness_parts(b)


def selection_gate(ctx: RunContext) -> dict[str, Any]:
    """What the selection gate of this run waits on: per beat its candidates (id, index,
    seed, score, the scorer's reason, keyframe sha256) and whether a person's pick holds
    (the select stage carried a pick over only when this run has a candidate with the
    picked recipe or keyframe, so a pick on a beat that changed since does not count)."""
    beats = []
    for shot in ctx.shots:
        chosen = ctx.selected.get(shot.shot_id)
        picked = chosen is not None and not chosen.reason.startswith(select.AUTO_PREFIX)
        beats.append({
            "beat": shot.beat_id, "shot_id": shot.shot_id,
            "picked": chosen.candidate_id if picked and chosen is not None else None,
            "candidates": [{"id": c.candidate_id, "index": c.index, "seed": c.seed, "score": round(c.score, 4),
                            "reason": c.reason, "sha256": c.image.sha256, "ext": c.image.ext,
                            "prompt_hash": c.record.get("prompt_hash")}
                           for c in ctx.candidates.get(shot.shot_id, [])],
        })
    contact = ctx.review.get("contact")
    sheet = ctx.store.put_file(contact).sha256 if contact is not None and Path(contact).is_file() else None
    return {"gate": "selection", "run_id": ctx.run_id, "beats": beats, "contact_sheet": sheet,
            "waiting_on": [b["beat"] for b in beats if b["picked"] is None]}


def _selection_gate(ctx: RunContext, brief_path: Path) -> None:
    """``selection: human``: stop here (after the candidates and the contact sheet) while a
    beat has no person's pick; the next render goes on with every finished step reused."""
    gate = selection_gate(ctx)
    if not gate["waiting_on"]:
        return
    ctx.reporter.event("gate", **gate)
    waiting = ", ".join(gate["waiting_on"])
    raise AwaitingDecision(
        f"the brief asks for a person's pick (selection: human) and beat(s) {waiting} have none yet",
        gate=gate, stage="select", field="selection", source=str(brief_path),
        fix=f"see the candidates with `studio show {ctx.run_id}`, pick with `studio select {ctx.run_id} "
            f"BEAT CANDIDATE` for each, then render again (on a server: `studio pick JOB BEAT CANDIDATE`)")


LOCALE_STAGES = ["voice", "timeline", "mix", "captions", "conform"]


class LocaleRecipes(dict[str, Any]):
    """A later locale's step recipes, kept in the run's under ``<stage> <locale>`` (what
    ``studio plan`` names them too), so the first locale's are not replaced."""

    def __init__(self, target: dict[str, Any], locale: str) -> None:
        super().__init__()
        self.target, self.locale = target, locale

    def __setitem__(self, stage: str, value: Any) -> None:
        super().__setitem__(stage, value)
        self.target[f"{stage} {self.locale}"] = value

    def setdefault(self, stage: str, default: Any = None) -> Any:
        if stage not in self:
            self[stage] = default
        return self[stage]


def locale_plan(brief: Brief, voices: Any) -> list[dict[str, Any]]:
    """How each locale after the brief's first is spoken: ``{"locale", "voice", "mode"}``
    where mode is "voiced" (a voice that speaks its language), "subtitled" (none may: the
    first locale's voice with this locale's captions; ``why`` says why) or "silent" (no
    narration in it)."""
    from audio.voiceover import locale_voice

    out = []
    for loc in brief.all_locales[1:]:
        entry, why = locale_voice(brief, loc, voices)
        narrated = any(b.narration_in(loc).strip() for b in brief.beats)
        mode = "voiced" if entry is not None else "subtitled" if narrated else "silent"
        out.append({"locale": loc, "voice": entry, "mode": mode, **({"why": why} if why else {})})
    return out


def render_locales(ctx: RunContext, brief: Brief, settings: Settings) -> None:
    """Each locale after the brief's first, for the video channels: its voice lines (a
    voice for its language, else the first locale's voice with its own words as captions:
    a subtitled version), its edit, mix, captions and deliverables, the locale in every
    file name. Pictures, music and effects are the first pass's; stills made every
    locale's copy already. Each step is cached like the first locale's."""
    from audio.voices import VoiceRegistry
    from studio.progress import LocaleReporter

    first = brief.all_locales[0]
    ctx.locale_passes = [{"locale": first, "voice": ctx.voice.id if ctx.voice is not None else None,
                          "mode": "voiced" if ctx.voice_lines else "silent"}] if len(brief.all_locales) > 1 else []
    if len(brief.all_locales) < 2 or not ctx.video_specs:
        return
    for plan in locale_plan(brief, VoiceRegistry(settings.voices_dir)):
        loc, entry = plan["locale"], plan["voice"]
        local = brief.localized(loc)
        lctx = dataclasses.replace(
            ctx, brief=local, specs=ctx.video_specs, voice=entry, locale=loc, extra_locale=True,
            reporter=LocaleReporter(ctx.reporter, loc), recipes=LocaleRecipes(ctx.recipes, loc),
            timelines={}, deliverables=[], masters={}, master_keys={}, captions={}, sound=dict(ctx.sound),
            stems={k: v for k, v in ctx.stems.items() if k != "voice"}, voice_lines=[], voice_stem=None)
        if plan["mode"] == "voiced":
            run_stages(lctx, ["voice"], suffix=f" {loc}")
            if lctx.voice_stem is not None:
                lctx.stems["voice"] = lctx.voice_stem
        elif plan["mode"] == "subtitled":
            # The first locale's lines, where they are, carrying this locale's words: its
            # captions are cut from them over each line's time.
            words = {b.id: b.narration_in(loc).strip() for b in local.beats}
            lctx.voice_lines = [{**ln, "text": words.get(ln["beat"], ""),
                                 "sentences": [{"text": words.get(ln["beat"], ""), "start": ln["start"],
                                                "end": ln["end"]}] if words.get(ln["beat"]) else []}
                                for ln in ctx.voice_lines]
            if "voice" in ctx.stems:
                lctx.stems["voice"] = ctx.stems["voice"]
            ctx.warn(f"locale {loc}: {plan.get('why') or 'no voice speaks it'}; its deliverables keep the "
                     f"{first} voice with {loc} captions (register a voice for it, or name one in voices.{loc}, "
                     "to dub it)")
        run_stages(lctx, LOCALE_STAGES[1:], suffix=f" {loc}")
        ctx.timelines.update({f"{kind}.{loc}": t for kind, t in lctx.timelines.items()})
        ctx.deliverables += lctx.deliverables
        ctx.captions.update({f"{name} {loc}": c for name, c in lctx.captions.items()})
        ctx.voice_lines_by_locale[loc] = lctx.voice_lines
        ctx.locale_passes.append({"locale": loc, "voice": entry.id if entry is not None else None,
                                  "mode": plan["mode"], **({"why": plan["why"]} if plan.get("why") else {})})


def run_stages(ctx: RunContext, names: list[str], suffix: str = "") -> None:
    """Run the named stages, in pipeline order, on ``ctx``: each reported, timed, its cache
    counts and step recipes recorded with the run. A render runs all of them; the editor
    round trip (studio.conform) runs the mix, captions, conform and manifest of an edit."""
    timings: dict[str, float] = {}
    for stage in STAGES:
        if stage.name not in names:
            continue
        total = stage.total(ctx)
        if total == 0:
            continue
        ctx.reporter.stage_start(stage.name, total)
        started = time.monotonic()
        counts = stage(ctx)
        timings[stage.name + suffix] = round(time.monotonic() - started, 3)
        if counts:
            record_counts(ctx.engine, ctx.run_id, stage.name + suffix, **counts)
        recipes = ctx.recipes.target if isinstance(ctx.recipes, LocaleRecipes) else ctx.recipes
        _record_recipes(ctx.engine, ctx.run_id, recipes, timings)
        ctx.reporter.stage_done(stage.name, **counts)


def _record_recipes(engine: Any, run_id: str, recipes: dict[str, Any], timings: dict[str, float]) -> None:
    """The run's step keys and content inputs so far, and each stage's wall time: what
    `studio plan` compares a later brief with and estimates from."""
    from sqlmodel import Session

    with Session(engine) as s:
        run = s.get(db.Run, run_id)
        if run is None:
            return
        # Merged: a render runs its stages in more than one call (before and after the
        # selection gate, then each later locale), and each call's timings count.
        run.settings = {**run.settings, "recipes": recipes,
                        "timings": {**(run.settings.get("timings") or {}), **timings}}
        s.add(run)
        s.commit()
