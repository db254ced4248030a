"""Build a :class:`Snapshot` from a live database, from SQLAlchemy ``MetaData``, or from a file.

:func:`snapshot` reflects the whole schema with SQLAlchemy's multi-object reflection (one
catalog query per kind of object instead of one per table) and adds row estimates and sizes
from the catalog. :func:`snapshot_metadata` builds the same model from target models, with
types and defaults rendered for the dialect they are compared against. Reading the database
never changes it.
"""
from __future__ import annotations

import gc
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect, Engine

from dbrunbook import dialects
from dbrunbook.core.secrets import mask_url
from dbrunbook.errors import UsageError
from dbrunbook.schema import _catalog
from dbrunbook.schema._canonical import canonical_sql, index_element, sorted_element
from dbrunbook.schema._model import Column, Constraint, ForeignKey, Index, Snapshot, Table, View, load_snapshot
from dbrunbook.schema._normalise import clause_text, default_text, reflected_default, type_text

if TYPE_CHECKING:
    from dbrunbook.schema.diff import SchemaDiff

#: Tables that belong to the migration tool, not to the application.
DEFAULT_EXCLUDE = ("alembic_version",)


def dialect_for(name: str) -> Dialect:
    """A SQLAlchemy dialect object for dbrunbook dialect ``name`` (no driver is loaded)."""
    return dialects.facts(name).sqlalchemy_dialect()


def _has(name: str, fact: str) -> bool:
    """Whether dialect ``name`` has the boolean ``fact`` (an unknown dialect has none)."""
    return bool(getattr(dialects.get(name), fact, False))


def _features(dialect: Dialect, name: str, live: bool) -> dict[str, bool]:
    # "models": the side was described by models, whose types may leave their arguments to the database.
    return {"views": live, "sizes": live, "models": not live, "comments": bool(dialect.supports_comments),
            "sequences": bool(dialect.supports_sequences), "enums": _has(name, "named_enums"),
            "checks": True, "identity": bool(getattr(dialect, "supports_identity_columns", False))}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- live database ---------------------------------------------------------------------------

def snapshot(engine: Engine, *, exclude: Iterable[str] = DEFAULT_EXCLUDE, sizes: bool = True) -> Snapshot:
    """Reflect the schema of ``engine``'s database (read-only) into a :class:`Snapshot`."""
    skip = set(exclude)
    with engine.connect() as conn:
        names = [t for t in sa.inspect(conn).get_table_names() if t not in skip]
    # Once connected: MariaDB behind a mysql:// URL is told apart only after the server has answered.
    name = dialects.name_of(engine.dialect)
    groups = [["columns"], [j for j in _JOBS if j != "columns" and (sizes or j != "sizes")]]
    found: dict[str, Any] = {}
    with _no_gc():
        if _has(name, "parallel_reflection") and len(names) > 1:
            with ThreadPoolExecutor(max_workers=len(groups)) as pool:
                for part in pool.map(lambda jobs: _run_jobs(engine, jobs, names, name), groups):
                    found.update(part)
        else:
            found = _run_jobs(engine, [j for g in groups for j in g], names, name)
        tables = _tables(found, engine.dialect, name, names)
    features = {**_features(engine.dialect, name, live=True), "sizes": sizes}
    return Snapshot(name, mask_url(engine.url), tables, found["views"], found["enums"], found["sequences"],
                    features, _now())


@contextmanager
def _no_gc() -> Iterator[None]:
    # Reflecting a large schema allocates a few hundred thousand small dicts, none of them
    # garbage; the cyclic collector's full passes over them cost a fifth of the snapshot.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# Where the server answers two catalog queries at once faster than one after the other (parallel_reflection),
# the columns are reflected on one connection while everything else is on another.
_Job = Callable[[sa.Connection, sa.Inspector, list[str], str], Any]
_JOBS: dict[str, _Job] = {
    "columns": lambda conn, insp, names, name: _multi(insp, "get_multi_columns", names),
    "pks": lambda conn, insp, names, name: _multi(insp, "get_multi_pk_constraint", names),
    "fks": lambda conn, insp, names, name: _multi(insp, "get_multi_foreign_keys", names),
    "indexes": lambda conn, insp, names, name: _multi(insp, "get_multi_indexes", names),
    "uniques": lambda conn, insp, names, name: _multi(insp, "get_multi_unique_constraints", names),
    "checks": lambda conn, insp, names, name: _multi(insp, "get_multi_check_constraints", names),
    "comments": lambda conn, insp, names, name:
        _multi(insp, "get_multi_table_comment", names) if conn.dialect.supports_comments else {},
    "sizes": lambda conn, insp, names, name: _catalog.sizes(conn, name, names) if names else {},
    "index_facts": lambda conn, insp, names, name: _catalog.index_facts(conn, name) if names else {},
    "views": lambda conn, insp, names, name: {v: _view(insp, v, name) for v in insp.get_view_names()},
    "enums": lambda conn, insp, names, name: _enums(insp) if _has(name, "named_enums") else {},
    "sequences": lambda conn, insp, names, name: _catalog.sequences(conn, name),
}


