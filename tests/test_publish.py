"""Publish hygiene: what lands in the output folder is exactly the output, with the modes
any other program's output would have, and every file of it is in the manifest.

The demo render (the session's ``demo_run``) is the subject: its stages write scratch
(mix intermediates, raw voice lines, the music premix, animatic frames, caption overlays)
that must not be published.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_no_scratch_or_hidden_entries_in_the_output(demo_run) -> None:
    ctx, out = demo_run
    hidden = sorted(str(p.relative_to(out)) for p in out.rglob("*")
                    if any(part.startswith(".") for part in p.relative_to(out).parts))
    assert hidden == [], hidden
    # The scratch went with the work folder: nothing of the run is left beside the output.
    assert not ctx.scratch_dir.exists()
    assert not ctx.work_dir.exists()
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]


def test_output_modes_follow_the_umask(demo_run) -> None:
    _, out = demo_run
    mask = os.umask(0)
    os.umask(mask)
    if mask != 0o022:
        pytest.skip(f"umask is {mask:03o}; the expected modes below are for 022")
    modes = {str(p.relative_to(out)): stat.S_IMODE(p.stat().st_mode) for p in [out, *out.rglob("*")]}
    folders = {k: v for k, v in modes.items() if (out / k).is_dir()}
    files = {k: v for k, v in modes.items() if not (out / k).is_dir()}
    assert folders["."] == 0o755  # mkdtemp's 0700 would keep everyone else out
    assert {k: oct(v) for k, v in folders.items() if v != 0o755} == {}
    assert {k: oct(v) for k, v in files.items() if v != 0o644} == {}


def test_every_file_is_in_the_manifest_with_size_and_sha256(demo_run) -> None:
    _, out = demo_run
    listed = {f["path"]: f for f in _manifest(out)["files"]}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert sorted(on_disk - set(listed)) == [], "files not in the manifest"
    assert sorted(set(listed) - on_disk) == [], "listed but not there"
    assert "manifest.json" not in listed
    for rel, f in listed.items():
        p = out / rel
        assert f["size"] == p.stat().st_size, rel
        assert f["sha256"] == _sha256(p), rel
    # The deliverables, timelines, stems and review files are all among them.
    m = _manifest(out)
    for section in (m["deliverables"], m["timelines"], m["sound"]["stems"], list(m["review"].values())):
        for item in section:
            assert listed[item["path"]]["sha256"] == item["sha256"], item["path"]


def test_manifest_files_validate_against_the_schema(demo_run) -> None:
    import jsonschema

    from studio.inspect import manifest_json_schema

    _, out = demo_run
    m = _manifest(out)
    jsonschema.validate(m, manifest_json_schema())
    # The schema requires the list: a manifest without it is not Manifest.1 any more.
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({k: v for k, v in m.items() if k != "files"}, manifest_json_schema())


def test_scratch_is_removed_before_publishing(tmp_path: Path) -> None:
    """``publish`` alone: a work folder with scratch and owner-only modes comes out clean."""
    from studio.context import SCRATCH
    from studio.pipeline import publish

    work = tmp_path / ".out.partial-x"
    work.mkdir(mode=0o700)
    (work / SCRATCH / "mix").mkdir(parents=True)
    (work / SCRATCH / "mix" / "mix.wav").write_bytes(b"x" * 10)
    (work / "deliverables").mkdir(mode=0o700)
    f = work / "deliverables" / "a.mp4"
    f.write_bytes(b"y")
    f.chmod(0o600)
    out = tmp_path / "out"
    mask = os.umask(0o022)
    try:
        publish(work, out)
    finally:
        os.umask(mask)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["deliverables", "deliverables/a.mp4"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "deliverables").stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "deliverables" / "a.mp4").stat().st_mode) == 0o644
