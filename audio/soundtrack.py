"""Stage ``music``: one music bed for the whole spot and the effects stem.

The bed comes from the brief's ``music.source``: ``procedural`` (the built-in composer:
tempo, key and mood from the brief, loopable bars and a real ending on the spot's exact
length), ``library`` (a track from the music library, picked by mood tags or by id, its
rights checked for the usage class, looped on bars and ended with a fade), a text-to-music
model from the registry (MusicGen-class, on a Ray actor), or ``none``.

Effects follow the cut: a whoosh on every cut, a hit where the hero beat lands, from the
effects library (Studio's own procedural effects unless the brief or settings name a
folder). Every bed and cue is recorded with its parameters and rights.

Last, voice, bed and effects are premixed once for the review's animatic (the review
runs before any clip; shots/ does not import audio/, so the sound reaches it as a store
ref on the run's ``sound["premix"]``).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from studio import db
from studio.brief import Brief
from studio.context import ShotPlan, StageEnv
from studio.errors import ManyErrors, StageError, StudioError
from studio.settings import Settings
from studio.store import MediaRef

CODE_VERSION = "music.1"
RATE = 48000


def _folder(value: str | None, base_dir: Path, default: Path | None, *, settings: Any,
            field: str) -> Path | None:
    """A library folder the brief names, confined like every path in a brief (inside the
    brief's folder or STUDIO_ASSETS_ROOTS, symlinks followed); the settings' default
    (STUDIO_MUSIC_DIR) is the operator's choice and taken as it is."""
    from studio.assets import resolve_asset

    if value:
        kind = field.split(".")[0]
        return resolve_asset(value, base_dir, field=field, kind="folder", settings=settings,
                             label=f"{kind} library folder", stage=kind)
    return default


def _confine_tracks(lib: Any, base_dir: Path, settings: Any, field: str) -> None:
    """Every track a brief-named library plays stays inside the allowed folders too: a
    sidecar's ``file: ../../elsewhere.wav`` or a symlinked track is refused."""
    from studio.assets import is_allowed

    errors = [StudioError(f"track {tid!r} plays {path}, outside the allowed folders",
                          fix="keep the library's audio files inside it, or add their folder to "
                              "STUDIO_ASSETS_ROOTS",
                          field=field, source=str(lib.sidecars.get(tid, lib.folder)), stage=lib.stage)
              for tid, path in sorted(lib.paths.items()) if not is_allowed(path, base_dir, settings)]
    if errors:
        raise errors[0] if len(errors) == 1 else ManyErrors(errors)


def check_music_plan(brief: Any, base_dir: Path, settings: Any, models: Any,
                     source: str | None = None) -> list[StudioError]:
    """The music and effects plans, checked before any work: the source exists and is
    licensed for the usage class; library folders load (every track's file present and
    decodable, its rights valid)."""
    from audio.library import MediaLibrary

    errors: list[StudioError] = []
    plan = brief.music
    try:
        if plan.source == "library":
            folder = _folder(plan.library, base_dir, getattr(settings, "music_dir", None),
                             settings=settings, field="music.library")
            if folder is None:
                raise StudioError("music.source is library but no library folder is set",
                                  fix="set music.library in the brief or STUDIO_MUSIC_DIR",
                                  stage="music", field="music.library")
            lib = MediaLibrary(folder, kind="music")
            if plan.library:
                _confine_tracks(lib, base_dir, settings, "music.library")
            if plan.track:
                track = lib.get(plan.track)
                lib.check_usage(track, brief.usage_class)
            else:
                lib.pick(_moods(brief), brief.usage_class)
        elif plan.source not in ("procedural", "none"):
            if models is None:
                raise StudioError(f"unknown music source {plan.source!r}",
                                  fix="use procedural, library, none or a model id", field="music.source")
            entry = models.get(plan.source, field="music.source")
            if entry.kind != "text-to-music":
                raise StudioError(f"model {plan.source!r} is {entry.kind}, not text-to-music",
                                  fix="pick a text-to-music model (`studio models`) or use procedural",
                                  field="music.source")
            models.check_usage(entry, brief.usage_class, field="usage_class")
            if entry.max_duration is not None and brief.total_duration > entry.max_duration:
                raise StudioError(
                    f"model {plan.source!r} makes at most {entry.max_duration:g} s of music in one call; "
                    f"the spot runs {brief.total_duration:g} s",
                    fix="use the procedural composer or a library track for a longer spot",
                    field="music.source")
        if brief.effects.enabled and brief.effects.library:
            folder = _folder(brief.effects.library, base_dir, None, settings=settings,
                             field="effects.library")
            assert folder is not None
            _confine_tracks(MediaLibrary(folder, kind="effects"), base_dir, settings, "effects.library")
    except StudioError as e:
        e.source = e.source or source
        errors.append(e)
    return errors


def _moods(brief: Any) -> list[str]:
    if brief.music.mood:
        text = brief.music.mood
    else:
        text = ",".join(b.mood for b in brief.beats if b.mood)
    words = [w.strip().lower() for part in text.split(",") for w in part.split()]
    return [w for w in dict.fromkeys(words) if w]


def _to_stem(src: Path, out: Path, seconds: float) -> dict[str, Any]:
    """Any audio file to a 48 kHz stereo WAV of exactly ``seconds`` (a model's output,
    at its own rate and channel count)."""
    from studio.store import atomic_output

    n = round(seconds * RATE)
    with atomic_output(out) as tmp:
        proc = subprocess.run(
            ["ffmpeg", "-hide_banner", "-nostats", "-v", "error", "-y", "-i", str(src),
             "-af", f"aformat=channel_layouts=stereo,aresample={RATE},apad=whole_len={n},atrim=end_sample={n}",
             "-ar", str(RATE), "-c:a", "pcm_s16le", str(tmp)],
            capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise StageError(f"cannot convert {src.name}: {proc.stderr.strip()[-200:]}", stage="music",
                             source=str(src), fix="check the generated file")
    return {"converted_to": f"{RATE} Hz stereo", "samples": n}


def music_bed(env: StageEnv, brief: Brief, brief_dir: Path, total: float, work: Path) -> dict[str, Any] | None:
    from audio import music
    from audio.library import MediaLibrary

    plan = brief.music
    settings = env.settings
    out = work / "bed.wav"
    if plan.source == "none":
        return None
    if plan.source == "procedural":
        params = music.params_for(_moods(brief), brief.base_seed, tempo=plan.tempo, key=plan.key)
        record = music.compose(params, total, out, sample_rate=RATE)
        rights = record["rights"]
        detail: dict[str, Any] = {"source": "procedural", "track": None, "params": _jsonable(record)}
    elif plan.source == "library":
        lib = MediaLibrary(_folder(plan.library, brief_dir, settings.music_dir,  # type: ignore[arg-type]
                                   settings=settings, field="music.library"), kind="music")
        track = lib.get(plan.track) if plan.track else lib.pick(_moods(brief), brief.usage_class)
        lib.check_usage(track, brief.usage_class)
        record = lib.fit(track, total, out, sample_rate=RATE)
        rights = _jsonable(record.get("rights") or track.rights)
        detail = {"source": "library", "track": track.id, "params": _jsonable(record)}
    else:
        from audio.actors import generate_music
        from studio.models import ModelRegistry

        entry = ModelRegistry(settings.models_dir).get(plan.source, field="music.source")
        prompt = plan.prompt or ", ".join(_moods(brief)) or brief.purpose
        raw = work / "bed.model.wav"
        record = generate_music(entry, prompt, total, raw, seed=brief.base_seed, settings=settings)
        record.update(_to_stem(raw, out, total))
        rights = {"licence": entry.licence, "usage_classes": list(entry.usage_classes),
                  "model": entry.id}
        detail = {"source": plan.source, "track": None, "params": _jsonable(record)}
    ref = env.store.put_file(out, ".wav")
    return {"ref": ref, "rights": rights, **detail}


def _jsonable(value: Any) -> Any:
    import dataclasses
    from datetime import date

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Fraction):
        return float(value)
    return value


def effects_stem(env: StageEnv, brief: Brief, brief_dir: Path, beats: list[tuple[str, float, float]],
                 total: float, work: Path) -> tuple[MediaRef, dict[str, Any]] | None:
    """The effects stem cued on the cuts, each cue recorded with its rights. Returns the
    stem and its entries for the run's ``sound``: ``cues`` (when there are any), the
    stem's render record (``effects``) and ``rights`` (the effects' entry of the sound's
    rights: each cue's); None when effects are off."""
    from audio import effects
    from audio.library import MediaLibrary

    settings = env.settings
    if not brief.effects.enabled:
        return None
    if brief.effects.library:
        lib = MediaLibrary(_folder(brief.effects.library, brief_dir, None,  # type: ignore[arg-type]
                                   settings=settings, field="effects.library"), kind="effects")
    elif settings.effects_dir is not None:
        lib = MediaLibrary(settings.effects_dir, kind="effects")
    else:
        lib = effects.builtin_library(settings.home / "effects")
    hero = brief.hero()
    markers = [(f"{b}: hero", start, "hero") for b, start, _ in beats if b == hero.id and start > 0]
    cues = effects.cue_list(beats, markers, lib, brief.usage_class)
    out = work / "effects.wav"
    record = effects.render_stem(cues, lib, total, out, sample_rate=RATE)
    stem = env.store.put_file(out, ".wav")
    from studio.store import sha256_file

    placed: list[dict[str, Any]] = []
    rows = []
    for cue in cues:
        track = lib.get(cue.effect)
        path = lib.path(track)
        length = _seconds(path)
        rights = _jsonable(track.rights)
        c = {"id": cue.id, "kind": cue.kind, "effect": cue.effect, "beat": cue.beat, "gain_db": cue.gain_db,
             "reason": cue.reason, "at": round(cue.at, 4), "start": round(cue.start, 4), "length": length,
             "path": str(path), "sha256": sha256_file(path), "rights": rights}
        placed.append(c)
        rows.append(db.AudioAsset(id=db.new_id("cue"), run_id=env.run_id, kind="effect-cue", name=cue.id,
                                  beat_id=cue.beat, sha256=c["sha256"], start=c["start"], duration=length,
                                  code_version=CODE_VERSION, params={k: v for k, v in c.items() if k != "rights"},
                                  rights=rights))
    sound: dict[str, Any] = {"cues": placed} if placed else {}
    sound["effects"] = _jsonable({k: v for k, v in record.items() if k != "cues"})
    sound["rights"] = {"cues": {c["id"]: c["rights"] for c in placed}}
    with env.session() as s:
        for row in rows:
            s.add(row)
    return stem, sound


def _seconds(path: Path) -> float:
    proc = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                           str(path)], capture_output=True, text=True, check=False)
    try:
        return float(proc.stdout.strip())
    except ValueError:
        raise StageError(f"ffprobe cannot read {path}", stage="effects", source=str(path),
                         fix="replace the file in the effects library") from None


