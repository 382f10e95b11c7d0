"""A job's outputs as asset records, and their downloads (issue 11).

``GET /v1/jobs/{id}/outputs`` lists what the job's run recorded: its deliverables (the
``Deliverable`` rows: channel spec, kind, size, sha256, picture size, frame rate,
duration), its edit (the ``Timeline`` rows' OTIO files) and every other file its
manifest lists with its sha256 (the edit's FCPXML / FCP 7 XML / EDL exports, captions,
review files), and the manifest itself; each with a download URL.

``GET /v1/jobs/{id}/outputs/{output_id}`` sends one, with HTTP range requests (Starlette's
``FileResponse`` serves ``Range: bytes=a-b`` as a 206 with ``Content-Range``; this module
answers an unsatisfiable range with a 416 of its own and lets a range it will not honour
(malformed, or several ranges) fall back to the whole file, as RFC 9110 allows). The ETag
is the recorded sha256.

What may be served: only files the run recorded, found by the output id among the
records, never by a path from the request; a recorded path that leads outside the run's
folder is not served either. A file whose size or bytes no longer match the record
(deleted, truncated, overwritten) is a 410 saying to render it again: a download is
exactly the recorded asset or nothing. The sha256 is checked once per file version (its
size, mtime and inode), not on every range request of a player seeking through a video.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from starlette.types import Receive, Scope, Send

from studio import db
from studio.api.bodies import ApiError
from studio.api.deps import ERRORS, JOB_ID, EngineDep, PrincipalDep, visible
from studio.api.schemas import ErrorOut
from studio.store import sha256_file

OUTPUT_ID = PathParam(description="an output's id, as GET /v1/jobs/{job_id}/outputs lists it", max_length=100)
MANIFEST_ID = "manifest"
# Media types Python's table does not know (or knows wrongly for these files).
MEDIA_TYPES = {
    ".otio": "application/json", ".json": "application/json", ".fcpxml": "application/xml",
    ".xml": "application/xml", ".edl": "text/plain", ".srt": "application/x-subrip", ".vtt": "text/vtt",
    ".mp4": "video/mp4", ".mov": "video/quicktime", ".m4a": "audio/mp4", ".wav": "audio/wav",
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webm": "video/webm",
}
# Formats of the files in timelines/ (the manifest names them for the edit's exports).
FORMATS = {".otio": "otio_json", ".fcpxml": "fcpxml", ".xml": "fcp7_xml", ".edl": "edl", ".srt": "srt", ".vtt": "vtt"}


def media_type(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return MEDIA_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


class OutputOut(BaseModel):
    """One file the job's run made, as its records have it."""

    id: str = Field(description="the output's id: a deliverable's or timeline's record id, `manifest`, or "
                                "`file_` + a hash of its path in the run's folder")
    role: str = Field(description="deliverable | timeline | captions | review | qc (a deliverable's QC report, "
                                  "HTML and JSON) | manifest | file")
    name: str = Field(description="the file's name")
    path: str = Field(description="its path in the run's output folder")
    spec: str | None = Field(None, description="the channel spec (a deliverable, or its captions)")
    kind: str | None = Field(None, description="video | still (deliverables); edit | stills (timelines)")
    locale: str | None = Field(None, description="a deliverable's locale, when the brief ships in several")
    format: str | None = Field(None, description="the file format of an edit export or captions: otio_json, "
                                                 "fcpxml, fcp7_xml, edl, srt, vtt")
    media_type: str = Field(description="its Content-Type when downloaded")
    sha256: str | None = Field(None, description="as recorded; the download's ETag")
    bytes: int | None = Field(None, description="its size as recorded")
    width: int | None = None
    height: int | None = None
    fps: str | None = Field(None, description="exact frame rate, e.g. 30000/1001")
    duration: float | None = Field(None, description="seconds")
    available: bool = Field(description="the file is there with its recorded size (else a download is 410)")
    url: str = Field(description="where to download it (same token)")


class OutputListOut(BaseModel):
    job_id: str
    run_id: str | None = Field(None, description="the run that made them; null before the job has run")
    outputs: list[OutputOut]


@dataclass
class _Asset:
    """A recorded file: what is listed, and where it is (never shown)."""

    out: dict[str, Any]
    file: Path | None  # None: its recorded path leads outside the run's folder
    extra: dict[str, Any] = field(default_factory=dict)


def _inside(root: Path, path: Path) -> Path | None:
    """``path`` resolved, when it is inside ``root`` (no ``..`` or symlink out of it)."""
    try:
        resolved = path.resolve()
        resolved.relative_to(root)
    except (OSError, ValueError):
        return None
    return resolved


def _file_id(rel: str) -> str:
    return "file_" + hashlib.sha256(rel.encode()).hexdigest()[:16]


def _role(rel: str) -> str:
    top = rel.split("/", 1)[0]
    suffix = Path(rel).suffix.lower()
    if suffix in (".srt", ".vtt"):
        return "captions"
    return {"timelines": "timeline", "review": "review", "deliverables": "deliverable", "qc": "qc"}.get(top, "file")


