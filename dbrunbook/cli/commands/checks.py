"""``dbrunbook checks``: run the data checks of a change on the target, read-only.

Exit status: 0 when no check blocks, 1 when one does (the migration would fail or lose data),
2 for bad input, 5 for an unreachable server.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from dbrunbook.errors import EXIT_BLOCKED


@click.command("checks")
@click.option("--db", envvar="DBRUNBOOK_DB", required=True, help="Target database URL (or env DBRUNBOOK_DB).")
@click.option("--models", required=True, help="Target models as module:attr (MetaData or declarative base).")
@click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              help="Project root the models are imported from.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--sample", type=click.IntRange(0, 1000), default=5, show_default=True,
              help="Offending rows shown per check.")
@click.option("--timeout", type=click.IntRange(1), default=120, show_default=True,
              help="Longest time one check query may run, in seconds.")
def command(db: str, models: str, project: Path, fmt: str, sample: int, timeout: int) -> None:
    """Count and sample the rows a schema change would break; read-only."""
    from dbrunbook.core.config import load_metadata
    from dbrunbook.core.db import check_connection, make_engine
    from dbrunbook.stages.data_checks import run_checks

    engine = make_engine(db)
    try:
        check_connection(engine)
        report = run_checks(engine, load_metadata(models, project), sample=sample, timeout_ms=timeout * 1000)
    finally:
        engine.dispose()
    if fmt == "json":
        click.echo(json.dumps(report.to_json(), indent=2, default=str))
    else:
        for result in report.results:
            click.echo(f"{result.severity:5} {result.code} {result.object}: {result.message}")
            if result.count > 0 and not result.sample.empty:
                click.echo("      " + result.sample.to_string(index=False).replace("\n", "\n      "))
        click.echo(report.summary())
    if report.blocking:
        raise SystemExit(EXIT_BLOCKED)
