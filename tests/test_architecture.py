"""The package layout as docs/architecture.md lists it (issue 16): the page cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

import oauth_sessions

PACKAGE = Path(oauth_sessions.__file__).resolve().parent
PAGE = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"
LINE = re.compile(r"^- `([\w/]+\.py)`: \S")


def _modules_on_disk() -> set[str]:
    return {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
            if "migrations" not in p.relative_to(PACKAGE).parts}


def _modules_on_page(text: str) -> list[str]:
    section = text.split("## Modules", 1)[1].split("\n## ", 1)[0]
    return [m.group(1) for line in section.splitlines() if (m := LINE.match(line))]


def test_issue16_every_module_has_one_line_on_the_architecture_page() -> None:
    listed = _modules_on_page(PAGE.read_text(encoding="utf-8"))
    missing = _modules_on_disk() - set(listed)
    assert not missing, f"modules missing from docs/architecture.md: {sorted(missing)}"
    assert len(listed) == len(set(listed)), "a module is listed twice"


def test_issue16_every_line_of_the_architecture_page_names_a_module() -> None:
    stale = set(_modules_on_page(PAGE.read_text(encoding="utf-8"))) - _modules_on_disk()
    assert not stale, f"docs/architecture.md names modules that do not exist: {sorted(stale)}"


def test_issue16_the_drift_check_sees_a_missing_and_a_stale_line() -> None:
    text = PAGE.read_text(encoding="utf-8")
    without = "\n".join(line for line in text.splitlines() if not line.startswith("- `core/policy.py`"))
    assert "core/policy.py" not in _modules_on_page(without)
    stale = text.replace("## Modules\n", "## Modules\n\n- `core/gone.py`: removed.\n", 1)
    assert "core/gone.py" in _modules_on_page(stale)
