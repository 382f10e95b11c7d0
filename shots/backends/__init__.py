"""Keyframe backends: a narrow interface, a built-in registry and an entry-point group.

A backend turns a prompt record and a seed into one RGB keyframe (plus, optionally, a
depth map that the parallax camera move uses). Backends are imported lazily, by name,
only when a run asks for them; a plugin that fails to import fails loudly with the
reason instead of silently disappearing.

Third-party backends register in ``pyproject.toml``::

    [project.entry-points."studio.keyframe_backends"]
    mybackend = "mypkg.backend:MyBackend"
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from studio.errors import StudioError

ENTRY_POINT_GROUP = "studio.keyframe_backends"

# name -> "module:Class"; one backend per file.
BUILTIN: dict[str, str] = {
    "procedural": "shots.backends.procedural:ProceduralBackend",
    "diffusers-image": "shots.backends.diffusers_image:DiffusersImageBackend",
    "diffusers-video": "shots.backends.diffusers_video:DiffusersVideoBackend",
}


@dataclass
class Keyframe:
    """What a backend returns. ``image`` is HxWx3 uint8 RGB; ``depth`` (optional) is HxW
    float32 in [0, 1], 1 = nearest."""

    image: np.ndarray
    depth: np.ndarray | None = None
    # Everything needed to make it again, beyond the prompt record and seed
    # (steps, guidance, scheduler, ...). Recorded with the candidate.
    params: dict[str, Any] = field(default_factory=dict)


class KeyframeBackend(Protocol):
    name: str
    code_version: str

    def describe(self) -> dict[str, Any]:
        """Model identity for the record: model_id, weights_sha256 (None when there are
        no weights), library versions, device, dtype."""

    def generate(self, prompt: dict[str, Any], seed: int, width: int, height: int,
                 references: list[Path] | None = None) -> Keyframe:
        """One keyframe. ``prompt`` is PromptRecord.canonical(). Same inputs (references
        included), same pixels.

        ``references`` are the brief's reference images (style references, character
        sheets): files in the store, in the prompt record's order, already checked to be
        PNG/JPEG/WebP within the size limits (studio.assets). The worker passes them only
        when there are some. Every built-in backend takes them and records in the
        keyframe's params what it took from each (``params["references"]``); a plugin
        whose ``generate`` has no ``references`` parameter is refused, with a clear line,
        for a brief that names reference images. A backend may also offer
        ``generate_batch(prompt, seeds, width, height, references)`` returning one Keyframe
        per seed; the worker uses it when present.
        """


def _target(name: str) -> str:
    if name in BUILTIN:
        return BUILTIN[name]
    if ":" in name:  # a backend by import path ("pkg.module:Class"), e.g. during development
        return name
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep.value
    raise StudioError(
        f"unknown keyframe backend {name!r}",
        fix="use one of: " + ", ".join(sorted(available())) + " (see `studio plugins`)",
        field="backend",
    )


def available() -> dict[str, str]:
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    found.update(BUILTIN)
    return found


def load_backend_class(name: str) -> type:
    target = _target(name)
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except Exception as e:  # a broken plugin must say why, loudly
        raise StudioError(
            f"keyframe backend {name!r} ({target}) failed to load: {type(e).__name__}: {e}",
            fix="install what it needs or remove the plugin",
            field="backend",
        ) from e


def create_backend(name: str, options: dict[str, Any] | None = None) -> KeyframeBackend:
    cls = load_backend_class(name)
    try:
        return cls(**(options or {}))
    except TypeError as e:
        raise StudioError(
            f"keyframe backend {name!r} does not take these options: {e}",
            fix="check the backend's options in the model entry or brief", field="backend",
        ) from e


def plugin_status() -> list[tuple[str, str, str]]:
    """(name, target, "ok" or the import error) for every known backend."""
    rows = []
    for name, target in sorted(available().items()):
        try:
            load_backend_class(name)
            rows.append((name, target, "ok"))
        except StudioError as e:
            rows.append((name, target, e.what))
    return rows
