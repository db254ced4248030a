"""Version 2 of the shop's models: the change the team wants to ship.

- users.email becomes unique (sign-in by e-mail);
- users.country becomes required (tax rules);
- users.legacy_notes is dropped (the old CRM is gone);
- orders gets a currency and an index on created_at (reports).
"""
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .models_v1 import NAMING


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


metadata = Base.metadata


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(255), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    country: Mapped[str] = mapped_column(sa.String(2), nullable=False)
    created_at: Mapped[str] = mapped_column(sa.DateTime)


class Product(Base):
    __tablename__ = "products"
    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(sa.String(32), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    price: Mapped[float] = mapped_column(sa.Numeric(10, 2))


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(sa.String(20))
    total: Mapped[float] = mapped_column(sa.Numeric(12, 2))
    currency: Mapped[str] = mapped_column(sa.String(3), server_default="EUR")
    created_at: Mapped[str] = mapped_column(sa.DateTime, index=True)


class OrderItem(Base):
    __tablename__ = "order_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("orders.id"), index=True)
    product_id: Mapped[int] = mapped_column(sa.ForeignKey("products.id"), index=True)
    quantity: Mapped[int] = mapped_column(sa.Integer)