def _enums(insp: sa.Inspector) -> dict[str, list[str]]:
    found = insp.get_enums()  # type: ignore[attr-defined]  # PostgreSQL's inspector only
    return {e["name"]: list(e["labels"]) for e in found}


def _run_jobs(engine: Engine, jobs: list[str], names: list[str], name: str) -> dict[str, Any]:
    with engine.connect() as conn:
        insp = sa.inspect(conn)
        return {job: _JOBS[job](conn, insp, names, name) for job in jobs}


def _multi(insp: sa.Inspector, method: str, names: list[str]) -> dict[str, Any]:
    # Reflect every table and filter here: a filter of a thousand names costs more than it saves.
    if not names:
        return {}
    try:
        with warnings.catch_warnings():
            # SQLite reports expression indexes as skipped; they are left out on both sides.
            warnings.simplefilter("ignore", sa.exc.SAWarning)
            found = getattr(insp, method)()
    except NotImplementedError:
        return {}
    wanted = set(names)
    return {key[1]: value for key, value in found.items() if key[1] in wanted}


def _tables(found: dict[str, Any], dialect: Dialect, name: str, names: list[str]) -> dict[str, Table]:
    columns, pks, fks, uniques, checks = (found[k] for k in ("columns", "pks", "fks", "uniques", "checks"))
    comments, sizes = found["comments"], found.get("sizes", {})
    tables = {}
    for t in names:
        table = Table(t, [_column(c, dialect, name) for c in columns.get(t, [])],
                      list((pks.get(t) or {}).get("constrained_columns") or []),
                      [_foreign_key(f) for f in fks.get(t, [])],
                      [Constraint(u["name"], list(u["column_names"])) for u in uniques.get(t, [])],
                      [Constraint(c["name"], sqltext=canonical_sql(c["sqltext"], name)) for c in checks.get(t, [])],
                      comment=(comments.get(t) or {}).get("text"))
        table.rows, table.bytes = sizes.get(t, (None, None))
        for col in table.columns:  # SQLite reports a bare INTEGER PRIMARY KEY as nullable
            col.nullable = col.nullable and col.name not in table.primary_key
        table.foreign_keys = _sorted(table.foreign_keys)
        facts = {ix: entry for (owner, ix), entry in found["index_facts"].items() if owner == t}
        table.indexes = _sorted(_live_indexes(found["indexes"].get(t, []), facts, table, dialect.name, name))
        tables[t] = table
    return tables


def _column(raw: dict[str, Any], dialect: Dialect, name: str) -> Column:
    identity = raw.get("identity")
    default = raw.get("default")
    return Column(raw["name"], type_text(raw["type"], dialect, name), bool(raw.get("nullable", True)),
                  reflected_default(default),
                  ("always" if identity.get("always") else "by default") if identity else None,
                  raw.get("autoincrement") is True or bool(default and str(default).startswith("nextval(")),
                  raw.get("comment"))


def _foreign_key(raw: dict[str, Any]) -> ForeignKey:
    options = raw.get("options") or {}
    return ForeignKey(raw.get("name"), list(raw["constrained_columns"]), raw["referred_table"],
                      list(raw["referred_columns"]), _action(options.get("ondelete")),
                      _action(options.get("onupdate")))


def _action(value: str | None) -> str | None:
    value = (value or "").upper()
    return None if value in ("", "NO ACTION") else value


def _live_indexes(raw: list[dict[str, Any]], facts: dict[str, dict[str, Any]], table: Table, sa_dialect: str,
                  name: str) -> list[Index]:
    implicit = _server_made((f.name, tuple(f.columns)) for f in table.foreign_keys) \
        if _has(name, "implicit_fk_index") else set()
    # MariaDB reports a unique constraint again as a unique index; keep it once.
    unique_keys = [u.columns for u in table.uniques]
    # Reflection skips what the catalog facts add: SQLite's expression indexes, sort orders.
    entries = [{**ix, **facts.get(ix["name"], {})} for ix in raw]
    entries += [entry for ix, entry in facts.items() if "elements" in entry and ix not in {e["name"] for e in raw}]
    out = []
    for ix in entries:
        if ix.get("duplicates_constraint"):
            continue  # the index behind a unique constraint, already listed there
        cols = ix.get("elements") or _reflected_elements(ix, table, name)
        if (ix["name"], tuple(cols)) in implicit or (ix.get("unique") and cols in unique_keys):
            continue  # made by the server for a foreign key, not by the schema's author
        where = ix["where"] if "elements" in ix else (ix.get("dialect_options") or {}).get(f"{sa_dialect}_where")
        out.append(Index(ix["name"], cols, bool(ix.get("unique")),
                         canonical_sql(str(where), name) if where is not None else None))
    return out


