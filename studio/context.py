"""What a run carries from stage to stage: inputs, settings, the store, the database,
and each stage's outputs (references, never media)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from studio.brief import Brief
from studio.progress import Reporter
from studio.settings import Settings
from studio.specs import Catalog, ChannelSpec, StylePack
from studio.store import MediaRef, Store

SCRATCH = ".scratch"  # the scratch folder's name inside a run's work folder


@dataclass
class ShotPlan:
    """One beat as a shot: its prompt record and timing. ``frames`` is the cut length at
    the edit rate; the master clip carries ``handles`` extra frames on each side."""

    shot_id: str
    beat_id: str
    position: int
    duration: float
    frames: int
    handles: int
    prompt: dict[str, Any]
    prompt_hash: str
    focus: tuple[float, float]
    camera: str
    seeds: list[int]
    # More rounds of candidates a person asked for (the beat's ``more`` notes), each
    # {"note", "prompt", "prompt_hash", "seeds"}: the note steers the round's prompt; its
    # candidates are numbered after the ones before (``candidate_slots``).
    rounds: list[dict[str, Any]] = field(default_factory=list)

    def candidate_slots(self) -> list[tuple[int, int, dict[str, Any], str]]:
        """Every candidate this shot draws, in index order: (index, seed, prompt record,
        prompt hash), the beat's own seeds first, then each round's."""
        slots = [(i, seed, self.prompt, self.prompt_hash) for i, seed in enumerate(self.seeds)]
        for r in self.rounds:
            slots += [(len(slots) + i, seed, r["prompt"], r["prompt_hash"]) for i, seed in enumerate(r["seeds"])]
        return slots


@dataclass
class CandidateResult:
    candidate_id: str
    shot_id: str
    beat_id: str
    index: int
    seed: int
    image: MediaRef
    depth: MediaRef | None
    score: float
    components: dict[str, float]
    reason: str
    record: dict[str, Any]  # everything the database row holds


@dataclass
class ClipResult:
    render_id: str
    shot_id: str
    beat_id: str
    candidate_id: str
    media: MediaRef
    frames: int  # total, handles included
    params: dict[str, Any]


@dataclass
class StageEnv:
    """What every stage may use besides its declared inputs: the run's services, never its
    content. Where to write (work, scratch), the store and the database to record in, the
    reporter, the settings (paths, pool sizes, encoder presets: how to work, not what to
    make), and the run's notebook of step recipes (``recipes``: each cached step's key and
    content inputs, recorded with the run for `studio plan`; stages write it, never read
    another stage's entries: what a stage needs from upstream is a declared input)."""

    run_id: str
    settings: Settings
    store: Store
    engine: Engine
    reporter: Reporter
    out_dir: Path
    work_dir: Path
    scratch_dir: Path
    brief_version_id: int
    version: int
    names: tuple[str, str]  # project, campaign: the file names' prefix
    warnings: list[str]
    recipes: dict[str, dict[str, dict[str, Any]]]
    cancelled: Callable[[], bool] = lambda: False
    start_ray: Callable[[], Any] = lambda: None
    # The locale this pass renders when the brief ships in several (its file names carry
    # it), else None; ``extra_locale`` for the passes after the first (their edit is
    # recorded as ``edit.<locale>``).
    locale: str | None = None
    extra_locale: bool = False

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as s:
            yield s
            s.commit()

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.reporter.warn(message)

    def file_stem(self, suffix: str, locale: str | None = None) -> str:
        """``project_campaign_suffix[_locale]_vNNN``: the locale given ("" for none: a file
        every locale shares), else the pass's."""
        project, campaign = self.names
        tag = self.locale if locale is None else locale
        return f"{project}_{campaign}_{suffix}{f'_{tag}' if tag else ''}_v{self.version:03d}"


