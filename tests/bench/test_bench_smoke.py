"""The benchmark harness runs end to end (its ``--tiny`` mode) and reports every benchmark.

The numbers of a tiny run mean nothing; what is checked is the report's shape: every benchmark
of issue 9 is there, a measured one carries value, target, baseline, ratio, anchor, pass and
min / median / max figures, an unbuilt one says why it is not available, nothing failed, and the
readable table went to standard error. :func:`problems` is also run on broken reports, so the
checks are known to bite.
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench import BENCHMARKS

REPO = Path(__file__).resolve().parents[2]
NAMES = [b.name for b in BENCHMARKS]


def _has_min_median_max(value: Any) -> bool:
    if isinstance(value, dict):
        if {"min", "median", "max"} <= value.keys() and value.get("median") is not None:
            return True
        return any(_has_min_median_max(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_min_median_max(v) for v in value)
    return False


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def problems(doc: dict[str, Any]) -> list[str]:  # noqa: PLR0912 - one check per line
    """Everything wrong with a report (empty when it is well formed)."""
    found = []
    if doc.get("schema") != "volspike-bench/1":
        found.append(f"schema is {doc.get('schema')!r}")
    machine = doc.get("machine") or {}
    found.extend(
        f"machine.{key} missing"
        for key in ("python", "cpu_count", "platform")
        if not machine.get(key)
    )
    if not _number(doc.get("wall_s")):
        found.append("wall_s missing")
    if doc.get("errors"):
        found.append(f"harness errors: {doc['errors']}")
    benchmarks = doc.get("benchmarks") or {}
    if list(benchmarks) != NAMES:
        found.append(f"benchmarks are {list(benchmarks)}, expected {NAMES}")
    for name, entry in benchmarks.items():
        status = entry.get("status")
        if status == "not_available":
            if not isinstance(entry.get("reason"), str) or len(entry["reason"]) < 20:
                found.append(f"{name}: not_available without a reason")
            continue
        if status != "ok":
            found.append(f"{name}: status {status!r}: {entry.get('reason')}")
            continue
        keys = ("value", "target", "baseline", "ratio", "anchor", "pass", "measured")
        found.extend(f"{name}: no {key!r}" for key in keys if key not in entry)
        if not _number(entry.get("value")):
            found.append(f"{name}: value {entry.get('value')!r} is not a number")
        target = entry.get("target") or {}
        if not (target.get("text") and target.get("op") and _number(target.get("value"))):
            found.append(f"{name}: target incomplete: {target}")
        if not (entry.get("anchor") or {}).get("text"):
            found.append(f"{name}: anchor without text")
        if entry.get("baseline") is not None and not _number(entry.get("ratio")):
            found.append(f"{name}: a baseline but no ratio")
        if entry.get("ratio") is not None and not _number(entry["ratio"]):
            found.append(f"{name}: ratio {entry['ratio']!r} is not a number")
        if not isinstance(entry.get("pass"), bool):
            found.append(f"{name}: pass is {entry.get('pass')!r}")
        if not _has_min_median_max(entry.get("measured")):
            found.append(f"{name}: no min / median / max in measured")
    return found


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny run of ``python -m bench``: (report, stderr, seconds)."""
    out = tmp_path_factory.mktemp("bench") / "report.json"
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--tiny",
            "--json-out",
            str(out),
            "--log-file",
            str(out.with_suffix(".log")),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=55,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc = json.loads(proc.stdout)
    assert json.loads(out.read_text(encoding="utf-8")) == doc
    return doc, proc.stderr, elapsed


def test_the_report_is_well_formed(run):
    doc, _, _ = run
    assert problems(doc) == []
    assert doc["mode"] == "tiny"


def test_measured_benchmarks_really_measured_something(run):
    bench = run[0]["benchmarks"]
    assert bench["ingest"]["measured"]["per_frame_ms"]["json_loads"]["median"] > 0
    assert bench["tick_to_readable"]["measured"]["ours"]["from_wire_ms"]["n"] > 0
    assert bench["tick_to_readable"]["baseline"]["from_wire_ms"]["n"] > 0
    assert bench["enrichment"]["measured"]["found_inproc"] > 0
    for point in bench["api_throughput"]["measured"]["points"].values():
        assert point["rps"]["median"] > 0
        assert point["errors"] == 0
        # a response reaches the client's socket before the client has read it (where the
        # kernel stamps loopback segments at all: the report falls back otherwise)
        on_socket, seen = point["arrival_p99_ms"]["median"], point["p99_ms"]["median"]
        if "kernel receive time" in bench["api_throughput"]["measured"]["p99_basis"]:
            assert on_socket is not None and 0 < on_socket <= seen
    restart = bench["restart"]["measured"]["actors"]
    assert {"price-cache", "http-api", "feed-market"} <= set(restart)
    assert all(a["serving_again_ms"]["n"] >= 1 for a in restart.values())
    assert bench["memory"]["measured"]["after_warmup"]["rss_kb"] > 0


def test_every_benchmark_measured_something_even_in_the_tiny_mode(run):
    bench = run[0]["benchmarks"]
    assert [n for n, b in bench.items() if b["status"] != "ok"] == []
    alerts = bench["alert_latency"]["measured"]
    assert alerts["latency_s"]["n"] >= 1
    oi = bench["oi_freshness"]["measured"]
    assert oi["symbols"] > 0 and oi["oi_requests"] > oi["symbols"]
    assert oi["resample_interval_s"]["n"] >= 1 and oi["resample_interval_s"]["max"] > 0
    assert oi["http_429_or_418"] == 0
    assert oi["weight_per_min_mean"] > 0 and 0 < oi["used_weight_1m_peak"] <= 2400


def test_the_table_goes_to_stderr_and_the_run_is_quick(run):
    _, stderr, elapsed = run
    for number in range(1, 9):
        assert f"\n{number}. " in stderr
    assert "mode=tiny" in stderr
    assert elapsed < 40, f"the tiny run took {elapsed:.1f} s"


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d["benchmarks"].pop("restart"),
        lambda d: d["benchmarks"]["ingest"].pop("baseline"),
        lambda d: d["benchmarks"]["ingest"].update(ratio=None),
        lambda d: d["benchmarks"]["enrichment"].update(value=None),
        lambda d: d["benchmarks"]["memory"].update(measured={"rss": 1}),
        lambda d: d["benchmarks"]["api_throughput"].update(status="error", reason="boom"),
        lambda d: d["benchmarks"]["alert_latency"].update(status="not_available", reason=""),
        lambda d: d["errors"].append("a helper did not stop"),
    ],
)
def test_the_checks_catch_a_broken_report(run, damage):
    doc = copy.deepcopy(run[0])
    damage(doc)
    assert problems(doc) != []
