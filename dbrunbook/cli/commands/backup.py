"""``dbrunbook backup``: back up a database with its own tool, and optionally prove the restore."""
from __future__ import annotations

from pathlib import Path

import click

from dbrunbook.errors import EXIT_BLOCKED


@click.command("backup")
@click.option("--db", envvar="DBRUNBOOK_DB", required=True, help="Database URL to back up (or env DBRUNBOOK_DB).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("backups"),
              show_default=True, help="Folder the backup file is written to.")
@click.option("--verify", is_flag=True, help="Restore into a scratch database and compare fingerprints.")
def command(db: str, out: Path, verify: bool) -> None:
    """Back up a database with pg_dump, mariadb-dump or the SQLite backup API."""
    # imported here, not above: `dbrunbook --help` loads every command module for its one-line help
    from dbrunbook.core.secrets import mask_url
    from dbrunbook.stages.rollback_plan.backup import findings, take_backup, verify_backup

    backup = take_backup(db, out)
    click.echo(f"backed up {mask_url(db)} to {backup.plan.path} "
               f"({backup.size} bytes, {backup.seconds:.2f}s, sha256 {backup.sha256})")
    click.echo(f"restore with: {backup.plan.restore_command}")
    if not verify:
        return
    check = verify_backup(db, backup)
    for finding in findings(check):
        click.echo(f"{finding.severity} {finding.code}: {finding.message}")
    if not check.ok:
        raise SystemExit(EXIT_BLOCKED)
