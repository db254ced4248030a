"""Execute stage templates with papermill, one fresh kernel per stage, into a run folder.

A run folder ``runs/<UTC timestamp>-<slug>-<short id>/`` is created once and never reused. It
receives each executed notebook ``NN-stage.ipynb``, the stage's sidecar and artifacts, and
``manifest.json`` (see :mod:`dbrunbook.core.archive`). Stages find earlier results through
the ``run_dir`` parameter; no value is pasted from one notebook into another.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dbrunbook.alembic_ops.migration import alembic_config
from dbrunbook.core import contract, fence
from dbrunbook.core.archive import MANIFEST, write_manifest
from dbrunbook.core.config import Target, load_metadata
from dbrunbook.core.db import check_connection, make_engine
from dbrunbook.core.results import VERDICTS, load_result
from dbrunbook.core.secrets import find_secrets, redact_secrets
from dbrunbook.core.signing import KEY_ENV, load_private_key, sign_manifest
from dbrunbook.errors import ConfigError, SecretLeak, UnknownParameterError, UsageError
from dbrunbook.runbook import _kernel, _schedule
from dbrunbook.runbook._kernel import IPCKernelManager
from dbrunbook.runbook.progress import StageEvent, StageObserver, current_observer

_PACKAGE_RUNBOOKS = Path(__file__).resolve().parent.parent / "runbooks"
_SOURCE_RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"


@dataclass
class RunOptions:
    """How to run: which stages, where, and what to pass them."""

    stages: list[str] | None = None
    out: Path = Path("runs")
    dry_run: bool = False
    rollback_plan: bool = False
    keep_going: bool = False
    #: Stages run at once (each in its own kernel) when what they read is done; 0: one per core, at most two.
    jobs: int = 0
    #: Start each stage's kernel ahead, while the stage before it runs. The apply turns this off and runs its two
    #: stages one by one: the run that changes the target gains nothing from speed and keeps the simplest path.
    prestart: bool = True
    parameters: dict[str, Any] = field(default_factory=dict)
    #: Parameters from the project's ``[tool.dbrunbook.parameters]``: given to the chosen stages that declare
    #: them, below ``parameters``; only a name no template of the folder declares is an error.
    project_parameters: dict[str, Any] = field(default_factory=dict)
    runbooks: Path | None = None
    #: Also show papermill's cell-by-cell bar of each stage, labelled with the stage (on stderr).
    progress: bool = False
    #: Called as each stage starts and finishes (see :mod:`dbrunbook.runbook.progress`); by default the observer
    #: set with ``progress.observing`` where the options are made, if any.
    on_stage: StageObserver | None = field(default_factory=current_observer)
    #: Called with the run when it is interrupted (Ctrl-C), after its kernels were killed and before its record
    #: is closed as ``interrupted``: a stage that changes a target records here where the target was left.
    on_interrupt: Callable[[Run], None] | None = None

    def notify(self, event: StageEvent) -> None:
        """Tell the ``on_stage`` observer, if there is one, that a stage started or finished."""
        if self.on_stage is not None:
            self.on_stage(event)


@dataclass
class StageRecord:
    """How one stage went."""

    name: str
    status: str  # pass | warn | block | error | skipped
    notebook: str = ""
    seconds: float = 0.0
    summary: str = ""
    error: dict[str, Any] = field(default_factory=dict)


class RunInterrupted(KeyboardInterrupt):
    """A run was interrupted (Ctrl-C); ``run_dir`` holds its record, closed as ``interrupted`` (None: no folder yet)."""

    def __init__(self, run_dir: Path | None) -> None:
        super().__init__(str(run_dir or ""))
        self.run_dir = run_dir


@dataclass
class Run:
    """A finished run: its folder and what each stage concluded."""

    run_id: str
    path: Path
    stages: list[StageRecord]

    @property
    def verdict(self) -> str:
        statuses = {s.status for s in self.stages}
        if "error" in statuses:
            return "error"
        ranked = [s.status for s in self.stages if s.status in VERDICTS]
        return max(ranked, key=VERDICTS.index, default="pass")

    @property
    def failed(self) -> StageRecord | None:
        return next((s for s in self.stages if s.status == "error"), None)


#: Templates without a number run only when their option is set, after the analysis stages and
#: before the production plan (stage 10 and later), which reads their evidence (the contract names them).
OPTIONAL_STAGES = contract.optional_stages()
_PLAN_STAGES_FROM = 10


def runbook_folder(name: str = "") -> Path:
    """The bundled stage templates (``name``: a subfolder such as ``apply``)."""
    root = _PACKAGE_RUNBOOKS if _PACKAGE_RUNBOOKS.exists() else _SOURCE_RUNBOOKS
    return root / name if name else root


def templates(folder: Path | None = None, options: RunOptions | None = None) -> list[Path]:
    """The stage templates, in order: ``NN-name.ipynb`` below 10, the optional ones asked for, then 10 and later."""
    folder = folder or runbook_folder()
    if not folder.is_dir():
        raise ConfigError(f"runbook folder {folder} not found")
    numbered = sorted(p for p in folder.glob("*.ipynb") if re.match(r"\d\d-", p.name))
    optional = [folder / f"{name}.ipynb" for name, flag in OPTIONAL_STAGES.items()
                if options is not None and getattr(options, flag) and (folder / f"{name}.ipynb").exists()]
    early = [p for p in numbered if int(p.name[:2]) < _PLAN_STAGES_FROM]
    return early + optional + [p for p in numbered if p not in early]


def _select(all_templates: list[Path], wanted: list[str] | None) -> list[Path]:
    """The templates ``wanted`` names, in run order; an optional stage whose option was given always runs.

    ``templates`` holds an optional stage only when its option (``--rollback-plan``) was given, so
    keeping it here means ``--stages 03,10 --rollback-plan`` runs the rollback plan as asked.
    """
    if not wanted:
        return all_templates
    chosen = [p for p in all_templates if p.stem in OPTIONAL_STAGES]
    for name in wanted:
        hits = [p for p in all_templates if p.stem == name or p.stem.startswith(f"{name}-")
                or p.stem.split("-", 1)[-1] == name]
        if len(hits) != 1:
            known = ", ".join(p.stem for p in all_templates)
            raise UsageError(f"unknown stage {name!r} (stages: {known})")
        chosen.append(hits[0])
    return [p for p in all_templates if p in chosen]


def declared_parameters(template: Path) -> dict[str, Any]:
    """The parameters a template declares in its ``parameters`` cell, with defaults."""
    import papermill  # heavy: imported only where notebooks are run

    try:
        found = papermill.inspect_notebook(str(template))
    except Exception as exc:  # papermill raises plain ValueErrors and JSON errors here
        raise ConfigError(f"{template} is not a usable stage template: {exc}") from None
    return {name: p["default"] for name, p in found.items()}


def stage_parameters(chosen: list[Path], target: Target, run_dir: Path,
                     options: RunOptions) -> dict[str, dict[str, Any]]:
    """What each stage receives: the common values and the user's own that it declares.

    A user parameter that no chosen stage declares is an error, not a warning.
    """
    declared = {t.stem: declared_parameters(t) for t in chosen}
    known = sorted(set().union(*declared.values())) if declared else []
    unknown = [k for k in options.parameters if k not in known]
    if unknown:
        raise UnknownParameterError(", ".join(declared), unknown, known)
    if options.project_parameters:
        folder = chosen[0].parent if chosen else runbook_folder()
        anywhere = set().union(*(declared_parameters(t) for t in folder.glob("*.ipynb")))
        typos = [k for k in options.project_parameters if k not in anywhere]
        if typos:
            raise UnknownParameterError(f"any stage of {folder.name}", typos, sorted(anywhere))
    common = {"db": target.db, "models": target.models, "alembic_config": target.alembic_config,
              "run_dir": str(run_dir), "project_dir": str(target.project_dir),
              "dry_run": options.dry_run, "rollback_plan": options.rollback_plan,
              **options.project_parameters, **options.parameters}
    return {stage: {k: v for k, v in common.items() if k in names} for stage, names in declared.items()}


def _slug(target: Target) -> str:
    name = Path(target.db.rsplit("/", 1)[-1].split("?")[0]).stem or "db"
    return re.sub(r"[^a-zA-Z0-9]+", "-", name).strip("-").lower()[:30] or "db"


def new_run_dir(out: Path, target: Target) -> tuple[str, Path]:
    """The id and path of a new run folder (created by the caller, never reused)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_id = f"{stamp}-{_slug(target)}-{uuid.uuid4().hex[:6]}"
    return run_id, (out / run_id).resolve()


