"""Every name of a run folder lives in ``affectfusion.rundir.paths``: the rest of ``src/`` asks it for paths.

The names are read from that module's own source (each string joined onto a path with ``/``, or a
class-level name), so a name added there is guarded here at once. Elsewhere a guarded name may not be
joined onto a path, given to ``Path(...)``, or (a file name) appear as a string at all.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "affectfusion"
NAMES_MODULE = SRC / "rundir" / "paths.py"
# Modules that may spell a guarded name, each with its reason.
ALLOWED: dict[str, str] = {
    "affectfusion/data/feature_folder.py": "the feature-folder format's default manifest (a data format, below "
    "rundir; the specialists' export writes that format)",
    "affectfusion/serve/dashboard/app.py": "the file name a browser suggests for a batch-predictions download",
}


def pattern(node: ast.AST) -> str | None:
    """A string constant's value, or an f-string with ``{}`` for each value put in; None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            str(v.value) if isinstance(v, ast.Constant) else "{}" for v in node.values
        )  # FormattedValue -> {}
    return None


def path_parts(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string joined onto a path (``x / "name"``, ``"name" / x``) or given to ``Path("name")``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            operands = [node.left, node.right]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Path":
            operands = list(node.args)
        else:
            continue
        found += [(node.lineno, p) for p in map(pattern, operands) if p is not None]
    return found


def defined_names() -> set[str]:
    tree = ast.parse(NAMES_MODULE.read_text(encoding="utf-8"))
    names = {p for _, p in path_parts(tree)}
    for node in ast.walk(tree):  # class-level names (METRICS = "metrics.json")
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.Assign) and (p := pattern(item.value)) is not None:
                    names.add(p)
    return {part for name in names for part in name.split("/") if part and part != "{}"}


NAMES = defined_names()
FILE_NAMES = {n for n in NAMES if "." in n.strip(".")}


def test_the_names_module_defines_the_run_folder_names() -> None:
    """The guard reads real names (a refactor that hid them from it would make the test below vacuous)."""
    for name in ("config.yaml", "meta.json", "metrics.json", "checkpoints", "comparison", "seeds", "seed{}"):
        assert name in NAMES, name
    for name in ("fusion", "specialists", "runs", "cv.json", "tune.json", "fold{}"):
        assert name in NAMES, name


def violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and n.body
        and isinstance(n.body[0], ast.Expr)
    }
    out = [
        f"{line}: {text!r} joined onto a path"
        for line, text in path_parts(tree)
        if any(part in NAMES for part in text.split("/"))
    ]
    parts_of_fstrings = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        text = pattern(node)
        if text is None or not isinstance(node, ast.expr) or id(node) in docstrings | parts_of_fstrings:
            continue
        if text in FILE_NAMES or any(text.endswith("/" + f) for f in FILE_NAMES):
            out.append(f"{node.lineno}: file name {text!r}")
    return sorted(set(out))


def test_no_run_folder_name_outside_rundir() -> None:
    offenders = [
        f"{path.relative_to(SRC.parent)}:{v}"
        for path in sorted(SRC.rglob("*.py"))
        if (SRC / "rundir") not in path.parents and str(path.relative_to(SRC.parent)) not in ALLOWED
        for v in violations(path)
    ]
    assert not offenders, "ask affectfusion.rundir for these paths:\n" + "\n".join(offenders)
