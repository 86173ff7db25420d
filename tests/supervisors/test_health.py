"""Health: the report a supervisor answers, the periodic log lines, and the line format."""

from __future__ import annotations

from messages.control import ChildHealth, FailureInfo, HealthReport, Ping
from supervisors import Supervisor, failure_info, format_duration, format_health_line, health_lines

from .probes import WAIT, ProbeCrash, ProbeProgress, probe, root

NOW_MS = 1_773_900_000_000


def test_the_report_shows_state_uptime_restarts_failure_and_progress_nested(
    trees, journal, fake_clock, logs
):
    inner = Supervisor.spec("inner", children=[probe("leaf", journal)], health_log_interval_s=None)
    handle = trees(
        root([probe("feed", journal), probe("once", journal, restart="temporary"), inner]),
        clock=fake_clock,
    )
    started_ms = fake_clock.time_ms()
    handle.registry.tell("feed", ProbeProgress())
    handle.registry.ask("feed", Ping(), timeout=WAIT)
    handle.registry.tell("once", ProbeCrash())
    assert logs.wait_for("root/once ended (RuntimeError@receive); temporary, not restarted")
    fake_clock.advance(12)
    report = handle.health(timeout=WAIT)
    feed, once, sub = report.children
    assert report.path == "root"
    assert report.at_ms == fake_clock.time_ms()
    assert (feed.name, feed.state, feed.uptime_s, feed.restarts) == ("feed", "running", 12.0, 0)
    assert feed.last_progress_ms == started_ms
    assert feed.generation == 1
    assert (once.state, once.uptime_s) == ("failed", None)
    assert once.last_failure == FailureInfo(
        error_type="RuntimeError", error_message="boom", at_ms=started_ms, phase="receive"
    )
    assert sub.name == "inner"
    [subtree] = report.subtrees
    assert subtree.path == "root/inner"
    assert [(c.name, c.state) for c in subtree.children] == [("leaf", "running")]


def test_one_health_line_per_child_is_logged_every_interval(trees, journal, fake_clock, logs):
    handle = trees(
        root([probe("a", journal), probe("b", journal)], health_log_interval_s=10),
        clock=fake_clock,
    )
    fake_clock.advance(10)
    assert handle.timers.settle(WAIT)
    line = (
        "health root/a state=running gen=1 up=10.0s restarts=0 progress=- dropped=0 "
        "abandoned=0 failure=- failure_age=- failure_msg=-"
    )
    assert logs.wait_for(line)
    assert logs.wait_for("health root/b state=running gen=1 up=10.0s")
    fake_clock.advance(10)
    assert handle.timers.settle(WAIT)
    assert logs.wait_for("health root/a state=running gen=1 up=20.0s")
    assert len(logs.matching("health root/a ")) == 2


def test_a_health_line_is_logged_on_every_restart(trees, journal, logs):
    handle = trees(root([probe("a", journal)]))
    handle.registry.tell("a", ProbeCrash())
    assert logs.wait_for(
        "health root/a state=backoff gen=1 up=- restarts=1 progress=- dropped=0 abandoned=0 "
        'failure=RuntimeError@receive failure_age=0.0s failure_msg="boom"'
    )
    assert logs.wait_for("root/a RuntimeError@receive; restart #1 in 0.00 s")


def test_a_rest_for_one_restart_logs_a_health_line_for_every_child_it_takes_down(
    trees, journal, logs
):
    handle = trees(
        root(
            [
                probe("a", journal),
                probe("b", journal),
                probe("c", journal),
                probe("d", journal, restart="temporary"),
            ],
            strategy="rest_for_one",
        )
    )
    handle.registry.tell("b", ProbeCrash())
    assert logs.wait_for("root/b RuntimeError@receive; restart #1 with c, d in 0.00 s")
    assert logs.wait_for("health root/d ")  # the decision's lines: b's, then c's, then d's
    b_line = (
        "health root/b state=backoff gen=1 up=- restarts=1 progress=- dropped=0 abandoned=0 "
        'failure=RuntimeError@receive failure_age=0.0s failure_msg="boom"'
    )
    assert logs.matching("health root/b ") == [b_line]
    tail = "progress=- dropped=0 abandoned=0 failure=- failure_age=- failure_msg=-"
    [c_line] = logs.matching("health root/c ")
    assert c_line.startswith("health root/c state=stopping gen=1 up=")
    assert c_line.endswith(f" restarts=1 {tail}")
    [d_line] = logs.matching("health root/d ")
    assert d_line.startswith("health root/d state=stopping gen=1 up=")
    assert d_line.endswith(f" restarts=0 {tail}"), "temporary: stopped for good, not restarted"
    assert logs.matching("health root/a ") == [], "a is not touched by b's restart"
    assert journal.wait_for("started", "c", count=2)
    assert {c.name: c.state for c in handle.health(timeout=WAIT).children} == {
        "a": "running",
        "b": "running",
        "c": "running",
        "d": "stopped",
    }


def test_durations_read_as_compact_human_text():
    assert format_duration(None) == "-"
    assert format_duration(0.04) == "0.0s"
    assert format_duration(12.34) == "12.3s"
    assert format_duration(245) == "4m05s"
    assert format_duration(3 * 3600 + 12 * 60 + 5) == "3h12m05s"
    assert format_duration(2 * 86400 + 3 * 3600 + 12 * 60) == "2d03h12m"
    assert format_duration(-5) == "0.0s"


def test_a_health_line_shows_every_field_in_a_fixed_order():
    health = ChildHealth(
        name="feed",
        state="running",
        restarts=2,
        uptime_s=11_525.0,
        last_failure=FailureInfo(
            error_type="ConnectionResetError",
            error_message="[Errno 104] Connection reset by peer",
            at_ms=NOW_MS - 723_000,
            phase="receive",
        ),
        last_progress_ms=NOW_MS - 400,
        dropped_messages=1,
        generation=3,
    )
    assert format_health_line(health, path="root/market/feed", now_ms=NOW_MS) == (
        "health root/market/feed state=running gen=3 up=3h12m05s restarts=2 progress=0.4s "
        "dropped=1 abandoned=0 failure=ConnectionResetError@receive failure_age=12m03s "
        'failure_msg="[Errno 104] Connection reset by peer"'
    )


def test_failure_descriptions_are_one_line_truncated_and_json_quoted_in_the_line():
    info = failure_info(ValueError('bad "x"\nsecond line' + "y" * 300), phase="start", at_ms=5)
    assert "\n" not in info.error_message
    assert len(info.error_message) == 200
    assert info.error_message.endswith("…")
    health = ChildHealth(name="x", state="failed", restarts=0, uptime_s=None, last_failure=info)
    line = format_health_line(health, path="root/x", now_ms=5)
    assert 'failure_msg="bad \\"x\\" second line' in line
    assert "failure=ValueError@start failure_age=0.0s" in line


def test_health_lines_flatten_a_nested_report_with_full_paths():
    leaf = ChildHealth(name="leaf", state="running", restarts=0, uptime_s=1.0)
    report = HealthReport(
        supervisor="root",
        path="root",
        at_ms=NOW_MS,
        children=(ChildHealth(name="inner", state="running", restarts=0, uptime_s=1.0),),
        subtrees=(HealthReport(supervisor="inner", path="root/inner", children=(leaf,)),),
    )
    assert [line.split()[1] for line in health_lines(report)] == ["root/inner", "root/inner/leaf"]
