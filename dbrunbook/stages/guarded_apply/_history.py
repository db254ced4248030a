"""The project's own Alembic history after an apply: it must hold the revision the target is moved to.

``dbrunbook update --dry-run`` generates its revision into the plan run only. Applied from there,
it would leave the target at a revision the project's scripts cannot find (``alembic current``
fails with "Can't locate revision"). So the apply first writes such a revision into the project's
versions directory, or refuses when it cannot: :func:`project_history` says which and reads
only; :func:`keep_history` is its doing twin, called before the target is touched.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory

from dbrunbook.core import contract
from dbrunbook.core.archive import load_manifest
from dbrunbook.core.evidence import MigrationEvidence, ProductionPlan
from dbrunbook.core.project import copied_scripts, project_path, resolve_project
from dbrunbook.errors import DbrunbookError


@dataclass
class History:
    """Where the planned revisions stand in the project's own history, and what the apply must write there."""

    ini: str = ""
    versions: str = ""
    #: Revisions the project's scripts already hold (by revision id; a generated one with identical content).
    present: list[str] = field(default_factory=list)
    #: Generated revisions to copy into the project before the upgrade: ``revision``, ``source``, ``dest``.
    write: list[dict[str, str]] = field(default_factory=list)
    #: Why the apply must be refused; empty when the project's history will hold every planned revision.
    problem: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def detail(self) -> str:
        """The guard's one-line answer."""
        if self.problem:
            return self.problem
        if not self.present and not self.write:
            return "no revision to apply"
        wrote = "; ".join(f"{w['revision']} is written to {w['dest']} before the upgrade" for w in self.write)
        held = f"the project's history holds {', '.join(self.present)}" if self.present else ""
        return "; ".join(part for part in (held, wrote) if part)


def project_ini(plan_run: Path, alembic_config: str = "") -> str:
    """The project's alembic.ini: the apply's own setting, else the one the plan run was made with."""
    if alembic_config:
        return alembic_config
    try:
        return str(load_manifest(plan_run).get("alembic_config") or "")
    except DbrunbookError:  # no manifest: the manifest-verified guard says so
        return ""


def _files_by_revision(script_dir: Path) -> dict[str, tuple[Path, str | None]]:
    """Each revision of the plan's scripts: its file in ``script_dir`` and its down revision, read from a copy.

    A copy, so that importing the revisions leaves no bytecode cache in a verified run folder.
    """
    with tempfile.TemporaryDirectory(prefix="dbrunbook-history-") as scratch:
        copy = Path(scratch) / "alembic"
        shutil.copytree(script_dir, copy, ignore=shutil.ignore_patterns("__pycache__"))
        return {s.revision: (script_dir / Path(s.path).relative_to(copy),
                             s.down_revision if isinstance(s.down_revision, str) else None)
                for s in copied_scripts(copy).walk_revisions()}


def _project_scripts(ini: Path, project_dir: Path) -> tuple[ScriptDirectory, tuple[Path, ...]]:
    """The project's Alembic scripts as the ``alembic`` command reads them, and their version locations."""
    project = resolve_project(ini, project_dir)
    locations = project.version_locations or (project.script_dir / "versions",)
    scripts = ScriptDirectory(str(project.script_dir), version_locations=[str(p) for p in locations],
                              recursive_version_locations=project.recursive)
    return scripts, locations


def _generated(plan_run: Path) -> Path | None:
    migration = contract.load(plan_run, MigrationEvidence)
    relative = migration.generated if migration else None
    return (plan_run / relative).resolve() if relative else None


