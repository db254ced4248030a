"""Stage 8: does the change make the queries slower? Plans and timings before and after, on a copy.

:func:`compare_performance` first upgrades a schema-only copy of the target and diffs its schema
before and after with the project's diff engine (:mod:`._changes`) to learn which tables the change
touches and which indexes it drops. It then builds the query set (the user's SELECTs
plus lookups generated for the touched tables, :mod:`._queries`), copies the target with its data,
plans and times every query, applies the upgrade, and plans and times them again
(:mod:`._plans`). When the upgrade fails on the data, the plans are compared on a schema-only copy
instead and no timing is kept (timings of empty tables mean nothing). :func:`findings` turns the
comparison into PF findings: an index lost to a full scan, a query grown slower or costlier than a
ratio, an index the change drops that plans used, foreign keys without an index. The target is
only read; every copy is dropped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dbrunbook import dialects
from dbrunbook.alembic_ops.migration import alembic_config, apply_upgrade
from dbrunbook.core.config import Target, load_metadata
from dbrunbook.core.db import check_connection, dialect_name, make_engine
from dbrunbook.core.results import Finding
from dbrunbook.data.clone import MODES, scratch_copy
from dbrunbook.errors import UsageError
from dbrunbook.schema import Change
from dbrunbook.stages.performance._changes import dropped_indexes, read_schema, schema_changes, touched_tables
from dbrunbook.stages.performance._plans import FULL_SCAN, PlanFacts, analyze, measure, uses_index
from dbrunbook.stages.performance._queries import Query, check_select, generate_queries, load_queries
from dbrunbook.stages.performance._report import backup_findings, measure_backup, n_plus_one_findings, plot, summary

__all__ = ["Comparison", "PerformanceOutcome", "PlanFacts", "Query", "QueryComparison", "backup_findings",
           "check_select", "compare_performance", "findings", "load_queries", "measure_backup", "n_plus_one_findings",
           "plot", "run", "summary"]

@dataclass
class QueryComparison:
    """One query's plan and time before and after the upgrade."""

    query: Query
    before: PlanFacts
    after: PlanFacts

    @property
    def ratio(self) -> float | None:
        """After / before time (None when either side was not timed)."""
        if self.before.ms is None or self.after.ms is None:
            return None
        return round(self.after.ms / max(self.before.ms, 0.001), 2)

    def lost_index(self) -> list[str]:
        """Tables read through an index before the upgrade and with a full scan after it."""
        if not (self.before.ok and self.after.ok):
            return []
        return sorted(t for t, paths in self.before.access.items()
                      if uses_index(paths) and not uses_index(self.after.access.get(t, [FULL_SCAN])))

    def gained_index(self) -> list[str]:
        """Tables read with a full scan before the upgrade and through an index after it."""
        if not (self.before.ok and self.after.ok):
            return []
        return sorted(t for t, paths in self.after.access.items()
                      if uses_index(paths) and t in self.before.access and not uses_index(self.before.access[t]))

    def row(self) -> dict[str, Any]:
        return {"query": self.query.id, "kind": self.query.kind, "before path": self.before.path(),
                "after path": self.after.path(), "before ms": self.before.ms, "after ms": self.after.ms,
                "ratio": self.ratio, "before cost": self.before.cost, "after cost": self.after.cost}


@dataclass
class Comparison:
    """Everything stage 8 measured."""

    dialect: str
    mode: str  # the copy the plans come from: full, sample or schema
    timed: bool
    touched: list[str] = field(default_factory=list)
    #: The schema changes the upgrade makes on the copy, as the diff engine (:mod:`dbrunbook.schema`) types them.
    changes: list[Change] = field(default_factory=list)
    dropped_indexes: dict[str, list[str]] = field(default_factory=dict)
    index_columns: dict[str, list[str]] = field(default_factory=dict)
    queries: list[QueryComparison] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    fk_without_index: list[dict[str, Any]] = field(default_factory=list)
    upgrade_error: str = ""  # the upgrade failed on the copy with data; plans come from a schema-only copy
    schema_error: str = ""  # the upgrade failed even without data: nothing compared
    repeats: int = 3

    def table(self) -> list[dict[str, Any]]:
        """One row per query: paths, times, ratio and costs."""
        return [q.row() for q in self.queries]

    def to_json(self) -> dict[str, Any]:
        """The comparison for the sidecar (the plans themselves go to plans.json)."""
        return {"dialect": self.dialect, "mode": self.mode, "timed": self.timed, "repeats": self.repeats,
                "touched": self.touched, "changes": [c.to_json() for c in self.changes],
                "dropped_indexes": self.dropped_indexes, "skipped": self.skipped,
                "fk_without_index": self.fk_without_index, "upgrade_error": self.upgrade_error,
                "schema_error": self.schema_error, "queries": self.table()}

    def plans_json(self) -> list[dict[str, Any]]:
        """Both plans of each query, as the database gave them."""
        return [{**q.query.to_json(), "before": q.before.to_json(raw=True), "after": q.after.to_json(raw=True)}
                for q in self.queries]


