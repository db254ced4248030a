"""Traffic or loss: judge data differences on a target the application kept writing to during the apply.

Stage 11 fingerprints the target with ``keys=True``: each table with a single-column integer key has its largest
key recorded. Stage 12 then fingerprints each such table twice in one scan: whole, and bounded to the rows whose key
is at most that largest key, the rows that existed before (:func:`bounds`, :func:`split`). The bounded part is what
is compared with the print before; the rows above it were inserted during the apply and are counted, not blamed
(PV016, info). Of the differences left (:func:`judge`):

- rows that existed before are missing, or a column lost non-null values: loss, whoever wrote; it blocks (PV003);
- a table has more rows among its old keys, or (keyless) more rows: only an insert adds rows; warn (PV016);
- values changed in a column the plan does not touch, on a table the application is seen writing to (rows were
  inserted into it during the apply): most likely the application's updates; warn (PV016). Without that sign of
  traffic the same difference blocks, as on a quiet target; in a column the plan touches it always blocks.

A print from before keys were recorded (``keyed`` false) is judged as it always was: every difference blocks.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field

from dbrunbook.data.fingerprint import Fingerprint, FingerprintDiff
from dbrunbook.schema import Change

#: Changes after which a table's old key no longer bounds its old rows (the key's values or identity change).
_REKEYING = ("modify_type", "modify_pk", "remove_column")


def _column(change: Change) -> str:  # a column change's object is "table.column"
    return change.object.split(".")[1] if "." in change.object else ""


def touched(changes: Iterable[Change]) -> set[tuple[str, str]]:
    """(table, column) of every column a schema change of the plan names, itself or in its index or constraint."""
    out: set[tuple[str, str]] = set()
    for c in changes:
        if _column(c):
            out.add((c.table, _column(c)))
        for side in (c.before, c.after):  # an index's or a constraint's columns
            if isinstance(side, list):
                out.update((c.table, str(name)) for name in side if isinstance(name, str))
    return out


def bounds(before: Fingerprint, changes: Iterable[Change]) -> dict[str, tuple[str, int | None]]:
    """Per table of ``before`` (the plan's renames applied) whose recorded key still bounds its old rows: the key
    and its largest value then (``None``: the table was empty)."""
    rekeyed = {(c.table, _column(c)) for c in changes if c.op in _REKEYING} | {
        (c.table, "") for c in changes if c.op == "modify_pk"}
    return {name: (t.key, t.key_max) for name, t in before.tables.items()
            if t.key and (name, t.key) not in rekeyed and (name, "") not in rekeyed}


def split(after: Fingerprint) -> tuple[Fingerprint, dict[str, int]]:
    """``after`` with each bounded table as its rows that existed before, and per such table the rows inserted
    above its old largest key."""
    comparable = copy.deepcopy(after)
    inserted: dict[str, int] = {}
    for name, table in after.tables.items():
        if table.bounded is not None:
            comparable.tables[name] = table.bounded.as_table()
            inserted[name] = table.rows - table.bounded.rows
    return comparable, inserted


@dataclass
class Judged:
    """One unexplained difference (with those folded into it) and how much it weighs."""

    severity: str  # block: loss, or not traffic; warn: only traffic can explain it
    diff: FingerprintDiff
    message: str
    folded: list[FingerprintDiff] = field(default_factory=list)


def _rows_message(d: FingerprintDiff, bounded: bool) -> str:
    before, after = d.before or 0, d.after or 0
    if bounded and after < before:
        return (f"{before - after} of the {before} rows of {d.table} that existed before the apply are missing "
                f"({after} left)")
    if bounded:
        return f"table {d.table} has {after - before} more rows among the keys it had before ({after}, {before} before)"
    if after > before:
        return (f"table {d.table} has {after} rows, {before} before; without a single-column integer key the rows "
                "that existed before cannot be told from those inserted")
    return d.message


def _table(diffs: list[FingerprintDiff], keyed: bool, bounded: bool, inserted: int, touched_: set[tuple[str, str]],
           key: str) -> list[Judged]:
    rows = next((d for d in diffs if d.what == "rows"), None)
    others = [d for d in diffs if d is not rows]
    if rows is not None and (not keyed or (rows.after or 0) < (rows.before or 0)):
        return [Judged("block", rows, _rows_message(rows, bounded and keyed), others)]  # loss: the rest folds in
    out: list[Judged] = []
    if rows is not None:  # more rows: only inserts add rows; values lost in them still block, one by one
        lost = [d for d in others if d.what not in ("values", "non-null") or (d.after or 0) < (d.before or 0)]
        out.append(Judged("warn", rows, _rows_message(rows, bounded), [d for d in others if d not in lost]))
        others = lost
    for d in others:
        traffic = keyed and inserted > 0 and d.column != key and (d.table, d.column) not in touched_
        only_traffic = d.what == "values" or (d.what == "non-null" and (d.after or 0) > (d.before or 0))
        out.append(Judged("warn" if traffic and only_traffic else "block", d, d.message))
    return out


def judge(unexplained: list[FingerprintDiff], before: Fingerprint, after: Fingerprint, inserted: dict[str, int],
          changes: list[Change]) -> list[Judged]:
    """How much each unexplained difference weighs, one table at a time (see the module's docstring)."""
    marks = touched(changes)
    out: list[Judged] = []
    for name in dict.fromkeys(d.table for d in unexplained):
        old, new = before.tables.get(name), after.tables.get(name)
        key = old.key if old is not None else ""
        bounded = new is not None and new.bounded is not None
        out += _table([d for d in unexplained if d.table == name], before.keyed, bounded, inserted.get(name, 0),
                      marks, key)
    return out
