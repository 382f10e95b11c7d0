"""The diffusers keyframe and clip backends and the model registry, offline.

Tiny random-weight pipelines (tests/tiny_models.py) are built once per session, saved with
save_pretrained, registered by path in ModelEntry files in a user models folder, and
loaded back through the real backend classes; inference runs 2 steps on the CPU.
Clips are checked from the outside with ffprobe.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from fractions import Fraction
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from studio.errors import StudioError
from studio.models import ModelRegistry, verify_weights, weights_hash
from tests.tiny_models import entry_doc as _entry

pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parent.parent
PROMPT: dict[str, Any] = {
    "schema": "PromptRecord.1", "positive": "a red bottle on a plinth, studio light",
    "negative": "blurry, text", "palette": ["#12151f", "#d9a37f"], "camera": "push-in",
    "reference_images": [],
}


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Two OpenMP threads on a shared 2-core machine spin against each other (measured:
    0.2 s per tiny SVD call on one thread, 7-10 s on two under load). One thread also
    makes CPU kernels partition work the same way whatever the batch size."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def registry(models_dir: Path) -> ModelRegistry:
    return ModelRegistry(models_dir)


@pytest.fixture(scope="session")
def sd(registry: ModelRegistry):
    from shots.backends import create_backend

    # through the registry of backends, as the candidates stage builds it
    return create_backend("diffusers-image", {"model": registry.get("tiny-sd").dump(), "device": "cpu"})


@pytest.fixture(scope="session")
def sd_ref(registry: ModelRegistry):
    from shots.backends.diffusers_image import DiffusersImageBackend

    return DiffusersImageBackend(registry.get("tiny-sd-ref").dump(), device="cpu")


@pytest.fixture(scope="session")
def sd_ip(registry: ModelRegistry):
    from shots.backends.diffusers_image import DiffusersImageBackend

    return DiffusersImageBackend(registry.get("tiny-sd-ip").dump(), device="cpu")


@pytest.fixture(scope="session")
def svd(registry: ModelRegistry):
    from shots.backends.diffusers_video import DiffusersVideoBackend

    return DiffusersVideoBackend(registry.get("tiny-svd").dump(), device="cpu")


@pytest.fixture(scope="session")
def reference(tiny: dict[str, Path]) -> Path:
    """A style reference with another aspect ratio than the keyframes (cover-fitted)."""
    rng = np.random.default_rng(7)
    path = tiny["root"] / "style-ref.png"
    yy, xx = np.mgrid[0:50, 0:80]
    img = np.stack([xx * 3, yy * 5, (xx + yy) * 2], -1) % 256 + rng.integers(0, 20, (50, 80, 3))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return path


class CallSpy:
    """Records the keyword arguments of every call of a pipeline class."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, pipe: Any) -> None:
        self.calls: list[dict[str, Any]] = []
        cls = type(pipe)
        original = cls.__call__

        @functools.wraps(original)  # keeps the signature the backend inspects
        def spy(this: Any, *args: Any, **kwargs: Any) -> Any:
            self.calls.append(kwargs)
            return original(this, *args, **kwargs)

        monkeypatch.setattr(cls, "__call__", spy)


# --------------------------------------------------------------------- registry (no torch)


def test_importing_backends_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import studio.models, shots.backends.diffusers_image, shots.backends.diffusers_video\n"
        "from shots.backends import plugin_status\n"
        "rows = {n: s for n, _, s in plugin_status()}\n"
        "assert rows['diffusers-image'] == 'ok' and rows['diffusers-video'] == 'ok', rows\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_plugin_status_lists_both_backends_ok() -> None:
    from shots.backends import plugin_status

    rows = {name: (target, status) for name, target, status in plugin_status()}
    assert rows["diffusers-image"] == ("shots.backends.diffusers_image:DiffusersImageBackend", "ok")
    assert rows["diffusers-video"] == ("shots.backends.diffusers_video:DiffusersVideoBackend", "ok")


