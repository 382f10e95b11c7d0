"""Stage ``mix``: the voice, music and effects stems become one mix, then one master per
video channel at that channel's loudness.

The mix is one ffmpeg graph: the music bed at its brief level, ducked under the voice by
``sidechaincompress`` keyed from the voice stem; voice, ducked music and effects summed
(``amix`` without normalisation, so the levels are the ones set), short fades at the
head and tail so nothing clicks. The stems are written *as mixed* (the ducked bed, not
the raw one), so an editor who lays them side by side hears the same mix.

Each channel's master is the mix normalised in two passes to the spec's integrated
loudness with a true-peak limiter (``audio.master.master``), then encoded to AAC at the
spec's rate and bitrate. AAC can raise true peaks by a few tenths of a dB, so the
*encoded* file is measured again with ``ebur128`` and re-mastered with a lower ceiling
or corrected target until it is inside the spec; the conform then copies that audio
stream into the deliverable untouched, so the figures in the manifest are the
deliverable's own.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio import db
from studio.brief import Brief
from studio.context import StageEnv
from studio.errors import StageError
from studio.specs import ChannelSpec
from studio.store import MediaRef, atomic_output

CODE_VERSION = "mix.1"
RATE = 48000
# Ducking: the voice stem peaks at -1 dBFS; its speech sits around -20 dBFS RMS. A key
# threshold of -30 dBFS catches every syllable; ratio 6 with a slow release pulls the bed
# down ~8-10 dB under speech without pumping between words.
DUCK = {"threshold": 0.0316, "ratio": 6, "attack": 20, "release": 400, "knee": 4}
FADE_IN = 0.05
FADE_OUT = 0.25
AAC_TOLERANCE = 0.3  # LU: what the encoded master must be within (the spec allows 0.5)
MAX_TRIES = 4


def _ffmpeg(args: list[str], what: str, spec: str | None = None) -> None:
    proc = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-v", "error", "-y", *args],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise StageError(f"{what} failed: {proc.stderr.strip()[-300:] or 'no message'}", stage="mix",
                         field=spec, fix="check the stems (stage voice / music) and ffmpeg")


def mix_stems(voice: Path | None, music: Path | None, effects: Path | None, out_mix: Path,
              out_stems: dict[str, Path], *, duration: float, music_gain_db: float) -> dict[str, Any]:
    """Mix the stems (any may be missing) into ``out_mix`` (48 kHz stereo, 24-bit) and
    write each stem as mixed to ``out_stems[name]``. All outputs are exactly ``duration``."""
    inputs: list[str] = []
    graph: list[str] = []
    n = round(duration * RATE)
    fit = f"aformat=sample_fmts=fltp:sample_rates={RATE}:channel_layouts=stereo,apad=whole_len={n},atrim=end_sample={n}"
    labels: dict[str, str] = {}
    idx = 0
    for name, path in (("voice", voice), ("music", music), ("effects", effects)):
        if path is None:
            continue
        if not Path(path).is_file():
            raise StageError(f"the {name} stem {path} is missing", stage="mix", field=name,
                             fix="re-run the stage that makes it")
        inputs += ["-i", str(path)]
        labels[name] = f"{idx}:a"
        idx += 1
    if not labels:
        inputs += ["-f", "lavfi", "-i", f"anullsrc=r={RATE}:cl=stereo"]
        labels["silence"] = "0:a"
    outs: dict[str, str] = {}
    if "voice" in labels:
        graph.append(f"[{labels['voice']}]{fit},asplit=3[voice][key][vstem]")
        outs["voice"] = "vstem"
    if "music" in labels:
        graph.append(f"[{labels['music']}]{fit},volume={music_gain_db:.2f}dB[bed]")
        if "voice" in labels:
            d = DUCK
            graph.append(f"[bed][key]sidechaincompress=threshold={d['threshold']}:ratio={d['ratio']}:"
                         f"attack={d['attack']}:release={d['release']}:knee={d['knee']}:makeup=1[ducked]")
        else:
            graph.append("[bed]anull[ducked]")
        graph.append("[ducked]asplit=2[music][mstem]")
        outs["music"] = "mstem"
    if "effects" in labels:
        graph.append(f"[{labels['effects']}]{fit},asplit=2[effects][fstem]")
        outs["effects"] = "fstem"
    parts = [p for p in ("voice", "music", "effects") if p in labels]
    if parts:
        graph.append("".join(f"[{p}]" for p in parts)
                     + f"amix=inputs={len(parts)}:normalize=0:duration=longest,"
                     f"afade=t=in:d={FADE_IN},afade=t=out:st={max(0.0, duration - FADE_OUT):.4f}:d={FADE_OUT},"
                     f"atrim=end_sample={n}[mix]")
    else:
        graph.append(f"[{labels['silence']}]{fit}[mix]")
    tmps: list[Any] = []
    maps: list[str] = []
    targets = [("mix", out_mix)] + [(k, out_stems[k]) for k in outs if k in out_stems]
    # Every output into a temp file; published together only when ffmpeg succeeded.
    import contextlib

    with contextlib.ExitStack() as stack:
        for name, path in targets:
            tmp = stack.enter_context(atomic_output(path))
            tmps.append(tmp)
            label = "mix" if name == "mix" else outs[name]
            maps += ["-map", f"[{label}]", "-c:a", "pcm_s24le", "-ar", str(RATE), str(tmp)]
        for name in outs:
            if name not in out_stems:
                graph.append(f"[{outs[name]}]anullsink")
        _ffmpeg([*inputs, "-filter_complex", ";".join(graph), *maps], "mixing the stems")
    return {"stems": sorted(labels), "music_gain_db": music_gain_db, "duck": DUCK if "voice" in labels
            and "music" in labels else None, "fade_in": FADE_IN, "fade_out": FADE_OUT, "duration": duration,
            "graph": ";".join(graph)}


def master_for_channel(mix: Path, out_m4a: Path, *, spec: Any, work: Path,
                       silent: bool | None = None) -> dict[str, Any]:
    """Master ``mix`` for ``spec`` and encode it to AAC; the *encoded* audio is measured
    and must be within ±AAC_TOLERANCE LU of the target with its true peak at or under the
    ceiling. ``silent``: whether the mix is below the gate, when the caller measured it
    already (one mix serves every channel)."""
    from audio.loudness import ABS_GATE
    from audio.master import master, measure

    target = float(spec.loudness_target)
    ceiling = float(spec.true_peak if spec.true_peak is not None else -1.0)
    if silent is None:
        silent = measure(mix)["integrated"] <= ABS_GATE
    if silent:
        # No narration, no music, no cue: nothing above the gate to normalise. A silent spot
        # is a valid delivery (muted autoplay); it ships with a silent track, said so,
        # rather than failing after the picture was made.
        with atomic_output(out_m4a) as tmp:
            _ffmpeg(["-i", str(mix), "-c:a", "aac", "-b:a", spec.audio_bitrate, "-ar", str(spec.audio_rate),
                     "-ac", "2", "-movflags", "+faststart", str(tmp)], f"encoding {spec.name}'s audio", spec.name)
        return {"target_lufs": target, "true_peak_ceiling": ceiling, "integrated": ABS_GATE, "true_peak": None,
                "lra": None, "tries": [], "master": None, "silent": True, "codec": "aac",
                "bitrate": spec.audio_bitrate, "sample_rate": spec.audio_rate}
    aim_target, aim_ceiling = target, ceiling - 0.5  # AAC overshoots; start with headroom
    tries: list[dict[str, Any]] = []
    wav = work / f"{spec.name}.master.wav"
    result: dict[str, Any] = {}
    for _ in range(MAX_TRIES):
        result = master(mix, wav, target_lufs=aim_target, true_peak=aim_ceiling, sample_rate=spec.audio_rate,
                        channels=2)
        with atomic_output(out_m4a) as tmp:
            _ffmpeg(["-i", str(wav), "-c:a", "aac", "-b:a", spec.audio_bitrate, "-ar", str(spec.audio_rate),
                     "-ac", "2", "-movflags", "+faststart", str(tmp)], f"encoding {spec.name}'s audio", spec.name)
        got = measure(out_m4a)
        tries.append({"target": aim_target, "ceiling": aim_ceiling, **got})
        miss = target - got["integrated"]
        over = got["true_peak"] - ceiling
        if abs(miss) <= AAC_TOLERANCE and over <= 0:
            break
        aim_target += miss
        if over > 0:
            aim_ceiling -= over + 0.2
    else:
        last = tries[-1]
        raise StageError(
            f"{spec.name}: the encoded audio measures {last['integrated']:.1f} LUFS, true peak "
            f"{last['true_peak']:.1f} dBTP after {MAX_TRIES} tries (target {target} LUFS, ceiling {ceiling} dBTP)",
            stage="mix", field=spec.name, fix="check the mix for extreme dynamics or raise audio_bitrate")
    wav.unlink(missing_ok=True)
    measured = tries[-1]
    return {
        "target_lufs": target, "true_peak_ceiling": ceiling,
        "integrated": measured["integrated"], "true_peak": measured["true_peak"],
        "lra": measured.get("lra"), "tries": tries, "master": {k: v for k, v in result.items() if k != "attempts"},
        "codec": "aac", "bitrate": spec.audio_bitrate, "sample_rate": spec.audio_rate,
    }


def _decode(path: Path, what: str) -> Any:
    """Any audio file as 48 kHz stereo float32 samples (n, 2)."""
    import numpy as np

    proc = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-v", "error", "-i", str(path), "-vn",
                           "-f", "f32le", "-ac", "2", "-ar", str(RATE), "-"], capture_output=True, check=False)
    if proc.returncode != 0:
        raise StageError(f"cannot decode {path.name} ({what}): "
                         f"{proc.stderr.decode('utf-8', 'replace').strip()[-200:]}",
                         stage="mix", source=str(path), fix="re-run the stage that made it, or fix the clip's media")
    return np.frombuffer(proc.stdout, dtype="<f4").reshape(-1, 2)


def stems_from_timeline(tl: Any, total: float, out_dir: Path) -> dict[str, Path]:
    """Each audio track of the edit rendered to a 48 kHz stereo stem of ``total`` seconds:
    every clip's source range placed at its record position. The timeline is the truth:
    an editor's moved or trimmed audio clips come back the same way."""
    import numpy as np

    from studio.media import url_to_path

    n = round(total * RATE)
    stems: dict[str, Path] = {}
    for track in tl.audio_tracks():
        name = track.name or f"A{len(stems) + 1}"
        buf = np.zeros((n, 2), dtype=np.float32)
        for clip in track.find_clips():
            path = url_to_path(clip.media_reference.target_url)
            audio = _decode(path, f"{name} clip {clip.name}")
            sr = clip.source_range or clip.available_range()
            src = round(sr.start_time.to_seconds() * RATE)
            length = round(sr.duration.to_seconds() * RATE)
            at = round(clip.range_in_parent().start_time.to_seconds() * RATE)
            piece = audio[src: src + length][: max(0, n - at)]
            buf[at: at + len(piece)] += piece
        out = out_dir / f"{name}.track.wav"
        pcm = np.clip(np.round(buf * 8388607), -8388608, 8388607).astype("<i4")
        with atomic_output(out) as tmp:
            _write_wav24(tmp, pcm)
        stems[name] = out
    return stems


