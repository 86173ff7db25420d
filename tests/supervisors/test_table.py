"""The supervisor's pure decisions (no actors): start order, strategies, the stop queue."""

from __future__ import annotations

import pytest

from supervisors._table import ChildTable

from .probes import Journal, probe

ALIVE = object()


def table(strategy, names="abcd", **specs):
    journal = Journal()
    children = [probe(n, journal, **specs.get(n, {})) for n in names]
    return ChildTable(children, strategy=strategy, rand=lambda: 0.5)


def run_all(tbl):
    """Pretend every child started and completed its handshake."""
    for child in tbl:
        child.ref, child.phase, child.want_start = ALIVE, "running", True
    tbl.initial_done = True


def names(children):
    return [c.name for c in children]


def test_the_initial_start_goes_one_child_at_a_time_in_spec_order():
    tbl = table("one_for_one")
    assert names(tbl.to_start()) == ["a"]
    tbl.records[0].ref, tbl.records[0].phase = ALIVE, "starting"
    assert tbl.to_start() == [], "b waits for a's handshake"
    tbl.records[0].phase = "running"
    assert names(tbl.to_start()) == ["b"]


def test_a_child_ended_for_good_does_not_block_the_ones_after_it():
    tbl = table("one_for_one")
    tbl.records[0].want_start = False  # a temporary child that failed
    assert names(tbl.to_start()) == ["b"]


def test_the_handshake_to_the_parent_happens_once_when_everyone_has_settled():
    tbl = table("one_for_one", names="ab")
    assert not tbl.mark_started()
    run_all(tbl)
    tbl.initial_done = False
    assert tbl.mark_started()
    assert not tbl.mark_started()


def test_one_for_one_condemns_only_the_failed_child():
    tbl = table("one_for_one")
    run_all(tbl)
    b = tbl.records[1]
    b.ref = None
    assert tbl.condemn(b) == []
    assert tbl.to_stop == []
    assert [c.restarts for c in tbl] == [0, 1, 0, 0]


def test_one_for_one_restarts_independently_after_the_initial_start():
    tbl = table("one_for_one")
    run_all(tbl)
    for child in (tbl.records[1], tbl.records[3]):
        child.ref = None
    tbl.records[1].waiting_backoff = True
    assert names(tbl.to_start()) == ["d"], "d does not wait for b's backoff"


def test_rest_for_one_stops_the_later_siblings_last_first_then_starts_in_order():
    tbl = table("rest_for_one")
    run_all(tbl)
    b = tbl.records[1]
    b.ref = None
    assert names(tbl.condemn(b)) == ["c", "d"]
    assert names(tbl.to_stop) == ["d", "c"]
    assert tbl.to_start() == [], "nothing starts while stops are pending"
    assert tbl.next_stop().name == "d"
    tbl.records[3].phase = "stopping"
    assert tbl.next_stop() is None, "one stop at a time"
    for child in tbl.records[2:]:
        child.ref = None
        tbl.stop_done(child)
    assert names(tbl.to_start()) == ["b"]
    assert [c.restarts for c in tbl] == [0, 1, 1, 1]


def test_rest_for_one_condemns_a_still_alive_child_after_its_later_siblings():
    tbl = table("rest_for_one")
    run_all(tbl)
    tbl.condemn(tbl.records[2])  # c missed its liveness deadline but is alive
    assert names(tbl.to_stop) == ["d", "c"]


def test_rest_for_one_leaves_a_temporary_later_sibling_down():
    tbl = table("rest_for_one", d={"restart": "temporary"})
    run_all(tbl)
    tbl.records[1].ref = None
    tbl.condemn(tbl.records[1])
    assert not tbl.records[3].want_start
    assert tbl.records[2].want_start


@pytest.mark.parametrize(
    ("restart", "abnormal", "expected"),
    [
        ("permanent", False, True),
        ("permanent", True, True),
        ("transient", False, False),
        ("transient", True, True),
        ("temporary", True, False),
        ("temporary", False, False),
    ],
)
def test_the_restart_type_decides_whether_a_child_comes_back(restart, abnormal, expected):
    tbl = table("one_for_one", names="a", a={"restart": restart})
    assert ChildTable.comes_back(tbl.records[0], abnormal=abnormal) is expected


def test_a_table_refuses_duplicate_names_and_unknown_strategies():
    with pytest.raises(ValueError, match="duplicate"):
        table("one_for_one", names="aa")
    with pytest.raises(ValueError, match="strategy"):
        table("one_for_all")
