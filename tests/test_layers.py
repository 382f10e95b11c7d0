"""The engine's layers (pyproject.toml ``[tool.importlinter]``): the stage packages do not
import each other, the core does not import the stages, the stages do not import the
faces. The contracts name the core's modules one by one, so a new studio module must be
placed in a layer or it would go unchecked."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _contracts() -> dict[str, dict]:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["name"]: c for c in conf["contracts"]}


def test_every_studio_module_is_in_a_layer() -> None:
    contracts = _contracts()
    core = set(contracts["The core does not import the stages"]["source_modules"])
    faces = set(contracts["The stages do not import the faces"]["forbidden_modules"])
    assert not core & faces, core & faces
    studio = ROOT / "studio"
    modules = {f"studio.{p.stem}" for p in studio.glob("*.py") if p.stem != "__init__"}
    modules |= {f"studio.{p.parent.name}" for p in studio.glob("*/__init__.py")}
    assert modules - core - faces == set(), "place these modules in pyproject.toml's import contracts"
    assert (core | faces) - modules == set(), "the contracts name modules that do not exist"


def test_the_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    if not lint.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    proc = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]
