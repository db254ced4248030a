"""Render the rule reference (docs/rules.md) from the lint registry."""
from __future__ import annotations

import sys

from dbrunbook.core.rules import Rule
from dbrunbook.lint import registry

_FAMILIES = {"DS": "destructive", "BC": "backward-incompatible", "MF": "may fail on data", "LK": "locking",
             "RB": "rollback", "ID": "idempotency and robustness", "TX": "transactions", "DT": "data types",
             "LN": "lint itself"}


def peers(rule: Rule) -> tuple[str, ...]:
    """The equivalent rules of other linters (``"squawk: ban-drop-database"``), from the rule module's ``PEERS``.

    A module without ``PEERS`` (a plugin written before it existed) has none.
    """
    module = sys.modules.get(rule.check.__module__)
    return tuple(str(p) for p in getattr(module, "PEERS", ()))


def _peer_line(rule: Rule) -> list[str]:
    found = peers(rule)
    if not found:
        return []
    named = [f"{tool} `{name.strip()}`" for tool, _, name in (p.partition(":") for p in found)]
    return ["", f"*Peers:* {'; '.join(named)}"]


def render_rules_markdown() -> str:
    """The Markdown reference of every lint rule: code, name, severity, what, why, the safe way."""
    rules = list(registry)
    lines = ["# Lint rules", "",
             "Generated from the rule registry by `dbrunbook.lint.render_rules_markdown()`; do not edit by hand.",
             "", "Families: " + ", ".join(f"**{k}** {v}" for k, v in _FAMILIES.items()) + ".", "",
             "Each statement is judged against the schema as the statements before it leave it: the target's "
             "columns, then every CREATE, ALTER, DROP and RENAME of the migration in order. A table the migration "
             "created, and has not filled from an existing table, is new and empty: locking, rewrite and data-loss "
             "rules do not report it. SQLite batch mode's `_alembic_tmp_` copy of an existing table holds its rows "
             "and is not new.", "",
             "PostgreSQL SQL is read with PostgreSQL's own parser (pglast), the other dialects with sqlglot. A "
             "statement lint does not understand is reported (LN004), never dropped. *Peers* names the equivalent "
             "rule of [squawk](https://squawkhq.com/docs/rules) and of "
             "[strong_migrations](https://github.com/ankane/strong_migrations) where one exists.", "",
             "| Code | Name | Severity | Dialects | What |", "|---|---|---|---|---|"]
    for rule in rules:
        lines.append(f"| [{rule.code}](#{rule.code.lower()}) | {rule.name} | {rule.severity} | "
                     f"{', '.join(rule.dialects) or 'all'} | {rule.summary} |")
    for rule in rules:
        lines += ["", f"## {rule.code}", "", f"**{rule.name}** ({rule.severity}; "
                  f"{', '.join(rule.dialects) or 'all dialects'}): {rule.summary}", "",
                  f"*Why:* {' '.join(rule.why.split())}", "", f"*The safe way:* {rule.safe}", *_peer_line(rule)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m dbrunbook.lint.docs > docs/rules.md
    print(render_rules_markdown(), end="")
