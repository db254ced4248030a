"""A user's Alembic project as Alembic itself reads it, and the copy of it a run works on.

:func:`resolve_project` reads an ``alembic.ini`` the way the ``alembic`` command does when run
from the project folder: ``%(here)s`` and the ini's own options interpolated, a relative
``script_location`` or version location taken from the current folder (the project folder),
``package:path`` resources found through the package, several version locations split by the
ini's ``path_separator`` rules, and ``[tool.alembic]`` of the project's ``pyproject.toml`` as
Alembic's fallback. :func:`alembic_config` copies the script directory and every version
location into a run folder and returns a :class:`~alembic.config.Config` that points at the copy
and keeps every other option of the ini (and the ini itself, for ``fileConfig``) for ``env.py``.
The copy records its layout in ``dbrunbook-locations.json``, so :func:`copied_scripts` can open it
without the project.
"""
from __future__ import annotations

import configparser
import contextlib
import json
import shutil
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError, coerce_resource_to_filename
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from dbrunbook.core.secrets import parse_url
from dbrunbook.dialects import get
from dbrunbook.errors import ConfigError

if TYPE_CHECKING:
    from dbrunbook.core.config import Target

_TEMPLATES = Path(__file__).resolve().parents[1] / "_templates"
#: The copy's layout: where each version location went, and where it came from.
LAYOUT_FILE = "dbrunbook-locations.json"
#: Folder of the copy that holds version locations found outside the script directory.
_OUTSIDE = "_version_locations"


@dataclass(frozen=True)
class AlembicProject:
    """Where a project's Alembic scripts are, as Alembic resolves them from the project folder."""

    ini: Path | None
    section: str
    script_dir: Path
    version_locations: tuple[Path, ...]
    url: str | None  # None when empty, a placeholder, or unreadable (ini_url says why)
    recursive: bool = False

    @property
    def locations(self) -> tuple[Path, ...]:
        """The version locations Alembic reads: the configured ones, else ``script_dir/versions``."""
        return self.version_locations or (self.script_dir / "versions",)


def _one_line(ini: Path, exc: Exception) -> ConfigError:
    """A one-line error for what reading ``ini`` raised; option values are never shown (they may hold secrets)."""
    if isinstance(exc, configparser.InterpolationMissingOptionError):
        # ConfigParser lower-cases the name; the raw value still spells it as the user did.
        raw = str(exc.args[2]) if len(exc.args) > 2 else ""
        spelled = [part.split(")")[0] for part in raw.split("%(")[1:]]
        name = next((n for n in spelled if n.lower() == exc.reference), exc.reference)
        return ConfigError(f"{ini}: {exc.option} in [{exc.section}] uses %({name})s, which is not "
                           "defined (Alembic only provides %(here)s); fill in the template or pass --db")
    if isinstance(exc, configparser.InterpolationError):
        return ConfigError(f"{ini}: cannot interpolate {exc.option} in [{exc.section}] "
                           f"({type(exc).__name__}; write %% for a literal %)")
    if isinstance(exc, configparser.MissingSectionHeaderError):  # a ParsingError: first
        return ConfigError(f"{ini} is not a valid ini file (line {exc.lineno}: no [section] header)")
    if isinstance(exc, configparser.ParsingError):
        lines = ", ".join(str(n) for n, _ in exc.errors)
        return ConfigError(f"{ini} is not a valid ini file (line {lines})")
    if isinstance(exc, tomllib.TOMLDecodeError):
        return ConfigError(f"pyproject.toml next to {ini} is not valid TOML: {exc}")
    return ConfigError(f"{ini}: {' '.join(str(exc).split())}")


@contextlib.contextmanager
def _reading(ini: Path) -> Iterator[None]:
    """Turn what Alembic or ConfigParser raise while reading ``ini`` into one-line ConfigErrors."""
    try:
        yield
    except (configparser.Error, tomllib.TOMLDecodeError, CommandError, ValueError) as exc:
        raise _one_line(ini, exc) from None


def _open(ini: Path, project_dir: Path, section: str) -> Config:
    """The Config the ``alembic`` command builds when run in ``project_dir`` with ``-c ini -n section``."""
    toml = project_dir / "pyproject.toml"
    cfg = Config(str(ini), ini_section=section, toml_file=str(toml) if toml.is_file() else None)
    with _reading(ini):
        # Alembic falls back to [tool.alembic] for its own options; without either there is nothing to read.
        if not cfg.file_config.has_section(section) and not cfg.toml_alembic_config:
            raise ConfigError(f"{ini} has no [{section}] section")
    return cfg


@contextlib.contextmanager
def _importable(paths: list[Path]) -> Iterator[None]:
    # Alembic prepends prepend_sys_path before it resolves a package:path resource; so do we, for a while.
    saved = list(sys.path)
    sys.path[:0] = [str(p) for p in paths]
    try:
        yield
    finally:
        sys.path[:] = saved


