"""One way to register a component, and a README that lists what is registered.

Every registry (fusions, encoders, context stages, dataset adapters, extractors, regression losses) imports a tuple of
module names on its first lookup, and each module registers its own classes with a decorator: a new
component is one module plus one line in that tuple. The README's lists are read back and compared
with the registries and with the names of :class:`affectfusion.rundir.RunPaths`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from affectfusion.data import DATASETS
from affectfusion.extract import EXTRACTORS
from affectfusion.models import CONTEXTS, ENCODERS, FUSIONS
from affectfusion.registry import Registry
from affectfusion.training.losses import REGRESSION_LOSSES

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
README = (REPO / "README.md").read_text(encoding="utf-8")
REGISTRIES: dict[str, Registry] = {
    "FUSIONS": FUSIONS,
    "ENCODERS": ENCODERS,
    "CONTEXTS": CONTEXTS,
    "DATASETS": DATASETS,
    "EXTRACTORS": EXTRACTORS,
    "REGRESSION_LOSSES": REGRESSION_LOSSES,
}


def registrations() -> dict[str, dict[str, set[str]]]:
    """Registry variable -> module of src/ -> the names it registers (``@NAME.register("name")``)."""
    found: dict[str, dict[str, set[str]]] = {name: {} for name in REGISTRIES}
    for path in sorted((SRC / "affectfusion").rglob("*.py")):
        module = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "register"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in found
            ):
                names = found[node.func.value.id].setdefault(module, set())
                if node.args and isinstance(node.args[0], ast.Constant):
                    names.add(str(node.args[0].value))
    return found


@pytest.mark.parametrize("name", sorted(REGISTRIES))
def test_every_registering_module_is_in_its_registrys_tuple(name: str) -> None:
    """A module that registers components is imported by the registry itself, so no package needs an
    import list for it, and a component is never missing because nobody imported its module yet."""
    registering = registrations()[name]
    assert registering, f"no module registers into {name}"
    assert set(registering) == set(REGISTRIES[name].modules), f"{name}: modules and registry tuple differ"
    declared = set().union(*registering.values())
    assert declared == set(REGISTRIES[name].names()), f"{name}: in the source {sorted(declared)}, registered"


def test_no_package_imports_modules_only_to_register_them() -> None:
    """The other style (``from pkg import a, b  # noqa: F401`` so that they register) is gone."""
    offenders = [
        f"{path.relative_to(SRC)}:{n}"
        for path in sorted((SRC / "affectfusion").rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "noqa: F401" in line and "regist" in line
    ]
    assert not offenders, offenders


def backticked(text: str) -> set[str]:
    return set(re.findall(r"`([a-z0-9_]+)`", text))


def between(start: str, end: str) -> str:
    """The README's text from ``start`` to the next ``end``."""
    assert start in README, start
    rest = README.split(start, 1)[1]
    assert end in rest, end
    return rest.split(end, 1)[0]


def test_readme_lists_every_extractor() -> None:
    listed = between("affectfusion list extractors", "\n").split("#", 1)[1]
    assert {n.strip() for n in listed.split(",")} == set(EXTRACTORS.names())


def test_readme_lists_every_dataset_adapter() -> None:
    assert backticked(between("Raw-data adapters:", "Multi-label")) == set(DATASETS.names())


def test_readme_lists_every_fusion_and_encoder() -> None:
    assert backticked(between("Fusion strategies (`affectfusion list fusions`):", "`model.fusion")) == set(
        FUSIONS.names()
    )
    assert backticked(between("| models | `models/` | encoders (", ")")) == set(ENCODERS.names())


def run_folder_names() -> set[str]:
    """Every file and folder name :class:`RunPaths` joins onto a run's path (read from its source)."""
    tree = ast.parse((SRC / "affectfusion" / "rundir" / "paths.py").read_text(encoding="utf-8"))
    run_paths = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RunPaths")
    constants = {
        t.id: str(n.value.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    names = set()
    for node in ast.walk(run_paths):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            names.add(str(node.value.value))
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            if isinstance(node.right, ast.Constant):
                names.add(str(node.right.value))
            elif isinstance(node.right, ast.JoinedStr):
                names.add("".join(str(v.value) if isinstance(v, ast.Constant) else "<>" for v in node.right.values))
            elif isinstance(node.right, ast.Name) and node.right.id in constants:  # HTML_REPORT
                names.add(constants[node.right.id])
    return names


def test_readme_run_directory_lists_every_run_file() -> None:
    listing = between("### Run directory\n\n```", "```")
    assert "config.yaml" in run_folder_names() and "last.ema.safetensors" in run_folder_names()
    missing = []
    for name in sorted(run_folder_names()):
        pattern = re.escape(name).replace("<>", "<[a-z]+>")
        if not re.search(rf"(?<![\w.]){pattern}(?![\w])", listing):
            missing.append(name)
    assert not missing, f"README's run directory listing misses {missing}"
