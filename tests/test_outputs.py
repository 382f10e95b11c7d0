"""A job's outputs as asset records and their downloads (GET /v1/jobs/{id}/outputs and
/outputs/{output_id}), with HTTP range requests; `studio outputs ID [--download DIR]`.

One real job is rendered once for the module (two one-second beats, one channel) by the
worker, then: the listing names the run's deliverable with its record (spec, size, sha256,
picture size, frame rate, duration), the edit and its exports, the manifest; a download's
sha256 is the record's and ffprobe reads the video; a range request gets exactly that
slice (206, Content-Range), an unsatisfiable one a 416, a malformed one the whole file;
unknown outputs and another project's token a 404; a file changed or deleted since the run
a 410. The same against the real uvicorn server with httpx, and the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from studio import auth, db, jobs
from studio.api.app import create_app
from studio.api.outputs import single_range
from studio.settings import Settings

from .conftest import ROOT, serve


def small_brief(campaign: str) -> dict[str, Any]:
    """Two one-second beats, one channel, no music, one candidate: a render of seconds."""
    return {"project": "outs", "campaign": campaign, "purpose": "outputs as asset records",
            "channels": ["youtube-1080p"], "style_pack": "golden-hour", "candidates": 1,
            "captions": False, "handles": 0, "music": {"source": "none"}, "effects": {"enabled": False},
            "beats": [{"id": "b01", "duration": 1, "subject": "a lighthouse in a storm"},
                      {"id": "b02", "duration": 1, "subject": "a fox in fresh snow"}]}


@dataclass
class Rendered:
    settings: Settings
    engine: Any
    job: db.Job
    queued: db.Job  # a job of the same project that has not run
    viewer: str  # a viewer token of project "outs"
    other: str  # an admin token of another project

    def client(self, token: str | None = None) -> TestClient:
        return TestClient(create_app(self.settings, self.engine),
                          headers={"Authorization": f"Bearer {token or self.viewer}"})


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rendered]:
    from studio.worker import run_worker

    settings = Settings(home=tmp_path_factory.mktemp("outputs") / "home", ray_num_cpus=2)
    settings.home.mkdir(parents=True)
    engine = db.make_engine(settings.db_url)
    db.init_db(engine)
    brief = small_brief("assets")
    job, _ = jobs.submit(engine, brief=brief, project="outs", campaign="assets", brief_sha256="s",
                         request_sha256="r1")
    assert run_worker(settings, worker_id="w-out", lease_seconds=30, poll_seconds=0.1, once=True) == [job.id]
    done = jobs.get(engine, job.id)
    assert done is not None and done.state == "succeeded", done
    queued, _ = jobs.submit(engine, brief=brief, project="outs", campaign="later", brief_sha256="s2",
                            request_sha256="r2")
    viewer = auth.create(engine, project="outs", role="viewer", name="test-viewer")[1]
    other = auth.create(engine, project="elsewhere", role="admin", name="test-other")[1]
    try:
        yield Rendered(settings, engine, done, queued, viewer, other)
    finally:
        engine.dispose()


def _outputs(r: Rendered) -> list[dict[str, Any]]:
    with r.client() as c:
        resp = c.get(f"/v1/jobs/{r.job.id}/outputs")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["job_id"], body["run_id"]) == (r.job.id, r.job.run_id)
    return body["outputs"]


def _video(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(o for o in outputs if o["role"] == "deliverable" and o["kind"] == "video")


def test_the_listing_is_the_runs_records(rendered: Rendered) -> None:
    outputs = _outputs(rendered)
    with Session(rendered.engine) as s:
        rows = s.exec(select(db.Deliverable).where(db.Deliverable.run_id == rendered.job.run_id)).all()
    assert len(rows) == 1
    d = rows[0]
    video = _video(outputs)
    assert video == {
        "id": d.id, "role": "deliverable", "name": Path(d.path).name, "path": f"deliverables/youtube-1080p/{Path(d.path).name}",
        "spec": "youtube-1080p", "kind": "video", "locale": None, "format": None, "media_type": "video/mp4", "sha256": d.sha256,
        "bytes": d.size, "width": 1920, "height": 1080, "fps": d.fps, "duration": d.duration, "available": True,
        "url": f"/v1/jobs/{rendered.job.id}/outputs/{d.id}"}
    by_path = {o["path"]: o for o in outputs}
    assert len(by_path) == len(outputs), "a file listed twice"
    manifest = json.loads((Path(rendered.job.out_dir or "") / "manifest.json").read_text())
    # Every file the manifest lists is an output, with the manifest's sha256 and size, and
    # the manifest itself.
    for f in manifest["files"]:
        assert (by_path[f["path"]]["sha256"], by_path[f["path"]]["bytes"]) == (f["sha256"], f["size"]), f
    assert set(by_path) == {f["path"] for f in manifest["files"]} | {"manifest.json"}
    formats = {o["format"] for o in outputs if o["role"] == "timeline"}
    assert formats == {"otio_json", "fcpxml", "fcp7_xml", "edl"}, formats
    otio = next(o for o in outputs if o["format"] == "otio_json")
    with Session(rendered.engine) as s:
        assert s.get(db.Timeline, otio["id"]) is not None
    assert {o["role"] for o in outputs} >= {"deliverable", "timeline", "review", "manifest"}
    assert all(o["available"] and o["url"].endswith("/" + o["id"]) for o in outputs)


def test_a_full_download_is_the_recorded_file_and_ffprobe_reads_it(rendered: Rendered, tmp_path: Path) -> None:
    video = _video(_outputs(rendered))
    with rendered.client() as c:
        resp = c.get(video["url"])
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "video/mp4"
    assert resp.headers["accept-ranges"] == "bytes"
    assert resp.headers["etag"] == f'"{video["sha256"]}"'
    assert int(resp.headers["content-length"]) == video["bytes"] == len(resp.content)
    assert hashlib.sha256(resp.content).hexdigest() == video["sha256"]
    assert video["name"] in resp.headers["content-disposition"]
    path = tmp_path / video["name"]
    path.write_bytes(resp.content)
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,width,height,r_frame_rate:format=duration",
         "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout)
    stream = next(s for s in probe["streams"] if s["codec_type"] == "video")
    assert (stream["width"], stream["height"], stream["r_frame_rate"]) == (1920, 1080, video["fps"])
    assert abs(float(probe["format"]["duration"]) - video["duration"]) < 0.1


def test_range_requests(rendered: Rendered) -> None:
    video = _video(_outputs(rendered))
    whole = Path(rendered.job.out_dir or "", video["path"]).read_bytes()
    size = len(whole)
    with rendered.client() as c:
        for header, (start, end) in [("bytes=0-99", (0, 100)), ("bytes=1000-", (1000, size)),
                                     ("bytes=-500", (size - 500, size)), ("bytes=100-99999999", (100, size))]:
            resp = c.get(video["url"], headers={"Range": header})
            assert resp.status_code == 206, (header, resp.text)
            assert resp.content == whole[start:end], header
            assert resp.headers["content-range"] == f"bytes {start}-{end - 1}/{size}", header
            assert resp.headers["content-type"] == "video/mp4"
        # If-Range with the ETag (the sha256): the range; with a stale one: the whole file.
        resp = c.get(video["url"], headers={"Range": "bytes=0-9", "If-Range": f'"{video["sha256"]}"'})
        assert (resp.status_code, resp.content) == (206, whole[:10])
        resp = c.get(video["url"], headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
        assert (resp.status_code, resp.content) == (200, whole)
        # Past the end: 416 saying the size, as ErrorOut.
        for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
            resp = c.get(video["url"], headers={"Range": header})
            assert resp.status_code == 416, (header, resp.text)
            assert resp.headers["content-range"] == f"bytes */{size}"
            assert "past the end" in resp.json()["detail"] and resp.json()["fix"]
        # Malformed, another unit, or several ranges: ignored, the whole file (RFC 9110).
        for header in ("bytes=abc", "items=0-5", "bytes=5-1", "bytes=0-1,5-9", "bytes"):
            resp = c.get(video["url"], headers={"Range": header})
            assert (resp.status_code, len(resp.content)) == (200, size), header


def test_single_range_parsing() -> None:
    assert single_range(None, 10) is None
    assert single_range("bytes=2-4", 10) == (2, 5)
    assert single_range("bytes=2-", 10) == (2, 10)
    assert single_range("bytes=-3", 10) == (7, 10)
    assert single_range("bytes=-30", 10) == (0, 10)
    assert single_range("bytes=10-", 10) is False
    assert single_range("bytes=0-0", 0) is False
    assert single_range("bytes=4-2", 10) is None
    assert single_range("bytes=1-2,4-5", 10) is None
    assert single_range("bytes=x-2", 10) is None


def test_unknown_outputs_other_projects_and_jobs_not_run(rendered: Rendered) -> None:
    video = _video(_outputs(rendered))
    with rendered.client() as c:
        for bad in ("nope", "..%2Fmanifest.json", "file_0000000000000000", "dlv_" + "0" * 16):
            resp = c.get(f"/v1/jobs/{rendered.job.id}/outputs/{bad}")
            assert resp.status_code == 404, (bad, resp.text)
        resp = c.get(f"/v1/jobs/{rendered.job.id}/outputs/nope")
        assert "has no output" in resp.json()["detail"] and "/outputs" in resp.json()["fix"]
        # a path never reaches the filesystem: the route takes no slashes, and ids are looked up
        assert c.get(f"/v1/jobs/{rendered.job.id}/outputs/../../../etc/passwd").status_code == 404
        assert c.get("/v1/jobs/job_nope/outputs").status_code == 404
        # A job that has not run has no outputs yet.
        resp = c.get(f"/v1/jobs/{rendered.queued.id}/outputs")
        assert resp.status_code == 200 and resp.json() == {"job_id": rendered.queued.id, "run_id": None,
                                                            "outputs": []}
    with rendered.client(rendered.other) as c:
        assert c.get(f"/v1/jobs/{rendered.job.id}/outputs").status_code == 404
        resp = c.get(video["url"])
        assert resp.status_code == 404 and rendered.job.id in resp.json()["detail"]


def test_a_file_changed_or_deleted_since_the_run_is_gone(rendered: Rendered, tmp_path: Path) -> None:
    outputs = _outputs(rendered)
    edl = next(o for o in outputs if o["format"] == "edl")
    path = Path(rendered.job.out_dir or "", edl["path"])
    keep = tmp_path / "keep"
    shutil.copy2(path, keep)
    try:
        with rendered.client() as c:
            # Same size, other bytes: the sha256 no longer matches.
            data = bytearray(path.read_bytes())
            data[0] ^= 0x01
            path.write_bytes(bytes(data))
            resp = c.get(edl["url"])
            assert resp.status_code == 410, resp.text
            assert "sha256" in resp.json()["detail"] and "studio render" in resp.json()["fix"]
            path.unlink()
            resp = c.get(edl["url"], headers={"Range": "bytes=0-3"})
            assert resp.status_code == 410 and "no longer there" in resp.json()["detail"]
            listed = next(o for o in c.get(f"/v1/jobs/{rendered.job.id}/outputs").json()["outputs"]
                          if o["id"] == edl["id"])
            assert listed["available"] is False
    finally:
        shutil.copy2(keep, path)
    with rendered.client() as c:
        resp = c.get(edl["url"])
        assert resp.status_code == 200 and hashlib.sha256(resp.content).hexdigest() == edl["sha256"]
        assert resp.headers["content-type"].startswith("text/plain")


# -- the real server, and the CLI --------------------------------------------------------


@pytest.fixture(scope="module")
def real_server(rendered: Rendered) -> Iterator[str]:
    proc, base = serve(rendered.settings.home, workers=0, log_level="warning",
                       env={"STUDIO_RAY_NUM_CPUS": "2"})
    try:
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_range_request_against_the_real_server(rendered: Rendered, real_server: str) -> None:
    headers = {"Authorization": f"Bearer {rendered.viewer}"}
    listing = httpx.get(f"{real_server}/v1/jobs/{rendered.job.id}/outputs", headers=headers, timeout=30)
    assert listing.status_code == 200, listing.text
    video = _video(listing.json()["outputs"])
    whole = Path(rendered.job.out_dir or "", video["path"]).read_bytes()
    mid = len(whole) // 2
    resp = httpx.get(real_server + video["url"], headers={**headers, "Range": f"bytes={mid}-{mid + 4095}"},
                     timeout=30)
    assert resp.status_code == 206, resp.text
    assert resp.content == whole[mid:mid + 4096]
    assert resp.headers["content-range"] == f"bytes {mid}-{mid + 4095}/{len(whole)}"
    assert (resp.headers["accept-ranges"], resp.headers["etag"]) == ("bytes", f'"{video["sha256"]}"')
    # Read the whole file in pieces, as a player would: it adds up to the recorded file.
    pieces = []
    for start in range(0, len(whole), 100_000):
        r = httpx.get(real_server + video["url"], headers={**headers, "Range": f"bytes={start}-{start + 99_999}"},
                      timeout=30)
        assert r.status_code == 206
        pieces.append(r.content)
    assert hashlib.sha256(b"".join(pieces)).hexdigest() == video["sha256"]
    resp = httpx.get(real_server + video["url"], headers={**headers, "Range": f"bytes={len(whole)}-"}, timeout=30)
    assert resp.status_code == 416 and resp.headers["content-range"] == f"bytes */{len(whole)}"


def _studio(args: list[str], base: str, token: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STUDIO_")}
    env.update(STUDIO_SERVER=base, STUDIO_TOKEN=token)
    return subprocess.run([sys.executable, "-m", "studio", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


def test_studio_outputs_lists_and_downloads(rendered: Rendered, real_server: str, tmp_path: Path) -> None:
    r = _studio(["outputs", rendered.job.id, "--json"], real_server, rendered.viewer)
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    assert listed == _outputs(rendered)
    r = _studio(["outputs", rendered.job.id], real_server, rendered.viewer)
    assert r.returncode == 0, r.stderr
    video = _video(listed)
    assert video["id"] in r.stdout and "youtube-1080p" in r.stdout and video["name"] in r.stdout
    r = _studio(["outputs", rendered.job.id, "--download", str(tmp_path / "got")], real_server, rendered.viewer)
    assert r.returncode == 0, r.stderr
    for o in listed:
        got = tmp_path / "got" / o["path"]
        assert got.is_file(), (o["path"], r.stderr)
        if o["sha256"]:
            assert hashlib.sha256(got.read_bytes()).hexdigest() == o["sha256"], o["path"]
    # Unknown job, and another project's token: one line each, exit 2.
    r = _studio(["outputs", "job_nope"], real_server, rendered.viewer)
    assert r.returncode == 2 and "no job 'job_nope'" in r.stderr, r.stderr
    r = _studio(["outputs", rendered.job.id], real_server, rendered.other)
    assert r.returncode == 2 and rendered.job.id in r.stderr, r.stderr
