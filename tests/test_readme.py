"""The README as a newcomer reads it: every repository path it names exists in a clone (#9, #14)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GENERATED = ("benchmarks/results/",)  # outputs the documented commands write (git-ignored)
TEXTS = ["README.md", "benchmarks/README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]


def named_paths(text: str) -> set[str]:
    """Paths in code spans, code blocks and links that start with a top-level folder of the repository."""
    candidates = re.findall(r"[`(\s]((?:configs|docs|benchmarks|src|tests|\.ci)/[A-Za-z0-9_./*-]+)", text)
    return {c.rstrip(".,)") for c in candidates if not c.endswith("/")}


@pytest.mark.parametrize("doc", TEXTS)
def test_every_path_a_document_names_exists(doc: str) -> None:
    missing = []
    for path in sorted(named_paths((REPO / doc).read_text(encoding="utf-8"))):
        if path.startswith(GENERATED):
            continue
        if "*" in path or "<" in path:
            if not list(REPO.glob(path.split("<")[0].rstrip("/") or ".")):
                missing.append(path)
        elif not (REPO / path).exists():
            missing.append(path)
    assert not missing, f"{doc} names paths that are not in the repository: {missing}"


def test_shipped_configs_are_real_files() -> None:
    configs = sorted((REPO / "configs").glob("*.yaml"))
    assert len(configs) >= 17 and all(p.is_file() and not p.is_symlink() for p in configs)
