"""The held-out scenarios: one pending hand-written revision each, on the shop base, with its true problems.

Labels are what a careful reviewer expects of the revision on a production database whose tables are large
(the data here is a scaled-down sample of it), per dialect, since the same revision behaves differently:
PostgreSQL takes ACCESS EXCLUSIVE for rewrites and scans, MariaDB/InnoDB runs most index builds and column
changes online but copies the table for type changes and foreign keys, SQLite recreates tables in batch mode
and coerces silently. A class in ``unsure`` is not scored on that dialect (neither a hit nor a false alarm):
reasonable reviewers disagree there (for example, any write on SQLite holds the one database lock, so a
table recreate "blocks writes" only as much as the backfill that precedes it).

Classes: FD fails-on-data, LD loses-data, BW blocks-writes, BC breaks-old-code, LG lossy-downgrade.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

FD, LD, BW, BC, LG = "fails-on-data", "loses-data", "blocks-writes", "breaks-old-code", "lossy-downgrade"
CLASSES = (FD, LD, BW, BC, LG)
ALL = ("sqlite", "postgresql", "mariadb")


@dataclass(frozen=True)
class Scenario:
    name: str
    about: str
    body: str                                   #: the revision after its header: upgrade() and downgrade()
    labels: frozenset[str]                      #: true classes on every dialect, unless ``per_dialect`` says
    per_dialect: dict[str, frozenset[str]] = field(default_factory=dict)
    unsure: dict[str, frozenset[str]] = field(default_factory=dict)  #: dialect (or "*") -> unscored classes
    dialects: tuple[str, ...] = ALL
    files: dict[str, str] = field(default_factory=dict)               #: extra old-code files

    def truth(self, dialect: str) -> frozenset[str]:
        return self.per_dialect.get(dialect, self.labels)

    def unscored(self, dialect: str) -> frozenset[str]:
        return self.unsure.get("*", frozenset()) | self.unsure.get(dialect, frozenset())

    def revision_source(self) -> str:
        header = (f'"""{self.about}\n\nRevision ID: 0002\nRevises: 0001\nCreate Date: 2026-11-02 14:12:09\n"""\n'
                  "from alembic import op\nimport sqlalchemy as sa\n\n"
                  'revision = "0002"\ndown_revision = "0001"\nbranch_labels = None\ndepends_on = None\n\n')
        return header + textwrap.dedent(self.body).lstrip()


def s(*names: str) -> frozenset[str]:
    return frozenset(names)


ADMIN_NOTES = {"app/admin.py": '''"""Back-office screens."""
import sqlalchemy as sa

from app.db import engine


def customer_card(user_id):
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT u.name, u.email, u.legacy_notes FROM users u WHERE u.id = :id"), {"id": user_id}
        ).first()
    return {"name": row.name, "email": row.email, "notes": row.legacy_notes}
'''}

SCENARIOS: list[Scenario] = [
    Scenario(
        "s01_country_required", "make users.country required",
        '''
        def upgrade():
            with op.batch_alter_table("users") as batch_op:
                batch_op.alter_column("country", existing_type=sa.String(2), nullable=False)


        def downgrade():
            with op.batch_alter_table("users") as batch_op:
                batch_op.alter_column("country", existing_type=sa.String(2), nullable=True)
        ''',
        s(FD, BC), per_dialect={"postgresql": s(FD, BC, BW)}, unsure={"sqlite": s(BW), "mariadb": s(BW)}),
    Scenario(
        "s02_unique_email", "unique e-mail addresses",
        '''
        def upgrade():
            op.drop_index("ix_users_email", table_name="users")
            op.create_index("ix_users_email", "users", ["email"], unique=True)


        def downgrade():
            op.drop_index("ix_users_email", table_name="users")
            op.create_index("ix_users_email", "users", ["email"])
        ''',
        s(FD), per_dialect={"postgresql": s(FD, BW)}, unsure={"sqlite": s(BW)}),
    Scenario(
        "s03_reviews_fk", "reviews reference products",
        '''
        def upgrade():
            with op.batch_alter_table("reviews") as batch_op:
                batch_op.create_foreign_key("fk_reviews_product", "products", ["product_id"], ["id"])


        def downgrade():
            with op.batch_alter_table("reviews") as batch_op:
                batch_op.drop_constraint("fk_reviews_product", type_="foreignkey")
        ''',
        # SQLite copies the rows with foreign keys unchecked (PRAGMA foreign_keys is off in a migration): the
        # upgrade passes and the orphans stay, violating the new key; whether that "fails on data" is moot.
        s(FD, BW), per_dialect={"sqlite": s()}, unsure={"sqlite": s(FD, BW)}),
    Scenario(
        "s04_rating_check", "ratings are 1..5",
        '''
        def upgrade():
            op.execute("ALTER TABLE reviews ADD CONSTRAINT ck_reviews_rating CHECK (rating BETWEEN 1 AND 5)")


        def downgrade():
            op.execute("ALTER TABLE reviews DROP CONSTRAINT ck_reviews_rating")
        ''',
        s(FD), per_dialect={"postgresql": s(FD, BW)}, unsure={"mariadb": s(BW)}, dialects=("postgresql", "mariadb")),
    Scenario(
        "s05_zip_to_integer", "store zip codes as integers",
        '''
        def upgrade():
            with op.batch_alter_table("users") as batch_op:
                batch_op.alter_column("zip_code", existing_type=sa.String(10), type_=sa.Integer(),
                                      postgresql_using="zip_code::integer")


        def downgrade():
            with op.batch_alter_table("users") as batch_op:
                batch_op.alter_column("zip_code", existing_type=sa.Integer(), type_=sa.String(10))
        ''',
        # PostgreSQL and MariaDB refuse 'SW1A'; SQLite's batch copy CASTs it to 0 and '01234' to 1234.
        s(FD, LD, BW), per_dialect={"sqlite": s(LD)}, unsure={"*": s(LG), "sqlite": s(BW)}),
    Scenario(
        "s06_drop_legacy_notes_still_read", "drop users.legacy_notes",
        '''
        def upgrade():
            op.drop_column("users", "legacy_notes")


        def downgrade():
            op.add_column("users", sa.Column("legacy_notes", sa.Text(), nullable=True))
        ''',
        s(LD, BC, LG), unsure={"sqlite": s(BW)}, files=ADMIN_NOTES),
    Scenario(
        "s07_drop_audit_log", "retire the audit_log table (no code uses it since 3.2)",
        '''
        def upgrade():
            op.drop_table("audit_log")


        def downgrade():
            op.create_table(
                "audit_log",
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("entity", sa.String(40), nullable=False),
                sa.Column("entity_id", sa.Integer, nullable=False),
                sa.Column("action", sa.String(20), nullable=False),
                sa.Column("payload", sa.Text, nullable=True),
                sa.Column("created_at", sa.DateTime, nullable=False),
            )
        ''',
        s(LD, LG)),
    Scenario(
        "s08_purge_old_audit", "purge audit entries older than 2024",
        '''
        def upgrade():
            op.execute("DELETE FROM audit_log WHERE created_at < '2024-01-01'")


        def downgrade():
            pass
        ''',
        s(LD, LG), unsure={"*": s(BW)}),
    Scenario(
        "s09_shorter_titles", "product titles fit the new card layout (80 chars)",
        '''
        def upgrade():
            op.alter_column("products", "title", existing_type=sa.String(200), type_=sa.String(80),
                            existing_nullable=False)


        def downgrade():
            op.alter_column("products", "title", existing_type=sa.String(80), type_=sa.String(200),
                            existing_nullable=False)
        ''',
        # both servers refuse the long titles (strict mode on MariaDB); the writers of long titles are old code
        s(FD, BW), unsure={"*": s(BC, LD)}, dialects=("postgresql", "mariadb")),
    Scenario(
        "s10_price_whole_units", "prices in whole currency units",
        '''
        def upgrade():
            with op.batch_alter_table("products") as batch_op:
                batch_op.alter_column("price", existing_type=sa.Numeric(10, 2), type_=sa.Integer(),
                                      existing_nullable=False)


        def downgrade():
            with op.batch_alter_table("products") as batch_op:
                batch_op.alter_column("price", existing_type=sa.Integer(), type_=sa.Numeric(10, 2),
                                      existing_nullable=False)
        ''',
        s(LD, BW), unsure={"*": s(LG), "sqlite": s(BW), "mariadb": s(FD)}),
    Scenario(
        "s11_widen_name", "longer user names",
        '''
        def upgrade():
            with op.batch_alter_table("users") as batch_op:
                batch_op.alter_column("name", existing_type=sa.String(100), type_=sa.String(255),
                                      existing_nullable=False)


        def downgrade():
            with op.batch_alter_table("users") as batch_op:
                batch_op.alter_column("name", existing_type=sa.String(255), type_=sa.String(100),
                                      existing_nullable=False)
        ''',
        # narrowing back loses only names written longer after the upgrade
        s(), unsure={"*": s(LG), "sqlite": s(BW)}),
    Scenario(
        "s12_add_shipped_at", "orders.shipped_at",
        '''
        def upgrade():
            op.add_column("orders", sa.Column("shipped_at", sa.DateTime(), nullable=True))


        def downgrade():
            op.drop_column("orders", "shipped_at")
        ''',
        s(), unsure={"sqlite": s(BW)}),
    Scenario(
        "s13_currency_expand_backfill", "orders.currency: add, backfill, require (with a default for old writers)",
        '''
        def upgrade():
            op.add_column("orders", sa.Column("currency", sa.String(3), nullable=True))
            op.execute("UPDATE orders SET currency = 'EUR' WHERE currency IS NULL")
            with op.batch_alter_table("orders") as batch_op:
                batch_op.alter_column("currency", existing_type=sa.String(3), nullable=False,
                                      server_default="EUR")


        def downgrade():
            with op.batch_alter_table("orders") as batch_op:
                batch_op.drop_column("currency")
        ''',
        s(), unsure={"*": s(BW)}),
    Scenario(
        "s14_index_created_at", "index orders by date (concurrently where the server can)",
        '''
        def upgrade():
            if op.get_bind().dialect.name == "postgresql":
                with op.get_context().autocommit_block():
                    op.create_index("ix_orders_created_at", "orders", ["created_at"],
                                    postgresql_concurrently=True, if_not_exists=True)
            else:
                op.create_index("ix_orders_created_at", "orders", ["created_at"])


        def downgrade():
            if op.get_bind().dialect.name == "postgresql":
                with op.get_context().autocommit_block():
                    op.drop_index("ix_orders_created_at", table_name="orders",
                                  postgresql_concurrently=True, if_exists=True)
            else:
                op.drop_index("ix_orders_created_at", table_name="orders")
        ''',
        s(), unsure={"sqlite": s(BW)}),
    Scenario(
        "s15_index_items_product", "index order_items.product_id",
        '''
        def upgrade():
            op.create_index("ix_order_items_product_id", "order_items", ["product_id"])


        def downgrade():
            op.drop_index("ix_order_items_product_id", table_name="order_items")
        ''',
        # InnoDB builds a secondary index online (LOCK=NONE); PostgreSQL blocks writes for the build. On MariaDB
        # the new index replaces the one InnoDB made for fk_items_product, so the downgrade's DROP INDEX fails
        # (errno 1553): the revision cannot be rolled back there.
        s(), per_dialect={"postgresql": s(BW), "mariadb": s(LG)}, unsure={"sqlite": s(BW)}),
    Scenario(
        "s16_public_id_volatile_default", "orders get a public uuid",
        '''
        def upgrade():
            op.add_column("orders", sa.Column("public_id", sa.Uuid(), nullable=False,
                                              server_default=sa.text("gen_random_uuid()")))


        def downgrade():
            op.drop_column("orders", "public_id")
        ''',
        s(BW), dialects=("postgresql",)),
    Scenario(
        "s17_rename_phone", "users.phone -> users.phone_number",
        '''
        def upgrade():
            with op.batch_alter_table("users") as batch_op:
                batch_op.alter_column("phone", new_column_name="phone_number", existing_type=sa.String(40),
                                      existing_nullable=True)


        def downgrade():
            with op.batch_alter_table("users") as batch_op:
                batch_op.alter_column("phone_number", new_column_name="phone", existing_type=sa.String(40),
                                      existing_nullable=True)
        ''',
        s(BC), unsure={"sqlite": s(BW)}),
    Scenario(
        "s18_rename_reviews", "reviews -> product_reviews",
        '''
        def upgrade():
            op.rename_table("reviews", "product_reviews")


        def downgrade():
            op.rename_table("product_reviews", "reviews")
        ''',
        s(BC)),
    Scenario(
        "s19_required_opt_in", "users.marketing_opt_in, required",
        '''
        def upgrade():
            op.add_column("users", sa.Column("marketing_opt_in", sa.Boolean(), nullable=False))


        def downgrade():
            op.drop_column("users", "marketing_opt_in")
        ''',
        # MariaDB fills existing rows with the implicit default 0; old INSERTs then fail in strict mode everywhere
        s(FD, BC), per_dialect={"mariadb": s(BC)}),
    Scenario(
        "s20_status_codes", "orders.status as a code",
        '''
        STATUS_CODES = {"new": 1, "paid": 2, "shipped": 3, "delivered": 4, "cancelled": 9}


        def upgrade():
            op.add_column("orders", sa.Column("status_code", sa.SmallInteger(), nullable=True))
            bind = op.get_bind()
            for status, code in STATUS_CODES.items():
                bind.execute(sa.text("UPDATE orders SET status_code = :code WHERE status = :status"),
                             {"code": code, "status": status})
            with op.batch_alter_table("orders") as batch_op:
                batch_op.drop_column("status")


        def downgrade():
            with op.batch_alter_table("orders") as batch_op:
                batch_op.add_column(sa.Column("status", sa.String(20), nullable=True))
                batch_op.drop_column("status_code")
        ''',
        # 'on_hold' orders get no code: their status is lost; old code reads and writes orders.status
        s(LD, BC, LG), unsure={"*": s(BW)}),
    Scenario(
        "s21_seed_setting", "seed the checkout.v2 feature flag",
        '''
        def upgrade():
            op.get_bind().execute(sa.text("INSERT INTO settings (name, value) VALUES (:name, :value)"),
                                  {"name": "checkout.v2", "value": "0"})


        def downgrade():
            op.get_bind().execute(sa.text("DELETE FROM settings WHERE name = :name"), {"name": "checkout.v2"})
        ''',
        s()),
    Scenario(
        "s22_in_stock_no_downgrade", "products.in_stock, filled from stock",
        '''
        def upgrade():
            op.add_column("products", sa.Column("in_stock", sa.Boolean(), nullable=True))
            op.execute("UPDATE products SET in_stock = (stock > 0)")


        def downgrade():
            pass
        ''',
        s(LG), unsure={"*": s(BW)}),
    Scenario(
        "s23_country_alpha3", "ISO 3166 alpha-3 country codes",
        '''
        ALPHA3 = {"DE": "DEU", "FR": "FRA", "GB": "GBR", "US": "USA", "NL": "NLD",
                  "ES": "ESP", "IT": "ITA", "SE": "SWE", "PL": "POL", "AT": "AUT"}


        def upgrade():
            with op.batch_alter_table("users") as batch_op:
                batch_op.alter_column("country", existing_type=sa.String(2), type_=sa.String(3),
                                      existing_nullable=True)
            conn = op.get_bind()
            for two, three in ALPHA3.items():
                conn.execute(sa.text("UPDATE users SET country = :new WHERE country = :old"),
                             {"new": three, "old": two})


        def downgrade():
            with op.batch_alter_table("users") as batch_op:
                batch_op.alter_column("country", existing_type=sa.String(3), type_=sa.String(2),
                                      existing_nullable=True)
        ''',
        # the downgrade narrows back without mapping the codes back: it fails (or, on SQLite, keeps alpha-3)
        s(LG), unsure={"*": s(BW, BC)}),
    Scenario(
        "s24_quantity_bigint", "order_items.quantity as BIGINT",
        '''
        def upgrade():
            with op.batch_alter_table("order_items") as batch_op:
                batch_op.alter_column("quantity", existing_type=sa.Integer(), type_=sa.BigInteger(),
                                      existing_nullable=False)


        def downgrade():
            with op.batch_alter_table("order_items") as batch_op:
                batch_op.alter_column("quantity", existing_type=sa.BigInteger(), type_=sa.Integer(),
                                      existing_nullable=False)
        ''',
        # int -> bigint rewrites the table on PostgreSQL and copies it on MariaDB; narrowing back fits today's rows
        s(BW), per_dialect={"sqlite": s()}, unsure={"*": s(LG), "sqlite": s(BW)}),
]
