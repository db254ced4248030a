"""``dbrunbook profile``: profile tables in SQL, one aggregate pass each (read-only)."""
from __future__ import annotations

import json

import click


@click.command("profile")
@click.option("--db", envvar="DBRUNBOOK_DB", required=True, help="Database URL (or env DBRUNBOOK_DB).")
@click.argument("tables", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--exact-limit", type=click.IntRange(0), default=1_000_000, show_default=True,
              help="Tables up to this many rows get exact distinct counts; larger ones an estimate.")
def command(db: str, tables: tuple[str, ...], fmt: str, exact_limit: int) -> None:
    """Profile TABLES in SQL: nulls, distinct counts, ranges, top values."""
    import pandas as pd

    from dbrunbook.core.db import check_connection, make_engine
    from dbrunbook.stages.data_checks.profile import profile_tables

    engine = make_engine(db)
    try:
        check_connection(engine)
        profiles = profile_tables(engine, list(tables), exact_limit=exact_limit)
    finally:
        engine.dispose()
    if fmt == "json":
        click.echo(json.dumps([p.to_json() for p in profiles], indent=2, default=str))
        return
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        for p in profiles:
            if not p.exists:
                click.echo(f"{p.table}: {p.note}")
                continue
            sampled = f"; top values from a sample of {p.sample_rows} rows" if p.sampled else ""
            click.echo(f"{p.table}: {p.rows} rows ({p.seconds:.2f}s{sampled})")
            click.echo(p.frame().to_string(index=False))
