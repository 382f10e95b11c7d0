"""Reference image uploads (``POST /v1/uploads``, studio.api.uploads) on SQLite, through the
app (TestClient) and once through the real server (uvicorn, httpx).

What it proves: each kind of bad input is refused with its status and words, naming the
field (filename, body), and leaves nothing on disk (no upload, no temp file, no folder):
filenames with a path separator, '..', a leading dot, a control character or NUL, over 200
characters, or a non-image extension (422); other Content-Types (415); bodies over the
byte limit, by Content-Length and chunked (413); bytes that are not an image of the
declared type (422); a tiny PNG whose header claims 100000x100000 pixels (413, judged from
the header). A good image is stored as HOME/uploads/PROJECT/<sha256>.png, the same bytes
twice are one file, and a brief naming that path passes the server's check (dry run),
while a path outside the uploads folder, or in another project's, is still refused; the
render's own re-check (studio.assets.resolve_asset with the brief's project) agrees."""

from __future__ import annotations

import hashlib
import io
import json
import signal
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from studio import assets, auth, db
from studio.api.app import create_app
from studio.errors import StudioError, quote
from studio.settings import Settings

from .conftest import serve
from .test_api import example

PNG = {"content-type": "image/png"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "assets").mkdir()
    return Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'studio.db'}",
                    assets_roots=str(tmp_path / "assets"), max_image_bytes=200_000)


@pytest.fixture
def tokens(settings: Settings) -> dict[str, str]:
    """Editor tokens of project aurora (the example brief's) and of project other, and a
    viewer token of aurora."""
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = db.make_engine(settings.db_url)
    try:
        db.init_db(engine)
        return {"editor": auth.create(engine, project="aurora", role="editor", name="e")[1],
                "viewer": auth.create(engine, project="aurora", role="viewer", name="v")[1],
                "other": auth.create(engine, project="other", role="editor", name="o")[1]}
    finally:
        engine.dispose()


@pytest.fixture
def client(settings: Settings, tokens: dict[str, str]) -> Iterator[TestClient]:
    engine = db.make_engine(settings.db_url)
    with TestClient(create_app(settings, engine), headers={"Authorization": f"Bearer {tokens['editor']}"}) as c:
        yield c
    engine.dispose()


def png(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 120, 40), fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, fmt)
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG structure whose IHDR claims ``width`` x ``height``, a few dozen bytes
    long: decoded, it would be width*height*3 bytes of RGB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def upload(client: TestClient, data: Any, filename: str = "hero.png", headers: dict[str, str] | None = None,
           **kw: Any) -> httpx.Response:
    return client.post("/v1/uploads", params={"filename": filename}, content=data, headers=headers or PNG, **kw)


def files_under(home: Path) -> set[Path]:
    """Every file and folder under home but the database's (which requests do write)."""
    return {p for p in home.rglob("*") if not p.name.startswith("studio.db")}


# -- refusals: the words, the status, and nothing written -------------------------------

FILENAME_FIX = "send the file's own name alone, e.g. ?filename=hero.png"
BAD_FILENAMES = {
    "traversal": ("../../etc/cron.d/evil.png", "'../../etc/cron.d/evil.png' contains a path separator ('/'); it "
                                               "must be a file name, not a path"),
    "absolute": ("/tmp/x.png", "'/tmp/x.png' contains a path separator ('/')"),
    "backslash": ("..\\..\\x.png", "'..\\\\..\\\\x.png' contains a path separator ('\\\\')"),
    "dot-dot": ("hero..png", "'hero..png' contains '..'"),
    "leading-dot": (".hero.png", "'.hero.png' starts with a dot (a hidden file's name)"),
    "nul": ("hero\x00.png", "'hero\\x00.png' contains a control character (U+0000)"),
    "newline": ("hero\n.png", "'hero\\n.png' contains a control character (U+000A)"),
    "too-long": ("h" * 197 + ".png", "is 201 characters; at most 200"),
    "extension": ("hero.gif", "'hero.gif' has extension '.gif'; an upload is a .png, .jpg, .jpeg or .webp image"),
    "no-extension": ("hero", "'hero' has no extension"),
    "empty": ("", "filename: is empty"),
    "wrong-type": ("hero.jpg", "'hero.jpg' is named as image/jpeg, and the body is sent as image/png"),
}


