"""``dbrunbook rewrite``: write a safe multi-step version of an unsafe revision."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("rewrite")
@click.argument("revision")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("dbrunbook-rewrite"),
              show_default=True, help="Folder receiving the rewritten revision file(s).")
@click.option("--db", envvar="DBRUNBOOK_DB", help="Target database URL (or env DBRUNBOOK_DB); sets the dialect.")
@click.option("--alembic-config", type=click.Path(), help="The project's alembic.ini.")
@click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              help="Project root holding pyproject.toml [tool.dbrunbook].")
def command(revision: str, out: Path, db: str | None, alembic_config: str | None, project: Path) -> None:
    """Write a safe multi-step rewrite of REVISION (PostgreSQL); other dialects get advice."""
    from dbrunbook.core.config import load_target
    from dbrunbook.stages.migration.rewrite import rewrite_revision

    target = load_target(project, db=db, alembic_config=alembic_config)
    result = rewrite_revision(target, revision, out)
    for path in result.files:
        click.echo(f"wrote {path}")
    if result.files:
        click.echo(f"replace revision {revision} with these files; the first keeps its revision id")
    for finding in result.findings if result.files else []:
        click.echo(f"still flagged: {finding.code} [{finding.object}] {finding.message}")
    for line in result.advice:
        click.echo(f"advice: {line}")
