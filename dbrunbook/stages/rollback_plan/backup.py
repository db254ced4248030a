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
import os
import shlex
import shutil
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlalchemy.engine import URL

from dbrunbook.core.db import check_connection, create_database, drop_database, engine_facts, make_engine, scratch_name, with_database
from dbrunbook.errors import ToolMissing, UsageError
from dbrunbook.data.fingerprint import FingerprintDiff, compare, fingerprint
from dbrunbook.core.results import Finding
from dbrunbook.core.secrets import resolve_url
from dbrunbook.core.fence import sqlite_read_only_connect


@dataclass(frozen=True)
class _Tools:
    """How one dialect backs up and restores: argument builders over a (password-free) URL."""

    suffix: str
    restore_tool: str
    #: Environment variable the client tools read the password from.
    password_env: str | None
    dump: Callable[[URL, Path], list[str]] | None
    restore: Callable[[URL, Path], list[str]] | None
    #: The restore reads the backup on standard input.
    restore_stdin: bool = False
    #: Restore options for a database that still holds the objects (the target, not a fresh scratch one).
    replace_existing: tuple[str, ...] = ()


def _pg_conn(url: URL) -> list[str]:
    return ["-h", url.host or "localhost", "-p", str(url.port or 5432), "-U", url.username or "postgres"]


def _my_conn(url: URL) -> list[str]:
    return ["-h", url.host or "localhost", "-P", str(url.port or 3306), "-u", url.username or "root"]


_PG = _Tools(
    suffix=".dump", restore_tool="pg_restore", password_env="PGPASSWORD",
    dump=lambda u, f: ["pg_dump", *_pg_conn(u), "-Fc", "--no-owner", "--no-acl", "-f", str(f), u.database or ""],
    restore=lambda u, f: ["pg_restore", *_pg_conn(u), "--no-owner", "--no-acl", "--exit-on-error",
                          "-d", u.database or "", str(f)],
    replace_existing=("--clean", "--if-exists"),
)


def _mysql_tools(dump_tool: str, client: str) -> _Tools:
    return _Tools(
        suffix=".sql", restore_tool=client, password_env="MYSQL_PWD", restore_stdin=True,
        dump=lambda u, f: [dump_tool, *_my_conn(u), "--single-transaction", "--routines", "--triggers",
                           "--hex-blob", f"--result-file={f}", u.database or ""],
        restore=lambda u, f: [client, *_my_conn(u), u.database or ""],
    )


#: Backup and restore per dialect; SQLite needs no program (the backup API is in the driver).
TOOLS: dict[str, _Tools] = {
    "sqlite": _Tools(suffix=".sqlite3", restore_tool="sqlite3", password_env=None, dump=None, restore=None),
    "postgresql": _PG,
    "mariadb": _mysql_tools("mariadb-dump", "mariadb"),
    "mysql": _mysql_tools("mysqldump", "mysql"),
}


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


def _dialect(url: URL) -> tuple[str, str, str]:
    engine = make_engine(url)
    try:
        check_connection(engine)
        facts = engine_facts(engine)
    finally:
        engine.dispose()
    return facts.name, *facts.backup_tool


def plan_backup(url: str | URL, out_dir: str | Path) -> BackupPlan:
    """The backup of ``url`` into ``out_dir``: command, file and restore command; runs nothing."""
    real = resolve_url(url)
    dialect, tool, package = _dialect(real)
    tools = TOOLS[dialect]
    name = Path(real.database or "db").stem  # a SQLite path or a server's database name
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = Path(out_dir).resolve() / f"{name}-{stamp}{tools.suffix}"
    if tools.dump is None or tools.restore is None:
        command = f"sqlite3 backup API: {real.database} -> {path}"
        restore = shlex.join(["sqlite3", real.database or "", f".restore {path}"])
    else:
        command = shlex.join(tools.dump(real, path))
        args = tools.restore(real, path)
        args[1:1] = tools.replace_existing
        restore = shlex.join(args) + (f" < {shlex.quote(str(path))}" if tools.restore_stdin else "")
    return BackupPlan(dialect=dialect, path=path, command=command, restore_command=restore, tool=tool,
                      package=package)


def _environment(url: URL, tools: _Tools) -> dict[str, str]:
    env = dict(os.environ)
    if url.password and tools.password_env:
        env[tools.password_env] = str(url.password)
    return env


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
    tools = TOOLS[plan.dialect]
    plan.path.parent.mkdir(parents=True, exist_ok=True)
    if tools.dump is not None:
        _require(plan.tool, plan.package)
    started = time.perf_counter()
    try:
        if tools.dump is None:
            _sqlite_copy(real.database or "", str(plan.path))
        else:
            _run(tools.dump(real, plan.path), _environment(real, tools))
    except BaseException:
        plan.path.unlink(missing_ok=True)  # a partial backup must not pass for one
        raise
    seconds = time.perf_counter() - started
    return Backup(plan=plan, size=plan.path.stat().st_size, seconds=seconds, sha256=_sha256(plan.path))


@contextlib.contextmanager
def restored(backup: Backup, url: str | URL) -> Iterator[URL]:
    """Restore ``backup`` into a fresh scratch database beside ``url``; yield its URL, then drop it."""
    real = resolve_url(url)
    tools = TOOLS[backup.plan.dialect]
    if _sha256(backup.plan.path) != backup.sha256:
        raise UsageError(f"{backup.plan.path} does not match its recorded sha256")
    workdir = tempfile.mkdtemp(prefix="dbrunbook-") if tools.restore is None else None
    scratch = real.set(database=str(Path(workdir) / f"{scratch_name()}.db")) if workdir else \
        with_database(real, scratch_name())
    try:
        if tools.restore is None:
            _sqlite_copy(str(backup.plan.path), scratch.database or "")
        else:
            _require(tools.restore_tool, backup.plan.package)
            create_database(scratch)
            _run(tools.restore(scratch, backup.plan.path), _environment(real, tools),
                 stdin=backup.plan.path if tools.restore_stdin else None)
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