def premix(env: StageEnv, stems: dict[str, MediaRef], music_gain_db: float, total: float,
           work: Path) -> dict[str, Any] | None:
    """The voice, the bed and the effects mixed once, for the review's animatic: the spot's
    sound before any clip is rendered (the run's ``sound["premix"]``; None with no stem).
    The mix stage mixes again from the edit's audio tracks (an editor may move them)."""
    from audio.mix import mix_stems

    src = {k: env.store.path(v) for k, v in stems.items()}
    if not src:
        return None
    path = work / "premix.wav"
    params = mix_stems(src.get("voice"), src.get("music"), src.get("effects"), path, {}, duration=total,
                       music_gain_db=music_gain_db)
    return {"ref": env.store.put_file(path, ".wav"), "stems": params["stems"], "duration": total}


def music_recipe(brief: Brief, brief_dir: Path, settings: Settings, shots: list[ShotPlan], rate: Fraction,
                 voice_key: str | None) -> dict[str, Any]:
    """The music stage's content inputs: the brief's music and effects plans, the moods
    and seed they are picked and composed from, the beat timing, the libraries' content
    (not where they are), a music model's identity, and the voice recipe the premix
    carries. What the stage's action key is made from (studio.cache)."""
    from audio import effects, music
    from studio.cache import folder_digest, model_identity
    from studio.timecode import beat_times

    plan = brief.music
    library = None
    model = None
    if plan.source == "library":
        library = folder_digest(_folder(plan.library, brief_dir, settings.music_dir,
                                        settings=settings, field="music.library"))
    elif plan.source not in ("none", "procedural"):
        from studio.models import ModelRegistry

        model = model_identity(ModelRegistry(settings.models_dir).get(plan.source, field="music.source"))
    fx = None
    if brief.effects.enabled:
        if brief.effects.library:
            fx = folder_digest(_folder(brief.effects.library, brief_dir, None, settings=settings,
                                       field="effects.library"))
        elif settings.effects_dir is not None:
            fx = folder_digest(settings.effects_dir)
        else:
            fx = f"builtin:{effects.CODE_VERSION}"
    return {
        "music": plan.model_dump(mode="json", exclude={"library"}), "library": library, "model": model,
        "composer": music.CODE_VERSION if plan.source == "procedural" else None,
        "moods": _moods(brief), "seed": brief.base_seed, "purpose": brief.purpose,
        "usage_class": brief.usage_class, "hero": brief.hero().id,
        "effects": brief.effects.model_dump(mode="json", exclude={"library"}), "effects_library": fx,
        "beats": [[b, str(start), str(d)] for b, start, d in beat_times(shots, rate)],
        "voice": voice_key,
    }


