"""The msgpack codec for messages: what the outbox, the recorder and the state store write.

Layout of one encoded message (msgpack)::

    [FORMAT_VERSION, "<ClassName>", {"field": value, ...}]

Nested messages are msgpack extension type ``1`` holding ``["<ClassName>", {fields}]``.
Tuples decode as tuples, floats as 64-bit floats, ``bytes`` stay ``bytes``; so
``decode(encode(m)) == m`` for every message. Fields are stored by name, so a later version
that adds a field with a default still reads what this one wrote.

Anything else, truncated bytes, another format version, an unknown type or field, a missing
required field, raises :class:`~messages.errors.CodecError` with a one-line reason.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack

from messages._base import MESSAGE_TYPES, Message
from messages.errors import CodecError

__all__ = ["FORMAT_VERSION", "decode", "encode"]

FORMAT_VERSION = 1
"""Bumped when the layout above changes incompatibly."""

_EXT_MESSAGE = 1

_FIELDS: dict[type[Any], tuple[str, ...]] = {}


def _fields(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(cls))
        _FIELDS[cls] = names
    return names


_SCALARS = frozenset({type(None), bool, int, float, str, bytes})


def _check(owner: str, name: str, value: Any) -> None:
    kind = type(value)
    if kind in _SCALARS or isinstance(value, Message):
        return
    if kind is tuple:
        for item in value:
            _check(owner, name, item)
        return
    raise CodecError(
        f"cannot encode {owner}.{name}: a {kind.__name__} (messages carry scalars, tuples "
        "and messages only)"
    )


def _as_fields(msg: Message) -> dict[str, Any]:
    owner = type(msg).__name__
    fields = {}
    for name in _fields(type(msg)):
        value = getattr(msg, name)
        _check(owner, name, value)
        fields[name] = value
    return fields


def _default(obj: Any) -> Any:
    if isinstance(obj, Message):
        body = msgpack.packb(
            (type(obj).__name__, _as_fields(obj)), default=_default, use_bin_type=True
        )
        return msgpack.ExtType(_EXT_MESSAGE, body)
    raise TypeError(f"cannot encode a {type(obj).__name__} inside a message")


def encode(msg: Message) -> bytes:
    """Encode one message.

    Raises:
        CodecError: if ``msg`` is not a registered message or holds a value the format
            cannot carry (a list, a dict, a set, an integer beyond 64 bits, ...).
    """
    cls = type(msg)
    if MESSAGE_TYPES.get(cls.__name__) is not cls:
        raise CodecError(f"not a registered message type: {cls.__qualname__}")
    try:
        packed: bytes = msgpack.packb(
            (FORMAT_VERSION, cls.__name__, _as_fields(msg)), default=_default, use_bin_type=True
        )
    except CodecError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode {cls.__name__}: {exc}") from exc
    return packed


def _build(tag: Any, fields: Any) -> Message:
    if not isinstance(tag, str):
        raise CodecError(f"message type tag must be a string, got {type(tag).__name__}")
    cls = MESSAGE_TYPES.get(tag)
    if cls is None:
        raise CodecError(f"unknown message type {tag!r}")
    if not isinstance(fields, dict):
        raise CodecError(f"{tag}: fields must be a map, got {type(fields).__name__}")
    unknown = set(fields) - set(_fields(cls))
    if unknown:
        raise CodecError(f"{tag}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    try:
        built: Message = cls(**fields)
    except TypeError as exc:
        raise CodecError(f"{tag}: {exc}") from exc
    return built


def _ext_hook(code: int, data: bytes) -> Any:
    if code != _EXT_MESSAGE:
        raise CodecError(f"unknown msgpack extension type {code}")
    inner = msgpack.unpackb(data, use_list=False, raw=False, ext_hook=_ext_hook)
    if not isinstance(inner, tuple) or len(inner) != 2:
        raise CodecError("nested message is not a [type, fields] pair")
    return _build(inner[0], inner[1])


def decode(data: bytes) -> Message:
    """Decode bytes written by :func:`encode`.

    Raises:
        CodecError: for anything that is not exactly one message of this format version.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    try:
        top = msgpack.unpackb(data, use_list=False, raw=False, ext_hook=_ext_hook)
    except CodecError:
        raise
    except Exception as exc:
        raise CodecError(f"corrupt message bytes: {type(exc).__name__}: {exc}") from exc
    if not isinstance(top, tuple) or len(top) != 3:
        raise CodecError("not a message: expected [version, type, fields]")
    version, tag, fields = top
    if version != FORMAT_VERSION:
        raise CodecError(f"format version {version!r} is not supported (this is {FORMAT_VERSION})")
    return _build(tag, fields)
