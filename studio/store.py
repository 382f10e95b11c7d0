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
import re
import shutil
import socket
import tempfile
import time
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

# Temp files a killed process leaves in the store are removed by the next render
# (``Store.clean_stale``). Their names say who wrote them: ``<pid>@<host>`` (the host's
# dots made underscores, so the tag is one dotted part of the name).
STALE_AFTER = 300.0  # s: an untagged temp (or one of another host) idle this long is abandoned
_TAG = r"(?P<pid>\d+)@(?P<host>[A-Za-z0-9_-]+)"
# .put.<tag>.XXXXXXXX and .new.<tag>.XXXXXXXX<ext> in objects/; .<sha><ext>.<tag>.XXXXXXXX.tmp
# in objects/ab/ (atomic_write_bytes); tmp.<tag>.XXXXXXXX folders at the root
# (``Store.scratch``), and untagged tmpXXXXXXXX ones (a stage's
# TemporaryDirectory(dir=store.root): a shot master being encoded). Untagged forms are
# also the names earlier releases used.
_TEMP_NAMES = (
    re.compile(rf"^\.(?:put|new)\.(?:{_TAG}\.)?[a-z0-9_]{{8}}(?:\.[A-Za-z0-9]+)?$"),
    re.compile(rf"^\.[0-9a-f]{{64}}(?:\.[A-Za-z0-9]+)?\.(?:{_TAG}\.)?[a-z0-9_]{{8}}\.tmp$"),
)
_TEMP_DIR = re.compile(rf"^tmp(?:\.{_TAG}\.)?[a-z0-9_]{{8}}$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "_", socket.gethostname())


def owner_tag() -> str:
    """``<pid>@<host>``: put in temp names so a later run can tell whose they were."""
    return f"{os.getpid()}@{_host()}"


def _open_paths() -> set[str]:
    """Every file some process of this host (that we may look at) holds open (Linux /proc)."""
    held: set[str] = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            entries = list(fd_dir.iterdir())
        except OSError:
            continue  # gone, or another user's
        for fd in entries:
            try:
                held.add(os.readlink(fd))
            except OSError:
                continue
    return held


def newest_mtime(path: Path) -> float:
    """The newest change to ``path`` or, for a folder, to anything in it."""
    newest = path.lstat().st_mtime
    if path.is_dir():
        for sub in path.rglob("*"):
            try:
                newest = max(newest, sub.lstat().st_mtime)
            except OSError:
                continue
    return newest


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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{owner_tag()}.", suffix=".tmp", dir=path.parent)
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
        fd, tmp = tempfile.mkstemp(prefix=f".put.{owner_tag()}.", dir=self.objects)
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
        fd, tmp = tempfile.mkstemp(prefix=f".new.{owner_tag()}.", suffix=ext, dir=self.objects)
        os.close(fd)
        tmp_path = Path(tmp)
        result: list[MediaRef] = []
        try:
            yield tmp_path, result
            result.append(self._publish(tmp_path, sha256_file(tmp_path), ext))
        finally:
            tmp_path.unlink(missing_ok=True)

    @contextmanager
    def scratch(self) -> Iterator[Path]:
        """A scratch folder on the store's filesystem (so a result can be renamed in),
        named for this process so that a later run can remove it if the process is killed."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"tmp.{owner_tag()}.", dir=self.root))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def temp_files(self) -> list[Path]:
        """Studio's own temp files and folders in the store, by their names (nothing else)."""
        found: list[Path] = []
        if self.root.is_dir():
            found += [p for p in self.root.iterdir() if p.is_dir() and _TEMP_DIR.match(p.name)]
        if self.objects.is_dir():
            for p in self.objects.iterdir():
                if p.is_file() and _TEMP_NAMES[0].match(p.name):
                    found.append(p)
                elif p.is_dir() and len(p.name) == 2:
                    found += [q for q in p.iterdir() if _TEMP_NAMES[1].match(q.name)]
        return sorted(found)

    def clean_stale(self, stale_after: float = STALE_AFTER) -> list[Path]:
        """Remove temp files (and temp folders) that killed processes left; return them.

        A temp is kept while a process of this host holds it (or a file in it) open. One
        tagged with a process of this host is removed once that process is gone; any
        other (untagged, or another host's: shared storage) once idle ``stale_after`` s.
        """
        from studio.db import process_alive

        temps = self.temp_files()
        if not temps:
            return []
        held = _open_paths()
        host, now, removed = _host(), time.time(), []
        for path in temps:
            try:
                if str(path) in held or (path.is_dir() and any(h.startswith(f"{path}/") for h in held)):
                    continue
                m = next((r.match(path.name) for r in (*_TEMP_NAMES, _TEMP_DIR) if r.match(path.name)),
                         None)
                if m is not None and m.group("pid") and m.group("host") == host:
                    if process_alive(int(m.group("pid"))):
                        continue
                elif now - newest_mtime(path) < stale_after:
                    continue
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed.append(path)
            except OSError:
                continue  # its owner finished with it meanwhile, or it is not ours to remove
        return removed
