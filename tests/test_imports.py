"""The package's imports point one way: every module of src/ferkit parsed with ast, every import statement read
(at module level and inside functions alike: an import in a function is an arrow all the same, only a later one),
and the graph between ferkit's modules has no cycle. No `__import__` or importlib strings hide an arrow."""
from __future__ import annotations

import ast
from pathlib import Path

import ferkit

PACKAGE = Path(ferkit.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["ferkit", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of `from <level dots><name> import ...` written in `module`."""
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _edges(module: str, path: Path) -> set[str]:
    """The ferkit modules `module` imports: `import a.b`, `from a import b` (the module a.b when it is one, else a)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in MODULES:  # `import ferkit.x.y` names y's module; a name from a module: the module
                t = t.rpartition(".")[0]
            if t and t != module:
                found.add(t)
    return found


GRAPH = {m: _edges(m, p) for m, p in MODULES.items()}


def _cycle() -> list[str] | None:
    """One cycle of the graph (as the list of its modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(GRAPH[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(GRAPH):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_the_walk_sees_the_packages_modules_and_their_imports():
    assert {"ferkit.cli", "ferkit.records", "ferkit.frames", "ferkit.batch.work", "ferkit.video"} <= set(MODULES)
    assert "ferkit.records" in GRAPH["ferkit.video"] and "ferkit.frames" in GRAPH["ferkit.batch.work"]  # in a function


def test_the_import_graph_has_no_cycle():
    cycle = _cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_import_hides_in_a_string():
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                    "__import__", "import_module"):
                raise AssertionError(f"{module}: line {node.lineno} imports by a string")


def test_the_cycle_finder_finds_a_cycle():
    GRAPH["ferkit.frames"].add("ferkit.video")  # video imports frames: with this arrow back, a cycle
    try:
        assert _cycle() is not None
    finally:
        GRAPH["ferkit.frames"].discard("ferkit.video")
