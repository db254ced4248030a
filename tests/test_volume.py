"""Growing copies with synthetic rows that keep keys, and timing the migration against size."""
from __future__ import annotations

import pytest

from dbrunbook.data.clone import scratch_copy
from dbrunbook.demo import repair_demo_data
from dbrunbook.errors import UsageError
from dbrunbook.stages import staging as volume
from dbrunbook.stages.migration import plan_migration
from dbrunbook.stages.staging import Scale, TimingPoint
from helpers.databases import row, scalar, scratch_gone
from helpers.demo import ORPHANS
from helpers.runs import run_stages

_PROFILE = ("SELECT COUNT(*), COUNT(DISTINCT email), COUNT(country), COUNT(DISTINCT id) FROM users")


@pytest.mark.parametrize("text, factor, rows", [
    ("10x", 10.0, ()), ("2.5", 2.5, ()), (3, 3.0, ()),
    ("users=1000, orders=2000", 1.0, (("users", 1000), ("orders", 2000))),
])
def test_scale_parses(text, factor, rows):
    assert Scale.parse(text) == Scale(factor=factor, rows=rows)


@pytest.mark.parametrize("text", ["0.5x", "ten", "users=many", "5000x"])
def test_bad_scale_is_a_usage_error(text):
    with pytest.raises(UsageError, match="--scale"):
        Scale.parse(text)


def test_growth_keeps_keys_unique_references_valid_and_proportions(demo, dialect):
    with scratch_copy(demo.db) as url:
        rows, emails, countries, ids = row(url, _PROFILE)
        grown = volume.grow(url, Scale.parse("2.5x"))
        after = row(url, _PROFILE)
        orphans = {name: scalar(url, sql) for name, sql in ORPHANS.items()}
    assert grown["users"] == after[0] == 1000 and grown["orders"] == grown["order_items"] == 2000
    assert after[3] == 1000  # the primary key stayed unique
    assert orphans == {name: 0 for name in ORPHANS}
    # The duplicate e-mails and missing countries the change trips over keep their share.
    assert abs(after[1] / after[0] - emails / rows) < 0.02
    assert abs(after[2] / after[0] - countries / rows) < 0.05
    assert scratch_gone(url, dialect)


@pytest.mark.parametrize("dialect", ["sqlite", "mariadb"], indirect=True)
def test_rows_per_table_grow_only_the_named_tables(demo):
    with scratch_copy(demo.db) as url:
        grown = volume.grow(url, Scale.parse("users=1234"))
        products = row(url, "SELECT COUNT(DISTINCT sku) FROM products")[0]
    assert grown["users"] == 1234 and grown["orders"] == 800 and products == grown["products"]


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_unknown_table_in_scale_is_a_usage_error(demo):
    with scratch_copy(demo.db) as url:
        with pytest.raises(UsageError, match="nosuch"):
            volume.grow(url, Scale.parse("nosuch=10"))


def test_fit_and_predict_on_a_line():
    points = [TimingPoint(1, 1000, 1.5, True), TimingPoint(2, 2000, 2.5, True), TimingPoint(3, 3000, 3.5, True)]
    intercept, slope = volume.fit(points)
    curve = volume.TimingCurve(points, intercept, slope)
    assert curve.predict(10_000) == pytest.approx(10.5)
    with pytest.raises(UsageError):
        volume.fit(points[:1])


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"], indirect=True)
def test_timing_curve_on_a_safe_migration(demo, dialect, tmp_path):
    repair_demo_data(demo.db)
    plan = plan_migration(demo.target(), tmp_path / "plan")
    curve = volume.timing_curve(demo.target(), plan.script_dir, scales=(1, 2), production_rows=100_000, repeats=2)
    assert [p.rows for p in curve.points] == [2010, 4020] and all(p.ok for p in curve.points)
    assert curve.predicted_seconds == pytest.approx(curve.predict(100_000), abs=1e-5)
    figure = volume.plot(curve)
    assert figure.axes[0].get_xlabel() == "rows in the database"
    codes = {f.code: f for f in volume.findings(curve)}
    assert "VL001" in codes and "VL002" not in codes


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_a_failing_upgrade_blocks_the_curve(demo, tmp_path):
    plan = plan_migration(demo.target(), tmp_path / "plan")
    curve = volume.timing_curve(demo.target(), plan.script_dir, scales=(1, 2), mode="sample", rows=100)
    assert not any(p.ok for p in curve.points)
    blocked = next(f for f in volume.findings(curve) if f.code == "VL002")
    assert blocked.severity == "block" and any(w in blocked.message.lower() for w in ("null", "unique"))


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_staging_stage_draws_the_curve(demo, tmp_path):
    repair_demo_data(demo.db)
    run, result = run_stages(demo.target(), tmp_path / "runs", ["09"], {"scales": [1, 2], "production_rows": 50_000})
    assert result.verdict == "pass", result.findings
    assert [p["rows"] for p in result.data["points"]] == [2010, 4020]
    assert result.data["production_rows"] == 50_000 and result.data["predicted_seconds"] >= 0
    assert (run.path / "09-staging" / "timing.png").stat().st_size > 1000


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"], indirect=True)
def test_growth_sql_is_the_plan_and_changes_nothing(demo):
    before = row(demo.db, _PROFILE)
    statements = volume.growth_sql(demo.db, Scale.parse("3x"))
    assert row(demo.db, _PROFILE) == before
    assert len(statements) == 4 and all(s.startswith("INSERT INTO") for s in statements)
    assert "UNION ALL" in statements[0]
