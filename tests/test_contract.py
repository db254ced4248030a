"""The typed contract between stages (dbrunbook.core.contract): every stage declared once with its evidence.

A real run of every template writes sidecars that each evidence type parses strictly and writes back unchanged
(the run-folder format is public); a renamed key fails where it is read instead of reading as "not gathered";
later stages read each other only through the contract's loaders.
"""
from __future__ import annotations

import ast
import importlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from dbrunbook import RunOptions, UsageError, run_runbook
from dbrunbook.core import codes, contract
from dbrunbook.core.evidence import (
    BackupEvidence,
    BackupTiming,
    ChecklistRecord,
    DataChecksEvidence,
    Evidence,
    EvidenceError,
    ProductionPlan,
    ProductionPlanEvidence,
    Record,
    TestCommandRun,
    TestsEvidence,
)
from dbrunbook.core.evidence._base import grouped, optional
from dbrunbook.core.results import StageResult, record, sidecar_path
from dbrunbook.core.stage import open_stage
from dbrunbook.runbook.engine import runbook_folder
from dbrunbook.stages.production_plan import CHECKLIST_IDS, CODES, checklist, production_plan
from helpers.demo import copy_demo

ROOT = Path(__file__).resolve().parents[1]
RUNBOOKS = ROOT / "runbooks"


# -- the table ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", contract.STAGES, ids=lambda s: s.name)
def test_every_stage_has_its_template_and_its_package(spec):
    template = RUNBOOKS / spec.template
    assert template.is_file() and template.stem == spec.name
    package = importlib.import_module(spec.package)
    # the package is named like the notebook (05-data-checks -> dbrunbook.stages.data_checks) and holds its step
    assert spec.package == "dbrunbook.stages." + spec.name.removeprefix(f"{spec.number}-").replace("-", "_")
    assert callable(getattr(package, "run", None)), f"{spec.package} has no run() step for its notebook"
    source = "\n".join(c.source for c in nbformat.read(template, as_version=4).cells if c.cell_type == "code")
    assert f"from dbrunbook.stages import {spec.package.rsplit('.', 1)[1]}\n" in source
    assert f"open_stage(\"{spec.name}\"" in source and "evidence=" in source


def test_every_template_is_in_the_table():
    found = {str(p.relative_to(RUNBOOKS)) for p in RUNBOOKS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts}
    assert found == {s.template for s in contract.STAGES}


def test_the_engine_takes_the_optional_stages_from_the_contract():
    from dbrunbook.runbook.engine import OPTIONAL_STAGES
    from dbrunbook.runbook.engine import RunOptions as Options

    assert OPTIONAL_STAGES == {"rollback-plan": "rollback_plan"}
    assert all(hasattr(Options(), option) for option in OPTIONAL_STAGES.values())


def test_paths_and_names_come_from_the_table(tmp_path):
    assert contract.MIGRATION.path("upgrade.sql") == "03-migration/upgrade.sql"
    assert contract.MIGRATION.dir(tmp_path) / "alembic" == tmp_path / "03-migration" / "alembic"
    assert (contract.CODE_IMPACT.key, contract.ROLLBACK_PLAN.key) == ("06", "rollback-plan")
    assert contract.spec(TestsEvidence) is contract.TESTS and contract.by_name("notes") is None


def _library_constants() -> list[tuple[str, int, str]]:
    names = [s.name for s in contract.STAGES]
    found = []
    for path in sorted((ROOT / "dbrunbook").rglob("*.py")):
        if "_templates" in path.parts or path == ROOT / "dbrunbook" / "core" / "contract.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    any(node.value == n or node.value.startswith(n + "/") for n in names):
                found.append((str(path.relative_to(ROOT)), node.lineno, node.value))
    return found


#: Stage-name literals left in modules the contract's migration did not own (to move to contract.* there).
_NOT_YET: set[str] = set()


def test_stage_names_and_run_folder_paths_are_not_literals_in_the_library():
    found = [f for f in _library_constants() if f[0] not in _NOT_YET]
    assert found == [], "use dbrunbook.core.contract (MIGRATION.name, MIGRATION.path('upgrade.sql'), ...)"


