"""Walk a project's source, scan each file, and collect what names the changed schema.

Python and ``.sql`` files under the chosen folders are read (never imported or run); the
Alembic script folder, the models module, virtualenvs, VCS and cache folders, run folders,
excluded patterns and files over a size limit are skipped, each skip with its reason.
"""
from __future__ import annotations

import ast
import fnmatch
import importlib.util
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dbrunbook.core.config import read_pyproject
from dbrunbook.errors import ConfigError
from dbrunbook.schema import Change, as_changes
from dbrunbook.stages.code_impact import _sql
from dbrunbook.stages.code_impact._model import InsertSite, Reference, Watch, build_watch
from dbrunbook.stages.code_impact._python import FileScan, tablenames

#: Folder names never scanned: VCS, virtualenvs, caches, build output, dbrunbook's run folders.
SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".venv", "venv", ".tox", ".nox", "node_modules", "__pycache__",
                       ".mypy_cache", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints", "site-packages",
                       "build", "dist", ".eggs", "runs"})
#: Files larger than this are skipped (generated code, data dumps).
MAX_BYTES = 1_000_000
_SUFFIXES = (".py", ".sql")


@dataclass
class CodeImpact:
    """What a scan found: references, INSERTs, and what it scanned and skipped."""

    project_dir: Path
    watch: Watch
    references: list[Reference] = field(default_factory=list)
    inserts: list[InsertSite] = field(default_factory=list)
    scanned: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    #: Where mapped classes came from: "models" (imported), "code" (__tablename__), or both.
    class_sources: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"project_dir": str(self.project_dir), "scanned": self.scanned, "skipped": self.skipped,
                "classes": self.watch.classes, "class_sources": self.class_sources,
                "references": [r.to_json() for r in self.references],
                "inserts": [i.to_json() for i in self.inserts]}


def mapped_classes(models: str, project_dir: Path) -> tuple[dict[str, str], dict[tuple[str, str], str], Path | None]:
    """Class -> table and (table, attribute) -> column of the models' mapped classes, and the module's file.

    Nothing is raised: models that cannot be imported leave the mapping to ``__tablename__``
    in the code and to names.
    """
    module_name = models.partition(":")[0]
    if not module_name:
        return {}, {}, None
    root = str(project_dir.resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        spec = importlib.util.find_spec(module_name)
        module = importlib.import_module(module_name)
    except Exception:  # a broken models module is reported by the stages that need it
        return {}, {}, None
    origin = Path(spec.origin) if spec is not None and spec.origin else None
    classes: dict[str, str] = {}
    attributes: dict[tuple[str, str], str] = {}
    candidates = [v for v in vars(module).values() if isinstance(v, type)]
    for base in list(candidates):
        registry = getattr(base, "registry", None)
        candidates += [m.class_ for m in getattr(registry, "mappers", ())]
    for cls in candidates:
        table = getattr(cls, "__table__", None)
        if not isinstance(table, sa.Table):
            continue
        classes[cls.__name__] = table.name
        try:
            props: Iterable[Any] = sa.inspect(cls).column_attrs
            for prop in props:
                if prop.key != prop.columns[0].name:
                    attributes[(table.name, str(prop.key))] = str(prop.columns[0].name)
        except sa.exc.NoInspectionAvailable:
            continue
    return classes, attributes, origin


def _script_dir(alembic_config: str) -> Path | None:
    """The Alembic script folder of ``alembic_config`` (a relative location is tried from the ini's folder too)."""
    if not alembic_config:
        return None
    try:
        from alembic.config import Config

        location = Config(alembic_config).get_main_option("script_location") or ""
    except Exception:  # no usable Alembic environment: nothing extra to skip
        return None
    for base in (Path(alembic_config).resolve().parent, Path.cwd()):
        path = (base / location).resolve()
        if location and path.is_dir():
            return path
    return None


def _roots(project_dir: Path, source_dirs: Sequence[str]) -> list[Path]:
    roots = []
    for folder in source_dirs or [""]:
        path = (project_dir / folder).resolve()
        if not path.is_dir() or not path.is_relative_to(project_dir):
            raise ConfigError(f"source_dirs: {folder} is not a folder of {project_dir}")
        roots.append(path)
    return roots


def _excluded(rel: str, patterns: Sequence[str]) -> bool:
    parts = rel.split("/")
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(rel, p.rstrip("/") + "/*")
               or any(fnmatch.fnmatch(part, p.rstrip("/")) for part in parts) for p in patterns)


