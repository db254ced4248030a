"""``dbrunbook rehearse``: apply the pending migration to a scratch copy and report what happened."""
from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dbrunbook.cli import FORMAT
from dbrunbook.core.results import Finding, verdict_of
from dbrunbook.errors import EXIT_BLOCKED

if TYPE_CHECKING:
    from dbrunbook.stages.dev_rehearsal import Rehearsal

REHEARSAL_SCHEMA = "dbrunbook.rehearsal/1"


def rehearsal_json(start: str | None, head: str | None, result: Rehearsal | None,
                   found: list[Finding]) -> dict[str, Any]:
    """A rehearsal as a ``dbrunbook.rehearsal/1`` document (``result`` None: nothing was pending)."""
    document: dict[str, Any] = {"schema": REHEARSAL_SCHEMA, "from": start, "to": head, "rehearsed": result is not None,
                                "verdict": verdict_of(found), "findings": [asdict(f) for f in found]}
    if result is None:
        return document
    tests = asdict(result.tests) if result.tests is not None else None
    return {**document, "mode": result.mode, "copy": result.clone, "rows": result.rows,
            "ok": result.upgrade.ok, "seconds": result.upgrade.seconds, "error": result.upgrade.error or None,
            "revisions": result.revisions, "probes": [asdict(p) for p in result.probes], "tests": tests,
            "tests_skipped": result.tests_skipped or None,
            "target_revision_unchanged": result.target_revision_unchanged}


@click.command("rehearse")
@click.option("--db", envvar="DBRUNBOOK_DB", help="Target database URL (or env DBRUNBOOK_DB).")
@click.option("--models", help="Target models as module:attr (MetaData or declarative base).")
@click.option("--alembic-config", type=click.Path(), help="The project's alembic.ini.")
@click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              help="Project root holding pyproject.toml [tool.dbrunbook].")
@click.option("--test-cmd", default="", help="Shell command running your tests against the migrated copy "
              "(DATABASE_URL and DBRUNBOOK_CLONE_URL point at it).")
@click.option("--test-timeout", type=float, default=900.0, show_default=True,
              help="Seconds before the tests are stopped.")
@click.option("--scale", help="Grow the copy first: a factor like 10x, or TABLE=ROWS pairs.")
@click.option("--mode", type=click.Choice(["full", "schema", "sample"]), default="full", show_default=True,
              help="What the copy holds.")
@click.option("--rows", type=click.IntRange(1), default=1000, show_default=True,
              help="Rows per table of a sample copy (plus the rows they reference).")
@click.option("--probes/--no-probes", default=True, help="Check the new constraints reject rows they must.")
@FORMAT
def command(db: str | None, models: str | None, alembic_config: str | None, project: Path, test_cmd: str,
            test_timeout: float, scale: str | None, mode: str, rows: int, probes: bool, fmt: str) -> None:
    """Rehearse the migration on a scratch copy: time it, probe new constraints, run your tests."""
    from dbrunbook.core.config import load_target
    from dbrunbook.core.db import check_connection, make_engine
    from dbrunbook.stages.dev_rehearsal import findings, rehearse
    from dbrunbook.stages.migration import plan_migration
    from dbrunbook.stages.staging import Scale

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
            click.echo(json.dumps(rehearsal_json(plan.current, plan.head, None, []), indent=2) if fmt == "json"
                       else "nothing to rehearse: the database is at head and matches the models")
            return
        result = rehearse(target, plan.script_dir, mode, rows=rows, probes=probes, test_cmd=test_cmd,
                          test_timeout=test_timeout, scale=growth)
    found = findings(result)
    if fmt == "json":
        click.echo(json.dumps(rehearsal_json(plan.current, plan.head, result, found), indent=2, default=str))
    else:
        _render(plan.current, plan.head, mode, result, found)
    if verdict_of(found) == "block":
        raise SystemExit(EXIT_BLOCKED)


def _render(start: str | None, head: str | None, mode: str, result: Rehearsal, found: list[Finding]) -> None:
    click.echo(f"rehearsed {start or 'base'} -> {head} on a {mode} copy"
               + (f" grown to {sum(result.rows.values()):,} rows" if result.rows else ""))
    for timing in result.revisions:
        click.echo(f"  {timing['revision']}: {'ok' if timing['ok'] else 'FAILED'} "
                   f"{timing['statements']} statement(s) {timing['seconds']:.3f}s")
    for finding in found:
        click.echo(f"{finding.severity} {finding.code}: {finding.message}")
    if result.tests is not None and not result.tests.passed:
        click.echo(result.tests.output[-3000:], err=True)
