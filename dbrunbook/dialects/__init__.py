"""Every fact dbrunbook knows about a database dialect, one class per dialect, registered by name.

Code asks the dialect (:func:`facts`, :func:`of_engine`, :func:`of_url`) instead of branching on its
name: ``facts(name).statement_timeout(ms)``, ``.sample(table, ...)``, ``.render_as_batch``. Supporting a new
dialect means one module here with a :class:`Dialect` subclass that sets every fact (a missing one, or a
second class with the same name, fails at import) and overrides the SQL-producing methods where its SQL
differs; where a fact names a strategy (``clone_strategy``, ``sql_reader``, ``ddl_lock_model``,
``plan_format``, ``health_probes``), the layer that implements strategies gets one more. The dialects::

    Dialect                 (_base.py: the facts, default SQL, the registry)
    ├── PostgreSQL          postgresql.py
    ├── MySQL               mysql.py
    │   └── MariaDB         mysql.py
    └── SQLite              sqlite.py

This package imports only :mod:`dbrunbook.errors` and third-party libraries: it sits below ``core``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from dbrunbook.dialects._base import _REGISTRY, Dialect, facts_of
from dbrunbook.dialects._outcomes import BLOCKING, FAILS, KEEPS, LOSES, Outcome
from dbrunbook.dialects.mysql import MariaDB, MySQL
from dbrunbook.dialects.postgresql import PostgreSQL
from dbrunbook.dialects.sqlite import SQLite
from dbrunbook.errors import UsageError

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import URL

__all__ = ["BLOCKING", "FAILS", "KEEPS", "LOSES", "MODELS_DIALECT", "OPERATIONS_DIALECT", "Dialect", "DialectFacts",
           "MariaDB", "MySQL", "Outcome", "PostgreSQL", "SQLite", "aliased", "facts", "facts_of", "get", "name_of",
           "of_engine", "of_url", "registered", "sqlalchemy_modules", "sqlglot_names", "supported"]

#: The old name of :class:`Dialect`, from when the facts were one dataclass row per dialect.
DialectFacts = Dialect

#: The dialect Alembic operations are rendered in when dbrunbook reads what a revision means, whatever the
#: target's dialect: PostgreSQL's SQL says the most (named constraints, USING, CONCURRENTLY), and pglast
#: reads it exactly. Also the dialect ``lint`` assumes for a .sql file when no database says otherwise.
OPERATIONS_DIALECT = PostgreSQL.name
#: The dialect models are rendered for when no side of a comparison is a database: it needs no server.
MODELS_DIALECT = SQLite.name


def facts(dialect_name: str) -> Dialect:
    """The dialect registered as ``dialect_name`` (an engine's ``dialect.name``, MariaDB told apart)."""
    try:
        return _REGISTRY[dialect_name]
    except KeyError:
        known = ", ".join(supported())
        raise UsageError(f"dialect {dialect_name!r} is not supported (supported: {known})") from None


def get(dialect_name: str | None) -> Dialect | None:
    """The dialect registered as ``dialect_name``, or None (for code that tolerates any name)."""
    return _REGISTRY.get(dialect_name or "")


def supported() -> list[str]:
    """Names of the supported dialects."""
    return sorted(_REGISTRY)


def aliased(backend: str) -> Dialect | None:
    """The dialect a URL's backend names under another name (``postgres`` for PostgreSQL), or None."""
    return next((d for d in registered() if backend in d.url_aliases), None)


def registered() -> list[Dialect]:
    """Every registered dialect, in the order its class was created."""
    return list(_REGISTRY.values())


def name_of(sa_dialect: sa.Dialect) -> str:
    """dbrunbook's name for a SQLAlchemy dialect object (MariaDB even behind ``mysql://``); any other: its name."""
    found = _REGISTRY.get(str(sa_dialect.name))
    return found.refine(sa_dialect).name if found else str(sa_dialect.name)


def of_engine(engine: sa.Engine | sa.Connection) -> Dialect:
    """The dialect an engine or connection speaks."""
    return facts(name_of(engine.dialect))


def of_url(url: str | URL) -> Dialect:
    """The dialect a URL names, judged without connecting (MariaDB when the URL says so)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url) if isinstance(url, str) else url
    return facts(parsed.get_backend_name()).refine_url(parsed)


def sqlglot_names() -> list[str]:
    """sqlglot's names of the registered dialects, each once, in registration order."""
    return list(dict.fromkeys(d.sqlglot for d in registered()))


def sqlalchemy_modules() -> list[str]:
    """The ``sqlalchemy.dialects`` modules of the registered dialects, each once, sorted."""
    return sorted({d.sqlalchemy_name for d in registered()})
