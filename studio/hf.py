"""Helpers every Hugging Face backend shares (image, video, speech, music): what ran,
recorded with each output so a re-run can say what changed."""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version


def library_versions() -> dict[str, str | None]:
    """The versions that ran: a loaded module's own ``__version__`` first (package
    metadata drops torch's build tag, e.g. "+cu130" vs "+cpu", which changes numerics),
    then package metadata; plus the CUDA and cuDNN versions torch was built with."""
    out: dict[str, str | None] = {}
    for name in ("torch", "diffusers", "transformers", "accelerate", "safetensors"):
        v = getattr(sys.modules.get(name), "__version__", None)
        if v is None:
            try:
                v = version(name)
            except PackageNotFoundError:
                v = None
        out[name] = str(v) if v is not None else None
    torch = sys.modules.get("torch")
    if torch is not None:
        out["cuda"] = torch.version.cuda
        cudnn = torch.backends.cudnn.version() if torch.cuda.is_available() else None
        out["cudnn"] = str(cudnn) if cudnn is not None else None
    return out
