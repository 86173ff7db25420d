"""Addressing by name: lookups at send time, misses counted, claims unique per tree."""

from __future__ import annotations

import pykka
import pytest

from messages.control import Ping
from messages.errors import SupervisionError
from supervisors import NameRegistry

from .probes import WAIT, Journal, ProbeActor, ProbeWork


@pytest.fixture
def registry():
    return NameRegistry()


def test_tell_reaches_the_registered_actor(registry):
    journal = Journal()
    ref = ProbeActor.start(journal=journal)
    registry.register("cache", ref)
    assert registry.tell("cache", ProbeWork(n=1)) is True
    ref.ask(Ping(), timeout=WAIT)
    assert journal.events("work") == [("work", "ProbeActor", 1, 1)]


def test_tell_to_an_unknown_name_returns_false_and_counts(registry):
    assert registry.tell("nobody", ProbeWork()) is False
    assert registry.tell("nobody", ProbeWork()) is False
    assert registry.undelivered("nobody") == 2


def test_tell_to_a_dead_incarnation_returns_false_and_counts(registry):
    ref = ProbeActor.start(journal=Journal())
    registry.register("cache", ref)
    ref.stop(block=True, timeout=WAIT)
    assert registry.get("cache") is None
    assert registry.tell("cache", ProbeWork()) is False
    assert registry.undelivered("cache") == 1


def test_unregistering_a_stale_ref_keeps_the_current_incarnation(registry):
    old, new = ProbeActor.start(journal=Journal()), ProbeActor.start(journal=Journal())
    registry.register("cache", old)
    registry.register("cache", new)
    assert registry.unregister("cache", old) is False
    assert registry.get("cache") is new
    assert registry.unregister("cache", new) is True
    assert registry.names() == ()


def test_a_name_claimed_by_another_supervisor_is_refused(registry):
    registry.claim("feed", "root/market")
    registry.claim("feed", "root/market")  # the same owner again (a restarted supervisor)
    with pytest.raises(SupervisionError, match="already used by root/market"):
        registry.claim("feed", "root/other")
    registry.release("feed", "root/other")  # not the owner: no effect
    with pytest.raises(SupervisionError):
        registry.claim("feed", "root/other")
    registry.release("feed", "root/market")
    registry.claim("feed", "root/other")


def test_ask_with_nobody_there_raises_actor_dead_error_and_counts(registry):
    with pytest.raises(pykka.ActorDeadError, match="nobody"):
        registry.ask("nobody", Ping(), timeout=WAIT)
    assert registry.undelivered("nobody") == 1