def _execute(template: Path, output: Path, params: dict[str, Any], cwd: Path, progress: bool,
             kernel: IPCKernelManager | None = None) -> StageRecord:
    """Run one stage in a fresh kernel: ``kernel`` when given (one :func:`_kernel.prestart` started for it, which
    the caller shuts down), else one started here and shut down after.

    The kernel is started in ``cwd`` rather than papermill changing this process's directory around the run:
    stages may run in several threads at once, and the working directory is the whole process's.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    started = time.perf_counter()
    record = StageRecord(name=template.stem, status="error", notebook=output.name)
    own = None
    if kernel is None and threading.current_thread() is not threading.main_thread():
        with contextlib.suppress(Exception):  # papermill starts one itself then, as it always did
            own = kernel = _kernel.prestart(cwd, ())
    given: dict[str, Any] = {"km": kernel} if kernel is not None else {"cwd": str(cwd)}
    try:
        papermill.execute_notebook(str(template), str(output), parameters=params, kernel_name="python3",
                                   log_output=False,
                                   progress_bar={"desc": template.stem, "leave": False} if progress else False,
                                   kernel_manager_class="dbrunbook.runbook._kernel.IPCKernelManager", **given)
    except PapermillExecutionError as exc:
        record.error = {"cell": exc.exec_count, "cell_index": exc.cell_index, "ename": exc.ename,
                        "evalue": str(exc.evalue).splitlines()[0] if exc.evalue else ""}
    except Exception as exc:  # kernel died or failed to start: record it, do not lose the run
        first = str(exc).splitlines()[0] if str(exc) else ""
        record.error = {"cell": None, "ename": type(exc).__name__, "evalue": first}
    finally:
        if own is not None:
            _kernel.stop(own)
    record.seconds = round(time.perf_counter() - started, 3)
    if record.error:
        return record
    result = load_result(output.parent, template.stem)
    if result is None:
        record.error = {"cell": None, "ename": "NoResult", "evalue": "the stage recorded no result"}
        return record
    record.status, record.summary = result.verdict, result.summary
    return record


def preflight(target: Target) -> None:
    """Fail fast, before a run folder exists, on what every stage would trip over."""
    engine = make_engine(target.db)
    try:
        check_connection(engine)
    finally:
        engine.dispose()
    if target.models:
        load_metadata(target.models, target.project_dir)
    if os.environ.get(KEY_ENV):  # a key that cannot sign fails now, not after every stage ran
        load_private_key(os.environ[KEY_ENV])
    if target.alembic_config:
        with tempfile.TemporaryDirectory(prefix="dbrunbook-check-") as scratch:
            alembic_config(target, Path(scratch) / "alembic")


def run_runbook(target: Target, options: RunOptions | None = None) -> Run:
    """Execute the selected stages for ``target`` into a new run folder and archive it."""
    options = options or RunOptions()
    # Kernels inherit this process's environment: the secret is lent for the run only, and
    # PATH makes sure the kernel is this interpreter.
    kernel_path = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    # This process only reads the target while the run lasts; each stage fences its own kernel.
    with target.environment(PATH=kernel_path), fence.guarding(target.db), _papermill_quiet():
        return _run(target, options)


@contextlib.contextmanager
def _papermill_quiet() -> Iterator[None]:
    """papermill's and nbclient's own log lines stay off the terminal while a run lasts: what a stage raised is in
    its notebook and the run's record, and the command prints one line for it ("Kernel died while waiting for
    execute reply", logged as a Ctrl-C kills a kernel, would otherwise come first)."""
    logger = logging.getLogger("papermill")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


