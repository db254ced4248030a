"""What people read of a run: the CLI's text, and the exported HTML (index and stage pages) of a real run."""
import html
import json
import re

import nbformat
import pytest

from dbrunbook.core.db import make_engine
from dbrunbook.core.results import COLOURS, Finding, StageResult, fix_html, load_result
from dbrunbook.runbook._html import index_page
from dbrunbook.runbook.report import export_run, render_run
from dbrunbook.stages.data_checks.profile import charted, profile_table
from helpers.demo import build_demo
from helpers.runs import run_stages


def _run(tmp_path, verdict, stages):
    (tmp_path / "manifest.json").write_text(json.dumps({
        "run_id": "20260101T000000Z-shop-abcdef", "target": "postgresql://app:***@db/shop", "verdict": verdict,
        "stages": [{"name": name, "status": verdict, "summary": "s"} for name in stages]}))
    return render_run(tmp_path)


def test_a_plan_without_stage_10_evidence_does_not_name_the_apply_command(tmp_path):
    # A manifest alone proves nothing apply would accept (the positive case: tests/test_apply.py).
    assert "next: dbrunbook apply" not in _run(tmp_path, "warn", ["01-schema-analysis", "10-production-plan"])


def test_no_apply_hint_when_blocked_or_without_a_plan(tmp_path):
    assert "next:" not in _run(tmp_path, "block", ["01-schema-analysis", "10-production-plan"])
    assert "next:" not in _run(tmp_path, "pass", ["01-schema-analysis"])


# --- the HTML export of a real run of the demo (SQLite): 02 passes, 05 and 09 block, 10 plans ---------------

