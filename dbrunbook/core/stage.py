"""What a stage notebook works with: its target, its run folder, its findings.

A template's code cell after ``parameters`` opens the stage::

    stage = dbrunbook.open_stage("03-migration", db=db, models=models,
                                 alembic_config=alembic_config, run_dir=run_dir)

then calls its package's library step (``dbrunbook.stages.migration``), shows what it returned, and ends
with ``stage.finish(summary, evidence=...)``, which records the result (display + sidecar) with the
stage's evidence (:mod:`dbrunbook.core.contract`); a later stage reads it with
``stage.earlier(EvidenceType)``. With ``db="demo"`` the stage runs against the bundled demo project;
with ``run_dir=""`` it writes into a fresh scratch folder, so a template also runs as-is in JupyterLab
or under ``pytest --nbval-lax``.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar, overload

from sqlalchemy.engine import Engine

from dbrunbook.core import contract, fence
from dbrunbook.core.config import Target
from dbrunbook.core.db import make_engine
from dbrunbook.core.evidence import Evidence
from dbrunbook.core.results import SKIPPED, Finding, StageResult, load_result, record, verdict_of
from dbrunbook.errors import UsageError

E = TypeVar("E", bound=Evidence)


@dataclass
class Stage:
    """One stage's working context inside its notebook."""

    name: str
    run_dir: Path
    target: Target
    findings: list[Finding] = field(default_factory=list)
    #: Free-form sidecar data, for a template the contract does not declare; a contract stage records
    #: its evidence with ``finish(summary, evidence=...)`` instead.
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        """This stage's artifact folder inside the run folder."""
        path = self.run_dir / self.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def path(self, *parts: str) -> str:
        """An artifact's path relative to the run folder, as the stage's evidence records it
        (``stage.path("checks.json")`` is ``05-data-checks/checks.json``)."""
        return "/".join((self.name, *parts))

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.target.db)

    def add(self, code: str, severity: str, message: str, object: str = "",
            evidence: dict[str, Any] | None = None, fix: str = "") -> Finding:
        """Add a finding to this stage's result."""
        finding = Finding(code, severity, message, object, evidence or {}, fix)
        self.findings.append(finding)
        return finding

    def extend(self, findings: list[Finding]) -> None:
        self.findings.extend(findings)

    @overload
    def earlier(self, stage: type[E] | contract.StageSpec[E]) -> contract.Recorded[E] | None: ...

    @overload
    def earlier(self, stage: str) -> StageResult | None: ...

    def earlier(self, stage: type[E] | contract.StageSpec[E] | str) -> contract.Recorded[E] | StageResult | None:
        """What an earlier stage of this run recorded (None if it did not run).

        Given an evidence type (``DevRehearsalEvidence``) or a contract stage, its result with the evidence
        parsed strictly (:func:`dbrunbook.core.contract.recorded`); given a name, the bare result, for the
        templates the contract does not declare.
        """
        if isinstance(stage, str):
            return load_result(self.run_dir, stage)
        return contract.recorded(self.run_dir, stage)

    def finish(self, summary: str, evidence: Evidence | None = None) -> StageResult:
        """Record the result: verdict from the findings (``skipped`` when the evidence says nothing was gathered
        and no finding warns or blocks), display, and sidecar with the stage's evidence.

        A stage of the contract records the evidence type the contract declares for it; data set by hand
        (``stage.data``) is held to the same contract, so a renamed key fails here, not in a later stage.
        """
        if "engine" in self.__dict__:
            self.engine.dispose()
        declared = contract.by_name(self.name)
        if evidence is not None:
            if self.data:
                raise UsageError(f"stage {self.name} records its evidence or stage.data, not both")
            if declared is not None and not isinstance(evidence, declared.evidence):
                raise UsageError(f"stage {self.name} records {declared.evidence.__name__}, "
                                 f"not {type(evidence).__name__}")
            data = evidence.to_json()
        else:
            data = self.data
            if declared is not None:
                declared.parse(data)
        verdict = verdict_of(self.findings)
        if verdict == "pass" and evidence is not None and not evidence.gathered():
            verdict = SKIPPED  # nothing was looked at: not a pass
        result = StageResult(stage=self.name, verdict=verdict, summary=summary, findings=self.findings, data=data)
        return record(result, self.run_dir)


#: The one stage that is meant to change the target (``dbrunbook apply``); every other stage is fenced.
CHANGES_TARGET = frozenset({contract.GUARDED_APPLY.name})


#: Entry-point group of named targets: ``db="<name>"`` opens the target its callable returns.
TARGETS_GROUP = "dbrunbook.targets"


def named_target(name: str) -> Target | None:
    """The target registered under ``name`` in the ``dbrunbook.targets`` entry points (``demo``), if any.

    The demo registers itself this way, so the stage layer needs no import of the demo (which sits above
    it); a team can register its own named targets the same way.
    """
    if "://" in name or "/" in name:  # a URL or a path is never a name
        return None
    for entry in entry_points(group=TARGETS_GROUP, name=name):
        return entry.load()()  # type: ignore[no-any-return]
    return None


def open_stage(name: str, db: str = "demo", models: str = "", alembic_config: str = "",
               run_dir: str = "", project_dir: str = "") -> Stage:
    """Open stage ``name``; ``db="demo"`` targets the demo project, ``run_dir=""`` a scratch folder.

    Every stage but ``dbrunbook apply``'s fences its kernel first (:func:`dbrunbook.core.fence.guard`): the
    target can then only be read, whatever the project's code does.
    """
    named = named_target(db)
    if named is not None:
        target = named
    else:
        target = Target.from_url(db, models=models, alembic_config=alembic_config,
                                 project_dir=Path(project_dir or ".").resolve())
    if name in CHANGES_TARGET:
        fence.lift()
    else:
        fence.guard(target.db)
    folder = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="dbrunbook-stage-"))
    folder.mkdir(parents=True, exist_ok=True)
    return Stage(name=name, run_dir=folder.resolve(), target=target)
