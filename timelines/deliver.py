"""Stage ``conform``: the edit timeline, conformed and encoded once per channel spec.

The conform reads the written ``.otio`` (not in-memory state), so an editor's timeline
can go through the same path. Every deliverable is measured with ffprobe afterwards;
the manifest and database carry the measured figures, not the requested ones.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio

from studio import db
from studio.brief import Brief
from studio.cache import file_digest, key_of
from studio.context import StageEnv
from studio.copyfit import StillCopy, brand_inputs, brand_kit, still_copies
from studio.errors import StageError
from studio.media import url_to_path
from studio.specs import Catalog, ChannelSpec, StylePack
from studio.store import sha256_file

CODE_VERSION = "deliver.2"  # 2: segmented conform (per-cut segments in the store, stream-copy concat)


def _rate(meta: dict[str, Any], fallback: float) -> Fraction:
    r = meta.get("rate")
    return Fraction(r) if r else Fraction(fallback).limit_denominator(1001)


def conform_clips(timeline_path: Path) -> list[Any]:
    """The timeline's clips as the conform needs them; sizes are measured from the media
    (a video model's clips need not match the keyframe size)."""
    from timelines.conform import ConformClip, probe

    tl = otio.adapters.read_from_file(str(timeline_path))
    sizes: dict[Path, tuple[int, int]] = {}
    out = []
    # The picture is the first video track; audio tracks are the mix stage's.
    for clip in tl.video_tracks()[0].find_clips():
        meta = dict(clip.metadata.get("studio", {}))
        sr = clip.source_range or clip.available_range()
        rate = _rate(meta, sr.start_time.rate)
        start = round(sr.start_time.to_frames(float(rate)))
        frames = round(sr.duration.to_frames(float(rate)))
        focus = tuple(meta.get("focus", (0.5, 0.5)))
        path = url_to_path(clip.media_reference.target_url)
        if path not in sizes:
            info = probe(path)
            sizes[path] = (int(info["width"]), int(info["height"]))
        out.append(ConformClip(
            path=path, start_frame=start, frames=frames,
            rate=rate, width=sizes[path][0], height=sizes[path][1],
            focus=(float(focus[0]), float(focus[1])), name=clip.name,
        ))
    return out


def measured(path: Path) -> dict[str, Any]:
    """What ffprobe says of a deliverable (size, rate, duration, codec) and its sha256:
    recorded with the conform's action, so a reused deliverable is recorded without
    probing it again."""
    from timelines.conform import probe

    info = probe(path)
    fps = info.get("fps")
    return {"width": info["width"], "height": info["height"], "codec": info.get("codec"),
            "fps": f"{fps.numerator}/{fps.denominator}" if fps else None,
            "duration": float(info["duration"]) if info.get("duration") is not None else None,
            "sha256": sha256_file(path)}


def _record(env: StageEnv, spec: ChannelSpec, path: Path, timeline_id: str | None,
            params: dict[str, Any], info: dict[str, Any] | None = None) -> dict[str, Any]:
    info = info or measured(path)
    sha = info["sha256"]
    final = env.out_dir / path.relative_to(env.work_dir)
    entry = {
        "spec": spec.name, "kind": spec.kind, "path": str(path.relative_to(env.work_dir)),
        "sha256": sha, "width": info["width"], "height": info["height"],
        "fps": info["fps"] if spec.kind == "video" else None,
        "duration": round(float(info["duration"]), 4) if spec.kind == "video" else None,
        "size": path.stat().st_size, "codec": info.get("codec"),
    }
    if params.get("locale"):
        entry["locale"] = params["locale"]  # one of several the brief ships in
    brand = (params.get("copy") or params.get("graphics") or {}).get("inputs")
    if brand:
        entry["copy_inputs"] = brand  # the copy, font and logo it shows, with their hashes and rights
    if "loudness" in params:
        entry["loudness"] = params["loudness"]
    if "captions" in params:
        entry["captions"] = params["captions"]
    if spec.max_file_size and entry["size"] > spec.max_file_size:
        raise StageError(
            f"{path.name} is {entry['size']} bytes, over the spec's {spec.max_file_size}",
            fix="raise the CRF or lower the bitrate in the spec", stage="conform", field=spec.name,
        )
    for crop in params.get("crops", []):
        if not crop.get("focus_in_safe", True):
            env.warn(f"{spec.name}: shot {crop.get('clip')}: the focus point sits outside the safe area "
                     "even after tightening; move the subject (beat focus) or check the framing")
    with env.session() as s:
        s.add(db.Deliverable(
            id=db.new_id("dlv"), run_id=env.run_id, timeline_id=timeline_id, spec=spec.name, kind=spec.kind,
            path=str(final), sha256=sha, width=entry["width"], height=entry["height"], fps=entry["fps"],
            duration=entry["duration"], size=entry["size"], code_version=CODE_VERSION,
            params={k: v for k, v in params.items() if k != "command"} | {"command": params.get("command")},
        ))
    return entry


def _measure_loudness(path: Path, master: dict[str, Any]) -> dict[str, Any]:
    """The deliverable's own audio, measured again by ffmpeg's ebur128 (not the meter the
    master was made with): what ships is what is reported."""
    from studio.probe import ebur128

    m = ebur128(path, stage="conform")
    target, ceiling = master["target_lufs"], master["true_peak_ceiling"]
    if master.get("silent"):
        # Silence has no true peak (-inf is not JSON) and cannot meet a loudness target.
        return {"integrated": m["integrated"], "true_peak": None, "lra": None, "target": target,
                "ceiling": ceiling, "meter": "ffmpeg ebur128", "silent": True, "within_spec": False}
    return {"integrated": m["integrated"], "true_peak": m["true_peak"], "lra": m.get("lra"),
            "target": target, "ceiling": ceiling, "meter": "ffmpeg ebur128",
            "within_spec": abs(m["integrated"] - target) <= 0.5 and m["true_peak"] <= ceiling}


def still_frames(timeline_path: Path, specs: list[ChannelSpec]) -> dict[str, Any]:
    """The stills timeline's clip for each still spec: the clip whose
    ``metadata["studio"]["channels"]`` names it (a timeline written before channels were
    recorded holds one clip, which every still is cut from)."""
    clips = list(otio.adapters.read_from_file(str(timeline_path)).find_clips())
    out: dict[str, Any] = {}
    for clip in clips:
        for name in clip.metadata.get("studio", {}).get("channels", []):
            out.setdefault(name, clip)
    for spec in specs:
        if spec.name in out:
            continue
        if len(clips) == 1 and "channels" not in clips[0].metadata.get("studio", {}):
            out[spec.name] = clips[0]
        else:
            raise StageError(f"the stills timeline has no frame for {spec.name}",
                             fix="keep one clip per still beat, with Studio's clip metadata",
                             stage="conform", field=spec.name, source=str(timeline_path))
    return out


def clip_grades(env: StageEnv, timeline_path: Path) -> list[dict[str, Any] | None]:
    """The grade each cut's shot master was made with (its Render row's ``params["grade"]``,
    found through the media reference's render id), None for a master made before the
    clips stage graded (or a clip Studio did not render)."""
    tl = otio.adapters.read_from_file(str(timeline_path))
    ids = [(getattr(c.media_reference, "metadata", {}) or {}).get("studio", {}).get("render_id")
           for c in tl.video_tracks()[0].find_clips()]
    with env.session() as s:
        rows = {rid: s.get(db.Render, rid) for rid in set(ids) if rid}
        params = {rid: dict(r.params or {}) for rid, r in rows.items() if r is not None}
    return [params.get(rid, {}).get("grade") if rid else None for rid in ids]


def _finishing_record(params: dict[str, Any], grades: list[dict[str, Any] | None]) -> None:
    """Say in the deliverable's finishing which LUT graded it (lineage links deliverable ->
    LUT from ``finishing.lut``) and that the clips stage applied it, once per shot."""
    luts = {(g["lut"], g["lut_sha256"]) for g in grades if g}
    if not luts:
        return
    (path, sha), *more = sorted(luts)
    params["finishing"] = {**params["finishing"], "lut": path, "lut_sha256": sha,
                           "graded_in": "clips"}
    if more:  # masters of one run share a LUT; an edit mixing runs may not
        params["finishing"]["luts"] = [{"lut": p, "lut_sha256": h} for p, h in sorted(luts)]


# What of a spec says nothing about a deliverable's pixels or sound: the platforms'
# disclosure labels (signed in after the conform), the QC battery's thresholds and the
# medium (which licences the policy asks for: studio.policy).
NOT_IN_KEY = {"disclosure", "qc", "medium"}


def spec_key(spec: ChannelSpec) -> dict[str, Any]:
    """The spec as a deliverable's key holds it: everything that shapes the file."""
    return spec.model_dump(mode="json", by_alias=True, exclude=NOT_IN_KEY)


def conform_recipe(edit_key: str, spec: ChannelSpec, *, lut_sha: str | None, grain: float, sharpen: float,
                   preset: str, master: str | None, captions: dict[str, Any], graph: str,
                   graphics: dict[str, Any] | None = None) -> dict[str, Any]:
    """A video deliverable's content inputs: the edit (timelines.assemble.edit_recipe), the
    spec, the finishing, the encoder preset, the channel's audio master, the captions
    settings and the supers and end card (timelines.graphics.graphics_recipe). What its
    action key is made from; `studio plan` computes the same."""
    dumped = spec_key(spec)
    if dumped.get("legal_min_seconds") is None:
        # Added later: left out while unset, so deliverables made before keep their keys.
        dumped.pop("legal_min_seconds", None)
    doc = {"edit": edit_key, "spec": dumped,
           "finishing": {"lut": lut_sha, "grain": grain, "sharpen": sharpen}, "preset": preset,
           "master": master, "captions": captions, "graph": graph}
    if graphics is not None:  # a spot without supers or end card keeps the key it had
        doc["graphics"] = graphics
    return doc


def captions_recipe(brief: Brief, code_version: str) -> dict[str, Any]:
    """What of the captions a deliverable's key holds: on or off, their code, and the words
    they show. The words follow the voice lines (in the edit's key) except where a locale
    ships subtitled: the first locale's voice under this locale's text."""
    return {"code_version": code_version, "on": brief.captions, "locale": brief.pass_locale,
            "text": [b.narration_in(brief.pass_locale).strip() for b in brief.beats] if brief.captions else []}


def _jsonable_params(params: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(params, default=str))


@dataclass
class ConformInputs:
    brief: Brief
    video_specs: list[ChannelSpec]
    still_specs: list[ChannelSpec]
    style: StylePack
    lut: Path | None  # the style's LUT file (graded into the masters; here for old, ungraded ones)
    timelines: dict[str, dict[str, Any]]
    masters: dict[str, dict[str, Any]]  # by spec: the channel's audio master
    captions: dict[str, dict[str, Any]]  # by spec: files and burn-in overlays
    edit_key: str | None  # the edit as content: with the spec and the rest, a deliverable's key
    master_keys: dict[str, str]  # by spec: the audio master's key
    catalog: Catalog  # the style pack's file (its brand's logo and font are relative to it)


@dataclass
class ConformOutputs:
    deliverables: list[dict[str, Any]]
    counts: dict[str, int]


def conform_deliverables(env: StageEnv, inputs: ConformInputs) -> ConformOutputs:
    from timelines.conform import VideoJob, conform_videos

    counts = {"reused": 0, "made": 0}
    deliverables: list[dict[str, Any]] = []
    finishing = inputs.style.finishing
    lut = inputs.lut
    if inputs.video_specs:
        tl = inputs.timelines["edit"]
        clips = conform_clips(tl["path"])
        # The look is in the shot masters (graded once per shot in the clips stage); the
        # conform adds grain and sharpening only. Masters from before that (an old run's
        # edit conformed again) carry no grade: those still get the LUT here.
        grades = clip_grades(env, tl["path"])
        conform_lut = lut if not any(grades) else None
        from studio.cache import ActionCache, materialize
        from timelines.captions import CODE_VERSION as CAPTIONS_VERSION
        from timelines.conform import CODE_VERSION as GRAPH_VERSION
        from timelines.graphics import CODE_VERSION as GRAPHICS_VERSION
        from timelines.graphics import FrameReader, build_graphics, graphics_recipe, read_titles

        cache = ActionCache(env.engine, env.store)
        jobs: list[VideoJob] = []
        keys: dict[str, str] = {}
        graphics: dict[str, dict[str, Any]] = {}
        frames = FrameReader(clips)  # the masters' frames the supers are fitted over, read once
        # The supers and end card where the edit's graphics track has them (an editor may
        # have moved, trimmed, dropped or swapped them); an edit without one: from the brief.
        titles = read_titles(otio.adapters.read_from_file(str(tl["path"])))
        for spec in inputs.video_specs:
            master = inputs.masters.get(spec.name)
            job = VideoJob(
                spec=spec, out=env.work_dir / "deliverables" / spec.name / f"{env.file_stem(spec.name)}.mp4",
                audio=env.store.path(master["ref"]) if master else None, audio_copy=master is not None,
                overlays=inputs.captions.get(spec.name, {}).get("overlays", []))
            if inputs.edit_key is not None:
                doc = conform_recipe(
                    inputs.edit_key, spec, lut_sha=file_digest(lut) if lut else None, grain=finishing.grain,
                    sharpen=finishing.sharpen, preset=env.settings.x264_preset,
                    master=inputs.master_keys.get(spec.name),
                    captions=captions_recipe(inputs.brief, CAPTIONS_VERSION),
                    graph=GRAPH_VERSION, graphics=graphics_recipe(inputs.brief, spec, inputs.catalog))
                key = key_of("conform", CODE_VERSION, doc)
                env.recipes.setdefault("conform", {})[spec.name] = {"key": key, "doc": doc}
                hit = cache.get(key)
                if hit is not None:
                    # The same edit, spec, finishing and sound made this file before: copied
                    # from the store and recorded, no ffmpeg.
                    materialize(env.store, hit.outputs["file"], job.out)
                    params = {**hit.outputs["params"], "reused_from": hit.run_id}
                    # The caption files are this run's (their names carry its version); the
                    # cached record names the run that made the video.
                    params.pop("captions", None)
                    caps = inputs.captions.get(spec.name, {})
                    if caps:
                        params["captions"] = {k: v for k, v in caps.items() if k != "overlays"}
                    params.pop("locale", None)
                    if env.locale:
                        params["locale"] = env.locale
                    deliverables.append(_record(env, spec, job.out, tl["id"], params, info=hit.outputs["info"]))
                    env.reporter.advance("conform", spec=spec.name)
                    continue
                keys[spec.name] = key
            # Supers and the end card, set over this channel's own frames of the edit,
            # burned in under the captions (which stay readable on top) in the same pass.
            boxes = inputs.captions.get(spec.name, {}).get("boxes") or []
            shown = build_graphics(inputs.brief, spec, clips, inputs.catalog,
                                   env.scratch_dir / "graphics" / spec.name,
                                   captions_top=min((int(b[1]) for b in boxes), default=None), frames=frames,
                                   warn=env.warn, titles=titles)
            if shown:
                style = inputs.catalog.style(inputs.brief.style_pack)
                texts = [{"field": f"{g.field}.{t['role']}", "text": t["text"]} for g in shown
                         for t in (g.placement or {}).get("texts", [])]
                graphics[spec.name] = {"locale": inputs.brief.pass_locale, "code_version": GRAPHICS_VERSION,
                                       "overlays": [g.record() for g in shown],
                                       "inputs": brand_inputs(brand_kit(style), inputs.catalog.style_paths.get(style.name),
                                                              texts)}
                job = replace(job, overlays=[*shown, *job.overlays])
            jobs.append(job)
        last = [0.0]
        started = time.monotonic()

        # Segmented: an ffmpeg process per cut encodes its segment for every video spec
        # (kept in the store, so an edit that changes one shot re-encodes only that shot),
        # then each deliverable is joined by stream copy; the specs advance together. Two
        # processes at once: at most two cuts in flight however long the edit. Grouping
        # cuts (cuts_per_process) saves process starts on tiny cuts but costs an x264
        # instance's memory per cut and saved no time at 720p (bench/bench_segments.py).
        def progress(frac: float) -> None:
            for job in jobs:
                env.reporter.advance("conform", amount=max(0.0, frac - last[0]), spec=job.spec.name)
            last[0] = frac

        records = conform_videos(clips, jobs, preset=env.settings.x264_preset, lut=conform_lut,
                                 grain=finishing.grain, sharpen=finishing.sharpen, progress=progress,
                                 store=env.store, workers=min(2, os.cpu_count() or 1)) if jobs else []
        seconds = (time.monotonic() - started) / max(1, len(jobs))
        for job, params in zip(jobs, records, strict=True):
            env.reporter.advance("conform", amount=max(0.0, 1.0 - last[0]), spec=job.spec.name)
            _finishing_record(params, grades)
            master = inputs.masters.get(job.spec.name)
            if master is not None:
                params["loudness"] = _measure_loudness(job.out, master)
            if job.spec.active_aspect:
                # Letterboxed: where the picture is in the frame (the rest is black bars).
                params["active_picture"] = list(job.spec.active_rect())
            caps = inputs.captions.get(job.spec.name, {})
            if caps:
                params["captions"] = {k: v for k, v in caps.items() if k != "overlays"}
            if job.spec.name in graphics:
                params["graphics"] = graphics[job.spec.name]
            if env.locale:
                params["locale"] = env.locale
            info = measured(job.out)
            deliverables.append(_record(env, job.spec, job.out, tl["id"], params, info=info))
            if job.spec.name in keys:
                cache.put(keys[job.spec.name], "conform", CODE_VERSION,
                          {"file": env.store.put_file(job.out, ".mp4").to_dict(),
                           "params": _jsonable_params(params), "info": info}, env.run_id, seconds)
        counts["reused"] = len(inputs.video_specs) - len(jobs)
        counts["made"] = len(jobs)
    frames = still_frames(inputs.timelines["stills"]["path"], inputs.still_specs) if inputs.still_specs else {}
    for spec in inputs.still_specs:
        # One still per locale when the brief ships in several, the locale in its file
        # name; one without copy when the brief has none (studio.copyfit).
        copies: list[Any] = still_copies(inputs.brief, spec, inputs.catalog) or [None]
        for copy in copies:
            counts[_conform_still(env, inputs, spec, frames[spec.name], copy, len(copies) > 1, deliverables)] += 1
    return ConformOutputs(deliverables=deliverables, counts=counts)


def still_recipe(image_sha256: str, focus: tuple[float, float], subject_scale: float | None, spec: ChannelSpec,
                 sharpen: float, graph: str, copy: StillCopy | None) -> dict[str, Any]:
    """A still deliverable's content inputs: the frame's bytes, how it is reframed, the
    spec, the sharpening, the conform's code and the copy set on it (its locale's texts,
    the layout, the brand kit and the font's and logo's bytes: studio.copyfit). A changed
    headline makes the stills again, not the keyframes they are cut from."""
    return {"frame": image_sha256, "focus": [float(focus[0]), float(focus[1])], "subject_scale": subject_scale,
            "spec": spec_key(spec), "sharpen": sharpen, "graph": graph,
            "copy": copy.recipe() if copy is not None else None}


def _conform_still(env: StageEnv, inputs: ConformInputs, spec: ChannelSpec, clip: Any, copy: StillCopy | None,
                   per_locale: bool, deliverables: list[dict[str, Any]]) -> str:
    """One still deliverable, from the action cache when the same frame, spec, finishing and
    copy made it before; "reused" or "made"."""
    from studio.cache import ActionCache, materialize
    from timelines.conform import CODE_VERSION as GRAPH_VERSION
    from timelines.conform import conform_still

    tl = inputs.timelines["stills"]
    meta = clip.metadata["studio"]
    image = url_to_path(clip.media_reference.target_url)
    focus = (float(meta["focus"][0]), float(meta["focus"][1]))
    sharpen = inputs.style.finishing.sharpen
    ext = ".jpg" if spec.codec == "jpeg" else ".png"
    tag = copy.locale if per_locale and copy is not None else ""
    stem = f"{spec.name}_{tag}" if tag else spec.name  # the step's item in the run's recipes
    out = env.work_dir / "deliverables" / spec.name / f"{env.file_stem(spec.name, tag)}{ext}"
    frame = {"beat_id": meta.get("beat_id", clip.name), "candidate_id": meta.get("candidate_id"),
             "keyframe_sha256": meta.get("keyframe_sha256")}
    doc = still_recipe(file_digest(image), focus, meta.get("subject_scale"), spec, sharpen, GRAPH_VERSION, copy)
    key = key_of("conform", CODE_VERSION, doc)
    env.recipes.setdefault("conform", {})[stem] = {"key": key, "doc": doc}
    cache = ActionCache(env.engine, env.store)
    hit = cache.get(key)
    if hit is not None:
        materialize(env.store, hit.outputs["file"], out)
        params = {**hit.outputs["params"], "frame": frame, "reused_from": hit.run_id,
                  **({"locale": tag} if tag else {})}
        result = "reused"
        info = hit.outputs["info"]
    else:
        started = time.monotonic()
        params = conform_still(image, focus, spec, out, sharpen=sharpen, subject_scale=meta.get("subject_scale"),
                               copy=copy)
        if copy is not None and "copy" in params:
            params["copy"]["inputs"] = brand_inputs(
                copy.brand, copy.style_file, [{"field": f"copy.{k}", "text": v}
                                              for k, v in copy.copy.model_dump(exclude_none=True).items()])
        params["frame"] = frame
        if tag:
            params["locale"] = tag
        info = measured(out)
        cache.put(key, "conform", CODE_VERSION, {"file": env.store.put_file(out, ext).to_dict(),
                                                 "params": _jsonable_params(params), "info": info},
                  env.run_id, time.monotonic() - started)
        result = "made"
    deliverables.append(_record(env, spec, out, tl["id"], params, info=info))
    deliverables[-1]["frame"] = frame  # which keyframe this still was cut from
    env.reporter.advance("conform", spec=spec.name)
    return result
