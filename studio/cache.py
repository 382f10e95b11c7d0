"""The action cache: what an expensive step made from exactly these inputs.

A step (one keyframe candidate, one shot master) is named by a key: the sha256 of the
canonical JSON of its stage, code version and inputs. The inputs are content only:
hashes, seeds, sizes, the model's identity (entry id, weights sha256, dtype, steps ...),
the prompt record's hash. Never where things are or how the work was spread (store
paths, pool sizes, retries): a render from another folder, on a bigger cluster, must
find the same keys. The outputs are store references and small numbers.

So a render killed half-way resumes (each finished step was recorded as it arrived),
and an edited brief makes again only the steps whose inputs changed. A hit counts only
when every store object its outputs name is still there; otherwise it is a miss and the
step runs again.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from studio import db
from studio.store import MediaRef, Store

# Input names that describe where or how work ran, not what it was: refused in a key, so
# a caller cannot make the cache miss by moving the store or resizing the pool.
NOT_CONTENT = frozenset({
    "store_root", "path", "paths", "out_dir", "work_dir", "pool_size", "actors", "workers",
    "worker", "retries", "max_retries", "attempt", "device",
})


def canonical(value: Any) -> str:
    """Canonical JSON: sorted keys, no spaces. Anything that is not plain JSON (a Path, a
    numpy number) raises TypeError rather than turning into a string that may vary."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _check_content(value: Any, where: str = "inputs") -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if k in NOT_CONTENT:
                raise ValueError(f"{where}.{k}: an action key holds content only, not "
                                 "paths, pool sizes or retries")
            _check_content(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_content(v, f"{where}[{i}]")


def key_of(stage: str, code_version: str, inputs: dict[str, Any]) -> str:
    """The action key: sha256 of the canonical JSON of stage, code version and inputs."""
    _check_content(inputs)
    blob = canonical({"stage": stage, "code_version": code_version, "inputs": inputs})
    return hashlib.sha256(blob.encode()).hexdigest()


def refs_in(outputs: Any) -> list[MediaRef]:
    """Every store reference (a ``MediaRef.to_dict()``) anywhere in ``outputs``."""
    found: list[MediaRef] = []
    if isinstance(outputs, dict):
        if set(outputs) == {"sha256", "ext", "size"}:
            return [MediaRef.from_dict(outputs)]
        for v in outputs.values():
            found += refs_in(v)
    elif isinstance(outputs, list | tuple):
        for v in outputs:
            found += refs_in(v)
    return found


class ActionCache:
    """The ``action`` table (studio.db.Action) with the store its outputs point into."""

    def __init__(self, engine: Engine, store: Store) -> None:
        self.engine = engine
        self.store = store

    def get(self, key: str) -> db.Action | None:
        """The action for ``key`` if it exists and every store object it names is present."""
        with Session(self.engine) as s:
            row = s.get(db.Action, key)
            if row is None:
                return None
            s.expunge(row)
        if not all(self.store.has(ref) for ref in refs_in(row.outputs)):
            return None  # the store was cleaned: make it again
        return row

    def put(self, key: str, stage: str, code_version: str, outputs: dict[str, Any], run_id: str,
            seconds: float = 0.0) -> bool:
        """Record an action once: insert-or-ignore on the key, so two processes that made
        the same step (two renders, a retried task) leave one row. True if this call
        inserted it. Outputs must name only objects already in the store."""
        canonical(outputs)  # plain JSON or TypeError, before anything is written
        values = {"key": key, "stage": stage, "code_version": code_version, "outputs": outputs,
                  "run_id": run_id, "seconds": float(seconds), "created_at": db.now()}
        table = db.Action.__table__  # type: ignore[attr-defined]
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        elif dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            dialect_insert = None
        with self.engine.begin() as conn:
            if dialect_insert is not None:
                stmt = (dialect_insert(table).values(**values)
                        .on_conflict_do_nothing(index_elements=["key"]).returning(table.c.key))
                # rowcount is not reliable across drivers: a returned key says it was inserted
                return conn.execute(stmt).first() is not None
            try:
                with conn.begin_nested():
                    conn.execute(insert(table).values(**values))
                return True
            except IntegrityError:
                return False


def record_counts(engine: Engine, run_id: str, stage: str, reused: int, made: int) -> None:
    """How many of a stage's steps this run reused and made, in the run's settings
    (``settings["cache"][stage]``): the record says what was computed where."""
    with Session(engine) as s:
        run = s.get(db.Run, run_id)
        if run is None:
            return
        cache = dict(run.settings.get("cache") or {})
        cache[stage] = {"reused": int(reused), "made": int(made)}
        run.settings = {**run.settings, "cache": cache}  # a new dict: JSON columns see assignment
        s.add(run)
        s.commit()


def model_identity(entry: Any) -> dict[str, Any] | None:
    """What about a model (studio.models.ModelEntry) changes its pixels: the entry id, the
    weights' hash, and how it is run (dtype, scheduler, steps, guidance, size, strength,
    IP-Adapter, call arguments, frames). None when the weights cannot be named: an
    unpinned hub source (a branch may move), so nothing it makes is cached. An unpinned
    local folder is hashed here (studio.models.weights_hash), as its worker would."""
    from studio.models import weights_hash

    weights = entry.weights_sha256
    if weights is None:
        if entry.source.path is None:
            return None
        weights = weights_hash(entry.source.path)
    doc = entry.model_dump(mode="json", include={
        "id", "backend", "pipeline_class", "dtype", "scheduler", "steps", "guidance", "width",
        "height", "strength", "call_args", "fps", "num_frames", "extend"})
    # where the files lie is not what they are: folders are left out
    source = entry.source.model_dump(mode="json", include={"hub_id", "revision", "variant"})
    adapter = entry.ip_adapter.model_dump(mode="json", exclude={"path"}) if entry.ip_adapter else None
    return {**doc, "weights_sha256": weights, "source": source, "ip_adapter": adapter}


def memo(cache: ActionCache, stage: str, code_version: str, inputs: dict[str, Any],
         make: Any, run_id: str) -> tuple[dict[str, Any], str | None, str]:
    """One step through the action cache: the outputs recorded for these inputs if the
    store still holds what they name, else ``make()``'s, recorded. Returns (outputs, the
    run that made them when reused else None, key). ``make`` returns plain JSON whose
    media are store references (``MediaRef.to_dict()``)."""
    import time

    key = key_of(stage, code_version, inputs)
    hit = cache.get(key)
    if hit is not None:
        return hit.outputs, hit.run_id, key
    started = time.monotonic()
    outputs = make()
    cache.put(key, stage, code_version, outputs, run_id, time.monotonic() - started)
    return outputs, None, key


def file_digest(path: Any) -> str:
    """sha256 of a file's bytes, for a content input that lives outside the store."""
    from studio.store import sha256_file

    return sha256_file(path)


def folder_digest(folder: Any) -> str:
    """sha256 over a folder's files (relative name and content, sorted): a music or
    effects library as a content input. Where the folder is stays out of it."""
    from pathlib import Path

    from studio.store import sha256_file

    root = Path(folder)
    if not root.is_dir():
        return "absent"
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + sha256_file(p).encode() + b"\n")
    return h.hexdigest()


def materialize(store: Store, ref: dict[str, Any], target: Any) -> Any:
    """A reused step's file, copied from the store to where this run publishes it (a copy,
    not a link: the published folder gets its own modes and the store's objects stay as
    they are). Written atomically."""
    import shutil
    from pathlib import Path

    from studio.store import atomic_output

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(target) as tmp:
        shutil.copyfile(store.path(MediaRef.from_dict(ref)), tmp)
    return target