def _server_made(foreign_keys: Iterable[tuple[str | None, tuple[str, ...]]]) -> set[tuple[str, tuple[str, ...]]]:
    """The (name, columns) an index the server made for one of ``foreign_keys`` has.

    InnoDB names the index it makes for a foreign key after the constraint, or after its first column when the
    author left the constraint unnamed (the constraint is then *_ibfk_N).
    """
    return {(n, columns) for fk_name, columns in foreign_keys for n in (fk_name, columns[0] if columns else None)
            if n}


def drop_server_made_indexes(metadata: sa.MetaData, name: str) -> None:
    """Remove from ``metadata`` reflected on dialect ``name`` the indexes the server made for foreign keys.

    Reflection reports InnoDB's own foreign-key indexes as ordinary ones; :func:`snapshot` leaves them out, so a
    schema reflected into ``MetaData`` (the schema the pending revisions produce on a copy) must too, or every
    foreign key of the target would read as an index the migration adds.
    """
    if not _has(name, "implicit_fk_index"):
        return
    for table in metadata.tables.values():
        made = _server_made((fk.name if isinstance(fk.name, str) else None, tuple(c.name for c in fk.columns))
                            for fk in table.foreign_key_constraints)
        for index in [ix for ix in table.indexes if (ix.name, tuple(c.name for c in ix.columns)) in made]:
            table.indexes.discard(index)


def add_unreflected_indexes(metadata: sa.MetaData, conn: sa.Connection, name: str) -> None:
    """Add to ``metadata`` reflected through ``conn`` the indexes reflection skipped (SQLite's on expressions).

    :func:`snapshot` reads them from the catalog; a schema reflected into ``MetaData`` lacked them, so a unique
    index on ``lower(email)`` that the pending revisions add was no change at all. Each is added with its
    canonical elements as SQL text, and its WHERE, as a model would declare it.
    """
    for (table_name, index_name), entry in _catalog.index_facts(conn, name).items():
        table = metadata.tables.get(table_name)
        if table is None or "elements" not in entry or index_name in {ix.name for ix in table.indexes}:
            continue
        where: dict[str, Any] = {f"{conn.dialect.name}_where": sa.text(entry["where"])} if entry.get("where") else {}
        try:
            # _table: SQLAlchemy's own way to attach an index whose elements are all text (no column to find it by).
            sa.Index(index_name, *(sa.text(e) for e in entry["elements"]), unique=bool(entry.get("unique")),
                     _table=table, **where)
        except sa.exc.ArgumentError:  # an index SQLAlchemy cannot hold stays out, as reflection left it
            continue


def _reflected_elements(ix: dict[str, Any], table: Table, name: str) -> list[str]:
    """Each element of a reflected index: a column name or expression, with its sort order."""
    exprs = ix.get("expressions") or ix["column_names"]
    sorting = ix.get("column_sorting") or {}
    return [sorted_element(str(e), sorting.get(e, ()), name, column=table.column(str(e)) is not None)
            for e in exprs if e is not None]


def _view(insp: sa.Inspector, view: str, name: str) -> View:
    definition = insp.get_view_definition(view) or ""
    tables, columns = _catalog.view_references(definition, name)
    return View(view, definition.strip(), tables, columns)


# -- target models ---------------------------------------------------------------------------

def snapshot_metadata(metadata: sa.MetaData, dialect: str | Dialect, source: str = "models", *,
                      models: bool = True) -> Snapshot:
    """The :class:`Snapshot` that ``metadata`` describes, rendered for ``dialect``.

    ``models``: False when ``metadata`` was reflected from a database (the schema pending revisions make on a
    copy): its types are the database's, and a type without arguments is compared as such, not as a model's.
    """
    sa_dialect = dialect_for(dialect) if isinstance(dialect, str) else dialect
    name = dialect if isinstance(dialect, str) else dialects.name_of(sa_dialect)
    tables = {t.name: _model_table(t, sa_dialect, name) for t in metadata.tables.values()}
    enums: dict[str, list[str]] = {}
    if _has(name, "named_enums"):
        for table in metadata.tables.values():
            for col in table.columns:
                if isinstance(col.type, sa.Enum) and col.type.native_enum and col.type.name:
                    enums[col.type.name] = list(col.type.enums)
    sequences = {str(s.name): {"start": int(s.start or 1), "increment": int(s.increment or 1)}
                 for s in metadata._sequences.values()} if sa_dialect.supports_sequences else {}
    features = {**_features(sa_dialect, name, live=False), "models": models}
    return Snapshot(name, source, tables, {}, enums, sequences, features, _now())


