"""The one decorator every message class goes through, and the registry the codec reads.

A message is a frozen, slotted, keyword-only dataclass. ``@message`` applies exactly that and
records the class under its name, so the msgpack codec can round-trip it and the test suite can
generate every message type without a hand-kept list.

Rules for message fields (the codec and pykka's shared-object semantics rely on them):

- scalars only: ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``;
- tuples of those, or of other messages; never lists, dicts or sets;
- other messages, nested;
- closed sets as ``Literal[...]`` of strings.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar, dataclass_transform

__all__ = ["MESSAGE_TYPES", "Message", "field_names", "message", "replace"]

_T = TypeVar("_T")

MESSAGE_TYPES: dict[str, type[Any]] = {}
"""Every message class by its tag (the class name). Filled by :func:`message` at import."""


class Message:
    """Marker base class: ``isinstance(x, Message)`` is true for every message."""

    __slots__ = ()


@dataclass_transform(frozen_default=True, kw_only_default=True)
def message(cls: type[_T]) -> type[_T]:
    """Turn ``cls`` into a frozen, slotted, keyword-only dataclass and register it.

    Raises:
        TypeError: if another message class already uses the same name, or ``cls`` does not
            derive from :class:`Message`.
    """
    name = cls.__name__
    if name in MESSAGE_TYPES:
        raise TypeError(f"message type {name!r} is defined twice")
    if not issubclass(cls, Message):
        raise TypeError(f"message type {name!r} must derive from messages.Message")
    made: type[_T] = dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(cls)
    MESSAGE_TYPES[name] = made
    return made


def field_names(cls: type[Any]) -> tuple[str, ...]:
    """The dataclass field names of a message class, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(cls))


def replace(msg: _T, **changes: Any) -> _T:
    """A copy of ``msg`` with ``changes`` applied (messages are immutable)."""
    return dataclasses.replace(msg, **changes)  # type: ignore[type-var]
