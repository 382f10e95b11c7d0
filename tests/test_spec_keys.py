"""What of a channel spec is in a deliverable's cache key: what shapes the file, not the
platforms' disclosure labels (signed in after the conform) or the QC thresholds."""

from __future__ import annotations

from studio.specs import Catalog
from timelines.deliver import NOT_IN_KEY, conform_recipe, spec_key, still_recipe


def test_disclosure_labels_make_no_deliverable_again() -> None:
    spec = Catalog().spec("reels-9x16")
    assert spec.disclosure, "reels-9x16 ships with its platforms' disclosure labels"
    bare = spec.model_copy(update={"disclosure": []})

    def video(s):  # noqa: ANN001, ANN202
        return conform_recipe("edit", s, lut_sha=None, grain=0.0, sharpen=0.0, preset="veryfast", master=None,
                              captions={}, graph="g")

    assert video(spec) == video(bare)
    assert still_recipe("f" * 64, (0.5, 0.5), None, spec, 0.0, "g", None) == \
        still_recipe("f" * 64, (0.5, 0.5), None, bare, 0.0, "g", None)
    # what does shape the file still counts
    assert video(spec.model_copy(update={"width": spec.width // 2})) != video(spec)
    assert not NOT_IN_KEY & set(spec_key(spec))
