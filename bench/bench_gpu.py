"""GPU benchmark: keyframes through Studio's warm Ray actors vs a bare diffusers loop.

    python bench/bench_gpu.py [--size 1024] [--steps 20] [--images 12] [--reps 3]

Runs on any CUDA machine with torch, diffusers, transformers and ray installed. No
download: the pipeline is an SDXL-sized one (UNet, VAE and both text encoders at the
real architecture's size, from inline configs) with random weights, built on the GPU and
saved with ``save_pretrained``; random weights cost the same compute as trained ones.

Both sides load that folder and make the same images: same architecture, dtype, steps,
guidance, size, batch and seeds. Studio's side is the candidates stage's own machinery:
``KeyframePool`` (a warm ``KeyframeWorker`` Ray actor with one GPU, two tasks in flight)
fed by ``make_jobs``, so its time includes what a run pays per image: the PNG encode, the
content-addressed store write and the scoring. Repetitions are interleaved, medians
reported. Targets: Studio ÷ bare images/s >= 0.97; batch 4 ÷ batch 1 >= 1.8.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Stable Diffusion XL base 1.0's component configs (architecture only).
SDXL_UNET: dict[str, Any] = {
    "sample_size": 128, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": [320, 640, 1280],
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "transformer_layers_per_block": [1, 2, 10], "attention_head_dim": [5, 10, 20],
    "cross_attention_dim": 2048, "use_linear_projection": True,
    "addition_embed_type": "text_time", "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}
SDXL_VAE: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "sample_size": 1024,
    "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2,
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "scaling_factor": 0.13025, "force_upcast": False,
}
CLIP_L: dict[str, Any] = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                          "num_attention_heads": 12, "projection_dim": 768, "vocab_size": 49408,
                          "hidden_act": "quick_gelu"}
CLIP_G: dict[str, Any] = {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
                          "num_attention_heads": 20, "projection_dim": 1280, "vocab_size": 49408,
                          "hidden_act": "gelu"}


def build_pipeline(folder: Path) -> None:
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
    )

    from tests.tiny_models import write_clip_tokenizer_files

    torch.manual_seed(0)
    with torch.device("cuda"):  # random init on the GPU: seconds, not minutes
        unet = UNet2DConditionModel(**SDXL_UNET).half()
        vae = AutoencoderKL(**SDXL_VAE).half()
        te1 = CLIPTextModel(CLIPTextConfig(**CLIP_L)).half()
        te2 = CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_G)).half()
    tok_dir = write_clip_tokenizer_files(folder.parent / "tokenizer-files")
    tok = CLIPTokenizer.from_pretrained(tok_dir, model_max_length=77)  # CLIP context length
    sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                   num_train_timesteps=1000, timestep_spacing="leading", steps_offset=1)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tok,
                                     tokenizer_2=tok, unet=unet, scheduler=sched)
    pipe.save_pretrained(folder)
    del pipe, unet, vae, te1, te2
    torch.cuda.empty_cache()


def model_entry(folder: Path, args: argparse.Namespace, batch: int) -> dict[str, Any]:
    from studio.models import parse_entry

    return parse_entry({
        "schema": "ModelEntry.1", "id": "sdxl-random", "kind": "text-to-image",
        "backend": "diffusers-image", "source": {"path": str(folder)},
        "pipeline_class": "StableDiffusionXLPipeline", "licence": "random weights (benchmark)",
        "provenance": "random init from SDXL base 1.0's architecture configs",
        "usage_classes": ["experiment"], "num_gpus": 1, "dtype": "float16", "steps": args.steps,
        "guidance": args.guidance, "width": args.size, "height": args.size, "batch_size": batch,
    }).dump()


def prompt_record() -> dict[str, Any]:
    from studio.brief import load_brief
    from studio.prompts import compile_prompt
    from studio.specs import Catalog

    brief, _ = load_brief(ROOT / "examples" / "briefs" / "launch.yaml")
    cat = Catalog()
    return compile_prompt(brief, brief.beats[0], cat.style(brief.style_pack),
                          [cat.spec(c) for c in brief.channels]).canonical()


def bare_loop(pipe: Any, prompt: dict[str, Any], args: argparse.Namespace, batch: int, seed0: int) -> float:
    """What a user writes by hand: the pipeline called batch by batch. Images/s."""
    import torch

    t0 = time.perf_counter()
    for k in range(args.images // batch):
        gens = [torch.Generator("cuda").manual_seed(seed0 + k * batch + i) for i in range(batch)]
        images = pipe(prompt=prompt["positive"], negative_prompt=prompt["negative"],
                      num_images_per_prompt=batch, num_inference_steps=args.steps,
                      guidance_scale=args.guidance, width=args.size, height=args.size,
                      generator=gens, output_type="pil").images
        assert len(images) == batch
    torch.cuda.synchronize()
    return args.images / (time.perf_counter() - t0)


def studio_run(pool: Any, prompt: dict[str, Any], args: argparse.Namespace, batch: int, seed0: int) -> float:
    from shots.generate import make_jobs

    shot = SimpleNamespace(shot_id="bench", beat_id="b01", prompt=prompt, prompt_hash="0" * 64,
                           seeds=[seed0 + i for i in range(args.images)])
    jobs = make_jobs([shot], args.size, args.size, batch)
    t0 = time.perf_counter()
    n = sum(len(r["items"]) for r in pool.run(jobs))
    assert n == args.images
    return args.images / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--images", type=int, default=12, help="images per measurement (multiple of 4)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu.json")
    args = ap.parse_args()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # local Ray on loopback
    import ray
    import torch
    from diffusers import StableDiffusionXLPipeline

    from shots.generate import KeyframePool
    from studio.specs import Catalog

    if not torch.cuda.is_available():
        print("no CUDA device: nothing measured")
        sys.exit(0)
    work = Path(tempfile.mkdtemp(prefix="studio-bench-gpu-"))
    folder = work / "sdxl-random"
    t = time.perf_counter()
    build_pipeline(folder)
    build_s = time.perf_counter() - t
    prompt = prompt_record()
    specs = [Catalog().spec(n).model_dump(mode="json", by_alias=True) for n in ("youtube-1080p", "reels-9x16")]

    pipe = StableDiffusionXLPipeline.from_pretrained(folder, torch_dtype=torch.float16,
                                                     local_files_only=True).to("cuda")
    pipe.set_progress_bar_config(disable=True)
    # workers inherit this process's environment (PYTHONPATH included)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)
    ray.init(num_gpus=1, include_dashboard=False, log_to_driver=False)
    results: dict[str, Any] = {}
    for batch in [int(b) for b in args.batches.split(",")]:
        pool = KeyframePool("diffusers-image", {"model": model_entry(folder, args, batch), "device": "cuda"},
                            str(work / "store"), specs, {"num_cpus": 1, "num_gpus": 1}, 1)
        # warm both: model load, cuDNN autotune, allocator
        bare_loop(pipe, prompt, argparse.Namespace(**{**vars(args), "images": batch}), batch, 0)
        studio_run(pool, prompt, argparse.Namespace(**{**vars(args), "images": batch}), batch, 0)
        bare, studio = [], []
        for r in range(args.reps):  # interleaved, alternating who goes first
            order = [("bare", bare_loop, pipe), ("studio", studio_run, pool)]
            for name, fn, obj in order if r % 2 == 0 else order[::-1]:
                ips = fn(obj, prompt, args, batch, 1000 + r * args.images)
                (bare if name == "bare" else studio).append(ips)
                print(f"batch {batch} rep {r} {name:<6} {ips:.3f} images/s", flush=True)
        results[f"batch{batch}"] = {"bare_ips": statistics.median(bare), "studio_ips": statistics.median(studio),
                                    "bare_all": bare, "studio_all": studio,
                                    "ratio": statistics.median(studio) / statistics.median(bare)}
        pool.close()
        del pool
    summary: dict[str, Any] = {
        "benchmark": "gpu", "device": torch.cuda.get_device_name(0),
        "versions": {"torch": torch.__version__, "diffusers": __import__("diffusers").__version__,
                     "ray": ray.__version__, "python": platform.python_version()},
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "build_s": build_s, "results": results,
    }
    if "batch1" in results and "batch4" in results:
        summary["batch4_vs_batch1_studio"] = results["batch4"]["studio_ips"] / results["batch1"]["studio_ips"]
        summary["batch4_vs_batch1_bare"] = results["batch4"]["bare_ips"] / results["batch1"]["bare_ips"]
    print(json.dumps(summary, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    ray.shutdown()


if __name__ == "__main__":
    main()