def _write_wav24(path: Path, pcm: Any) -> None:
    """A 24-bit stereo WAV from int32 samples in the 24-bit range."""
    import wave

    import numpy as np

    b = pcm.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(3)
        w.setframerate(RATE)
        w.writeframes(b.tobytes())


def lines_from_timeline(tl: Any) -> list[dict[str, Any]]:
    """The voice lines as placed on the edit (their sentences moved with their clips):
    what captions are cut from."""
    lines = []
    for track in tl.audio_tracks():
        if track.name != "voice":
            continue
        for clip in track.find_clips():
            meta = dict(clip.metadata.get("studio", {}))
            if meta.get("kind") != "voice-line":
                continue
            rec = clip.range_in_parent()
            sr = clip.source_range or clip.available_range()
            start = rec.start_time.to_seconds() - sr.start_time.to_seconds()  # where the line's 0 is
            lo, hi = rec.start_time.to_seconds(), rec.end_time_exclusive().to_seconds()
            sentences = []
            for x in meta.get("sentences", []):
                a, b = start + float(x["start"]), start + float(x["end"])
                a, b = max(a, lo), min(b, hi)
                if b - a > 0.05:  # a sentence the editor trimmed away is not captioned
                    sentences.append({"text": x["text"], "start": round(a, 4), "end": round(b, 4)})
            if sentences:
                ref_meta = clip.media_reference.metadata.get("studio", {})
                lines.append({"beat": meta.get("beat_id", clip.name), "text": meta.get("text", ""),
                              "voice": meta.get("voice"), "sha256": ref_meta.get("sha256"),
                              "start": sentences[0]["start"], "end": sentences[-1]["end"],
                              "sentences": sentences})
    return sorted(lines, key=lambda x: x["start"])