def _candidates(value: str, name: str, ini: Path, project_dir: Path) -> list[Path]:
    """Where ``value`` may be: as Alembic reads it first (from the project folder), then the ini's folder."""
    try:
        path = coerce_resource_to_filename(value)
    except Exception as exc:  # import errors of the named package, of any kind
        raise ConfigError(f"{name} {value!r} of {ini}: cannot find the package resource "
                          f"({type(exc).__name__}: {' '.join(str(exc).split())})") from None
    if path.is_absolute():
        return [path]
    return [project_dir / path, ini.parent / path]


def _sys_paths(cfg: Config, ini: Path, project_dir: Path) -> list[Path]:
    """The project folder and the ini's ``prepend_sys_path`` entries, absolute (Alembic reads them from the cwd)."""
    with _reading(ini):
        entries = cfg.get_prepend_sys_paths_list() or []
    paths = [project_dir] + [project_dir / e for e in entries if e]
    return list(dict.fromkeys(p.resolve() for p in paths))


def resolve_project(ini: Path, project_dir: Path, section: str = "alembic") -> AlembicProject:
    """Read ``ini`` as ``alembic`` run in ``project_dir`` would: script directory, version locations, URL."""
    ini, project_dir = ini.absolute(), project_dir.absolute()
    if not ini.is_file():
        raise ConfigError(f"Alembic config {ini} not found")
    cfg = _open(ini, project_dir, section)
    with _reading(ini):
        location = cfg.get_alembic_option("script_location")
        locations = cfg.get_version_locations_list() or []
        recursive = cfg.get_alembic_boolean_option("recursive_version_locations")
    if not location and (ini.parent / "env.py").exists():
        # Flask-Migrate keeps alembic.ini inside the script directory and sets script_location in code.
        location = str(ini.parent)
    if not location:
        raise ConfigError(f"{ini} has no script_location in [{section}]")
    with _importable(_sys_paths(cfg, ini, project_dir)):
        tried = _candidates(location, "script_location", ini, project_dir)
        script_dir = next((p for p in tried if p.is_dir()), None)
        if script_dir is None:
            raise ConfigError(f"script_location {location!r} of {ini} not found: tried "
                              + " and ".join(str(p) for p in tried))
        if not any((script_dir / env).exists() for env in ("env.py", "env.pyc")):
            raise ConfigError(f"Alembic directory {script_dir} (script_location of {ini}) has no env.py")
        versions = []
        for value in locations:
            found = _candidates(value, "version location", ini, project_dir)
            # A location that exists nowhere is skipped by Alembic too; keep Alembic's reading of it.
            versions.append(next((p for p in found if p.is_dir()), found[0]))
    try:
        url = ini_url(ini, project_dir, section)
    except ConfigError:  # a template URL does not stop a run given --db; load_target reports it when it must
        url = None
    return AlembicProject(ini=ini, section=section, script_dir=script_dir.resolve(),
                          version_locations=tuple(p.resolve() for p in versions), url=url, recursive=recursive)


def _placeholder(value: str) -> bool:
    """True for what ``alembic init`` and templates leave in ``sqlalchemy.url`` instead of a URL."""
    value = value.strip()
    return (value in ("", '""', "''") or "${" in value or "{{" in value
            or (value.startswith("<") and value.endswith(">")) or value.split("://")[0] == "driver")


def sqlite_from(url: str, project_dir: Path) -> str:
    """``url`` with a relative SQLite path made absolute from ``project_dir``, where SQLAlchemy would open it."""
    parsed = parse_url(url)
    path = parsed.database
    dialect = get(parsed.get_backend_name())
    if dialect is None or not dialect.file_based or not path or path == ":memory:" or Path(path).is_absolute():
        return url
    return parsed.set(database=str(project_dir / path)).render_as_string(hide_password=False)


def ini_url(ini: Path, project_dir: Path, section: str = "alembic") -> str | None:
    """The ini's ``sqlalchemy.url``, interpolated as Alembic does; None when empty or a template placeholder."""
    ini = ini.absolute()
    cfg = _open(ini, project_dir.absolute(), section)
    with _reading(ini):
        value = cfg.file_config.get(section, "sqlalchemy.url", fallback=None)
    if value is None or _placeholder(value):
        return None
    try:
        make_url(value.strip())
    except (ArgumentError, ValueError):
        # The value is not shown: a malformed URL may still hold a password.
        raise ConfigError(f"sqlalchemy.url in [{section}] of {ini} is not a database URL") from None
    return sqlite_from(value.strip(), project_dir.absolute())


def _layout(project: AlembicProject, dest: Path) -> list[tuple[Path, str, bool]]:
    """Each version location, where it goes in the copy (relative to its root), and whether it is copied itself.

    Locations inside the script directory keep their place in its copy; one inside another
    location keeps its place in that one's copy (so no file is copied, and read, twice); the
    others are copied to a folder of their own under ``_version_locations``.
    """
    order = sorted(enumerate(project.locations), key=lambda item: len(item[1].parts))
    roots: list[tuple[Path, str]] = [(project.script_dir, "")]
    placed: dict[int, tuple[Path, str, bool]] = {}
    for index, source in [(-1, project.script_dir), *order]:
        if dest.absolute().resolve().is_relative_to(source):
            raise ConfigError(f"{source} (an Alembic folder of {project.ini}) holds the run folder {dest}; "
                              "it cannot be copied into itself: choose a runs folder outside it")
        if index < 0:
            continue
        root = next(((src, rel) for src, rel in roots if source.is_relative_to(src)), None)
        if root is None:
            rel = f"{_OUTSIDE}/{index}-{source.name or 'versions'}"
            roots.append((source, rel))
            placed[index] = (source, rel, True)
        else:
            tail = source.relative_to(root[0]).as_posix()
            placed[index] = (source, "/".join(p for p in (root[1], tail) if p and p != ".") or ".", False)
    return [placed[i] for i in sorted(placed)]


