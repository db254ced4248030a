"""The audit archive: ``manifest.json``, verification, listing and HTML export of runs.

The manifest names every file of the run folder with its sha256, the templates' sha256s,
the masked target and parameters, who ran it where, the project's git commit, and each
stage's verdict and timing. :func:`verify_run` recomputes the hashes: an edited, missing or
added file fails verification.
"""
from __future__ import annotations

import getpass
import hashlib
import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbrunbook import __version__
from dbrunbook.core import contract
from dbrunbook.core.evidence import EvidenceError, RollbackPlanEvidence
from dbrunbook.core.secrets import mask_url
from dbrunbook.errors import UnknownRunError, VerificationFailed

if TYPE_CHECKING:
    from dbrunbook.core.config import Target
    from dbrunbook.runbook.engine import Run, RunOptions

MANIFEST = "manifest.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _git(project: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(project), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(git("status", "--porcelain"))}


#: The folder of a run that holds signatures over its manifest (core/signing.py): not hashed by the manifest,
#: since a signature is made after it and covers it.
SIGNATURES = "signatures"


def _files(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): sha256(p) for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name not in (MANIFEST, MANIFEST + ".partial", STEP + ".partial")
            and p.relative_to(run_dir).parts[0] != SIGNATURES}


#: What a stage that changes a target (stage 11's apply) set out to do and what came of it, in its stage folder:
#: ``intent`` is written before the target is touched, ``outcome`` after, each on disk before the stage goes on,
#: so a run that dies on the way still says what it was doing and how far it got.
STEP = "journal.json"


def record_step(stage_dir: Path, what: str, facts: dict[str, Any]) -> Path:
    """Record ``what`` (``intent`` or ``outcome``; ``facts`` hold a one-line ``summary``) in ``stage_dir``."""
    path = stage_dir / STEP
    steps = read_step(stage_dir) or {}
    steps[what] = {**facts, "recorded": datetime.now(UTC).isoformat(timespec="seconds")}
    stage_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(STEP + ".partial")
    with partial.open("w") as out:
        out.write(json.dumps(steps, indent=2, default=str) + "\n")
        out.flush()
        os.fsync(out.fileno())  # on disk before the target is touched: a lost machine keeps it too
    partial.replace(path)
    return path


def read_step(stage_dir: Path) -> dict[str, Any] | None:
    """The intent and outcome a stage recorded in ``stage_dir``, if any."""
    try:
        return dict(json.loads((stage_dir / STEP).read_text()))
    except (OSError, ValueError):
        return None


