"""Reference images onto the server (issue 11): ``POST /v1/uploads?filename=NAME``, the
image's bytes as the raw body (Content-Type image/png, image/jpeg or image/webp; not
multipart form data).

A brief sent to the server names its reference images by absolute paths on the server
(studio.api.bodies); this is how a producer gets a product shot or a character sheet
there. The answer's ``path`` is what a beat's (or character's) ``reference_images``
names: ``HOME/uploads/PROJECT/<sha256><ext>``, in the folder of the token's project.
That folder is an allowed asset root for that project's briefs only, at the server's
check and again at the render's (studio.assets.uploads_folder); a brief naming another
project's upload is refused. The file is content-addressed, so the same bytes twice are
one file; the client's filename is metadata only (the answer, and a sidecar
``<sha256><ext>.json`` written with the image), never part of a path.

Refused, each with an ErrorOut naming the field, and nothing written anywhere (the body
is held in memory, at most STUDIO_MAX_IMAGE_BYTES, and the uploads folder is touched only
once every check has passed):

- ``filename`` that is not a plain file name: a path separator, ``..``, a leading dot,
  a control character (NUL included), over MAX_FILENAME characters, or an extension other
  than .png, .jpg, .jpeg, .webp, or one that does not match the Content-Type: 422;
- a Content-Type other than those three: 415;
- a body over STUDIO_MAX_IMAGE_BYTES: 413, from its Content-Length before a byte is read,
  else as soon as the bytes read pass it (``read_body``);
- bytes that are not an image of the declared type: 422; an image whose header claims
  more than STUDIO_MAX_IMAGE_PIXELS (a decompression bomb: a few hundred bytes of PNG whose
  IHDR says 100000x100000): 413 with its size. Both judged from the header, by the code
  that checks a brief's references (studio.assets), before any pixel is decoded.

Stored atomically: a temp file in the same folder, written, fsynced, renamed into place,
then the folder fsynced; a failed write removes its temp file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from studio import assets
from studio.api.bodies import ApiError
from studio.api.deps import ERRORS, PrincipalDep, SettingsDep, needs, read_body
from studio.api.schemas import ErrorOut
from studio.errors import StudioError, quote
from studio.store import FILE_MODE, sha256_file

MAX_FILENAME = 200  # characters
# Media type -> the extension the stored file gets, and Pillow's name for the format.
MEDIA_TYPES = {"image/png": (".png", "PNG"), "image/jpeg": (".jpg", "JPEG"), "image/webp": (".webp", "WEBP")}
EXTENSIONS = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
FORMAT_TYPES = {fmt: media for media, (_ext, fmt) in MEDIA_TYPES.items()}
SEPARATORS = ("/", "\\")  # a Windows client's separator is refused too: a name is one part

FILENAME = Query(description=f"the image's file name, as the client knows it (kept as metadata only; at most "
                             f"{MAX_FILENAME} characters, no path, extension .png, .jpg, .jpeg or .webp "
                             "matching the Content-Type)")
BODY = {
    "required": True,
    "description": "the image's bytes, as they are (not multipart form data); at most STUDIO_MAX_IMAGE_BYTES "
                   "bytes and STUDIO_MAX_IMAGE_PIXELS pixels",
    "content": {media: {"schema": {"type": "string", "format": "binary"}} for media in MEDIA_TYPES},
}


class UploadOut(BaseModel):
    """An uploaded image: the path to name in a brief, and what the server found in it."""

    path: str = Field(description="the absolute path on the server: name it in a brief's reference_images")
    sha256: str = Field(description="of the bytes; the file's name is <sha256><ext>")
    bytes: int
    width: int
    height: int
    media_type: str
    filename: str = Field(description="the name the client sent (metadata, never a path)")
    created: bool = Field(description="false when these bytes were uploaded before (the same path)")


def _refuse(status: int, field: str, what: str, fix: str) -> ApiError:
    """An ErrorOut naming ``field``, in the words a StudioError would say it."""
    line = StudioError(what, fix=fix, field=field).line()
    return ApiError(status, line, fix=fix, problems=[{
        "field": field, "message": what, "fix": fix, "line": None, "stage": None, "source": None, "text": line}])


def check_filename(name: str, media: str) -> None:
    """Refuse (422, field filename) anything but a plain file name whose extension is an
    image type's, matching the body's declared ``media`` type."""
    fix = "send the file's own name alone, e.g. ?filename=hero.png"
    shown = quote(name)
    if not name:
        raise _refuse(422, "filename", "is empty", fix)
    if len(name) > MAX_FILENAME:
        raise _refuse(422, "filename", f"{shown} is {len(name):,} characters; at most {MAX_FILENAME}",
                      "shorten the name (it is kept as metadata only)")
    bad = next((c for c in name if unicodedata.category(c) == "Cc"), None)  # NUL, newlines, ESC, DEL...
    if bad is not None:
        raise _refuse(422, "filename", f"{shown} contains a control character (U+{ord(bad):04X})", fix)
    sep = next((s for s in SEPARATORS if s in name), None)
    if sep is not None:
        raise _refuse(422, "filename", f"{shown} contains a path separator ({sep!r}); it must be a file name, "
                                       "not a path", fix)
    if ".." in name:
        raise _refuse(422, "filename", f"{shown} contains '..'", fix)
    if name.startswith("."):
        raise _refuse(422, "filename", f"{shown} starts with a dot (a hidden file's name)", fix)
    ext = os.path.splitext(name)[1].lower()
    if ext not in EXTENSIONS:
        raise _refuse(422, "filename", f"{shown} has {'extension ' + repr(ext) if ext else 'no extension'}; "
                                       "an upload is a .png, .jpg, .jpeg or .webp image",
                      "upload a PNG, JPEG or WebP image, named with its extension")
    if EXTENSIONS[ext] != media:
        raise _refuse(422, "filename", f"{shown} is named as {EXTENSIONS[ext]}, and the body is sent as {media}",
                      f"send it with Content-Type: {EXTENSIONS[ext]}, or name it for what it is "
                      f"({MEDIA_TYPES[media][0]})")


def media_type(content_type: str | None) -> str:
    """The declared image type; 415 for any other."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in MEDIA_TYPES:
        raise _refuse(415, "body", f"cannot store a body of type {quote(media or '(none)')}",
                      "send the image's bytes as they are with Content-Type: image/png, image/jpeg or "
                      "image/webp (not multipart form data)")
    return media


