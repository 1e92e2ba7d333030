#!/usr/bin/env bash
# Round 8 of docs/quality.md (FER-2013 only), after the run runs/fer2013-distilled80 beside rounds 1-7:
#   bash scripts/round8.sh candidates          # v7 (v6's recipe distilled from v4 + v6) as an INT8 candidate; the
#                                              # PublicTest rule against the default (v4), paired test included; the
#                                              # v1-v7 ensemble, its two-fold estimate and its cost per face
#   bash scripts/round8.sh ship DEFAULT ACC    # DEFAULT: keep or v7; ACC: keep or 7 (the v1-v7 ensemble)
# Then: ferkit evaluate ... --model-card (see the README's reproduce steps).
set -euo pipefail
. "$(dirname "$0")/rounds.sh"  # D (data), W (weights), C (candidates) and the shared steps
one_set_round fer2013 8 v4 v7 "$@"
