"""Re-create a candidate from its recorded recipe and conditions, and check it.

Everything needed is in the database: the prompt record (by hash), seed, size, backend
and its options, and the conditions it ran under (shots.generate records them): the
seeds that shared its backend call and its index there, torch's thread count, the device,
dtype, library versions and the CPU's kernel-relevant features. Regeneration re-runs the
same call (the whole batch, same seeds, same order) with the same thread count on the
recorded device and picks this candidate's image.

Under the same conditions on the same kind of machine the bytes match: ``bit-exact``.
Float kernels are not bit-stable across CPU vector units, devices or library versions
(nor across batch sizes or thread counts, when those are overridden): there the verdict
rests on a perceptual distance, PSNR over the 8-bit RGB pixels, against
``PSNR_THRESHOLD_DB``. Kernel-level drift moves pixels by at most a level or two
(well above 40 dB); a wrong seed, prompt or model gives an unrelated image (10-20 dB).
The report lists every condition that differs from the record, so a result that is
not bit-exact says why.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from shots.generate import png_bytes
from studio import db
from studio.conditions import cpu_info, torch_threads, torch_threads_now
from studio.errors import StudioError
from studio.store import Store, atomic_write_bytes

# At 40 dB the RMS error is 2.55 levels of 255: kernel noise sits above it, a
# different image far below it.
PSNR_THRESHOLD_DB = 40.0


def find_candidate(s: Session, candidate_id: str) -> db.Candidate:
    cand = s.get(db.Candidate, candidate_id)
    if cand is not None:
        return cand
    matches = s.exec(select(db.Candidate).where(db.Candidate.id.startswith(candidate_id))).all()  # type: ignore[attr-defined]
    if len(matches) == 1:
        return matches[0]
    raise StudioError(
        f"no candidate {candidate_id!r}" if not matches else f"{candidate_id!r} matches {len(matches)} candidates",
        fix="see candidate ids with `studio show RUN`", field="CANDIDATE",
    )


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two 8-bit images in dB (inf when the pixels are equal)."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0.0 else 10.0 * math.log10(255.0 ** 2 / mse)


def _conditions(params: dict[str, Any], describe: dict[str, Any], run: dict[str, Any] | None) -> dict[str, Any]:
    """One flat view of what a keyframe was computed under, recorded or now."""
    run = run or {}
    return {
        "call": run.get("call"),
        "batch_seeds": run.get("batch_seeds"),
        "batch_index": run.get("batch_index"),
        "torch_threads": run.get("torch_threads"),
        "device": params.get("device", describe.get("device")),
        "dtype": params.get("dtype", describe.get("dtype")),
        "library_versions": describe.get("library_versions") or {},
        "cpu": run.get("cpu") or {},
    }


def _differences(rec: dict[str, Any], now: dict[str, Any], recorded_run: bool) -> list[str]:
    """Each condition that differs between the record and this run, in words.

    With the run's conditions recorded, a torch setting recorded as None means the worker
    never loaded torch (a numpy backend): torch's state now is then irrelevant, not a change.
    """
    out: list[str] = []

    def shown(v: Any) -> str:
        return "unknown" if v is None else str(v)

    def skip(a: Any) -> bool:
        return recorded_run and a is None
    rb = (rec["call"], rec["batch_seeds"], rec["batch_index"])
    nb = (now["call"], now["batch_seeds"], now["batch_index"])
    if rb != nb:
        def batch(c: dict[str, Any]) -> str:
            return f"{c['call']}({c['batch_seeds']}) #{c['batch_index']}"
        out.append(f"batch: recorded {batch(rec)}, now {batch(now)}")
    if rec["torch_threads"] != now["torch_threads"] and not skip(rec["torch_threads"]):
        out.append(f"torch threads: recorded {shown(rec['torch_threads'])}, now {shown(now['torch_threads'])}")
    for key in ("device", "dtype"):
        if rec[key] != now[key]:
            out.append(f"{key}: recorded {shown(rec[key])}, now {shown(now[key])}")
    for name in sorted(set(rec["library_versions"]) | set(now["library_versions"])):
        a, b = rec["library_versions"].get(name), now["library_versions"].get(name)
        if a != b:
            out.append(f"{name}: recorded {shown(a)}, now {shown(b)}")
    for key in sorted(set(rec["cpu"]) | set(now["cpu"])):
        a, b = rec["cpu"].get(key), now["cpu"].get(key)
        if a != b and not (key == "torch_capability" and skip(a)):
            out.append(f"cpu {key}: recorded {shown(a)}, now {shown(b)}")
    return out


def _read_rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def _device_now(recorded: str | None) -> tuple[str | None, str | None]:
    """The device to regenerate on: the recorded one, unless it is a GPU this machine
    lacks (then the backend's default, and a note saying so)."""
    if recorded and str(recorded).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return None, f"recorded on {recorded}, which this machine does not have"
    return recorded, None


def regenerate(engine: Engine, store: Store, candidate_id: str, out: Path | None = None, *,
               alone: bool = False, threads: int | None = None) -> dict[str, Any]:
    """Regenerate a candidate under its recorded conditions and compare it with the record.

    ``alone`` regenerates it in a batch of its own and ``threads`` with another torch
    thread count: deliberate departures from the record, reported as such.
    """
    from shots.backends import create_backend, load_backend_class

    with Session(engine) as s:
        cand = find_candidate(s, candidate_id)
        prompt_row = s.get(db.PromptRecordRow, cand.prompt_hash)
        if prompt_row is None:
            raise StudioError(f"prompt record {cand.prompt_hash[:12]} is missing from the database",
                              fix="the database is incomplete; re-render the brief", field="CANDIDATE")
        prompt = prompt_row.document
        params = dict(cand.params or {})
        backend_name, seed, width, height = cand.backend, cand.seed, cand.width, cand.height
        recorded_sha, cid = cand.media_sha256, cand.id
    options = dict(params.get("backend_options") or {})
    describe = params.get("describe") or {}
    run = params.get("conditions")
    notes: list[str] = []
    if not run:
        notes.append("the record has no conditions (made before they were recorded): "
                     "regenerated alone with this process's threads")
    recorded = _conditions(params, describe, run or {"call": "generate", "batch_seeds": [seed], "batch_index": 0})

    # the call to repeat: the recorded batch, with the record's own seed at its index
    call = recorded["call"] or "generate"
    seeds = [int(x) for x in (recorded["batch_seeds"] or [seed])]
    index = int(recorded["batch_index"] or 0)
    if not 0 <= index < len(seeds):
        raise StudioError(f"candidate {cid}: batch index {index} is outside its recorded batch {seeds}",
                          fix="the record is damaged; re-render the brief", field="CANDIDATE")
    if seeds[index] != seed:
        notes.append(f"the record's seed {seed} differs from its batch entry {seeds[index]}: "
                     "regenerated with the record's seed")
        seeds[index] = int(seed)
    if alone:
        call, seeds, index = "generate", [int(seed)], 0

    if "device" in inspect.signature(load_backend_class(backend_name)).parameters and recorded["device"]:
        device, why = _device_now(recorded["device"])
        options["device"] = device
        if why:
            notes.append(why)
    backend = create_backend(backend_name, options)
    refs = [store.find(h) for h in prompt.get("reference_images", [])]
    kwargs: dict[str, Any] = {"references": refs} if refs else {}
    want_threads = threads if threads is not None else recorded["torch_threads"]
    with torch_threads(want_threads):
        threads_now = torch_threads_now()
        if call == "generate_batch" and hasattr(backend, "generate_batch"):
            kf = backend.generate_batch(prompt, seeds, width, height, **kwargs)[index]
        else:
            kf = backend.generate(prompt, seeds[index], width, height, **kwargs)
    now = _conditions(kf.params, backend.describe(),
                      {"call": call, "batch_seeds": seeds, "batch_index": index,
                       "torch_threads": threads_now, "cpu": cpu_info()})
    differences = _differences(recorded, now, recorded_run=bool(run))

    data = png_bytes(kf.image)
    sha = hashlib.sha256(data).hexdigest()
    if out is not None:
        atomic_write_bytes(out, data)
    store.put_bytes(data, ".png")

    psnr_db: float | None = None
    if sha == recorded_sha:
        verdict, text = "bit-exact", "bit-exact"
    else:
        try:
            original = _read_rgb(store.find(recorded_sha).read_bytes())
        except FileNotFoundError:
            original = None
        if original is None:
            verdict, text = "DIFFERENT", "DIFFERENT (the recorded image is not in the store to compare)"
        elif original.shape != kf.image.shape:
            verdict, text = "DIFFERENT", f"DIFFERENT (size {original.shape[1]}x{original.shape[0]} recorded, " \
                                         f"{kf.image.shape[1]}x{kf.image.shape[0]} now)"
        else:
            psnr_db = psnr(original, np.asarray(kf.image))
            shown = "inf" if math.isinf(psnr_db) else f"{psnr_db:.1f}"
            if psnr_db >= PSNR_THRESHOLD_DB:
                verdict, text = "within-threshold", f"within-threshold (PSNR {shown} dB >= {PSNR_THRESHOLD_DB:g})"
            else:
                verdict, text = "DIFFERENT", f"DIFFERENT (PSNR {shown} dB < {PSNR_THRESHOLD_DB:g})"
        if not differences:
            notes.append("every recorded condition matches: the kernels are not deterministic here")
    return {
        "candidate": cid, "backend": backend_name, "seed": seed, "size": [width, height],
        "recorded_sha256": recorded_sha, "regenerated_sha256": sha, "identical": sha == recorded_sha,
        "verdict": verdict, "verdict_text": text, "psnr_db": psnr_db, "threshold_db": PSNR_THRESHOLD_DB,
        "recorded": recorded, "now": now, "differences": differences, "notes": notes,
        "recorded_device": recorded["device"], "device": now["device"],
        "out": str(out) if out else None,
    }