def test_shipped_entries_are_truthful_templates() -> None:
    reg = ModelRegistry()
    for family in ("sd15", "sdxl-base", "sd3-medium", "flux-schnell", "flux-dev", "svd-xt", "ltx-video"):
        assert family in reg.entries
    assert reg.get("flux-schnell").licence == "Apache-2.0"
    assert reg.get("flux-schnell").usage_classes == ["experiment", "internal", "public"]
    assert "Non-Commercial" in reg.get("flux-dev").licence
    assert reg.get("flux-dev").usage_classes == ["experiment"]
    for entry in reg.entries.values():
        assert entry.source.hub_id and entry.source.revision
        assert entry.weights_sha256 is None and not entry.pinned  # written offline: not pinned
        assert entry.provenance and entry.licence
    assert reg.get("svd-xt").kind == "image-to-video" and reg.get("svd-xt").num_frames == 25


def test_user_folder_entries_resolve_relative_paths(registry: ModelRegistry, tiny: dict[str, Path]) -> None:
    assert Path(registry.get("tiny-sd").source.path) == tiny["sd"].resolve()
    assert Path(registry.get("tiny-sd-ip").ip_adapter.path) == (tiny["root"] / "weights" / "ipa").resolve()
    assert "flux-schnell" in registry.entries  # shipped entries stay


def test_unknown_model_lists_known_ids(registry: ModelRegistry) -> None:
    with pytest.raises(StudioError) as err:
        registry.get("sdxl-turbo")
    assert err.value.what == "unknown model 'sdxl-turbo'"
    assert "flux-schnell" in err.value.fix and "tiny-sd" in err.value.fix
    assert err.value.field == "model"


def test_usage_class_refused_before_generation(registry: ModelRegistry) -> None:
    with pytest.raises(StudioError) as err:
        registry.check_usage(registry.get("flux-dev"), "public")
    assert err.value.line() == (
        "usage_class: model 'flux-dev' is licensed for experiment only, not public use "
        "(licence: FLUX.1 [dev] Non-Commercial License) — pick a model allowed for public use "
        "(e.g. flux-schnell, sdxl-base, sdxl-base-ipadapter) or change usage_class"
    )
    with pytest.raises(StudioError, match="licensed for experiment and internal only, not public use"):
        registry.check_usage(registry.get("tiny-sd"), "public", field="brief.usage_class")
    registry.check_usage(registry.get("tiny-sd"), "internal")  # allowed: no error
    with pytest.raises(StudioError, match="unknown usage class 'commercial'"):
        registry.check_usage(registry.get("tiny-sd"), "commercial")


def test_invalid_entries_name_the_field(tmp_path: Path) -> None:
    bad = _entry("bad", kind="image-to-image", backend="diffusers-video",
                 source={"hub_id": "owner/name"})
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad), encoding="utf-8")
    with pytest.raises(StudioError) as err:
        ModelRegistry(tmp_path)
    lines = err.value.lines()
    assert any("source: " in ln and "needs a revision" in ln for ln in lines), lines
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(
        _entry("bad", kind="image-to-image", backend="diffusers-video", source={"path": "x"})),
        encoding="utf-8")
    with pytest.raises(StudioError, match="kind image-to-image runs on backend 'diffusers-image', not 'diffusers-video'"):
        ModelRegistry(tmp_path)


def test_weights_hash_is_the_documented_sha256(tiny: dict[str, Path]) -> None:
    folder = tiny["sd"]
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".safetensors", ".bin", ".pt", ".ckpt", ".gguf"))
    assert files, "tiny SD saved no weight files"
    lines = "".join(f"{p.relative_to(folder).as_posix()}:{hashlib.sha256(p.read_bytes()).hexdigest()}\n"
                    for p in sorted(files, key=lambda p: p.relative_to(folder).as_posix()))
    assert weights_hash(folder) == hashlib.sha256(lines.encode()).hexdigest()


