"""The snapshot data model: plain dataclasses that round-trip through JSON.

Everything is normalised when the snapshot is built (types as canonical DDL strings, server
defaults unquoted and uncast, implicit indexes dropped), so comparing two snapshots is plain
equality of these values, whichever side was reflected and whichever was built from models.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dbrunbook.errors import UsageError

FORMAT = "dbrunbook.schema/1"


@dataclass
class Column:
    """A column: canonical type, nullability, server default, identity and comment."""

    name: str
    type: str
    nullable: bool = True
    default: str | None = None
    identity: str | None = None
    autoincrement: bool = False
    comment: str | None = None


@dataclass
class ForeignKey:
    """A foreign key from ``columns`` to ``ref_table(ref_columns)``."""

    name: str | None
    columns: list[str]
    ref_table: str
    ref_columns: list[str]
    ondelete: str | None = None
    onupdate: str | None = None

    def key(self) -> tuple[Any, ...]:
        return (tuple(self.columns), self.ref_table, tuple(self.ref_columns))


@dataclass
class Index:
    """An index; ``columns`` holds column names or expression text; ``where`` a partial predicate."""

    name: str | None
    columns: list[str]
    unique: bool = False
    where: str | None = None

    def key(self) -> tuple[Any, ...]:
        return (tuple(self.columns), self.unique, self.where)


@dataclass
class Constraint:
    """A unique or check constraint (``columns`` for unique, ``sqltext`` for check)."""

    name: str | None
    columns: list[str] = field(default_factory=list)
    sqltext: str | None = None


@dataclass
class Table:
    """A table with its keys, constraints, indexes and catalog size."""

    name: str
    columns: list[Column] = field(default_factory=list)
    primary_key: list[str] = field(default_factory=list)
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    uniques: list[Constraint] = field(default_factory=list)
    checks: list[Constraint] = field(default_factory=list)
    indexes: list[Index] = field(default_factory=list)
    comment: str | None = None
    rows: int | None = None
    bytes: int | None = None

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass
class View:
    """A view, its definition and the tables it reads."""

    name: str
    definition: str
    tables: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)


@dataclass
class Snapshot:
    """The schema of one database (or of target models), ready to diff and to save."""

    dialect: str
    source: str
    tables: dict[str, Table] = field(default_factory=dict)
    views: dict[str, View] = field(default_factory=dict)
    enums: dict[str, list[str]] = field(default_factory=dict)
    sequences: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: What this side can tell: a MetaData knows no views; SQLite keeps no comments.
    features: dict[str, bool] = field(default_factory=dict)
    taken_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    def save(self, path: str | Path) -> Path:
        """Write the snapshot as JSON to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1, sort_keys=False) + "\n")
        return path

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Snapshot:
        if raw.get("format") != FORMAT:
            raise UsageError(f"not a dbrunbook schema snapshot (format {raw.get('format')!r}, want {FORMAT})")
        tables = {name: _table(t) for name, t in raw.get("tables", {}).items()}
        views = {name: View(**v) for name, v in raw.get("views", {}).items()}
        return cls(raw["dialect"], raw.get("source", ""), tables, views, dict(raw.get("enums", {})),
                   dict(raw.get("sequences", {})), dict(raw.get("features", {})), raw.get("taken_at", ""))


def _table(raw: dict[str, Any]) -> Table:
    return Table(
        name=raw["name"],
        columns=[Column(**c) for c in raw.get("columns", [])],
        primary_key=list(raw.get("primary_key", [])),
        foreign_keys=[ForeignKey(**f) for f in raw.get("foreign_keys", [])],
        uniques=[Constraint(**u) for u in raw.get("uniques", [])],
        checks=[Constraint(**c) for c in raw.get("checks", [])],
        indexes=[Index(**i) for i in raw.get("indexes", [])],
        comment=raw.get("comment"), rows=raw.get("rows"), bytes=raw.get("bytes"),
    )


def load_snapshot(path: str | Path) -> Snapshot:
    """Read a snapshot saved by :meth:`Snapshot.save`; a clear error for anything else."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"snapshot file {path} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not a JSON snapshot: {exc}") from None
    if not isinstance(raw, dict):
        raise UsageError(f"{path} is not a dbrunbook schema snapshot")
    try:
        return Snapshot.from_json(raw)
    except (KeyError, TypeError) as exc:
        raise UsageError(f"{path} is a damaged schema snapshot ({exc})") from None
