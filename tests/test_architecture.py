"""The package's shape, read from its own source: layers only call down, no import cycles, no
library module imports the CLI, no module grows past 400 lines, and every import inside a function
says why it is there."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "affectfusion"

# Lower rank = lower layer; a module may import modules of its own rank or below.
LAYERS: dict[str, int] = {
    "errors": 0,
    "registry": 0,
    "io": 0,
    "config": 0,
    "runkinds": 0,
    "quiet": 0,
    "inputs": 0,
    "threads": 0,
    "device": 0,
    "safe_pickle": 0,
    "data": 1,
    "rundir": 2,
    "runlock": 2,
    "extract": 2,
    "pipeline": 3,
    "models": 3,
    "evaluation": 4,
    "training": 5,
    "recipes": 7,  # each run kind's home (recipes/<kind>/) holds its predictor and dashboard backend too
    "analysis": 7,
    "serve": 7,
    "cli": 8,
}
MAX_LINES = 400
# Modules allowed past MAX_LINES, each with its reason.
LONG_MODULES: dict[str, str] = {}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def imported_modules(name: str, path: Path) -> set[str]:
    """Every affectfusion module ``name`` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # ``from pkg import sub`` depends on the submodule; ``from pkg import name`` on the package.
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in MODULES and t != name}
    return found


GRAPH = {name: imported_modules(name, path) for name, path in MODULES.items()}


def layer(name: str) -> int | None:
    parts = name.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_every_subpackage_and_top_module_has_a_layer() -> None:
    unknown = sorted({n.split(".")[1] for n in MODULES if "." in n and layer(n) is None})
    assert not unknown, f"give these a rank in LAYERS: {unknown}"


def test_no_import_cycles() -> None:
    """Tarjan's strongly connected components over the module graph: every one must be a single module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_library_never_imports_the_cli() -> None:
    offenders = sorted(
        f"{name} -> {target}"
        for name, targets in GRAPH.items()
        if not name.startswith(f"{PACKAGE}.cli")
        for target in targets
        if target == f"{PACKAGE}.cli" or target.startswith(f"{PACKAGE}.cli.")
    )
    assert not offenders, offenders


def test_layers_only_call_down() -> None:
    offenders = sorted(
        f"{name} (layer {layer(name)}) -> {target} (layer {layer(target)})"
        for name, targets in GRAPH.items()
        for target in targets
        if layer(name) is not None and layer(target) is not None and layer(target) > layer(name)
    )
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_size(name: str) -> None:
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES or name in LONG_MODULES, f"{name} has {lines} lines (max {MAX_LINES})"


def _unexplained_imports(path: Path) -> list[str]:
    """Imports inside functions without a comment on their line, on the line above, or a ``try:`` that
    turns a missing optional dependency into a clear error."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    out = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        imports = sorted(
            (n for n in ast.walk(fn) if isinstance(n, ast.Import | ast.ImportFrom)), key=lambda n: n.lineno
        )
        previous_end = -10
        for node in imports:
            continues_block = node.lineno <= previous_end + 2
            previous_end = node.end_lineno or node.lineno
            if continues_block:
                continue
            here = lines[node.lineno - 1]
            above = lines[node.lineno - 2].strip()
            if "#" in here or above.startswith("#") or above == "try:":
                continue
            out.append(f"{path.relative_to(SRC)}:{node.lineno}: {here.strip()}")
    return sorted(set(out))


def test_imports_inside_functions_say_why() -> None:
    offenders = [line for path in MODULES.values() for line in _unexplained_imports(path)]
    assert not offenders, "\n".join(offenders)
