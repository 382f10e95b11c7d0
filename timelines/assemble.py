"""Stage ``timeline``: selected shots become an OpenTimelineIO timeline.

One clip per beat on track V1, in brief order; each clip references its shot master in
the store (handles included in the media's available range, the cut in source_range),
carries a beat marker, and keeps its recipe under ``metadata["studio"]`` so any clip can
be traced back to its candidate. Stills get their own timeline: a one-frame clip of the
keyframe of each beat a still channel is made from.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio

from studio import db
from studio.brief import Brief, edit_timecode
from studio.context import CandidateResult, ClipResult, ShotPlan, StageEnv
from studio.specs import ChannelSpec
from studio.store import MediaRef, sha256_file

CODE_VERSION = "timeline.1"


@dataclass
class TimelineInputs:
    brief: Brief
    specs: list[ChannelSpec]
    shots: list[ShotPlan]
    selected: dict[str, CandidateResult]  # by shot id
    clips: dict[str, ClipResult]  # by shot id
    voice_lines: list[dict[str, Any]]
    stems: dict[str, MediaRef]
    sound: dict[str, Any]
    edit_rate: Fraction

    @property
    def video_specs(self) -> list[ChannelSpec]:
        return [s for s in self.specs if s.kind == "video"]

    @property
    def still_specs(self) -> list[ChannelSpec]:
        return [s for s in self.specs if s.kind == "still"]


@dataclass
class TimelineOutputs:
    timelines: dict[str, dict[str, Any]]  # kind -> {id, path, sha256, name, exports}
    edit_key: str | None  # the edit as content (edit_recipe): what the conform is keyed by
    sound_key: str | None  # the sound laid on the edit (sound_recipe): what the mix is keyed by


def _rt(frames: int, rate: Fraction) -> otio.opentime.RationalTime:
    return otio.opentime.RationalTime(frames, float(rate))


def _clip_metadata(inp: TimelineInputs, shot_id: str) -> dict[str, Any]:
    shot = next(s for s in inp.shots if s.shot_id == shot_id)
    cand = inp.selected[shot_id]
    beat = next(b for b in inp.brief.beats if b.id == shot.beat_id)
    return {
        "beat_id": shot.beat_id,
        "shot_id": shot_id,
        "candidate_id": cand.candidate_id,
        "seed": cand.seed,
        "backend": cand.record["backend"],
        "model_id": cand.record["model_id"],
        "weights_sha256": cand.record["weights_sha256"],
        "prompt_hash": shot.prompt_hash,
        "recipe_hash": cand.record["recipe_hash"],
        "keyframe_sha256": cand.image.sha256,
        "score": round(cand.score, 4),
        "focus": list(shot.focus),
        "subject_scale": shot.prompt["composition"]["subject_scale"],
        "camera": shot.camera,
        "narration": beat.narration,
        "rate": f"{inp.edit_rate.numerator}/{inp.edit_rate.denominator}",
    }


def set_start_timecode(brief: Brief, specs: list[ChannelSpec], rate: Fraction, tl: otio.schema.Timeline) -> None:
    """The programme's start timecode (brief, else the first video channel) as the
    timeline's global start time, and how it is counted under ``metadata["studio"]``: the
    exports write both from here, so they agree."""
    tc = edit_timecode(brief, specs)
    tl.global_start_time = _rt(tc.frames, rate)
    tl.metadata["studio"]["timecode"] = {"start": tc.label, "drop_frame": tc.drop_frame}


def build_edit(env: StageEnv, inp: TimelineInputs) -> otio.schema.Timeline:
    rate = inp.edit_rate
    tl = otio.schema.Timeline(name=f"{inp.brief.project}_{inp.brief.campaign}_edit")
    tl.metadata["studio"] = {"run_id": env.run_id, "brief_version_id": env.brief_version_id,
                             "rate": f"{rate.numerator}/{rate.denominator}",
                             "code_version": CODE_VERSION}
    set_start_timecode(inp.brief, inp.specs, rate, tl)
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    tl.tracks.append(track)
    for shot in inp.shots:
        clip_res = inp.clips[shot.shot_id]
        path = env.store.path(clip_res.media).resolve()
        ref = otio.schema.ExternalReference(
            target_url=path.as_uri(),
            available_range=otio.opentime.TimeRange(_rt(0, rate), _rt(clip_res.frames, rate)),
        )
        ref.metadata["studio"] = {"sha256": clip_res.media.sha256, "render_id": clip_res.render_id}
        clip = otio.schema.Clip(
            name=shot.beat_id,
            media_reference=ref,
            source_range=otio.opentime.TimeRange(_rt(shot.handles, rate), _rt(shot.frames, rate)),
        )
        clip.metadata["studio"] = _clip_metadata(inp, shot.shot_id)
        marker = otio.schema.Marker(
            name=shot.beat_id,
            marked_range=otio.opentime.TimeRange(_rt(shot.handles, rate), _rt(0, rate)),
            color=otio.schema.MarkerColor.GREEN,
        )
        marker.metadata["studio"] = {"kind": "beat", "narration": clip.metadata["studio"]["narration"]}
        clip.markers.append(marker)
        track.append(clip)
    # The supers and end card as titles on a track of their own (timelines.graphics), timed
    # as the conform sets them: an editor moves, trims, drops or swaps them there.
    from timelines.graphics import beat_spans, edit_titles, graphics_track

    total = Fraction(sum(sh.frames for sh in inp.shots)) / rate
    legal = [s.legal_min_seconds for s in inp.video_specs if s.legal_min_seconds is not None]
    titles = edit_titles(inp.brief, beat_spans([(sh.beat_id, sh.frames) for sh in inp.shots], rate), float(total),
                         max(legal) if legal else None)
    if titles:
        tl.tracks.append(graphics_track(titles, rate, inp.brief.pass_locale))
    build_audio_tracks(env, inp, tl)
    return tl


def _audio_clip(name: str, path: Path, frames: int, rate: Fraction, meta: dict[str, Any],
                sha256: str, media_frames: int | None = None) -> otio.schema.Clip:
    ref = otio.schema.ExternalReference(
        target_url=path.resolve().as_uri(),
        available_range=otio.opentime.TimeRange(_rt(0, rate), _rt(media_frames or frames, rate)),
    )
    ref.metadata["studio"] = {"sha256": sha256, "has_audio": True}
    clip = otio.schema.Clip(name=name, media_reference=ref,
                            source_range=otio.opentime.TimeRange(_rt(0, rate), _rt(frames, rate)))
    clip.metadata["studio"] = meta
    return clip


def _place(track: otio.schema.Track, at: int, clip: otio.schema.Clip, rate: Fraction) -> None:
    """Append ``clip`` at record frame ``at``, filling with a gap (clips never overlap on
    one track: a later clip that would overlap starts where the previous one ends)."""
    end = round(track.duration().to_frames()) if len(track) else 0
    if at > end:
        track.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(_rt(0, rate), _rt(at - end, rate))))
    track.append(clip)


def build_audio_tracks(env: StageEnv, inp: TimelineInputs, tl: otio.schema.Timeline) -> None:
    """The soundtrack as three audio tracks named for their stems: voice (one clip per
    line), music (the bed), effects (one clip per cue). Every clip keeps its recipe and
    rights under ``metadata["studio"]``; positions are on edit frames."""
    rate = inp.edit_rate
    voice = otio.schema.Track(name="voice", kind=otio.schema.TrackKind.Audio)
    for line in inp.voice_lines:
        clip = _audio_clip(f"{line['beat']} voice", env.store.path(line["ref"]), line["frames"], rate,
                           {"kind": "voice-line", "beat_id": line["beat"], "voice": line["voice"],
                            "text": line["text"], "tempo": round(line["tempo"], 4),
                            # relative to the clip's first frame: captions follow the clip
                            "sentences": [{"text": x["text"], "start": round(x["start"] - line["start"], 4),
                                           "end": round(x["end"] - line["start"], 4)} for x in line["sentences"]],
                            "offset": round(line["start"] - line["start_frame"] / float(rate), 6)},
                           line["ref"].sha256)
        _place(voice, line["start_frame"], clip, rate)
    music = otio.schema.Track(name="music", kind=otio.schema.TrackKind.Audio)
    bed = inp.sound.get("bed")
    total = sum(s.frames for s in inp.shots)
    if bed is not None:
        meta = {"kind": "music-bed", **{k: v for k, v in bed.items() if k in ("source", "track", "params", "rights")}}
        music.append(_audio_clip("music bed", env.store.path(bed["ref"]), total, rate, meta, bed["ref"].sha256))
    # Effects as one clip of the rendered effects stem (cue gains applied), so every
    # format carries it at unity gain; the cues themselves are in its metadata.
    effects = otio.schema.Track(name="effects", kind=otio.schema.TrackKind.Audio)
    fx = inp.stems.get("effects")
    if fx is not None:
        cues = [{k: c[k] for k in ("id", "kind", "effect", "beat", "at", "gain_db")} for c in inp.sound.get("cues", [])]
        effects.append(_audio_clip("effects", env.store.path(fx), total, rate,
                                   {"kind": "effects-stem", "cues": cues}, fx.sha256))
    for track in (voice, music, effects):
        if len(track):
            tl.tracks.append(track)


def build_stills(env: StageEnv, inp: TimelineInputs) -> otio.schema.Timeline:
    """A still is a single-frame shot: one one-frame clip per beat a still channel is
    made from (``stills``, else the hero beat), in brief order, each naming its channels
    under ``metadata["studio"]["channels"]``; the conform cuts each channel from its clip."""
    rate = inp.edit_rate
    channels: dict[str, list[str]] = {}
    for spec in inp.still_specs:
        channels.setdefault(inp.brief.still_beat(spec.name).id, []).append(spec.name)
    tl = otio.schema.Timeline(name=f"{inp.brief.project}_{inp.brief.campaign}_stills")
    tl.metadata["studio"] = {"run_id": env.run_id, "code_version": CODE_VERSION}
    set_start_timecode(inp.brief, inp.specs, rate, tl)
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    tl.tracks.append(track)
    for shot in inp.shots:
        if shot.beat_id not in channels:
            continue
        cand = inp.selected[shot.shot_id]
        ref = otio.schema.ExternalReference(
            target_url=env.store.path(cand.image).resolve().as_uri(),
            available_range=otio.opentime.TimeRange(_rt(0, rate), _rt(1, rate)),
        )
        ref.metadata["studio"] = {"sha256": cand.image.sha256}
        clip = otio.schema.Clip(name=shot.beat_id, media_reference=ref,
                                source_range=otio.opentime.TimeRange(_rt(0, rate), _rt(1, rate)))
        clip.metadata["studio"] = {**_clip_metadata(inp, shot.shot_id), "channels": channels[shot.beat_id]}
        track.append(clip)
    return tl


def write_timeline(env: StageEnv, tl: otio.schema.Timeline, kind: str, *, brief: Brief, specs: list[ChannelSpec],
                   rate: Fraction, parent_id: str | None = None, version: int = 1) -> dict[str, Any]:
    """Write ``tl`` and its editor exports into the run's timelines folder and record it;
    returns its entry (the run's ``timelines[kind]``)."""
    folder = env.work_dir / "timelines"
    exports: dict[str, Path] = {}
    from timelines.export import export_all

    # The editor's formats (Resolve: .otio, and .otioz where the brief asks; Premiere: FCP7
    # XML; FCPXML; EDL), at the main deliverable's size and the edit rate, from the
    # timeline's start timecode. A still is a one-frame shot: its timeline goes out the
    # same way, at the first still channel's size.
    video = [s for s in specs if s.kind == "video"]
    still = [s for s in specs if s.kind == "still"]
    main = (video or specs)[0] if kind == "edit" else (still or specs)[0]
    # The edit of a brief in several locales is each locale's (its voice, its captions): its
    # files carry the locale, and a later locale's is recorded as ``edit.<locale>``. Stills
    # are every locale's.
    exports = export_all(tl, folder, env.file_stem(kind, None if kind == "edit" else ""), width=main.width,
                         height=main.height, rate=rate, otioz=brief.otioz)
    path = exports["otio"]
    sha = sha256_file(path)
    tid = db.new_id("tl")
    final = env.out_dir / path.relative_to(env.work_dir)
    recorded = f"{kind}.{env.locale}" if env.extra_locale and kind == "edit" else kind
    with env.session() as s:
        s.add(db.Timeline(id=tid, run_id=env.run_id, name=tl.name, kind=recorded, sha256=sha, path=str(final),
                          parent_id=parent_id, version=version))
    return {
        "id": tid, "path": path, "sha256": sha, "name": tl.name,
        "exports": {fmt: {"path": p, "sha256": sha256_file(p)} for fmt, p in exports.items() if fmt != "otio"},
    }


def edit_recipe(shots: list[Any], masters: dict[str, str], stems: dict[str, str],
                lines: list[dict[str, Any]], rate: Fraction) -> dict[str, Any]:
    """What the edit is, as content: each cut (beat, length, handles, focus, the master's
    sha256), the edit rate, and the sound laid on it (the stems' and voice lines' sha256 and
    places). The mix and the conform are keyed by it (studio.cache), and `studio plan`
    computes it from cached outputs alone; an editor's timeline is keyed by its own
    content instead (studio.conform)."""
    return {
        "timeline": CODE_VERSION, "rate": f"{rate.numerator}/{rate.denominator}",
        "cuts": [{"beat": sh.beat_id, "frames": sh.frames, "handles": sh.handles, "focus": list(sh.focus),
                  "master": masters.get(sh.shot_id)} for sh in shots],
        "stems": dict(sorted(stems.items())),
        "lines": [{"beat": ln["beat"], "sha256": ln["sha256"], "start": ln["start"]} for ln in lines],
    }


def sound_recipe(edit: dict[str, Any]) -> dict[str, Any]:
    """The sound laid on the edit: the edit's recipe less the pictures (each cut's master and
    focus), so a new keyframe or grade does not mix the sound again; the cut lengths stay,
    as the sound is laid on them."""
    return {**edit, "cuts": [{k: v for k, v in c.items() if k not in ("master", "focus")} for c in edit["cuts"]]}


def assemble_timelines(env: StageEnv, inputs: TimelineInputs) -> TimelineOutputs:
    timelines: dict[str, dict[str, Any]] = {}
    edit_key = sound_key = None
    common = {"brief": inputs.brief, "specs": inputs.specs, "rate": inputs.edit_rate}
    if inputs.video_specs:
        doc = edit_recipe(inputs.shots, {k: c.media.sha256 for k, c in inputs.clips.items()},
                          {k: v.sha256 for k, v in inputs.stems.items()},
                          [{"beat": ln["beat"], "sha256": ln["ref"].sha256, "start": ln["start"]}
                           for ln in inputs.voice_lines], inputs.edit_rate)
        from studio.cache import key_of

        edit_key = key_of("timeline", CODE_VERSION, doc)
        sound_key = key_of("sound", CODE_VERSION, sound_recipe(doc))
        env.recipes["timeline"] = {"edit": {"key": edit_key, "doc": doc}}
        timelines["edit"] = write_timeline(env, build_edit(env, inputs), "edit", **common)
        env.reporter.advance("timeline")
    if inputs.still_specs:
        timelines["stills"] = write_timeline(env, build_stills(env, inputs), "stills", **common)
        env.reporter.advance("timeline")
    return TimelineOutputs(timelines=timelines, edit_key=edit_key, sound_key=sound_key)


def read_clips(path: Path) -> list[otio.schema.Clip]:
    tl = otio.adapters.read_from_file(str(path))
    return list(tl.find_clips())