def copy_project(project: AlembicProject, dest: Path) -> list[Path]:
    """Copy the script directory and every version location into ``dest``; the copied locations, in order."""
    layout = _layout(project, dest)
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(project.script_dir, partial, ignore=ignore)
    for source, rel, own in layout:
        if own and source.is_dir():
            shutil.copytree(source, partial / rel, ignore=ignore)
        (partial / rel).mkdir(parents=True, exist_ok=True)  # Alembic skips a missing location; the copy keeps it
    record = {"script_location": str(project.script_dir), "recursive": project.recursive,
              "version_locations": [{"copy": rel, "source": str(source)} for source, rel, _ in layout]}
    (partial / LAYOUT_FILE).write_text(json.dumps(record, indent=2) + "\n")
    # Copied whole, then moved into place: a copy that failed half-way is never reused.
    partial.rename(dest)
    return [dest / rel for _, rel, _ in layout]


def _layout_of(script_dir: Path) -> dict[str, Any]:
    path = script_dir / LAYOUT_FILE
    if not path.is_file():  # a copy made before the layout was recorded: Alembic's default
        return {"recursive": False, "version_locations": [{"copy": "versions", "source": ""}]}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def copied_locations(script_dir: Path) -> list[Path]:
    """The version locations of a copy made by :func:`alembic_config`, absolute."""
    return [(script_dir / item["copy"]).absolute() for item in _layout_of(script_dir)["version_locations"]]


def copied_scripts(script_dir: Path) -> ScriptDirectory:
    """The Alembic scripts of a copy, with all its version locations, read without the project."""
    return ScriptDirectory(str(script_dir), version_locations=[str(p) for p in copied_locations(script_dir)],
                           recursive_version_locations=bool(_layout_of(script_dir).get("recursive")))


def project_path(script_dir: Path, copied: Path) -> Path | None:
    """Where a file of the copy belongs in the project (e.g. a generated revision), or None if unknown."""
    best: tuple[int, Path] | None = None
    for item in _layout_of(script_dir)["version_locations"]:
        location = (script_dir / item["copy"]).absolute()
        if item["source"] and copied.absolute().is_relative_to(location):
            depth = len(location.parts)
            if best is None or depth > best[0]:
                best = (depth, Path(item["source"]) / copied.absolute().relative_to(location))
    return best[1] if best else None


def _init_scripts(dest: Path, models: str) -> None:
    """A fresh Alembic environment, for projects that do not have one yet."""
    (dest / "versions").mkdir(parents=True)
    hook = ""
    if models:
        hook = ("from dbrunbook.core.config import load_metadata\n"
                f"target_metadata = load_metadata({models!r})\n")
    (dest / "env.py").write_text((_TEMPLATES / "env.py").read_text().format(target_metadata=hook))
    shutil.copy(_TEMPLATES / "script.py.mako", dest / "script.py.mako")


def _escape(value: str) -> str:
    # ConfigParser interpolates what is set: a literal % (in a password, a path) must be doubled.
    return value.replace("%", "%%")


def alembic_config(target: Target, script_dir: Path) -> Config:
    """An in-memory Alembic config over a copy of the project's scripts at ``script_dir`` (copied once)."""
    if target.alembic_config:
        ini = Path(target.alembic_config).absolute()
        if not ini.is_file():
            raise ConfigError(f"Alembic config {ini} not found")
        if not script_dir.exists():
            copy_project(resolve_project(ini, target.project_dir), script_dir)
        cfg = _open(ini, target.project_dir, "alembic")
        sys_paths = _sys_paths(cfg, ini, target.project_dir)
    else:
        if not script_dir.exists():
            _init_scripts(script_dir, target.models)
        cfg, sys_paths = Config(), [target.project_dir]
    # Newlines separate the paths set here: unlike ":" or " ", no real path holds one.
    cfg.set_main_option("path_separator", "newline")
    cfg.set_main_option("script_location", _escape(str(script_dir)))
    cfg.set_main_option("version_locations", _escape("\n".join(str(p) for p in copied_locations(script_dir))))
    cfg.set_main_option("prepend_sys_path", _escape("\n".join(str(p) for p in sys_paths)))
    cfg.set_main_option("sqlalchemy.url", _escape(target.db))
    # Where the project's own code runs from (the cwd of the Alembic child process, as for `alembic` itself).
    cfg.attributes["dbrunbook_project_dir"] = str(target.project_dir)
    return cfg