def _code_cells() -> list[tuple[str, str]]:
    return [(f"{path.relative_to(ROOT)} cell {i}", cell.source)
            for path in sorted(RUNBOOKS.rglob("*.ipynb"))
            for i, cell in enumerate(nbformat.read(path, as_version=4).cells) if cell.cell_type == "code"]


def test_stages_read_each_other_only_through_the_contract():
    raw = (".data.get(", ".data[", "earlier(\"", "load_result(")
    sources = [(str(p.relative_to(ROOT)), p.read_text()) for p in sorted((ROOT / "dbrunbook").rglob("*.py"))
               if "core" not in p.relative_to(ROOT / "dbrunbook").parts[:1] and "_templates" not in p.parts]
    offenders = [(where, needle) for where, text in sources + _code_cells() for needle in raw[:2] if needle in text]
    assert offenders == [], "read another stage's evidence with contract.load / stage.earlier(EvidenceType)"
    stages = [(w, t) for w, t in sources if w.startswith("dbrunbook/stages/")] + _code_cells()
    assert [(w, n) for w, t in stages for n in raw[2:] if n in t] == []
    assert not any("stage.data" in text for _, text in _code_cells()), "notebooks record evidence, not stage.data"


_EVIDENCE_NAMES = {spec.evidence.__name__: spec for spec in contract.STAGES}
_SPEC_NAMES = {name: getattr(contract, name) for name in dir(contract)
               if isinstance(getattr(contract, name), contract.StageSpec)}
_READS_OF_ITS_OWN = {"scripts_for": contract.MIGRATION, "run_changes": contract.SCHEMA_ANALYSIS}


@pytest.mark.parametrize("spec", [s for s in contract.STAGES if "*" not in s.reads], ids=lambda s: s.name)
def test_a_stage_reads_only_the_stages_it_declares(spec):
    """The engine runs a stage beside others once its ``reads`` are done: reading anything else would race."""
    package = ROOT / spec.package.replace(".", "/")
    read: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "earlier":
                read |= {_EVIDENCE_NAMES[a.id].name for a in node.args if isinstance(a, ast.Name)
                         and a.id in _EVIDENCE_NAMES}
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "contract" \
                    and node.attr in _SPEC_NAMES:
                read.add(_SPEC_NAMES[node.attr].name)
            if isinstance(node, ast.Name) and node.id in _READS_OF_ITS_OWN:
                read.add(_READS_OF_ITS_OWN[node.id].name)
    undeclared = read - set(spec.reads) - {spec.name}
    assert undeclared == set(), f"{spec.name} reads {sorted(undeclared)}: add them to its reads in core/contract.py"


def test_stages_that_read_nothing_of_each_other_may_run_together():
    from dbrunbook.runbook._schedule import prerequisites

    chosen = [Path(f"{spec.name}.ipynb") for spec in contract.STAGES[:11]]
    waits = prerequisites(chosen)
    assert waits["02-design-validation"] == set() and waits["07-tests"] == {"03-migration"}
    assert waits["05-data-checks"] == {"01-schema-analysis", "03-migration", "04-dev-rehearsal"}
    assert waits["10-production-plan"] == {c.stem for c in chosen[:10]}  # the plan reads every stage before it
    custom = [Path("01-schema-analysis.ipynb"), Path("05-mine.ipynb"), Path("06-code-impact.ipynb")]
    assert prerequisites(custom)["05-mine"] == {"01-schema-analysis"}  # a template the contract does not know waits
    assert prerequisites(custom)["06-code-impact"] == {"01-schema-analysis", "05-mine"}  # and is waited for


# -- stable PP codes ------------------------------------------------------------------------------------------------

#: The checklist codes as they were numbered when they were made literal: never renumbered.
PP_CODES = {"schema-analysed": "PP001", "design-valid": "PP002", "migration-reviewed": "PP003",
            "rollback-present": "PP004", "rehearsed": "PP005", "data-checks-pass": "PP006",
            "code-impact-clear": "PP007", "tests-pass": "PP008", "performance-ok": "PP009",
            "staging-within-window": "PP010", "rollback-proven": "PP011", "backup-verified": "PP012",
            "team-approval": "PP013", "monitoring-configured": "PP014"}


