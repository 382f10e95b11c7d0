"""What the review page's watch view reads and writes (issue 12): the details of a
candidate or deliverable, browser-playable proxies, notes pinned to a video frame, and the
job's edit with every decision and note as an OTIO marker.

- ``GET /v1/jobs/{id}/details?candidate=CID`` or ``?deliverable=OUTPUT_ID`` (viewer): a
  candidate's recipe (backend, model and its weights' sha256, seed, steps, the prompt
  record, the recipe hash), its score and the scorer's reason, the deliverables of the job
  that use it and the decisions on it; a deliverable's channel spec, what ffprobe measures
  of the file, its loudness against the spec's target, each spec check (picture size,
  frame rate, duration, codec, file size, loudness, true peak) passed or failed, its
  lineage (``studio.lineage``: which candidates, clip masters, voice and music made it),
  and its rights: the brief's usage class, each model's licence and usage classes from
  the model catalog, the voice's and the music's as the run recorded them.
- ``GET /v1/jobs/{id}/outputs/{output_id}/proxy`` (viewer): the video as a browser plays
  it: the recorded file itself when Chromium plays it (H.264 4:2:0 with AAC or no sound in
  MP4); otherwise (HEVC, ProRes, DNxHR, MXF, PCM in MOV...) an H.264/AAC MP4 made once with
  ffmpeg and kept in the content-addressed store, found again through the action cache by
  the source's sha256. Same frames and timing as the source (no frame is dropped or
  added), so a note's frame number is the source's. Range requests as for a download.
- ``POST /v1/jobs/{id}/notes`` (editor): a note pinned to a frame (0-based, at the video's
  own rate) of a deliverable (``deliverable:SPEC``) or the animatic (``review:animatic``),
  recorded on the video's sha256 (studio.gates.note_on_media). An editor's, as a note on a
  candidate is: notes are the editing team's working feedback; an approver's word is the
  note of their sign-off, which names the release it covers. ``GET .../notes`` lists them.
- ``GET /v1/jobs/{id}/edit.otio`` (viewer): the job's edit (OpenTimelineIO JSON) with a
  marker for each pick, annotation and request for more on the clip of its beat, each
  frame note at its frame on the clip showing it, each sign-off on the video track; who,
  the note, codes and the content hash in the marker's ``metadata["studio"]``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import threading
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from studio import auth, db, gates, jobs, lineage
from studio.api.bodies import ApiError
from studio.api.deps import (
    ERRORS,
    JOB_ID,
    EngineDep,
    PrincipalDep,
    SettingsDep,
    bad_parameter,
    job_out,
    needs,
    not_found,
    visible,
)
from studio.api.outputs import OUTPUT_ID, _Asset, _Download, assets, check, single_range
from studio.api.schemas import ErrorOut, JobOut
from studio.errors import StudioError
from studio.settings import Settings

PROXY_VERSION = "proxy.1"
FFPROBE = "ffprobe"
FFMPEG = "ffmpeg"
# What Chromium plays as is: H.264 in 4:2:0 (its decoder has no 4:2:2/4:4:4 profiles) in
# MP4, with AAC (or MP3, Opus) sound or none. Anything else gets a proxy.
BROWSER_VIDEO = {"h264"}
BROWSER_PIX_FMTS = {"yuv420p", "yuvj420p"}
BROWSER_AUDIO = {"aac", "mp3", "opus"}
# ffmpeg's names for a channel spec's codecs (a JPEG still decodes as mjpeg).
FFMPEG_CODEC = {"h264": "h264", "hevc": "hevc", "png": "png", "jpeg": "mjpeg"}
LOUDNESS_TOLERANCE = 0.5  # LU either side of the target (what the conform's within_spec allows)
TARGET_RE = r"^(deliverable:[A-Za-z0-9][A-Za-z0-9._-]{0,99}|review:animatic)$"
FPS_RE = r"^\d{1,6}(/\d{1,6})?$"
GONE = {410: {"model": ErrorOut, "description": "the file was deleted or changed since the run recorded it"}}
NOT_VIDEO = {422: {"model": ErrorOut, "description": "a bad parameter or body (each problem listed), or an "
                                                    "output that is not a video"}}


# -- measuring a file ---------------------------------------------------------------------

_probed: dict[tuple[str, int, int, int], dict[str, Any]] = {}
_probed_lock = threading.Lock()


def _rate(text: str | None) -> Fraction | None:
    try:
        r = Fraction(str(text))
    except (ValueError, ZeroDivisionError):
        return None
    return r if r > 0 else None


def rate_text(rate: Fraction) -> str:
    return f"{rate.numerator}/{rate.denominator}"


def probe(path: Path) -> dict[str, Any]:
    """What ffprobe says of a media file: container, duration, bit rate, its first video
    stream (codec, profile, pixel format, size, exact frame rate, frame count) and first
    audio stream. Kept per file version (size, mtime, inode): a player's range requests
    do not run ffprobe again."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    with _probed_lock:
        if key in _probed:
            return _probed[key]
    proc = subprocess.run([FFPROBE, "-v", "error", "-show_entries",
                           "format=format_name,duration,bit_rate:stream=codec_type,codec_name,profile,pix_fmt,"
                           "width,height,r_frame_rate,avg_frame_rate,nb_frames,duration,sample_rate,channels,"
                           "bit_rate", "-of", "json", str(path)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise StudioError(f"ffprobe cannot read {path.name}: {proc.stderr.strip()[-200:]}",
                          fix="render the job again to make the file anew", source=path.name)
    info = json.loads(proc.stdout or "{}")
    fmt = info.get("format") or {}
    streams = info.get("streams") or []
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)

    def num(v: Any, kind: type = float) -> Any:
        try:
            return kind(v)
        except (TypeError, ValueError):
            return None

    duration = num(fmt.get("duration"))
    out: dict[str, Any] = {"container": fmt.get("format_name"), "duration": duration,
                           "bit_rate": num(fmt.get("bit_rate"), int), "bytes": st.st_size, "video": None,
                           "audio": None}
    if video is not None:
        rate = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))
        frames = num(video.get("nb_frames"), int)
        vdur = num(video.get("duration")) or duration
        if frames is None and rate is not None and vdur is not None:
            frames = round(vdur * rate)
        out["video"] = {"codec": video.get("codec_name"), "profile": video.get("profile"),
                        "pix_fmt": video.get("pix_fmt"), "width": num(video.get("width"), int),
                        "height": num(video.get("height"), int), "fps": rate_text(rate) if rate else None,
                        "frames": frames, "duration": vdur, "bit_rate": num(video.get("bit_rate"), int)}
    if audio is not None:
        out["audio"] = {"codec": audio.get("codec_name"), "sample_rate": num(audio.get("sample_rate"), int),
                        "channels": num(audio.get("channels"), int), "bit_rate": num(audio.get("bit_rate"), int)}
    with _probed_lock:
        if len(_probed) > 4096:
            _probed.clear()
        _probed[key] = out
    return out


