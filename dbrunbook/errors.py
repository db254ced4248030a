"""The one exception tree of dbrunbook.

Every error dbrunbook raises on purpose derives from :class:`DbrunbookError` and carries
the data a caller needs, plus the process exit code the CLI maps it to::

    DbrunbookError                      exit 1
    ├── UsageError                      exit 2  bad option, malformed URL, missing file
    │   ├── ConfigError                         [tool.dbrunbook], --models, alembic.ini
    │   │   └── EvidenceError                   a stage's sidecar does not hold its evidence type (core/evidence)
    │   ├── UnknownRunError                     no run matches the given id
    │   ├── UnknownParameterError               a parameter the stage template does not declare
    │   └── SigningKeyError                     a signing key cannot be read or written (core/signing.py)
    ├── ApplyRefused                    exit 1  a guard of `dbrunbook apply` failed (target untouched)
    │   └── ApplyLocked                         another apply holds the target (stages/guarded_apply/_lock.py)
    ├── NotificationFailed              exit 1  a notification target did not take an event (core/notify.py)
    ├── DatabaseUnreachable             exit 5  cannot connect to a database server
    ├── TargetFenced                    exit 6  code dbrunbook ran (env.py, models) reached for the target
    ├── StageFailed                     exit 3  a stage notebook raised
    ├── VerificationFailed              exit 4  a run folder does not match its manifest
    │   ├── SecretLeak                          a secret value was found in a run folder
    │   └── SignatureInvalid                    a signature does not verify, or trusted ones are missing
    └── ToolMissing                     exit 2  a client program (pg_dump, mariadb-dump) is not installed

Exit code 0 means every stage passed (or only warned); exit 1 means the run completed and
at least one stage blocked. The CLI prints ``str(error)`` on one line and never a traceback.
Any other exception is a bug of dbrunbook's: the CLI prints it on one line too and exits 70
(``EX_SOFTWARE`` of sysexits.h), so a CI job never mistakes it for a blocked change. A driver's
failure to connect that reaches the CLI is reported as :class:`DatabaseUnreachable` (exit 5). When
the reader of stdout goes away (``| head``), the CLI exits 141 silently, as a shell does on SIGPIPE.

:class:`DbrunbookNote` is not an error: a warning category for how dbrunbook read the user's
input (a ``postgres://`` URL read as ``postgresql://``); the CLI prints it as one ``note:`` line.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_PASS = 0
EXIT_BLOCKED = 1
EXIT_USAGE = 2
EXIT_STAGE_ERROR = 3
EXIT_VERIFY = 4
EXIT_UNREACHABLE = 5
EXIT_FENCED = 6
EXIT_INTERNAL = 70  # EX_SOFTWARE: an internal error, never a verdict

EXIT_CODES = {
    EXIT_PASS: "every stage passed or only warned",
    EXIT_BLOCKED: "the run completed and at least one stage blocked (or lint found issues at the chosen severity)",
    EXIT_USAGE: "usage error: bad option, malformed URL, missing file, unknown run, missing client tool",
    EXIT_STAGE_ERROR: "a stage notebook raised; its executed notebook is in the run folder",
    EXIT_VERIFY: "verification failed: a run folder does not match its manifest, or a secret leaked into it",
    EXIT_UNREACHABLE: "a database server could not be reached, by any command that connects",
    EXIT_FENCED: "code dbrunbook ran (env.py, settings, models) tried to change the target; it was stopped first",
    EXIT_INTERNAL: "an unexpected internal error (a bug in dbrunbook); set DBRUNBOOK_DEBUG=1 to see the traceback",
}


class DbrunbookNote(UserWarning):
    """How dbrunbook read the user's input, worth a line but not an error (shown by the CLI as ``note:``)."""


