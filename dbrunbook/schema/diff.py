"""Compare two snapshots into typed changes, with rename hints and confirmed renames.

:func:`diff` walks tables, columns, keys, constraints, indexes, enums, sequences and views.
Each difference is a :class:`Change` whose ``op`` is one of :data:`OPS`. A dropped and an
added column (or table) that look alike become a :class:`RenameHint` with a confidence and
its evidence; once the user confirms it (``renames`` in ``[tool.dbrunbook]``) the diff reports
a rename instead of a drop that loses data and an add.
"""
from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from dbrunbook.errors import ConfigError
from dbrunbook.schema._model import Column, Snapshot, Table

#: Every change operation the diff reports.
OPS = (
    "add_table", "remove_table", "rename_table", "modify_table_comment",
    "add_column", "remove_column", "rename_column",
    "modify_type", "modify_nullable", "modify_default", "modify_comment", "modify_identity",
    "modify_pk", "add_fk", "remove_fk", "modify_fk", "add_unique", "remove_unique",
    "add_index", "remove_index", "add_check", "remove_check",
    "add_enum", "remove_enum", "add_enum_value", "remove_enum_value",
    "add_sequence", "remove_sequence", "modify_sequence", "add_view", "remove_view", "modify_view",
)
_ENUM_VALUE = re.compile(r"'((?:[^']|'')*)'")
#: Lowest confidence at which a look-alike drop and add is offered as a rename.
HINT_THRESHOLD = 0.5


@dataclass
class Change:
    """One difference from the source schema to the target, classified by :mod:`.impact`."""

    op: str
    table: str
    object: str
    detail: str
    before: Any = None
    after: Any = None
    kind: str = ""
    classes: list[str] = field(default_factory=list)
    rows_affected: int | None = None
    dependencies: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def as_changes(changes: Iterable[Change | Mapping[str, Any]] | None) -> list[Change]:
    """Changes as :class:`Change` objects, from objects or their JSON (as a stage-01 sidecar holds them)."""
    return [c if isinstance(c, Change) else Change(**dict(c)) for c in changes or []]


@dataclass
class RenameHint:
    """A dropped and an added object that are probably one object renamed."""

    what: str
    table: str
    old: str
    new: str
    confidence: float
    evidence: list[str]

    @property
    def config(self) -> str:
        """The ``renames`` entry that confirms this hint."""
        prefix = f"{self.table}." if self.what == "column" else ""
        return f'"{prefix}{self.old}" = "{prefix}{self.new}"'

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "config": self.config}


@dataclass
class SchemaDiff:
    """The changes and rename hints between two snapshots."""

    source: Snapshot
    target: Snapshot
    changes: list[Change]
    hints: list[RenameHint]

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source.source, "target": self.target.source,
                "changes": [c.to_json() for c in self.changes], "rename_hints": [h.to_json() for h in self.hints]}


def diff(source: Snapshot, target: Snapshot, renames: Mapping[str, str] | None = None) -> SchemaDiff:
    """The changes that turn ``source`` into ``target``; ``renames`` maps confirmed old -> new names."""
    if renames:
        source = copy.deepcopy(source)  # renames are applied to a copy, never to the caller's snapshot
    changes = _apply_renames(source, target, dict(renames or {}))
    both = {k for k in source.features if source.features.get(k) and target.features.get(k)}
    # Which side is models (a MetaData snapshot): there a type without arguments accepts the other side's.
    loose = (bool(source.features.get("models")), bool(target.features.get("models")))
    hints: list[RenameHint] = []
    removed = sorted(set(source.tables) - set(target.tables))
    added = sorted(set(target.tables) - set(source.tables))
    changes += [Change("remove_table", t, t, "table dropped", rows_affected=source.tables[t].rows) for t in removed]
    changes += [Change("add_table", t, t, f"table added ({len(target.tables[t].columns)} columns)") for t in added]
    hints += _table_hints([source.tables[t] for t in removed], [target.tables[t] for t in added])
    for name in sorted(set(source.tables) & set(target.tables)):
        table_changes, table_hints = _diff_table(source.tables[name], target.tables[name], both, loose)
        changes += table_changes
        hints += table_hints
    if "enums" in both:
        changes += _diff_enums(source.enums, target.enums)
    if "sequences" in both:
        changes += _diff_named("sequence", source.sequences, target.sequences)
    if "views" in both:
        changes += _diff_named("view", {v: x.definition for v, x in source.views.items()},
                               {v: x.definition for v, x in target.views.items()})
    for hint in hints:
        for c in changes:
            if c.op in (f"remove_{hint.what}", f"add_{hint.what}") \
                    and (hint.what == "table" or c.table == hint.table) \
                    and c.object.split(".")[-1] in (hint.old, hint.new):
                c.extra["rename_hint"] = hint.to_json()
    return SchemaDiff(source, target, changes, hints)