def browser_plays(path: Path, info: dict[str, Any]) -> bool:
    """Whether Chromium plays the file as it is (see BROWSER_VIDEO)."""
    video, audio = info.get("video") or {}, info.get("audio")
    return (path.suffix.lower() in (".mp4", ".m4v") and "mp4" in str(info.get("container") or "")
            and video.get("codec") in BROWSER_VIDEO and video.get("pix_fmt") in BROWSER_PIX_FMTS
            and (audio is None or audio.get("codec") in BROWSER_AUDIO))


# -- the job's files ------------------------------------------------------------------------


def _asset(engine: Engine, job: Any, output_id: str) -> _Asset:
    found = next((a for a in assets(engine, job.id, job.run_id) if a.out["id"] == output_id), None)
    if found is None:
        raise ApiError(404, f"job {job.id} has no output {output_id!r}",
                       fix=f"GET /v1/jobs/{job.id}/outputs lists its outputs and their ids")
    return found


def _is_video(asset: _Asset) -> bool:
    return str(asset.out.get("media_type", "")).startswith("video/")


def _target_of(asset: _Asset) -> str | None:
    """The name a frame note uses for a video output: deliverable:SPEC (deliverable:SPEC.LOCALE
    where the brief ships in several locales) or review:animatic."""
    if asset.out["role"] == "deliverable" and asset.out.get("kind") == "video":
        locale = asset.out.get("locale")
        return f"deliverable:{asset.out['spec']}" + (f".{locale}" if locale else "")
    if asset.out["role"] == "review" and _is_video(asset) and "animatic" in asset.out["name"]:
        return "review:animatic"
    return None


def videos(engine: Engine, job: Any) -> list[tuple[str, _Asset]]:
    """The job's videos a note can be pinned to: (target, asset), the animatic first."""
    found = [(t, a) for a in assets(engine, job.id, job.run_id) if (t := _target_of(a))]
    return sorted(found, key=lambda ta: (ta[0] != "review:animatic", ta[0]))


