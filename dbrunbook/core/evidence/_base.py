"""Typed records of a sidecar's ``data``, read strictly and written back in the same shape.

A :class:`Record` is a dataclass whose fields are the keys of one JSON object. :meth:`Record.from_json`
checks every value against the field's type (``str``, ``int``, ``float``, ``bool``, ``None``, lists,
string-keyed dicts, nested records, ``Any`` for a payload another module parses) and refuses an object
with a missing required key, a value of the wrong type or a key the record does not declare: a renamed
key fails loudly where it is read, instead of reading as "not recorded". :meth:`Record.to_json` writes
the same keys back.

Some keys are written only sometimes, as stages always wrote them: a field declared with
:func:`optional` is left out while it is None, and the fields of one ``group`` are all left out while
every one of them is None (stage 07 writes the keys of its test run only when a command ran). Read back,
an absent optional key is its default.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, Union

from dbrunbook.errors import ConfigError

R = TypeVar("R", bound="Record")

_OMIT = "dbrunbook.omit"
_GROUP = "dbrunbook.group"


class EvidenceError(ConfigError):
    """A sidecar does not hold the evidence its stage's contract declares.

    ``stage`` names the stage whose sidecar it is, ``where`` the key (``data.round_trip.lossless``) and
    ``problem`` what is wrong with it (missing, of the wrong type, not declared).
    """

    def __init__(self, stage: str, where: str, problem: str) -> None:
        super().__init__(f"the {stage or 'stage'} sidecar does not keep its contract: {where}: {problem}")
        self.stage = stage
        self.where = where
        self.problem = problem


def optional(default: Any = None, *, group: str = "") -> Any:
    """A field whose key is left out of the sidecar while its value is None (and, in a ``group``, while
    every field of the group is None); an absent key reads as ``default``."""
    return dataclasses.field(default=default, metadata={_OMIT: True, _GROUP: group})


def grouped(group: str, default: Any = None) -> Any:
    """A field written whenever any field of ``group`` is not None (then even when it is None itself), and
    left out with the rest of its group otherwise; an absent key reads as ``default``."""
    return dataclasses.field(default=default, metadata={_OMIT: False, _GROUP: group})


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


class _Reader:
    """Converts one sidecar's JSON to records, naming the stage and the key of the first problem."""

    def __init__(self, stage: str) -> None:
        self.stage = stage

    def fail(self, where: str, problem: str) -> EvidenceError:
        return EvidenceError(self.stage, where, problem)

    def record(self, cls: type[R], raw: Any, where: str) -> R:
        if not isinstance(raw, Mapping):
            raise self.fail(where, f"expected an object ({cls.__name__}), got {_kind(raw)}")
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = [key for key in raw if key not in fields]
        if unknown:
            raise self.fail(where, f"unknown key {', '.join(map(repr, unknown))} (the contract declares "
                                   f"{', '.join(fields)})")
        values = {}
        for name, spec in fields.items():
            if name in raw:
                values[name] = self.value(_hints(cls)[name], raw[name], f"{where}.{name}")
            elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise self.fail(where, f"missing key {name!r} ({cls.__name__} requires it)")
        return cls(**values)

    def value(self, hint: Any, raw: Any, where: str) -> Any:
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if hint is Any:
            return raw
        if origin in (Union, types.UnionType):
            if raw is None and type(None) in args:
                return None
            arms = [a for a in args if a is not type(None)]
            if len(arms) != 1:
                raise TypeError(f"{where}: only X | None unions are supported in evidence, not {hint}")
            return self.value(arms[0], raw, where)
        if origin is list:
            if not isinstance(raw, list):
                raise self.fail(where, f"expected a list, got {_kind(raw)}")
            return [self.value(args[0], item, f"{where}[{i}]") for i, item in enumerate(raw)]
        if origin is dict:
            if not isinstance(raw, Mapping) or not all(isinstance(k, str) for k in raw):
                raise self.fail(where, f"expected an object, got {_kind(raw)}")
            return {k: self.value(args[1], v, f"{where}.{k}") for k, v in raw.items()}
        if isinstance(hint, type) and issubclass(hint, Record):
            return self.record(hint, raw, where)
        return self.scalar(hint, raw, where)

    def scalar(self, hint: Any, raw: Any, where: str) -> Any:
        if hint is float and isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return float(raw)
        if hint is int and isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if hint in (str, bool) and isinstance(raw, hint):
            return raw
        if hint not in (str, bool, int, float):
            raise TypeError(f"{where}: {hint} is not a type evidence can hold")
        raise self.fail(where, f"expected {_name(hint)}, got {_kind(raw)} {raw!r}"[:300])


def _dump(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


@dataclasses.dataclass
class Record:
    """One JSON object of a sidecar, typed: each key a field (see the module docstring)."""

    def to_json(self) -> dict[str, Any]:
        """The object as the sidecar holds it."""
        fields = dataclasses.fields(self)
        present = {f.metadata.get(_GROUP) for f in fields if f.metadata.get(_GROUP)
                   and getattr(self, f.name) is not None}
        out = {}
        for f in fields:
            value, group = getattr(self, f.name), f.metadata.get(_GROUP)
            if (group and group not in present) or (f.metadata.get(_OMIT) and value is None):
                continue
            out[f.name] = _dump(value)
        return out

    @classmethod
    def from_json(cls: type[R], raw: Any, *, stage: str = "") -> R:
        """The record in ``raw``; a missing required key, a wrong type or an undeclared key raises
        :class:`EvidenceError` naming ``stage`` and the key."""
        return _Reader(stage or cls.__name__).record(cls, raw, "data")


@dataclasses.dataclass
class Evidence(Record):
    """What one stage records for the stages after it: the ``data`` of its sidecar.

    :mod:`dbrunbook.core.contract` names the stage that writes each evidence type and reads it
    (:func:`dbrunbook.core.contract.load`), so its errors name the stage.
    """

    def gathered(self) -> bool:
        """Whether the stage gathered any evidence at all. A stage that checked nothing (no target to compare,
        no test command) finishes ``skipped``, not ``pass``: "nothing found" and "nothing looked at" differ."""
        return True
