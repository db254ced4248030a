"""Reports and sign-up of the shop, written against the schema in production today (v1).

The support export and the notes count still read ``users.legacy_notes``, and sign-up and
the CSV import create users without a country: code that the v2 change would break.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .models import Order, User

#: The support team's weekly export: every user with the notes the old CRM left.
SUPPORT_EXPORT = """
    SELECT u.id, u.email, u.legacy_notes
    FROM users AS u
    WHERE u.legacy_notes IS NOT NULL
    ORDER BY u.id
"""


def support_export(conn: sa.Connection) -> list[Any]:
    """Rows of the support export."""
    return list(conn.execute(sa.text(SUPPORT_EXPORT)).all())


def users_with_notes(session: Session) -> int:
    """How many users still carry a CRM note."""
    return session.query(User).filter(User.legacy_notes.is_not(None)).count()


def sign_up(session: Session, email: str, name: str) -> Any:
    """Create a user from the sign-up form (which asks no country)."""
    user = User(email=email, name=name)
    session.add(user)
    return user


def import_users(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Bulk-load users from the partner CSV export."""
    conn.execute(sa.text("INSERT INTO users (email, name, created_at) VALUES (:email, :name, :created_at)"), rows)


def revenue_by_country(session: Session) -> list[Any]:
    """Revenue per country (reads country, which v2 only makes required: fine)."""
    query = sa.select(User.country, sa.func.sum(Order.total)).join(Order, Order.user_id == User.id) \
        .group_by(User.country)
    return list(session.execute(query).all())
