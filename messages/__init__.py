"""Typed messages exchanged by the actors, grouped by conversation, and their codec.

Every message is a frozen, slotted, keyword-only dataclass registered in
:data:`MESSAGE_TYPES`; :func:`encode` / :func:`decode` round-trip any of them through msgpack.
"""

from __future__ import annotations

# Every message module is imported here so that the codec knows every type in any process
# (the outbox and poison-message redelivery decode whatever was encoded).
from messages import delivery as delivery
from messages import rest as rest
from messages._base import MESSAGE_TYPES, Message, message, replace
from messages.cache import GetPrice, GetPrices, PriceEntry, PriceReply
from messages.codec import FORMAT_VERSION, decode, encode
from messages.control import (
    ChildFailed,
    ChildHealth,
    FailureInfo,
    HealthQuery,
    HealthReport,
    Ping,
    Pong,
    Progress,
    Shutdown,
    Tick,
)
from messages.feed import FeedConnected, FeedData, FeedDisconnected
from messages.market import (
    Kline,
    KlineUpdate,
    KlineUpdates,
    MarkPrice,
    MarkPrices,
    StreamReply,
    Ticker24h,
    Tickers,
)
from messages.open_interest import LiquidUniverse, OiAlert, OiSample, OiSamples, UniverseMember
from messages.types import ActorName, Symbol, TimestampMs
from messages.volume import VolumeAlert

__all__ = [
    "FORMAT_VERSION",
    "MESSAGE_TYPES",
    "ActorName",
    "ChildFailed",
    "ChildHealth",
    "FailureInfo",
    "FeedConnected",
    "FeedData",
    "FeedDisconnected",
    "GetPrice",
    "GetPrices",
    "HealthQuery",
    "HealthReport",
    "Kline",
    "KlineUpdate",
    "KlineUpdates",
    "LiquidUniverse",
    "MarkPrice",
    "MarkPrices",
    "Message",
    "OiAlert",
    "OiSample",
    "OiSamples",
    "Ping",
    "Pong",
    "PriceEntry",
    "PriceReply",
    "Progress",
    "Shutdown",
    "StreamReply",
    "Symbol",
    "Tick",
    "Ticker24h",
    "Tickers",
    "TimestampMs",
    "UniverseMember",
    "VolumeAlert",
    "decode",
    "encode",
    "message",
    "replace",
]
