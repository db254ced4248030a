"""The connection dbrunbook hands to a project's ``env.py``, in the shapes real ``env.py`` files expect.

Alembic's cookbook ("sharing a connection with a series of migration commands") puts a connection in
``config.attributes["connection"]``. Its older text, copied into many projects (JupyterHub among them), then calls
``connectable.connect()`` on what it finds there, whether an engine or a connection: under SQLAlchemy 1.x a
connection's ``connect()`` returned a *branch*, the same database session, which closing did not close. SQLAlchemy
2.0 removed it, so such an ``env.py`` fails on any connection it is handed ("'Connection' object has no attribute
'connect'"), before one statement runs; the project's own tools never hand one (they run ``alembic upgrade``), so
the project never sees it. :func:`hand_over` gives the handed connection that branch back: the same connection, in
the same transaction and under the same guards, so every statement still runs where dbrunbook watches.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.config import Config

__all__ = ["hand_over"]


class _Branch:
    """What ``Connection.connect()`` returned before SQLAlchemy 2.0: the same session, left open on exit.

    As a context manager (how the cookbook's ``env.py`` uses it) it yields the connection itself, so
    ``sa.inspect(op.get_bind())`` and every ``isinstance`` check in Alembic see a real ``Connection``. Used without
    ``with``, it stands for the connection; its ``close()`` leaves the session to its owner, as a branch's did.
    """

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sa.Connection:
        return self._conn

    def __exit__(self, *exc: object) -> None:
        return None

    def close(self) -> None:
        """A branch's close: the session belongs to whoever opened it."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def hand_over(cfg: Config, conn: sa.Connection) -> None:
    """Put ``conn`` in ``cfg.attributes["connection"]``, answering ``connect()`` as SQLAlchemy 1.x did."""
    if not hasattr(conn, "connect"):
        # An instance attribute: this connection only, and only what SQLAlchemy 2.x no longer has.
        conn.connect = lambda: _Branch(conn)  # type: ignore[attr-defined]
    cfg.attributes["connection"] = conn
