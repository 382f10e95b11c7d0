"""Every ``studio WORD`` that the code, the README or the docs tell a user to run is a real
command: an error's fix that names a missing command sends the user nowhere."""

from __future__ import annotations

import re

from click.testing import CliRunner

from studio.cli import main

from .conftest import ROOT

# `studio WORD` in prose and messages; a line starting with `studio WORD` (code blocks).
NAMED = re.compile(r"`studio ([a-z][a-z-]*)|^\s*(?:\.venv/bin/)?studio ([a-z][a-z-]*)", re.M)
WHERE = ["README.md", "docs", "cluster", "docker", "studio", "shots", "audio", "timelines", "bench",
         "scripts", "examples"]
SUFFIXES = {".md", ".py", ".sh", ".yaml", ".yml", ".txt"}


def _named_commands() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for top in WHERE:
        base = ROOT / top
        files = [base] if base.is_file() else [p for p in base.rglob("*") if p.suffix in SUFFIXES]
        for path in files:
            text = path.read_text(encoding="utf-8", errors="replace")
            for m in NAMED.finditer(text):
                word = m.group(1) or m.group(2)
                found.setdefault(word, []).append(str(path.relative_to(ROOT)))
    return found


def test_every_named_command_exists() -> None:
    named = _named_commands()
    assert {"render", "models", "voices"} <= set(named), named  # the scan finds what it should
    missing = {w: sorted(set(p)) for w, p in named.items() if w not in main.commands}
    assert not missing, f"named but not commands: {missing}"


def test_models_lists_every_entry_with_its_licence() -> None:
    from studio.models import ModelRegistry

    r = CliRunner().invoke(main, ["models"])
    assert r.exit_code == 0, r.output
    reg = ModelRegistry()
    lines = r.output.splitlines()
    assert len(lines) == len(reg.entries)
    for line, mid in zip(lines, sorted(reg.entries), strict=True):
        e = reg.entries[mid]
        assert line.split()[:3] == [e.id, e.kind, e.backend] and line.endswith(e.licence)
