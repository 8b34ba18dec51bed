"""The API's OpenAPI text as API users read it: the docstrings it comes from, turned into markdown.

Route descriptions and the API description are written as reStructuredText docstrings for the
Python docs. ``/docs`` renders markdown, where a Sphinx role stays raw text and a wrapped line that
happens to start with a number and a dot (``500.``) becomes a numbered list.
"""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`(~?)([^`<]+?)(?:\s*<[^`]*>)?`")  # :class:`~a.b.C`, :func:`f <x>`
LITERAL = re.compile(r"``([^`]+)``")
ITEM = re.compile(r"[-*] ")  # the docstrings' lists are bullets; anything else wrapped is a continuation


def _role(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2).strip()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def markdown(text: str) -> str:
    """Roles and ``literals`` as code spans; each paragraph and each bullet on one line (no wrap left
    for a markdown renderer to misread)."""
    text = LITERAL.sub(r"`\1`", ROLE.sub(_role, text))
    paragraphs = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines: list[str] = []
        for raw in block.splitlines():
            line = raw.strip()
            if lines and not ITEM.match(line):
                lines[-1] += f" {line}"
            else:
                lines.append(line)
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def markdown_descriptions(node: Any) -> Any:
    """Every ``description`` string in an OpenAPI document (or part of one) as :func:`markdown`, in place."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                node[key] = markdown(value)
            else:
                markdown_descriptions(value)
    elif isinstance(node, list):
        for value in node:
            markdown_descriptions(value)
    return node
