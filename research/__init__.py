"""Experiment machinery behind docs/quality.md's rounds: not part of the installed `ferkit` package.

Run from the repository root with the [train] extra installed (`pip install -e '.[train]'`):
    python -m research.select OLD NEW           # the one model-selection rule, on PublicTest
    python -m research.ensemble build|members|dedupe|offsets ...
    bash research/round.sh ...                  # one round's steps, parameterised
"""
