"""``dbrunbook lint``: review a migration's SQL with the coded lint rules."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from dbrunbook.core.results import SEVERITIES
from dbrunbook.dialects import supported
from dbrunbook.errors import EXIT_BLOCKED, EXIT_USAGE

_FORMATS = ("text", "json", "github", "sarif")


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


def _needs_database(targets: tuple[str, ...], db: str | None) -> bool:
    """Revision ids, ranges and pending revisions read the database; files only when --db is given."""
    if not targets or any(not t.endswith((".sql", ".py")) for t in targets):
        return True
    return bool(db) and any(t.endswith(".py") for t in targets)


@click.command("lint")
@click.argument("targets", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="text", show_default=True,
              help="text, json, github (workflow annotations) or sarif (SARIF 2.1.0, for code scanning).")
@click.option("--fail-on", type=click.Choice(SEVERITIES), default=None,
              help="Exit 1 when a finding is at or above this severity (default: fail_on in config, else block).")
@click.option("--dialect", type=click.Choice(supported()), default=None,
              help="Dialect of .sql and revision files without --db (default: the configured database's, "
                   "else postgresql).")
@click.option("--db", envvar="DBRUNBOOK_DB",
              help="Target database URL (or env DBRUNBOOK_DB): for revisions; with revision files, adds the "
                   "live schema, table sizes and server version.")
@click.option("--alembic-config", type=click.Path(), help="The project's alembic.ini.")
@click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              help="Project root holding pyproject.toml [tool.dbrunbook].")
@click.option("--include", multiple=True, help="Only rules matching this code or name pattern.")
@click.option("--exclude", multiple=True, help="Skip rules matching this code or name pattern.")
@click.option("--assume-in-transaction/--no-assume-in-transaction", default=None,
              help="Treat SQL files as run inside a transaction their runner opens, as Alembic runs revisions "
                   "(default: assume_in_transaction in config, else no).")
@click.option("--pg-version", metavar="N",
              help="PostgreSQL major version the rules judge for (default: pg_version in config, else the "
                   "server's with --db, else 13).")
def command(targets: tuple[str, ...], fmt: str, fail_on: str | None, dialect: str | None, db: str | None,
            alembic_config: str | None, project: Path, include: tuple[str, ...], exclude: tuple[str, ...],
            assume_in_transaction: bool | None, pg_version: str | None) -> None:
    """Lint migrations: REVISION, RANGE (A:B), revision FILE.py or FILE.sql; no argument lints pending revisions.

    A revision file is read offline (no database, no alembic.ini) unless --db is given. Exit 0: no finding
    at or above --fail-on; 1: some; 2: a file does not parse as Python or SQL (or another usage error).
    """
    from dbrunbook.lint.cli import lint_targets
    from dbrunbook.lint.output import render

    if _needs_database(targets, db):
        _check_database(project, db, alembic_config)
    report = lint_targets(list(targets), project=project, db=db, alembic_config=alembic_config, dialect=dialect,
                          include=include, exclude=exclude, pg_version=pg_version,
                          assume_in_transaction=assume_in_transaction)
    output = render(report.findings, fmt, project=project, unreadable=report.unreadable)
    if output or fmt in ("json", "sarif"):
        click.echo(output)
    for problem in report.unreadable:
        click.echo(f"error: {problem}", err=True)
    if not report.linted and not report.unreadable:
        click.echo(f"nothing to lint: {'; '.join(report.notes) or 'no targets'}", err=True)
        return
    threshold = fail_on or report.fail_on
    failing = [f for f in report.findings if SEVERITIES.index(f.severity) >= SEVERITIES.index(threshold)]
    if fmt == "text":
        click.echo(f"{len(report.findings)} finding(s), {len(report.silenced)} silenced, "
                   f"{len(failing)} at or above {threshold}", err=True)
    if report.unreadable:
        sys.exit(EXIT_USAGE)
    if failing:
        sys.exit(EXIT_BLOCKED)