@dataclass
class MusicInputs:
    brief: Brief
    brief_dir: Path  # where the brief's library folders are resolved from
    shots: list[ShotPlan]
    edit_rate: Fraction
    voice_key: str | None  # the voice stage's action key (None: no voice): the premix carries it
    voice_stem: MediaRef | None  # mixed into the premix


@dataclass
class MusicOutputs:
    sound: dict[str, Any]  # bed, cues, effects, rights, premix
    stems: dict[str, MediaRef]  # voice (the voice stage's), music, effects
    counts: dict[str, int]


def music_stage(env: StageEnv, inputs: MusicInputs) -> MusicOutputs:
    """The stage: the bed and the effects stem, each recorded with its rights, and the
    premix of voice, bed and effects the review's animatic plays. Made once per recipe
    (studio.cache.memo) and recorded for this run either way."""
    from studio.cache import ActionCache, memo

    doc = music_recipe(inputs.brief, inputs.brief_dir, env.settings, inputs.shots, inputs.edit_rate,
                       inputs.voice_key)
    voice = {"voice": inputs.voice_stem} if inputs.voice_stem is not None else {}
    made: list[tuple[dict[str, Any], dict[str, MediaRef]]] = []

    def make() -> dict[str, Any]:
        sound, stems = _make_music(env, inputs, voice)
        made.append((sound, stems))
        return _jsonable({"sound": sound, "stems": {k: v.to_dict() for k, v in stems.items()}})

    out, reused_from, key = memo(ActionCache(env.engine, env.store), "music", CODE_VERSION, doc, make,
                                 env.run_id)
    env.recipes["music"] = {"spot": {"key": key, "doc": doc}}
    if reused_from is not None:
        sound, stems = _restore_music(env, out, reused_from, doc)
    else:
        sound, stems = made[0]
    env.reporter.advance("music", amount=2)
    return MusicOutputs(sound=sound, stems={**voice, **stems},
                        counts={"reused": int(reused_from is not None), "made": int(reused_from is None)})


