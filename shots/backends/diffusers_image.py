"""Keyframes from any diffusers image pipeline (SD 1.x, SDXL, SD3, FLUX, ...).

The backend is built from a ``ModelEntry`` (studio.models) and lives in a Ray actor: the
pipeline is loaded once, in the constructor, and stays warm for every job the actor runs.

* **Loading.** A local folder, or a hub id at a revision (resolved through the hub cache;
  ``local_files_only=True`` by default, so a worker never downloads at run time). The
  weights hash is computed over the folder and checked against the entry's pin *before*
  the weights are loaded. dtype, device and scheduler come from the entry.
* **Determinism.** One ``torch.Generator`` per seed, on the CPU: the initial noise for a
  seed is then the same on any device and whatever else is in the batch, so
  ``generate_batch(seeds)`` matches ``generate(seed)`` image for image. (Bit-exact on the
  same device, batch, thread count and CPU features; across batch sizes the
  convolution/GEMM kernels may block differently, which moves float results by ~1e-6:
  at most one 8-bit level. Each keyframe's params name its batch, ``batch_seeds`` and
  ``batch_index``, so ``studio regenerate`` re-runs the same batch.)
* **Size.** The call's width/height are rounded *up* to the pipeline's multiple (VAE
  factor, times the transformer's patch size: 8 for SD/SDXL, 16 for SD3/FLUX), generated
  there, and centre-cropped back to the exact size asked for; both are recorded.
* **References** (style references, character sheets; the prompt record's order):
  an ``image-to-image`` entry repaints the first reference, cover-fitted to the
  generation size, at the entry's ``strength`` (``AutoPipelineForImage2Image.from_pipe``
  shares the loaded weights); an entry with an ``ip_adapter`` feeds the first reference
  as the image prompt. A ``text-to-image`` entry without an IP-Adapter cannot use
  references: it says so in the keyframe's params rather than guessing.

torch and diffusers are imported inside methods: importing this module must stay cheap
(the backend registry lists plugins without loading them).
"""

from __future__ import annotations

import hashlib
import inspect
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from shots.backends import Keyframe
from studio.errors import StageError, StudioError
from studio.hf import library_versions
from studio.models import ModelEntry, parse_entry, verify_weights

CODE_VERSION = "diffusers-image.1"
GENERATOR_DEVICE = "cpu"  # see module docstring: same noise on every device


# ----------------------------------------------------------------- shared with video


def device_name(device: str) -> str:
    """The accelerator's model (e.g. "NVIDIA H100 80GB HBM3"), or "cpu"."""
    import torch

    if str(device).startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return str(device)


def resolve_device(device: str | None) -> str:
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_dtype(name: str) -> Any:
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def resolve_weights(entry: ModelEntry, local_files_only: bool) -> Path:
    """The local folder holding the entry's pipeline (downloading only when allowed)."""
    src = entry.source
    if src.path is not None:
        folder = Path(src.path)
        if not (folder / "model_index.json").is_file():
            raise StudioError(
                f"model {entry.id!r}: {folder} is not a diffusers pipeline folder (no model_index.json)",
                fix="point source.path at a folder written by save_pretrained or `hf download`",
                field="source.path",
            )
        return folder
    from diffusers import DiffusionPipeline

    try:
        # download() resolves (and with local_files_only=False, fetches) just the files
        # this pipeline needs at that revision and variant; offline it reads the cache.
        return Path(DiffusionPipeline.download(
            src.hub_id, revision=src.revision, variant=src.variant,
            local_files_only=local_files_only,
        ))
    except Exception as e:
        how = ("it is not in the local hub cache" if local_files_only
               else "it could not be downloaded")
        raise StudioError(
            f"model {entry.id!r}: {src.hub_id}@{src.revision} cannot be loaded: {how} "
            f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})",
            fix=f"fetch it first (`hf download {src.hub_id} --revision {src.revision}`) on a "
            "machine with hub access, or point source.path at a local copy",
            field="source",
        ) from e


