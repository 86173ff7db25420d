"""Hypothesis strategies for every registered message type, derived from type hints."""

from __future__ import annotations

import types
import typing
from typing import Any

from hypothesis import strategies as st

import messages
from messages import MESSAGE_TYPES, MarkPrice, MarkPrices

INT64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)
FLOATS = st.floats(allow_nan=False)


def for_type(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy for one field type (the subset the message rules allow)."""
    supertype = getattr(tp, "__supertype__", None)
    if supertype is not None:  # NewType
        return for_type(supertype)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is type(None):
        return st.none()
    if tp is bool:
        return st.booleans()
    if tp is int:
        return INT64
    if tp is float:
        return FLOATS
    if tp is str:
        return st.text(max_size=20)
    if tp is bytes:
        return st.binary(max_size=20)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([for_type(a) for a in args])
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return st.lists(for_type(args[0]), max_size=3).map(tuple)
    if isinstance(tp, type) and tp in MESSAGE_TYPES.values():
        return for_message(tp)
    raise TypeError(f"no strategy for field type {tp!r}")


_CACHE: dict[type[Any], st.SearchStrategy[Any]] = {}


def for_message(cls: type[Any]) -> st.SearchStrategy[Any]:
    """A strategy that builds valid instances of one message class (memoised, so recursive
    messages such as ``HealthReport.subtrees`` refer back to one strategy)."""
    if cls not in _CACHE:
        _CACHE[cls] = st.deferred(lambda: _build(cls))
    return _CACHE[cls]


def _build(cls: type[Any]) -> st.SearchStrategy[Any]:
    if cls is MarkPrices:
        return st.builds(
            MarkPrices.from_items,
            st.lists(for_message(MarkPrice), max_size=4),
            for_type(messages.TimestampMs),
            st.integers(min_value=0, max_value=10),
        )
    hints = typing.get_type_hints(cls)
    fields = {name: for_type(hints[name]) for name in messages._base.field_names(cls)}
    return st.builds(cls, **fields)
