#!/usr/bin/env bash
# Round 7 of docs/quality.md (FER-2013 only), after the run runs/fer2013-multi80 beside rounds 1-5:
#   bash scripts/round7.sh candidates          # v6 (v4's recipe, 80 epochs) as an INT8 candidate; the PublicTest rule
#                                              # against the default (v4), paired test included; the v1-v6 ensemble,
#                                              # its two-fold estimate and its cost per face
#   bash scripts/round7.sh ship DEFAULT ACC    # DEFAULT: keep or v6; ACC: keep or 6 (the v1-v6 ensemble)
# Then: ferkit evaluate ... --model-card (see the README's reproduce steps).
set -euo pipefail
. "$(dirname "$0")/rounds.sh"  # D (data), W (weights), C (candidates) and the shared steps
one_set_round fer2013 7 v4 v6 "$@"