class _Kernels:
    """Each stage's fresh kernel, started one stage ahead: while a stage runs, the next one's kernel starts and
    imports what stage notebooks use, so the run does not wait ~2 s per stage for start-up. Every stage still
    runs in a kernel of its own that ran nothing before it (no state crosses stages)."""

    def __init__(self, cwd: Path, enabled: bool = True) -> None:
        self.cwd, self.enabled = cwd, enabled
        self.ready: dict[str, IPCKernelManager] = {}

    def start(self, template: Path | None) -> None:
        """Start ``template``'s kernel now (nothing when None or already started)."""
        if not self.enabled or template is None or template.stem in self.ready:
            return
        spec = contract.by_name(template.stem)
        modules = (*_kernel.COMMON_IMPORTS, *((spec.package,) if spec is not None else ()))
        try:
            self.ready[template.stem] = _kernel.prestart(self.cwd, modules)
        except Exception:  # papermill starts the kernel itself then, as it always did
            pass

    def take(self, template: Path) -> IPCKernelManager | None:
        return self.ready.pop(template.stem, None)

    def stop_all(self) -> None:
        for manager in self.ready.values():
            _kernel.stop(manager)
        self.ready.clear()


def _run(target: Target, options: RunOptions) -> Run:
    chosen = _select(templates(options.runbooks, options), options.stages)
    kernels = _Kernels(target.project_dir, options.prestart)
    jobs = options.jobs or _schedule.default_jobs()
    for first in _schedule.ready(chosen, _schedule.prerequisites(chosen), set())[:jobs]:
        kernels.start(first)  # they start while the preflight connects and reads the project
    try:
        return _run_stages(target, options, chosen, kernels)
    finally:
        kernels.stop_all()


