"""Stage 12's health probes: what DDL can leave failing, as the dialect names it in ``health_probes``."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from dbrunbook import dialects
from dbrunbook.core.db import dialect_name
from dbrunbook.core.results import Finding
from dbrunbook.stages.post_migration._checks import Check, check

# -- health: dialect probes ----------------------------------------------------------------------

@dataclass(frozen=True)
class HealthProbe:
    """One health check the DDL may have left failing, as a dialect fact."""

    code: str
    title: str
    run: Callable[[Connection, Sequence[str]], list[Finding]]


_PG_SCHEMA = "n.nspname = ANY(current_schemas(false))"


def _pg_invalid_indexes(conn: Connection, tables: Sequence[str]) -> list[Finding]:
    rows = conn.execute(sa.text(
        "SELECT c.relname, t.relname, pg_get_indexdef(c.oid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE NOT i.indisvalid AND {_PG_SCHEMA} ORDER BY 1")).all()
    return [Finding("PV005", "block", f"index {ix} on {table} is INVALID (a failed CREATE INDEX CONCURRENTLY): "
                    "it is maintained on every write but never used, and a unique one is not enforced",
                    ix, {"table": table, "definition": ddl},
                    f'DROP INDEX CONCURRENTLY "{ix}"; fix the data that made it fail, then '
                    f'{ddl.replace(" INDEX ", " INDEX CONCURRENTLY ", 1)} (or REINDEX INDEX CONCURRENTLY "{ix}")')
            for ix, table, ddl in rows]


def _pg_not_valid(conn: Connection, tables: Sequence[str]) -> list[Finding]:
    rows = conn.execute(sa.text(
        "SELECT c.conname, c.conrelid::regclass::text, c.contype FROM pg_constraint c "
        f"JOIN pg_namespace n ON n.oid = c.connamespace WHERE NOT c.convalidated AND {_PG_SCHEMA} ORDER BY 1")).all()
    return [Finding("PV006", "warn", f"constraint {name} on {table} is still NOT VALID: existing rows are unchecked",
                    name, {"table": table, "type": kind},
                    f'ALTER TABLE {table} VALIDATE CONSTRAINT "{name}" (takes only a SHARE UPDATE EXCLUSIVE lock)')
            for name, table, kind in rows]


def _pg_sequences(conn: Connection, tables: Sequence[str]) -> list[Finding]:
    owned = conn.execute(sa.text(
        "SELECT s.oid::regclass::text, t.oid::regclass::text, a.attname, ps.increment_by FROM pg_class s "
        "JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass "
        "AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') "
        "JOIN pg_class t ON t.oid = d.refobjid JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid "
        "JOIN pg_namespace n ON n.oid = s.relnamespace "
        "JOIN pg_sequences ps ON ps.schemaname = n.nspname AND ps.sequencename = s.relname "
        f"WHERE s.relkind = 'S' AND {_PG_SCHEMA} ORDER BY 1")).all()
    out, quote = [], conn.dialect.identifier_preparer.quote
    for seq, table, column, step in owned:
        # Names come from the catalog (regclass text is already quoted); nothing user-given is spliced.
        last, called = conn.execute(sa.text(f"SELECT last_value, is_called FROM {seq}")).one()
        top = conn.execute(sa.text(f"SELECT MAX({quote(column)}) FROM {table}")).scalar()
        following = last + step if called else last
        if top is not None and step > 0 and following <= top:
            literal = seq.replace("'", "''")
            out.append(Finding("PV007", "block", f"sequence {seq} would hand out {following}, but {table}.{column} "
                               f"already holds {top}: the next insert fails with a duplicate key", seq,
                               {"table": table, "column": column, "next": following, "max": top},
                               f"SELECT setval('{literal}', (SELECT MAX({quote(column)}) FROM {table}))"))
    return out


def _check_table(conn: Connection, tables: Sequence[str]) -> list[Finding]:
    out, quote = [], conn.dialect.identifier_preparer.quote
    for table in tables:
        rows = conn.execute(sa.text(f"CHECK TABLE {quote(table)} QUICK")).all()
        bad = [f"{kind}: {text}" for _, _, kind, text in rows
               if str(kind).lower() in ("error", "warning")
               or (str(kind).lower() == "status" and str(text) not in ("OK", "Table is already up to date"))]
        if bad:
            out.append(Finding("PV008", "block", f"CHECK TABLE {table} reports problems: {'; '.join(bad)}", table,
                               {"messages": bad}, f"rebuild it (ALTER TABLE {quote(table)} FORCE) or restore "
                               "the table from the backup"))
    return out


def _sqlite_foreign_keys(conn: Connection, tables: Sequence[str]) -> list[Finding]:
    orphans: dict[tuple[str, str], list[int]] = {}
    for table, rowid, parent, _ in conn.exec_driver_sql("PRAGMA foreign_key_check").all():
        orphans.setdefault((table, parent), []).append(rowid)
    return [Finding("PV009", "block", f"{len(ids)} row(s) of {table} reference missing rows of {parent}",
                    table, {"parent": parent, "count": len(ids), "rowids": ids[:10]},
                    f"SELECT * FROM {table} WHERE rowid IN ({', '.join(map(str, ids[:10]))}); then delete the "
                    f"orphans or restore their {parent} rows")
            for (table, parent), ids in sorted(orphans.items())]


def _sqlite_quick_check(conn: Connection, tables: Sequence[str]) -> list[Finding]:
    lines = [str(r[0]) for r in conn.exec_driver_sql("PRAGMA quick_check").all()]
    return [] if lines == ["ok"] else [Finding("PV010", "block", f"PRAGMA quick_check reports damage: {lines[0]}", "",
                                               {"messages": lines[:20]}, "stop writes and restore from the backup "
                                               "(or sqlite3 .recover into a new file)")]


#: The health probes, by the names dialects list in ``health_probes``: what DDL can leave behind there.
HEALTH: dict[str, HealthProbe] = {
    "invalid-indexes": HealthProbe("PV005", "no invalid indexes", _pg_invalid_indexes),
    "not-valid-constraints": HealthProbe("PV006", "no constraints left NOT VALID", _pg_not_valid),
    "sequences-behind": HealthProbe("PV007", "sequences ahead of their columns", _pg_sequences),
    "check-table": HealthProbe("PV008", "CHECK TABLE ... QUICK on the changed tables", _check_table),
    "foreign-key-check": HealthProbe("PV009", "PRAGMA foreign_key_check", _sqlite_foreign_keys),
    "quick-check": HealthProbe("PV010", "PRAGMA quick_check", _sqlite_quick_check),
}


def probes_of(dialect: str) -> list[HealthProbe]:
    """The health probes of ``dialect``, in the order it lists them (none for a dialect dbrunbook does not know)."""
    found = dialects.get(dialect)
    return [HEALTH[name] for name in found.health_probes] if found else []


def health(engine: Engine, tables: Iterable[str] | None = None) -> list[Check]:
    """The dialect's health probes; ``tables`` limits per-table probes (default: every table)."""
    live = set(sa.inspect(engine).get_table_names())
    wanted = sorted(live if tables is None else live & set(tables))
    checks = []
    with engine.connect() as conn:
        for probe in probes_of(dialect_name(engine)):
            found = probe.run(conn, wanted)
            checks.append(check(probe.code, probe.title, found, f"{len(found)} problem(s)" if found else "ok"))
        conn.rollback()
    return checks
