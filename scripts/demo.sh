#!/usr/bin/env bash
# Sets up, then renders the example brief into out/demo and says where things are.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAY_USAGE_STATS_ENABLED=0
.venv/bin/studio render examples/briefs/launch.yaml --out out/demo "$@"
echo
# Each deliverable is signed (C2PA) at release: show one's ingredient chain, checked
# against the development root setup made (or the organisation's STUDIO_TRUST_ANCHORS).
trust="${STUDIO_TRUST_ANCHORS:-${STUDIO_HOME:-.studio}/signing/root.pem}"
if [ -f "$trust" ]; then
  .venv/bin/studio verify out/demo/deliverables/youtube-1080p/*_youtube-1080p_v*.mp4 --trust "$trust"
  echo
fi
echo "Deliverables: $(pwd)/out/demo/deliverables"
echo "Timelines:    $(pwd)/out/demo/timelines"
echo "Manifest:     $(pwd)/out/demo/manifest.json"
echo "QC reports:   $(pwd)/out/demo/qc"
echo "Records:      .venv/bin/studio runs   |   .venv/bin/studio show RUN"
