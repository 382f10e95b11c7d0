"""Versioned persisted documents, OpenTimelineIO style.

Every document Studio reads or writes carries ``"schema": "Family.N"``. Reading an older
version runs one upgrade function per step (N -> N+1) until it reaches the current one;
a newer version than this code knows is refused with a clear error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from studio.errors import StudioError

Upgrade = Callable[[dict[str, Any]], dict[str, Any]]

CURRENT: dict[str, int] = {
    "Brief": 1,
    "ChannelSpec": 1,
    "StylePack": 1,
    "PromptRecord": 1,
    "Manifest": 1,
    "ModelEntry": 1,
    "Voice": 1,
    "MusicTrack": 1,
    "BrandKit": 1,
    "Layout": 1,
    "QcReport": 1,
    "Policy": 1,
    "PolicyReport": 1,
}

# family -> {from_version: function that returns the document at from_version + 1}
_UPGRADES: dict[str, dict[int, Upgrade]] = {}

_SCHEMA_RE = re.compile(r"^([A-Za-z][A-Za-z0-9]*)\.(\d+)$")


def register_upgrade(family: str, from_version: int) -> Callable[[Upgrade], Upgrade]:
    def deco(fn: Upgrade) -> Upgrade:
        _UPGRADES.setdefault(family, {})[from_version] = fn
        return fn

    return deco


def schema_string(family: str) -> str:
    return f"{family}.{CURRENT[family]}"


def upgrade(doc: dict[str, Any], family: str, source: str | None = None) -> dict[str, Any]:
    """Bring ``doc`` to the current version of ``family``. A missing schema means current."""
    current = CURRENT[family]
    raw = doc.get("schema", f"{family}.{current}")
    m = _SCHEMA_RE.match(str(raw))
    if not m or m.group(1) != family:
        raise StudioError(
            f"schema {raw!r} is not a {family} document",
            fix=f'set "schema": "{family}.{current}"',
            field="schema",
            source=source,
        )
    version = int(m.group(2))
    if version > current:
        raise StudioError(
            f"schema {raw!r} is newer than this Studio understands ({family}.{current})",
            fix="upgrade Studio, or write the document in the current schema",
            field="schema",
            source=source,
        )
    doc = dict(doc)
    while version < current:
        step = _UPGRADES.get(family, {}).get(version)
        if step is None:
            raise StudioError(
                f"no upgrade from {family}.{version} to {family}.{version + 1}",
                fix=f'rewrite it as "{family}.{current}"',
                field="schema",
                source=source,
            )
        doc = step(doc)
        version += 1
        doc["schema"] = f"{family}.{version}"
    doc["schema"] = f"{family}.{current}"
    return doc
