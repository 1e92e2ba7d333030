"""The CLI's errors and exit codes live in a leaf module, ferkit.cli.errors: the modules whose subcommands ferkit.cli
registers import them from there, never from ferkit.cli, so the imports point one way (STYLE.md, lesson 18)."""
from __future__ import annotations

import ast
from pathlib import Path

import ferkit

PACKAGE = Path(ferkit.__file__).resolve().parent


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the ferkit modules a file imports (at the top or inside functions)."""
    name = ".".join(("ferkit", *path.relative_to(PACKAGE).with_suffix("").parts))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    if name.endswith(".__init__"):
        name = package = name[: -len(".__init__")]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            found.add(".".join(base + ([node.module] if node.module else [])))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m == "ferkit" or m.startswith("ferkit.")}


def test_no_module_imports_errors_from_the_cli_package():
    allowed = {"ferkit/__main__.py", "ferkit/batch/__main__.py"}   # they run ferkit.cli.main: entry points
    users = sorted(str(path.relative_to(PACKAGE.parent)) for path in PACKAGE.rglob("*.py")
                   if "ferkit.cli" in imported_modules(path) and path.parent != PACKAGE / "cli"
                   and str(path.relative_to(PACKAGE.parent)) not in allowed)
    assert users == [], f"import CommandError and EXIT_* from ferkit.cli.errors, not ferkit.cli: {users}"
    inside = sorted(path.name for path in (PACKAGE / "cli").glob("*.py")
                    if path.name != "__init__.py" and "ferkit.cli" in imported_modules(path))
    assert inside == [], f"the CLI's own modules import from the package itself: {inside}"


def test_errors_is_a_leaf_and_the_cli_still_exports_its_names():
    import ferkit.cli
    import ferkit.cli.errors as errors

    assert imported_modules(PACKAGE / "cli" / "errors.py") == set()
    for name in ("CommandError", "print_error", "EXIT_OK", "EXIT_ERROR", "EXIT_USAGE", "EXIT_NO_FACE",
                 "EXIT_SOME_NO_FACE", "EXIT_INTERRUPTED", "EXIT_BROKEN_PIPE"):
        assert getattr(ferkit.cli, name) is getattr(errors, name)


# ---------------------------------------------------------------- one exit code for a bad adapter
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

ROOT = PACKAGE.parents[1]
PHOTO = ROOT / "examples" / "astronaut.png"


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    import cv2
    import numpy as np

    d = tmp_path_factory.mktemp("adapter")
    (d / "bad.json").write_text('{"format": "something else"}')
    writer = cv2.VideoWriter(str(d / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    return d


COMMANDS = {
    "analyze": lambda d: ["analyze", PHOTO],
    "video": lambda d: ["video", d / "clip.avi", "--out", d / "v", "--no-progress"],
    "live": lambda d: ["live", "--source", d / "clip.avi", "--no-window", "--max-frames", "2"],
    "batch": lambda d: ["batch", PHOTO, "--out", d / "r.csv", "--no-progress"],
    "serve": lambda d: ["serve", "--port", "0"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("head", ["bad.json", "missing.json"])
def test_a_bad_adapter_exits_1_on_every_command(bad_inputs, command, head):
    """A head file that is not one (or is missing) is a bad input file: EXIT_ERROR (1) on every command that takes
    --adapter, with the file named; batch used to say 2 (bad usage)."""
    from ferkit.cli.errors import EXIT_ERROR

    args = [*COMMANDS[command](bad_inputs), "--adapter", bad_inputs / head]
    r = subprocess.run([sys.executable, "-m", "ferkit", *map(str, args)], capture_output=True, text=True, timeout=180)
    assert r.returncode == EXIT_ERROR, (command, r.returncode, r.stderr)
    assert r.stderr.startswith(f"ferkit: {bad_inputs / head}") and "Traceback" not in r.stderr, r.stderr
    assert not (bad_inputs / "r.csv").exists() and "open http" not in r.stdout
