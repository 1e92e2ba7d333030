"""A fresh clone without ../shared beside it runs the whole suite: only the FER-2013 tests may read ../shared (through
conftest.data_dir, which $FERKIT_DATA overrides) and they skip with a reason there. `.ci/run` also runs the suite
once from a clone with no ../shared beside it."""
from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def names_shared(text: str) -> bool:
    return text.strip("/") == "shared" or text.startswith("../shared") or "/shared/" in text


def shared_paths(path: Path) -> list[str]:
    """`file:line` of each string (docstrings aside) in the file that names the shared folder, outside
    conftest.data_dir and conftest.fer_dir (its skip reason), and conftest.mediapipe_bundle (the face models' live
    parity check, which falls back to stored outputs)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    allowed = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name in ("data_dir", "fer_dir", "mediapipe_bundle")
               and path == TESTS / "conftest.py" for n in ast.walk(f)}
    docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    return [f"{path.relative_to(TESTS)}:{node.lineno}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and names_shared(node.value)
            and id(node) not in allowed and id(node) not in docstrings]


def test_only_fer2013_tests_read_the_shared_folder():
    users = [hit for path in sorted(TESTS.rglob("*.py")) if path != Path(__file__) for hit in shared_paths(path)]
    assert users == [], "tests that need ../shared (use examples/, or the fer_dir fixture for FER-2013): " + ", ".join(users)


def test_the_sample_photo_ships_with_the_repository():
    import cv2

    photo = cv2.imread(str(TESTS.parent / "examples" / "astronaut.png"))
    assert photo is not None and photo.shape[:2] == (512, 512)