def _name(obj: Any) -> str | None:
    name = getattr(obj, "name", None)
    return str(name) if isinstance(name, str) and name != "_NONE_NAME" else None


def _model_table(table: sa.Table, dialect: Dialect, name: str) -> Table:
    identity = getattr(dialect, "supports_identity_columns", False)
    # A primary key column is NOT NULL, as the live side reads it; MetaData reflected from SQLite (the schema
    # the revisions leave on a copy) says a bare INTEGER PRIMARY KEY is nullable.
    columns = [Column(c.name, type_text(c.type, dialect, name), bool(c.nullable) and not c.primary_key,
                      default_text(c.server_default, dialect),
                      ("always" if c.identity.always else "by default")
                      if c.identity is not None and identity else None,
                      c is table.autoincrement_column, c.comment)
               for c in table.columns]
    fks = [ForeignKey(_name(fk), [c.name for c in fk.columns], fk.referred_table.name,
                      [e.column.name for e in fk.elements], _action(fk.ondelete), _action(fk.onupdate))
           for fk in table.foreign_key_constraints]
    uniques = [Constraint(_name(u), [c.name for c in u.columns])
               for u in table.constraints if isinstance(u, sa.UniqueConstraint)]
    checks = [Constraint(_name(c), sqltext=canonical_sql(clause_text(c.sqltext, dialect), name))
              for c in table.constraints
              if isinstance(c, sa.CheckConstraint) and not getattr(c, "_type_bound", False)]
    indexes = [_model_index(ix, dialect, name) for ix in table.indexes]
    return Table(table.name, columns, [c.name for c in table.primary_key.columns], _sorted(fks), uniques,
                 checks, _sorted(indexes), table.comment)


def _sorted(items: list[Any]) -> list[Any]:
    return sorted(items, key=lambda i: repr(i.key()))


def _model_index(ix: sa.Index, dialect: Dialect, name: str) -> Index:
    # An element is a column, or an expression possibly sorted (``col.desc()``, ``text("x DESC")``).
    cols = [e.name if isinstance(e, sa.Column) else index_element(clause_text(e, dialect), name)
            for e in ix.expressions]
    where = ix.dialect_kwargs.get(f"{dialect.name}_where")
    return Index(_name(ix), cols, bool(ix.unique),
                 canonical_sql(clause_text(where, dialect), name) if where is not None else None)


# -- either side, by spec --------------------------------------------------------------------

def load_side(spec: str, *, dialect: str | None = None, project_dir: Path | None = None) -> Snapshot:
    """A snapshot from a URL, a ``module:attr`` of models, or a saved snapshot JSON file.

    Models need a dialect to render their types for: ``dialect`` (default: ``MODELS_DIALECT``, SQLite).
    """
    from dbrunbook.core.config import load_metadata
    from dbrunbook.core.db import check_connection, make_engine

    if spec.endswith(".json") or Path(spec).is_file():
        return load_snapshot(spec)
    if "://" in spec:
        engine = make_engine(spec)
        try:
            check_connection(engine)
            return snapshot(engine)
        finally:
            engine.dispose()
    if ":" in spec:
        return snapshot_metadata(load_metadata(spec, project_dir), dialect or dialects.MODELS_DIALECT, source=spec)
    raise UsageError(f"{spec!r} is neither a database URL, a module:attr, nor a snapshot file")


def _is_models(spec: str) -> bool:
    return "://" not in spec and not spec.endswith(".json") and not Path(spec).is_file()


def diff_specs(source: str, target: str, renames: Mapping[str, str] | None = None, *,
               dialect: str | None = None, project_dir: Path | None = None) -> SchemaDiff:
    """Diff two sides given as URL, ``module:attr`` or snapshot file, with impact assessed.

    A side that is models is rendered for the other side's dialect (``dialect`` overrides;
    SQLite when both sides are models).
    """
    from dbrunbook.schema.diff import diff
    from dbrunbook.schema.impact import assess

    # Load the side that knows its dialect first, so that models can be rendered for it.
    order = [target, source] if _is_models(source) else [source, target]
    first = load_side(order[0], dialect=dialect, project_dir=project_dir)
    second = load_side(order[1], dialect=dialect or first.dialect, project_dir=project_dir)
    src, tgt = (second, first) if order[0] is target else (first, second)
    result = diff(src, tgt, renames)
    assess(result)
    return result
