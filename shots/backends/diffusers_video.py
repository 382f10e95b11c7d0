"""Shot clips from a diffusers image-to-video pipeline, conditioned on the selected keyframe.

Families: Stable Video Diffusion, LTX-Video (``LTXImageToVideoPipeline``), Wan
(``WanImageToVideoPipeline``), CogVideoX (``CogVideoXImageToVideoPipeline``) and any other
diffusers pipeline whose call takes ``image`` and ``num_frames``. Call arguments are
chosen by inspecting the pipeline's signature: a prompt and negative prompt when it takes
them (SVD takes none), the clip's rate as the model's motion conditioning (``fps`` for SVD,
``frame_rate`` for LTX), ``guidance_scale`` or SVD's ``max_guidance_scale``, and the
entry's ``call_args``. Exercised offline: SVD (a tiny random-weight pipeline in the tests).
The other families share this code path but were not run here (no weights offline).

Size. Video models have a native resolution; generating a 1080p clip directly would
exceed their training (and GPU memory). Each clip is generated at the entry's pixel area
(``width`` x ``height``) reshaped to the clip's aspect ratio and rounded to the model's
spatial multiple, then ffmpeg scales it (Lanczos, cover + centre crop) to the clip size.

Length. One pipeline call makes ``num_frames`` frames. A clip that needs more is extended
as the entry says (recorded in the params as ``extend`` and ``chunks``):

* ``chain`` (default): the next call is conditioned on the last frame written; its first
  frame re-renders that conditioning frame and is dropped, so each further call adds
  ``num_frames - 1`` frames. Motion continues, but quality drifts over many chunks.
* ``hold``: the last frame is repeated (a freeze), as cheap as it is honest.

A clip that needs fewer frames than one call makes keeps the first ``frames``.

Memory. Frames are streamed to ffmpeg's stdin (raw RGB) as each call returns: at most one
call's output (the model's own) is held, plus the last frame for chaining.

Output. ``out`` ending in .mp4/.mov/.mkv: an H.264 clip (yuv420p, BT.709 tags, closed
one-second GOPs like the camera-move masters). Anything else: a folder of PNG frames
(``frame_000001.png`` ...). Both appear atomically. The procedural camera move
(``shots.camera.render_move``) remains the fallback when no video model is configured.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from shots.backends.diffusers_image import (
    DeviceTimer,
    call_parameters,
    cover,
    describe_model,
    file_sha256,
    load_pipeline,
    load_rgb,
    resolve_device,
    resolve_weights,
    to_uint8,
)
from studio.errors import StageError, StudioError
from studio.models import parse_entry, verify_weights
from studio.store import atomic_output

CODE_VERSION = "diffusers-video.1"
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")
GENERATOR_DEVICE = "cpu"


def _drain(pipe: IO[bytes], tail: deque[str]) -> None:
    # Read ffmpeg's stderr on a thread so it never blocks on a full pipe while we block
    # writing frames to its stdin.
    for line in iter(pipe.readline, b""):
        tail.append(line.decode("utf-8", "replace").rstrip())


def _encode_command(tmp: Path, gw: int, gh: int, w: int, h: int, rate: Fraction, frames: int,
                    crf: int, preset: str) -> list[str]:
    from shots.camera import master_output_args

    rate_s = f"{rate.numerator}/{rate.denominator}"
    # One scale does the resize (cover) and the full-range RGB -> BT.709 limited-range
    # Y'CbCr conversion; the crop takes the centre.
    vf = (f"scale={w}:{h}:force_original_aspect_ratio=increase:flags=lanczos"
          f":out_color_matrix=bt709:out_range=tv,crop={w}:{h},format=yuv420p")
    return [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{gw}x{gh}", "-framerate", rate_s,
        "-i", "pipe:0",
        "-vf", vf,
        *master_output_args(rate, frames, crf, preset, tmp),
    ]  # fmt: skip


class _H264Sink:
    def __init__(self, tmp: Path, gw: int, gh: int, w: int, h: int, rate: Fraction, frames: int,
                 crf: int, preset: str, where: dict[str, Any]) -> None:
        self.where = where
        self.tail: deque[str] = deque(maxlen=20)
        cmd = _encode_command(tmp, gw, gh, w, h, rate, frames, crf, preset)
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE)
        except OSError as e:
            raise StageError(f"cannot start ffmpeg: {e}", fix="install ffmpeg", **where) from e
        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.reader = threading.Thread(target=_drain, args=(self.proc.stderr, self.tail), daemon=True)
        self.reader.start()
        self.broken = False

    def write(self, frame: np.ndarray) -> None:
        if self.broken:
            return
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        except BrokenPipeError:
            self.broken = True  # ffmpeg died; its stderr says why

    def close(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        except BrokenPipeError:
            self.broken = True
        rc = self.proc.wait()
        self.reader.join(timeout=5)
        if rc != 0 or self.broken:
            raise StageError(
                f"ffmpeg failed encoding the generated clip (exit {rc}): "
                + (" | ".join(list(self.tail)[-5:]) or "no message"),
                fix="check the clip size (even width and height) and encoder settings",
                **self.where,
            )

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


class _FrameFolderSink:
    def __init__(self, folder: Path, w: int, h: int) -> None:
        self.folder, self.w, self.h, self.n = folder, w, h, 0

    def write(self, frame: np.ndarray) -> None:
        self.n += 1
        im = cover(Image.fromarray(frame), self.w, self.h)
        im.save(self.folder / f"frame_{self.n:06d}.png", compress_level=6)

    def close(self) -> None:
        pass

    def kill(self) -> None:
        pass


class DiffusersVideoBackend:
    """Image-to-video clips from a diffusers pipeline described by a ModelEntry."""

    name = "diffusers-video"
    code_version = CODE_VERSION

    def __init__(self, model: dict[str, Any], device: str | None = None,
                 local_files_only: bool = True) -> None:
        self.entry = parse_entry(model, source="backend options: model")
        e = self.entry
        if e.backend != self.name:
            raise StudioError(
                f"model {e.id!r} is a {e.kind} model for backend {e.backend!r}, not {self.name!r}",
                fix=f"use backend {e.backend!r} for it", field="model",
            )
        self.device = resolve_device(device)
        self.local_files_only = local_files_only
        self.folder = resolve_weights(e, local_files_only)
        self.weights_sha256 = verify_weights(e, self.folder)  # before loading, see image backend
        self.pipe = load_pipeline(e, self.folder, self.device)
        self.dtype = e.dtype
        self.params_in = call_parameters(self.pipe)
        missing = {"image", "num_frames"} - self.params_in
        if missing:
            raise StudioError(
                f"model {e.id!r}: {type(self.pipe).__name__} is not an image-to-video pipeline "
                f"(its call takes no {', '.join(sorted(missing))})",
                fix="set pipeline_class to the family's image-to-video pipeline "
                "(e.g. LTXImageToVideoPipeline, WanImageToVideoPipeline)",
                field="pipeline_class",
            )
        for extra in e.call_args:
            if extra not in self.params_in:
                raise StudioError(f"model {e.id!r}: {type(self.pipe).__name__} has no call argument {extra!r}",
                                  fix="remove it from call_args", field=f"call_args.{extra}")
        # Latent video VAEs compress time: LTX needs 8k+1 frames, Wan and CogVideoX 4k+1.
        self.temporal = int(getattr(self.pipe, "vae_scale_factor_temporal", 1) or 1)
        assert e.num_frames is not None and e.fps is not None
        if (e.num_frames - 1) % self.temporal:
            raise StudioError(
                f"model {e.id!r}: num_frames {e.num_frames} does not fit the VAE's temporal "
                f"compression ({self.temporal}): use {self.temporal}k+1 frames",
                fix=f"set num_frames to e.g. {((e.num_frames - 1) // self.temporal) * self.temporal + 1}",
                field="num_frames",
            )
        if e.extend == "chain" and e.num_frames < 2:
            raise StudioError(f"model {e.id!r}: chaining needs num_frames >= 2",
                              fix="set extend: hold, or more frames", field="extend")
        self.multiple = self._size_multiple()

    def _size_multiple(self) -> int:
        pipe = self.pipe
        factor = int(getattr(pipe, "vae_scale_factor_spatial", 0)
                     or getattr(pipe, "vae_scale_factor", 8) or 8)
        transformer = getattr(pipe, "transformer", None)
        patch = getattr(getattr(transformer, "config", None), "patch_size", None)
        if isinstance(patch, (list, tuple)):
            patch = patch[-1]  # (t, h, w) patches: the spatial one
        if isinstance(patch, int) and patch > 1:
            factor *= patch
        return math.lcm(8, factor)

    def describe(self) -> dict[str, Any]:
        return describe_model(self)

    def _gen_size(self, width: int, height: int) -> tuple[int, int]:
        """The entry's pixel area at the clip's aspect ratio, on the model's grid."""
        e, m = self.entry, self.multiple
        area = e.width * e.height
        aspect = width / height
        gw = max(m, round(math.sqrt(area * aspect) / m) * m)
        gh = max(m, round(math.sqrt(area / aspect) / m) * m)
        return gw, gh

    def _call_kwargs(self, prompt: dict[str, Any], rate: Fraction, gw: int, gh: int) -> dict[str, Any]:
        e, p = self.entry, self.params_in
        kw: dict[str, Any] = {"num_frames": e.num_frames, "num_inference_steps": e.steps,
                              "output_type": "np"}
        if "height" in p and "width" in p:
            kw["height"], kw["width"] = gh, gw
        if "prompt" in p:
            kw["prompt"] = str(prompt.get("positive", ""))
        if "guidance_scale" in p:
            kw["guidance_scale"] = e.guidance
            negative = str(prompt.get("negative", "") or "")
            if "negative_prompt" in p and e.guidance > 1.0 and negative:
                kw["negative_prompt"] = negative
        elif "max_guidance_scale" in p:
            kw["max_guidance_scale"] = e.guidance  # SVD ramps from min_guidance_scale (1.0)
        # Condition motion on the rate the clip will play at, so one generated frame is
        # one timeline frame and motion speed is what the model meant (call_args wins).
        for name in ("fps", "frame_rate"):
            if name in p:
                kw[name] = max(1, round(rate))
        kw.update(e.call_args)
        return kw

    def render_clip(self, keyframe: Path, out: Path, *, prompt: dict[str, Any], seed: int,
                    frames: int, rate: Fraction, width: int, height: int, crf: int = 12,
                    preset: str = "veryfast", shot: str = "") -> dict[str, Any]:
        """Write ``frames`` frames at ``rate`` and ``width`` x ``height`` to ``out``
        (H.264 for .mp4/.mov/.mkv, else a PNG frame folder); returns the params."""
        import torch

        e = self.entry
        where: dict[str, Any] = {"stage": "clips", "shot": shot or None}
        from shots.camera import check_timing

        rate = check_timing(rate, frames, where)
        out = Path(out)
        as_video = out.suffix.lower() in VIDEO_SUFFIXES
        if width < 2 or height < 2 or (as_video and (width % 2 or height % 2)):
            raise StageError(f"clip size {width}x{height} is not valid for 4:2:0 video",
                             fix="use an even width and height", **where)
        gw, gh = self._gen_size(width, height)
        key = cover(load_rgb(Path(keyframe), "keyframe"), gw, gh)
        kwargs = self._call_kwargs(prompt, rate, gw, gh)
        n_model = int(e.num_frames or 1)
        generator = torch.Generator(GENERATOR_DEVICE).manual_seed(int(seed))
        if e.extend == "chain":
            chunks = 1 + max(0, math.ceil((frames - n_model) / (n_model - 1)))
        else:
            chunks = 1
        seconds = gpu_seconds = 0.0
        written = 0

        def model_frames(image: Image.Image) -> Iterator[np.ndarray]:
            nonlocal seconds, gpu_seconds
            try:
                # One generator for the whole clip: chunk k continues its random stream,
                # so the clip is a deterministic function of the seed.
                with torch.inference_mode(), DeviceTimer(self.device) as timer:
                    result = self.pipe(image=image, generator=generator, **kwargs)
            except Exception as ex:
                raise StageError(
                    f"model {e.id!r} failed generating {n_model} frames at {gw}x{gh}: "
                    f"{type(ex).__name__}: {str(ex).splitlines()[0][:300] if str(ex) else ''}",
                    fix=f"check the model entry (GPU memory: {e.gpu_memory_gb or '?'} GB)",
                    **where,
                ) from ex
            seconds += timer.seconds
            gpu_seconds += timer.gpu_seconds
            video = result.frames[0]  # the first (only) video of the batch
            if isinstance(video, list):  # output_type ignored by some pipelines: PIL frames
                video = [np.asarray(f.convert("RGB")) for f in video]
            yield from to_uint8(video) if not isinstance(video, list) else video
            del result, video

        def produce(sink: Any) -> None:
            nonlocal written
            last: np.ndarray | None = None
            for chunk in range(chunks):
                cond = key if chunk == 0 else Image.fromarray(last)
                for i, frame in enumerate(model_frames(cond)):
                    if chunk > 0 and i == 0:
                        continue  # it re-renders the conditioning frame: already written
                    if written >= frames:
                        break
                    sink.write(frame)
                    last = frame
                    written += 1
            while written < frames:  # hold
                assert last is not None
                sink.write(last)
                written += 1

        if as_video:
            with atomic_output(out) as tmp:
                sink = _H264Sink(tmp, gw, gh, width, height, rate, frames, crf, preset, where)
                try:
                    produce(sink)
                except BaseException:
                    sink.kill()
                    raise
                sink.close()
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmpdir = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
            try:
                produce(_FrameFolderSink(tmpdir, width, height))
                if out.exists():
                    shutil.rmtree(out)
                os.replace(tmpdir, out)
            finally:
                shutil.rmtree(tmpdir, ignore_errors=True)

        made = n_model + (chunks - 1) * (n_model - 1)
        return {
            "backend": self.name,
            "model_id": e.id,
            "weights_sha256": self.weights_sha256,
            "pipeline_class": type(self.pipe).__name__,
            "scheduler": type(self.pipe.scheduler).__name__,
            "keyframe_sha256": file_sha256(Path(keyframe)),
            "seed": int(seed),
            "steps": e.steps,
            "guidance": e.guidance,
            "dtype": self.dtype,
            "device": self.device,
            "generator": GENERATOR_DEVICE,
            "frames": frames,
            "rate": f"{rate.numerator}/{rate.denominator}",
            "width": width, "height": height, "gen_width": gw, "gen_height": gh,
            "scale": "lanczos cover + centre crop" if (gw, gh) != (width, height) else None,
            "model_frames": n_model,
            "model_fps": e.fps,
            "motion_conditioning": {k: kwargs[k] for k in ("fps", "frame_rate") if k in kwargs},
            "prompt_used": "prompt" in kwargs,
            "negative_prompt_used": "negative_prompt" in kwargs,
            "call_args": dict(e.call_args),
            "extend": e.extend if frames > n_model else None,
            "chunks": chunks,
            "held_frames": max(0, frames - made),
            "trimmed_frames": max(0, made - frames),
            "output": "h264" if as_video else "png-frames",
            "crf": crf if as_video else None,
            "preset": preset if as_video else None,
            "code_version": CODE_VERSION,
            "seconds": seconds,
            "gpu_seconds": gpu_seconds,
        }