def test_checklist_codes_are_literal_unique_and_declared():
    assert CODES == {item: PP_CODES[item] for item in CHECKLIST_IDS} and set(CHECKLIST_IDS) == set(PP_CODES)
    assert len(set(CODES.values())) == len(CODES)
    for item, code in CODES.items():
        declared = getattr(codes, code)
        assert declared.name == item and declared.family == "PP"
    source = (ROOT / "dbrunbook" / "stages" / "production_plan" / "_checklist.py").read_text()
    assert 'f"PP{' not in source and "enumerate(" not in source.split("CODES =", 1)[1].split("\n", 1)[0]


# -- the records ----------------------------------------------------------------------------------------------------

@dataclass
class _Point(Record):
    x: int
    label: str = ""


@dataclass
class _Sample(Evidence):
    points: list[_Point]
    ratio: float | None = None
    note: str | None = optional()
    left: str | None = grouped("pair")
    right: int | None = grouped("pair")


def test_a_record_reads_strictly_and_writes_back_the_same_keys():
    raw = {"points": [{"x": 1}, {"x": 2, "label": "b"}], "ratio": 3}
    sample = _Sample.from_json(raw, stage="99-sample")
    assert sample.points == [_Point(1), _Point(2, "b")] and sample.ratio == 3.0
    assert sample.to_json() == {"points": [{"x": 1, "label": ""}, {"x": 2, "label": "b"}], "ratio": 3.0}
    sample.left = "l"
    assert sample.to_json()["right"] is None and "note" not in sample.to_json()  # a group is written whole


@pytest.mark.parametrize("raw, where, problem", [
    ({}, "data", "missing key 'points'"),
    ({"points": [{"x": "1"}]}, "data.points[0].x", "expected int, got str"),
    ({"points": [{"x": True}]}, "data.points[0].x", "expected int, got bool"),
    ({"points": {"x": 1}}, "data.points", "expected a list"),
    ({"points": [], "ratio": "fast"}, "data.ratio", "expected float"),
    ({"points": [], "rattio": 1.0}, "data", "unknown key 'rattio'"),
    ({"points": [{"x": 1, "lable": "a"}]}, "data.points[0]", "unknown key 'lable'"),
    ("not an object", "data", "expected an object"),
])
def test_a_record_that_breaks_its_type_fails_loudly(raw, where, problem):
    with pytest.raises(EvidenceError) as error:
        _Sample.from_json(raw, stage="99-sample")
    assert (error.value.stage, error.value.where) == ("99-sample", where) and problem in error.value.problem
    assert str(error.value).startswith("the 99-sample sidecar does not keep its contract: ")
    assert isinstance(error.value, UsageError)  # a ConfigError: the CLI reports it on one line, exit 2


def test_stage_07_writes_the_keys_of_what_ran_only():
    assert TestsEvidence().to_json() == {}  # no test command: no key, as always
    skipped = TestsEvidence(clone="sqlite://", upgrade_ok=False, tests_skipped="the upgrade fails")
    assert skipped.to_json() == {"clone": "sqlite://", "upgrade_ok": False, "tests_skipped": "the upgrade fails",
                                 "tests": None}
    ran = TestsEvidence(clone="c", upgrade_ok=True, tests_skipped="", tests=TestCommandRun("pytest", True, 0, 1.0),
                        query_counts_note="not counted")
    assert {k: v for k, v in ran.to_json().items() if k.startswith(("query", "n_plus"))} == \
        {"query_counts": None, "n_plus_one": None, "query_counts_note": "not counted"}
    assert TestsEvidence.from_json(ran.to_json()) == ran
    assert BackupTiming("not measured").to_json() == {"source": "not measured"}


