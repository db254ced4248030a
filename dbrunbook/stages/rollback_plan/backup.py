"""Backups with each dialect's own tool, proven by restoring them and comparing fingerprints.

:func:`plan_backup` only says what would run: the backup command, the file it writes and
the command that restores it. :func:`take_backup` runs it (SQLite's backup API,
``pg_dump -Fc``, ``mariadb-dump``/``mysqldump``) and records size, duration and sha256.
:func:`verify_backup` restores the file into a scratch database, fingerprints it and the
target, and names every difference; the scratch database is always dropped. Passwords
reach the client tools only through their environment variable (``PGPASSWORD``,
``MYSQL_PWD``), never on a command line, and recorded commands hold none.
"""
from __future__ import annotations

import contextlib
import hashlib
import shlex
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from dbrunbook.core.db import (
    check_connection,
    create_database,
    drop_database,
    engine_facts,
    make_engine,
    scratch_name,
    with_database,
)
from dbrunbook.core.fence import sqlite_read_only_connect
from dbrunbook.core.results import Finding
from dbrunbook.core.secrets import resolve_url
from dbrunbook.data.fingerprint import FingerprintDiff, compare, fingerprint
from dbrunbook.dialects import Dialect, facts
from dbrunbook.errors import ToolMissing, UsageError


@dataclass
class BackupPlan:
    """What a backup would run, and how the file is restored."""

    dialect: str
    path: Path
    command: str
    restore_command: str
    tool: str
    package: str

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


@dataclass
class Backup:
    """A backup taken: the file, its size and checksum, and how long it took."""

    plan: BackupPlan
    size: int
    seconds: float
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {**self.plan.to_json(), "size": self.size, "seconds": round(self.seconds, 3), "sha256": self.sha256}


@dataclass
class RestoreCheck:
    """A backup restored into a scratch database and compared with the target."""

    backup: Backup
    restore_seconds: float
    rows: int
    diffs: list[FingerprintDiff] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.diffs

    def to_json(self) -> dict[str, Any]:
        return {"backup": self.backup.to_json(), "restore_seconds": round(self.restore_seconds, 3),
                "rows": self.rows, "ok": self.ok, "diffs": [d.to_json() for d in self.diffs]}


def _dialect(url: URL) -> Dialect:
    engine = make_engine(url)
    try:
        check_connection(engine)
        return engine_facts(engine)
    finally:
        engine.dispose()


def plan_backup(url: str | URL, out_dir: str | Path) -> BackupPlan:
    """The backup of ``url`` into ``out_dir``: command, file and restore command; runs nothing."""
    real = resolve_url(url)
    dialect = _dialect(real)
    tool, package = dialect.backup_tool
    name = Path(real.database or "db").stem  # a SQLite path or a server's database name
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = Path(out_dir).resolve() / f"{name}-{stamp}{dialect.backup_suffix}"
    dump, args = dialect.dump_command(real, str(path)), dialect.restore_command(real, str(path))
    if dump is None or args is None:  # a file: copied with the sqlite3 module's backup API, no program needed
        command = f"sqlite3 backup API: {real.database} -> {path}"
        restore = shlex.join([dialect.restore_tool, real.database or "", f".restore {path}"])
    else:
        command = shlex.join(dump)
        args[1:1] = dialect.restore_replace_options
        restore = shlex.join(args) + (f" < {shlex.quote(str(path))}" if dialect.restore_reads_stdin else "")
    return BackupPlan(dialect=dialect.name, path=path, command=command, restore_command=restore, tool=tool,
                      package=package)


def _require(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        raise ToolMissing(tool, package)


def _run(args: list[str], env: dict[str, str], stdin: Path | None = None) -> None:
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(stdin.open("rb")) if stdin else subprocess.DEVNULL
        done = subprocess.run(args, stdin=source, capture_output=True, env=env)
    if done.returncode:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise UsageError(f"{args[0]} failed: {lines[-1] if lines else f'exit status {done.returncode}'}")


def _sqlite_copy(source: str, dest: str) -> None:
    src, dst = sqlite_read_only_connect(source), sqlite3.connect(dest)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def take_backup(url: str | URL, out_dir: str | Path) -> Backup:
    """Back up ``url`` into ``out_dir`` with the dialect's own tool; the database is only read."""
    real = resolve_url(url)
    plan = plan_backup(real, out_dir)
    dialect = facts(plan.dialect)
    dump = dialect.dump_command(real, str(plan.path))
    plan.path.parent.mkdir(parents=True, exist_ok=True)
    if dump is not None:
        _require(plan.tool, plan.package)
    started = time.perf_counter()
    try:
        if dump is None:
            _sqlite_copy(real.database or "", str(plan.path))
        else:
            _run(dump, dialect.client_env(real))
    except BaseException:
        plan.path.unlink(missing_ok=True)  # a partial backup must not pass for one
        raise
    seconds = time.perf_counter() - started
    return Backup(plan=plan, size=plan.path.stat().st_size, seconds=seconds, sha256=_sha256(plan.path))


@contextlib.contextmanager
def restored(backup: Backup, url: str | URL) -> Iterator[URL]:
    """Restore ``backup`` into a fresh scratch database beside ``url``; yield its URL, then drop it."""
    real = resolve_url(url)
    dialect = facts(backup.plan.dialect)
    if _sha256(backup.plan.path) != backup.sha256:
        raise UsageError(f"{backup.plan.path} does not match its recorded sha256")
    workdir = tempfile.mkdtemp(prefix="dbrunbook-") if dialect.file_based else None
    scratch = real.set(database=str(Path(workdir) / f"{scratch_name()}.db")) if workdir else \
        with_database(real, scratch_name())
    try:
        restore = dialect.restore_command(scratch, str(backup.plan.path))
        if restore is None:
            _sqlite_copy(str(backup.plan.path), scratch.database or "")
        else:
            _require(dialect.restore_tool, backup.plan.package)
            create_database(scratch)
            _run(restore, dialect.client_env(real), stdin=backup.plan.path if dialect.restore_reads_stdin else None)
        yield scratch
    finally:
        drop_database(scratch)
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def _print(url: URL) -> Any:
    engine = make_engine(url)
    try:
        return fingerprint(engine)
    finally:
        engine.dispose()


def verify_backup(url: str | URL, backup: Backup) -> RestoreCheck:
    """Restore ``backup`` into a scratch database and compare its fingerprint with ``url``'s."""
    expected = _print(resolve_url(url))
    started = time.perf_counter()
    with restored(backup, url) as scratch:
        seconds = time.perf_counter() - started
        actual = _print(scratch)
    return RestoreCheck(backup=backup, restore_seconds=seconds, rows=actual.rows, diffs=compare(expected, actual))


def backup_and_verify(url: str | URL, out_dir: str | Path) -> RestoreCheck:
    """Take a backup of ``url`` into ``out_dir`` and prove it restores to the same data."""
    return verify_backup(url, take_backup(url, out_dir))


def findings(check: RestoreCheck) -> list[Finding]:
    """BK000 when the restored copy matches the target, else one BK001 per difference."""
    if check.ok:
        b = check.backup
        return [Finding("BK000", "info", f"backup of {b.size} bytes taken in {b.seconds:.2f}s restores to the same "
                                         f"data ({check.rows} rows) in {check.restore_seconds:.2f}s",
                        str(b.plan.path.name), check.to_json())]
    return [Finding("BK001", "block", f"the restored backup differs: {d.message}",
                    f"{d.table}.{d.column}" if d.column else d.table, d.to_json(),
                    "check that nothing writes to the database during the backup, then take it again")
            for d in check.diffs]
