"""``dbrunbook apply``: apply a plan run to its target, guarded and monitored, into a new apply run."""
from __future__ import annotations

from pathlib import Path

import click

from dbrunbook.cli import FORMAT, QUIET


@click.command("apply")
@click.argument("run")
@click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              help="Project root holding pyproject.toml [tool.dbrunbook].")
@click.option("--db", envvar="DBRUNBOOK_DB", help="Target database URL (or env DBRUNBOOK_DB); must be the plan's.")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder holding the plan run [default: runs_dir of [tool.dbrunbook], else runs]; the apply run "
                   "is written beside the plan run.")
@click.option("--accept", multiple=True, metavar="GUARD",
              help="Apply although this guard failed (recorded in the apply run); repeatable. `unsigned` accepts "
                   "a plan run without a trusted signature; approved and project-history cannot be accepted.")
@click.option("--dry-run", is_flag=True, help="Check the guards and print the SQL that would run; change nothing.")
@click.option("--lock-timeout-ms", type=click.IntRange(0), default=0,
              help="lock_timeout of each attempt in ms [default: the plan's]; a lock wait past it is retried.")
@click.option("--lock-retries", type=click.IntRange(0), default=0,
              help="Attempts in all when a lock wait times out [default: 5].")
@FORMAT
@QUIET
def command(run: str, project: Path, db: str | None, runs_dir: Path | None, accept: tuple[str, ...],
            dry_run: bool, lock_timeout_ms: int, lock_retries: int, fmt: str, quiet: bool) -> None:
    """Apply the plan run RUN to its target: guards, one transaction where possible, monitor and abort."""
    from dbrunbook.cli import finish_run, reporting
    from dbrunbook.core.contract import GUARDED_APPLY
    from dbrunbook.runbook.apply import apply_run

    with reporting(quiet, fmt):
        done = apply_run(run, project=project, db=db, runs_dir=runs_dir, accept=list(accept), dry_run=dry_run,
                         lock_timeout_ms=lock_timeout_ms, lock_retries=lock_retries)
    to_run = GUARDED_APPLY.dir(done.path) / "sql-to-run.sql"
    if dry_run and fmt == "text" and to_run.exists():  # exactly what a real apply would run
        click.echo(to_run.read_text().rstrip())
    finish_run(done, fmt)
