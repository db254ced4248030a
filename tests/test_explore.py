"""The impact explorer: :mod:`dbrunbook.explore` on a real demo run and on live databases, its widgets, the
shipped notebook under papermill, and ``dbrunbook explore``."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import nbformat
import papermill as pm
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from dbrunbook import explore
from dbrunbook.cli import main
from dbrunbook.core.db import make_engine
from dbrunbook.demo import DUPLICATE_EMAILS, MISSING_COUNTRY, DemoProject
from dbrunbook.errors import UsageError
from dbrunbook.runbook import RunOptions, run_runbook
from helpers.databases import SERVERS, require
from helpers.demo import build_demo
from helpers.runs import assert_one_line_error, dbrunbook

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished ``update --dry-run`` of the demo on SQLite (about a minute), shared by this module's tests."""
    project = build_demo("sqlite", tmp_path_factory.mktemp("explore"))
    return run_runbook(project.target(), RunOptions(out=project.path / "runs", dry_run=True)).path


def _key(found: explore.Exploration, kind: str, text: str) -> str:
    hits = [i.key for i in found.items(kind) if text in i.label]
    assert len(hits) >= 1, (text, [i.label for i in found.items(kind)])
    return hits[0]


def _output_html(executed: nbformat.NotebookNode) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for c in executed.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))


# -- a finished run ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_run_offers_its_changes_tables_and_findings_worst_first(demo_run: Path) -> None:
    found = explore.from_run(demo_run)
    assert found.source == f"run {demo_run.name}"
    changes = found.items("change")
    assert len(changes) == 5 and changes[0].label.startswith("destructive: users.legacy_notes")
    assert changes[-1].label.startswith("additive: orders.currency")
    assert [i.key for i in found.items("table")] == ["table:order_items", "table:orders", "table:products",
                                                       "table:users"]
    codes = [i.label.split()[1] for i in found.items("finding")]
    assert {"SA001", "DS002", "DC001", "DC002", "DC006", "CI001"} <= set(codes)
    assert found.items("finding")[0].label.startswith("block") and found.items("finding")[-1].label.startswith("info")
    assert found.default() == changes[0]


@pytest.mark.slow
def test_a_change_of_a_run_shows_its_offending_rows_locks_sql_and_remedies(demo_run: Path) -> None:
    found = explore.from_run(demo_run)
    unique = found.detail(_key(found, "change", "uq_users_email"))
    assert [(r.code, r.count) for r in unique.rows] == [("DC002", DUPLICATE_EMAILS)]
    emails = Counter(row["email"] for row in unique.rows[0].sample)
    assert emails and all(n == 2 for n in emails.values()), "the sample shows each duplicate group"
    assert unique.locks and {lk.table for lk in unique.locks} == {"users"}
    assert any(s.startswith("DROP TABLE users") for s in unique.sql)
    assert any(s.startswith("CREATE TABLE _alembic_tmp_users") for s in unique.sql), "the batch copy, by its lock"
    assert not any("orders" in s.split("(")[0] for s in unique.sql)
    assert any(k.startswith("DC002 ") and "DELETE FROM users" in v for k, v in unique.remedies.items())
    assert {f.code for _, f in unique.findings} >= {"SA003", "DC002"}
    # the index on orders: no data check, its own statement and lock
    index = found.detail(_key(found, "change", "ix_orders_created_at"))
    assert not index.rows and index.sql == [s for s in index.sql if "orders" in s]
    assert any("CREATE INDEX ix_orders_created_at" in s for s in index.sql)
    assert [lk.action for lk in index.locks] == ["add_column", "create_index"]


@pytest.mark.slow
def test_a_table_and_a_finding_of_a_run(demo_run: Path) -> None:
    found = explore.from_run(demo_run)
    users = found.detail("table:users")
    assert {d["name"] for d in users.dependencies} >= {"fk_orders_user_id", "users.primary_key"}
    assert sorted(r.code for r in users.rows) == ["DC001", "DC002", "DC006"]
    assert any("legacy_notes" in s for s in users.summary)
    nulls = found.detail(_key(found, "finding", "DC001"))
    assert nulls.title == "DC001 users.country"
    assert [(r.code, r.count) for r in nulls.rows] == [("DC001", MISSING_COUNTRY)]
    assert all(row["country"] is None for row in nulls.rows[0].sample)
    assert any(s.upper().startswith("SELECT") for s in nulls.sql)
    assert any("UPDATE users SET country" in v for v in nulls.remedies.values())
    with pytest.raises(UsageError):
        found.detail("table:nope")


