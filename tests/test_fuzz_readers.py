"""Fuzzing the FER-2013 readers (issue #19): small valid files cut, bit-flipped and overwritten at seeded random
places, and hypothesis properties of the values. Every input is either read into a consistent dataset or refused
with a DataError whose message starts with the file's path; any other exception fails the test."""
from __future__ import annotations

import csv
import gzip
import io
import lzma
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ferkit.data import SPLITS, DataError, load_dataset, read_ferplus_votes
from ferkit.labels import EMOTIONS, FERPLUS_COLUMNS

FUZZ = settings(max_examples=80, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FERPLUS_HEADER = "Usage,Image name," + ",".join(FERPLUS_COLUMNS)


def fer_csv(rows: list[tuple[str, str, str]], header: str = "emotion,pixels,Usage") -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header.split(","))
    w.writerows(rows)
    return buf.getvalue().encode()


def npz(compressed: bool = True, **arrays) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def valid_files() -> dict[str, bytes]:
    """Small valid files of every layout the readers take, keyed by a file name that selects the reader."""
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, (6, 48, 48), dtype=np.uint8)
    rows = [(str(i % 7), " ".join(map(str, px[i].ravel())), SPLITS[i % 3]) for i in range(6)]
    arrays = {"pixels": px, "emotion": np.arange(6, dtype=np.uint8), "usage": np.arange(6, dtype=np.uint8) % 3,
              "ferplus_votes": rng.integers(0, 5, (6, 10), dtype=np.uint8)}
    votes = FERPLUS_HEADER + "\n" + "\n".join(f"Training,fer{i:07}.png," + ",".join(map(str, rng.integers(0, 5, 10)))
                                              for i in range(6)) + "\n"
    return {"fer.csv": fer_csv(rows), "fer.csv.gz": gzip.compress(fer_csv(rows), mtime=0),
            "compressed.npz": npz(**arrays), "stored.npz": npz(False, **arrays), "fer.npz.xz": lzma.compress(npz(**arrays)),
            "votes-fer2013new.csv": votes.encode(), "votes-fer2013new.csv.gz": gzip.compress(votes.encode(), mtime=0)}


def read(path):
    """The reader for the file's name; the result checked for consistency."""
    if path.name.startswith("votes-"):
        votes = read_ferplus_votes(path)
        assert votes.ndim == 2 and votes.shape[1] == len(FERPLUS_COLUMNS) and (votes >= 0).all()
        return votes
    ds = load_dataset(path)
    n = len(ds)
    assert n > 0 and ds.pixels.shape == (n, 48, 48) and ds.pixels.dtype == np.uint8
    assert ds.labels.shape == (n,) and ((ds.labels >= 0) & (ds.labels < len(EMOTIONS))).all()
    assert set(ds.usage.tolist()) <= set(SPLITS) and len(ds.usage) == n
    return ds


def read_or_refuse(path) -> str | None:
    """None when read, else the DataError message, which must name the file and stay on one line."""
    try:
        read(path)
    except DataError as e:
        message = str(e)
        assert message.startswith(f"{path}: ") or message.startswith(f"{path}, row "), message
        assert "\n" not in message
        return message
    return None


def mutants(data: bytes, rng: np.random.Generator, n: int) -> list[tuple[str, bytes]]:
    """n damaged copies: truncated at a random cut, 1-8 bits flipped, a run overwritten with random bytes, a run
    deleted or repeated."""
    out = []
    for k in range(n):
        kind = ("cut", "flip", "overwrite", "delete", "repeat")[k % 5]
        b = bytearray(data)
        i = int(rng.integers(0, len(b)))
        j = min(len(b), i + int(rng.integers(1, 64)))
        if kind == "cut":
            b = b[:i]
        elif kind == "flip":
            for pos in rng.integers(0, len(b), int(rng.integers(1, 9))):
                b[pos] ^= 1 << int(rng.integers(0, 8))
        elif kind == "overwrite":
            b[i:j] = rng.integers(0, 256, j - i, dtype=np.uint8).tobytes()
        elif kind == "delete":
            del b[i:j]
        else:
            b[i:i] = b[i:j]
        out.append((kind, bytes(b)))
    return out


@pytest.mark.parametrize("name", list(valid_files()))
def test_damaged_copies_are_read_or_refused_naming_the_file(tmp_path, name):
    original = valid_files()[name]
    path = tmp_path / name
    path.write_bytes(original)
    assert read_or_refuse(path) is None  # the undamaged file reads
    rng = np.random.default_rng(sum(name.encode()))  # seeded per file: the same mutants every run
    refused = 0
    for kind, data in mutants(original, rng, 60):
        path.write_bytes(data)
        refused += read_or_refuse(path) is not None
    assert refused >= 10, "the mutations should break the file often"
    path.write_bytes(b"")
    assert read_or_refuse(path) is not None