MASTER_FIELDS = ("loudness_target", "true_peak", "audio_rate", "audio_bitrate")  # what a master reads of a spec


def mix_recipe(sound_key: str, music_gain_db: float) -> dict[str, Any]:
    """The mix's content inputs: the edit (its key: cuts and the sound laid on them,
    timelines.assemble.edit_recipe) and the music's gain under the voice."""
    return {"sound": sound_key, "music_gain_db": music_gain_db}


def master_recipe(mix_key: str, spec: Any) -> dict[str, Any]:
    """A channel master's content inputs: the mix and the spec's loudness and encoding."""
    return {"mix": mix_key, "spec": {f: getattr(spec, f) for f in MASTER_FIELDS}}


@dataclass
class MixInputs:
    brief: Brief  # the music's gain under the voice
    timelines: dict[str, dict[str, Any]]  # the edit whose audio tracks are mixed
    sound_key: str | None  # the sound laid on the edit (timelines.assemble.sound_recipe, or the editor's file)
    sound: dict[str, Any]  # the music stage's records: the stems' rights
    video_specs: list[ChannelSpec]  # a master per channel with a loudness target


@dataclass
class MixOutputs:
    sound: dict[str, Any]  # the input sound plus placed_lines, mix and the stems as mixed
    masters: dict[str, dict[str, Any]]  # by spec: the encoded audio and its loudness
    master_keys: dict[str, str]  # by spec: each master's action key (the conform is keyed by it)
    counts: dict[str, int]


