"""Content-addressed media store.

Every file a stage makes is put here and referred to by its sha256. Stages pass these
references (a few dozen bytes) between Ray workers instead of frames. The store is a
plain directory, so on a cluster it lives on shared storage that every node mounts.

Layout: ``ROOT/objects/ab/abcdef...<ext>`` where the extension is kept so that ffmpeg
and editors recognise the format.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from studio.errors import StudioError

CHUNK = 1 << 20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp makes files readable by their owner only; finished outputs get the usual mode.
FILE_MODE = 0o666 & ~_umask()


@dataclass(frozen=True)
class MediaRef:
    """A reference to bytes in the store."""

    sha256: str
    ext: str  # with the dot, e.g. ".png"
    size: int

    @property
    def key(self) -> str:
        return f"{self.sha256}{self.ext}"

    def to_dict(self) -> dict[str, object]:
        return {"sha256": self.sha256, "ext": self.ext, "size": self.size}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> MediaRef:
        return cls(sha256=str(d["sha256"]), ext=str(d["ext"]), size=int(d["size"]))  # type: ignore[arg-type]


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write via a temp file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside ``path`` (same suffix, so tools pick the format) and
    rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, FILE_MODE)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


class MissingMedia(StudioError, FileNotFoundError):
    """A hash the records name is not in this store: a user-facing error (the wrong
    STUDIO_HOME, a pruned store), still a FileNotFoundError for code that expects one."""


class Store:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @property
    def objects(self) -> Path:
        return self.root / "objects"

    def path(self, ref: MediaRef) -> Path:
        return self.objects / ref.sha256[:2] / ref.key

    def find(self, sha256: str) -> Path:
        """The stored file for a hash, whatever its extension (prompt records keep hashes only)."""
        for p in sorted((self.objects / sha256[:2]).glob(f"{sha256}*")):
            return p
        raise MissingMedia(
            f"{sha256[:16]}… is not in the store at {self.root}",
            fix="point STUDIO_HOME at the store the run used, or re-render the brief to make it again")

    def has(self, ref: MediaRef) -> bool:
        return self.path(ref).exists()

    def _publish(self, tmp: Path, sha: str, ext: str) -> MediaRef:
        size = tmp.stat().st_size
        ref = MediaRef(sha, ext, size)
        dest = self.path(ref)
        if dest.exists():
            tmp.unlink(missing_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, dest)
        return ref

    def put_bytes(self, data: bytes, ext: str) -> MediaRef:
        sha = hashlib.sha256(data).hexdigest()
        ref = MediaRef(sha, ext, len(data))
        if not self.has(ref):
            atomic_write_bytes(self.path(ref), data)
        return ref

    def put_file(self, src: str | os.PathLike[str], ext: str | None = None, move: bool = False) -> MediaRef:
        """Add a finished file. With ``move`` the source is renamed in (same filesystem)."""
        src = Path(src)
        ext = ext if ext is not None else src.suffix
        sha = sha256_file(src)
        self.objects.mkdir(parents=True, exist_ok=True)
        if move:
            try:
                return self._publish(src, sha, ext)
            except OSError:
                pass  # another filesystem: fall back to a copy
        fd, tmp = tempfile.mkstemp(prefix=".put.", dir=self.objects)
        os.close(fd)
        shutil.copyfile(src, tmp)
        ref = self._publish(Path(tmp), sha, ext)
        if move:
            src.unlink(missing_ok=True)
        return ref

    @contextmanager
    def writer(self, ext: str) -> Iterator[tuple[Path, list[MediaRef]]]:
        """Let a tool (ffmpeg, PIL) write a new file, then add it by its hash.

        ``with store.writer(".mp4") as (tmp, out): run(tmp); ref = out[0]`` after the block.
        """
        self.objects.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".new.", suffix=ext, dir=self.objects)
        os.close(fd)
        tmp_path = Path(tmp)
        result: list[MediaRef] = []
        try:
            yield tmp_path, result
            result.append(self._publish(tmp_path, sha256_file(tmp_path), ext))
        finally:
            tmp_path.unlink(missing_ok=True)
