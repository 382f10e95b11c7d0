"""Re-create a candidate from its recorded recipe and check it against the original.

Everything needed is in the database: the prompt record (by hash), seed, size, backend
and its options. Same device, same library versions: same bytes. A diffusion model on
another GPU type or driver may differ in the last bits; the report says which.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from shots.generate import png_bytes
from studio import db
from studio.errors import StudioError
from studio.store import Store, atomic_write_bytes


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


def regenerate(engine: Engine, store: Store, candidate_id: str, out: Path | None = None) -> dict[str, Any]:
    from shots.backends import create_backend

    with Session(engine) as s:
        cand = find_candidate(s, candidate_id)
        prompt_row = s.get(db.PromptRecordRow, cand.prompt_hash)
        if prompt_row is None:
            raise StudioError(f"prompt record {cand.prompt_hash[:12]} is missing from the database",
                              fix="the database is incomplete; re-render the brief", field="CANDIDATE")
        prompt = prompt_row.document
        options = dict(cand.params.get("backend_options") or {})
        backend_name, seed, width, height = cand.backend, cand.seed, cand.width, cand.height
        recorded, describe = cand.media_sha256, cand.params.get("describe", {})
        cid = cand.id
    backend = create_backend(backend_name, options)
    refs = [store.find(h) for h in prompt.get("reference_images", [])]
    kf = (backend.generate(prompt, seed, width, height, references=refs) if refs
          else backend.generate(prompt, seed, width, height))
    data = png_bytes(kf.image)
    sha = hashlib.sha256(data).hexdigest()
    if out is not None:
        atomic_write_bytes(out, data)
    store.put_bytes(data, ".png")
    now = backend.describe()
    return {
        "candidate": cid, "backend": backend_name, "seed": seed, "size": [width, height],
        "recorded_sha256": recorded, "regenerated_sha256": sha, "identical": sha == recorded,
        "recorded_device": describe.get("device"), "device": now.get("device"),
        "out": str(out) if out else None,
    }
