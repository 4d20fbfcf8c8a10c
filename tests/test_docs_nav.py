"""Every page of the documentation is in the site's navigation (issue 19 item 13: the API
reference became one page per area, and a page left out of ``nav`` is a page nobody finds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _nav_pages(entries: Any) -> set[str]:
    found: set[str] = set()
    for entry in entries:
        values = entry.values() if isinstance(entry, dict) else [entry]
        for value in values:
            if isinstance(value, list):
                found |= _nav_pages(value)
            elif isinstance(value, str):
                found.add(value)
    return found


def test_every_markdown_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = _nav_pages(config["nav"])
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")
             if "snippets" not in p.relative_to(DOCS).parts}
    assert pages - nav == set(), "pages missing from mkdocs.yml nav"
    assert nav - pages == set(), "nav entries without a page"


def test_the_api_reference_is_split_by_area() -> None:
    areas = {p.stem for p in (DOCS / "reference" / "api").glob("*.md")}
    assert {"extension", "resource-server", "sessions", "storage", "events", "errors"} <= areas
    overview = (DOCS / "reference" / "api.md").read_text(encoding="utf-8")
    assert ":::" not in overview, "the overview links to the area pages instead of rendering them"
    for area in areas:
        assert f"(api/{area}.md)" in overview
