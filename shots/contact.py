"""Stage ``review``: one contact sheet of every candidate per beat, for review before
(or instead of) expensive clip generation, and a safe-area preview per channel.

A row per beat, a column per candidate; the selected one is framed, and each tile says
its index, seed and score so a producer can overrule the pick by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from studio.brief import Brief
from studio.context import CandidateResult, ShotPlan, StageEnv
from studio.specs import ChannelSpec
from studio.store import MediaRef, atomic_output

CODE_VERSION = "contact.2"

TILE = 256  # px, the long side of each thumbnail
PAD = 12
LABEL = 18
HEADER = 26
BG = (24, 24, 28)
FG = (230, 230, 230)
SELECTED = (255, 196, 0)


@dataclass
class ReviewInputs:
    brief: Brief
    specs: list[ChannelSpec]
    video_specs: list[ChannelSpec]
    shots: list[ShotPlan]
    candidates: dict[str, list[CandidateResult]]  # by shot id
    selected: dict[str, CandidateResult]  # by shot id
    master_size: tuple[int, int]
    edit_rate: Fraction
    sound: dict[str, Any]  # the music stage's records: its premix is the animatic's sound


@dataclass
class ReviewOutputs:
    review: dict[str, Path]  # contact sheet, safe-area previews, animatic


def _resized(env: StageEnv, image: MediaRef, size: tuple[int, int],
             box: tuple[int, int, int, int] | None = None) -> Image.Image:
    """``image`` (a store ref) cut to ``box`` and resized to ``size`` with Lanczos, made once
    per (keyframe, box, size) and kept in the store as a lossless PNG: the same pixels as
    resizing it here, without decoding a full-size keyframe again on every review (a
    re-render that changed one beat re-reads the other beats' tiles from the store)."""
    import io

    from studio.cache import ActionCache, memo

    def make() -> dict[str, Any]:
        with Image.open(env.store.path(image)) as im:
            small = im.convert("RGB").resize(size, Image.LANCZOS, box=box)
        buf = io.BytesIO()
        small.save(buf, format="PNG")
        return {"image": env.store.put_bytes(buf.getvalue(), ".png").to_dict()}

    out, _, _ = memo(ActionCache(env.engine, env.store), "review-tile", CODE_VERSION,
                     {"image": image.sha256, "size": list(size), "box": list(box) if box else None},
                     make, env.run_id)
    with Image.open(env.store.path(MediaRef.from_dict(out["image"]))) as im:
        return im.convert("RGB")


def contact_sheet(env: StageEnv, shots: list[ShotPlan], candidates: dict[str, list[CandidateResult]],
                  selected: dict[str, CandidateResult], master_size: tuple[int, int]) -> Path:
    font = ImageFont.load_default()
    shots = [s for s in shots if candidates.get(s.shot_id)]
    cols = max(len(candidates[s.shot_id]) for s in shots)
    w, h = master_size
    tw, th = (TILE, max(1, round(TILE * h / w))) if w >= h else (max(1, round(TILE * w / h)), TILE)
    row_h = HEADER + th + LABEL + PAD
    sheet = Image.new("RGB", (PAD + cols * (tw + PAD), PAD + len(shots) * row_h), BG)
    draw = ImageDraw.Draw(sheet)
    for r, shot in enumerate(shots):
        y = PAD + r * row_h
        draw.text((PAD, y + 6), f"{shot.beat_id}  ({shot.duration:g} s)", fill=FG, font=font)
        chosen_one = selected.get(shot.shot_id)
        for c, cand in enumerate(candidates[shot.shot_id]):
            x = PAD + c * (tw + PAD)
            sheet.paste(_resized(env, cand.image, (tw, th)), (x, y + HEADER))
            chosen = chosen_one is not None and cand.candidate_id == chosen_one.candidate_id
            if chosen:
                draw.rectangle((x - 3, y + HEADER - 3, x + tw + 2, y + HEADER + th + 2), outline=SELECTED, width=3)
            label = f"#{cand.index} seed {cand.seed} score {cand.score:.2f}" + ("  selected" if chosen else "")
            draw.text((x, y + HEADER + th + 4), label, fill=SELECTED if chosen else FG, font=font)
    path = env.work_dir / "review" / f"{env.file_stem('contact', '')}.png"
    with atomic_output(path) as tmp:
        sheet.save(tmp, format="PNG")
    env.reporter.advance("review")
    return path


def safe_area_previews(env: StageEnv, brief: Brief, specs: list[ChannelSpec], shots: list[ShotPlan],
                       selected: dict[str, CandidateResult]) -> dict[str, Path]:
    """Per channel, its frame as that channel frames it (a still channel's own beat, a
    video channel's hero beat), with the area outside the safe zone (platform UI, title
    safe) shaded and its edge drawn: what a brand reviewer checks before anything is
    encoded."""
    from studio.framing import crop_box

    previews: dict[str, Path] = {}
    masters: dict[str, Image.Image] = {}
    for spec in specs:
        beat = brief.still_beat(spec.name) if spec.kind == "still" else brief.hero()
        shot = next(s for s in shots if s.beat_id == beat.id)
        if shot.shot_id not in masters:
            with Image.open(env.store.path(selected[shot.shot_id].image)) as im:
                masters[shot.shot_id] = im.convert("RGB")
        master = masters[shot.shot_id]
        crop = crop_box(master.width, master.height, spec, shot.focus)
        scale = min(1.0, 960 / max(spec.width, spec.height))
        w, h = max(1, round(spec.width * scale)), max(1, round(spec.height * scale))
        frame = master.resize((w, h), Image.LANCZOS, box=(crop.x, crop.y, crop.x + crop.w, crop.y + crop.h))
        x0, y0, x1, y1 = spec.safe_area.rect(w, h)
        shade = Image.new("RGB", (w, h), (0, 0, 0))
        mask = Image.new("L", (w, h), 140)
        ImageDraw.Draw(mask).rectangle((x0, y0, x1 - 1, y1 - 1), fill=0)
        frame = Image.composite(shade, frame, mask)
        draw = ImageDraw.Draw(frame)
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=SELECTED, width=2)
        draw.text((x0 + 4, y0 + 4), f"{spec.name} safe area ({beat.id})", fill=SELECTED,
                  font=ImageFont.load_default())
        path = env.work_dir / "review" / f"{env.file_stem('safe-' + spec.name, '')}.png"
        with atomic_output(path) as tmp:
            frame.save(tmp, format="PNG")
        previews[f"safe_area:{spec.name}"] = path
    return previews


