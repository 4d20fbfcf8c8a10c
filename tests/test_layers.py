"""The package's import structure (issue 16): no cycles, no hidden imports, layers one way.

Read from the source with :mod:`ast`, so nothing is imported to check it. An import inside a
function counts as an edge of the graph like any other; ``if TYPE_CHECKING:`` imports do not
(they never run).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import oauth_sessions

PACKAGE = Path(oauth_sessions.__file__).resolve().parent

#: Lowest first. A module may import its own layer and the layers below it.
LAYERS = ("jose", "core", "storage", "protocol", "flask")
#: Third-party packages a core/ module must not import (rules know no web framework, no SQL,
#: no OAuth library, no database driver).
NOT_IN_CORE = ("flask", "werkzeug", "sqlalchemy", "authlib", "psycopg", "alembic")
#: What a protocol/ handler must not import: the web framework of one way in, and SQL (its
#: statements live in storage/, behind the stores it is given).
NOT_IN_PROTOCOL = ("flask", "sqlalchemy", "psycopg", "alembic")
#: Imports inside functions that are allowed: optional dependencies only.
OPTIONAL = {
    ("oauth_sessions.flask.ratelimit", "flask_limiter"),  # the [ratelimit] extra
    ("oauth_sessions.flask.resource", "oauth_sessions.flask.resource_remote"),  # needs requests
}


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    in_function: bool


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _imports_of(module: str, path: Path, known: set[str]) -> list[Import]:
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for sub in child.orelse:
                    visit(sub, in_function)
                continue
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend(Import(module, a.name, child.lineno, nested) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(module, path.name == "__init__.py", child.level, child.module)
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    found.append(Import(module, sub if sub in known else base, child.lineno, nested))
            visit(child, nested)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


def _all_imports() -> list[Import]:
    modules = _modules()
    known = set(modules)
    return [i for name, path in sorted(modules.items()) for i in _imports_of(name, path, known)]


def _internal_graph(imports: list[Import]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in _modules()}
    for i in imports:
        if i.target in graph and i.target != i.source and not _is_parent(i.target, i.source):
            graph[i.source].add(i.target)
    return graph


def _is_parent(package: str, module: str) -> bool:
    return module.startswith(package + ".")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_issue16_the_package_has_no_import_cycle() -> None:
    assert _cycles(_internal_graph(_all_imports())) == []


def test_issue16_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_issue16_no_imports_inside_functions_except_optional_dependencies() -> None:
    hidden = {(i.source, i.target) for i in _all_imports() if i.in_function}
    assert hidden - OPTIONAL == set()


def test_issue16_core_imports_no_flask_sql_or_authlib() -> None:
    offending = [(i.source, i.target) for i in _all_imports()
                 if _layer(i.source) == LAYERS.index("core")
                 and i.target.split(".")[0] in NOT_IN_CORE]
    assert offending == []


def test_issue16_protocol_imports_no_flask_and_no_sql() -> None:
    offending = [(i.source, i.target) for i in _all_imports()
                 if _layer(i.source) == LAYERS.index("protocol")
                 and i.target.split(".")[0] in NOT_IN_PROTOCOL]
    assert offending == []


def test_issue16_the_protocol_check_sees_sql_and_flask(tmp_path: Path) -> None:
    path = tmp_path / "handler.py"
    path.write_text("from sqlalchemy import insert\nimport flask\nfrom werkzeug.http import dump_header\n")
    found = _imports_of("oauth_sessions.protocol.handler", path, set())
    assert {i.target.split(".")[0] for i in found} & set(NOT_IN_PROTOCOL) == {"sqlalchemy", "flask"}


def test_issue16_the_core_check_sees_a_flask_import(tmp_path: Path) -> None:
    path = tmp_path / "rule.py"
    path.write_text("from flask import request\nimport sqlalchemy.orm\n")
    targets = {i.target.split(".")[0] for i in _imports_of("oauth_sessions.core.rule", path, set())}
    assert targets & set(NOT_IN_CORE) == {"flask", "sqlalchemy"}


def _upward(imports: list[Import]) -> set[tuple[str, str]]:
    """The imports from a module to a higher layer than its own."""
    upward = set()
    for i in imports:
        source, target = _layer(i.source), _layer(i.target)
        if source is not None and target is not None and target > source:
            upward.add((i.source, i.target))
    return upward


def test_issue16_layers_import_downward_only() -> None:
    assert _upward(_all_imports()) == set()


def test_issue16_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    path = tmp_path / "users.py"
    path.write_text("from ..flask.state import get_state\nfrom .models import User\n")
    known = {"oauth_sessions.flask.state", "oauth_sessions.storage.models"}
    found = _imports_of("oauth_sessions.storage.users", path, known)
    assert _upward(found) == {("oauth_sessions.storage.users", "oauth_sessions.flask.state")}