class DbrunbookError(Exception):
    """Base of every error dbrunbook raises on purpose."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(DbrunbookError):
    """The user asked for something that cannot be done as asked."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """Configuration (URL, models, Alembic, pyproject) is missing or wrong."""


class UnknownRunError(UsageError):
    """No archived run matches ``run``."""

    def __init__(self, run: str, runs_dir: Path) -> None:
        super().__init__(f"no run matches {run!r} in {runs_dir}")
        self.run = run
        self.runs_dir = runs_dir


class UnknownParameterError(UsageError):
    """A parameter was given that none of the selected stage templates declares."""

    def __init__(self, stage: str, names: Sequence[str], known: Sequence[str]) -> None:
        super().__init__(
            f"no selected stage ({stage}) declares parameter {', '.join(sorted(names))} "
            f"(declared: {', '.join(sorted(known))})"
        )
        self.stage = stage
        self.names = list(names)
        self.known = list(known)


class ApplyRefused(DbrunbookError):
    """A guard of ``dbrunbook apply`` failed and was not accepted: the target was not touched.

    ``guards`` are the failed guards (each with ``id`` and ``detail``).
    """

    exit_code = EXIT_BLOCKED

    def __init__(self, guards: Sequence[Any]) -> None:
        super().__init__("apply refused: " + "; ".join(f"{g.id}: {g.detail}" for g in guards))
        self.guards = list(guards)


class DatabaseUnreachable(DbrunbookError):
    """A database server did not answer; ``url`` is already masked."""

    exit_code = EXIT_UNREACHABLE

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot connect to {url}: {reason}")
        self.url = url
        self.reason = reason


class TargetFenced(DbrunbookError):
    """Code that dbrunbook ran tried to connect to the target for writing, and was refused before any statement.

    ``target`` names the database (never a URL with a password); ``mode`` is the fence's mode (``guard`` in
    dbrunbook's own processes, ``sandbox`` where Alembic runs on a scratch copy); ``where`` is the first
    ``file:line`` of the caller's own code (usually its ``env.py``).
    """

    exit_code = EXIT_FENCED

    def __init__(self, target: str, mode: str, where: str = "") -> None:
        self.target, self.mode = target, mode
        self.where = where or _user_frame()
        at = f" from {self.where}" if self.where else ""
        super().__init__(f"refused a connection to {target}{at}: only dbrunbook apply may change the target")


def _user_frame() -> str:
    """The innermost ``file:line`` of the stack that is neither dbrunbook, the standard library nor a driver."""
    import sys
    import sysconfig
    import traceback

    skip = [sysconfig.get_paths()["stdlib"], "<frozen", "<string>"]
    for name in ("dbrunbook", "sqlalchemy", "alembic", "psycopg", "psycopg2", "pymysql", "MySQLdb", "IPython"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            skip.append(str(Path(module.__file__ or "").parent))
    for frame in reversed(traceback.extract_stack()):
        if not frame.filename.startswith(tuple(skip)):
            return f"{frame.filename}:{frame.lineno}"
    return ""


class StageFailed(DbrunbookError):
    """A stage notebook raised while it was executed."""

    exit_code = EXIT_STAGE_ERROR

    def __init__(self, stage: str, notebook: Path, cell: int | None, reason: str) -> None:
        where = f" in cell {cell}" if cell is not None else ""
        super().__init__(f"stage {stage} failed{where}: {reason} (see {notebook})")
        self.stage = stage
        self.notebook = notebook
        self.cell = cell
        self.reason = reason


class VerificationFailed(DbrunbookError):
    """A run folder does not match its manifest."""

    exit_code = EXIT_VERIFY

    def __init__(self, run_dir: Path, problems: Sequence[str]) -> None:
        super().__init__(f"{run_dir} failed verification: " + "; ".join(problems))
        self.run_dir = run_dir
        self.problems = list(problems)


class SecretLeak(VerificationFailed):
    """A secret value was found in files of a run folder."""

    def __init__(self, run_dir: Path, files: Sequence[Path]) -> None:
        names = [str(f.relative_to(run_dir)) for f in files]
        super().__init__(run_dir, [f"a secret value appears in {n} (redacted)" for n in names])
        self.files = list(files)


class ToolMissing(UsageError):
    """A client program dbrunbook needs is not installed."""

    def __init__(self, tool: str, package: str) -> None:
        super().__init__(f"{tool} is not installed (install the {package} package)")
        self.tool = tool
        self.package = package


class SigningKeyError(UsageError):
    """A signing key cannot be read, is not an ed25519 key, or cannot be written where asked."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"signing key {path}: {reason}")
        self.path = path
        self.reason = reason


class SignatureInvalid(VerificationFailed):
    """A run's signatures do not hold: one does not verify, or the trusted ones required are missing.

    ``checks`` are the :class:`~dbrunbook.core.signing.SignatureCheck` of every signature file of the run.
    """

    def __init__(self, run_dir: Path, problems: Sequence[str], checks: Sequence[Any] = ()) -> None:
        super().__init__(run_dir, problems)
        self.checks = list(checks)


class NotificationFailed(DbrunbookError):
    """A notification target (command or webhook) did not take an event; ``failed`` are its deliveries.

    Only ``dbrunbook notify-test`` raises it: a notification sent during an apply never stops the apply.
    """

    exit_code = EXIT_BLOCKED

    def __init__(self, event: str, failed: Sequence[Any]) -> None:
        super().__init__(f"{event} notification not delivered: "
                         + "; ".join(f"{f.kind} {f.target}: {f.detail}" for f in failed))
        self.event = event
        self.failed = list(failed)
