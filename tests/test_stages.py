"""Typed stages: the runner hands a stage exactly its declared inputs and the run's
services, and stores exactly its declared outputs; `studio stages` prints those
declarations, read off the same types."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from studio.context import RunContext, StageEnv

ROOT = Path(__file__).resolve().parent.parent


def test_every_stage_declares_typed_inputs_and_outputs_the_run_has() -> None:
    from studio.pipeline import STAGES

    fields = {f.name for f in dataclasses.fields(RunContext)} | {
        n for n, v in vars(RunContext).items() if isinstance(v, property)}
    for stage in STAGES:
        take, give = stage.types()
        assert dataclasses.is_dataclass(take) and dataclasses.is_dataclass(give), stage.name
        missing = (set(stage.inputs) | set(stage.outputs)) - fields
        assert not missing, f"stage {stage.name} declares {missing}, which the run does not have"
        assert stage.outputs, stage.name


def test_no_stage_module_takes_the_whole_run_context() -> None:
    # The stages get their inputs and a StageEnv, never the runner's context.
    offenders = []
    for folder in ("shots", "audio", "timelines"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            if re.search(r"\bRunContext\b|\bctx: Any\b", text):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


@dataclasses.dataclass
class _In:
    brief: Any
    shots: list[Any]


@dataclasses.dataclass
class _Out:
    selected: dict[str, Any]
    counts: dict[str, int]


def _fake(env: StageEnv, inputs: _In) -> _Out:
    assert isinstance(env, StageEnv)
    assert [f.name for f in dataclasses.fields(inputs)] == ["brief", "shots"]
    return _Out(selected={"s": inputs.shots[0]}, counts={"reused": 1, "made": 2})


def _bad(env: StageEnv, inputs: _In) -> _Out:
    return {"selected": {}}  # type: ignore[return-value]


def test_the_runner_passes_declared_inputs_and_stores_declared_outputs(tmp_path: Path) -> None:
    from fractions import Fraction

    from studio.pipeline import Stage
    from studio.progress import QuietReporter
    from studio.settings import Settings
    from studio.specs import Catalog
    from studio.store import Store

    cat = Catalog()
    brief = type("B", (), {"project": "p", "campaign": "c"})()
    ctx = RunContext(
        run_id="r", brief=brief, brief_path=tmp_path / "b.yaml", brief_dir=tmp_path,  # type: ignore[arg-type]
        brief_version_id=1, version=1, specs=[], style=cat.style("golden-hour"), catalog=cat,
        settings=Settings(home=tmp_path), store=Store(tmp_path / "store"), engine=None,  # type: ignore[arg-type]
        reporter=QuietReporter(), out_dir=tmp_path / "out", work_dir=tmp_path / "work",
        edit_rate=Fraction(25), master_size=(64, 64))
    ctx.shots = ["shot-1"]  # type: ignore[list-item]
    stage = Stage("fake", _fake, "fake.1")
    assert stage.inputs == ("brief", "shots") and stage.outputs == ("selected",)
    assert stage(ctx) == {"reused": 1, "made": 2}
    assert ctx.selected == {"s": "shot-1"}
    assert not hasattr(ctx, "counts")
    with pytest.raises(TypeError, match="stage bad returned dict, not _Out"):
        Stage("bad", _bad, "bad.1")(ctx)


def test_studio_stages_prints_the_runners_declarations() -> None:
    from studio.cli import main
    from studio.pipeline import STAGES

    out = CliRunner().invoke(main, ["stages"]).output
    for stage in STAGES:
        line = next(ln for ln in out.splitlines() if re.match(rf"\d+\. {stage.name}\b", ln))
        assert f"{', '.join(stage.inputs)} -> {', '.join(stage.outputs)}" in line