def _apply_renames(source: Snapshot, target: Snapshot, renames: dict[str, str]) -> list[Change]:
    changes = []
    for old, new in renames.items():
        if "." in old:
            table, old_col = old.split(".", 1)
            new_col = new.split(".", 1)[-1]
            t = source.tables.get(table)
            if t is None or t.column(old_col) is None:
                raise ConfigError(f"renames: {old} is not a column of the source schema")
            if table not in target.tables or target.tables[table].column(new_col) is None:
                raise ConfigError(f"renames: {table}.{new_col} is not a column of the target schema")
            _rename_column(source, t, old_col, new_col)
            changes.append(Change("rename_column", table, f"{table}.{new_col}",
                                  f"column {old_col} renamed to {new_col}",
                                  before=old_col, after=new_col, extra={"confirmed": True}))
        else:
            if old not in source.tables or new not in target.tables:
                raise ConfigError(f"renames: {old} -> {new} does not name a source and a target table")
            moved = source.tables.pop(old)
            moved.name = new
            source.tables[new] = moved
            for other in source.tables.values():
                for fk in other.foreign_keys:
                    fk.ref_table = new if fk.ref_table == old else fk.ref_table
            changes.append(Change("rename_table", new, new, f"table {old} renamed to {new}", before=old, after=new,
                                  rows_affected=moved.rows, extra={"confirmed": True}))
    return changes


def _rename_column(source: Snapshot, table: Table, old: str, new: str) -> None:
    def swap(names: list[str]) -> list[str]:
        return [new if n == old else n for n in names]

    column = table.column(old)
    assert column is not None
    column.name = new
    table.primary_key = swap(table.primary_key)
    for fk in table.foreign_keys:
        fk.columns = swap(fk.columns)
    for unique in table.uniques:
        unique.columns = swap(unique.columns)
    for index in table.indexes:
        index.columns = swap(index.columns)
    for other in source.tables.values():
        for fk in other.foreign_keys:
            if fk.ref_table == table.name:
                fk.ref_columns = swap(fk.ref_columns)


def _diff_table(src: Table, tgt: Table, both: set[str],
                loose: tuple[bool, bool] = (False, False)) -> tuple[list[Change], list[RenameHint]]:
    t = src.name
    changes: list[Change] = []
    src_cols = {c.name: c for c in src.columns}
    tgt_cols = {c.name: c for c in tgt.columns}
    gone = [src_cols[c] for c in src_cols if c not in tgt_cols]
    new = [tgt_cols[c] for c in tgt_cols if c not in src_cols]
    changes += [Change("remove_column", t, f"{t}.{c.name}", f"column dropped ({c.type})", before=asdict(c))
                for c in gone]
    changes += [Change("add_column", t, f"{t}.{c.name}", _added_detail(c), after=asdict(c)) for c in new]
    for name in src_cols.keys() & tgt_cols.keys():
        changes += _diff_column(t, src_cols[name], tgt_cols[name], both, loose)
    if src.primary_key != tgt.primary_key:
        changes.append(Change("modify_pk", t, f"{t}.primary_key",
                              f"primary key ({', '.join(src.primary_key)}) -> ({', '.join(tgt.primary_key)})",
                              src.primary_key, tgt.primary_key, rows_affected=src.rows))
    changes += _diff_fks(src, tgt)
    changes += _diff_keyed(t, "unique", _unique_keys(src), _unique_keys(tgt))
    changes += _diff_keyed(t, "index", {(tuple(i.columns), i.where): i.name for i in src.indexes if not i.unique},
                           {(tuple(i.columns), i.where): i.name for i in tgt.indexes if not i.unique})
    if "checks" in both:
        changes += _diff_keyed(t, "check", {c.sqltext: c.name for c in src.checks},
                               {c.sqltext: c.name for c in tgt.checks})
    if "comments" in both and (src.comment or None) != (tgt.comment or None):
        changes.append(Change("modify_table_comment", t, t, "table comment changed", src.comment, tgt.comment))
    return changes, _column_hints(t, gone, new)


def _added_detail(c: Column) -> str:
    required = not c.nullable and c.default is None and c.identity is None and not c.autoincrement
    return f"{c.type} {'NOT NULL without default' if required else 'added'}"