def _restore_music(env: StageEnv, out: dict[str, Any], reused_from: str,
                   doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, MediaRef]]:
    """A reused bed, effects and premix: the run's sound and stems as if made, and
    recorded for it."""

    def refs(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"sha256", "ext", "size"}:
                return MediaRef.from_dict(value)
            return {k: refs(v) for k, v in value.items()}
        if isinstance(value, list):
            return [refs(v) for v in value]
        return value

    sound: dict[str, Any] = refs(out["sound"])
    stems = {k: MediaRef.from_dict(v) for k, v in out["stems"].items()}
    total = float(sum(Fraction(d) for _, _, d in doc["beats"]))
    with env.session() as s:
        bed = sound.get("bed")
        if bed is not None:
            s.add(db.AudioAsset(id=db.new_id("bed"), run_id=env.run_id, kind="music-bed",
                                name=bed["track"] or bed["source"], sha256=bed["ref"].sha256, start=0.0,
                                duration=total, code_version=CODE_VERSION,
                                params={"source": bed["source"], "track": bed["track"], **bed["params"],
                                        "reused_from": reused_from},
                                rights=bed["rights"]))
        for c in sound.get("cues", []):
            s.add(db.AudioAsset(id=db.new_id("cue"), run_id=env.run_id, kind="effect-cue", name=c["id"],
                                beat_id=c["beat"], sha256=c["sha256"], start=c["start"], duration=c["length"],
                                code_version=CODE_VERSION,
                                params={**{k: v for k, v in c.items() if k != "rights"},
                                        "reused_from": reused_from},
                                rights=c["rights"]))
    return sound, stems


def _make_music(env: StageEnv, inputs: MusicInputs,
                voice: dict[str, MediaRef]) -> tuple[dict[str, Any], dict[str, MediaRef]]:
    """The bed, the effects stem and the premix (of ``voice`` with them): the run's sound
    records and the stems made here (music, effects)."""
    from studio.timecode import beat_times

    brief = inputs.brief
    times = beat_times(inputs.shots, inputs.edit_rate)
    total = float(sum((d for _, _, d in times), Fraction(0)))
    beats = [(b, float(s), float(d)) for b, s, d in times]
    work = env.scratch_dir / "music"
    work.mkdir(parents=True, exist_ok=True)
    sound: dict[str, Any] = {}
    stems: dict[str, MediaRef] = {}
    bed = music_bed(env, brief, inputs.brief_dir, total, work)
    if bed is not None:
        sound["bed"] = bed
        stems["music"] = bed["ref"]
        sound["rights"] = {"music": bed["rights"]}
        with env.session() as s:
            s.add(db.AudioAsset(id=db.new_id("bed"), run_id=env.run_id, kind="music-bed", name=bed["track"] or bed["source"],
                                sha256=bed["ref"].sha256, start=0.0, duration=total, code_version=CODE_VERSION,
                                params={"source": bed["source"], "track": bed["track"], **bed["params"]},
                                rights=bed["rights"]))
    fx = effects_stem(env, brief, inputs.brief_dir, beats, total, work)
    if fx is not None:
        stems["effects"], fx_sound = fx
        sound.update({k: v for k, v in fx_sound.items() if k != "rights"})
        sound.setdefault("rights", {})["effects"] = fx_sound["rights"]
    mixed = premix(env, {**voice, **stems}, brief.music.gain_db, total, work)
    if mixed is not None:
        sound["premix"] = mixed
    return sound, stems