@pytest.mark.parametrize("case", list(BAD_FILENAMES))
def test_bad_filename_is_refused_and_nothing_is_written(case: str, client: TestClient, settings: Settings) -> None:
    name, words = BAD_FILENAMES[case]
    before = files_under(settings.home)
    r = upload(client, png(), filename=name)
    assert r.status_code == 422, r.text
    body = r.json()
    assert words in body["detail"], body["detail"]
    assert body["detail"].startswith("filename: ")
    assert body["problems"][0]["field"] == "filename"
    assert body["fix"] and body["fix"] in body["detail"]
    if case not in ("too-long", "extension", "no-extension", "wrong-type"):
        assert body["fix"] == FILENAME_FIX
    assert not settings.uploads_dir.exists()
    assert files_under(settings.home) == before


def test_a_body_of_another_type_is_415(client: TestClient, settings: Settings) -> None:
    for headers in ({"content-type": "text/plain"}, {"content-type": "multipart/form-data; boundary=x"}, {}):
        r = upload(client, png(), headers=headers or {"content-type": ""})
        assert r.status_code == 415, r.text
        assert r.json()["problems"][0]["field"] == "body"
        assert "cannot store a body of type" in r.json()["detail"]
        assert "Content-Type: image/png, image/jpeg or image/webp" in r.json()["fix"]
    assert not settings.uploads_dir.exists()


def test_a_body_over_the_byte_limit_is_413_declared_or_chunked(client: TestClient, settings: Settings) -> None:
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * 300_000  # the limit here: 200,000 bytes
    r = upload(client, big)  # with a Content-Length: refused before a byte is read
    assert r.status_code == 413, r.text
    assert r.json()["detail"] == ("body: the upload (300,008 bytes) is larger than the server's limit of 200,000 "
                                  "bytes — downscale or recompress it, or raise STUDIO_MAX_IMAGE_BYTES on the "
                                  "server")
    read: list[int] = []

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused once the bytes read pass the limit
        for i in range(0, len(big), 50_000):
            read.append(i)
            yield big[i:i + 50_000]

    r = upload(client, chunks())
    assert r.status_code == 413, r.text
    assert r.json()["detail"].startswith("body: the upload is larger than the server's limit of 200,000 bytes")
    assert not settings.uploads_dir.exists()