@pytest.mark.slow
def test_open_exploration_finds_a_run_by_id_or_latest(demo_run: Path) -> None:
    by_id = explore.open_exploration(run=demo_run.name, runs_dir=str(demo_run.parent))
    latest = explore.open_exploration(run="latest", runs_dir=str(demo_run.parent), db="ignored when a run is given")
    assert by_id.source == latest.source == f"run {demo_run.name}"
    with pytest.raises(UsageError, match="nothing to explore"):
        explore.open_exploration()


@pytest.mark.slow
def test_the_cli_writes_the_run_notebook_and_papermill_renders_it(demo_run: Path, tmp_path: Path) -> None:
    result = dbrunbook("explore", "latest", "--runs-dir", str(demo_run.parent), "--print-path",
                       "--out", str(tmp_path / "work"))
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path == tmp_path / "work" / explore.NOTEBOOK
    cells = nbformat.read(path, as_version=4).cells
    injected = [c for c in cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and f"run = {json.dumps(str(demo_run))}" in injected[0].source
    executed = pm.execute_notebook(str(path), str(tmp_path / "executed.ipynb"), cwd=str(tmp_path), progress_bar=False)
    html = _output_html(executed)
    assert f"Exploring run {demo_run.name}" in html
    assert "destructive: users.legacy_notes" in html and "DC006" in html and "crm note" in html


# -- a live database ---------------------------------------------------------------------------------------------

def test_a_live_database_with_models_is_checked_read_only(demo: DemoProject) -> None:
    engine = make_engine(demo.db)
    try:
        with engine.connect() as conn:
            before = conn.execute(sa.text("SELECT COUNT(*), MAX(id) FROM users")).one()
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        found = explore.from_database(demo.db, demo.models, demo.path)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*), MAX(id) FROM users")).one() == before
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == version == "0001"
            assert sorted(sa.inspect(conn).get_table_names()) == ["alembic_version", "order_items", "orders",
                                                                  "products", "users"]
    finally:
        engine.dispose()
    assert len(found.changes) == 5 and not found.locks and not found.upgrade_sql
    assert any("lock estimates" in n for n in found.notes)
    unique = found.detail(_key(found, "change", "uq_users_email"))
    assert [(r.code, r.count) for r in unique.rows] == [("DC002", DUPLICATE_EMAILS)]
    dropped = found.detail(_key(found, "change", "legacy_notes"))
    assert [r.code for r in dropped.rows] == ["DC006"] and dropped.rows[0].sample


def test_a_live_database_without_models_shows_its_schema(sqlite_demo: DemoProject) -> None:
    found = explore.from_database(sqlite_demo.db)
    assert not found.changes and not found.checks and found.items("change") == []
    assert found.default() == found.items("table")[0]
    orders = found.detail("table:orders")
    relations = {d["name"]: d["relation"] for d in orders.dependencies}
    assert relations["fk_orders_user_id"] == "references users(id)"
    assert relations["fk_order_items_order_id"] == "order_items(order_id) references it"
    assert "ix_orders_user_id" in relations
    assert "no data check" in explore.render_html(found, "table:orders")