STAGES = ["02", "05", "09", "10"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The demo run of ``STAGES``, exported: (run, export folder, demo project)."""
    folder = tmp_path_factory.mktemp("report")
    demo = build_demo("sqlite", folder)
    run, _ = run_stages(demo.target(), folder / "runs", STAGES, {"scales": [1, 2]})
    out = folder / "html"
    assert export_run(run.path, out) == out / "index.html"
    return run, out, demo


def _text(page: str) -> str:
    """What a reader sees of ``page``: no tags, entities resolved."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def _section(page: str, stage: str) -> str:
    found = re.search(rf'<section class="stage [^"]*" id="{stage}".*?</section>', page, re.DOTALL)
    assert found, f"no section of {stage}"
    return found.group(0)


def test_index_colours_each_stage_by_its_verdict_and_links_its_page(exported):
    run, out, _ = exported
    page = (out / "index.html").read_text()
    assert [s.status for s in run.stages] == ["pass", "block", "block", "block"], run.stages
    assert f'class="run-head verdict-block" style="background:{COLOURS["block"]}"' in page
    for stage in run.stages:
        section = _section(page, stage.name)
        assert f'status-{stage.status}" id="{stage.name}" style="border-left-color:{COLOURS[stage.status]}"' \
            in section
        assert f'class="dbrunbook-badge badge-{stage.status}" style="background:{COLOURS[stage.status]}' in section
        assert f'<a href="{stage.name}.html">' in section and (out / f"{stage.name}.html").is_file()
    assert "<script" not in page and "http://" not in page and "https://" not in page  # reads offline
    assert "<style>" in page and "sqlite:///" in page and "dbrunbook</th>" in page  # metadata of the run


def test_index_lists_each_stages_findings_with_full_messages_and_fixes(exported):
    run, out, _ = exported
    page = (out / "index.html").read_text()
    for stage in run.stages:
        section = _section(page, stage.name)
        result = load_result(run.path, stage.name)
        assert result is not None
        for finding in result.findings:
            assert f"<code>{html.escape(finding.code)}</code>" in section
            assert f'severity-{finding.severity}"' in section
            assert html.escape(finding.message) in section, finding.message  # whole, never cut
            shown = _text(section)
            for line in filter(None, finding.fix.splitlines()):  # every line of the fix, highlighted or not
                assert line.lstrip("-# ") in shown, line
    longest = max((f.message for s in run.stages for f in load_result(run.path, s.name).findings), key=len)
    assert len(longest) > 150 and html.escape(longest) in page


def test_the_python_remedy_is_highlighted_as_python_and_the_sql_as_sql(exported):
    _, out, _ = exported
    for page in ("index.html", "05-data-checks.html"):
        text = (out / page).read_text()
        blocks = re.findall(r'<pre class="dbrunbook-code language-(\w+)"[^>]*>(.*?)</pre>', text, re.DOTALL)
        python = [body for language, body in blocks if "alter_column(" in _text(body)]  # the migration's remedy
        sql = [language for language, body in blocks if _text(body).startswith(("UPDATE", "CREATE TABLE"))]
        assert python and all("<span" in body for body in python), page  # pygments marked the tokens up
        assert {language for language, body in blocks if body in python} == {"python"}, page
        assert sql and set(sql) == {"sql"}, page


def _outputs(notebook):
    for cell in nbformat.read(notebook, as_version=4).cells:
        yield from cell.get("outputs", [])


def test_no_raw_repr_in_any_page_or_notebook_and_pandas_cuts_nothing(exported):
    run, out, _ = exported
    for page in out.glob("*.html"):
        text = page.read_text()
        assert "StageResult(" not in text and "Finding(" not in text, page.name
        assert "<IPython.core.display" not in text, page.name
    for stage in run.stages:
        outputs = list(_outputs(run.path / stage.notebook))
        shown = [o for o in outputs if "application/vnd.dbrunbook.result+json" in o.get("data", {})]
        assert len(shown) == 1 and "text/html" in shown[0]["data"], stage.name  # once, renderable in Lab
        assert not any("StageResult(" in str(o.get("data", {}).get("text/plain", "")) for o in outputs)
        page = (out / f"{stage.name}.html").read_text()
        result = load_result(run.path, stage.name)
        banner = page[page.index('<div class="dbrunbook-banner'):][:2000]
        assert f"badge-{stage.status}" in banner and html.escape(result.summary) in banner
        assert f"{len(result.findings)} finding" in banner
        assert page.index('<div class="dbrunbook-banner') < page.index('class="jp-Cell')  # the summary comes first
        assert "cdnjs" not in page
    checks = (out / "05-data-checks.html").read_text()
    failing = [f for f in load_result(run.path, "05-data-checks").findings if f.severity == "block"]
    assert max(len(f.message) for f in failing) > 50  # longer than pandas shows by default
    for finding in failing:  # in the checks table (pandas) as in the result: whole in both
        assert checks.count(html.escape(finding.message)) >= 2, finding.message


def test_staging_predicts_nothing_from_failed_runs(exported):
    run, out, _ = exported
    result = load_result(run.path, "09-staging")
    assert result.verdict == "block" and not any(p["ok"] for p in result.data["points"])
    assert result.data["predicted_seconds"] is None and result.data["slope"] == 0.0
    assert "no prediction" in result.summary and "predicted at" not in result.summary
    vl001 = next(f for f in result.findings if f.code == "VL001")
    assert vl001.message.startswith("no prediction")
    printed = "".join(o.get("text", "") for o in _outputs(run.path / "09-staging.ipynb"))
    assert "no prediction" in printed and "predicted at" not in printed


def test_production_plan_shows_the_checklist_once(exported):
    run, _, _ = exported
    outputs = list(_outputs(run.path / "10-production-plan.ipynb"))
    shown = [o for o in outputs if any(mark in json.dumps(o.get("data", {})) for mark in ("[x]", "[ ]", "[~]"))]
    assert len(shown) == 1
    assert sum("Pre-migration checklist" in json.dumps(o.get("data", {})) for o in outputs) == 0
    assert "## Pre-migration checklist" in (run.path / "10-production-plan" / "plan.md").read_text()


def test_profile_charts_leave_out_keys_timestamps_and_unique_values(exported):
    _, _, demo = exported
    engine = make_engine(demo.db)
    try:
        users, orders = (profile_table(engine, table) for table in ("users", "orders"))
    finally:
        engine.dispose()
    assert {c.name for c in charted(users)} == {"country"}
    assert {c.name for c in charted(orders)} == {"status", "total"}  # the amounts' spread, not the ids


def test_a_stage_not_gathered_reads_grey_and_results_read_as_text():
    manifest = {"run_id": "r1", "target": "sqlite:///x.db", "verdict": "skipped", "started": "t", "stages": [
        {"name": "09-staging", "status": "skipped", "summary": "left out"}]}
    page = index_page(manifest, "complete", [(manifest["stages"][0], None, None)], None)
    assert f'style="background:{COLOURS["skipped"]}' in page and "NOT GATHERED" in page and "SKIPPED" not in page
    result = StageResult("05-data-checks", "warn", "1 check", [Finding("DC001", "warn", "x " * 200, "t.c")])
    assert repr(result) == "<05-data-checks: WARN - 1 check (1 finding: 1 warn)>"
    assert ("x " * 200).strip() in result.text() and ("x " * 200).strip() in result._repr_markdown_()
    assert 'class="dbrunbook-result verdict-warn"' in result._repr_html_()


def test_fixes_in_words_are_prose_and_code_is_highlighted_in_its_language():
    advice = Finding("PP014", "warn", "m",
                     fix="set notify_command in [tool.dbrunbook] (dbrunbook notify-test checks it)")
    assert "<pre" not in fix_html(advice) and "dbrunbook-prose" in fix_html(advice)
    remedies = Finding("DC001", "block", "m", fix="-- quarantine\nDELETE FROM t WHERE c IS NULL;\n\n"
                                                   "# change the migration\nop.alter_column('t', 'c', nullable=False)")
    assert re.findall(r"language-(\w+)", fix_html(remedies)) == ["sql", "python"]
    listed = Finding("DC001", "block", "m",
                     evidence={"remedies": [{"name": "n", "language": "python", "code": "x = 1"}]})
    assert re.findall(r"language-(\w+)", fix_html(listed)) == ["python"]  # the language the check names
