"""Source comments and docstrings explain themselves: no pointer to an issue number a reader of the
repository cannot follow (``issue #13``, ``(#9, #14)``)."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "affectfusion"
ISSUE = re.compile(r"(?i)\bissues?\s*#\d+|\(#\d+(?:,\s*#\d+)*\)")


def prose(source: str) -> list[tuple[int, str]]:
    """(line, text) of every comment and docstring."""
    found = [
        (tok.start[0], tok.string)
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    ]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc is not None:
                found.append((getattr(node, "lineno", 1), doc))
    return found


def test_the_pattern_finds_issue_numbers() -> None:
    assert ISSUE.search("# refuses leaking splits (issue #13)") and ISSUE.search("paths in a clone (#9, #14)")
    assert not ISSUE.search("color:#222") and not ISSUE.search("a ``#2`` suffix")


def test_no_issue_numbers_in_src() -> None:
    offenders = [
        f"{path.relative_to(SRC.parent)}:{line}"
        for path in sorted(SRC.rglob("*.py"))
        for line, text in prose(path.read_text(encoding="utf-8"))
        if ISSUE.search(text)
    ]
    assert not offenders, offenders