def load_pipeline(entry: ModelEntry, folder: Path, device: str) -> Any:
    """The entry's pipeline from ``folder``, with its dtype, scheduler and device."""
    import diffusers

    name = entry.pipeline_class or "DiffusionPipeline"
    cls = getattr(diffusers, name, None)
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise StudioError(
            f"model {entry.id!r}: {name!r} is not a diffusers pipeline class "
            f"(diffusers {diffusers.__version__})",
            fix="use a class diffusers exports (e.g. StableDiffusionXLPipeline), or omit "
            "pipeline_class to let model_index.json decide",
            field="pipeline_class",
        )
    try:
        pipe = cls.from_pretrained(
            str(folder), dtype=torch_dtype(entry.dtype), variant=entry.source.variant,
            local_files_only=True,  # the folder is already local; never reach the hub here
        )
    except Exception as e:
        raise StudioError(
            f"model {entry.id!r}: loading {name} from {folder} failed: "
            f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}",
            fix="check the folder is complete and matches pipeline_class (and that "
            "accelerate is installed for pipelines that need it)",
            field="source",
        ) from e
    if entry.scheduler:
        sched_cls = getattr(diffusers, entry.scheduler, None)
        if sched_cls is None or not hasattr(sched_cls, "from_config"):
            raise StudioError(
                f"model {entry.id!r}: unknown scheduler {entry.scheduler!r}",
                fix="use a diffusers scheduler class name (e.g. DPMSolverMultistepScheduler) or omit it",
                field="scheduler",
            )
        # from_config keeps the model's training schedule (betas, prediction type).
        pipe.scheduler = sched_cls.from_config(pipe.scheduler.config)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def call_parameters(pipe: Any) -> set[str]:
    return set(inspect.signature(pipe.__call__).parameters)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def load_rgb(path: Path, what: str) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError) as e:
        raise StageError(f"cannot read {what} {path}: {e}", fix="check the file in the store") from e


def cover(im: Image.Image, width: int, height: int) -> Image.Image:
    """Scale to cover ``width`` x ``height`` and centre-crop: no distortion, no bars."""
    if im.size == (width, height):
        return im
    return ImageOps.fit(im, (width, height), Image.Resampling.LANCZOS, centering=(0.5, 0.5))


class DeviceTimer:
    """Wall seconds, and CUDA time (events) when the work ran on a GPU; 0.0 otherwise."""

    def __init__(self, device: str) -> None:
        self.cuda = str(device).startswith("cuda")
        self.seconds = 0.0
        self.gpu_seconds = 0.0

    def __enter__(self) -> DeviceTimer:
        import torch

        self._t0 = time.monotonic()
        if self.cuda:
            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)
            self._start.record()
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        if self.cuda:
            self._end.record()
            torch.cuda.synchronize()
            self.gpu_seconds = self._start.elapsed_time(self._end) / 1000.0
        self.seconds = time.monotonic() - self._t0


def to_uint8(images: Any) -> np.ndarray:
    """Pipeline float output in [0, 1] -> uint8, rounded as diffusers' own numpy_to_pil."""
    a = np.asarray(images, dtype=np.float32)
    return (np.clip(a, 0.0, 1.0) * 255.0).round().astype(np.uint8)


# ----------------------------------------------------------------------- the backend



def describe_model(backend: Any) -> dict[str, Any]:
    """What every diffusers backend records about itself with each output."""
    e = backend.entry
    return {
        "backend": backend.name,
        "model_id": e.id,
        "weights_sha256": backend.weights_sha256,
        "weights_pinned": e.pinned,
        "source": e.source.model_dump(mode="json", exclude_none=True),
        "pipeline_class": type(backend.pipe).__name__,
        "scheduler": type(backend.pipe.scheduler).__name__,
        "device": backend.device,
        "device_name": device_name(backend.device),
        "dtype": backend.dtype,
        "licence": e.licence,
        "usage_classes": list(e.usage_classes),
        "library_versions": library_versions(),
        "code_version": backend.code_version,
    }