ANIMATIC_HEIGHT = 360  # px: a review copy, small enough to mail


def animatic(env: StageEnv, brief: Brief, video_specs: list[ChannelSpec], shots: list[ShotPlan],
             selected: dict[str, CandidateResult], edit_rate: Fraction, sound: dict[str, Any]) -> Path | None:
    """A low-resolution animatic: each selected keyframe held for its beat, framed as the
    main video channel frames it and labelled, over the music stage's premix of voice,
    music and effects — the spot's timing and sound, reviewable before any clip is
    rendered. None when the brief has no video channel."""
    import subprocess

    from studio.framing import crop_box
    from studio.timecode import beat_times

    if not video_specs:
        return None
    spec = video_specs[0]
    h = ANIMATIC_HEIGHT
    w = max(2, round(h * spec.width / spec.height / 2) * 2)
    work = env.scratch_dir / "animatic"
    work.mkdir(parents=True, exist_ok=True)
    font = ImageFont.load_default(size=max(12, h // 22))
    times = beat_times(shots, edit_rate)
    args: list[str] = []
    narration = {b.id: b.narration for b in brief.beats}
    for i, (shot, (beat_id, start, dur)) in enumerate(zip(shots, times, strict=True)):
        cand = selected[shot.shot_id]
        with Image.open(env.store.path(cand.image)) as im:
            size = im.size  # the header only: the pixels come from the tile cache
        crop = crop_box(size[0], size[1], spec, shot.focus)
        frame = _resized(env, cand.image, (w, h), (crop.x, crop.y, crop.x + crop.w, crop.y + crop.h))
        draw = ImageDraw.Draw(frame)
        label = f"{i + 1}. {beat_id}  {float(start):.2f}-{float(start + dur):.2f} s  seed {cand.seed}"
        draw.text((8, 6), label, fill=SELECTED, font=font, stroke_width=2, stroke_fill=(0, 0, 0))
        if narration.get(beat_id):
            draw.text((8, h - font.size - 10), narration[beat_id][:80], fill=FG, font=font,
                      stroke_width=2, stroke_fill=(0, 0, 0))
        png = work / f"{i:03d}.png"
        frame.save(png, format="PNG")
        args += ["-loop", "1", "-framerate", f"{edit_rate.numerator}/{edit_rate.denominator}",
                 "-t", f"{float(dur):.6f}", "-i", str(png)]
    total = float(sum((d for _, _, d in times), Fraction(0)))
    # The sound is the music stage's premix of voice, bed and effects (it runs before review).
    premix = sound.get("premix")
    audio_in = ["-i", str(env.store.path(premix["ref"]))] if premix else []
    n = len(shots)
    graph = "".join(f"[{i}:v]" for i in range(n)) + f"concat=n={n}:v=1:a=0,format=yuv420p[v]"
    out = env.work_dir / "review" / f"{env.file_stem('animatic')}.mp4"
    with atomic_output(out) as tmp:
        cmd = ["ffmpeg", "-hide_banner", "-nostats", "-v", "error", "-y", *args, *audio_in,
               "-filter_complex", graph, "-map", "[v]"]
        if audio_in:
            cmd += ["-map", f"{n}:a", "-c:a", "aac", "-b:a", "128k", "-ar", "48000"]
        cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "26", "-r",
                f"{edit_rate.numerator}/{edit_rate.denominator}", "-t", f"{total:.6f}",
                "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
                "-movflags", "+faststart", str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            from studio.errors import StageError

            raise StageError(f"the animatic failed: {proc.stderr.strip()[-300:]}", stage="review",
                             fix="check the keyframes and stems")
    return out


def review(env: StageEnv, inputs: ReviewInputs) -> ReviewOutputs:
    """Stage ``review``: the contact sheet, the safe-area previews and the animatic."""
    found: dict[str, Path] = {
        "contact_sheet": contact_sheet(env, inputs.shots, inputs.candidates, inputs.selected, inputs.master_size)}
    found.update(safe_area_previews(env, inputs.brief, inputs.specs, inputs.shots, inputs.selected))
    film = animatic(env, inputs.brief, inputs.video_specs, inputs.shots, inputs.selected, inputs.edit_rate,
                    inputs.sound)
    if film is not None:
        found["animatic"] = film
    return ReviewOutputs(review=found)
