#!/usr/bin/env bash
# Round 6 of docs/quality.md (FER+ only), after the run runs/ferplus-distilled50 beside rounds 1-4:
#   bash scripts/round6.sh candidates          # v5 (round 3's student, 50 epochs) as an INT8 candidate; the PublicTest
#                                              # rule against the default (v3), paired test included; the v1-v5
#                                              # ensemble, its two-fold estimate and its cost per face
#   bash scripts/round6.sh ship DEFAULT ACC    # DEFAULT: keep or v5; ACC: keep or 5 (the v1-v5 ensemble)
# Then: ferkit evaluate ... --model-card (see the README's reproduce steps).
set -euo pipefail
. "$(dirname "$0")/rounds.sh"  # D (data), W (weights), C (candidates) and the shared steps
one_set_round ferplus 6 v3 v5 "$@"
