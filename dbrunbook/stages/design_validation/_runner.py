"""Run the design rules over a snapshot, with usage statistics where the dialect keeps them."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from dbrunbook.core.results import Finding
from dbrunbook.core.rules import Rule
from dbrunbook.dialects import DialectFacts, facts, get
from dbrunbook.schema import Snapshot, Table, snapshot, snapshot_metadata


@dataclass
class DesignContext:
    """What a design rule looks at: the design, the dialect's facts, and usage statistics."""

    design: Snapshot
    facts: DialectFacts
    usage: dict[str, dict[str, int]] = field(default_factory=dict)
    rule: Rule | None = None

    @property
    def dialect(self) -> str:
        return self.design.dialect

    def tables(self) -> Iterator[Table]:
        return iter(sorted(self.design.tables.values(), key=lambda t: t.name))

    def finding(self, message: str, object: str = "", evidence: dict[str, Any] | None = None,
                fix: str | None = None, severity: str | None = None) -> Finding:
        """A finding of the rule being run."""
        assert self.rule is not None
        return self.rule.finding(message, object, evidence, severity, fix)


def usage(engine: sa.Engine, dialect: str) -> dict[str, dict[str, int]]:
    """Per-table scan statistics from the catalog (empty where the dialect keeps none)."""
    found = get(dialect)
    sql = found.table_usage_sql if found else None
    if sql is None:
        return {}
    with engine.connect() as conn:
        return {name: {"seq_scan": int(s or 0), "seq_tup_read": int(r or 0), "idx_scan": int(i or 0),
                       "rows": int(n or 0)} for name, s, r, i, n in conn.execute(sa.text(sql))}


def validate_snapshot(design: Snapshot, usage: dict[str, dict[str, int]] | None = None,
                      include: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[Finding]:
    """Findings of the selected design rules on ``design``."""
    from dbrunbook.stages.design_validation import registry

    ctx = DesignContext(design, facts(design.dialect), usage or {})
    found: list[Finding] = []
    for rule in registry.select(include, exclude, design.dialect):
        ctx.rule = rule
        found.extend(rule.check(ctx))
    return found


def validate(engine: sa.Engine, metadata: sa.MetaData | None = None, include: Sequence[str] = (),
             exclude: Sequence[str] = ()) -> list[Finding]:
    """Validate ``metadata`` as built on ``engine``'s dialect (or the live schema if None); read-only."""
    from dbrunbook.core.db import dialect_name

    name = dialect_name(engine)
    design = snapshot_metadata(metadata, engine.dialect) if metadata is not None else snapshot(engine, sizes=False)
    design.dialect = name
    return validate_snapshot(design, usage(engine, name), include, exclude)