# -- a real run -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(demo_template, tmp_path_factory):
    """Every template of ``update`` (with the rollback plan and a test command) and of ``apply`` on the demo."""
    folder = tmp_path_factory.mktemp("contract")
    demo = copy_demo(demo_template("sqlite"), "sqlite", folder / "demo")
    plan = run_runbook(demo.target(), RunOptions(out=folder / "runs", dry_run=True, rollback_plan=True, parameters={
        "test_cmd": f"{sys.executable} -c pass", "measure_throughput": False, "timed_batches": 0, "scales": [1, 2]}))
    applied = run_runbook(demo.target(), RunOptions(runbooks=runbook_folder("apply"), out=folder / "runs",
                                                    parameters={"plan_run": str(plan.path), "execute": False}))
    return plan, applied


@pytest.mark.slow
def test_a_real_run_keeps_the_contract(runs):
    seen = set()
    for run in runs:
        assert all(s.status != "error" for s in run.stages), run.stages
        for stage in run.stages:
            raw = json.loads(sidecar_path(run.path, stage.name).read_text())
            spec = contract.by_name(stage.name)
            evidence = spec.parse(raw["data"])
            assert evidence.to_json() == json.loads(json.dumps(raw["data"], default=str)), stage.name
            assert contract.load(run.path, spec.evidence) == evidence
            seen.add(spec.name)
    assert seen == {s.name for s in contract.STAGES}  # every evidence type was read from a real sidecar
    plan, applied = runs
    tests = contract.load(plan.path, TestsEvidence)
    assert tests.clone and tests.upgrade_ok is False and tests.tests is None  # the demo's upgrade fails on its data
    production = contract.recorded(plan.path, ProductionPlanEvidence)
    assert production.verdict == "block" and [i.id for i in production.evidence.checklist] == CHECKLIST_IDS


def _copy(run, dest: Path) -> Path:
    shutil.copytree(run.path, dest)
    return dest


def _rename(folder: Path, stage: str, change) -> None:
    path = sidecar_path(folder, stage)
    raw = json.loads(path.read_text())
    change(raw["data"])
    path.write_text(json.dumps(raw))


def _renamed(old: str, new: str):
    def change(data):
        data[new] = data.pop(old)
    return change


@pytest.mark.slow
@pytest.mark.parametrize("stage, change, where", [
    # an optional key: renamed, it would read as "no checks ran" (evidence not gathered) without the contract
    ("05-data-checks", _renamed("checks", "check_report"), "unknown key 'check_report'"),
    ("rollback-plan", _renamed("round_trip", "roundtrip"), "unknown key 'roundtrip'"),
    ("04-dev-rehearsal", lambda d: d["upgrade"].pop("ok"), "missing key 'ok'"),
    ("09-staging", lambda d: d.update(predicted_seconds="0.5"), "data.predicted_seconds: expected float"),
])
def test_a_renamed_key_fails_loudly_instead_of_reading_as_not_gathered(runs, tmp_path, stage, change, where):
    folder = _copy(runs[0], tmp_path / "run")
    _rename(folder, stage, change)
    with pytest.raises(EvidenceError, match=where) as error:
        checklist(folder)
    assert error.value.stage == stage
    with pytest.raises(EvidenceError):
        production_plan(folder) if stage != "05-data-checks" else contract.load(folder, DataChecksEvidence)


@pytest.mark.slow
def test_a_renamed_stage_is_found_by_its_number_and_held_to_the_contract(runs, tmp_path):
    folder = _copy(runs[0], tmp_path / "run")
    sidecar_path(folder, "06-code-impact").rename(sidecar_path(folder, "06-app-impact"))
    raw = json.loads(sidecar_path(folder, "06-app-impact").read_text())
    sidecar_path(folder, "06-app-impact").write_text(json.dumps({**raw, "stage": "06-app-impact"}))
    assert contract.recorded(folder, contract.CODE_IMPACT).stage == "06-app-impact"
    _rename(folder, "06-app-impact", _renamed("files_scanned", "scanned"))
    with pytest.raises(EvidenceError, match="06-app-impact"):
        checklist(folder)


# -- recording ------------------------------------------------------------------------------------------------------