def _run_stages(target: Target, options: RunOptions, chosen: list[Path], kernels: _Kernels) -> Run:
    preflight(target)
    run_id, run_dir = new_run_dir(options.out, target)
    params = stage_parameters(chosen, target, run_dir, options)
    started = datetime.now(UTC)
    records: list[StageRecord] = []
    run = Run(run_id=run_id, path=run_dir, stages=records)

    def journal(status: str) -> None:
        # The manifest is the run's journal: written before the first stage and after each one, so a run that
        # dies (Ctrl-C, SIGKILL, a lost machine) is still on the record with what it completed.
        leaks = find_secrets(run_dir, target.secrets())
        redact_secrets(leaks, target.secrets())  # the run fails, but the secret does not stay on disk
        write_manifest(run, target, options, chosen, params, started, leaks=[str(p) for p in leaks], status=status)
        if leaks:
            raise SecretLeak(run_dir, leaks)

    try:
        with _interruptible():
            # The folder is announced only once it is on the record: what the user was shown is listed by `runs`.
            run_dir.mkdir(parents=True, exist_ok=False)
            journal("running")
            options.notify(StageEvent("open", run_id, run_dir, 0, len(chosen), ""))
            _stages(chosen, params, target.project_dir, options, kernels, records, run_id, run_dir, journal)
            journal("complete")
    except KeyboardInterrupt:
        _close_interrupted(run, options, journal)
        raise RunInterrupted(run_dir if (run_dir / MANIFEST).exists() else None) from None
    key = os.environ.get(KEY_ENV)
    if key:  # the author's signature over the finished record (docs/signing.md)
        sign_manifest(run_dir, key, role="author")
    return run


