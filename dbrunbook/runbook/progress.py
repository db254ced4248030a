"""Live progress of a run: the run folder first, then one line per stage as it starts and as it finishes.

The engine reports each stage to the observer in ``RunOptions.on_stage`` as a :class:`StageEvent`
(``start``, then ``finish`` with the verdict, the seconds and the stage's summary). :class:`StageReporter`
is the one observer the CLI uses: plain lines when its stream is not a terminal or ``NO_COLOR`` is set,
a ``rich`` spinner with the finished stages printed above it on a terminal. Code that builds its own
``RunOptions`` inside a call (``run_demo``, ``apply_run``) picks up the observer set with
:func:`observing`.

:func:`note` and :func:`step` print one labelled, flushed line each, for long steps in a notebook or
a script; the run's own progress does not depend on them.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from dbrunbook.runbook.engine import StageRecord

#: What the engine calls with each :class:`StageEvent`.
StageObserver = Callable[["StageEvent"], None]

_STYLE = {"pass": "green", "warn": "yellow", "block": "bold red", "error": "bold red", "skipped": "dim"}
_NAME_WIDTH = 22  # as wide as the final report's stage column
_current: ContextVar[StageObserver | None] = ContextVar("dbrunbook_stage_observer", default=None)


@dataclass(frozen=True)
class StageEvent:
    """One stage of a run starting (``kind="start"``) or finishing (``kind="finish"``)."""

    kind: str  # "open" (the run folder is chosen), "start" or "finish"
    run_id: str
    run_dir: Path
    index: int  # 1-based position among the run's stages
    total: int
    name: str
    status: str = ""  # on finish: pass | warn | block | error | skipped
    seconds: float = 0.0
    summary: str = ""
    error: dict[str, Any] = field(default_factory=dict)

    def finished(self, record: StageRecord) -> StageEvent:
        """The ``finish`` event of this stage, from the engine's record of it."""
        return replace(self, kind="finish", status=record.status, seconds=record.seconds,
                       summary=record.summary, error=dict(record.error))

    @property
    def position(self) -> str:
        width = len(str(self.total))
        return f"[{self.index:>{width}}/{self.total}]"

    @property
    def headline(self) -> str:
        """What the finished stage concluded: its summary, or the error it raised."""
        if self.error:
            cell = f" in cell {self.error['cell']}" if self.error.get("cell") is not None else ""
            return f"raised {self.error.get('ename')}{cell}: {self.error.get('evalue')}"
        # skipped without a summary: the engine did not run it; with one: it ran and gathered nothing
        return "not run: an earlier stage raised" if self.status == "skipped" and not self.summary else self.summary


def current_observer() -> StageObserver | None:
    """The observer set by :func:`observing` in this context, if any (``RunOptions.on_stage``'s default)."""
    return _current.get()


@contextlib.contextmanager
def observing(observer: StageObserver | None) -> Iterator[StageObserver | None]:
    """Make ``observer`` the default ``on_stage`` of the runs started inside the block."""
    token = _current.set(observer)
    try:
        yield observer
    finally:
        _current.reset(token)


def plain_output(stream: TextIO) -> bool:
    """True when ``stream`` should get plain lines: not a terminal, ``NO_COLOR`` set, or a dumb terminal."""
    isatty = getattr(stream, "isatty", None)
    return not (isatty and isatty()) or "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb"


class StageReporter:
    """Prints a run's progress to ``stream``: the run folder, then each stage as it starts and finishes.

    ``live=False`` forces plain lines even on a terminal (used when papermill draws its own bars). Use it
    as a context manager, so a spinner is stopped however the run ends.
    """

    def __init__(self, stream: TextIO | None = None, *, live: bool = True) -> None:
        self.stream = stream or sys.stdout
        self.live = live and not plain_output(self.stream)
        self.printed = False
        self._closed = False  # the stream went away (a closed pipe): stop printing, not the run
        self._console: Console | None = None
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}  # a spinner per stage under way: stages may run side by side

    def __enter__(self) -> StageReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, event: StageEvent) -> None:
        if not self.printed:
            self._line(f"run folder: {event.run_dir}")
        if event.kind == "open":  # the run folder is chosen: said before the slow imports and the first stage
            return
        if event.kind == "start":
            self._started(event)
        else:
            self._finished(event)

    def close(self) -> None:
        """Stop the spinner; a blank line sets the progress apart from the report that follows."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self.printed:
            self._line("")

    def _started(self, event: StageEvent) -> None:
        if not self.live:
            self._line(f"{event.position} {event.name:<{_NAME_WIDTH}} started")
            return
        self._tasks[event.name] = self._spinner().add_task(f"{event.position} {event.name}", total=None)

    def _finished(self, event: StageEvent) -> None:
        status = event.status.upper()
        if not self.live:
            self._line(f"{event.position} {event.name:<{_NAME_WIDTH}} {status:<7} {event.seconds:6.1f}s  "
                       f"{event.headline}")
            return
        from rich.text import Text

        task = self._tasks.pop(event.name, None)
        if self._progress is not None and task is not None:
            self._progress.remove_task(task)
        line = Text.assemble(f"{event.position} {event.name:<{_NAME_WIDTH}} ",
                             (f"{status:<7}", _STYLE.get(event.status, "")), f" {event.seconds:6.1f}s  ",
                             (event.headline, "dim" if event.status == "skipped" else ""))
        self._print(line)

    def _spinner(self) -> Progress:
        if self._progress is None:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                      console=self._rich(), transient=True)
            self._progress.start()
        return self._progress

    def _rich(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stream, highlight=False)
        return self._console

    def _line(self, text: str) -> None:
        if self.live:
            self._print(text)
            return
        if self._closed:
            return
        try:
            self.stream.write(text + "\n")
            self.stream.flush()  # a pipe is block-buffered: each line must show when it happens
        except (BrokenPipeError, ValueError):  # a closed pipe or stream: the run goes on without progress
            self._closed = True
        self.printed = True

    def _print(self, text: Any) -> None:
        console = self._rich()
        console.print(text, markup=False, no_wrap=True, overflow="ellipsis", soft_wrap=False)
        self.printed = True


def note(label: str, text: str, *, stream: TextIO | None = None) -> None:
    """Print one labelled line, ``HH:MM:SS label: text``, flushed at once (for a notebook's long steps)."""
    out = stream or sys.stdout
    out.write(f"{time.strftime('%H:%M:%S')} {label}: {text}\n")
    out.flush()


@contextlib.contextmanager
def step(label: str, *, stream: TextIO | None = None) -> Iterator[None]:
    """Print ``label: started`` now and ``label: done in N.Ns`` (or ``failed after``) when the block ends."""
    note(label, "started", stream=stream)
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        note(label, f"failed after {time.perf_counter() - started:.1f}s", stream=stream)
        raise
    note(label, f"done in {time.perf_counter() - started:.1f}s", stream=stream)
