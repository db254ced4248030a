"""The base every held-out scenario starts from: a small shop schema, its data and the old application code.

The base revision (``0001``) is what the database is at; the data is generated with a fixed seed so every
dialect holds the same rows. A fraction of the rows carry the problems some scenarios run into (NULL
countries, duplicate e-mails, orphan reviews, out-of-range ratings, non-numeric and zero-padded zip codes,
titles longer than 80 characters, cents in prices, an 'on_hold' status no mapping names, old audit rows);
the rest are clean. The old code (``app/``) is what runs in production while the revision is deployed.
"""
from __future__ import annotations

import datetime as dt
import random
from typing import Any

import sqlalchemy as sa

BASE_REVISION = '''"""base schema

Revision ID: 0001
Revises:
Create Date: 2024-01-10 09:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(255), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("country", sa.String(2), nullable=True),
        sa.Column("phone", sa.String(40), nullable=True),
        sa.Column("zip_code", sa.String(10), nullable=True),
        sa.Column("legacy_notes", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_users_email", "users", ["email"])
    op.create_table(
        "products",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sku", sa.String(32), nullable=False, unique=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("price", sa.Numeric(10, 2), nullable=False),
        sa.Column("stock", sa.Integer, nullable=False),
        sa.Column("discontinued", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", name="fk_orders_user"), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("total", sa.Numeric(12, 2), nullable=False),
        sa.Column("coupon_code", sa.String(40), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_orders_user_id", "orders", ["user_id"])
    op.create_table(
        "order_items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("order_id", sa.Integer, sa.ForeignKey("orders.id", name="fk_items_order"), nullable=False),
        sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id", name="fk_items_product"), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("unit_price", sa.Numeric(10, 2), nullable=False),
    )
    op.create_index("ix_order_items_order_id", "order_items", ["order_id"])
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("product_id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("rating", sa.Integer, nullable=False),
        sa.Column("body", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("entity", sa.String(40), nullable=False),
        sa.Column("entity_id", sa.Integer, nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("payload", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "settings",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=True),
    )


def downgrade():
    for table in ("settings", "audit_log", "reviews", "order_items", "orders", "products", "users"):
        op.drop_table(table)
'''

#: The old application code: what production runs while the revision is deployed. It reads users' contact
#: fields, inserts users without country/zip/notes, reads and inserts orders, reads products and reviews.
#: It no longer touches audit_log or users.legacy_notes (both were retired in an earlier release).
APP_FILES: dict[str, str] = {
    "app/__init__.py": "",
    "app/db.py": '''"""Engine and tables of the shop (SQLAlchemy Core)."""
import os

import sqlalchemy as sa

engine = sa.create_engine(os.environ.get("DATABASE_URL", "sqlite:///shop.db"))
''',
    "app/repository.py": '''"""Data access of the shop, raw SQL through SQLAlchemy."""
import datetime as dt

import sqlalchemy as sa

from app.db import engine

USER_BY_ID = sa.text(
    "SELECT id, email, name, country, phone, zip_code FROM users WHERE id = :id"
)


def get_user(user_id):
    with engine.connect() as conn:
        return conn.execute(USER_BY_ID, {"id": user_id}).mappings().first()


def sign_up(email, name):
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO users (email, name, created_at) VALUES (:email, :name, :now)"),
            {"email": email, "name": name, "now": dt.datetime.utcnow()},
        )


def orders_of(user_id):
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT id, status, total, coupon_code, created_at FROM orders "
                    "WHERE user_id = :uid ORDER BY created_at DESC"),
            {"uid": user_id},
        ).all()


def place_order(user_id, total, coupon=None):
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO orders (user_id, status, total, coupon_code, created_at) "
                    "VALUES (:uid, 'new', :total, :coupon, :now)"),
            {"uid": user_id, "total": total, "coupon": coupon, "now": dt.datetime.utcnow()},
        )


def open_orders():
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT id, user_id, total FROM orders WHERE status = 'paid'")).all()


def catalogue():
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT sku, title, price, stock FROM products WHERE stock > 0")).all()


def reviews_of(product_id):
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT rating, body, created_at FROM reviews WHERE product_id = :pid"),
            {"pid": product_id},
        ).all()


def add_review(product_id, user_id, rating, body):
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO reviews (product_id, user_id, rating, body, created_at) "
                    "VALUES (:pid, :uid, :rating, :body, :now)"),
            {"pid": product_id, "uid": user_id, "rating": rating, "body": body, "now": dt.datetime.utcnow()},
        )
''',
}

COUNTRIES = ["DE", "FR", "GB", "US", "NL", "ES", "IT", "SE", "PL", "AT"]
FIRST, LAST = ["Ana", "Ben", "Chen", "Dara", "Eli", "Femi"], ["Ng", "Roe", "Ito", "Diaz"]
STATUSES = ["new", "paid", "shipped", "delivered", "cancelled"]

