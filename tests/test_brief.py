from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from studio.brief import Brief, brief_json_schema, check_against, load_brief
from studio.errors import StudioError
from studio.specs import Catalog
from studio.versioning import register_upgrade, upgrade

from .conftest import EXAMPLE_BRIEF


def _brief_dict() -> dict:
    return yaml.safe_load(EXAMPLE_BRIEF.read_text())


def _write(tmp_path: Path, data: dict, name: str = "brief.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data) if name.endswith(".yaml") else json.dumps(data))
    return p


def test_example_brief_is_valid() -> None:
    brief, base = load_brief(EXAMPLE_BRIEF)
    specs = check_against(brief, Catalog(), base)
    assert len(brief.beats) >= 4
    assert {s.kind for s in specs} == {"video", "still"}
    assert sum(s.kind == "video" for s in specs) >= 2


def test_json_brief_loads_too(tmp_path: Path) -> None:
    brief, _ = load_brief(_write(tmp_path, _brief_dict(), "b.json"))
    assert brief.project == "aurora"


def test_defaults() -> None:
    d = _brief_dict()
    del d["candidates"], d["usage_class"], d["locale"]
    b = Brief.model_validate(d)
    assert (b.candidates, b.usage_class, b.locale, b.handles) == (4, "internal", "en-US", 12)


def test_schema_is_published() -> None:
    schema = brief_json_schema()
    assert schema["title"] == "Brief.1"
    assert "beats" in schema["required"]
    beat = schema["$defs"]["Beat"]["properties"]
    for f in ("subject", "environment", "composition", "mood", "style", "disallowed", "reference_images"):
        assert f in beat


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["beats"][2].__setitem__("duration", -1),
         "beats[2].duration: -1: input should be greater than 0 — use a larger number"),
        (lambda d: d["beats"][0].pop("subject"), "beats[0].subject: field required — add it"),
        (lambda d: d.__setitem__("usage_class", "world"), "usage_class: 'world': input should be 'experiment', 'internal' or 'public'"),
        (lambda d: d.__setitem__("candidates", 0), "candidates: 0: input should be greater than or equal to 1"),
        (lambda d: d["beats"][1].__setitem__("colour", "red"), "beats[1].colour: 'red': extra inputs are not permitted — remove it"),
        (lambda d: d["beats"][1].__setitem__("id", d["beats"][0]["id"]), "beat id 'b01-sunrise' appears twice"),
        (lambda d: d.__setitem__("project", "Aurora Co"), "project: 'Aurora Co': string should match pattern"),
    ],
)
def test_field_errors_name_path_value_and_fix(tmp_path: Path, mutate, expected: str) -> None:
    d = _brief_dict()
    mutate(d)
    with pytest.raises(StudioError) as ei:
        load_brief(_write(tmp_path, d))
    text = "\n".join(ei.value.lines())
    assert expected in text
    assert str(tmp_path / "brief.yaml") in text


def test_several_errors_reported_together(tmp_path: Path) -> None:
    d = _brief_dict()
    d["beats"][0]["duration"] = 0
    d["beats"][1].pop("subject")
    with pytest.raises(StudioError) as ei:
        load_brief(_write(tmp_path, d))
    assert len(ei.value.lines()) == 2


def test_unknown_spec_and_style(tmp_path: Path) -> None:
    d = _brief_dict()
    d["channels"][1] = "myspace-480p"
    d["style_pack"] = "vaporwave"
    brief, base = load_brief(_write(tmp_path, d))
    with pytest.raises(StudioError) as ei:
        check_against(brief, Catalog(), base, source="b.yaml")
    lines = ei.value.lines()
    assert any("channels[1]: unknown channel spec 'myspace-480p' — use one of:" in ln and "youtube-1080p" in ln
               for ln in lines)
    assert any("style_pack: unknown style pack 'vaporwave'" in ln for ln in lines)


def test_beats_longer_than_channel_max(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    specs_dir = tmp_path / "specs"
    specs_dir.mkdir()
    spot = yaml.safe_load((Path(__file__).parent.parent / "studio/data/specs/reels-9x16.yaml").read_text())
    spot.update(name="spot-6s", max_duration=6, min_duration=0)
    (specs_dir / "spot.yaml").write_text(yaml.safe_dump(spot))
    d = _brief_dict()
    d["channels"] = ["spot-6s"]
    brief, base = load_brief(_write(tmp_path, d))
    with pytest.raises(StudioError) as ei:
        check_against(brief, Catalog(specs_dir=specs_dir), base)
    assert "beats: the spot runs 12 s but spot-6s allows at most 6 s (longest beat: b01-sunrise, 3 s)" in ei.value.line()


def test_missing_reference_image(tmp_path: Path) -> None:
    d = _brief_dict()
    d["beats"][0]["reference_images"] = ["refs/mood.png"]
    brief, base = load_brief(_write(tmp_path, d))
    with pytest.raises(StudioError) as ei:
        check_against(brief, Catalog(), base)
    assert "beats[0].reference_images[0]: reference image 'refs/mood.png' not found" in ei.value.line()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("schema: Brief.1\nproject: [unclosed\n", "is not valid YAML at line 3, column 1 — fix the syntax there"),
        ("- just\n- a list\n", "must be a mapping of fields, not list"),
        ("schema: Brief.9\n", "schema 'Brief.9' is newer than this Studio understands (Brief.1)"),
        ("schema: StylePack.1\n", "schema 'StylePack.1' is not a Brief document"),
    ],
)
def test_malformed_files(tmp_path: Path, content: str, expected: str) -> None:
    p = tmp_path / "b.yaml"
    p.write_text(content)
    with pytest.raises(StudioError) as ei:
        load_brief(p)
    assert expected in ei.value.line()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StudioError) as ei:
        load_brief(tmp_path / "nope.yaml")
    assert ei.value.line() == f"{tmp_path / 'nope.yaml'}: file not found — check the path"


def test_upgrade_chain_runs_one_step_at_a_time() -> None:
    from studio import versioning

    versioning.CURRENT["Thing"] = 3
    try:
        register_upgrade("Thing", 1)(lambda d: {"schema": d["schema"], "b": d["a"]})
        register_upgrade("Thing", 2)(lambda d: {**d, "c": d["b"] * 2})
        out = upgrade({"schema": "Thing.1", "a": 2}, "Thing")
        assert out == {"schema": "Thing.3", "b": 2, "c": 4}
    finally:
        del versioning.CURRENT["Thing"]
        versioning._UPGRADES.pop("Thing", None)


def test_content_hash_is_stable_and_sensitive() -> None:
    a = Brief.model_validate(_brief_dict())
    b = Brief.model_validate(_brief_dict())
    assert a.content_hash() == b.content_hash()
    d = _brief_dict()
    d["beats"][0]["mood"] = "stormy"
    assert Brief.model_validate(d).content_hash() != a.content_hash()
