"""``dbrunbook diff SOURCE TARGET``: the schema changes from one side to the other.

Each side is a database URL, a ``module:attr`` of models, or a saved snapshot JSON file. Exit
status: 0 on success whatever the differences, unless ``--exit-code`` is given, then 1 when
there are differences (like ``git diff --exit-code``); 2 for bad input, 5 for an unreachable server.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dbrunbook.dialects import supported
from dbrunbook.errors import UsageError

if TYPE_CHECKING:
    from dbrunbook.schema import SchemaDiff


def render_text(result: SchemaDiff) -> str:
    """The changes as aligned text lines, then rename hints."""
    if not result.changes and not result.hints:
        return "no differences"
    lines = [f"{c.kind:11} {c.op:20} {c.object:32} {c.detail}"
             + "".join(f"\n{'':11} ^ {d['type']} {d['name']}{' (breaks)' if d['breaks'] else ''}"
                       for d in c.dependencies)
             for c in result.changes]
    lines += [f"rename hint {h.what} {h.table + '.' if h.what == 'column' else ''}{h.old} -> {h.new} "
              f"(confidence {h.confidence:.2f}; confirm with renames {h.config})" for h in result.hints]
    return "\n".join(lines)


@click.command("diff")
@click.argument("source")
@click.argument("target")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Aligned text lines, or the changes and rename hints as JSON.")
@click.option("--dialect", type=click.Choice(supported()),
              help="Dialect to render models for (default: the other side's; SQLite when both are models).")
@click.option("--rename", "renames", multiple=True, metavar="OLD=NEW",
              help="A confirmed rename (table or table.column).")
@click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              help="Project root for importing models and reading [tool.dbrunbook] renames.")
@click.option("--exit-code", is_flag=True, help="Exit 1 when there are differences.")
def command(source: str, target: str, fmt: str, dialect: str | None, renames: tuple[str, ...], project: Path,
            exit_code: bool) -> None:
    """Show the schema changes from SOURCE to TARGET (each a URL, module:attr or snapshot file)."""
    # imported here, not above: `dbrunbook --help` loads every command module for its one-line help
    from dbrunbook.core.config import load_renames
    from dbrunbook.schema import diff_specs

    confirmed = load_renames(project)
    for item in renames:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            raise UsageError(f"--rename wants OLD=NEW, not {item!r}")
        confirmed[old] = new
    result = diff_specs(source, target, confirmed, dialect=dialect, project_dir=project)
    click.echo(json.dumps(result.to_json(), indent=2, default=str) if fmt == "json" else render_text(result))
    if exit_code and (result.changes or result.hints):
        sys.exit(1)
