"""CI runs what a contributor runs: ``.ci/run`` is the README's test command, which checks lint,
format and types before the tests, and the pre-commit hooks run the same checks."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CHECKS = (
    ".venv/bin/ruff check src tests benchmarks",
    ".venv/bin/ruff format --check src tests benchmarks",
    ".venv/bin/mypy",
    ".venv/bin/pytest",
)


def readme_test_command() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(r"\*\*Run the tests\*\*.*?```bash\n(.*?)\n```", readme, re.S)
    assert found, "README.md has no bash block under **Run the tests**"
    return found.group(1).strip()


def ci_command() -> str:
    lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")][-1].strip()


def test_ci_runs_the_readme_test_command() -> None:
    assert ci_command() == readme_test_command()


def test_test_command_checks_before_testing_and_stops_at_the_first_failure() -> None:
    steps = [s.strip() for s in readme_test_command().split(" && ")]
    assert tuple(steps[-len(CHECKS) :]) == CHECKS


def test_pre_commit_hooks_run_the_same_checks() -> None:
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    hooks = [h for repo in config["repos"] for h in repo["hooks"]]
    assert all(repo["repo"] == "local" for repo in config["repos"]), "local hooks only: nothing to download"
    entries = {" ".join([h["entry"], *h.get("args", [])]) for h in hooks}
    assert entries == {c for c in CHECKS if not c.endswith("pytest")}
    assert all(h.get("pass_filenames") is False for h in hooks), "each hook checks the whole tree, as CI does"
