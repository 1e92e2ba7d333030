"""Class labels: FER-2013's seven emotions, FER+'s eight, and the mapping between them."""

# FER-2013's canonical order: index i is label i in fer2013.csv. Every other module imports this.
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# FER+ vote columns in fer2013new.csv, in file order (the last two are not emotions).
FERPLUS_COLUMNS: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF",
)
# The eight FER+ emotion classes, named with ferkit's vocabulary, in FER+ column order.
FERPLUS_EMOTIONS: tuple[str, ...] = (
    "neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt",
)
# FER+ class index -> FER-2013 class index (contempt has no FER-2013 counterpart).
FERPLUS_TO_FER2013: dict[int, int | None] = {
    i: (EMOTIONS.index(name) if name in EMOTIONS else None) for i, name in enumerate(FERPLUS_EMOTIONS)
}


def check_choice(kind: str, name: str, valid: tuple[str, ...]) -> str:
    """Return ``name`` stripped and lower-cased if it is one of ``valid``, else raise
    ValueError("unknown <kind> '<name>'; valid: a, b, ...")."""
    key = str(name).strip().lower()
    if key not in valid:
        raise ValueError(f"unknown {kind} {name!r}; valid: {', '.join(valid)}")
    return key


def check_emotion(name: str, labels: tuple[str, ...] = EMOTIONS) -> str:
    """Return ``name`` normalised to lower case, or raise ValueError listing the valid names."""
    return check_choice("emotion", name, labels)
