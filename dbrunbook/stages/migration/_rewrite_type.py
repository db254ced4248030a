"""The safe rewrite of a PostgreSQL column type change that rewrites the table.

``ALTER COLUMN ... TYPE`` rewrites the table and its indexes under ACCESS EXCLUSIVE unless the
new type is binary-compatible (the notion of lint rule LK002). The safe sequence instead:

1. add a nullable column of the new type (and the old column's default);
2. a trigger keeps it in step with the old column on every INSERT and UPDATE;
3. backfill it in committed batches, keyset-paginated on the primary key;
4. NOT NULL (when the old column had it) through a validated CHECK;
5. the indexes and constraints covering the old column built again on the new one,
   CONCURRENTLY or NOT VALID then validated, under temporary names;
6. the swap, in one short transaction under lock_timeout: drop the trigger and the old column
   (which takes its indexes and constraints along), rename the new column, indexes and
   constraints to the old names.

What the old column carries (type, NOT NULL, default, indexes, constraints, primary key) is
read from the catalog of a scratch database migrated to the revision's parent, never from the
target. Columns in the primary key, referenced by foreign keys, used by views, or fed by a
sequence or identity keep the plain ALTER and get advice: their swap needs hand work.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa
import sqlglot
from sqlglot import exp

from dbrunbook.sql.types import binary_compatible
from dbrunbook.stages.migration._steps import BATCH_ROWS, Step, _not_null_steps, _q, _validate

if TYPE_CHECKING:
    from alembic.config import Config

    from dbrunbook.sql.model import Action
    from dbrunbook.stages.migration._steps import RewritePlan

_COLUMN = sa.text("""
SELECT a.attnum, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
       pg_get_expr(d.adbin, d.adrelid) AS default_sql,
       a.attidentity <> '' OR a.attgenerated <> '' OR EXISTS (
         SELECT 1 FROM pg_depend s JOIN pg_class q ON q.oid = s.objid AND q.relkind = 'S'
         WHERE s.classid = 'pg_class'::regclass AND s.refobjid = c.oid AND s.refobjsubid = a.attnum) AS generated,
       EXISTS (SELECT 1 FROM pg_constraint f WHERE f.confrelid = c.oid AND a.attnum = ANY (f.confkey)) AS referenced,
       EXISTS (SELECT 1 FROM pg_depend v WHERE v.classid = 'pg_rewrite'::regclass AND v.refobjid = c.oid
               AND v.refobjsubid = a.attnum) AS in_view,
       ARRAY(SELECT k.attname FROM pg_index i
             JOIN pg_attribute k ON k.attrelid = i.indrelid AND k.attnum = ANY (i.indkey)
             WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY k.attnum) AS key
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE c.oid = to_regclass(quote_ident(:table)) AND a.attname = :column
""")
#: Indexes and constraints that DROP COLUMN takes along (pg_depend), with the DDL to rebuild them.
_DEPENDENTS = sa.text("""
SELECT ci.relname AS name, pg_get_indexdef(i.indexrelid) AS sql, '' AS contype
FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid
WHERE i.indrelid = to_regclass(quote_ident(:table))
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)
  AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
              AND d.refobjid = i.indrelid AND d.refobjsubid = :attnum)
UNION ALL
SELECT k.conname, CASE WHEN k.contype IN ('u', 'p', 'x') THEN pg_get_indexdef(k.conindid)
                       ELSE pg_get_constraintdef(k.oid) END, k.contype::text
FROM pg_constraint k
WHERE k.conrelid = to_regclass(quote_ident(:table)) AND EXISTS (
  SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_constraint'::regclass AND d.objid = k.oid
  AND d.refobjid = k.conrelid AND d.refobjsubid = :attnum)
