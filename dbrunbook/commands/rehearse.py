"""``dbrunbook rehearse``: apply the pending migration to a scratch copy and report what happened."""
from __future__ import annotations

import tempfile
from pathlib import Path

import click

from ..errors import EXIT_BLOCKED
from ..results import verdict_of


@click.command("rehearse")
@click.option("--db", envvar="DBRUNBOOK_DB", help="Target database URL (or env DBRUNBOOK_DB).")
@click.option("--models", help="Target models as module:attr (MetaData or declarative base).")
@click.option("--alembic-config", type=click.Path(), help="The project's alembic.ini.")
@click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              help="Project root holding pyproject.toml [tool.dbrunbook].")
@click.option("--test-cmd", default="", help="Shell command running your tests against the migrated copy "
              "(DATABASE_URL and DBRUNBOOK_CLONE_URL point at it).")
@click.option("--test-timeout", type=float, default=900.0, show_default=True, help="Seconds before the tests are stopped.")
@click.option("--scale", help="Grow the copy first: a factor like 10x, or TABLE=ROWS pairs.")
@click.option("--mode", type=click.Choice(["full", "schema", "sample"]), default="full", show_default=True,
              help="What the copy holds.")
@click.option("--rows", type=click.IntRange(1), default=1000, show_default=True,
              help="Rows per table of a sample copy (plus the rows they reference).")
@click.option("--probes/--no-probes", default=True, help="Check the new constraints reject rows they must.")
def command(db: str | None, models: str | None, alembic_config: str | None, project: Path, test_cmd: str,
            test_timeout: float, scale: str | None, mode: str, rows: int, probes: bool) -> None:
    """Rehearse the migration on a scratch copy: time it, probe new constraints, run your tests."""
    from ..config import load_target
    from ..db import check_connection, make_engine
    from ..migration import plan_migration
    from ..rehearsal import findings, rehearse
    from ..volume import Scale

    target = load_target(project, db=db, models=models, alembic_config=alembic_config)
    growth = Scale.parse(scale) if scale else None
    with target.environment(), tempfile.TemporaryDirectory(prefix="dbrunbook-rehearse-") as folder:
        engine = make_engine(target.db)
        try:
            check_connection(engine)  # before planning, which would create a missing SQLite file
        finally:
            engine.dispose()
        plan = plan_migration(target, Path(folder))
        if plan.empty:
            click.echo("nothing to rehearse: the database is at head and matches the models")
            return
        result = rehearse(target, plan.script_dir, mode, rows=rows, probes=probes, test_cmd=test_cmd,
                          test_timeout=test_timeout, scale=growth)
    click.echo(f"rehearsed {plan.current or 'base'} -> {plan.head} on a {mode} copy"
               + (f" grown to {sum(result.rows.values()):,} rows" if result.rows else ""))
    for timing in result.revisions:
        click.echo(f"  {timing['revision']}: {'ok' if timing['ok'] else 'FAILED'} "
                   f"{timing['statements']} statement(s) {timing['seconds']:.3f}s")
    found = findings(result)
    for finding in found:
        click.echo(f"{finding.severity} {finding.code}: {finding.message}")
    if result.tests is not None and not result.tests.passed:
        click.echo(result.tests.output[-3000:], err=True)
    if verdict_of(found) == "block":
        raise SystemExit(EXIT_BLOCKED)