def mix_stage(env: StageEnv, inputs: MixInputs) -> MixOutputs:
    """The stage: the edit's audio tracks rendered to stems, one mix of them (music ducked
    under voice), the stems as mixed for the editor, one master per video spec. The mix
    and each master are made once per recipe (studio.cache.memo): a new channel spec
    masters that channel alone; a reused mix's stems are copied from the store."""
    import opentimelineio as otio

    from studio.cache import ActionCache, materialize, memo

    cache = ActionCache(env.engine, env.store)
    gain = inputs.brief.music.gain_db
    sound_key = inputs.sound_key
    if sound_key is None:  # the timeline stage (or the round trip) names the edit; without it a key would lie
        raise StageError("the edit has no key (no timeline stage ran before the mix)", stage="mix",
                         fix="run the mix through the pipeline (studio render, studio conform)")
    doc = mix_recipe(sound_key, gain)
    work = env.scratch_dir / "mix"
    work.mkdir(parents=True, exist_ok=True)
    stems_dir = env.work_dir / "stems"
    stem_paths = {name: stems_dir / f"{env.file_stem(name)}.wav" for name in ("voice", "music", "effects")}

    def make() -> dict[str, Any]:
        tl = otio.adapters.read_from_file(str(inputs.timelines["edit"]["path"]))
        total = (tl.tracks.duration().to_seconds() if not tl.video_tracks()
                 else tl.video_tracks()[0].duration().to_seconds())
        tracks = stems_from_timeline(tl, total, work)
        mix_path = work / "mix.wav"
        params = mix_stems(tracks.get("voice"), tracks.get("music"), tracks.get("effects"), mix_path,
                           {k: v for k, v in stem_paths.items() if k in tracks},
                           duration=total, music_gain_db=gain)
        from audio.loudness import ABS_GATE
        from audio.master import measure

        return {
            "mix": {"ref": env.store.put_file(mix_path, ".wav").to_dict(), **params},
            "stems": {k: env.store.put_file(p, ".wav").to_dict() for k, p in stem_paths.items() if p.exists()},
            "total": total,
            # measured once for all channels: a silent spot is mastered as silence
            "silent": measure(mix_path)["integrated"] <= ABS_GATE,
        }

    out, reused_from, mix_key = memo(cache, "mix", CODE_VERSION, doc, make, env.run_id)
    env.recipes.setdefault("mix", {})["spot"] = {"key": mix_key, "doc": doc}
    total = out["total"]
    mixed = {**out["mix"], "ref": MediaRef.from_dict(out["mix"]["ref"])}
    stems = {k: materialize(env.store, ref, stem_paths[k]) if reused_from else stem_paths[k]
             for k, ref in out["stems"].items()}
    # The lines where the edit has them (an editor may have moved them): captions are cut
    # from these. Read from this run's edit, not the cached mix: a locale that ships
    # subtitled has the same sound as the first under its own words.
    placed = lines_from_timeline(otio.adapters.read_from_file(str(inputs.timelines["edit"]["path"])))
    sound = {**inputs.sound, "placed_lines": placed, "mix": mixed, "stems": stems}
    params = {k: v for k, v in out["mix"].items() if k != "ref"}
    with env.session() as s:
        for name, path in stems.items():
            s.add(db.AudioAsset(id=db.new_id("stem"), run_id=env.run_id, kind="stem", name=name,
                                sha256=out["stems"][name]["sha256"], start=0.0, duration=total,
                                code_version=CODE_VERSION,
                                params={"path": str(env.out_dir / path.relative_to(env.work_dir)),
                                        "as_mixed": True, **{k: v for k, v in params.items() if k != "graph"},
                                        **({"locale": env.locale} if env.locale else {}),
                                        **({"reused_from": reused_from} if reused_from else {})},
                                rights=inputs.sound.get("rights", {}).get(name, {})))
    # the mix itself and each channel's master, each a cached step
    counts = {"reused": int(reused_from is not None), "made": int(reused_from is None)}
    masters: dict[str, dict[str, Any]] = {}
    master_keys: dict[str, str] = {}
    for spec in inputs.video_specs:
        if spec.loudness_target is None:
            env.reporter.advance("mix", spec=spec.name)
            continue

        def master_it(spec: ChannelSpec = spec) -> dict[str, Any]:
            mix_path = env.store.path(mixed["ref"])
            m4a = work / f"{spec.name}.m4a"
            info = master_for_channel(mix_path, m4a, spec=spec, work=work, silent=out["silent"])
            return {"ref": env.store.put_file(m4a, ".m4a").to_dict(), **info}

        mdoc = master_recipe(mix_key, spec)
        info, made_by, key = memo(cache, "master", CODE_VERSION, mdoc, master_it, env.run_id)
        env.recipes["mix"][spec.name] = {"key": key, "doc": mdoc}
        master_keys[spec.name] = key
        counts["reused" if made_by else "made"] += 1
        if info.get("silent"):
            env.reporter.warn(f"stage mix: {spec.name}: the spot has no sound (no narration, music or "
                              f"effects above {info['integrated']:g} LUFS): delivered with a silent track, "
                              f"not at {info['target_lufs']:g} LUFS — add narration or music if the channel "
                              "needs sound")
        ref = MediaRef.from_dict(info["ref"])
        masters[spec.name] = {**info, "ref": ref}
        with env.session() as s:
            s.add(db.AudioAsset(id=db.new_id("mst"), run_id=env.run_id, kind="master", name=spec.name,
                                spec=spec.name, sha256=ref.sha256, start=0.0, duration=total,
                                code_version=CODE_VERSION,
                                params={**{k: v for k, v in info.items() if k != "ref"},
                                        **({"locale": env.locale} if env.locale else {}),
                                        **({"reused_from": made_by} if made_by else {})}))
        env.reporter.advance("mix", spec=spec.name)
    return MixOutputs(sound=sound, masters=masters, master_keys=master_keys, counts=counts)