#: Row counts of the base data.
SIZES = {"users": 3000, "products": 400, "orders": 5000, "order_items": 9000, "reviews": 2500, "audit_log": 6000}


def _when(rng: random.Random, start: dt.datetime, end: dt.datetime) -> dt.datetime:
    span = int((end - start).total_seconds())
    return (start + dt.timedelta(seconds=rng.randrange(span))).replace(microsecond=0)


def generate(seed: int = 7) -> dict[str, list[dict[str, Any]]]:
    """The base rows, table by table (parents first)."""
    rng = random.Random(seed)
    t0, t1 = dt.datetime(2022, 1, 1), dt.datetime(2026, 6, 1)
    users = []
    for i in range(1, SIZES["users"] + 1):
        r = rng.random()
        zip_code = (f"{rng.randrange(10000, 99999)}" if r < 0.90 else
                    f"0{rng.randrange(1000, 9999)}" if r < 0.97 else rng.choice(["SW1A", "EC2V", "N1 9GU"]))
        users.append({
            "id": i,
            # 25 pairs of duplicate e-mails (sign-ups before the unique check existed in the app)
            "email": f"user{i - 1 if i % 120 == 0 else i}@example.com",
            "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            "country": None if rng.random() < 0.05 else rng.choice(COUNTRIES),
            "phone": f"+49 30 {rng.randrange(1000000, 9999999)}" if rng.random() < 0.4 else None,
            "zip_code": zip_code,
            "legacy_notes": f"migrated from crm: tier {rng.randrange(1, 4)}" if rng.random() < 0.3 else None,
            "created_at": _when(rng, t0, t1),
        })
    products = []
    for i in range(1, SIZES["products"] + 1):
        long = rng.random() < 0.06
        title = f"Product {i} " + ("with an extra long marketing title that keeps going " * 2 if long else "classic")
        products.append({
            "id": i, "sku": f"SKU-{i:05d}", "title": title[:200],
            "price": f"{rng.randrange(1, 300)}.{rng.choice(['00', '50', '99', '95'])}",
            "stock": 0 if rng.random() < 0.1 else rng.randrange(1, 500), "discontinued": False,
        })
    orders = []
    for i in range(1, SIZES["orders"] + 1):
        status = "on_hold" if rng.random() < 0.012 else rng.choice(STATUSES)
        orders.append({
            "id": i, "user_id": rng.randrange(1, SIZES["users"] + 1), "status": status,
            "total": f"{rng.randrange(5, 900)}.{rng.randrange(0, 100):02d}",
            "coupon_code": f"SPRING{rng.randrange(10, 99)}" if rng.random() < 0.15 else None,
            "created_at": _when(rng, t0, t1),
        })
    items = [{"id": i, "order_id": rng.randrange(1, SIZES["orders"] + 1),
              "product_id": rng.randrange(1, SIZES["products"] + 1), "quantity": rng.randrange(1, 5),
              "unit_price": f"{rng.randrange(1, 300)}.99"} for i in range(1, SIZES["order_items"] + 1)]
    reviews = []
    for i in range(1, SIZES["reviews"] + 1):
        # 3% of reviews point at products deleted long ago; 1% carry a rating the old form allowed (0 or 6)
        orphan = rng.random() < 0.03
        reviews.append({
            "id": i, "product_id": rng.randrange(5000, 6000) if orphan else rng.randrange(1, SIZES["products"] + 1),
            "user_id": rng.randrange(1, SIZES["users"] + 1),
            "rating": rng.choice([0, 6]) if rng.random() < 0.01 else rng.randrange(1, 6),
            "body": "Great value" if rng.random() < 0.5 else None, "created_at": _when(rng, t0, t1),
        })
    audit = [{"id": i, "entity": rng.choice(["user", "order"]), "entity_id": rng.randrange(1, 3000),
              "action": rng.choice(["create", "update", "delete"]), "payload": '{"by": "admin"}',
              "created_at": _when(rng, t0, t1)} for i in range(1, SIZES["audit_log"] + 1)]
    settings = [{"name": f"feature.{n}", "value": str(rng.randrange(0, 2))} for n in range(20)]
    return {"users": users, "products": products, "orders": orders, "order_items": items, "reviews": reviews,
            "audit_log": audit, "settings": settings}


def load(engine: sa.Engine, rows: dict[str, list[dict[str, Any]]]) -> None:
    """Insert the base rows into a database at revision 0001 (reflected, so the types are the database's)."""
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.begin() as conn:
        for name, table_rows in rows.items():
            table = meta.tables[name]
            for start in range(0, len(table_rows), 1000):
                conn.execute(table.insert(), table_rows[start:start + 1000])
