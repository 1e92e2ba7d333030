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
