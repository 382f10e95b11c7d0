#!/usr/bin/env bash
# Sets up, then renders the example brief into out/demo and says where things are.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAY_USAGE_STATS_ENABLED=0
.venv/bin/studio render examples/briefs/launch.yaml --out out/demo "$@"
echo
echo "Deliverables: $(pwd)/out/demo/deliverables"
echo "Timelines:    $(pwd)/out/demo/timelines"
echo "Manifest:     $(pwd)/out/demo/manifest.json"
echo "Records:      .venv/bin/studio runs   |   .venv/bin/studio show RUN"
