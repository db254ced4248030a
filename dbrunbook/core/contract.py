"""The contract between stages: every stage declared once, with the evidence it records for the stages after it.

Each :class:`StageSpec` names a stage (``03-migration``), its template relative to ``runbooks/``, the package
that holds its code (``dbrunbook.stages.migration``, named like the notebook), the evidence type its sidecar
holds (:mod:`dbrunbook.core.evidence`) and the :class:`~dbrunbook.runbook.engine.RunOptions` option that runs it
when it is optional. A stage writes its evidence with ``stage.finish(summary, evidence=...)``; every other
module reads it only through :func:`load` / :func:`recorded` (or ``Stage.earlier``), which parse it strictly.
Stage names and run-folder paths (``MIGRATION.dir(run_dir) / "alembic"``) come from here, not from literals.

A stage's sidecar is found by its name, else (for a numbered stage of a renamed template) by its number:
``06-*.result.json``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from dbrunbook.core.evidence import (
    CodeImpactEvidence,
    DataChecksEvidence,
    DesignValidationEvidence,
    DevRehearsalEvidence,
    Evidence,
    EvidenceError,
    GuardedApplyEvidence,
    MigrationEvidence,
    PerformanceEvidence,
    PostMigrationEvidence,
    ProductionPlanEvidence,
    RollbackPlanEvidence,
    SchemaAnalysisEvidence,
    StagingEvidence,
    TestsEvidence,
)
from dbrunbook.core.results import Finding, StageResult, load_result, sidecar_path

E = TypeVar("E", bound=Evidence)


@dataclass(frozen=True)
class StageSpec(Generic[E]):
    """One stage of the workflow: its name, template, package, evidence type and enabling option."""

    name: str
    #: The template, relative to the ``runbooks/`` folder.
    template: str
    #: The package holding the stage's code, named like its notebook.
    package: str
    evidence: type[E]
    #: The :class:`~dbrunbook.runbook.engine.RunOptions` attribute that runs this stage; "" when it always runs.
    option: str = ""
    #: The stages whose records or files this one reads, so must have finished before it starts (when they run);
    #: ``("*",)``: every stage before it. The engine runs a stage as soon as these are done, beside others.
    reads: tuple[str, ...] = ()

    @property
    def number(self) -> str:
        """``03`` for ``03-migration``; "" for a stage without a number (``rollback-plan``)."""
        head = self.name[:2]
        return head if head.isdigit() and self.name[2:3] == "-" else ""

    @property
    def key(self) -> str:
        """How the stage is named in messages and ``--stages``: its number, else its name."""
        return self.number or self.name

    def dir(self, run_dir: str | Path) -> Path:
        """The stage's artifact folder in ``run_dir`` (not created here)."""
        return Path(run_dir) / self.name

    def path(self, *parts: str) -> str:
        """An artifact's path relative to the run folder, as sidecars record it: ``03-migration/upgrade.sql``."""
        return "/".join((self.name, *parts))

    def recorded_name(self, run_dir: str | Path) -> str | None:
        """The name under which the stage left its sidecar in ``run_dir`` (its own, else its number's), or None."""
        folder = Path(run_dir)
        if sidecar_path(folder, self.name).is_file():
            return self.name
        if not self.number:
            return None
        found = sorted(p.name[: -len(".result.json")] for p in folder.glob(f"{self.number}-*.result.json"))
        return found[0] if found else None

    def parse(self, raw: Any, stage: str = "") -> E:
        """The stage's evidence in ``raw`` (a sidecar's ``data``), strictly (:class:`EvidenceError` otherwise)."""
        return self.evidence.from_json(raw, stage=stage or self.name)


@dataclass(frozen=True)
class Recorded(Generic[E]):
    """An earlier stage's recorded result (verdict, summary, findings) and its evidence, parsed."""

    result: StageResult
    evidence: E

    @property
    def stage(self) -> str:
        """The name the stage recorded under (``06-code-impact``, or a renamed template's)."""
        return self.result.stage

    @property
    def verdict(self) -> str:
        return self.result.verdict

    @property
    def summary(self) -> str:
        return self.result.summary

    @property
    def findings(self) -> list[Finding]:
        return self.result.findings


# ``reads``: stage 03 waits for 01 because it may write the generated revision into the project whose revisions
# 01 applies to a copy; 06 scans the project's files, where 03 may write; the rest read evidence or 03's scripts.
SCHEMA_ANALYSIS = StageSpec("01-schema-analysis", "01-schema-analysis.ipynb", "dbrunbook.stages.schema_analysis",
                            SchemaAnalysisEvidence)
DESIGN_VALIDATION = StageSpec("02-design-validation", "02-design-validation.ipynb",
                              "dbrunbook.stages.design_validation", DesignValidationEvidence)
MIGRATION = StageSpec("03-migration", "03-migration.ipynb", "dbrunbook.stages.migration", MigrationEvidence,
                      reads=("01-schema-analysis",))
