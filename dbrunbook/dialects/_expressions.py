"""SQL expressions that differ between dialects: text lengths, rounding, samples, time spans, fresh values.

The data checks, the profile and the staging stage build their queries from these; :class:`Expressions` holds
the defaults (standard SQL where there is one) that each dialect overrides where its SQL differs.
"""
from __future__ import annotations

from typing import Any, ClassVar

import sqlalchemy as sa

Expr = sa.ColumnElement[Any]


def round_text(k: Expr) -> Expr:
    """The round number ``k`` as text, to build values from."""
    return sa.cast(k, sa.String(12))


class Expressions:
    """The SQL expressions part of :class:`~dbrunbook.dialects.Dialect`."""

    label: ClassVar[str]
    #: A UUID made of text needs an explicit CAST (MariaDB has none and converts on insert).
    casts_to_uuid: ClassVar[bool]
    #: Timestamps move by whole days (SQLite keeps them as text: the time part stays exactly).
    timestamps_shift_in_days: ClassVar[bool]

    def chars(self, column: Expr) -> Expr:
        """Characters of a string value."""
        return sa.func.char_length(column)

    def octets(self, column: Expr) -> Expr:
        """Bytes a value takes as text."""
        return sa.func.octet_length(column)

    def as_text(self, column: Expr) -> Expr:
        """The text form of any value, for comparisons that must not make the database cast (enums)."""
        return sa.cast(column, sa.Text)

    def round(self, column: Expr, scale: int) -> Expr:
        """ROUND(value, scale)."""
        return sa.func.round(column, scale)

    def sample(self, table: sa.Table, fraction: float, size: int) -> sa.FromClause:
        """About ``fraction`` of the rows of ``table`` (at most ``size`` when no key allows better)."""
        key = list(table.primary_key.columns)
        if len(key) != 1 or not isinstance(key[0].type, sa.Integer):
            return sa.select(table).limit(size).subquery("sample")  # the first rows: biased, but labelled as sampled
        step = max(1, round(1 / fraction))
        return sa.select(table).where(key[0] % step == 0).subquery("sample")

    def span_seconds(self, column: Expr) -> Expr | None:
        """Seconds between the earliest and the latest value of a temporal column (an aggregate; None: unknown)."""
        return None

    def digest_text(self, column: Expr, k: Expr) -> Expr | None:
        """The MD5 of a value and the round ``k`` as hex text (None: the dialect has no MD5)."""
        return None

    def fresh_uuid(self, column: Expr, k: Expr) -> Expr | None:
        """A version-4 UUID made from a value and the round ``k`` (deterministic, so children can follow)."""
        digest = self.digest_text(column, k)
        if digest is None:
            return None
        # Version 4 and the RFC variant written in: MariaDB refuses UUIDs of other versions.
        text = sa.func.substr(digest, 1, 12, type_=sa.String) + "4" + sa.func.substr(digest, 14, 3, type_=sa.String) \
            + "8" + sa.func.substr(digest, 18, 15, type_=sa.String)
        return sa.cast(text, sa.Uuid) if self.casts_to_uuid else sa.type_coerce(text, sa.Uuid)

    def fresh_bytes(self, column: Expr, k: Expr) -> Expr | None:
        """A binary value made from a value and the round ``k`` (None: the dialect cannot make one)."""
        return None

    def shift_time(self, column: Expr, steps: Expr, kind: str) -> Expr:
        """A ``date``, ``time`` or ``datetime`` moved by ``steps`` units (days for dates, else seconds).

        Asked only where :meth:`span_seconds` gave a span.
        """
        raise NotImplementedError(f"{self.label} cannot move {kind} values")
