"""The schema as a migration changes it, statement by statement.

A migration that spans many revisions adds a column in one, recreates the table in another
and renames it in a third, so "the columns of x" depends on where in the migration one asks.
:func:`replay` starts from the target's live columns (``Migration.known_columns``) and applies
each statement's actions in order: CREATE/DROP/RENAME TABLE, ADD/DROP/RENAME/MODIFY COLUMN,
type, NULL and default changes, index creation, and ``INSERT ... SELECT`` copies (how SQLite's
batch mode carries rows into ``_alembic_tmp_<table>``). It gives the state *before* each
statement.

A table the migration created is *new* while it holds none of the target's rows: locking,
indexing or reshaping it blocks nobody and loses nothing. A copy filled from an existing table
(the batch ``_alembic_tmp_`` table) holds the old rows and is not new.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dbrunbook.sql.model import Action, Migration

#: The prefix of the copy SQLite batch mode fills, drops the original for, and renames.
BATCH_PREFIX = "_alembic_tmp_"


@dataclass
class TableState:
    """What is known of one table at one point of the migration."""

    #: Column name -> facts (type, not_null, default ...); treat the facts as read-only.
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Created by this migration and holding none of the target's rows.
    new: bool = False
    #: Columns this migration created (ADD COLUMN, or a table it created), not the target's.
    created: set[str] = field(default_factory=set)

    def copy(self) -> TableState:
        return TableState(dict(self.columns), self.new, set(self.created))


@dataclass
class SchemaState:
    """Tables and the indexes the migration created, at one point of the migration."""

    tables: dict[str, TableState] = field(default_factory=dict)
    #: Index name -> table, for indexes created by the migration (the target's are not read).
    indexes: dict[str, str] = field(default_factory=dict)

    def copy(self) -> SchemaState:
        return SchemaState({name: t.copy() for name, t in self.tables.items()}, dict(self.indexes))

    def is_new(self, table: str) -> bool:
        """True when ``table`` was created by the migration and holds none of the target's rows."""
        state = self.tables.get(table)
        return state is not None and state.new

    def column(self, table: str, column: str) -> dict[str, Any] | None:
        state = self.tables.get(table)
        return state.columns.get(column) if state is not None else None

    def flat(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The columns as ``known_columns`` spells them: (table, column) -> facts."""
        return {(t, c): facts for t, state in self.tables.items() for c, facts in state.columns.items()}


def initial_state(known_columns: dict[tuple[str, str], dict[str, Any]]) -> SchemaState:
    """The state before the first statement: the target's live columns."""
    state = SchemaState()
    for (table, column), facts in known_columns.items():
        state.tables.setdefault(table, TableState()).columns[column] = facts
    return state


def replay(migration: Migration) -> list[SchemaState]:
    """The schema state before each statement of ``migration``, in statement order, then after the last."""
    state = initial_state(migration.known_columns)
    states = []
    for stmt in migration.statements:
        states.append(state.copy())
        for action in stmt.actions:
            apply(state, action)
    return [*states, state]


def apply(state: SchemaState, action: Action) -> None:
    """Change ``state`` as ``action`` changes the schema; actions that change no column are ignored."""
    step = _STEPS.get(action.kind)
    if step is not None:
        step(state, action)


def _table(state: SchemaState, name: str) -> TableState:
    # A table neither the target nor the migration showed yet: known only by what the migration does to it.
    return state.tables.setdefault(name, TableState())


def _create_table(state: SchemaState, action: Action) -> None:
    if action.details.get("if_not_exists") and action.table in state.tables:
        return  # the table is there already: the statement does nothing
    columns = {name: dict(facts) for name, facts in action.details.get("columns", {}).items()}
    created = set(columns)
    new = True
    original = state.tables.get(action.table.removeprefix(BATCH_PREFIX))
    if action.table.startswith(BATCH_PREFIX):
        # The batch copy holds the original's rows (its INSERT ... SELECT follows) unless the
        # original is itself new; columns it keeps by name are the original's, not new ones.
        new = original.new if original is not None else False
        if original is not None:
            created = {c for c in columns if c not in original.columns or c in original.created}
        else:
            created = set()
    if action.details.get("as_select"):
        new = False  # CREATE TABLE ... AS SELECT copies rows that exist
    state.tables[action.table] = TableState(columns, new, created)


def _drop_table(state: SchemaState, action: Action) -> None:
    state.tables.pop(action.table, None)
    state.indexes = {ix: t for ix, t in state.indexes.items() if t != action.table}


def _rename_table(state: SchemaState, action: Action) -> None:
    to = str(action.details.get("to") or "")
    if not to:
        return
    state.tables[to] = state.tables.pop(action.table) if action.table in state.tables else TableState()
    state.indexes = {ix: (to if t == action.table else t) for ix, t in state.indexes.items()}


def _add_column(state: SchemaState, action: Action) -> None:
    table = _table(state, action.table)
    if action.details.get("if_not_exists") and action.column in table.columns:
        return
    table.columns[action.column] = dict(action.details)
    table.created.add(action.column)


def _drop_column(state: SchemaState, action: Action) -> None:
    table = _table(state, action.table)
    table.columns.pop(action.column, None)
    table.created.discard(action.column)


def _rename_column(state: SchemaState, action: Action) -> None:
    _move(_table(state, action.table), action.column, str(action.details.get("to") or ""))


def _move(table: TableState, old: str, new: str) -> None:
    if not new or old == new:
        return
    facts = table.columns.pop(old, None)
    if facts is not None:
        table.columns[new] = facts
    if old in table.created:
        table.created.discard(old)
        table.created.add(new)


def _modify_column(state: SchemaState, action: Action) -> None:
    # MySQL MODIFY / CHANGE: the whole definition is restated, possibly under a new name.
    table = _table(state, action.table)
    _move(table, str(action.details.get("renamed_from") or action.column), action.column)
    facts = {k: v for k, v in action.details.items() if k not in ("renamed_from", "algorithm", "lock")}
    table.columns[action.column] = facts


def _changer(key: str, value: Callable[[Action], Any]) -> Callable[[SchemaState, Action], None]:
    def change(state: SchemaState, action: Action) -> None:
        table = _table(state, action.table)
        table.columns[action.column] = {**table.columns.get(action.column, {}), key: value(action)}
    return change


def _create_index(state: SchemaState, action: Action) -> None:
    if action.name:
        state.indexes[action.name] = action.table


def _drop_index(state: SchemaState, action: Action) -> None:
    state.indexes.pop(action.name, None)


def _dml(state: SchemaState, action: Action) -> None:
    """INSERT ... SELECT into a table the migration created: it now holds the source's rows."""
    source = state.tables.get(str(action.details.get("source") or ""))
    target = state.tables.get(action.table)
    if action.details.get("verb") != "insert" or source is None or target is None:
        return
    if not source.new:
        target.new = False
    for column, read in action.details.get("copies", []):
        # A column filled from one existing column of an existing table carries old data.
        if len(read) == 1 and read[0] not in source.created:
            target.created.discard(column)


_STEPS: dict[str, Callable[[SchemaState, Action], None]] = {
    "create_table": _create_table, "drop_table": _drop_table, "rename_table": _rename_table,
    "add_column": _add_column, "drop_column": _drop_column, "rename_column": _rename_column,
    "modify_column": _modify_column, "create_index": _create_index, "drop_index": _drop_index, "dml": _dml,
    "alter_type": _changer("type", lambda a: a.details.get("type", "")),
    "set_not_null": _changer("not_null", lambda a: True),
    "drop_not_null": _changer("not_null", lambda a: False),
    "set_default": _changer("default", lambda a: a.details.get("default")),
    "drop_default": _changer("default", lambda a: None),
}