DEV_REHEARSAL = StageSpec("04-dev-rehearsal", "04-dev-rehearsal.ipynb", "dbrunbook.stages.dev_rehearsal",
                          DevRehearsalEvidence, reads=("03-migration",))
DATA_CHECKS = StageSpec("05-data-checks", "05-data-checks.ipynb", "dbrunbook.stages.data_checks", DataChecksEvidence,
                        reads=("01-schema-analysis", "03-migration", "04-dev-rehearsal"))
CODE_IMPACT = StageSpec("06-code-impact", "06-code-impact.ipynb", "dbrunbook.stages.code_impact", CodeImpactEvidence,
                        reads=("01-schema-analysis", "03-migration"))
TESTS = StageSpec("07-tests", "07-tests.ipynb", "dbrunbook.stages.tests", TestsEvidence, reads=("03-migration",))
PERFORMANCE = StageSpec("08-performance", "08-performance.ipynb", "dbrunbook.stages.performance", PerformanceEvidence,
                        reads=("03-migration", "07-tests", "rollback-plan"))
STAGING = StageSpec("09-staging", "09-staging.ipynb", "dbrunbook.stages.staging", StagingEvidence,
                    reads=("03-migration",))
ROLLBACK_PLAN = StageSpec("rollback-plan", "rollback-plan.ipynb", "dbrunbook.stages.rollback_plan",
                          RollbackPlanEvidence, option="rollback_plan", reads=("03-migration", "04-dev-rehearsal"))
PRODUCTION_PLAN = StageSpec("10-production-plan", "10-production-plan.ipynb", "dbrunbook.stages.production_plan",
                            ProductionPlanEvidence, reads=("*",))
# 11 and 12 read the plan run's 01, 03 and 10 (another run, finished): in an apply run only 12 waits, for 11.
GUARDED_APPLY = StageSpec("11-guarded-apply", "apply/11-guarded-apply.ipynb", "dbrunbook.stages.guarded_apply",
                          GuardedApplyEvidence, reads=("01-schema-analysis", "03-migration", "10-production-plan"))
POST_MIGRATION = StageSpec("12-post-migration", "apply/12-post-migration.ipynb", "dbrunbook.stages.post_migration",
                           PostMigrationEvidence, reads=("01-schema-analysis", "10-production-plan",
                                                         "11-guarded-apply"))

#: Every stage, in the order ``dbrunbook update`` (01-10, the optional ones before 10) and ``apply`` (11, 12) run them.
STAGES: tuple[StageSpec[Any], ...] = (
    SCHEMA_ANALYSIS, DESIGN_VALIDATION, MIGRATION, DEV_REHEARSAL, DATA_CHECKS, CODE_IMPACT, TESTS, PERFORMANCE,
    STAGING, ROLLBACK_PLAN, PRODUCTION_PLAN, GUARDED_APPLY, POST_MIGRATION,
)
_BY_EVIDENCE: dict[type[Evidence], StageSpec[Any]] = {s.evidence: s for s in STAGES}
_BY_NAME: dict[str, StageSpec[Any]] = {s.name: s for s in STAGES}
if len(_BY_EVIDENCE) != len(STAGES) or len(_BY_NAME) != len(STAGES):
    raise ValueError("every stage of the contract has a name and an evidence type of its own")


def spec(of: type[E] | StageSpec[E]) -> StageSpec[E]:
    """The stage that records evidence of type ``of`` (a spec is its own)."""
    if isinstance(of, StageSpec):
        return of
    try:
        return _BY_EVIDENCE[of]
    except KeyError:
        raise TypeError(f"{of.__name__} is no stage's evidence in the contract") from None


def by_name(name: str) -> StageSpec[Any] | None:
    """The stage named ``name`` exactly, or None for a stage the contract does not declare."""
    return _BY_NAME.get(name)


def optional_stages() -> dict[str, str]:
    """The stages that run only when asked: name to the RunOptions option that asks for them."""
    return {s.name: s.option for s in STAGES if s.option}


def recorded(run_dir: str | Path, of: type[E] | StageSpec[E]) -> Recorded[E] | None:
    """The result and evidence the stage recording ``of`` left in ``run_dir``; None when it recorded none.

    A sidecar that is unreadable or breaks the contract raises :class:`EvidenceError`.
    """
    stage = spec(of)
    name = stage.recorded_name(run_dir)
    if name is None:
        return None
    try:
        result = load_result(run_dir, name)
    except (ValueError, TypeError) as exc:  # not JSON, or not a stage result
        raise EvidenceError(name, sidecar_path(Path(run_dir), name).name, f"unreadable: {exc}") from None
    if result is None:
        return None
    return Recorded(result, stage.parse(result.data, stage=name))


def load(run_dir: str | Path, of: type[E] | StageSpec[E]) -> E | None:
    """The evidence of type ``of`` recorded in ``run_dir``, or None when its stage recorded none."""
    found = recorded(run_dir, of)
    return found.evidence if found is not None else None