@FUZZ
@given(data=st.binary(max_size=3000), name=st.sampled_from(list(valid_files())))
def test_arbitrary_bytes_are_read_or_refused_naming_the_file(tmp_path, data, name):
    path = tmp_path / name
    path.write_bytes(data)
    read_or_refuse(path)


# What a field may hold: any text without the characters csv would quote or split rows on is kept as it is
_FIELD = st.one_of(
    st.text(st.characters(blacklist_characters=",\"\r\n", blacklist_categories=("Cs",)), min_size=0, max_size=12),
    st.sampled_from(["\u00b2", "\u0663", "+3", "1_0", " 3", "03", "3.0", "0x3", "3\x00", "-0", "99999999999"]))  # int() takes some


def _plain_int(token: str, top: int) -> bool:
    return bool(re.fullmatch(r"[0-9]+", token)) and int(token) <= top


@FUZZ
@given(token=st.one_of(_FIELD, st.integers(-5, 400).map(str)), where=st.integers(0, 2303))
def test_a_pixel_value_is_accepted_exactly_when_it_is_an_integer_0_to_255(tmp_path, token, where):
    values = ["9"] * 2304
    values[where] = token
    text = " ".join(values)
    path = tmp_path / "fer.csv"
    path.write_bytes(fer_csv([("3", text, "Training")]))
    tokens = text.split()
    if len(tokens) == 2304 and all(_plain_int(t, 255) for t in tokens):
        assert read_or_refuse(path) is None
        assert int(load_dataset(path).pixels.ravel()[where]) == int(token)
    else:
        message = read_or_refuse(path)
        assert message is not None and message.startswith(f"{path}, row 2: "), token
        assert "expected 2304" in message


@FUZZ
@given(label=st.one_of(_FIELD, st.integers(-3, 12).map(str)))
def test_a_label_is_accepted_exactly_when_it_is_an_integer_0_to_6(tmp_path, label):
    path = tmp_path / "fer.csv"
    path.write_bytes(fer_csv([(label, " ".join(["5"] * 2304), "Training")]))
    if _plain_int(label.strip(), 6):
        assert load_dataset(path).labels.tolist() == [int(label)]
    else:
        message = read_or_refuse(path)
        assert message is not None and message.startswith(f"{path}, row 2: unknown label "), label


@FUZZ
@given(vote=st.one_of(_FIELD, st.integers(-3, 20).map(str)), column=st.integers(0, len(FERPLUS_COLUMNS) - 1))
def test_a_vote_count_is_accepted_exactly_when_it_is_a_whole_number(tmp_path, vote, column):
    votes = ["1"] * len(FERPLUS_COLUMNS)
    votes[column] = vote
    path = tmp_path / "votes-new.csv"
    path.write_text(FERPLUS_HEADER + "\nTraining,a.png," + ",".join(votes) + "\n", encoding="utf-8")
    if _plain_int(vote.strip(), 10**9 - 1):
        assert read_ferplus_votes(path)[0, column] == int(vote)
    else:
        message = read_or_refuse(path)
        assert message is not None and message.startswith(f"{path}, row 2: "), vote



@FUZZ
@given(n=st.integers(1, 4), dtype=st.sampled_from(["uint8", "int16", "int64", "float32", "bool"]), data=st.data())
def test_compact_arrays_are_accepted_exactly_when_every_value_is_in_range(tmp_path, n, dtype, data):
    def arr(shape, elements):
        if dtype == "bool":
            return data.draw(hnp.arrays(np.bool_, shape))
        if dtype == "uint8":
            elements = elements.filter(lambda v: 0 <= v <= 255)
        return data.draw(hnp.arrays(np.dtype(dtype), shape, elements=elements))

    pixels = np.full((n, 48, 48), 7, dtype)  # one drawn value at one drawn place: drawing 2,304 n values is slow
    value = data.draw(st.sampled_from([0, 255] if dtype in ("uint8", "bool") else [0, 255, 256, -1]))
    pixels.flat[data.draw(st.integers(0, pixels.size - 1))] = value
    emotion, usage = arr((n,), st.integers(-1, 8)), arr((n,), st.integers(-1, 4))
    path = tmp_path / "fer.npz"
    path.write_bytes(npz(pixels=pixels, emotion=emotion, usage=usage))
    integral = dtype in ("uint8", "int16", "int64")
    fits = integral and all(((a >= 0) & (a <= top)).all() for a, top in ((pixels, 255), (emotion, 6), (usage, 2)))
    message = read_or_refuse(path)
    assert (message is None) == fits, message
    if fits:
        ds = load_dataset(path)
        assert (ds.pixels == pixels).all() and ds.labels.tolist() == emotion.tolist()
        assert ds.usage.tolist() == [SPLITS[u] for u in usage]