def _probe(target: Target, cfg: Any, out: Comparison) -> tuple[sa.MetaData, sa.MetaData | None]:
    """The schema before and after the upgrade, from a schema-only copy (after: None if the upgrade fails).

    Records on ``out`` the typed changes between the two (the diff engine's), the tables they touch and the
    indexes they drop, or the upgrade's error.
    """
    with scratch_copy(target.db, mode="schema") as url:
        snap_before, before = read_schema(url)
        result = apply_upgrade(cfg, url, "heads")
        if not result.ok:
            out.schema_error = result.error
            return before, None
        snap_after, after = read_schema(url)
    out.changes = schema_changes(snap_before, snap_after)
    out.touched = touched_tables(out.changes)
    out.dropped_indexes, out.index_columns = dropped_indexes(out.changes, snap_before)
    return before, after


def _fk_without_index(meta: sa.MetaData, tables: list[str]) -> list[dict[str, Any]]:
    out = []
    for name in tables:
        table = meta.tables.get(name)
        if table is None:
            continue
        leading = [[c.name for c in i.columns] for i in table.indexes]
        leading += [[c.name for c in u.columns] for u in table.constraints if isinstance(u, sa.UniqueConstraint)]
        leading.append([c.name for c in table.primary_key.columns])
        for fk in table.foreign_key_constraints:
            cols = list(fk.column_keys)
            if not any(lead[:len(cols)] == cols for lead in leading):
                out.append({"table": name, "columns": cols, "references": fk.referred_table.name})
    return out


def _on_copy(target: Target, cfg: Any, queries: list[Query], mode: str, rows: int, repeats: int,
             timeout_seconds: float, timed: bool) -> tuple[list[PlanFacts], list[PlanFacts] | None, str]:
    """Plans (and times) before and after the upgrade on one copy; after is None when the upgrade fails."""
    work = [(q.sql, q.params) for q in queries]
    tables = sorted({t for q in queries for t in q.tables})
    with scratch_copy(target.db, mode=mode, rows=rows) as url:
        engine = make_engine(url)
        try:
            present = set(sa.inspect(engine).get_table_names())
            analyze(engine, [t for t in tables if t in present])
            before = measure(engine, work, repeats, timeout_seconds, timed)
        finally:
            engine.dispose()
        upgrade = apply_upgrade(cfg, url, "heads")
        if not upgrade.ok:
            return before, None, upgrade.error
        engine = make_engine(url)
        try:
            present = set(sa.inspect(engine).get_table_names())
            analyze(engine, [t for t in tables if t in present])
            return before, measure(engine, work, repeats, timeout_seconds, timed), ""
        finally:
            engine.dispose()


def _named(facts: PlanFacts, query: Query) -> PlanFacts:
    """``facts`` with the aliases of ``query`` (``FROM users u``) replaced by the table names."""
    access: dict[str, list[str]] = {}
    for name, paths in facts.access.items():
        merged = access.setdefault(query.aliases.get(name, name), [])
        merged.extend(p for p in paths if p not in merged)
    facts.access = access
    return facts