def _available(path: Path | None, size: int | None) -> bool:
    if path is None:
        return False
    try:
        st = path.stat()
    except OSError:
        return False
    return path.is_file() and (size is None or st.st_size == size)


def assets(engine: Engine, job_id: str, run_id: str | None) -> list[_Asset]:
    """Everything the job's run recorded, deliverables first, then the edit, the other
    files its manifest lists, and the manifest."""
    if run_id is None:
        return []
    with Session(engine) as s:
        run = s.get(db.Run, run_id)
        if run is None or not run.out_dir:
            return []
        deliverables = list(s.exec(select(db.Deliverable).where(db.Deliverable.run_id == run_id)
                                   .order_by(db.Deliverable.spec, db.Deliverable.id)).all())  # type: ignore[arg-type]
        timelines = list(s.exec(select(db.Timeline).where(db.Timeline.run_id == run_id)
                                .order_by(db.Timeline.kind, db.Timeline.id)).all())  # type: ignore[arg-type]
    root = Path(run.out_dir).resolve()
    base = f"/v1/jobs/{job_id}/outputs"
    found: list[_Asset] = []
    seen: set[str] = set()  # relative paths listed already

    def add(out_id: str, rel: str, path: Path, **fields: Any) -> None:
        file = _inside(root, path)
        name = Path(rel).name
        out = {"id": out_id, "name": name, "path": rel, "media_type": media_type(name), "url": f"{base}/{out_id}",
               **fields}
        out["available"] = _available(file, out.get("bytes"))
        found.append(_Asset(out, file))
        seen.add(rel)

    def rel_of(path: str) -> str:
        try:
            return Path(path).resolve().relative_to(root).as_posix()
        except (OSError, ValueError):
            return Path(path).name

    for d in deliverables:
        add(d.id, rel_of(d.path), Path(d.path), role="deliverable", spec=d.spec, kind=d.kind, sha256=d.sha256,
            bytes=d.size, width=d.width, height=d.height, fps=d.fps, duration=d.duration,
            locale=(d.params or {}).get("locale"))
    manifest_path = root / "manifest.json"
    manifest: dict[str, Any] = {}
    try:
        loaded = json.loads(manifest_path.read_text(encoding="utf-8"))
        if isinstance(loaded, dict) and loaded.get("run_id") == run_id:
            manifest = loaded
    except (OSError, ValueError):
        pass
    files = {str(f.get("path")): f for f in manifest.get("files", []) if isinstance(f, dict)}
    for t in timelines:
        rel = rel_of(t.path)
        add(t.id, rel, Path(t.path), role="timeline", kind=t.kind, format=FORMATS.get(Path(rel).suffix.lower()),
            sha256=t.sha256, bytes=(files.get(rel) or {}).get("size"))
    specs = {Path(rel_of(d.path)).parent.as_posix(): d.spec for d in deliverables}
    exports = {str(t.get("path")): t for t in manifest.get("timelines", []) if isinstance(t, dict)}
    for rel, f in sorted(files.items()):
        if rel in seen or not isinstance(f.get("sha256"), str) or not isinstance(f.get("size"), int):
            continue
        role = _role(rel)
        export = exports.get(rel) or {}
        add(_file_id(rel), rel, root / rel, role=role, sha256=f["sha256"], bytes=f["size"],
            kind=export.get("kind"), spec=specs.get(Path(rel).parent.as_posix()),
            format=export.get("format") or (FORMATS.get(Path(rel).suffix.lower())
                                            if role in ("timeline", "captions") else None))
    if manifest:
        # No record holds the manifest's own hash (it cannot hash itself): taken now, so a
        # download is checked against what was listed.
        try:
            size, sha = manifest_path.stat().st_size, sha256_file(manifest_path)
        except OSError:
            size, sha = None, None
        add(MANIFEST_ID, "manifest.json", manifest_path, role="manifest", format="json", sha256=sha, bytes=size)
    return found


# -- checking a file against its record -------------------------------------------------

_verified: dict[tuple[str, int, int, int], str] = {}  # (path, size, mtime_ns, inode) -> sha256
_verified_lock = threading.Lock()
MAX_VERIFIED = 4096


def _sha256_of(path: Path, st: os.stat_result) -> str:
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    with _verified_lock:
        known = _verified.get(key)
    if known is None:
        known = sha256_file(path)
        with _verified_lock:
            if len(_verified) >= MAX_VERIFIED:
                _verified.clear()
            _verified[key] = known
    return known


def gone(asset: _Asset, why: str) -> ApiError:
    return ApiError(410, f"output {asset.out['id']} ({asset.out['path']}) {why}",
                    fix="render the job's brief again (`studio render BRIEF`, or submit it again) to make it anew")


def check(asset: _Asset) -> os.stat_result:
    """The file's stat when it is exactly what the run recorded; a 410 otherwise."""
    if asset.file is None:
        raise gone(asset, "is recorded at a path outside the run's folder and is not served")
    try:
        st = asset.file.stat()
    except OSError:
        raise gone(asset, "is no longer there (deleted since the run made it)") from None
    size = asset.out.get("bytes")
    if size is not None and st.st_size != size:
        raise gone(asset, f"is {st.st_size} bytes, not the {size} the run recorded (changed since)")
    sha = asset.out.get("sha256")
    if sha is not None and _sha256_of(asset.file, st) != sha:
        raise gone(asset, "no longer has the bytes the run recorded (its sha256 differs)")
    return st


