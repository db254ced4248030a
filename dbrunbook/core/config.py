"""What a run is about: the target database, the target models, the Alembic environment.

:class:`Target` is built from CLI options, from ``[tool.dbrunbook]`` in the project's
``pyproject.toml``, or both (options win). It never shows its password: ``db`` is the masked
URL and the secret travels separately to the stage kernels.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData

from dbrunbook.core.project import ini_url, sqlite_from
from dbrunbook.core.secrets import kernel_environment, mask_url, parse_url
from dbrunbook.errors import ConfigError

#: Keys accepted in ``[tool.dbrunbook]``.
CONFIG_KEYS = ("db", "models", "alembic_config", "runs_dir", "stages", "parameters", "lint", "renames", "flask_app",
               "trusted_keys", "required_approvals", "notify_command", "notify_webhook", "notify_timeout",
               "alembic_isolation_level")
#: SQLAlchemy's isolation level names (``isolation_level=`` of an engine or a connection). ``AUTOCOMMIT`` is the one a
#: project's own migration runner uses when its revisions run ``CREATE INDEX CONCURRENTLY`` outside a transaction.
ISOLATION_LEVELS = ("AUTOCOMMIT", "READ COMMITTED", "READ UNCOMMITTED", "REPEATABLE READ", "SERIALIZABLE")


@dataclass(frozen=True)
class Target:
    """The database a run is about, and how its change is described."""

    db: str
    models: str = ""
    alembic_config: str = ""
    project_dir: Path = field(default_factory=Path.cwd)
    _kernel_env: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Target:
        """A target for ``url``; the password is split off and masked."""
        parse_url(url)
        return cls(db=mask_url(url), _kernel_env=kernel_environment(url), **kwargs)

    def kernel_env(self) -> dict[str, str]:
        """Environment a stage kernel needs to reach the database (holds the secret)."""
        return dict(self._kernel_env)

    @contextlib.contextmanager
    def environment(self, **extra: str) -> Iterator[None]:
        """Lend the secret (and ``extra`` variables) to this process and its children, for a while."""
        lent = {**self._kernel_env, **extra}
        saved = {k: os.environ.get(k) for k in lent}
        os.environ.update(lent)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def secrets(self) -> list[str]:
        return list(self._kernel_env.values())

    def with_(self, **changes: Any) -> Target:
        return replace(self, **changes)


def read_pyproject(project_dir: Path) -> dict[str, Any]:
    """The ``[tool.dbrunbook]`` table of ``project_dir/pyproject.toml`` (empty if none)."""
    path = project_dir / "pyproject.toml"
    if not path.exists():
        return {}
    try:
        table = tomllib.loads(path.read_text()).get("tool", {}).get("dbrunbook", {})
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    unknown = sorted(set(table) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError(f"unknown keys in [tool.dbrunbook] of {path}: {', '.join(unknown)}")
    return dict(table)


def _expand(value: str) -> str:
    # "env:NAME" keeps URLs with passwords out of pyproject.toml.
    if value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise ConfigError(f"environment variable {name} is not set")
        return os.environ[name]
    return value


def load_target(project_dir: Path | None = None, **options: str | None) -> Target:
    """Merge CLI ``options`` over ``[tool.dbrunbook]`` of ``project_dir`` into a :class:`Target`.

    Without a database in either, the ``sqlalchemy.url`` of the Alembic config names it, as it
    does for the ``alembic`` command.
    """
    project_dir = (project_dir or Path.cwd()).resolve()
    settings = read_pyproject(project_dir)
    merged = {k: v for k, v in settings.items() if k in ("db", "models", "alembic_config")}
    merged.update({k: v for k, v in options.items() if v})
    alembic_config = merged.get("alembic_config", "")
    if alembic_config:
        path = Path(alembic_config)
        path = path if path.is_absolute() else project_dir / path
        if not path.exists():
            raise ConfigError(f"Alembic config {alembic_config} not found")
        alembic_config = str(path)
    rest = {"models": str(merged.get("models", "")), "alembic_config": alembic_config, "project_dir": project_dir}
    db = merged.get("db")
    if not db:
        url = ini_url(Path(alembic_config), project_dir) if alembic_config else None
        if url is None:
            raise ConfigError(_no_database(project_dir, alembic_config))
        return Target.from_url(url, **rest)
    db = _expand(str(db))
    if "db" not in options or not options["db"]:
        # A relative SQLite path in pyproject.toml is relative to the project, not the shell's folder.
        db = sqlite_from(db, project_dir)
    return Target.from_url(db, **rest)


def _no_database(project_dir: Path, alembic_config: str) -> str:
    looked = f"no database given: looked at --db, db in [tool.dbrunbook] of {project_dir / 'pyproject.toml'}"
    if alembic_config:
        return f"{looked} and sqlalchemy.url in {alembic_config} (empty or a placeholder); pass --db URL"
    return f"{looked} and found no Alembic config whose sqlalchemy.url could name it; pass --db URL"


def load_metadata(spec: str, project_dir: Path | None = None) -> MetaData:
    """Import ``module:attr`` (a MetaData or a declarative base) from the project."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"--models must look like module:attr, not {spec!r}")
    root = str((project_dir or Path.cwd()).resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import models module {module_name}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigError(f"{module_name} has no attribute {attr}")
    metadata = obj if isinstance(obj, MetaData) else getattr(obj, "metadata", None)
    if not isinstance(metadata, MetaData):
        raise ConfigError(f"{spec} is neither a MetaData nor a declarative base")
    return metadata


def load_renames(project_dir: Path | None = None) -> dict[str, str]:
    """Confirmed renames from ``renames`` in ``[tool.dbrunbook]``.

    Each is ``"table.old" = "table.new"`` (a column) or ``"old" = "new"`` (a table).
    """
    raw = read_pyproject((project_dir or Path.cwd()).resolve()).get("renames", {})
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise ConfigError('renames in [tool.dbrunbook] must be a table of "old" = "new" strings')
    for old, new in raw.items():
        if ("." in old) != ("." in new) or ("." in old and old.split(".")[0] != new.split(".")[0]):
            raise ConfigError(f"renames: {old!r} = {new!r} must both be columns of one table or both tables")
    return dict(raw)


@dataclass(frozen=True)
class RunSettings:
    """What ``[tool.dbrunbook]`` says about runs: where they go, which stages, their parameters, who signs, who hears.

    ``trusted_keys`` is the allowed-signers file (absolute; None when not configured); ``required_approvals`` the
    number of approver signatures from distinct trusted keys ``apply`` requires; ``notify_command`` and
    ``notify_webhook`` the notification targets, kept as written (a webhook may be ``env:NAME``, read when an
    event is sent, so that a missing variable fails a delivery and not every command); see docs/signing.md.
    """

    runs_dir: Path
    stages: list[str] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    project_dir: Path = field(default_factory=Path.cwd)
    trusted_keys: Path | None = None
    required_approvals: int = 0
    notify_command: str = ""
    notify_webhook: str = ""
    notify_timeout: float = 5.0
    #: The isolation level the project's revisions run at, on the copies and in ``apply`` ("" when not set: as
    #: Alembic opens the connection, in a transaction); one of :data:`ISOLATION_LEVELS`.
    alembic_isolation_level: str = ""


def load_run_settings(project_dir: Path | None = None) -> RunSettings:
    """``runs_dir`` (relative to the project, default ``runs``), ``stages``, ``parameters``, signing, notifying."""
    project_dir = (project_dir or Path.cwd()).resolve()
    table = read_pyproject(project_dir)
    runs_dir, stages, parameters = table.get("runs_dir", "runs"), table.get("stages"), table.get("parameters", {})
    if not isinstance(runs_dir, str) or not runs_dir:
        raise ConfigError("runs_dir in [tool.dbrunbook] must be a folder name")
    if isinstance(stages, str):
        stages = [s.strip() for s in stages.split(",") if s.strip()]
    if stages is not None and not (isinstance(stages, list) and all(isinstance(s, str) for s in stages)):
        raise ConfigError('stages in [tool.dbrunbook] must be a list of stages, e.g. ["01", "03"]')
    if not isinstance(parameters, dict):
        raise ConfigError("parameters in [tool.dbrunbook] must be a table of stage parameters")
    return RunSettings(project_dir / runs_dir, stages or None, dict(parameters), project_dir,
                       alembic_isolation_level=isolation_level(table), **_signing_settings(table, project_dir))


def isolation_level(table: dict[str, Any]) -> str:
    """``alembic_isolation_level`` of a ``[tool.dbrunbook]`` table, as SQLAlchemy spells it ("" when not set).

    Case and ``_`` for a space are forgiven (``autocommit``, ``read_committed``); anything else is an error, so a
    typo does not silently leave the revisions in a transaction their runner never opens.
    """
    value = table.get("alembic_isolation_level")
    if value is None:
        return ""
    level = " ".join(value.replace("_", " ").upper().split()) if isinstance(value, str) else ""
    if level not in ISOLATION_LEVELS:
        raise ConfigError(f"alembic_isolation_level in [tool.dbrunbook] must be one of {', '.join(ISOLATION_LEVELS)}"
                          f" (AUTOCOMMIT is the usual one), not {value!r}")
    return level


def load_isolation_level(project_dir: Path | None = None) -> str:
    """``alembic_isolation_level`` of ``[tool.dbrunbook]`` ("" when not set), see :func:`isolation_level`."""
    return isolation_level(read_pyproject((project_dir or Path.cwd()).resolve()))


def _signing_settings(table: dict[str, Any], project_dir: Path) -> dict[str, Any]:
    """The signing and notification keys of ``[tool.dbrunbook]``, checked."""
    trusted, required = table.get("trusted_keys"), table.get("required_approvals", 0)
    if trusted is not None and (not isinstance(trusted, str) or not trusted):
        raise ConfigError("trusted_keys in [tool.dbrunbook] must be the path of an allowed signers file")
    # bool is an int to Python, but `required_approvals = true` is a mistake, not one approval
    if isinstance(required, bool) or not isinstance(required, int) or required < 0:
        raise ConfigError("required_approvals in [tool.dbrunbook] must be a whole number, 0 or more")
    found: dict[str, Any] = {"required_approvals": required,
                             "trusted_keys": project_dir / Path(trusted).expanduser() if trusted else None}
    for key in ("notify_command", "notify_webhook"):
        value = table.get(key, "")
        if not isinstance(value, str):
            raise ConfigError(f"{key} in [tool.dbrunbook] must be a string")
        found[key] = value.strip()
    timeout = table.get("notify_timeout", 5.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ConfigError("notify_timeout in [tool.dbrunbook] must be a positive number of seconds")
    found["notify_timeout"] = float(timeout)
    return found
