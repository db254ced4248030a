"""FOREIGN KEY added: child rows whose parent does not exist.

PostgreSQL and MariaDB validate existing rows when the key is added and fail on the first
orphan; SQLite (keys off by default) keeps the orphans, which then break the key later.
"""
from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa

from dbrunbook.stages.data_checks._base import CheckContext, CheckResult, rule, unused_alias


@rule("DC003", "foreign-key", "block",
               safe="add the key NOT VALID (PostgreSQL), fix or quarantine the orphans, then VALIDATE")
def check(ctx: CheckContext) -> Iterator[CheckResult]:
    for diff in ctx.of("add_fk"):
        fk: sa.ForeignKeyConstraint = diff[1]
        # Read from the key's text: resolving ``fk.referred_table`` raises when the models lack it.
        refs = [e.target_fullname.rsplit(".", 1)[-1] for e in fk.elements]
        referred = fk.elements[0].target_fullname.rsplit(".", 1)[0].split(".")[-1] if fk.elements else ""
        # A key of a renamed table or column is checked on the live names (diff[2:], see _diff).
        child_name, renamed, referred = diff[2:5] if len(diff) > 4 else (fk.parent.name, {}, referred)
        names = [renamed.get(n, n) for n in fk.column_keys]
        child = ctx.table(child_name)
        parent = ctx.table(referred)
        parent = _reflect(ctx, referred) if parent is None else parent
        if child is None or parent is None or not all(n in child.c for n in names) \
                or not all(r in parent.c for r in refs):
            continue
        other = unused_alias(parent, child)
        columns = [child.c[n] for n in names]
        has_parent = sa.exists().where(*(other.c[r] == c for r, c in zip(refs, columns, strict=True)))
        where = sa.and_(*(c.is_not(None) for c in columns), ~has_parent)
        fix = sa.null() if all(c.nullable for c in columns) else None
        option = ctx.dialect.facts.not_valid_option()
        migration = (f"op.create_foreign_key({fk.name!r}, {child.name!r}, {parent.name!r}, {names!r}, {refs!r}, "
                     f"{option}=True)  # then VALIDATE CONSTRAINT once the orphans are gone") if option else ""
        result = ctx.rows(child, columns, "orphan", where,
                          f"have no matching row in {parent.name} ({', '.join(refs)})", fix=fix, migration=migration)
        # What the key refers to, for recounting it on the rows as the migration's statements leave them.
        result.evidence.update({"references": parent.name, "referred_columns": refs, "constraint": fk.name or ""})
        yield result


def _reflect(ctx: CheckContext, name: str) -> sa.Table | None:
    if not sa.inspect(ctx.conn).has_table(name):
        return None
    return sa.Table(name, ctx.live, autoload_with=ctx.conn)
