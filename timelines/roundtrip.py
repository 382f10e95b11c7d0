"""The editor's round trip: ``studio conform RUN EDITED_TIMELINE``.

An editor trims, reorders, drops and swaps shots in Resolve or Premiere and exports the
edit (OTIO, FCP7 XML or FCPXML). Each clip is mapped back to the Studio shot render it
came from, by the ``studio`` metadata where the format kept it, else by the media file
(store files are named by their sha256). The mapped edit becomes a new timeline version
(its parent is the run's edit); ``studio.conform`` re-renders the run's deliverables
from it.
Clips that cannot be mapped are reported by name and record timecode; nothing is dropped
silently.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio
from sqlmodel import Session, select

from studio import db
from studio.errors import ManyErrors, StudioError

CODE_VERSION = "roundtrip.1"


def _read(path: Path) -> otio.schema.Timeline:
    if not path.is_file():
        raise StudioError("file not found", fix="pass the timeline the editor exported", source=str(path))
    try:
        return otio.adapters.read_from_file(str(path))
    except Exception as e:  # adapters raise many types; the user needs the file and the reason
        raise StudioError(f"cannot be read as a timeline ({type(e).__name__}: {e})",
                          fix="export OTIO, FCP7 XML (.xml) or FCPXML (.fcpxml) from the editor",
                          source=str(path)) from None


def _timecode(t: otio.opentime.RationalTime) -> str:
    return otio.opentime.to_timecode(t, t.rate)


def map_edit(engine: Any, run_id: str, edited: Path) -> tuple[otio.schema.Timeline, dict[str, Any]]:
    """The edited timeline rebuilt against the run's store media, plus what changed."""
    from studio.media import url_to_path

    tl_in = _read(edited)
    with Session(engine) as s:
        renders = s.exec(select(db.Render).where(db.Render.run_id == run_id)).all()
        by_sha = {r.media_sha256: r for r in renders}
        by_cand = {r.candidate_id: r for r in renders}
        edit_row = s.exec(select(db.Timeline).where(db.Timeline.run_id == run_id,
                                                    db.Timeline.kind == "edit")).first()
    if edit_row is None:
        raise StudioError(f"run {run_id} has no edit timeline to conform against",
                          fix="conform a run that rendered video", field="RUN")
    original = otio.adapters.read_from_file(edit_row.path)
    meta_by_cand = {c.metadata["studio"]["candidate_id"]: (c, dict(c.metadata["studio"]))
                    for c in original.video_tracks()[0].find_clips()}
    rate = Fraction(original.metadata["studio"]["rate"])
    out = otio.schema.Timeline(name=tl_in.name or original.name)
    out.global_start_time = otio.opentime.RationalTime(0, float(rate))
    out.metadata["studio"] = {**original.metadata["studio"], "parent_timeline": edit_row.id,
                              "edited_from": str(edited), "code_version": CODE_VERSION}
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    out.tracks.append(track)
    errors: list[StudioError] = []
    order: list[str] = []
    video_tracks = [t for t in tl_in.tracks if t.kind == otio.schema.TrackKind.Video] or list(tl_in.tracks)
    for clip in video_tracks[0].find_clips():
        meta = dict(clip.metadata.get("studio", {}))
        render = by_cand.get(meta.get("candidate_id", ""))
        if render is None and clip.media_reference is not None and hasattr(clip.media_reference, "target_url"):
            render = by_sha.get(url_to_path(clip.media_reference.target_url or "").stem)
        if render is None:
            where = clip.range_in_parent().start_time
            errors.append(StudioError(
                f"clip {clip.name!r} at {_timecode(where)} cannot be mapped to a shot of this run",
                fix="keep Studio's media (or its clip metadata) on that clip, or remove it from the edit",
                source=str(edited)))
            continue
        src_clip, src_meta = meta_by_cand[render.candidate_id]
        sr = clip.source_range or clip.available_range()
        start = round(sr.start_time.to_frames(sr.start_time.rate) * float(rate) / sr.start_time.rate)
        frames = round(sr.duration.to_seconds() * float(rate))
        avail = src_clip.media_reference.available_range.duration.value
        if frames <= 0 or start < 0 or start + frames > avail:
            errors.append(StudioError(
                f"clip {clip.name!r} uses frames {start}-{start + frames} of a shot master that has {avail:g}",
                fix="trim within the shot's handles", source=str(edited)))
            continue
        ref = otio.schema.ExternalReference(target_url=src_clip.media_reference.target_url,
                                            available_range=src_clip.media_reference.available_range)
        new = otio.schema.Clip(name=src_meta["beat_id"], media_reference=ref,
                               source_range=otio.opentime.TimeRange(
                                   otio.opentime.RationalTime(start, float(rate)),
                                   otio.opentime.RationalTime(frames, float(rate))))
        new.metadata["studio"] = src_meta
        track.append(new)
        order.append(src_meta["beat_id"])
    if errors:
        raise ManyErrors(errors)
    if not order:
        raise StudioError("the edited timeline has no video clips", fix="export the video track",
                          source=str(edited))
    # The graphics track as the editor left it (moved, trimmed, dropped or swapped titles):
    # the conform sets the supers and end card there (timelines.graphics.read_titles).
    from timelines.graphics import graphics_track, read_titles

    titles_before, titles_after = read_titles(original), read_titles(tl_in)
    graphics_changes: dict[str, Any] = {}
    if titles_after is not None:
        known = {title_key(t): t for t in (titles_before or [])}
        src_meta_by_name = {c.name: dict(c.metadata.get("studio", {})) for t in original.video_tracks()[1:]
                            for c in t.find_clips()}
        kept = []
        for t in titles_after:
            meta = src_meta_by_name.get(t["name"], {})
            kept.append({**t, "field": meta.get("field"), "text": meta.get("text", ""),
                         "beat": t["beat"] if t["kind"] == "super" else None})
        locale = next((m.get("locale") for m in src_meta_by_name.values() if m.get("locale")), "")
        out.tracks.append(graphics_track(kept, rate, locale))
        graphics_changes = {"graphics": {
            "before": [_title_row(t) for t in titles_before or []],
            "after": [_title_row(t) for t in titles_after],
            "changed": sorted({t["name"] for t in titles_after if _title_row(t) != _title_row(known.get(title_key(t), {}))}
                              | {t["name"] for t in titles_before or [] if title_key(t) not in
                                 {title_key(a) for a in titles_after}})}}
    audio_changes = _map_audio(tl_in, original, out, rate, edited)
    before = [c.metadata["studio"]["beat_id"] for c in original.video_tracks()[0].find_clips()]
    changes = {"order_before": before, "order_after": order,
               "dropped": [b for b in before if b not in order],
               "not_conformed": not_conformed(video_tracks),
               "durations": [c.source_range.duration.value for c in track.find_clips()], **audio_changes,
               **graphics_changes}
    return out, changes


