"""MkDocs hook: generate the reference pages from the code so the docs cannot drift.

Each placeholder comment in a page is replaced by a table built from the thing it describes:

* ``<!-- settings-table -->``: :data:`oauth_sessions.core.settings.SETTINGS` (key, default, meaning)
  with the type taken from the annotations of :class:`oauth_sessions.core.settings.Settings`;
* ``<!-- cli-reference -->``: every command of the ``flask oauth-sessions`` click group, its
  arguments and options with their help text, walked recursively;
* ``<!-- http-reference -->``: every operation of ``oauth_sessions/openapi.yaml``;
* ``<!-- signals-table -->``: every signal in ``oauth_sessions.core.signals.__all__`` with the keyword
  arguments its module docstring says it is sent with.

A command, endpoint or signal without a description makes the build fail (``strict``), so a new
one cannot be added without documenting it.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any

import click
import yaml

import oauth_sessions
from oauth_sessions.core import signals
from oauth_sessions.core.settings import PREFIX, SETTINGS, Settings
from oauth_sessions.flask.cli import cli

PACKAGE = Path(oauth_sessions.__file__).resolve().parent  # the code being documented


class DocsDriftError(RuntimeError):
    """A generated reference would be incomplete: fail the build rather than publish it."""


def _rst_to_md(text: str) -> str:
    """Docstrings are Sphinx-flavoured: ``x`` and :class:`~a.B` become Markdown code spans."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def _cell(text: str) -> str:
    return " ".join(_rst_to_md(text).split()).replace("|", "\\|")


def _type_name(annotation: Any) -> str:
    """``dict[str, Aal]``, ``int | None``: the annotation as a reader writes it."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is None or not args:
        return "None" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))
    names = [_type_name(a) for a in args]
    if origin in (typing.Union, types.UnionType):
        return " | ".join(names)
    return f"{getattr(origin, '__name__', str(origin))}[{', '.join(names)}]"


# --------------------------------------------------------------------------- settings


def _settings_table() -> str:
    hints = typing.get_type_hints(Settings)
    fields = {f.name for f in dataclasses.fields(Settings)}
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        attr = s.name.lower()
        if attr not in fields:
            raise DocsDriftError(f"setting {s.name} has no field {attr} on Settings")
        kind = _type_name(hints[attr])
        default = "required" if s.required else f"`{s.default!r}`"
        rows.append(f"| `{PREFIX}{s.name}` | `{_cell(kind)}` | {default} | {_cell(s.doc)} |")
    return "\n".join(rows)


# --------------------------------------------------------------------------- CLI


def _param_line(param: click.Parameter) -> str:
    if isinstance(param, click.Argument):
        required = "required" if param.required else f"default `{param.default}`"
        return f"- `{param.human_readable_name}` (argument, {required})"
    assert isinstance(param, click.Option)
    names = ", ".join(f"`{o}`" for o in param.opts)
    kind = ""
    if isinstance(param.type, click.Choice):
        kind = " one of " + ", ".join(f"`{c}`" for c in param.type.choices)
    extras = []
    if param.required:
        extras.append("required")
    if param.multiple:
        extras.append("repeatable")
    if isinstance(param.default, str | int) and not param.is_flag and param.default is not False:
        extras.append(f"default `{param.default}`")
    extra = f" ({', '.join(extras)})" if extras else ""
    return f"- {names}{kind}{extra}: {_cell(param.help or '')}"


def _command_docs(command: click.Command, path: str, out: list[str]) -> None:
    ctx = click.Context(command, info_name=path)
    help_text = (command.help or "").strip()
    if not help_text:
        raise DocsDriftError(f"CLI command `{path}` has no help text")
    if isinstance(command, click.Group):
        for name in sorted(command.list_commands(ctx)):
            sub = command.get_command(ctx, name)
            if sub is not None:
                _command_docs(sub, f"{path} {name}", out)
        return
    usage = " ".join(command.collect_usage_pieces(ctx))
    out.append(f"### `{path}`\n")
    out.append(f"```sh\nflask {path} {usage}\n```\n")
    out.append(click.unstyle(help_text).replace("``", "`") + "\n")
    params = [p for p in command.params if p.name != "help"]
    if params:
        out.append("\n".join(_param_line(p) for p in params) + "\n")


def _cli_reference() -> str:
    out: list[str] = []
    _command_docs(cli, cli.name or "oauth-sessions", out)
    return "\n".join(out)


# --------------------------------------------------------------------------- HTTP


def _openapi() -> dict[str, Any]:
    text = (PACKAGE / "openapi.yaml").read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise DocsDriftError("openapi.yaml is not a mapping")
    return doc


def _schema_type(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    return f"{schema.get('type', 'any')}"


def _http_reference() -> str:
    doc = _openapi()
    out = [_cell(doc["info"].get("summary", "")) + "\n",
           doc["info"].get("description", "").strip() + "\n"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            summary = op.get("summary")
            if not summary:
                raise DocsDriftError(f"{method.upper()} {path} has no summary in openapi.yaml")
            out.append(f"### `{method.upper()} {path}`\n")
            out.append(_cell(summary) + "\n")
            if op.get("description"):
                out.append(op["description"].strip() + "\n")
            params = [p for p in op.get("parameters", []) if "$ref" not in p]
            body = (op.get("requestBody", {}).get("content", {})
                    .get("application/x-www-form-urlencoded", {}).get("schema", {}))
            form = body.get("properties", {})
            if params or form:
                out.append("| parameter | in | type |\n|---|---|---|")
                rows = [f"| `{p['name']}` | {p['in']} | {_schema_type(p.get('schema', {}))} |"
                        for p in params]
                required = set(body.get("required", []))
                rows += [f"| `{name}`{' (required)' if name in required else ''} | form body | "
                         f"{_schema_type(schema)} |" for name, schema in form.items()]
                out.append("\n".join(rows) + "\n")
            statuses = ", ".join(f"`{code}`" for code in op.get("responses", {}))
            out.append(f"Responses: {statuses}\n")
    return "\n".join(out)


# --------------------------------------------------------------------------- signals


def _signal_kwargs() -> dict[str, str]:
    """The RST table of the module docstring: ``name`` then what it is sent with."""
    found: dict[str, str] = {}
    current = None
    for line in (signals.__doc__ or "").splitlines():
        match = re.match(r"^``(\w+)``\s+(.*)$", line)
        if match:
            current = match.group(1)
            found[current] = match.group(2).strip()
        elif current and line.startswith(" ") and line.strip() and not line.startswith("="):
            found[current] += " " + line.strip()
        else:
            current = None
    return found


def _signals_table() -> str:
    kwargs = _signal_kwargs()
    rows = ["| signal | blinker name | sent with |", "|---|---|---|"]
    for name in signals.__all__:
        sig = getattr(signals, name)
        if name not in kwargs:
            raise DocsDriftError(f"signal {name} is not described in oauth_sessions/core/signals.py")
        rows.append(f"| `{name}` | `{sig.name}` | {_cell(kwargs[name])} |")
    return "\n".join(rows)


GENERATORS = {
    "<!-- settings-table -->": _settings_table,
    "<!-- cli-reference -->": _cli_reference,
    "<!-- http-reference -->": _http_reference,
    "<!-- signals-table -->": _signals_table,
}


def on_page_markdown(markdown: str, **_: Any) -> str:
    for marker, generate in GENERATORS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, generate())
    return markdown
