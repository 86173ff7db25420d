"""The report: one JSON document (stdout, ``--json-out``) and a readable table (stderr).

Every benchmark contributes one entry under ``benchmarks`` keyed by its name:

- ``status: "ok"``: ``metric``, ``unit``, ``value`` (the headline figure), ``target``
  (``text``, ``op``, ``value``), ``baseline`` (measured in the same run, or ``null`` where none
  exists), ``ratio`` (value / baseline or the figure the target is stated on, or ``null``),
  ``anchor`` (the original's figures from ``../shared/DESIGN.md``), ``pass`` and ``measured``
  (every figure, with min / median / max where something was repeated);
- ``status: "not_available"``: ``reason`` (the code that would be measured does not exist yet);
- ``status: "error"``: ``reason`` (the benchmark itself failed; never hidden).
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

__all__ = ["fmt", "machine_info", "not_available", "ok", "print_table", "to_json_ready"]


def ok(
    *,
    number: int,
    title: str,
    metric: str,
    unit: str,
    value: float | None,
    target: dict[str, Any],
    baseline: dict[str, Any] | None,
    ratio: float | None,
    anchor: dict[str, Any],
    passed: bool | None,
    measured: dict[str, Any],
    rows: list[list[str]],
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """A measured benchmark's entry."""
    return {
        "number": number,
        "title": title,
        "status": "ok",
        "metric": metric,
        "unit": unit,
        "value": value,
        "target": target,
        "baseline": baseline,
        "ratio": ratio,
        "anchor": anchor,
        "pass": passed,
        "measured": measured,
        "notes": notes or [],
        "_rows": rows,
    }


def not_available(
    *, number: int, title: str, reason: str, target: dict[str, Any], anchor: dict[str, Any]
) -> dict[str, Any]:
    """A benchmark whose subject is not built yet."""
    return {
        "number": number,
        "title": title,
        "status": "not_available",
        "reason": reason,
        "target": target,
        "anchor": anchor,
        "pass": None,
    }


def error(*, number: int, title: str, reason: str) -> dict[str, Any]:
    """A benchmark that failed to run."""
    return {"number": number, "title": title, "status": "error", "reason": reason, "pass": False}


def to_json_ready(report: dict[str, Any]) -> dict[str, Any]:
    """The report without the table rows."""
    out = dict(report)
    out["benchmarks"] = {
        name: {k: v for k, v in entry.items() if not k.startswith("_")}
        for name, entry in report["benchmarks"].items()
    }
    return out


def fmt(value: float | None, unit: str = "", digits: int = 3) -> str:
    """A number for the table: ``None`` is a dash, large numbers get thousands separators."""
    if value is None:
        return "-"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.{digits}g}"
    return f"{text} {unit}".rstrip()


def _read_first(path: str, key: str) -> str | None:
    try:
        with Path(path).open(encoding="utf-8", errors="replace") as src:
            for line in src:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    versions: dict[str, str | None] = {}
    for package in ("pykka", "orjson", "websocket-client", "websockets", "requests"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    mem = _read_first("/proc/meminfo", "MemTotal")
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_model": _read_first("/proc/cpuinfo", "model name"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "mem_total": mem,
        "loadavg_at_start": list(load) if load else None,
        "packages": versions,
    }


def print_table(report: dict[str, Any], out: TextIO) -> None:
    """The readable table: a title line per benchmark, then its rows."""
    header = [
        "metric",
        "measured (min / median / max)",
        "target",
        "baseline (same run)",
        "ratio",
        "original (anchor)",
    ]
    limits = [46, 46, 34, 30, 18, 26]
    blocks: list[tuple[str, list[list[str]]]] = []
    for entry in report["benchmarks"].values():
        status = entry["status"]
        if status == "ok":
            verdict = {True: "PASS", False: "FAIL", None: "-"}[entry["pass"]]
            rows = entry["_rows"]
        else:
            verdict = "n/a" if status == "not_available" else "ERROR"
            rows = []
        title = f"{entry.get('number', '?')}. {entry['title']}  [{verdict}]"
        if status != "ok":
            title += f"  {entry['reason']}"
        blocks.append((title, rows))
    clip = [
        [c if len(c) <= lim else c[: lim - 1] + "~" for c, lim in zip(row, limits, strict=True)]
        for _, rows in blocks
        for row in rows
    ]
    widths = [len(h) for h in header]
    for row in clip:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    out.write("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    index = 0
    for title, rows in blocks:
        out.write(title + "\n")
        for _ in rows:
            row = clip[index]
            index += 1
            out.write(
                "  "
                + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                + "\n"
            )
    machine = report["machine"]
    out.write(
        f"\nmode={report['mode']}  wall={report['wall_s']:.1f} s  cpus={machine['cpu_count']}"
        f"  cpu={machine.get('cpu_model')}  python={machine['python']}\n"
        f"log: {report.get('log_path')}\n"
    )
    for name, entry in report["benchmarks"].items():
        out.writelines(
            f"  [{name}] {note}\n"
            for note in (entry.get("notes", []) if entry["status"] == "ok" else [])
        )
    idle = [
        f"{name} {entry['daemon_before']['idle_cpu_cores']:.2f}"
        f" (at {entry['daemon_before'].get('daemon_age_s', 0):.0f} s)"
        for name, entry in report["benchmarks"].items()
        if (entry.get("daemon_before") or {}).get("idle_cpu_cores") is not None
    ]
    if idle:
        out.write("  [daemon] CPU cores with no added load, before: " + ", ".join(idle) + "\n")
    out.writelines(f"  [harness] {err}\n" for err in report.get("errors", []))
    out.flush()