def _diff_column(t: str, a: Column, b: Column, both: set[str],
                 loose: tuple[bool, bool] = (False, False)) -> list[Change]:
    obj = f"{t}.{a.name}"
    out = []
    same_type = a.type == b.type or (loose[0] and _accepts(a.type, b.type)) or (loose[1] and _accepts(b.type, a.type))
    old_values, new_values = _inline_enum(a.type), _inline_enum(b.type)
    if not same_type and old_values is not None and new_values is not None:
        # MariaDB's ENUM is the column's type: a value change is an enum change, not a new type.
        out += [Change("remove_enum_value", t, f"{obj}.{v}", f"enum value {v!r} removed", v)
                for v in old_values if v not in new_values]
        out += [Change("add_enum_value", t, f"{obj}.{v}", f"enum value {v!r} added", after=v)
                for v in new_values if v not in old_values]
    elif not same_type:
        out.append(Change("modify_type", t, obj, f"type {a.type} -> {b.type}", a.type, b.type))
    if a.nullable != b.nullable:
        out.append(Change("modify_nullable", t, obj, "NOT NULL (was NULL)" if not b.nullable else "NULL (was NOT NULL)",
                          a.nullable, b.nullable))
    if a.default != b.default:
        out.append(Change("modify_default", t, obj, f"server default {a.default!r} -> {b.default!r}",
                          a.default, b.default))
    if "comments" in both and (a.comment or None) != (b.comment or None):
        out.append(Change("modify_comment", t, obj, "column comment changed", a.comment, b.comment))
    if "identity" in both and a.identity != b.identity:
        out.append(Change("modify_identity", t, obj, f"identity {a.identity or 'none'} -> {b.identity or 'none'}",
                          a.identity, b.identity))
    return out


def _accepts(model: str, other: str) -> bool:
    """Whether a models' type accepts the other side's: ``String()`` (``VARCHAR``) any length, ``Numeric()``
    any precision. As Alembic's ``compare_type``: an argument the model leaves out is whatever the database has.
    Between two databases it is a change (PostgreSQL's bare ``VARCHAR`` is unbounded)."""
    return "(" not in model and other.partition("(")[0] == model


def _inline_enum(type_text: str) -> list[str] | None:
    if not type_text.startswith("ENUM("):
        return None
    return [v.replace("''", "'") for v in _ENUM_VALUE.findall(type_text)]


def _diff_fks(src: Table, tgt: Table) -> list[Change]:
    t = src.name
    a = {fk.key(): fk for fk in src.foreign_keys}
    b = {fk.key(): fk for fk in tgt.foreign_keys}
    out = []
    for key in a.keys() - b.keys():
        fk = a[key]
        out.append(Change("remove_fk", t, fk.name or f"{t}({', '.join(fk.columns)})",
                          f"foreign key ({', '.join(fk.columns)}) -> {fk.ref_table} dropped", before=asdict(fk)))
    for key in b.keys() - a.keys():
        fk = b[key]
        out.append(Change("add_fk", t, fk.name or f"{t}({', '.join(fk.columns)})",
                          f"foreign key ({', '.join(fk.columns)}) -> {fk.ref_table}({', '.join(fk.ref_columns)}) added",
                          after=asdict(fk)))
    for key in a.keys() & b.keys():
        x, y = a[key], b[key]
        if (x.ondelete, x.onupdate) != (y.ondelete, y.onupdate):
            out.append(Change("modify_fk", t, y.name or x.name or t,
                              f"ON DELETE {x.ondelete or 'NO ACTION'} ON UPDATE {x.onupdate or 'NO ACTION'} -> "
                              f"ON DELETE {y.ondelete or 'NO ACTION'} ON UPDATE {y.onupdate or 'NO ACTION'}",
                              asdict(x), asdict(y)))
    return sorted(out, key=lambda c: (c.op, c.object))


def _unique_keys(t: Table) -> dict[Any, str | None]:
    keys: dict[Any, str | None] = {tuple(u.columns): u.name for u in t.uniques}
    keys.update({tuple(i.columns): i.name for i in t.indexes if i.unique and tuple(i.columns) not in keys})
    return keys


