"""Benchmark: what disclosure costs per deliverable (studio.provenance.disclose: XMP with
exiftool, then a C2PA manifest signed ES256 with c2pa-python), beside a plain copy of the
same bytes.

    python bench/bench_sign.py [--quick] [--reps N]

Two deliverables: a 1080p JPEG and a 30 s 1080p H.264/AAC MP4 (made once, cached in
bench/results/media). Each repetition, interleaved and in rotated order, times for each:
  copy   shutil.copyfile of the deliverable (the baseline: reading and writing its bytes)
  xmp    write_xmp on a fresh copy (exiftool edits a temp copy, then it is renamed)
  sign   sign on that copy (hashes the file, signs, writes a signed temp copy, renames)
  total  xmp + sign, i.e. disclose() less the credential check
Medians of wall and CPU seconds (this process and the exiftool it waited for); the ratio
is total / copy. The certificate chain is a throwaway one made like the tests' (root,
intermediate, ES256 leaf). Results: a table on stdout and bench/results/sign.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from studio import provenance as prov  # noqa: E402
from tests.test_provenance import COMPOSITE, make_pki  # noqa: E402

MEDIA = ROOT / "bench" / "results" / "media"


def _jpeg(path: Path) -> Path:
    if not path.exists():
        # Noise over a gradient: a photo-like JPEG size (a flat picture compresses to nothing).
        import numpy as np

        rng = np.random.default_rng(1)
        base = np.linspace(0, 255, 1920, dtype=np.float32)[None, :, None].repeat(1080, 0).repeat(3, 2)
        img = np.clip(base + rng.normal(0, 24, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(path, quality=90)
    return path


def _mp4(path: Path) -> Path:
    if not path.exists():
        tmp = path.with_suffix(".tmp.mp4")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30",
                        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "30",
                        "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
                        "-c:a", "aac", "-b:a", "192k", "-movflags", "+faststart", str(tmp)], check=True)
        tmp.replace(path)
    return path


def _clock() -> tuple[float, float]:
    t = os.times()
    return time.perf_counter(), t.user + t.system + t.children_user + t.children_system


def _timed(fn: Any) -> tuple[float, float]:
    w0, c0 = _clock()
    fn()
    w1, c1 = _clock()
    return w1 - w0, c1 - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 repetitions")
    ap.add_argument("--reps", type=int, default=None)
    args = ap.parse_args()
    reps = args.reps or (3 if args.quick else 7)
    MEDIA.mkdir(parents=True, exist_ok=True)
    sources = {"jpeg-1080p": _jpeg(MEDIA / "sign-1080p.jpg"), "mp4-1080p-30s": _mp4(MEDIA / "sign-1080p-30s.mp4")}
    comps = prov.components_from(COMPOSITE)
    kind = prov.source_type(comps)
    with tempfile.TemporaryDirectory(prefix="bench-sign-") as d:
        work = Path(d)
        pki = make_pki(work / "pki")
        creds = prov.check_credentials(pki["chain_pem"], pki["key_pem"])
        times: dict[str, dict[str, list[tuple[float, float]]]] = {
            n: {k: [] for k in ("copy", "xmp", "sign", "total")} for n in sources}
        names = list(sources)
        for rep in range(reps):
            order = names[rep % len(names):] + names[:rep % len(names)]
            for name in order:
                src = sources[name]
                dest = work / f"{name}-{rep}{src.suffix}"
                # The copy first, then the disclosure of that copy; alternate which goes first.
                steps = ["copy", "disclose"] if rep % 2 == 0 else ["disclose", "copy"]
                for step in steps:
                    if step == "copy":
                        t = _timed(lambda s=src, c=work / f"copy{src.suffix}": shutil.copyfile(s, c))
                        times[name]["copy"].append(t)
                        (work / f"copy{src.suffix}").unlink()
                    else:
                        shutil.copyfile(src, dest)
                        tx = _timed(lambda p=dest: prov.write_xmp(p, kind, {"description": "bench"}))
                        ts = _timed(lambda p=dest, n=name: prov.sign(
                            p, cert_chain_pem=creds.cert_chain_pem, private_key_pem=creds.private_key_pem,
                            components=comps, disclosures=[], title=n))
                        times[name]["xmp"].append(tx)
                        times[name]["sign"].append(ts)
                        times[name]["total"].append((tx[0] + ts[0], tx[1] + ts[1]))
                        prov.verify(dest)  # each signed file must verify, or the timing means nothing
                        dest.unlink()
        result: dict[str, Any] = {"reps": reps, "python": platform.python_version(),
                                  "cpus": os.cpu_count(), "load": os.getloadavg(), "files": {}}
        print(f"{reps} interleaved repetitions; load average {os.getloadavg()[0]:.1f}")
        print("| deliverable | size | copy wall / CPU s | XMP wall s | sign wall s | XMP+sign wall / CPU s | ratio wall | ratio CPU |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, src in sources.items():
            med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
                   for k, v in times[name].items()}
            rw = med["total"][0] / med["copy"][0]
            # os.times() ticks are 10 ms: a copy below one tick has no CPU ratio.
            rc = med["total"][1] / med["copy"][1] if med["copy"][1] >= 0.01 else None
            size = src.stat().st_size
            result["files"][name] = {"bytes": size, "median": med, "ratio_wall": rw, "ratio_cpu": rc,
                                     "raw": times[name]}
            print(f"| {name} | {size / 1e6:.1f} MB | {med['copy'][0]:.4f} / {med['copy'][1]:.3f} | "
                  f"{med['xmp'][0]:.3f} | {med['sign'][0]:.3f} | {med['total'][0]:.3f} / {med['total'][1]:.3f} | "
                  f"{rw:.0f}× | {'—' if rc is None else f'{rc:.0f}×'} |")
    out = ROOT / "bench" / "results" / "sign.json"
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