def compare_performance(target: Target, script_dir: Path, queries: list[Query] | None = None, *,
                        repeats: int = 3, mode: str = "full", rows: int = 1000,
                        timeout_seconds: float = 10.0) -> Comparison:
    """Plan and time ``queries`` plus generated lookups before and after upgrading a copy of ``target``.

    ``mode``/``rows`` choose the copy (full, sample of ``rows`` per table, or schema only, which
    compares plans without timing them); ``repeats`` runs per query, the median kept, each run
    bounded by ``timeout_seconds``.
    """
    if mode not in MODES:
        raise UsageError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if repeats < 0 or timeout_seconds <= 0:
        raise UsageError(f"repeats must be 0 or more and timeout_seconds above 0, not {repeats} and {timeout_seconds}")
    cfg = alembic_config(target, Path(script_dir))
    engine = make_engine(target.db)
    try:
        check_connection(engine)
        name = dialect_name(engine)
    finally:
        engine.dispose()  # PostgreSQL copies by TEMPLATE only when nobody is connected
    out = Comparison(dialect=name, mode=mode, timed=mode != "schema" and repeats > 0, repeats=repeats)
    before, after = _probe(target, cfg, out)
    if after is None:
        return out
    models = load_metadata(target.models, target.project_dir) if target.models else after
    if not dialects.facts(name).implicit_fk_index:
        out.fk_without_index = _fk_without_index(models, out.touched)
    engine = make_engine(target.db)
    try:
        generated, out.skipped = generate_queries(engine, before, after, out.touched, int(timeout_seconds * 1000))
    finally:
        engine.dispose()
    work = list(queries or []) + generated
    if not work:
        return out  # nothing to plan: no copy with data is needed
    plans_before, plans_after, error = _on_copy(target, cfg, work, mode, rows, repeats, timeout_seconds, out.timed)
    if plans_after is None and mode != "schema":
        # The data stops the upgrade: compare the plans on empty tables, and time nothing.
        out.upgrade_error, out.mode, out.timed = error, "schema", False
        plans_before, plans_after, error = _on_copy(target, cfg, work, "schema", rows, 0, timeout_seconds, False)
    if plans_after is None:
        out.schema_error = error
        return out
    out.queries = [QueryComparison(q, _named(b, q), _named(a, q))
                   for q, b, a in zip(work, plans_before, plans_after, strict=True)]
    return out


def _create_index(dialect: str, index: str, table: str, columns: list[str]) -> str:
    return dialects.facts(dialect).online_index_sql.format(name=index, table=table, columns=", ".join(columns))


def _used_by(comparison: Comparison, index: str, table: str, slower_ratio: float, min_ms: float) -> list[str]:
    """Queries that read ``index`` before the upgrade and miss it after: a full scan of ``table``, or slower.

    A query the planner moves to another index without slowing down (a replacement with the same leading
    columns, as Dagster's idx_run_tags -> idx_run_tags_run_id) does not need the dropped one kept.
    """
    def misses(q: QueryComparison) -> bool:
        if not q.after.ok or not uses_index(q.after.access.get(table, [FULL_SCAN])):
            return True
        ratio = q.ratio
        return ratio is not None and ratio > slower_ratio and (q.after.ms or 0) - (q.before.ms or 0) >= min_ms

    return [q.query.id for q in comparison.queries if index in q.before.indexes() and misses(q)]