def title_key(t: dict[str, Any]) -> str:
    return str(t.get("name") or "")


def _title_row(t: dict[str, Any]) -> list[Any]:
    """A title as the changes record it: name, start and end in seconds (ms precision)."""
    if not t:
        return []
    return [t["name"], round(float(t["start"]), 3), round(float(t["end"]), 3)]


def not_conformed(video_tracks: list[Any]) -> list[dict[str, Any]]:
    """What of the editor's picture the conform does not reproduce, said rather than
    dropped in silence: Studio cuts the first video track's shots end to end, so its
    transitions become cuts, its gaps close, and further video tracks are left out."""
    out: list[dict[str, Any]] = []
    from timelines.graphics import is_graphics_track

    for i, track in enumerate(video_tracks):
        if i > 0:
            if is_graphics_track(track):
                continue  # the supers and end card: conformed where the editor left them
            if any(isinstance(c, otio.schema.Clip) for c in track):
                out.append({"kind": "track", "name": track.name or f"V{i + 1}",
                            "what": "a further video track (overlays, B-roll) is not conformed"})
            continue
        for item in track:
            if isinstance(item, otio.schema.Transition):
                at = item.range_in_parent().start_time if item.parent() else None
                out.append({"kind": "transition", "name": item.name or item.transition_type,
                            "at": _timecode(at) if at is not None else "",
                            "frames": int(round((item.in_offset + item.out_offset).value)),
                            "what": f"a {item.transition_type} is conformed as a cut"})
            elif isinstance(item, otio.schema.Gap) and item.duration().value > 0:
                out.append({"kind": "gap", "name": item.name or "gap",
                            "at": _timecode(item.range_in_parent().start_time),
                            "frames": int(round(item.duration().value)),
                            "what": "a gap is closed: the shots around it are cut together"})
    return out