def _stages(chosen: list[Path], params: dict[str, dict[str, Any]], cwd: Path, options: RunOptions,
            kernels: _Kernels, records: list[StageRecord], run_id: str, run_dir: Path,
            journal: Callable[[str], None]) -> None:
    """Run the chosen stages, each as soon as the stages it reads have finished, up to ``options.jobs`` at once.

    Events and the journal are written from this thread only, each stage's as it finishes; the record lists the
    stages in run order whatever order they finished in. After a stage raised, no further stage starts (unless
    ``keep_going``): those are recorded as skipped, as they were when stages ran one by one.
    """
    jobs = options.jobs or _schedule.default_jobs()
    waits = _schedule.prerequisites(chosen)
    position = {template.stem: index for index, template in enumerate(chosen, 1)}
    done: dict[str, StageRecord] = {}
    pending = list(chosen)
    running: dict[Future[StageRecord], tuple[StageEvent, IPCKernelManager | None]] = {}
    pool: ThreadPoolExecutor | _Inline = (ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="dbrunbook-stage")
                                          if jobs > 1 else _Inline())

    def event(template: Path) -> StageEvent:
        return StageEvent("start", run_id, run_dir, position[template.stem], len(chosen), template.stem)

    def settle(record: StageRecord, started: StageEvent) -> None:
        done[record.name] = record
        records[:] = [done[t.stem] for t in chosen if t.stem in done]
        journal("running")
        options.notify(started.finished(record))

    try:
        while pending or running:
            failed = any(r.status == "error" for r in done.values()) and not options.keep_going
            for template in list(pending):
                if failed:  # nothing new starts after a stage raised; those left are recorded as skipped
                    pending.remove(template)
                    settle(StageRecord(name=template.stem, status="skipped"), event(template))
            for template in _schedule.ready(pending, waits, set(done))[:max(0, jobs - len(running))]:
                pending.remove(template)
                started = event(template)
                options.notify(started)
                kernel = kernels.take(template)
                running[pool.submit(_execute, template, run_dir / template.name, params[template.stem], cwd,
                                    options.progress, kernel)] = (started, kernel)
            for upcoming in _schedule.ready(pending, waits, set(done))[:jobs] or pending[:1]:
                kernels.start(upcoming)  # the next stages' kernels start while these run
            if not running:
                continue
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=lambda f: position[running[f][0].name]):
                started, kernel = running.pop(future)
                if kernel is not None:
                    _kernel.stop(kernel)
                settle(future.result(), started)
    finally:
        pool.shutdown(wait=not running, cancel_futures=True)  # interrupted: kernels are killed, not waited for


class _Inline:
    """One stage at a time, in this thread: the executor of ``jobs=1``."""

    def submit(self, fn: Callable[..., StageRecord], *args: Any) -> Future[StageRecord]:
        future: Future[StageRecord] = Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Nothing runs in the background."""


def _close_interrupted(run: Run, options: RunOptions, journal: Callable[[str], None]) -> None:
    """After a Ctrl-C: no kernel left running or on disk, the stage told, the record closed as interrupted.

    A second Ctrl-C meanwhile is ignored: it would leave the record half closed.
    """
    with _sigint_ignored():
        # Stages still running in worker threads meet their killed kernel and log it: the run is ending, and
        # the one line the user gets is the interruption's.
        for name in ("papermill", "nbclient", "traitlets", "jupyter_client"):
            logging.getLogger(name).disabled = True
        _kernel.kill_all()
        if not run.path.is_dir():
            return
        if options.on_interrupt is not None:
            with contextlib.suppress(Exception):  # the record is closed whatever the stage's hook met
                options.on_interrupt(run)
        journal("interrupted")


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt as usual, and first marks kernels to be killed at once, not asked to stop."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield  # not ours to change (a thread, or a host with its own handler)
        return

    def interrupted(signum: int, frame: object) -> None:
        _kernel.interrupted()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _kernel.interrupted(False)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