def _query_findings(c: Comparison, q: QueryComparison, slower_ratio: float, min_ms: float) -> list[Finding]:
    out: list[Finding] = []
    evidence = {"sql": q.query.sql, **q.row()}
    if q.before.ok and not q.after.ok:
        out.append(Finding("PF007", "warn", f"query {q.query.id!r} fails after the upgrade: {q.after.error}",
                           q.query.table or q.query.id, evidence,
                           "update the query, and the code that runs it, for the new schema"))
    for table in q.lost_index():
        lost = sorted(q.before.indexes() - q.after.indexes())
        dropped = [ix for ix in lost if ix in c.index_columns]
        fix = (f"keep index {dropped[0]} (drop it in a later release once no query uses it), or recreate it: "
               + _create_index(c.dialect, dropped[0], table, c.index_columns[dropped[0]]) if dropped else
               "add an index for this query's condition before the change (on PostgreSQL with CREATE INDEX "
               "CONCURRENTLY), or keep the schema the old plan relied on")
        out.append(Finding("PF001", "warn", f"query {q.query.id!r} read {table} through "
                                            f"{', '.join(q.before.access[table])} before the upgrade and with a "
                                            f"full scan after it", table, evidence, fix))
    if q.gained_index():
        out.append(Finding("PF011", "info", f"query {q.query.id!r} reads {', '.join(q.gained_index())} through an "
                                            f"index after the upgrade (a full scan before)", q.query.table, evidence))
    ratio = q.ratio
    if ratio is not None and ratio > slower_ratio and (q.after.ms or 0) - (q.before.ms or 0) >= min_ms:
        out.append(Finding("PF002", "warn", f"query {q.query.id!r} is {ratio:.1f}x slower after the upgrade "
                                            f"({q.before.ms:.2f} ms -> {q.after.ms:.2f} ms)",
                           q.query.table or q.query.id, evidence,
                           "compare the two plans in plans.json; restore the index or rewrite the query"))
    if q.before.cost and q.after.cost and q.after.cost / q.before.cost > slower_ratio:
        out.append(Finding("PF003", "warn", f"query {q.query.id!r} costs {q.after.cost / q.before.cost:.1f}x "
                                            f"more to the planner after the upgrade ({q.before.cost:g} -> "
                                            f"{q.after.cost:g})", q.query.table or q.query.id, evidence,
                           "compare the two plans in plans.json; restore the index or rewrite the query"))
    if q.before.timed_out or q.after.timed_out:
        side = "before" if q.before.timed_out else "after"
        out.append(Finding("PF008", "warn", f"query {q.query.id!r} did not finish within the time bound "
                                            f"{side} the upgrade", q.query.table or q.query.id, evidence,
                           "raise timeout_seconds, or look at the plan in plans.json"))
    return out


def findings(c: Comparison, slower_ratio: float = 2.0, min_ms: float = 1.0) -> list[Finding]:
    """PF findings of a comparison; a time must grow by ``slower_ratio`` and at least ``min_ms`` to count."""
    if c.schema_error:
        return [Finding("PF012", "warn", f"performance not compared: the upgrade fails even on an empty copy: "
                                         f"{c.schema_error}", "", {"error": c.schema_error},
                        "make the migration run on the schema first (stage 04)")]
    out: list[Finding] = []
    if c.upgrade_error:
        out.append(Finding("PF006", "warn", "performance could not be measured on the data because the upgrade "
                                            f"fails there ({c.upgrade_error}); plans were compared on a "
                                            "schema-only copy and timings were skipped", "",
                           {"error": c.upgrade_error},
                           "fix the data or the migration (stages 04 and 05), then run this stage again"))
    for q in c.queries:
        out += _query_findings(c, q, slower_ratio, min_ms)
    for table, names in sorted(c.dropped_indexes.items()):
        for index in names:
            users = _used_by(c, index, table, slower_ratio, min_ms)
            if users:
                out.append(Finding("PF005", "warn", f"index {index} on {table}, dropped by the change, is used by "
                                                    f"{len(users)} quer{'y' if len(users) == 1 else 'ies'}: "
                                                    f"{', '.join(users)}", index,
                                   {"table": table, "columns": c.index_columns.get(index, []), "queries": users},
                                   f"keep {index}; drop it in a later release once no query plans use it"))
    for fk in c.fk_without_index:
        cols = fk["columns"]
        name = f"ix_{fk['table']}_{'_'.join(cols)}"
        out.append(Finding("PF004", "warn", f"foreign key {fk['table']}({', '.join(cols)}) -> {fk['references']} "
                                            f"has no index: joins and parent deletes scan {fk['table']}",
                           f"{fk['table']}({', '.join(cols)})", fk, _create_index(c.dialect, name, fk["table"], cols)))
    if not any(f.severity != "info" for f in out):
        out.append(Finding("PF000", "info", f"{len(c.queries)} queries compared on a {c.mode} copy: no plan lost "
                                            f"an index" + (f" and none is {slower_ratio:g}x slower" if c.timed else ""),
                           "", {"queries": len(c.queries), "touched": c.touched}))
    return out


# The stage's step builds on the functions above, so it is imported last.
from dbrunbook.stages.performance._stage import PerformanceOutcome, run  # noqa: E402