BAD_IMAGES: dict[str, tuple[bytes, str, int, str]] = {
    "text": (b"root:x:0:0:root:/root:/bin/bash\n", "hero.png", 422,
             "body: the upload is not a PNG, JPEG or WebP image (it starts with text)"),
    "empty": (b"", "hero.png", 422, "body: the upload is empty, not a PNG, JPEG or WebP image"),
    "truncated": (b"\x89PNG\r\n\x1a\n\0\0", "hero.png", 422, "body: the upload starts like a PNG file but its "
                                                              "header cannot be read"),
    "jpeg-as-png": (png(fmt="JPEG"), "hero.png", 422,
                    "body: the upload is a JPEG image, and its Content-Type says image/png — send it with "
                    "Content-Type: image/jpeg (and a .jpg name)"),
    # Past Pillow's own guard: its size read from the header all the same.
    "bomb": (png_claiming(100_000, 100_000), "bomb.png", 413,
             "body: the upload has more pixels than Pillow will open (100000x100000, 10000 megapixels: a "
             "decompression bomb?); the limit is 40 megapixels"),
    # Under Pillow's guard, over ours.
    "over-pixel-limit": (png_claiming(7000, 7000), "big.png", 413,
                         "body: the upload is 7000x7000 (49 megapixels); the limit is 40 megapixels"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_bytes_that_are_not_an_acceptable_image_are_refused(case: str, client: TestClient,
                                                            settings: Settings) -> None:
    data, name, status, words = BAD_IMAGES[case]
    if case == "bomb":
        assert len(data) < 200  # decoded: 30 GB of RGB
    before = files_under(settings.home)
    r = upload(client, data, filename=name)
    assert r.status_code == status, r.text
    assert r.json()["detail"].startswith(words), r.json()["detail"]
    assert r.json()["problems"][0]["field"] == "body"
    assert not settings.uploads_dir.exists()
    assert files_under(settings.home) == before


def test_an_upload_needs_an_editor(client: TestClient, tokens: dict[str, str], settings: Settings) -> None:
    r = upload(client, png(), headers={**PNG, "Authorization": f"Bearer {tokens['viewer']}"})
    assert r.status_code == 403 and "this needs an editor" in r.json()["detail"], r.text
    r = upload(client, png(), headers={**PNG, "Authorization": ""})
    assert r.status_code == 401
    assert not settings.uploads_dir.exists()


# -- accepted ---------------------------------------------------------------------------


def test_an_image_is_stored_content_addressed_in_its_project(client: TestClient, settings: Settings) -> None:
    data = png()
    sha = hashlib.sha256(data).hexdigest()
    r = upload(client, data, filename="Hero shot (final).png")
    assert r.status_code == 201, r.text
    out = r.json()
    folder = (settings.uploads_dir / "aurora").resolve()
    assert out == {"path": str(folder / f"{sha}.png"), "sha256": sha, "bytes": len(data), "width": 64,
                   "height": 48, "media_type": "image/png", "filename": "Hero shot (final).png", "created": True}
    assert Path(out["path"]).read_bytes() == data
    meta = json.loads((folder / f"{sha}.png.json").read_text())
    assert meta["filename"] == "Hero shot (final).png" and meta["project"] == "aurora"
    # The same bytes again (another name): the same file, not a second one.
    again = upload(client, data, filename="copy.png")
    assert again.status_code == 200, again.text
    assert again.json()["path"] == out["path"] and again.json()["created"] is False
    assert sorted(p.name for p in folder.iterdir()) == [f"{sha}.png", f"{sha}.png.json"]  # no temp left
    # A JPEG named .jpeg is kept as .jpg (the name is metadata); another image, another file.
    jpeg = png(color=(10, 20, 30), fmt="JPEG")
    r = upload(client, jpeg, filename="sheet.jpeg", headers={"content-type": "image/jpeg"})
    assert r.status_code == 201, r.text
    assert r.json()["path"] == str(folder / f"{hashlib.sha256(jpeg).hexdigest()}.jpg")


def test_a_brief_names_its_projects_uploads_and_nothing_else(client: TestClient, settings: Settings,
                                                             tokens: dict[str, str], tmp_path: Path) -> None:
    path = upload(client, png()).json()["path"]
    doc = example()  # project aurora
    doc["beats"][0]["reference_images"] = [path]
    r = client.post("/v1/jobs", params={"dry_run": "true"}, json=doc)
    assert r.status_code == 200, r.text
    assert r.json()["project"] == "aurora"
    # A real file outside the uploads folder (and the asset roots) is still refused.
    (tmp_path / "elsewhere").mkdir()
    outside = tmp_path / "elsewhere" / "hero.png"
    outside.write_bytes(png())
    doc["beats"][0]["reference_images"] = [str(outside)]
    r = client.post("/v1/jobs", params={"dry_run": "true"}, json=doc)
    assert r.status_code == 422, r.text
    problem = r.json()["problems"][0]
    assert problem["field"] == "beats[0].reference_images[0]"
    assert problem["message"].endswith("is outside the server's asset folders")
    assert problem["fix"].endswith("; or upload it (POST /v1/uploads) and name the path the answer gives")
    # Another project's upload: refused as such, not as a folder that does not exist.
    theirs = upload(client, png(color=(1, 2, 3)), headers={**PNG, "Authorization": f"Bearer {tokens['other']}"})
    assert theirs.status_code == 201, theirs.text
    assert Path(theirs.json()["path"]).parent.name == "other"
    doc["beats"][0]["reference_images"] = [theirs.json()["path"]]
    r = client.post("/v1/jobs", params={"dry_run": "true"}, json=doc)
    assert r.status_code == 422, r.text
    own = (settings.uploads_dir / "aurora").resolve()
    assert r.json()["problems"][0]["message"] == (
        f"reference image {quote(theirs.json()['path'])} is not in this project's uploads ({own})")
    # ... and through a '..' that leaves this project's folder for the other's.
    sneaky = str(own / ".." / "other" / Path(theirs.json()["path"]).name)
    doc["beats"][0]["reference_images"] = [sneaky]
    assert client.post("/v1/jobs", params={"dry_run": "true"}, json=doc).status_code == 422


def test_the_renders_recheck_allows_the_briefs_project_only(client: TestClient, settings: Settings,
                                                            tmp_path: Path) -> None:
    """The worker's render checks the paths again (studio.assets.resolve_asset at the brief
    check and at the copy into the store, given the brief's project): an upload of the
    brief's project passes, another project's (or no project) does not."""
    path = Path(upload(client, png()).json()["path"])
    brief_dir = tmp_path / "job"
    brief_dir.mkdir()
    got = assets.resolve_asset(str(path), brief_dir, field="f", kind="image", settings=settings, project="aurora")
    assert got == path
    for project in ("other", None, "../aurora"):
        with pytest.raises(StudioError, match="is an absolute path outside the brief's folder"):
            assets.resolve_asset(str(path), brief_dir, field="f", kind="image", settings=settings, project=project)


def test_the_document_describes_the_raw_body(client: TestClient) -> None:
    op = client.get("/openapi.json").json()["paths"]["/v1/uploads"]["post"]
    assert set(op["requestBody"]["content"]) == {"image/png", "image/jpeg", "image/webp"}
    assert {"200", "201", "413", "415", "422"} <= set(op["responses"])
    assert op["x-studio-role"] == "editor"


# -- the real server --------------------------------------------------------------------


def test_upload_through_the_real_server(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc, base = serve(home, log_level="warning", env={"STUDIO_MAX_IMAGE_BYTES": "100000"})
    try:
        engine = db.make_engine(Settings(home=home).db_url)
        db.init_db(engine)
        token = auth.create(engine, project="aurora", role="editor", name="t")[1]
        engine.dispose()
        headers = {"Authorization": f"Bearer {token}", **PNG}
        data = png()
        r = httpx.post(f"{base}/v1/uploads", params={"filename": "hero.png"}, content=data, headers=headers,
                       timeout=30)
        assert r.status_code == 201, r.text
        path = Path(r.json()["path"])
        assert path.read_bytes() == data and path.parent == (home / "uploads" / "aurora").resolve()
        # Over the byte limit: refused from the Content-Length, the server still answering.
        r = httpx.post(f"{base}/v1/uploads", params={"filename": "big.png"}, content=b"\0" * 150_000,
                       headers=headers, timeout=30)
        assert r.status_code == 413 and "larger than the server's limit of 100,000 bytes" in r.json()["detail"]
        doc = example()
        doc["beats"][0]["reference_images"] = [str(path)]
        r = httpx.post(f"{base}/v1/jobs", params={"dry_run": "true"}, json=doc,
                       headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert r.status_code == 200, r.text
        assert sorted(p.name for p in path.parent.iterdir()) == [path.name, f"{path.name}.json"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