def check_image(data: bytes, media: str, settings: Any) -> tuple[int, int]:
    """(width, height) of an image of the declared type within the limits, judged from its
    header alone; 422 for anything else, 413 past the pixel limit."""
    try:
        kind, width, height = assets.read_image_bytes_header(
            data, max_pixels=settings.max_image_pixels, max_bytes=settings.max_image_bytes)
    except assets.OverLimit as e:
        raise _refuse(413, "body", f"the upload {e}", "downscale it (references are analysed at a few hundred "
                                                     "pixels), or raise STUDIO_MAX_IMAGE_PIXELS / "
                                                     "STUDIO_MAX_IMAGE_BYTES on the server") from None
    except assets.NotAnImage as e:
        raise _refuse(422, "body", f"the upload {e}", f"send the bytes of a {assets.IMAGE_TYPES} file") from None
    if FORMAT_TYPES[kind] != media:
        raise _refuse(422, "body", f"the upload is a {kind} image, and its Content-Type says {media}",
                      f"send it with Content-Type: {FORMAT_TYPES[kind]} (and a {MEDIA_TYPES[FORMAT_TYPES[kind]][0]} "
                      "name)")
    return width, height


def _write_durably(path: Path, data: bytes) -> None:
    """``data`` at ``path``, all or nothing: a temp file beside it, fsynced, renamed over it,
    and the folder fsynced so the rename survives a power cut; the temp file is removed on
    any failure."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def store(folder: Path, data: bytes, sha: str, ext: str, meta: dict[str, Any]) -> tuple[Path, bool]:
    """The image at ``folder/<sha><ext>`` (and its metadata beside it); whether it was new.
    A file already there with these bytes is kept as it is (same bytes, same path)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{sha}{ext}"
    if target.is_file() and target.stat().st_size == len(data) and sha256_file(target) == sha:
        return target.resolve(), False
    # The sidecar first: an image in the folder always has its metadata beside it.
    _write_durably(folder / f"{sha}{ext}.json", (json.dumps(meta, indent=2, ensure_ascii=False) + "\n").encode())
    _write_durably(target, data)
    return target.resolve(), True


def add_routes(v1: APIRouter) -> None:
    @v1.post(
        "/uploads", status_code=201, response_model=UploadOut, tags=["uploads"],
        openapi_extra={**needs("editor"), "requestBody": BODY},
        responses={200: {"model": UploadOut, "description": "these bytes were uploaded before: the same path"},
                   201: {"description": "stored (durably, before this answer)"},
                   413: {"model": ErrorOut, "description": "the body is over STUDIO_MAX_IMAGE_BYTES, or the image's "
                                                           "header says more than STUDIO_MAX_IMAGE_PIXELS"},
                   415: {"model": ErrorOut, "description": "the Content-Type is not image/png, image/jpeg or "
                                                           "image/webp"},
                   422: ERRORS[422]})
    async def upload_image(request: Request, settings: SettingsDep, principal: PrincipalDep,
                           filename: Annotated[str, FILENAME]) -> JSONResponse:
        """Store a reference image for the token's project and answer the absolute path a
        brief names it by (``reference_images``). The body is the image's bytes (PNG, JPEG
        or WebP, as the Content-Type says); the same bytes twice are the same file."""
        media = media_type(request.headers.get("content-type"))
        check_filename(filename, media)
        limit = settings.max_image_bytes
        try:
            data = await read_body(request, limit)
        except ApiError as e:
            if e.status != 413:
                raise
            declared = request.headers.get("content-length", "")
            size = f" ({int(declared):,} bytes)" if declared.isdigit() else ""
            raise _refuse(413, "body", f"the upload{size} is larger than the server's limit of {limit:,} bytes",
                          "downscale or recompress it, or raise STUDIO_MAX_IMAGE_BYTES on the server") from None
        width, height = check_image(data, media, settings)
        folder = assets.uploads_folder(settings, principal.project)
        if folder is None:  # studio.auth only makes tokens for project codes
            raise ApiError(403, f"project {principal.project!r} is not a project code",
                           fix="use a token made with `studio token create --project CODE`")
        sha = hashlib.sha256(data).hexdigest()
        ext = MEDIA_TYPES[media][0]
        meta = {"filename": filename, "media_type": media, "sha256": sha, "bytes": len(data), "width": width,
                "height": height, "project": principal.project, "token": principal.token_id,
                "uploaded_at": datetime.now(UTC).isoformat()}
        path, created = await run_in_threadpool(store, folder, data, sha, ext, meta)
        out = UploadOut(path=str(path), sha256=sha, bytes=len(data), width=width, height=height, media_type=media,
                        filename=filename, created=created)
        return JSONResponse(out.model_dump(mode="json"), status_code=201 if created else 200)
