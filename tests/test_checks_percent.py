"""A ``%`` in the SQL of a check (a CHECK with a LIKE, a literal with a percent sign) counts the right rows on every
driver, and the SQL shown to people has each ``%`` once, as they would type it in the database's client.

psycopg and PyMySQL take ``%`` as the start of a placeholder, so SQLAlchemy writes each ``%`` twice for them; SQL
rendered for people and then run again as text must not carry that doubling, or the query compares with ``50%%``.
"""
from __future__ import annotations

import sqlalchemy as sa

from dbrunbook.stages.data_checks import run_checks


def test_a_check_with_a_percent_sign_counts_the_rows_it_rejects(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE codes (id INTEGER PRIMARY KEY, code VARCHAR(20))")
        conn.execute(sa.text("INSERT INTO codes VALUES (:id, :code)"),
                     [{"id": 1, "code": "50%"}, {"id": 2, "code": "ok"}, {"id": 3, "code": "50%%"},
                      {"id": 4, "code": "abc"}])
    target = sa.MetaData()
    sa.Table("codes", target, sa.Column("id", sa.Integer, primary_key=True), sa.Column("code", sa.String(20)),
             sa.CheckConstraint("code <> '50%'", name="ck_not_fifty"),
             sa.CheckConstraint("code NOT LIKE 'ab%'", name="ck_not_ab"))
    report = run_checks(engine, target)
    by_rule = {r.message.split("CHECK (")[1].split(")")[0]: r for r in report.results if r.code == "DC004"}
    assert set(by_rule) == {"code <> '50%'", "code NOT LIKE 'ab%'"}, [r.message for r in report.results]
    fifty, ab = by_rule["code <> '50%'"], by_rule["code NOT LIKE 'ab%'"]
    assert (fifty.count, list(fifty.sample["id"])) == (1, [1])  # the row holding 50%, not the one holding 50%%
    assert (ab.count, list(ab.sample["id"])) == (1, [4])
    assert "%%" not in fifty.query + ab.query
