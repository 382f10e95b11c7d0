"""Where a timeline's media lives: OTIO media references name files by URL (``file:``
URLs from Studio and most editors, bare paths from some), and every stage that reads
a timeline back (the conform, the mix, the round trip) turns them into paths the same way."""

from __future__ import annotations

import urllib.parse
import urllib.request
from pathlib import Path


def url_to_path(url: str) -> Path:
    """A media reference's ``target_url`` as a local path (``file:`` URLs decoded)."""
    if url.startswith("file:"):
        return Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    return Path(url)
