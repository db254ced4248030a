"""What a stage notebook works with: its target, its run folder, its findings.

A template's code cell after ``parameters`` opens the stage::

    stage = dbrunbook.open_stage("03-migration", db=db, models=models,
                                 alembic_config=alembic_config, run_dir=run_dir)

then calls library functions, adds findings, and ends with ``stage.finish(summary)``,
which records the result (display + sidecar). With ``db="demo"`` the stage runs against the
bundled demo project; with ``run_dir=""`` it writes into a fresh scratch folder, so a
template also runs as-is in JupyterLab or under ``pytest --nbval-lax``.
"""
from __future__ import annotations

import tempfile
from importlib.metadata import entry_points
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from dbrunbook.core import fence
from dbrunbook.core.config import Target
from dbrunbook.core.db import make_engine
from dbrunbook.core.results import Finding, StageResult, load_result, record, verdict_of


@dataclass
class Stage:
    """One stage's working context inside its notebook."""

    name: str
    run_dir: Path
    target: Target
    findings: list[Finding] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        """This stage's artifact folder inside the run folder."""
        path = self.run_dir / self.name
        path.mkdir(parents=True, exist_ok=True)
        return path

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

    def earlier(self, stage: str) -> StageResult | None:
        """The recorded result of an earlier stage of this run (None if it did not run)."""
        return load_result(self.run_dir, stage)

    def finish(self, summary: str) -> StageResult:
        """Record the result: verdict from the findings, display, and sidecar."""
        if "engine" in self.__dict__:
            self.engine.dispose()
        result = StageResult(stage=self.name, verdict=verdict_of(self.findings), summary=summary,
                             findings=self.findings, data=self.data)
        return record(result, self.run_dir)


#: The one stage that is meant to change the target (``dbrunbook apply``); every other stage is fenced.
CHANGES_TARGET = frozenset({"11-guarded-apply"})


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