def _walk(project_dir: Path, roots: list[Path], exclude: Sequence[str], skip: dict[Path, str],
          max_bytes: int, skipped: list[dict[str, str]]) -> Iterator[tuple[Path, str]]:
    """(path, relative path) of each file to scan; skips are appended to ``skipped`` with their reason."""
    seen: set[Path] = set()

    def rel(path: Path) -> str:
        try:
            return path.relative_to(project_dir).as_posix()
        except ValueError:
            return path.as_posix()

    for root in roots:
        for folder, dirs, files in os.walk(root):
            here = Path(folder)
            for d in list(dirs):
                path = here / d
                reason = skip.get(path.resolve()) or ("skipped folder" if d in SKIP_DIRS else "") \
                    or ("virtualenv" if (path / "pyvenv.cfg").exists() else "") \
                    or ("excluded" if _excluded(rel(path), exclude) else "")
                if reason:
                    dirs.remove(d)
                    if d not in SKIP_DIRS:
                        skipped.append({"file": rel(path) + "/", "reason": reason})
            for name in sorted(files):
                path = here / name
                if not name.endswith(_SUFFIXES) or path.resolve() in seen:
                    continue
                seen.add(path.resolve())
                reason = skip.get(path.resolve()) or ("excluded" if _excluded(rel(path), exclude) else "")
                if not reason and path.stat().st_size > max_bytes:
                    reason = f"larger than {max_bytes} bytes"
                if reason:
                    skipped.append({"file": rel(path), "reason": reason})
                else:
                    yield path, rel(path)


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def scan(project_dir: Path | str, changes: Iterable[Change | Mapping[str, Any]], *,
         metadata: sa.MetaData | None = None, models: str = "", alembic_config: str = "",
         source_dirs: Sequence[str] = (), exclude: Sequence[str] = (), dialect: str | None = None,
         max_bytes: int = MAX_BYTES) -> CodeImpact:
    """Scan the project's Python and SQL files for references that the schema ``changes`` break; read-only."""
    project_dir = Path(project_dir).resolve()
    classes, attributes, models_file = mapped_classes(models, project_dir) if models else ({}, {}, None)
    skip: dict[Path, str] = {}
    if models_file is not None:
        skip[models_file.resolve()] = "the models (the new schema)"
    runs_dir = read_pyproject(project_dir).get("runs_dir")
    if isinstance(runs_dir, str) and runs_dir:
        skip[(project_dir / runs_dir).resolve()] = "dbrunbook run folders"
    script_dir = _script_dir(alembic_config)
    if script_dir is not None:
        skip[script_dir] = "Alembic scripts"
    skipped: list[dict[str, str]] = []
    files = list(_walk(project_dir, _roots(project_dir, source_dirs), exclude, skip, max_bytes, skipped))
    trees: dict[str, tuple[str, ast.Module]] = {}
    static: dict[str, str] = {}
    if models_file is not None and models_file.suffix == ".py" and (text := _read(models_file)) is not None:
        static.update(_tablenames(text))
    for path, rel in files:
        text = _read(path)
        if text is None:
            skipped.append({"file": rel, "reason": "not UTF-8 text"})
            continue
        if rel.endswith(".py"):
            try:
                trees[rel] = (text, ast.parse(text, filename=rel))
            except (SyntaxError, ValueError) as exc:
                skipped.append({"file": rel, "reason": f"not valid Python: {str(exc).splitlines()[0]}"})
                continue
            if "__tablename__" in text:
                static.update(tablenames(trees[rel][1]))
        else:
            trees[rel] = (text, ast.Module(body=[], type_ignores=[]))
    watch = build_watch(as_changes(changes), metadata, {**static, **classes}, attributes)
    impact = CodeImpact(project_dir, watch, scanned=list(trees),
                        class_sources=[s for s, found in (("models", classes), ("code", static)) if found])
    impact.skipped = skipped
    if watch.empty:
        return impact
    needles = _needles(watch)
    for rel, (text, tree) in trees.items():
        lowered = text.lower()
        if not any(n in lowered for n in needles):
            continue  # no watched name in the text at all: nothing to find
        if rel.endswith(".py"):
            found = FileScan(rel, text, watch, dialect).run(tree)
            impact.references += found.references
            impact.inserts += found.inserts
        else:
            _scan_sql(rel, text, watch, dialect, impact)
    impact.references = _unique(impact.references)
    return impact


def _needles(watch: Watch) -> set[str]:
    """Lower-case text every reference must contain: table (and class-like) names, column names, attribute keys."""
    found = {c.lower() for c in watch.column_names()} | {k.lower() for _, k in watch.attributes}
    found |= {cls.lower() for cls, table in watch.classes.items() if table in watch.tables()}
    for table in watch.tables():
        bare = table.lower().replace("_", "")
        found |= {table.lower(), bare[:max(len(bare) - 3, 4)]}  # OrderItem, Category for order_items, categories
    return found


def _tablenames(text: str) -> dict[str, str]:
    try:
        return tablenames(ast.parse(text))
    except (SyntaxError, ValueError):
        return {}


def _scan_sql(rel: str, text: str, watch: Watch, dialect: str | None, impact: CodeImpact) -> None:
    lines = text.splitlines()

    def at(offset: int) -> tuple[int, str]:
        line = text.count("\n", 0, offset) + 1
        return line, lines[line - 1].strip()[:200] if line <= len(lines) else ""

    for start, statement in _sql.statements(text, dialect):
        if not _sql.LOOKS_LIKE_SQL.match(statement):
            continue
        found = _sql.analyse(statement, watch, dialect)
        if found is None:
            continue
        for hit in found[0]:
            line, code = at(start + hit.offset)
            impact.references.append(Reference(rel, line, code, hit.table, hit.column, hit.access, "sql", "sql"))
        for ins in found[1]:
            line, code = at(start + ins.offset)
            impact.inserts.append(InsertSite(rel, line, code, ins.table, ins.columns, "sql", "sql"))


def _unique(refs: list[Reference]) -> list[Reference]:
    seen: dict[tuple[Any, ...], Reference] = {}
    for r in refs:
        seen.setdefault((r.file, r.line, r.table, r.column, r.access), r)
    return sorted(seen.values(), key=lambda r: (r.file, r.line, r.table, r.column or ""))