def test_the_widgets_update_as_a_person_chooses(sqlite_demo: DemoProject) -> None:
    found = explore.from_database(sqlite_demo.db, sqlite_demo.models, sqlite_demo.path)
    ui = explore.widget(found)
    assert ui.kind.value == "change" and ui.choice.value == found.default().key
    assert "users.legacy_notes" in ui.header.value and "DC006" in ui.sections["Offending rows"].value
    ui.choice.value = _key(found, "change", "users.country")  # the dropdown's observer refreshes the tabs
    assert "users.country" in ui.header.value
    assert "DC001" in ui.sections["Offending rows"].value and "DC006" not in ui.sections["Offending rows"].value
    assert "UPDATE users SET country" in ui.sections["Remedies"].value
    ui.kind.value = "table"  # the kind's observer replaces the choices and shows the first
    assert [v for _, v in ui.choice.options] == [i.key for i in found.items("table")]
    assert ui.choice.value == "table:order_items" and "table order_items" in ui.header.value
    ui.select("table:users")
    assert "fk_orders_user_id" in ui.sections["Dependencies"].value
    assert "stage 03 records them" in ui.sections["Locks"].value
    ui.kind.value = "finding"
    assert ui.choice.value.startswith("finding:") and "block" in ui.header.value
    bundle = ui._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/html"] == explore.render_html(found, ui.choice.value)


# -- the notebook and the command --------------------------------------------------------------------------------

@pytest.mark.slow
def test_papermill_runs_the_shipped_notebook_with_its_defaults(tmp_path: Path) -> None:
    executed = pm.execute_notebook(str(explore.notebook_path()), str(tmp_path / "out.ipynb"), cwd=str(tmp_path),
                                   progress_bar=False)
    html = _output_html(executed)
    assert "Exploring sqlite:///" in html and "destructive: users.legacy_notes" in html
    for section in ("Dependencies", "Offending rows", "Locks", "SQL", "Remedies", "Findings"):
        assert f"<h4>{section}</h4>" in html
    widgets = [o for c in executed.cells for o in c.get("outputs", [])
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) == 1, "the same output carries the live widget"


def test_the_repository_notebook_is_the_shipped_one() -> None:
    assert (ROOT / "notebooks" / explore.NOTEBOOK).resolve() == explore.notebook_path().resolve()
    nb = nbformat.read(explore.notebook_path(), as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and all(f"{p} = " in params[0].source for p in ("run", "db", "models", "project"))
    assert not any(c.get("outputs") for c in nb.cells), "the shipped notebook is stored without outputs"


def test_cli_print_path_for_a_database_writes_no_password(tmp_path: Path) -> None:
    require("postgresql")
    url = sa.make_url(SERVERS["postgresql"]).set(password="s3cret-explore").render_as_string(hide_password=False)
    result = dbrunbook("explore", "--db", url, "--models", "demo_app.models:metadata", "--print-path",
                       "--out", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = Path(result.stdout.strip()).read_text()
    assert "s3cret-explore" not in text and ":***@" in text and "demo_app.models:metadata" in text


def test_cli_without_a_run_or_a_database_says_what_to_give(tmp_path: Path) -> None:
    assert_one_line_error(dbrunbook("explore", "--print-path", cwd=tmp_path), 2, "no run in", "--db")
    assert_one_line_error(dbrunbook("explore", "some-run", "--db", "demo", cwd=tmp_path), 2, "not both")
    assert_one_line_error(dbrunbook("explore", "--db", f"sqlite:///{tmp_path / 'none.db'}", cwd=tmp_path), 5,
                          "none.db")


def test_cli_without_jupyterlab_names_the_install_command(sqlite_demo: DemoProject, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jupyterlab", None)  # as if the [lab] extra were not installed
    result = CliRunner().invoke(main, ["explore", "--db", sqlite_demo.db, "--project", str(sqlite_demo.path),
                                       "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "pip install 'dbrunbook[lab]'" in result.output and "Traceback" not in result.output
    assert (tmp_path / explore.NOTEBOOK).is_file(), "the notebook is written before the server is looked for"


@pytest.mark.slow
def test_the_notebook_ships_in_the_wheel(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "-w", str(tmp_path), "--no-deps", "-q"],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("dbrunbook-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "dbrunbook/_notebooks/explore-impact.ipynb" in names and "dbrunbook/explore/__init__.py" in names
        shipped = nbformat.reads(zf.read("dbrunbook/_notebooks/explore-impact.ipynb").decode(), as_version=4)
    assert shipped == nbformat.read(explore.notebook_path(), as_version=4)