class DiffusersImageBackend:
    """Keyframes from a diffusers image pipeline described by a ModelEntry."""

    name = "diffusers-image"
    code_version = CODE_VERSION

    def __init__(self, model: dict[str, Any], device: str | None = None,
                 local_files_only: bool = True) -> None:
        import torch

        self.entry = parse_entry(model, source="backend options: model")
        if self.entry.backend != self.name:
            raise StudioError(
                f"model {self.entry.id!r} is a {self.entry.kind} model for backend "
                f"{self.entry.backend!r}, not {self.name!r}",
                fix=f"use backend {self.entry.backend!r} for it", field="model",
            )
        self.device = resolve_device(device)
        self.local_files_only = local_files_only
        self.folder = resolve_weights(self.entry, local_files_only)
        # Hash before loading: unverified weights never run. Computed even when the entry
        # pins nothing, so the record always says exactly which weights made a keyframe.
        self.weights_sha256 = verify_weights(self.entry, self.folder)
        self.pipe = load_pipeline(self.entry, self.folder, self.device)
        self.dtype = self.entry.dtype
        self._torch_dtype = torch_dtype(self.dtype)
        params = call_parameters(self.pipe)
        # A pipeline class that is itself image-to-image (it takes `strength`) is the
        # img2img route; text-to-image is then derived from it, and vice versa.
        self._t2i = None if "strength" in params else self.pipe
        self._i2i = self.pipe if "strength" in params else None
        self.multiple = self._size_multiple()
        self.ip_adapter: dict[str, Any] | None = None
        if self.entry.ip_adapter is not None:
            self._load_ip_adapter()
        if self.device.startswith("cuda"):
            # Same seed, same pixels on one GPU: no autotuned (run-to-run varying) kernels.
            torch.backends.cudnn.benchmark = False

    # -- loading helpers --------------------------------------------------------------

    def _size_multiple(self) -> int:
        pipe = self.pipe
        factor = int(getattr(pipe, "vae_scale_factor", 8) or 8)
        if "Flux" in type(pipe).__name__:
            factor *= 2  # FLUX packs 2x2 latent patches into one token
        else:
            transformer = getattr(pipe, "transformer", None)
            patch = getattr(getattr(transformer, "config", None), "patch_size", None)
            if isinstance(patch, int) and patch > 1:
                factor *= patch  # SD3 and other DiTs patchify the latent
        # The SD/SDXL pipelines check `% 8` literally, whatever their VAE's factor.
        return math.lcm(8, factor)

    def _load_ip_adapter(self) -> None:
        ipa = self.entry.ip_adapter
        assert ipa is not None
        if not hasattr(self.pipe, "load_ip_adapter"):
            raise StudioError(
                f"model {self.entry.id!r}: {type(self.pipe).__name__} does not support IP-Adapters",
                fix="remove ip_adapter from the entry or use a pipeline that supports it",
                field="ip_adapter",
            )
        where = ipa.path if ipa.path is not None else ipa.hub_id
        kwargs: dict[str, Any] = {"local_files_only": self.local_files_only}
        if ipa.revision:
            kwargs["revision"] = ipa.revision
        if ipa.path is not None:
            weight = Path(ipa.path) / ipa.subfolder / ipa.weight_name
            if not weight.is_file():
                raise StudioError(f"IP-Adapter weights not found: {weight}",
                                  fix="check ip_adapter.path/subfolder/weight_name", field="ip_adapter")
            kwargs.pop("local_files_only")
        try:
            self.pipe.load_ip_adapter(where, subfolder=ipa.subfolder, weight_name=ipa.weight_name,
                                      image_encoder_folder=ipa.image_encoder_folder, **kwargs)
        except Exception as e:
            raise StudioError(
                f"model {self.entry.id!r}: loading IP-Adapter {where}/{ipa.subfolder}/{ipa.weight_name} "
                f"failed: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}",
                fix="fetch the adapter (and its image encoder) first, or fix ip_adapter in the entry",
                field="ip_adapter",
            ) from e
        # No cast needed here: diffusers loads the image encoder in the pipeline's dtype
        # and moves the new attention processors to the UNet's dtype and device.
        self.pipe.set_ip_adapter_scale(ipa.scale)
        self.ip_adapter = {"source": where, "subfolder": ipa.subfolder,
                           "weight_name": ipa.weight_name, "scale": ipa.scale}
        if ipa.path is not None:
            from studio.models import weights_hash

            self.ip_adapter["weights_sha256"] = weights_hash(Path(ipa.path) / ipa.subfolder)

    def _text2img(self) -> Any:
        if self._t2i is None:
            from diffusers import AutoPipelineForText2Image

            # dtype must be passed: from_pipe otherwise casts the *shared* modules to
            # float32, silently changing the loaded pipeline too.
            self._t2i = AutoPipelineForText2Image.from_pipe(self.pipe, dtype=self._torch_dtype)
            self._t2i.set_progress_bar_config(disable=True)
        return self._t2i

    def _img2img(self) -> Any:
        if self._i2i is None:
            from diffusers import AutoPipelineForImage2Image

            try:
                self._i2i = AutoPipelineForImage2Image.from_pipe(self.pipe, dtype=self._torch_dtype)
            except Exception as e:
                raise StudioError(
                    f"model {self.entry.id!r}: {type(self.pipe).__name__} has no image-to-image "
                    f"counterpart in diffusers ({type(e).__name__}: {e})",
                    fix="use kind text-to-image for this model, or a family with img2img support",
                    field="kind",
                ) from e
            self._i2i.set_progress_bar_config(disable=True)
        return self._i2i

    # -- the protocol -----------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {**describe_model(self), "ip_adapter": self.ip_adapter}

    def generate(self, prompt: dict[str, Any], seed: int, width: int, height: int,
                 references: list[Path] | None = None) -> Keyframe:
        return self._run(prompt, [seed], width, height, references)[0]

    def generate_batch(self, prompt: dict[str, Any], seeds: list[int], width: int, height: int,
                       references: list[Path] | None = None) -> list[Keyframe]:
        """One keyframe per seed, ``batch_size`` (from the entry) seeds per pipeline call."""
        out: list[Keyframe] = []
        step = self.entry.batch_size
        for i in range(0, len(seeds), step):
            out.extend(self._run(prompt, list(seeds[i:i + step]), width, height, references))
        return out

    # -- one pipeline call ------------------------------------------------------------

    def _gen_size(self, width: int, height: int) -> tuple[int, int, int, int]:
        w = int(width or self.entry.width)
        h = int(height or self.entry.height)
        if w < 1 or h < 1:
            raise StudioError(f"keyframe size {w}x{h} is not positive", fix="check the channel specs",
                              field="size")
        m = self.multiple
        return w, h, -(-w // m) * m, -(-h // m) * m  # round up, crop back later

    def _run(self, prompt: dict[str, Any], seeds: list[int], width: int, height: int,
             references: list[Path] | None) -> list[Keyframe]:
        import torch

        e = self.entry
        n = len(seeds)
        w, h, gw, gh = self._gen_size(width, height)
        refs = [Path(r) for r in (references or [])]
        ref_info = [{"sha256": file_sha256(r), "used_as": None} for r in refs]
        ref_image = load_rgb(refs[0], "reference image") if refs else None

        use_img2img = ref_image is not None and e.kind == "image-to-image"
        pipe = self._img2img() if use_img2img else self._text2img()
        params_in = call_parameters(pipe)

        kwargs: dict[str, Any] = {
            "prompt": str(prompt.get("positive", "")),
            "num_images_per_prompt": n,
            "num_inference_steps": e.steps,
            "guidance_scale": e.guidance,
            "generator": [torch.Generator(GENERATOR_DEVICE).manual_seed(int(s)) for s in seeds],
            "output_type": "np",
        }
        for extra, value in e.call_args.items():
            if extra not in params_in:
                raise StudioError(
                    f"model {e.id!r}: {type(pipe).__name__} has no call argument {extra!r}",
                    fix="remove it from call_args", field=f"call_args.{extra}",
                )
            kwargs[extra] = value
        if "width" in params_in and "height" in params_in:
            kwargs["width"], kwargs["height"] = gw, gh
        # The negative prompt only matters when the pipeline takes one *and* runs a
        # guidance pass that reads it: classifier-free guidance (scale > 1), or FLUX's
        # optional "true CFG". FLUX's guidance_scale is a distilled embedding, not CFG.
        negative = str(prompt.get("negative", "") or "")
        if "true_cfg_scale" in params_in:
            negative_used = float(e.call_args.get("true_cfg_scale", 1.0)) > 1.0
        else:
            negative_used = "negative_prompt" in params_in and e.guidance > 1.0
        negative_used = negative_used and bool(negative)
        if negative_used:
            kwargs["negative_prompt"] = negative

        strength = None
        if use_img2img:
            assert ref_image is not None
            strength = e.strength
            kwargs["image"] = cover(ref_image, gw, gh)
            kwargs["strength"] = strength
            ref_info[0]["used_as"] = "init-image"
        ip_info = None
        if self.ip_adapter is not None:
            # An IP-Adapter pipeline always needs an image prompt: with no reference, a
            # black image at scale 0 contributes exactly nothing.
            scale = self.ip_adapter["scale"] if ref_image is not None else 0.0
            pipe.set_ip_adapter_scale(scale)
            kwargs["ip_adapter_image"] = ref_image if ref_image is not None else Image.new("RGB", (224, 224))
            ip_info = {**self.ip_adapter, "scale": scale}
            if ref_image is not None:
                ref_info[0]["used_as"] = ref_info[0]["used_as"] or "ip-adapter"
                if use_img2img:
                    ref_info[0]["used_as"] = "init-image+ip-adapter"
        ignored = None
        if refs and ref_info[0]["used_as"] is None:
            ignored = (f"model {e.id!r} is {e.kind} without an IP-Adapter: references are not "
                       "used (use an image-to-image entry or one with ip_adapter)")

        try:
            with torch.inference_mode(), DeviceTimer(self.device) as timer:
                result = pipe(**kwargs)
        except StudioError:
            raise
        except Exception as ex:
            raise StageError(
                f"model {e.id!r} failed generating {n} image(s) at {gw}x{gh}: "
                f"{type(ex).__name__}: {str(ex).splitlines()[0][:300] if str(ex) else ''}",
                fix="check the model entry's size, dtype and device (GPU memory: "
                f"{e.gpu_memory_gb or '?'} GB)",
                stage="candidates",
            ) from ex
        images = to_uint8(result.images)
        x0, y0 = (gw - w) // 2, (gh - h) // 2
        denoise = e.steps if strength is None else int(e.steps * strength)
        out = []
        for index, (seed, img) in enumerate(zip(seeds, images, strict=True)):
            params = {
                "model_id": e.id,
                "seed": int(seed),
                "steps": e.steps,
                "denoising_steps": denoise,
                "guidance": e.guidance,
                "scheduler": type(pipe.scheduler).__name__,
                "pipeline_class": type(pipe).__name__,
                "mode": "image-to-image" if use_img2img else "text-to-image",
                "strength": strength,
                "dtype": self.dtype,
                "device": self.device,
                "generator": GENERATOR_DEVICE,
                "width": w, "height": h, "gen_width": gw, "gen_height": gh,
                "crop": [x0, y0] if (gw, gh) != (w, h) else None,
                "negative_prompt_used": negative_used,
                "call_args": dict(e.call_args),
                "references": ref_info,
                "references_ignored": ignored,
                "ip_adapter": ip_info,
                "batch_size": n,
                # what shared this pipeline call: CPU kernels block the batch differently
                # by its size, so these seeds, in this order, are part of how it was made
                "batch_seeds": [int(s) for s in seeds],
                "batch_index": index,
                # wall and CUDA time of the pipeline call, shared equally by its images
                "seconds": timer.seconds / n,
                "gpu_seconds": timer.gpu_seconds / n,
            }
            out.append(Keyframe(image=np.ascontiguousarray(img[y0:y0 + h, x0:x0 + w]), params=params))
        return out
