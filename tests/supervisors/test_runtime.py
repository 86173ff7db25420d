from __future__ import annotations

import gc

import pytest

from messages.errors import ConfigError
from supervisors.config import load_config
from supervisors.runtime import tune_gc


@pytest.fixture
def saved_thresholds():
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


def test_tune_gc_raises_only_the_young_threshold_and_returns_the_old_ones(saved_thresholds):
    gc.set_threshold(700, 11, 12)
    assert tune_gc(20_000) == (700, 11, 12)
    assert gc.get_threshold() == (20_000, 11, 12)


def test_zero_leaves_the_collector_alone(saved_thresholds):
    gc.set_threshold(700, 10, 10)
    assert tune_gc(0) is None
    assert gc.get_threshold() == (700, 10, 10)


def test_a_negative_threshold_is_refused(saved_thresholds):
    with pytest.raises(ValueError, match="young_threshold"):
        tune_gc(-1)


def test_the_daemon_default_and_its_setting():
    assert load_config(environ={}).gc_young_threshold == 20_000
    config = load_config(environ={"VOLSPIKE_GC_YOUNG_THRESHOLD": "0"})
    assert config.gc_young_threshold == 0
    assert config.sources["gc_young_threshold"] == "env"


def test_a_threshold_the_collector_cannot_take_is_a_configuration_error():
    with pytest.raises(ConfigError, match=r"VOLSPIKE_GC_YOUNG_THRESHOLD: .* above the maximum"):
        load_config(environ={"VOLSPIKE_GC_YOUNG_THRESHOLD": "3000000000"})