# -- ranges ---------------------------------------------------------------------------------


def single_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """``Range: bytes=a-b`` | ``bytes=a-`` | ``bytes=-n`` against a file of ``size`` bytes:
    (start, end exclusive) to honour; None to ignore (none, malformed, several ranges, or
    another unit: the whole file is sent); False when unsatisfiable (416)."""
    if header is None:
        return None
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not (first.isdigit() or (not first and last.isdigit())) or (last and not last.isdigit()):
        return None
    if not first:  # the last n bytes
        n = int(last)
        return (max(size - n, 0), size) if n > 0 and size > 0 else False
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignored (RFC 9110 14.1.1)
    if start >= size:
        return False
    return start, (min(int(last) + 1, size) if last else size)


class _Download(FileResponse):
    """FileResponse with the Range header removed from what it sees when the route decided
    to send the whole file (FileResponse answers a malformed range with a text 400)."""

    def __init__(self, *args: Any, honour_range: bool, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.honour_range = honour_range

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.honour_range:
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k not in (b"range", b"if-range")]}
        await super().__call__(scope, receive, send)


DOWNLOAD_TYPES = sorted(set(MEDIA_TYPES.values()) | {"application/octet-stream"})


def add_routes(v1: APIRouter) -> None:
    binary = {t: {"schema": {"type": "string", "format": "binary"}} for t in DOWNLOAD_TYPES}

    @v1.get("/jobs/{job_id}/outputs", response_model=OutputListOut, tags=["outputs"],
            responses={404: ERRORS[404]})
    def list_outputs(engine: EngineDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID]) -> dict[str, Any]:
        """The files the job's run made, each with its record (spec, kind, size, sha256,
        picture size, frame rate, duration) and a download URL: deliverables, the edit
        (OTIO) and its exports, captions, review files, the manifest. Empty before the job
        has run."""
        job = visible(engine, job_id, principal)
        found = assets(engine, job.id, job.run_id)
        return {"job_id": job.id, "run_id": job.run_id,
                "outputs": [OutputOut.model_validate(a.out).model_dump(mode="json") for a in found]}

    @v1.get("/jobs/{job_id}/outputs/{output_id}", tags=["outputs"], response_class=FileResponse,
            responses={200: {"content": binary, "description": "the whole file (ETag: its sha256)"},
                       206: {"content": binary, "description": "the requested byte range (Content-Range)"},
                       404: {"model": ErrorOut, "description": "no such job, or no such output of it"},
                       410: {"model": ErrorOut, "description": "the file was deleted or changed since the run "
                                                               "recorded it"},
                       416: {"model": ErrorOut, "description": "the range starts past the file's end "
                                                               "(Content-Range: bytes */size)"}})
    def download_output(engine: EngineDep, principal: PrincipalDep, job_id: Annotated[str, JOB_ID],
                        output_id: Annotated[str, OUTPUT_ID],
                        range_: Annotated[str | None, Header(alias="Range", max_length=200,
                                                             description="bytes=a-b, bytes=a- or bytes=-n")] = None,
                        ) -> FileResponse:
        """One output's bytes, exactly as recorded (Accept-Ranges: bytes; ETag: the
        sha256). Only the files the listing names can be fetched."""
        job = visible(engine, job_id, principal)
        asset = next((a for a in assets(engine, job.id, job.run_id) if a.out["id"] == output_id), None)
        if asset is None:
            raise ApiError(404, f"job {job.id} has no output {output_id!r}",
                           fix=f"GET /v1/jobs/{job.id}/outputs lists its outputs and their ids")
        st = check(asset)
        wanted = single_range(range_, st.st_size)
        if wanted is False:
            raise ApiError(416, f"the range {range_!r} starts past the end of {asset.out['name']} "
                                f"({st.st_size} bytes)",
                           fix=f"ask for bytes 0-{max(st.st_size - 1, 0)} or a part of them",
                           headers={"Content-Range": f"bytes */{st.st_size}"})
        assert asset.file is not None  # check() refused it otherwise
        etag = f'"{asset.out.get("sha256") or _sha256_of(asset.file, st)}"'
        headers = {"ETag": etag}
        if asset.out["media_type"].startswith("text/html"):
            # A QC report: Studio's own HTML, styled inline, no scripts; shown in the browser
            # (not saved), with nothing else allowed to run or load.
            from studio.api.gates import REPORT_CSP

            headers.update({"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff"})
            return _Download(asset.file, media_type=asset.out["media_type"], stat_result=st, headers=headers,
                             honour_range=wanted is not None, content_disposition_type="inline",
                             filename=asset.out["name"])
        return _Download(asset.file, media_type=asset.out["media_type"], filename=asset.out["name"],
                         stat_result=st, headers=headers, honour_range=wanted is not None)