@lru_cache(maxsize=8)
def _catalog(specs_dir: str | None, styles_dir: str | None) -> Any:
    from studio.specs import Catalog

    return Catalog(Path(specs_dir) if specs_dir else None, Path(styles_dir) if styles_dir else None)


def channel_spec(settings: Settings, name: str) -> Any:
    """The channel spec ``name`` from the server's catalog, or None when it knows none."""
    try:
        return _catalog(str(settings.specs_dir) if settings.specs_dir else None,
                        str(settings.styles_dir) if settings.styles_dir else None).spec(name)
    except StudioError:
        return None


@lru_cache(maxsize=8)
def _models(models_dir: str | None) -> Any:
    from studio.models import ModelRegistry

    return ModelRegistry(Path(models_dir) if models_dir else None)


def model_rights(settings: Settings, model_id: str) -> dict[str, Any]:
    """A model's licence and usage classes as the model catalog has them."""
    try:
        entry = _models(str(settings.models_dir) if settings.models_dir else None).entries.get(model_id)
    except StudioError:
        entry = None
    if entry is None:
        return {"id": model_id, "in_catalog": False, "licence": None, "licence_url": None, "usage_classes": [],
                "provenance": None, "note": "not a catalog model: a backend built into Studio (no weights)"}
    return {"id": model_id, "in_catalog": True, "licence": entry.licence, "licence_url": entry.licence_url,
            "usage_classes": list(entry.usage_classes), "provenance": entry.provenance,
            "weights_sha256": entry.weights_sha256}


