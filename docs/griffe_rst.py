"""Griffe extension: render the library's Sphinx-flavoured docstrings as Markdown.

The docstrings are written for ``help()`` and Sphinx: ``:class:`~a.B``` roles, ``::`` before a
literal block, and simple ``====`` tables. MkDocs renders Markdown, so before mkdocstrings
formats a docstring this rewrites those three constructs (and nothing else): roles become code
spans, a literal block becomes a fenced code block, a simple table a fenced text block that
keeps its alignment. The source files are not touched.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_RULE = re.compile(r"^\s*=+(\s+=+)+\s*$")


def _fence_literal_blocks(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::") and not line.strip().startswith(".."):
            text = line.rstrip()[:-2].rstrip()
            out.append(text + (":" if text and not text.endswith(":") else ""))
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            base = len(line) - len(line.lstrip())
            block: list[str] = []
            while j < len(lines) and (not lines[j].strip()
                                      or len(lines[j]) - len(lines[j].lstrip()) > base):
                block.append(lines[j])
                j += 1
            while block and not block[-1].strip():
                block.pop()
            if block:
                cut = min(len(b) - len(b.lstrip()) for b in block if b.strip())
                out += ["", " " * base + "```", *(" " * base + b[cut:] for b in block),
                        " " * base + "```", ""]
                i = j
                continue
        out.append(line)
        i += 1
    return out


def _next_rule(lines: list[str], start: int) -> int | None:
    for k in range(start, len(lines)):
        if _RULE.match(lines[k]):
            return k
    return None


def _fence_tables(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        if _RULE.match(lines[i]):
            # top rule, rows, rule; and when rows follow that rule at once, it was the header's
            # underline: rows and a bottom rule follow.
            end = _next_rule(lines, i + 1)
            if end is not None and end + 1 < len(lines) and lines[end + 1].strip():
                end = _next_rule(lines, end + 1) or end
            if end is not None:
                out += ["```text", *lines[i:end + 1], "```"]
                i = end + 1
                continue
        out.append(lines[i])
        i += 1
    return out


def markdown_from_rst(text: str) -> str:
    lines = _fence_tables(_fence_literal_blocks(text.splitlines()))
    return _ROLE.sub(r"`\1`", "\n".join(lines))


class RstToMarkdown(Extension):
    def on_instance(self, *, obj: Object, **_: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_from_rst(obj.docstring.value)