ORDER BY 1
""")
_SILENCE_SWAP = ("-- dbrunbook-ignore: DS002, RB002, RB003 type change swap: the values live on in {new}, "
                 "which takes the name of the column\n")
#: Steps of the swap have no one-to-one inverse: the downgrade's ALTER ... TYPE undoes them as a whole.
_SILENCE_PART = "-- dbrunbook-ignore: RB002 a step of the type change of {object}, undone as a whole by the downgrade\n"
_SILENCE_RENAME = "-- dbrunbook-ignore: BC002 type change swap: the column keeps its name, only its type changes\n"


@dataclass
class OldColumn:
    """What the column to change carries before the revision, read from the catalog."""

    table: str
    column: str
    type: str
    not_null: bool
    default: str | None
    key: list[str]
    #: (name, rebuild DDL, constraint type or "" for a plain index)
    dependents: list[tuple[str, str, str]] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)


def parent_columns(cfg: Config, url: str, down: str | None,
                   wanted: set[tuple[str, str]]) -> dict[tuple[str, str], OldColumn]:
    """The ``wanted`` (table, column) pairs as they are at revision ``down``, on a scratch database."""
    from dbrunbook.alembic_ops.migration import apply_upgrade
    from dbrunbook.core.db import create_database, drop_database, make_engine, scratch_name, with_database
    from dbrunbook.errors import ConfigError

    if down is None or not wanted:
        return {}
    scratch = with_database(url, scratch_name("dbrunbook_rewrite")).render_as_string(hide_password=False)
    try:
        create_database(scratch)
    except sa.exc.SQLAlchemyError as exc:
        why = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigError(f"no scratch database to read the old columns from ({why})") from None
    try:
        applied = apply_upgrade(cfg, scratch, down)
        if not applied.ok:
            raise ConfigError(f"revision {down} does not apply on an empty database: {applied.error}")
        engine = make_engine(scratch)
        try:
            with engine.connect() as conn:
                return {pair: found for pair in sorted(wanted) if (found := _read(conn, *pair)) is not None}
        finally:
            engine.dispose()
    finally:
        drop_database(scratch)


def _read(conn: sa.Connection, table: str, column: str) -> OldColumn | None:
    row = conn.execute(_COLUMN, {"table": table, "column": column}).mappings().first()
    if row is None:
        return None
    old = OldColumn(table, column, row["type"], row["not_null"], row["default_sql"], list(row["key"]))
    old.dependents = [tuple(r) for r in conn.execute(_DEPENDENTS, {"table": table, "attnum": row["attnum"]})]
    reasons = {"generated": "it is fed by a sequence, an identity or a generation expression",
               "referenced": "foreign keys of other tables reference it", "in_view": "views use it"}
    old.blockers = [why for flag, why in reasons.items() if row[flag]]
    if column in old.key or len(old.key) != 1:
        old.blockers.append("it is in the primary key" if column in old.key
                            else "the table has no one-column primary key")
    old.blockers += [f"{name} is an exclusion or primary key constraint" for name, _, kind in old.dependents
                     if kind in ("p", "x")]
    return old


def _renamed(sql: str, old: str, new: str) -> exp.Expression:
    """``sql`` parsed, with every reference to column ``old`` pointing at ``new``."""
    node: exp.Expression = sqlglot.parse_one(sql, read="postgres")  # type: ignore[assignment]
    for col in node.find_all(exp.Column):
        if col.name == old and not col.table:
            col.set("this", _ident(new))
    for fk in node.find_all(exp.ForeignKey):  # only the local columns, not the referenced ones
        fk.set("expressions", [_ident(new) if i.name == old else i for i in fk.expressions])
    return node


def _ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=_q(name) != name)


def _temp(name: str) -> str:
    return f"{name[:59]}_new"


def _rebuild(old: OldColumn, new: str) -> tuple[list[Step], list[Step]]:
    """Steps building each dependent again on ``new`` under a temporary name, and the renames at the swap."""
    t = _q(old.table)
    part = _SILENCE_PART.format(object=f"{old.table}.{old.column}")
    build: list[Step] = []
    swap: list[Step] = []
    for name, sql, kind in old.dependents:
        tmp = _temp(name)
        if kind in ("", "u"):
            node = _renamed(sql, old.column, new)
            node.set("concurrently", True)
            node.set("exists", True)
            node.this.set("this", _ident(tmp))
            build.append(Step(part + node.sql("postgres"), autocommit=True))
            swap.append(Step(f"ALTER INDEX {_q(tmp)} RENAME TO {_q(name)}" if kind == "" else
                             f"{part}ALTER TABLE {t} ADD CONSTRAINT {_q(name)} UNIQUE USING INDEX {_q(tmp)}"))
        else:  # check or foreign key: NOT VALID, then validated in its own transaction
            node = _renamed(f"ALTER TABLE {t} ADD CONSTRAINT {_q(tmp)} {sql}", old.column, new)
            node.set("not_valid", True)
            build += [Step(part + node.sql("postgres")), _validate(old.table, tmp)]
            swap.append(Step(f"ALTER TABLE {t} RENAME CONSTRAINT {_q(tmp)} TO {_q(name)}"))
    return build, swap


def _cast(action: Action, prefix: str = "") -> str:
    """The value of the new column, from the revision's USING or the plain cast of the old column."""
    node = sqlglot.parse_one(action.details.get("using") or f"CAST({_q(action.column)} AS {action.details['type']})",
                             read="postgres")
    if prefix:
        for col in node.find_all(exp.Column):
            if not col.table:
                col.set("table", exp.to_identifier(prefix))
    return node.sql("postgres")