def _manifest(engine: Engine, run_id: str | None) -> dict[str, Any]:
    if run_id is None:
        return {}
    with Session(engine) as s:
        run = s.get(db.Run, run_id)
    if run is None or not run.out_dir:
        return {}
    try:
        loaded = json.loads((Path(run.out_dir) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) and loaded.get("run_id") == run_id else {}


def _job_runs(job: Any) -> set[str]:
    return {r for r in ((job.gate or {}).get("run_id"), job.run_id) if r}


# -- details --------------------------------------------------------------------------------


def candidate_details(engine: Engine, settings: Settings, job: Any, candidate_id: str) -> dict[str, Any]:
    runs = _job_runs(job)
    with Session(engine) as s:
        cand = s.get(db.Candidate, candidate_id)
        shot = s.get(db.Shot, cand.shot_id) if cand is not None else None
        if cand is None or shot is None or shot.run_id not in runs:
            raise ApiError(404, f"job {job.id} has no candidate {candidate_id!r}",
                           fix=f"GET /v1/jobs/{job.id}/candidates lists them")
        score = s.exec(select(db.Score).where(db.Score.candidate_id == cand.id)
                       .order_by(db.Score.id.desc())).first()  # type: ignore[union-attr]
        prompt = s.get(db.PromptRecordRow, cand.prompt_hash)
        s.expunge_all()
    try:
        used = [d for d in lineage.where(engine, f"candidate:{cand.id}")["deliverables"] if d["run_id"] in runs]
    except StudioError:
        used = []  # no lineage recorded yet (the job waits at its selection gate)
    notes = [{"id": d.id, "kind": d.kind, "note": d.note, "codes": list(d.codes or []), "who": d.who,
              "created_at": d.created_at.isoformat(timespec="seconds")}
             for d in gates.decisions(engine, job.id) if d.candidate_id == cand.id]
    doc = prompt.document if prompt is not None else {}
    return {
        "kind": "candidate", "id": cand.id, "beat": shot.beat_id, "index": cand.index, "run_id": shot.run_id,
        "recipe": {"backend": cand.backend, "model_id": cand.model_id, "weights_sha256": cand.weights_sha256,
                   "seed": cand.seed, "steps": cand.steps, "width": cand.width, "height": cand.height,
                   "code_version": cand.code_version, "recipe_hash": cand.recipe_hash,
                   "prompt": {"hash": cand.prompt_hash, "positive": doc.get("positive"),
                              "negative": doc.get("negative"), "record": doc}},
        "keyframe_sha256": cand.media_sha256,
        "score": None if score is None else {"total": score.total, "scorer": score.scorer,
                                             "components": score.components, "reason": score.reason},
        "lineage": {"used_by": used},
        "rights": {"usage_class": (job.brief or {}).get("usage_class", "internal"),
                   "models": [model_rights(settings, cand.model_id)]},
        "decisions": notes,
    }


def _check(name: str, expected: Any, measured: Any, ok: bool | None, note: str = "") -> dict[str, Any]:
    return {"check": name, "expected": expected, "measured": measured,
            "result": "n/a" if ok is None else ("pass" if ok else "fail"), "note": note}


def spec_checks(spec: Any, d: db.Deliverable, info: dict[str, Any] | None,
                loudness: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The deliverable against its channel spec, each figure measured from the file."""
    if spec is None:
        return [_check("channel spec", d.spec, None, None, "the server's catalog has no such spec")]
    video = (info or {}).get("video") or {}
    width, height = video.get("width", d.width), video.get("height", d.height)
    out = [_check("picture size", f"{spec.width}x{spec.height}", f"{width}x{height}",
                  (width, height) == (spec.width, spec.height))]
    want_codec = FFMPEG_CODEC.get(spec.codec, spec.codec)
    out.append(_check("codec", spec.codec, video.get("codec"), video.get("codec") == want_codec if video else None))
    size = (info or {}).get("bytes", d.size)
    if spec.max_file_size:
        out.append(_check("file size", f"at most {spec.max_file_size} bytes", f"{size} bytes",
                          size <= spec.max_file_size))
    if spec.kind != "video":
        return out
    fps = _rate(video.get("fps") or d.fps)
    out.append(_check("frame rate", rate_text(spec.rate), rate_text(fps) if fps else None,
                      fps == spec.rate if fps else False))
    duration = video.get("duration") or (info or {}).get("duration") or d.duration
    planned = (d.params or {}).get("duration")
    frame = float(1 / spec.rate)
    limits = [f"at least {spec.min_duration:g} s"] if spec.min_duration else []
    if spec.max_duration:
        limits.append(f"at most {spec.max_duration:g} s")
    expected = ", ".join(([f"{planned:g} s (the edit)"] if planned else []) + limits) or "any"
    ok = duration is not None and duration >= spec.min_duration - frame \
        and (spec.max_duration is None or duration <= spec.max_duration + frame) \
        and (planned is None or abs(duration - planned) <= frame + 1e-6)
    out.append(_check("duration", expected, None if duration is None else round(duration, 4), ok))
    if spec.loudness_target is not None:
        if not loudness:
            out.append(_check("loudness", f"{spec.loudness_target:g} LUFS", None, None, "no sound measured"))
        elif loudness.get("silent"):
            out.append(_check("loudness", f"{spec.loudness_target:g} LUFS", loudness.get("integrated"), None,
                              "the soundtrack is silent: there is no programme loudness to meet"))
        else:
            integrated = loudness.get("integrated")
            out.append(_check("loudness", f"{spec.loudness_target:g} ± {LOUDNESS_TOLERANCE:g} LUFS", integrated,
                              integrated is not None
                              and abs(integrated - spec.loudness_target) <= LOUDNESS_TOLERANCE))
    if spec.true_peak is not None and loudness and not loudness.get("silent"):
        peak = loudness.get("true_peak")
        out.append(_check("true peak", f"at most {spec.true_peak:g} dBTP", peak,
                          peak is not None and peak <= spec.true_peak))
    return out


def _walk(item: dict[str, Any], found: dict[str, dict[str, str]]) -> None:
    found.setdefault(item["kind"], {})[item["id"]] = item["label"]
    for child in item.get("children", []):
        _walk(child, found)


def deliverable_details(engine: Engine, settings: Settings, job: Any, asset: _Asset) -> dict[str, Any]:
    with Session(engine) as s:
        d = s.get(db.Deliverable, asset.out["id"])
        if d is None:
            raise ApiError(404, f"output {asset.out['id']} of job {job.id} is not a deliverable",
                           fix=f"GET /v1/jobs/{job.id}/outputs lists the deliverables (role deliverable)")
        s.expunge(d)
    spec = channel_spec(settings, d.spec)
    info: dict[str, Any] | None = None
    problem = None
    try:
        check(asset)
        assert asset.file is not None
        info = probe(asset.file)
    except ApiError as e:
        problem = e.detail
    except StudioError as e:
        problem = e.line()
    loudness = (d.params or {}).get("loudness")
    if loudness is not None:
        loudness = dict(loudness)
        target = spec.loudness_target if spec is not None and spec.loudness_target is not None else loudness.get("target")
        loudness["target"] = target
        integrated = loudness.get("integrated")
        loudness["off_target"] = None if loudness.get("silent") or integrated is None or target is None \
            else round(integrated - target, 2)
    tree = lineage.lineage(engine, d.id)
    nodes: dict[str, dict[str, str]] = {}
    _walk(tree["tree"], nodes)
    manifest = _manifest(engine, d.run_id)
    sound = manifest.get("sound") or {}
    voice = sound.get("voice")
    music = sound.get("music")
    return {
        "kind": "deliverable", "id": d.id, "spec_name": d.spec, "run_id": d.run_id, "sha256": d.sha256,
        "available": problem is None, "problem": problem,
        "spec": None if spec is None else spec.model_dump(mode="json", by_alias=True),
        "safe_rect": None if spec is None else list(spec.safe_rect()),
        "probe": info,
        "loudness": loudness,
        "checks": spec_checks(spec, d, info, loudness),
        "lineage": {
            "tree": tree["tree"], "edges": tree["edges"],
            "candidates": sorted(nodes.get("candidate", {}).values()),
            "clips": sorted(nodes.get("render", {}).values()),
            "models": sorted(nodes.get("model", {})),
            "voices": sorted(nodes.get("voice", {})),
            "music": sorted({*nodes.get("track", {}), *nodes.get("composer", {})}),
            "audio": sorted(nodes.get("audio", {}).values()),
        },
        "rights": {
            "usage_class": (job.brief or {}).get("usage_class", "internal"),
            "models": [model_rights(settings, m) for m in sorted(nodes.get("model", {}))],
            "voice": voice,
            "music": None if music is None else {k: music.get(k) for k in ("source", "track", "rights")},
            "cues": [{"id": c.get("id"), "effect": c.get("effect"), "rights": c.get("rights")}
                     for c in sound.get("cues") or []],
        },
    }


# -- proxies ---------------------------------------------------------------------------------

_making: dict[str, threading.Lock] = {}
_making_lock = threading.Lock()


def proxy_for(engine: Engine, settings: Settings, source: Path, sha256: str, run_id: str) -> tuple[Path, str, str]:
    """An H.264/AAC MP4 of ``source`` (by its ``sha256``): (path in the store, its sha256,
    "cached" | "made"). Made once: the action cache keys it by the source's sha256, and one
    request makes it while others for the same source wait."""
    from studio.cache import ActionCache, key_of
    from studio.store import MediaRef, Store

    store = Store(settings.store_root)
    cache = ActionCache(engine, store)
    key = key_of("proxy", PROXY_VERSION, {"source_sha256": sha256})
    with _making_lock:
        lock = _making.setdefault(sha256, threading.Lock())
    with lock:
        hit = cache.get(key)
        if hit is not None:
            ref = MediaRef.from_dict(hit.outputs["file"])
            return store.path(ref), ref.sha256, "cached"
        info = probe(source)
        args = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", str(source),
                "-map", "0:v:0", "-map", "0:a:0?",
                # Every frame where it was: no frame dropped or duplicated, so a note's frame
                # number on the proxy is the source's.
                "-fps_mode", "passthrough",
                "-vf", "scale='min(1920,iw)':-2:flags=bicubic,format=yuv420p",
                "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-profile:v", "high",
                "-c:a", "aac", "-b:a", "160k", "-movflags", "+faststart"]
        with store.writer(".mp4") as (tmp, made):
            proc = subprocess.run([*args, str(tmp)], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise ApiError(422, f"ffmpeg could not make a playable copy of {source.name}: "
                                    f"{proc.stderr.strip()[-300:]}", fix="download the file instead")
        ref = made[0]
        cache.put(key, "proxy", PROXY_VERSION, {"file": ref.to_dict(), "source_sha256": sha256,
                                                "source": {k: info.get(k) for k in ("container", "video", "audio")}},
                  run_id)
        return store.path(ref), ref.sha256, "made"


# -- OTIO with markers ------------------------------------------------------------------------

MARKER_COLORS = {"pick": "CYAN", "annotate": "YELLOW", "more": "ORANGE", "approve": "GREEN", "reject": "RED",
                 "note": "MAGENTA"}


def edit_with_markers(path: Path, decisions: list[db.Decision], current: dict[str, str]) -> str:
    """The edit at ``path`` with a marker for each decision (see the module docstring);
    ``current`` maps a note's target to the sha256 of the video it names now."""
    import opentimelineio as otio

    tl = otio.adapters.read_from_file(str(path))
    track = tl.video_tracks()[0]
    clips = list(track.find_clips())
    by_beat = {c.metadata.get("studio", {}).get("beat_id", c.name): c for c in clips}

    def meta(d: db.Decision) -> dict[str, Any]:
        return {"studio": {"decision": d.id, "kind": d.kind, "beat": d.beat, "candidate_id": d.candidate_id,
                           "role": d.role, "codes": list(d.codes or []), "note": d.note, "who": d.who,
                           "content_sha256": d.content_sha256, "frame": d.frame, "fps": d.fps,
                           "target": d.target, "run_id": d.run_id,
                           "created_at": d.created_at.isoformat(timespec="seconds")}}

    def marker(name: str, at: Any, d: db.Decision, color: str) -> Any:
        m = otio.schema.Marker(name=name, marked_range=otio.opentime.TimeRange(at, otio.opentime.RationalTime(0, at.rate)),
                               color=getattr(otio.schema.MarkerColor, color), comment=d.note)
        m.metadata.update(meta(d))
        return m

    for d in decisions:
        if d.target is not None and d.frame is not None and d.fps:
            # A frame note: its frame's time on the edit, on the clip showing it there.
            seconds = Fraction(d.frame) / Fraction(d.fps)
            for clip in clips:
                placed = clip.range_in_parent()
                rate = placed.start_time.rate
                # The edit frame the video's frame starts in (the rates may differ).
                t = otio.opentime.RationalTime(math.floor(float(seconds) * rate + 1e-6), rate)
                if placed.start_time.value <= t.value < placed.end_time_exclusive().value:
                    source = clip.source_range or clip.available_range()
                    at = source.start_time + (t - placed.start_time).rescaled_to(source.start_time.rate)
                    m = marker(f"note {d.target} frame {d.frame}", at, d, MARKER_COLORS["note"])
                    m.metadata["studio"]["counts"] = current.get(d.target) == d.content_sha256
                    clip.markers.append(m)
                    break
        elif d.beat and d.beat in by_beat:
            clip = by_beat[d.beat]
            source = clip.source_range or clip.available_range()
            label = {"pick": "pick", "annotate": "note", "more": "more"}.get(d.kind, d.kind)
            clip.markers.append(marker(f"{label} {d.beat}" + (f" {d.candidate_id}" if d.candidate_id else ""),
                                       source.start_time, d, MARKER_COLORS.get(d.kind, "WHITE")))
        elif d.kind in ("approve", "reject"):
            at = otio.opentime.RationalTime(0, (track.available_range().start_time.rate if clips else 24))
            track.markers.append(marker(f"{d.kind} {d.role}", at, d, MARKER_COLORS[d.kind]))
    return otio.adapters.write_to_string(tl, "otio_json")


# -- the API ----------------------------------------------------------------------------------


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: str = Field(max_length=120, pattern=TARGET_RE,
                        description="the video: deliverable:SPEC (a channel's deliverable; deliverable:SPEC.LOCALE in a brief "
                                    "of several locales) or review:animatic")
    frame: int = Field(ge=0, le=10_000_000, description="0-based frame number in that video")
    fps: str = Field(max_length=20, pattern=FPS_RE, description="the video's own frame rate, e.g. 30/1 or 30000/1001")
    note: str = Field("", max_length=gates.MAX_NOTE)
    codes: list[Literal[gates.REASON_CODES]] = Field([], max_length=len(gates.REASON_CODES))  # type: ignore[valid-type]


class NoteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    job_id: str
    kind: str = Field(description="annotate")
    target: str = Field(description="deliverable:SPEC or review:animatic")
    frame: int = Field(description="0-based")
    fps: str
    codes: list[str] = []
    note: str = ""
    who: str
    content_sha256: str = Field(description="the video's sha256 the note was made on")
    run_id: str | None = None
    created_at: Any = None
    counts: bool = Field(True, description="false when the video it was made on is not the job's current one")


class NoteListOut(BaseModel):
    notes: list[NoteOut]


class NoteResultOut(BaseModel):
    note: NoteOut
    job: JobOut


class DetailsOut(BaseModel):
    """A candidate's or a deliverable's details (see GET /v1/jobs/{job_id}/details)."""

    model_config = ConfigDict(extra="allow")
    kind: str = Field(description="candidate | deliverable")
    id: str
    lineage: dict[str, Any]
    rights: dict[str, Any]


def _note_out(d: db.Decision, current: dict[str, str]) -> dict[str, Any]:
    out = NoteOut.model_validate(d).model_dump(mode="json")
    out["created_at"] = d.created_at.isoformat()
    out["counts"] = current.get(str(d.target)) == d.content_sha256
    return out


def _who(principal: auth.Principal) -> str:
    return f"{principal.token_id}:{principal.name}" if principal.name else principal.token_id


def _current(engine: Engine, job: Any) -> dict[str, str]:
    return {t: str(a.out.get("sha256")) for t, a in videos(engine, job)}


def add_routes(v1: APIRouter) -> None:
    binary = {"video/mp4": {"schema": {"type": "string", "format": "binary"}}}

    @v1.get("/jobs/{job_id}/details", response_model=DetailsOut, tags=["review"],
            responses={404: {"model": ErrorOut, "description": "no such job, or no such candidate or deliverable "
                                                                "of it"}, 422: ERRORS[422]})
    def details(engine: EngineDep, settings: SettingsDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID],
                candidate: Annotated[str | None, Query(max_length=100, description="a candidate's id")] = None,
                deliverable: Annotated[str | None, Query(max_length=100, description="a deliverable's output id")] = None,
                ) -> dict[str, Any]:
        """The details panel: a candidate's recipe (model, weights hash, seed, steps, prompt),
        score and reason, where it is used; or a deliverable's spec, ffprobe figures,
        loudness against the target, spec checks, lineage, and rights and usage class."""
        job = visible(engine, job_id, principal)
        if (candidate is None) == (deliverable is None):
            raise ApiError(422, "give one of ?candidate=ID or ?deliverable=OUTPUT_ID",
                           fix=f"GET /v1/jobs/{job_id}/candidates and .../outputs list the ids",
                           problems=[{"field": "candidate", "message": "exactly one of candidate, deliverable",
                                      "fix": "give one", "line": None, "stage": None, "source": None,
                                      "text": "candidate: give one of ?candidate=ID or ?deliverable=OUTPUT_ID"}])
        if candidate is not None:
            return candidate_details(engine, settings, job, candidate)
        asset = _asset(engine, job, str(deliverable))
        if asset.out["role"] != "deliverable":
            raise ApiError(404, f"output {deliverable} of job {job.id} is not a deliverable",
                           fix=f"GET /v1/jobs/{job.id}/outputs lists the deliverables (role deliverable)")
        return deliverable_details(engine, settings, job, asset)

    @v1.get("/jobs/{job_id}/outputs/{output_id}/proxy", tags=["review"], response_class=FileResponse,
            responses={200: {"content": binary, "description": "a browser-playable MP4: the file itself, or its "
                                                               "H.264/AAC proxy (X-Studio-Proxy says which)"},
                       206: {"content": binary, "description": "the requested byte range (Content-Range)"},
                       404: {"model": ErrorOut, "description": "no such job, or no such output of it"},
                       **GONE, **NOT_VIDEO,
                       416: {"model": ErrorOut, "description": "the range starts past the file's end"}})
    def proxy(engine: EngineDep, settings: SettingsDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID],
              output_id: Annotated[str, OUTPUT_ID],
              range_: Annotated[str | None, Header(alias="Range", max_length=200,
                                                   description="bytes=a-b, bytes=a- or bytes=-n")] = None,
              ) -> Response:
        """A video output as Chromium plays it: itself when it is H.264/AAC MP4, else an
        H.264 proxy (same frames and timing) made once and kept in the store."""
        job = visible(engine, job_id, principal)
        asset = _asset(engine, job, output_id)
        if not _is_video(asset) or asset.out.get("kind") == "still":
            raise ApiError(422, f"output {output_id} ({asset.out['name']}) is not a video",
                           fix=f"download it: GET /v1/jobs/{job.id}/outputs/{output_id}")
        st = check(asset)
        assert asset.file is not None
        try:
            info = probe(asset.file)
        except StudioError as e:
            raise ApiError(422, e.line(), fix=e.fix) from None
        if browser_plays(asset.file, info):
            path, sha, how = asset.file, str(asset.out.get("sha256")), "original"
        else:
            path, sha, how = proxy_for(engine, settings, asset.file, str(asset.out["sha256"]), str(job.run_id))
            st = os.stat(path)
        wanted = single_range(range_, st.st_size)
        if wanted is False:
            raise ApiError(416, f"the range {range_!r} starts past the end of the video ({st.st_size} bytes)",
                           fix=f"ask for bytes 0-{max(st.st_size - 1, 0)} or a part of them",
                           headers={"Content-Range": f"bytes */{st.st_size}"})
        return _Download(path, media_type="video/mp4", stat_result=st, honour_range=wanted is not None,
                         headers={"ETag": f'"{sha}"', "X-Studio-Proxy": how,
                                  "Cache-Control": "private, max-age=86400"})

    @v1.post("/jobs/{job_id}/notes", response_model=NoteResultOut, status_code=201, tags=["review"],
             openapi_extra=needs("editor"),
             responses={404: ERRORS[404], **GONE, 422: ERRORS[422]})
    async def add_note(engine: EngineDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID],
                       body: NoteIn) -> dict[str, Any]:
        """A note pinned to a frame (0-based) of a deliverable or the animatic, at the
        video's own frame rate, recorded on the video's sha256. Changes no state."""
        job = visible(engine, job_id, principal)
        return await run_in_threadpool(_add_note, engine, job, principal, body)

    @v1.get("/jobs/{job_id}/notes", response_model=NoteListOut, tags=["review"], responses={404: ERRORS[404]})
    def list_notes(engine: EngineDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID],
                   target: Annotated[str | None, Query(max_length=120, description="only this video's")] = None,
                   ) -> dict[str, Any]:
        """The job's frame notes, oldest first, each with its video, frame, fps and whether
        that video is still the job's current one."""
        job = visible(engine, job_id, principal)
        current = _current(engine, job)
        return {"notes": [_note_out(d, current) for d in gates.decisions(engine, job.id)
                          if d.target is not None and d.frame is not None and target in (None, d.target)]}

    @v1.get("/jobs/{job_id}/edit.otio", tags=["review"],
            responses={200: {"content": {"application/json": {"schema": {"type": "object"}}},
                             "description": "the edit (OTIO JSON) with the decisions as markers"},
                       404: {"model": ErrorOut, "description": "no such job, or it has no edit yet"}, **GONE})
    def edit_otio(engine: EngineDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID]) -> Response:
        """The job's edit as OpenTimelineIO JSON with every pick, annotation, request for
        more, sign-off and frame note as a marker (who, note, codes, content hash in its
        metadata)."""
        job = visible(engine, job_id, principal)
        edit = next((a for a in assets(engine, job.id, job.run_id)
                     if a.out["role"] == "timeline" and a.out.get("kind") == "edit"
                     and a.out.get("format") == "otio_json"), None)
        if edit is None:
            raise ApiError(404, f"job {job.id} has no edit yet", fix="wait until its render has made the edit "
                                                                     "(it waits for sign-off or has succeeded)")
        check(edit)
        assert edit.file is not None
        text = edit_with_markers(edit.file, gates.decisions(engine, job.id), _current(engine, job))
        return Response(text, media_type="application/json", headers={
            "Content-Disposition": f'attachment; filename="{job.id}_edit.otio"'})