def test_weights_mismatch_is_refused_before_loading(registry: ModelRegistry, tiny: dict[str, Path]) -> None:
    from shots.backends.diffusers_image import DiffusersImageBackend

    actual = weights_hash(tiny["sd"])
    doc = {**registry.get("tiny-sd").dump(), "weights_sha256": "0" * 64}
    with pytest.raises(StudioError) as err:
        DiffusersImageBackend(doc, device="cpu")
    assert err.value.what == (
        f"weights of model 'tiny-sd' do not match: the entry pins weights_sha256 {'0' * 64} "
        f"but the files in {tiny['sd'].resolve()} hash to {actual}"
    )
    assert err.value.field == "weights_sha256"
    assert "set weights_sha256" in err.value.fix
    pinned = registry.get("tiny-sd").model_copy(update={"weights_sha256": actual})
    assert verify_weights(pinned, tiny["sd"]) == actual
    assert DiffusersImageBackend({**doc, "weights_sha256": actual}, device="cpu").describe()["weights_pinned"] is True


# --------------------------------------------------------------------------- keyframes


def test_logged_settings_match_what_ran(sd, registry: ModelRegistry, tiny: dict[str, Path],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import diffusers
    import torch
    import transformers

    spy = CallSpy(monkeypatch, sd.pipe)
    kf = sd.generate(PROMPT, 11, 60, 44)  # not multiples of 8: generated at 64x48, cropped
    (call,) = spy.calls
    p = kf.params
    assert kf.image.shape == (44, 60, 3) and kf.image.dtype == np.uint8
    assert (p["width"], p["height"], p["gen_width"], p["gen_height"]) == (60, 44, 64, 48)
    assert (call["width"], call["height"]) == (64, 48) and p["crop"] == [2, 2]
    assert p["steps"] == call["num_inference_steps"] == 2 == len(sd.pipe.scheduler.timesteps)
    assert p["guidance"] == call["guidance_scale"] == 5.0
    assert p["scheduler"] == type(sd.pipe.scheduler).__name__ == "EulerDiscreteScheduler"
    assert p["dtype"] == "float32" and sd.pipe.unet.dtype == torch.float32
    assert p["device"] == "cpu" and sd.pipe.device.type == "cpu"
    assert p["seed"] == 11 and [g.initial_seed() for g in call["generator"]] == [11]
    assert call["prompt"] == PROMPT["positive"] and call["negative_prompt"] == PROMPT["negative"]
    assert p["negative_prompt_used"] is True and p["mode"] == "text-to-image"
    assert p["gpu_seconds"] == 0.0 and p["seconds"] > 0
    d = sd.describe()
    assert d["backend"] == "diffusers-image" and d["model_id"] == "tiny-sd"
    assert d["weights_sha256"] == weights_hash(tiny["sd"])
    assert d["library_versions"]["torch"] == torch.__version__
    assert d["library_versions"]["diffusers"] == diffusers.__version__
    assert d["library_versions"]["transformers"] == transformers.__version__
    assert d["library_versions"]["accelerate"] == version("accelerate")
    assert d["library_versions"]["cuda"] == torch.version.cuda and d["device_name"] == "cpu"
    assert (d["device"], d["dtype"], d["pipeline_class"]) == ("cpu", "float32", "StableDiffusionPipeline")


def test_same_seed_same_pixels_other_seed_differs(sd) -> None:
    a = sd.generate(PROMPT, 5, 64, 64)
    b = sd.generate(PROMPT, 5, 64, 64)
    c = sd.generate(PROMPT, 6, 64, 64)
    assert np.array_equal(a.image, b.image)
    assert np.abs(a.image.astype(int) - c.image).mean() > 5


def test_batch_matches_single_images(sd, monkeypatch: pytest.MonkeyPatch) -> None:
    """A seed in a batch gives the same picture as alone, to within kernel drift: whether
    it is bit-exact depends on the CPU (a batch of 2 picks other GEMM kernels on some), so
    the test holds what holds on any CPU -- PSNR over the threshold regenerate uses, and
    bit-exact repeats of the same call (which is what `studio regenerate` reproduces)."""
    from shots.regenerate import PSNR_THRESHOLD_DB, psnr

    singles = [sd.generate(PROMPT, s, 64, 48).image for s in (21, 22)]
    spy = CallSpy(monkeypatch, sd.pipe)
    batch = sd.generate_batch(PROMPT, [21, 22], 64, 48)
    assert len(spy.calls) == 1  # batch_size 2: one pipeline call
    assert [g.initial_seed() for g in spy.calls[0]["generator"]] == [21, 22]
    assert [k.params["seed"] for k in batch] == [21, 22]
    assert [(k.params["batch_seeds"], k.params["batch_index"]) for k in batch] == [([21, 22], 0), ([21, 22], 1)]
    for single, kf in zip(singles, batch, strict=True):
        assert np.array_equal(single, kf.image) or psnr(single, kf.image) >= PSNR_THRESHOLD_DB
    again = sd.generate_batch(PROMPT, [21, 22], 64, 48)
    for a, b in zip(batch, again, strict=True):
        assert np.array_equal(a.image, b.image)
    # and a different seed is a different picture, far below the threshold
    assert psnr(singles[0], singles[1]) < PSNR_THRESHOLD_DB


def test_reference_image_to_image(sd_ref, reference: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = sd_ref.generate(PROMPT, 3, 64, 48)
    spy = CallSpy(monkeypatch, sd_ref._img2img())
    ref1 = sd_ref.generate(PROMPT, 3, 64, 48, references=[reference])
    ref2 = sd_ref.generate(PROMPT, 3, 64, 48, references=[reference])
    assert np.abs(ref1.image.astype(int) - plain.image).mean() > 5
    assert np.array_equal(ref1.image, ref2.image)
    (call, _) = spy.calls
    assert call["image"].size == (64, 48) and call["strength"] == 0.7
    p = ref1.params
    assert (p["mode"], p["strength"], p["pipeline_class"]) == (
        "image-to-image", 0.7, "StableDiffusionImg2ImgPipeline")
    assert p["denoising_steps"] == 1  # int(2 steps * 0.7)
    assert p["references"] == [{"sha256": hashlib.sha256(reference.read_bytes()).hexdigest(),
                                "used_as": "init-image"}]
    assert plain.params["mode"] == "text-to-image" and plain.params["strength"] is None
    batch = sd_ref.generate_batch(PROMPT, [3, 4], 64, 48, references=[reference])
    assert np.array_equal(batch[0].image, ref1.image)
    assert np.array_equal(batch[1].image, sd_ref.generate(PROMPT, 4, 64, 48, references=[reference]).image)


def test_text_to_image_model_says_it_ignores_references(sd, reference: Path) -> None:
    kf = sd.generate(PROMPT, 3, 64, 48, references=[reference])
    assert np.array_equal(kf.image, sd.generate(PROMPT, 3, 64, 48).image)
    assert "references are not used" in kf.params["references_ignored"]
    assert kf.params["references"][0]["used_as"] is None


def test_ip_adapter_offline(sd_ip, sd_ref, reference: Path) -> None:
    # sd_ref without references: the same weights, scheduler and settings, no adapter
    d = sd_ip.describe()["ip_adapter"]
    assert d["scale"] == 0.8 and d["weight_name"] == "ip-adapter_tiny.safetensors"
    plain = sd_ref.generate(PROMPT, 8, 64, 48).image
    # no reference: the adapter runs at scale 0 and changes nothing
    assert np.array_equal(sd_ip.generate(PROMPT, 8, 64, 48).image, plain)
    a = sd_ip.generate(PROMPT, 8, 64, 48, references=[reference])
    b = sd_ip.generate(PROMPT, 8, 64, 48, references=[reference])
    assert np.array_equal(a.image, b.image)
    assert np.abs(a.image.astype(int) - plain).mean() > 1
    assert a.params["ip_adapter"]["scale"] == 0.8 and a.params["references"][0]["used_as"] == "ip-adapter"
    assert a.params["mode"] == "text-to-image"
    batch = sd_ip.generate_batch(PROMPT, [8, 9], 64, 48, references=[reference])
    assert np.array_equal(batch[0].image, a.image)


def test_hub_id_and_revision_from_the_local_cache(tiny: dict[str, Path], registry: ModelRegistry,
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hf

    from shots.backends.diffusers_image import DiffusersImageBackend

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--studio-test--tiny-sd"
    shutil.copytree(tiny["sd"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    doc = {**registry.get("tiny-sd").dump(), "weights_sha256": weights_hash(tiny["sd"]),
           "source": {"hub_id": "studio-test/tiny-sd", "revision": commit}}
    backend = DiffusersImageBackend(doc, device="cpu")
    assert backend.folder == repo / "snapshots" / commit
    assert backend.describe()["weights_pinned"] is True
    doc["source"] = {"hub_id": "studio-test/not-cached", "revision": commit}
    with pytest.raises(StudioError, match="not in the local hub cache") as err:
        DiffusersImageBackend(doc, device="cpu")
    assert err.value.fix.startswith(f"fetch it first (`hf download studio-test/not-cached --revision {commit}`)")


# ------------------------------------------------------------------------------- clips


def _ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_streams",
         "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["streams"][0]


@pytest.fixture(scope="session")
def keyframe(tiny: dict[str, Path]) -> Path:
    path = tiny["root"] / "keyframe.png"
    yy, xx = np.mgrid[0:90, 0:160]
    img = np.stack([xx * 1.5, yy * 2.5, 255 - xx], -1)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return path


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffmpeg/ffprobe not installed")
def test_video_clip_frames_and_rate(svd, keyframe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = CallSpy(monkeypatch, svd.pipe)
    out = tmp_path / "clip.mp4"
    rate = Fraction(24000, 1001)
    params = svd.render_clip(keyframe, out, prompt=PROMPT, seed=4, frames=9, rate=rate, width=96, height=54)
    info = _ffprobe(out)
    assert int(info["nb_read_frames"]) == 9
    assert info["r_frame_rate"] == "24000/1001"
    assert (info["width"], info["height"], info["codec_name"], info["pix_fmt"]) == (96, 54, "h264", "yuv420p")
    assert info["color_space"] == "bt709"
    # 4 frames per call, chained on the last frame: 4 + 3 + 3 = 10 >= 9
    assert len(spy.calls) == 3 and params["chunks"] == 3 and params["extend"] == "chain"
    assert params["trimmed_frames"] == 1 and params["held_frames"] == 0
    call = spy.calls[0]
    assert call["num_frames"] == 4 == params["model_frames"]
    assert call["num_inference_steps"] == 2 == params["steps"]
    assert call["max_guidance_scale"] == 2.0 == params["guidance"]
    assert call["fps"] == 24 == params["motion_conditioning"]["fps"]
    assert call["motion_bucket_id"] == 100 and "prompt" not in call  # SVD takes no prompt
    assert (call["width"], call["height"]) == (params["gen_width"], params["gen_height"]) == (40, 24)
    assert call["image"].size == (40, 24)
    assert params["rate"] == "24000/1001" and params["frames"] == 9
    assert params["weights_sha256"] == svd.describe()["weights_sha256"]
    assert params["prompt_used"] is False and params["gpu_seconds"] == 0.0


def test_video_frames_folder_is_deterministic_and_holds(svd, registry: ModelRegistry, keyframe: Path,
                                                        tmp_path: Path) -> None:
    from shots.backends.diffusers_video import DiffusersVideoBackend

    a = svd.render_clip(keyframe, tmp_path / "a", prompt=PROMPT, seed=9, frames=3, rate=Fraction(25),
                        width=48, height=32)
    svd.render_clip(keyframe, tmp_path / "b", prompt=PROMPT, seed=9, frames=3, rate=Fraction(25),
                    width=48, height=32)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["frame_000001.png", "frame_000002.png", "frame_000003.png"]
    assert a["output"] == "png-frames" and a["extend"] is None and a["trimmed_frames"] == 1
    for n in names:
        assert np.array_equal(np.asarray(Image.open(tmp_path / "a" / n)), np.asarray(Image.open(tmp_path / "b" / n)))
    assert Image.open(tmp_path / "a" / names[0]).size == (48, 32)
    hold = DiffusersVideoBackend({**registry.get("tiny-svd").dump(), "extend": "hold"}, device="cpu")
    h = hold.render_clip(keyframe, tmp_path / "h", prompt=PROMPT, seed=9, frames=6, rate=Fraction(25),
                         width=48, height=32)
    assert (h["extend"], h["chunks"], h["held_frames"]) == ("hold", 1, 2)
    frames = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "h").iterdir())]
    assert len(frames) == 6 and np.array_equal(frames[3], frames[4]) and np.array_equal(frames[4], frames[5])
