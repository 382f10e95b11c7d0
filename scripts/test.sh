#!/usr/bin/env bash
# Sets up (system packages, .venv, test tools), then runs the lint and the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export RAY_USAGE_STATS_ENABLED=0
.venv/bin/ruff check .
.venv/bin/lint-imports  # the layers: pyproject.toml [tool.importlinter]
.venv/bin/pytest "$@"
