"""``dbrunbook lint``: review a migration's SQL with the coded lint rules."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from dbrunbook.core.results import SEVERITIES, Finding
from dbrunbook.dialects import supported
from dbrunbook.errors import EXIT_BLOCKED

_FORMATS = ("text", "json", "github")
_GITHUB_LEVEL = {"info": "notice", "warn": "warning", "block": "error"}


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def render(findings: list[Finding], fmt: str) -> str:
    """Findings as text lines, one JSON document, or GitHub workflow annotations."""
    if fmt == "json":
        return json.dumps([f.__dict__ for f in findings], indent=2, default=str)
    lines = []
    for f in findings:
        source, line = f.evidence.get("source", ""), f.evidence.get("line", 1)
        if fmt == "github":
            where = f"file={source},line={line}," if source and Path(source).is_file() else ""
            lines.append(f"::{_GITHUB_LEVEL[f.severity]} {where}title={f.code} {f.object}::"
                         f"{_escape(f.message + ' - fix: ' + f.fix)}")
        else:
            lines.append(f"{source}:{line}: {f.severity} {f.code} [{f.object}] {f.message}\n    fix: {f.fix}")
    return "\n".join(lines)


def _check_database(project: Path, db: str | None, alembic_config: str | None) -> None:
    """Revisions are linted from the database's revision: an unreachable server is exit 5, said first."""
    from dbrunbook.core.config import load_target
    from dbrunbook.core.db import check_connection, make_engine
    from dbrunbook.errors import ConfigError

    try:
        target = load_target(project, db=db, alembic_config=alembic_config)
    except ConfigError:
        return  # lint_targets says what is missing, in its own words
    with target.environment():  # the password is lent, as for the lint itself
        engine = make_engine(target.db)
        try:
            check_connection(engine)
        finally:
            engine.dispose()


@click.command("lint")
@click.argument("targets", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="text", show_default=True)
@click.option("--fail-on", type=click.Choice(SEVERITIES), default=None,
              help="Exit 1 when a finding is at or above this severity (default: fail_on in config, else block).")
@click.option("--dialect", type=click.Choice(supported()), default=None,
              help="Dialect of .sql files (default: the configured database's, else postgresql).")
@click.option("--db", envvar="DBRUNBOOK_DB", help="Target database URL, for revisions (or env DBRUNBOOK_DB).")
@click.option("--alembic-config", type=click.Path(), help="The project's alembic.ini.")
@click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              help="Project root holding pyproject.toml [tool.dbrunbook].")
@click.option("--include", multiple=True, help="Only rules matching this code or name pattern.")
@click.option("--exclude", multiple=True, help="Skip rules matching this code or name pattern.")
def command(targets: tuple[str, ...], fmt: str, fail_on: str | None, dialect: str | None, db: str | None,
            alembic_config: str | None, project: Path, include: tuple[str, ...], exclude: tuple[str, ...]) -> None:
    """Lint migrations: REVISION, RANGE (A:B), revision FILE.py or FILE.sql; no argument lints pending revisions."""
    from dbrunbook.lint.cli import lint_targets

    if not targets or any(not t.endswith(".sql") for t in targets):
        _check_database(project, db, alembic_config)
    report = lint_targets(list(targets), project=project, db=db, alembic_config=alembic_config, dialect=dialect,
                          include=include, exclude=exclude)
    output = render(report.findings, fmt)
    if output:
        click.echo(output)
    threshold = fail_on or report.fail_on
    failing = [f for f in report.findings if SEVERITIES.index(f.severity) >= SEVERITIES.index(threshold)]
    if fmt == "text":
        click.echo(f"{len(report.findings)} finding(s), {len(report.silenced)} silenced, "
                   f"{len(failing)} at or above {threshold}", err=True)
    if failing:
        sys.exit(EXIT_BLOCKED)