def _diff_keyed(t: str, what: str, a: dict[Any, str | None], b: dict[Any, str | None]) -> list[Change]:
    def label(key: Any) -> str:
        if what == "check":
            return str(key)
        cols, *rest = key if what == "index" else (key,)
        shown = ", ".join(cols) if cols else "no columns"
        return f"({shown})" + (f" WHERE {rest[0]}" if rest and rest[0] else "")

    def unnamed(key: Any) -> str:
        return f"{t}({key})" if what == "check" else f"{t}{label(key)}"

    out = [Change(f"remove_{what}", t, a[k] or unnamed(k), f"{what} {label(k)} dropped", before=list(_flat(k)))
           for k in a.keys() - b.keys()]
    out += [Change(f"add_{what}", t, b[k] or unnamed(k), f"{what} {label(k)} added", after=list(_flat(k)))
            for k in b.keys() - a.keys()]
    return sorted(out, key=lambda c: (c.op, c.object))


def _flat(key: Any) -> Iterable[Any]:
    if isinstance(key, tuple):
        for part in key:
            yield from (_flat(part) if isinstance(part, tuple) else [part])
    else:
        yield key


def _diff_enums(a: dict[str, list[str]], b: dict[str, list[str]]) -> list[Change]:
    out = [Change("remove_enum", "", e, "enum type dropped", a[e]) for e in sorted(a.keys() - b.keys())]
    out += [Change("add_enum", "", e, f"enum type added ({', '.join(b[e])})", after=b[e])
            for e in sorted(b.keys() - a.keys())]
    for e in sorted(a.keys() & b.keys()):
        out += [Change("remove_enum_value", "", f"{e}.{v}", f"enum value {v!r} removed", v)
                for v in a[e] if v not in b[e]]
        out += [Change("add_enum_value", "", f"{e}.{v}", f"enum value {v!r} added", after=v)
                for v in b[e] if v not in a[e]]
    return out


def _diff_named(what: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Change]:
    out = [Change(f"remove_{what}", "", n, f"{what} dropped", a[n]) for n in sorted(a.keys() - b.keys())]
    out += [Change(f"add_{what}", "", n, f"{what} added", after=b[n]) for n in sorted(b.keys() - a.keys())]
    out += [Change(f"modify_{what}", "", n, f"{what} changed", a[n], b[n])
            for n in sorted(a.keys() & b.keys()) if _squash(a[n]) != _squash(b[n])]
    return out


def _squash(value: Any) -> Any:
    return " ".join(value.lower().rstrip(";").split()) if isinstance(value, str) else value


# -- rename hints ----------------------------------------------------------------------------

def _similar(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.lower(), b.lower()).ratio()


def _column_score(a: Column, b: Column) -> tuple[float, list[str]]:
    if a.type == b.type:
        score, evidence = 0.6, [f"same type {a.type}"]
    elif a.type.split("(")[0] == b.type.split("(")[0]:
        score, evidence = 0.4, [f"compatible types {a.type} and {b.type}"]
    else:
        return 0.0, []
    if a.nullable == b.nullable:
        score += 0.15
        evidence.append("same nullability")
    if a.default == b.default and a.default is not None:
        score += 0.05
        evidence.append("same server default")
    ratio = _similar(a.name, b.name)
    score += 0.2 * ratio
    evidence.append(f"name similarity {ratio:.2f}")
    return round(min(score, 1.0), 2), evidence


def _column_hints(table: str, gone: list[Column], new: list[Column]) -> list[RenameHint]:
    scored = sorted(((*_column_score(a, b), a, b) for a in gone for b in new), key=lambda s: -s[0])
    hints, used = [], set()
    for score, evidence, a, b in scored:
        if score >= HINT_THRESHOLD and a.name not in used and b.name not in used:
            used |= {a.name, b.name}
            evidence.append(f"{table}.{a.name} is dropped and {table}.{b.name} added in the same change")
            hints.append(RenameHint("column", table, a.name, b.name, score, evidence))
    return hints


def _table_hints(gone: list[Table], new: list[Table]) -> list[RenameHint]:
    scored = []
    for a in gone:
        cols_a = {(c.name, c.type) for c in a.columns}
        for b in new:
            cols_b = {(c.name, c.type) for c in b.columns}
            overlap = len(cols_a & cols_b) / max(len(cols_a | cols_b), 1)
            ratio = _similar(a.name, b.name)
            score = round(0.8 * overlap + 0.2 * ratio, 2)
            evidence = [f"{len(cols_a & cols_b)} of {len(cols_a | cols_b)} columns match by name and type",
                        f"name similarity {ratio:.2f}"]
            scored.append((score, evidence, a, b))
    hints, used = [], set()
    for score, evidence, a, b in sorted(scored, key=lambda s: -s[0]):
        if score >= HINT_THRESHOLD and a.name not in used and b.name not in used:
            used |= {a.name, b.name}
            hints.append(RenameHint("table", b.name, a.name, b.name, score, evidence))
    return hints