def _map_audio(tl_in: otio.schema.Timeline, original: otio.schema.Timeline, out: otio.schema.Timeline,
               rate: Fraction, edited: Path) -> dict[str, Any]:
    """The editor's audio tracks, mapped back to Studio's media: each clip by its media's
    sha256 (metadata, or the store file name), placed where the editor put it, on the
    track (voice, music, effects) its media came from. A clip with other media that
    exists on disk joins the effects stem; one whose media is missing fails the conform.
    Without audio tracks (an EDL, a video-only export) the original soundtrack is kept."""
    from studio.media import url_to_path

    originals: dict[str, tuple[str, otio.schema.Clip]] = {}
    for tr in original.audio_tracks():
        for c in tr.find_clips():
            sha = c.media_reference.metadata.get("studio", {}).get("sha256")
            if sha:
                originals[sha] = (tr.name, c)
    src_tracks = [t for t in tl_in.tracks if t.kind == otio.schema.TrackKind.Audio]
    if not src_tracks or not any(t.find_clips() for t in src_tracks):
        for tr in original.audio_tracks():
            out.tracks.append(tr.deepcopy())
        return {"audio": "kept: the edited timeline has no audio clips"}
    placed: dict[str, list[tuple[int, otio.schema.Clip]]] = {"voice": [], "music": [], "effects": []}
    errors: list[StudioError] = []
    for tr in src_tracks:
        for clip in tr.find_clips():
            ref = clip.media_reference
            url = getattr(ref, "target_url", None) or ""
            sha = ref.metadata.get("studio", {}).get("sha256") if ref is not None else None
            sha = sha or url_to_path(url).stem
            sr = clip.source_range or clip.available_range()
            start_f = round(sr.start_time.to_seconds() * float(rate))
            frames = round(sr.duration.to_seconds() * float(rate))
            at = round(clip.range_in_parent().start_time.to_seconds() * float(rate))
            if sha in originals:
                name, src = originals[sha]
                media = src.media_reference.deepcopy()
                meta = dict(src.metadata.get("studio", {}))
            elif url and url_to_path(url).is_file():
                name, meta = "effects", {"kind": "editor-audio", "path": str(url_to_path(url))}
                media = otio.schema.ExternalReference(target_url=url_to_path(url).resolve().as_uri())
            else:
                errors.append(StudioError(
                    f"audio clip {clip.name!r} at {_timecode(clip.range_in_parent().start_time)} "
                    "cannot be mapped to this run's sound or to a file on disk",
                    fix="keep Studio's audio media on that clip, or remove it from the edit",
                    source=str(edited)))
                continue
            new = otio.schema.Clip(name=clip.name, media_reference=media, source_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(start_f, float(rate)), otio.opentime.RationalTime(frames, float(rate))))
            new.metadata["studio"] = meta
            placed[name].append((at, new))
    if errors:
        raise ManyErrors(errors)
    for name, clips in placed.items():
        if not clips:
            continue
        track = otio.schema.Track(name=name, kind=otio.schema.TrackKind.Audio)
        end = 0
        for at, clip in sorted(clips, key=lambda x: x[0]):
            at = max(at, end)  # overlapping clips on one stem: the later one moves up
            if at > end:
                track.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(
                    otio.opentime.RationalTime(0, float(rate)), otio.opentime.RationalTime(at - end, float(rate)))))
            track.append(clip)
            end = at + round(clip.source_range.duration.value)
        out.tracks.append(track)
    return {"audio": {n: len(c) for n, c in placed.items()}}


