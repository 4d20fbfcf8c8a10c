"""MkDocs hook: generate reference tables from the code so the docs cannot drift."""

from __future__ import annotations

from typing import Any

from oauth_sessions.settings import PREFIX, SETTINGS


def _settings_table() -> str:
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for s in SETTINGS:
        default = "required" if s.required else f"`{s.default!r}`"
        rows.append(f"| `{PREFIX}{s.name}` | {default} | {s.doc} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return markdown.replace("<!-- settings-table -->", _settings_table())
