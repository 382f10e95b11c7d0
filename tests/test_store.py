"""The content-addressed store: a missing object is a user-facing error, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.errors import StudioError
from studio.store import MissingMedia, Store


def test_missing_object_is_a_studio_error_naming_the_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    ref = store.put_bytes(b"hello", ".txt")
    assert store.find(ref.sha256).read_bytes() == b"hello"
    with pytest.raises(StudioError) as e:
        store.find("ab" * 32)
    assert isinstance(e.value, MissingMedia) and isinstance(e.value, FileNotFoundError)
    assert e.value.line() == (
        f"abababababababab… is not in the store at {tmp_path / 'store'} — point STUDIO_HOME at "
        "the store the run used, or re-render the brief to make it again")