def _still_candidates(engine: Any, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    with Session(engine) as s:
        rows = s.exec(select(db.Candidate, db.Shot).join(db.Shot, db.Candidate.shot_id == db.Shot.id)
                      .where(db.Shot.run_id == run_id)).all()
    return {c.media_sha256: (c, sh) for c, sh in rows}, {c.id: (c, sh) for c, sh in rows}


def is_stills_edit(engine: Any, run_id: str, edited: Path) -> bool:
    """A stills timeline: its picture clips are one frame of a keyframe of this run."""
    from studio.media import url_to_path

    tl = _read(edited)
    tracks = tl.video_tracks()
    clips = list(tracks[0].find_clips()) if tracks else []
    if not clips:
        return False
    by_sha, by_id = _still_candidates(engine, run_id)
    for clip in clips:
        meta = clip.metadata.get("studio", {})
        url = getattr(clip.media_reference, "target_url", None) or ""
        if meta.get("candidate_id") in by_id and meta.get("keyframe_sha256") == url_to_path(url).stem:
            continue
        if url_to_path(url).stem not in by_sha:
            return False
    return True


def _channels(meta: Any) -> list[str]:
    """The still channels a stills clip makes (OTIO hands metadata lists back as its own
    vector type)."""
    return [str(c) for c in meta.get("channels", [])]


def map_stills(engine: Any, run_id: str, edited: Path) -> tuple[otio.schema.Timeline, dict[str, Any]]:
    """The editor's stills timeline rebuilt against the run's store. A still is a
    one-frame shot: the timeline holds one clip per beat the stills are made from, each
    naming its still channels (``metadata["studio"]["channels"]``). The editor may point a
    clip at another keyframe of the run (another candidate, another beat): that clip's
    channels are made again from it, with its own shot's focus and framing. An edited clip
    matches the run's clip with the same channels where the format kept Studio's
    metadata, else the clip in the same place on the track (FCP7 XML, EDL)."""
    from studio.media import url_to_path

    tl_in = _read(edited)
    clips = list(tl_in.video_tracks()[0].find_clips())
    by_sha, by_id = _still_candidates(engine, run_id)
    with Session(engine) as s:
        row = s.exec(select(db.Timeline).where(db.Timeline.run_id == run_id, db.Timeline.kind == "stills")).first()
    if row is None:
        raise StudioError(f"run {run_id} has no stills timeline", fix="conform a run that made stills", field="RUN")
    original = otio.adapters.read_from_file(row.path)
    old_clips = list(original.video_tracks()[0].find_clips())
    if len(clips) != len(old_clips):
        raise StudioError(
            f"the run's stills timeline holds {len(old_clips)} frame(s) "
            f"({', '.join(c.name for c in old_clips)}); this one has {len(clips)} clips",
            fix="keep one clip per frame; point a clip at another keyframe to change its stills",
            source=str(edited))
    rate = Fraction(old_clips[0].metadata["studio"]["rate"])
    out = otio.schema.Timeline(name=tl_in.name or original.name)
    out.global_start_time = original.global_start_time or otio.opentime.RationalTime(0, float(rate))
    out.metadata["studio"] = {**original.metadata.get("studio", {}), "parent_timeline": row.id,
                              "edited_from": str(edited), "code_version": CODE_VERSION}
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    out.tracks.append(track)
    errors: list[StudioError] = []
    frames: list[dict[str, Any]] = []
    used: set[int] = set()
    for i, clip in enumerate(clips):
        meta = dict(clip.metadata.get("studio", {}))
        url = getattr(clip.media_reference, "target_url", None) or ""
        where = f"clip {clip.name!r} at {_timecode(clip.range_in_parent().start_time)}"
        # The media is what the editor sees and swaps: a keyframe of the run there wins
        # over metadata the swap may have left behind.
        found = by_sha.get(url_to_path(url).stem)
        if found is None and meta.get("candidate_id") in by_id:
            found = by_id[meta["candidate_id"]]
            # known by its metadata only: its media must be the run's own file for it
            url = next((o.media_reference.target_url for o in old_clips
                        if o.metadata["studio"].get("candidate_id") == found[0].id), "")
        if found is None or not url:
            errors.append(StudioError(f"{where} is not a keyframe of this run",
                                      fix="use one of the run's keyframes (see the contact sheet)",
                                      source=str(edited)))
            continue
        channels = _channels(meta)
        j = next((k for k, o in enumerate(old_clips)
                  if channels and _channels(o.metadata["studio"]) == channels), i)
        if j in used:
            errors.append(StudioError(f"{where} makes the same stills ({', '.join(_channels(old_clips[j].metadata['studio']))}) "
                                      "as another clip", fix="keep one clip per frame", source=str(edited)))
            continue
        used.add(j)
        cand, shot = found
        old_clip = old_clips[j]
        old_meta = dict(old_clip.metadata["studio"])
        if cand.id == old_meta.get("candidate_id"):
            new_meta, url = old_meta, old_clip.media_reference.target_url
        else:
            with Session(engine) as s:
                prompt = s.get(db.PromptRecordRow, shot.prompt_hash)
            composition = (prompt.document if prompt else {}).get("composition", {})
            new_meta = {**old_meta, "beat_id": shot.beat_id, "shot_id": shot.id, "candidate_id": cand.id,
                        "seed": cand.seed, "keyframe_sha256": cand.media_sha256, "recipe_hash": cand.recipe_hash,
                        "prompt_hash": cand.prompt_hash, "focus": [shot.focus_x, shot.focus_y],
                        "subject_scale": composition.get("subject_scale", old_meta.get("subject_scale"))}
        ref = otio.schema.ExternalReference(target_url=url, available_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(0, float(rate)), otio.opentime.RationalTime(1, float(rate))))
        ref.metadata["studio"] = {"sha256": cand.media_sha256}
        new = otio.schema.Clip(name=shot.beat_id, media_reference=ref, source_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(0, float(rate)), otio.opentime.RationalTime(1, float(rate))))
        new.metadata["studio"] = new_meta
        track.append(new)
        frames.append({"channels": _channels(old_meta), "beat_before": old_meta.get("beat_id"),
                       "beat_after": shot.beat_id, "before": old_meta.get("candidate_id"), "after": cand.id})
    if errors:
        raise ManyErrors(errors)
    changes: dict[str, Any] = {"kind": "stills", "frames": frames}
    if len(frames) == 1:  # the one-frame timeline's swap, as before
        changes.update(frame_before=frames[0]["before"], frame_after=frames[0]["after"])
    return out, changes