def _add_note(engine: Engine, job: Any, principal: auth.Principal, body: NoteIn) -> dict[str, Any]:
    found = dict(videos(engine, job))
    asset = found.get(body.target)
    if asset is None:
        have = ", ".join(found) or "none yet"
        raise bad_parameter(StudioError(f"job {job.id} has no video {body.target}",
                                        fix=f"pin the note to one of its videos: {have}", field="target"))
    check(asset)
    assert asset.file is not None
    info = probe(asset.file)
    video = info.get("video") or {}
    rate = _rate(video.get("fps"))
    if rate is None or not video.get("frames"):
        raise bad_parameter(StudioError(f"{body.target} has no frame rate or frames to pin a note to",
                                        fix="render the job again", field="target"))
    if _rate(body.fps) != rate:
        raise bad_parameter(StudioError(f"fps {body.fps} is not {body.target}'s rate ({rate_text(rate)})",
                                        fix=f"send the video's own rate: {rate_text(rate)}", field="fps"))
    try:
        out = gates.note_on_media(engine, job.id, target=body.target, frame=body.frame, fps=rate_text(rate),
                                  frames=int(video["frames"]), content_sha256=str(asset.out["sha256"]),
                                  who=_who(principal), codes=list(body.codes), note=body.note, run_id=job.run_id)
    except jobs.UnknownJob:
        raise not_found(job.id) from None
    except StudioError as e:
        raise bad_parameter(e) from None
    return {"note": _note_out(out.decision, {body.target: str(asset.out["sha256"])}), "job": job_out(out.job)}