def _backfill(old: OldColumn, new: str, value: str) -> Step:
    t, k, n = _q(old.table), _q(old.key[0]), _q(new)
    return Step(f"DO $$ DECLARE lo {t}.{k}%TYPE; hi {t}.{k}%TYPE; BEGIN SELECT min({k}) INTO lo FROM {t}; "
                f"WHILE lo IS NOT NULL LOOP SELECT max(b.k) INTO hi FROM (SELECT {k} AS k FROM {t} WHERE {k} >= lo "
                f"ORDER BY {k} LIMIT {BATCH_ROWS}) AS b; UPDATE {t} SET {n} = {value} WHERE {k} >= lo AND {k} <= hi "
                f"AND {n} IS DISTINCT FROM {value}; COMMIT; SELECT min({k}) INTO lo FROM {t} WHERE {k} > hi; "
                "END LOOP; END $$", autocommit=True)


def type_change_steps(action: Action, plan: RewritePlan) -> list[Step] | None:
    """The safe sequence for one ALTER COLUMN ... TYPE; None keeps the statement (with advice if needed)."""
    old: OldColumn | None = plan.columns.get((action.table, action.column))
    new_type = action.details.get("type", "")
    if old is None:
        if plan.columns_read:  # the column is not in the parent schema: the revision creates it
            return None
        plan.advice.append(f"{action.object}: type change kept as is; with a database to read the column from, "
                           "rewrite makes it a new column, a batched backfill and a swap")
        return None
    if binary_compatible(old.type, new_type):  # a catalog-only change, as lint rule LK002 sees it
        return None
    if old.blockers:
        plan.advice.append(f"{action.object}: type change kept as is because {'; '.join(old.blockers)}; "
                           "change those by hand around a new column, a batched backfill and a swap")
        return None
    t, c = _q(old.table), _q(old.column)
    new = f"{old.column[:59]}_new"
    fn = _q(f"dbrunbook_sync_{old.table}_{old.column}"[:63])
    part = _SILENCE_PART.format(object=action.object)
    steps = [Step(f"{part}ALTER TABLE {t} ADD COLUMN {_q(new)} {new_type}")]
    if old.default is not None:
        steps.append(Step(f"ALTER TABLE {t} ALTER COLUMN {_q(new)} SET DEFAULT {old.default}"))
    steps += [Step(f"CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                   f"NEW.{_q(new)} := {_cast(action, 'NEW')}; RETURN NEW; END $$"),
              Step(f"CREATE TRIGGER {fn} BEFORE INSERT OR UPDATE ON {t} FOR EACH ROW EXECUTE FUNCTION {fn}()"),
              _backfill(old, new, _cast(action))]
    if old.not_null:
        steps += _not_null_steps(old.table, new)
    build, renames = _rebuild(old, new)
    swap = [Step(f"DROP TRIGGER {fn} ON {t}"), Step(f"DROP FUNCTION {fn}()"),
            Step(_SILENCE_SWAP.format(new=new) + f"ALTER TABLE {t} DROP COLUMN {c}"),
            Step(_SILENCE_RENAME + f"ALTER TABLE {t} RENAME COLUMN {_q(new)} TO {c}")]
    return steps + build + swap + renames