def under_way(run_dir: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """For a run that did not complete: the stage it was in when it stopped (``stage``, ``started``: its
    notebook was written), with the ``intent`` and ``outcome`` that stage recorded; None when no stage was left."""
    done = {s.get("name") for s in manifest.get("stages", [])}
    left = [Path(name).stem for name in manifest.get("templates", {}) if Path(name).stem not in done]
    if not left:
        return None
    stage = left[0]
    steps = read_step(run_dir / stage) or {}
    return {"stage": stage, "started": (run_dir / f"{stage}.ipynb").exists(),
            "intent": steps.get("intent"), "outcome": steps.get("outcome")}


def describe_under_way(found: dict[str, Any] | None) -> str:
    """One phrase for :func:`under_way`'s answer ("" for None)."""
    if not found:
        return ""
    text = f"{found['stage']} was under way" if found.get("started") else f"{found['stage']} had not started"
    intent, outcome = found.get("intent"), found.get("outcome")
    if intent:
        text += f"; it intended to {intent.get('summary', '?')}"
        text += (f"; outcome: {outcome.get('summary', '?')}" if outcome
                 else "; it recorded no outcome: check the target before anything else")
    return text


def _mask(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (mask_url(v) if k == "db" and isinstance(v, str) and "://" in v else v) for k, v in params.items()}


def _backup(run: Run) -> dict[str, Any] | None:
    """The backup the rollback plan took and verified (size, duration, sha256, restore command), if any."""
    if not any(stage.name == contract.ROLLBACK_PLAN.name for stage in run.stages):
        return None
    try:
        rollback = contract.load(run.path, RollbackPlanEvidence)
    except EvidenceError:  # the journal is written whatever a sidecar holds; stage 10 reports the broken one
        return None
    return rollback.backup.to_json() if rollback is not None and rollback.backup.backup is not None else None


def write_manifest(run: Run, target: Target, options: RunOptions, templates: list[Path],
                   params: dict[str, dict[str, Any]], started: datetime, leaks: list[str],
                   status: str = "complete") -> Path:
    """Write ``manifest.json``: the run's journal while it runs (``running``), then its record.

    ``status`` is ``running`` (with the pid that runs it), ``interrupted`` or ``complete``.
    """
    manifest = {
        "run_id": run.run_id,
        "status": status,
        "pid": os.getpid(),
        "started": started.isoformat(timespec="seconds"),
        "ended": datetime.now(UTC).isoformat(timespec="seconds"),
        "user": getpass.getuser(),
        "host": platform.node(),
        "dbrunbook_version": __version__,
        "project": {"path": str(target.project_dir), **_git(target.project_dir)},
        "target": mask_url(target.db),
        "models": target.models,
        "alembic_config": target.alembic_config,
        "options": {"dry_run": options.dry_run, "rollback_plan": options.rollback_plan,
                    "keep_going": options.keep_going},
        "templates": {t.name: sha256(t) for t in templates},
        "parameters": {name: _mask(p) for name, p in params.items()},
        "stages": [{"name": s.name, "status": s.status, "notebook": s.notebook, "seconds": s.seconds,
                    "summary": s.summary, **({"error": s.error} if s.error else {})} for s in run.stages],
        "verdict": run.verdict,
        "backup": _backup(run),
        "secret_scan": {"clean": not leaks, "files": leaks},
        "files": _files(run.path),
    }
    if status == "interrupted":
        manifest["under_way"] = under_way(run.path, manifest)
    path = run.path / MANIFEST
    partial = path.with_name(MANIFEST + ".partial")  # never a half-written manifest, even if killed mid-write
    partial.write_text(json.dumps(manifest, indent=2) + "\n")
    partial.replace(path)
    return path


def run_status(manifest: dict[str, Any]) -> str:
    """``complete``, ``interrupted`` (it says so, or the process that ran it on this host is gone) or ``running``."""
    status = str(manifest.get("status", "complete"))  # manifests before the journal were written at the end
    if status == "running" and manifest.get("host") == platform.node() and not _alive(manifest.get("pid")):
        return "interrupted"
    return status


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / MANIFEST
    if not path.exists():
        raise VerificationFailed(run_dir, [f"{MANIFEST} is missing"])
    try:
        return dict(json.loads(path.read_text()))
    except json.JSONDecodeError as exc:
        raise VerificationFailed(run_dir, [f"{MANIFEST} is not valid JSON ({exc.msg})"]) from None


def not_run(stage: dict[str, Any]) -> bool:
    """A stage of a manifest the engine did not run (an earlier one raised), as against one that ran and gathered
    nothing: both have the status ``skipped``, only the second has an executed notebook."""
    return stage.get("status") == "skipped" and not stage.get("notebook")


def verify_run(run_dir: Path) -> dict[str, Any]:
    """Recompute every hash; raise :class:`VerificationFailed` naming each problem."""
    manifest = load_manifest(run_dir)
    status = run_status(manifest)
    if status != "complete":
        done = [s["name"] for s in manifest.get("stages", []) if not not_run(s)]
        where = describe_under_way(under_way(run_dir, manifest))
        raise VerificationFailed(run_dir, [f"the run is {status}: its record ends after "
                                           f"{done[-1] if done else 'no stage'}" + (f"; {where}" if where else "")])
    recorded: dict[str, str] = manifest.get("files", {})
    actual = _files(run_dir)
    problems = [f"{name} was changed" for name in recorded if name in actual and actual[name] != recorded[name]]
    problems += [f"{name} is missing" for name in recorded if name not in actual]
    problems += [f"{name} was added" for name in actual if name not in recorded]
    if problems:
        raise VerificationFailed(run_dir, problems)
    return manifest


def list_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """Manifests of the runs under ``runs_dir``, oldest first."""
    if not runs_dir.is_dir():
        return []
    found = []
    for path in sorted(runs_dir.iterdir()):
        if (path / MANIFEST).is_file():
            try:
                manifest = load_manifest(path)
                status = run_status(manifest)
                extra = {"under_way": under_way(path, manifest)} if status != "complete" else {}
                found.append({**manifest, "status": status, "path": str(path), **extra})
            except VerificationFailed:
                continue
    return found


def find_run(run: str, runs_dir: Path, holding: str = "") -> Path:
    """A run folder from a path, a run id, or a unique prefix/suffix of one.

    ``holding``: among the folders of ``runs_dir``, only runs that hold this file count (e.g. the plan
    runs, for ``apply latest``, where the newest folder may be an earlier apply run).
    """
    as_path = Path(run)
    if (as_path / MANIFEST).exists():
        return as_path.resolve()
    candidates = [p for p in runs_dir.iterdir()
                  if (p / MANIFEST).is_file() and (not holding or (p / holding).is_file())] if runs_dir.is_dir() else []
    hits = [p for p in candidates if p.name == run] or [p for p in candidates if run and run in p.name]
    if run == "latest" and candidates:
        hits = [max(candidates, key=lambda p: p.name)]
    if len(hits) != 1:
        raise UnknownRunError(run, runs_dir)
    return hits[0].resolve()