@dataclass
class RunContext:
    run_id: str
    brief: Brief
    brief_path: Path
    brief_dir: Path
    brief_version_id: int
    version: int  # vNNN used in file names
    specs: list[ChannelSpec]
    style: StylePack
    catalog: Catalog
    settings: Settings
    store: Store
    engine: Engine
    reporter: Reporter
    out_dir: Path  # where the finished folder will be
    work_dir: Path  # where this run writes until it is complete
    edit_rate: Fraction
    master_size: tuple[int, int]
    backend: str = "procedural"
    backend_options: dict[str, Any] = field(default_factory=dict)
    keyframe_model: Any = None  # studio.models.ModelEntry when the brief names one
    clip_model: Any = None
    voice: Any = None  # audio.voices.VoiceEntry, or None when no beat has narration
    # stage outputs
    shots: list[ShotPlan] = field(default_factory=list)
    candidates: dict[str, list[CandidateResult]] = field(default_factory=dict)  # by shot id
    selected: dict[str, CandidateResult] = field(default_factory=dict)  # by shot id
    clips: dict[str, ClipResult] = field(default_factory=dict)  # by shot id
    timelines: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind -> {id, path, sha256}
    deliverables: list[dict[str, Any]] = field(default_factory=list)
    review: dict[str, Path] = field(default_factory=dict)  # contact sheet, previews
    voice_lines: list[dict[str, Any]] = field(default_factory=list)  # placed lines, by beat order
    voice_stem: MediaRef | None = None  # every voice line on one stem (None: no narration)
    voice_key: str | None = None  # the voice stage's action key: the music's premix carries it
    stems: dict[str, MediaRef] = field(default_factory=dict)  # voice, music, effects
    sound: dict[str, Any] = field(default_factory=dict)  # bed and cue records
    masters: dict[str, dict[str, Any]] = field(default_factory=dict)  # by spec: audio + loudness
    captions: dict[str, dict[str, Any]] = field(default_factory=dict)  # by spec: files, overlays
    manifest: dict[str, Any] | None = None  # what the published manifest.json says
    master_keys: dict[str, str] = field(default_factory=dict)  # by spec: each audio master's key
    edit_key: str | None = None  # the edit as content (timelines.assemble.edit_recipe): keys the conform
    sound_key: str | None = None  # the sound laid on the edit (timelines.assemble.sound_recipe): keys the mix
    warnings: list[str] = field(default_factory=list)
    # A brief in several locales: how each was spoken ({"locale", "voice", "mode"}: voiced,
    # subtitled or silent), and the later locales' placed voice lines (pipeline.render_locales).
    locale_passes: list[dict[str, Any]] = field(default_factory=list)
    release: dict[str, Any] = field(default_factory=dict)  # the release gate's record (studio.release)
    voice_lines_by_locale: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Each cached step's action key and the content inputs it was made from, by stage and
    # item (a shot, a channel, "spot"): recorded with the run, so `studio plan` can say
    # which input changed since (studio.plan).
    recipes: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # Starts (or joins) Ray the first time a stage has work for it: a render whose steps are
    # all cached starts no Ray at all. The pipeline sets it; it keeps the CLI's SIGTERM handler.
    start_ray: Callable[[], Any] = lambda: None
    cancelled: Callable[[], bool] = lambda: False
    # A conform of an editor's timeline: the run it came from and what the editor changed
    # (the manifest's ``conform_of``); its beats are the clips of the edited timeline.
    conform_of: dict[str, Any] | None = None
    # Stage scratch (intermediate WAVs, animatic frames, caption overlays): inside the work
    # folder so a failed or cancelled run's cleanup takes it too, and removed before the
    # folder is published (never part of the output, never in the manifest).
    scratch_dir: Path = field(default=Path())
    # Which locale this context renders (StageEnv.locale, extra_locale): set by the runner.
    locale: str | None = None
    extra_locale: bool = False

    def __post_init__(self) -> None:
        if self.scratch_dir == Path():
            self.scratch_dir = self.work_dir / SCRATCH

    def env(self) -> StageEnv:
        """The services a stage gets with its declared inputs (warnings and recipes shared)."""
        return StageEnv(
            run_id=self.run_id, settings=self.settings, store=self.store, engine=self.engine,
            reporter=self.reporter, out_dir=self.out_dir, work_dir=self.work_dir, scratch_dir=self.scratch_dir,
            brief_version_id=self.brief_version_id, version=self.version,
            names=(self.brief.project, self.brief.campaign), warnings=self.warnings, recipes=self.recipes,
            cancelled=self.cancelled, start_ray=self.start_ray, locale=self.locale,
            extra_locale=self.extra_locale)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as s:
            yield s
            s.commit()

    @property
    def video_specs(self) -> list[ChannelSpec]:
        return [s for s in self.specs if s.kind == "video"]

    @property
    def lut(self) -> Path | None:
        """The style pack's LUT file, if it has one."""
        return self.catalog.lut_path(self.style)

    @property
    def still_specs(self) -> list[ChannelSpec]:
        return [s for s in self.specs if s.kind == "still"]

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.reporter.warn(message)

    def file_stem(self, suffix: str) -> str:
        return self.env().file_stem(suffix)
