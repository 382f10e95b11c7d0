"""The machine conditions a result was computed under, and a way to recreate them.

Float kernels (GEMM, convolution) pick their code path from the CPU's vector units and
split their work by thread count, so the same model, seed and batch can move by a few
1e-6 between an AVX-512 and an AVX2 machine, or between 1 and 2 threads. A record that
names the CPU features and thread count lets a later check reproduce them where it can,
and say why not where it cannot.

torch is never imported here: a worker that did not load it has no torch state to record.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")
# the vector extensions that decide which kernels numpy, oneDNN and MKL dispatch to
KERNEL_FLAGS = ("avx512f", "avx2")


def cpu_info(cpuinfo: Path = CPUINFO) -> dict[str, Any]:
    """CPU model, architecture and kernel-relevant flags; torch's dispatch level if loaded."""
    model: str | None = None
    flags: set[str] = set()
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        text = ""  # not Linux: the model comes from platform, flags stay unknown
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:  # x86 / arm
            flags = set(value.split())
    out: dict[str, Any] = {
        "model": model or platform.processor() or None,
        "machine": platform.machine(),
    }
    for flag in KERNEL_FLAGS:
        out[flag] = (flag in flags) if text else None
    torch = sys.modules.get("torch")
    out["torch_capability"] = torch.backends.cpu.get_cpu_capability() if torch is not None else None
    return out


def torch_threads_now() -> int | None:
    """torch's intra-op thread count, or None when this process has not loaded torch."""
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads (None: leave as is), restored afterwards."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