def _plan(**changes) -> ProductionPlan:
    base = dict(run_id="r", target="", dialect="sqlite", revision_from=None, revision_to=None, revisions=[],
                script_dir=None, upgrade_sql=None, downgrade_sql=None, schema_before=None, expected_seconds=None,
                expected_from="unknown", abort_after_seconds=30.0, lock_timeout_ms=2000, restore_command=None)
    return ProductionPlan(**{**base, **changes})


def test_finish_records_the_evidence_the_contract_declares(tmp_path):
    stage = open_stage("10-production-plan", db=f"sqlite:///{tmp_path / 'x.db'}", run_dir=str(tmp_path))
    evidence = ProductionPlanEvidence([ChecklistRecord("design-valid", "t", True, "e", "02")], _plan())
    with pytest.raises(UsageError, match="records ProductionPlanEvidence, not TestsEvidence"):
        stage.finish("wrong", evidence=TestsEvidence())
    stage.data["checklist"] = []
    with pytest.raises(UsageError, match="evidence or stage.data, not both"):
        stage.finish("both", evidence=evidence)
    stage.data = {"check_list": [], "plan": _plan().to_json()}  # set by hand and misspelt: refused on the way in
    with pytest.raises(EvidenceError, match="unknown key 'check_list'"):
        stage.finish("misspelt")
    stage.data = {}
    result = stage.finish("ok", evidence=evidence)
    assert result.data == evidence.to_json() and contract.load(tmp_path, ProductionPlanEvidence) == evidence
    later = open_stage("11-guarded-apply", db=f"sqlite:///{tmp_path / 'x.db'}", run_dir=str(tmp_path))
    found = later.earlier(ProductionPlanEvidence)
    assert (found.stage, found.verdict, found.evidence) == ("10-production-plan", "pass", evidence)
    assert later.earlier(TestsEvidence) is None
    assert later.earlier("10-production-plan").data == evidence.to_json()  # by name: the bare result, as before


def test_an_unreadable_sidecar_is_an_evidence_error(tmp_path):
    sidecar_path(tmp_path, "03-migration").write_text("{not json")
    with pytest.raises(EvidenceError, match="03-migration.result.json: unreadable"):
        contract.load(tmp_path, contract.MIGRATION)


def test_a_backup_reads_its_restore_command_taken_or_planned(tmp_path):
    planned = {"dialect": "sqlite", "path": "b.sqlite3", "command": "cp", "restore_command": "restore it",
               "tool": "sqlite3", "package": "sqlite3"}
    assert BackupEvidence.from_json({"planned": planned}).restore_command == "restore it"
    taken = BackupEvidence.from_json({"backup": {**planned, "size": 1, "seconds": 0.1, "sha256": "x"},
                                      "restore_seconds": 0.2, "rows": 3, "ok": True, "diffs": []})
    assert taken.restore_command == "restore it" and taken.to_json()["rows"] == 3
    record(StageResult("10-production-plan", "pass", "", data={"plan": {}}), tmp_path)
    with pytest.raises(EvidenceError, match="missing key 'checklist'"):
        contract.load(tmp_path, ProductionPlanEvidence)


def test_the_apply_side_records_a_broken_plan_run_instead_of_raising(tmp_path):
    from dbrunbook.core.evidence import GuardedApplyEvidence
    from dbrunbook.stages.guarded_apply._guards import plan_ready, read_plan
    from dbrunbook.stages.post_migration import read_records

    plan_run, apply_run = tmp_path / "plan", tmp_path / "apply"
    record(StageResult("10-production-plan", "pass", "", data={"plan": {}}), plan_run)
    guard = plan_ready(plan_run)  # stage 11 never raises for the plan run: its guard refuses, on the record
    assert not guard.ok and "10-production-plan sidecar does not keep its contract" in guard.detail
    assert "missing key 'checklist'" in guard.detail and read_plan(plan_run).revisions == []
    applied = GuardedApplyEvidence(plan_run=str(plan_run), plan_run_id="plan", applied=False, aborted=False)
    record(StageResult("11-guarded-apply", "block", "", data=applied.to_json()), apply_run)
    notes = read_records(apply_run, plan_run).notes  # stage 12 validates anyway, and says what it could not use
    assert any(n.startswith("the 10-production-plan sidecar does not keep its contract") for n in notes)