def project_history(plan_run: Path, alembic_config: str, project_dir: Path, plan: ProductionPlan,
                    script_dir: Path | None) -> History:
    """Whether the project's history holds every planned revision once the generated one is written; reads only.

    ``script_dir`` is the plan run's scripts. A generated revision (stage 03's ``generated``) that
    the project lacks is to be written into its versions directory when that is writable and has no
    other file of that name; anything else the project lacks refuses the apply.
    """
    revisions = list(plan.revisions)
    ini = project_ini(plan_run, alembic_config)
    history = History(ini=ini)
    if not revisions:
        return history
    if script_dir is None or not script_dir.is_dir():
        history.problem = "the plan run has no scripts to compare with the project's history (see scripts-present)"
        return history
    if not ini or not Path(ini).is_file():
        history.problem = (f"the project has no Alembic config ({ini or 'alembic_config not set'}) to hold "
                           f"{', '.join(revisions)}: the target would be at a revision only the plan run has")
        return history
    try:
        planned = _files_by_revision(script_dir)
        scripts, locations = _project_scripts(Path(ini), project_dir)
        heads = list(scripts.get_heads())
    except Exception as exc:  # unreadable scripts are the guard's answer, not a stage error
        history.problem = f"the project's Alembic history cannot be read: {type(exc).__name__}: {exc}"
        return history
    history.versions = str(locations[0]) if len(locations) == 1 else ", ".join(str(p) for p in locations)
    generated = _generated(plan_run)
    for revision in revisions:
        history.problem = _place(history, scripts, locations, script_dir, revision, planned.get(revision), generated,
                                 heads)
        if history.problem:
            return history
    return history


def _held(scripts: ScriptDirectory, revision: str) -> Path | None:
    try:
        script = scripts.get_revision(revision)
    except Exception:  # Alembic's "Can't locate revision": the project does not hold it
        return None
    return Path(script.path) if script is not None else None


def _versions_for(scripts: ScriptDirectory, locations: tuple[Path, ...], down: str | None) -> Path | None:
    """Where Alembic itself would put a new revision after ``down``: the one location, else beside its parent."""
    if len(locations) == 1:
        return locations[0]
    parent = _held(scripts, down) if down else None
    return parent.parent if parent is not None else None


def _place(history: History, scripts: ScriptDirectory, locations: tuple[Path, ...], plan_scripts: Path,
           revision: str, found: tuple[Path, str | None] | None, generated: Path | None, heads: list[str]) -> str:
    """Record where ``revision`` stands in ``history``; the reason to refuse, or ""."""
    if found is None:
        return f"revision {revision} is not in the plan run's scripts (see scripts-present)"
    source, down = found
    is_generated = generated is not None and source.resolve() == generated
    held = _held(scripts, revision)
    if held is not None:
        if is_generated and held.read_bytes() != source.read_bytes():
            return (f"the project's {held} holds revision {revision} with other content than the plan run's "
                    f"{source.name}: plan again")
        history.present.append(revision)
        return ""
    if not is_generated:
        return (f"revision {revision} ({source.name}) is no longer in the project's history at {history.versions}: "
                "plan again")
    if heads != ([down] if down else []):
        return (f"the project's history moved on since the plan (head {', '.join(heads) or 'none'}, the generated "
                f"{revision} follows {down or 'base'}): writing it would fork the history; plan again")
    # Where `update` without --dry-run writes it (the copy records each location's source), else where
    # Alembic would put a new revision in the project.
    versions = _versions_for(scripts, locations, down)
    dest = project_path(plan_scripts, source) or (versions / source.name if versions else None)
    if dest is None:
        return f"the project has several version locations ({history.versions}) and none is known for {revision}"
    if dest.is_file() and dest.read_bytes() == source.read_bytes():
        history.present.append(revision)
        return ""
    if dest.exists():
        return f"{dest} exists with other content than the generated revision {revision}: plan again"
    existing = next(p for p in (dest.parent, *dest.parent.parents) if p.exists())  # a missing location is made
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        return f"the project's versions directory {dest.parent} is not writable: cannot add the generated {revision}"
    history.write.append({"revision": revision, "source": str(source), "dest": str(dest)})
    return ""


def keep_history(history: History) -> tuple[list[Path], str]:
    """Write the generated revisions ``history`` names into the project's versions directory.

    Returns the files written and, when one could not be, why (then the apply must not go on). A
    file that appeared there since the check is kept when its content is the same and refuses
    otherwise, so nothing of the project is ever overwritten.
    """
    if history.problem:
        return [], history.problem
    written: list[Path] = []
    for item in history.write:
        source, dest = Path(item["source"]), Path(item["dest"])
        content = source.read_bytes()
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with dest.open("xb") as out:
                out.write(content)
        except FileExistsError:
            if dest.read_bytes() != content:
                return written, f"{dest} appeared with other content than the generated revision {item['revision']}"
        except OSError as exc:
            return written, f"cannot write {dest}: {exc.strerror or exc}"
        written.append(dest)
    return written, ""
