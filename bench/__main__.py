"""``python -m bench [--quick] [--only NAME ...] [--json-out FILE]``: run the benchmarks.

Standard output gets exactly one JSON document; standard error gets progress lines and the
table. Log lines of the daemon, the simulator and the harness (WARNING and above) go to a log
file (``--log-file``, default a file in the run's scratch directory, named in the report).

Exit code: 0 when every selected benchmark ran (targets met or not: the report says), 1 when a
benchmark or the harness failed, 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from loguru import logger

from bench import BENCHMARKS, RUN_ORDER
from bench._cpu import cpu_layout
from bench._env import Env
from bench._profile import PROFILES
from bench._report import error, machine_info, print_table, to_json_ready
from supervisors.logs import setup_logging

SCHEMA = "volspike-bench/1"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    names = [b.name for b in BENCHMARKS]
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="short runs (under 1 minute)")
    mode.add_argument(
        "--tiny", action="store_true", help="minimal runs that only check the harness (tests)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=names,
        metavar="NAME",
        help=f"run only these benchmarks ({', '.join(names)})",
    )
    parser.add_argument("--json-out", type=Path, help="also write the JSON report here")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="run the daemon, the simulator and the clients on every CPU (default: the daemon "
        "on its own CPU(s), the load side on the others; see bench/_cpu.py)",
    )
    parser.add_argument("--log-file", type=Path, help="where log lines go (default: scratch dir)")
    return parser.parse_args(argv)


def _setup_logging(path: Path) -> None:
    stream = path.open("a", encoding="utf-8", buffering=1)
    setup_logging(level="WARNING", stream=stream)


def _progress(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def run(argv: list[str] | None = None) -> int:  # noqa: PLR0915 - the run, top to bottom
    """Run the selected benchmarks and print the report; returns the exit code."""
    args = _parse(argv)
    profile = PROFILES["tiny" if args.tiny else "quick" if args.quick else "full"]
    chosen = [b for b in BENCHMARKS if args.only is None or b.name in args.only]
    order = profile.run_order or RUN_ORDER
    selected = sorted(chosen, key=lambda b: order.index(b.name))
    scratch = tempfile.TemporaryDirectory(prefix="volspike-bench-")
    # the log outlives the scratch directory: it is the only trace of what the daemon said
    log_path = (
        args.log_file or Path(tempfile.gettempdir()) / f"volspike-bench-{int(time.time())}.log"
    )
    _setup_logging(log_path)
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    machine = machine_info()
    layout = cpu_layout(enabled=not args.no_pin)
    machine["cpu_layout"] = {
        "system_under_test": layout.system_under_test,
        "load": layout.load,
        "pinned": layout.load is not None,
        "sim_nice": layout.sim_nice,
    }
    results: dict[str, Any] = {}
    harness_errors: list[str] = []
    env = Env(profile, log_path=str(log_path), work_dir=scratch.name, layout=layout)
    _progress(f"volspike bench: mode={profile.name}, {len(selected)} benchmark(s), log {log_path}")
    try:
        for index, bench in enumerate(selected):
            _progress(f"[{index + 1}/{len(selected)}] {bench.name} ...")
            b0 = time.monotonic()
            drained = None
            try:
                env.prepare(bench.needs)
                drained = env.drain() if "daemon" in bench.needs else None
                module = importlib.import_module(bench.module)
                result = module.run(env)
            except Exception as exc:
                detail = traceback.format_exc()
                logger.bind(actor="bench").error("benchmark {} failed:\n{}", bench.name, detail)
                last = (str(exc).strip().splitlines() or [""])[-1]
                result = error(
                    number=[b.name for b in BENCHMARKS].index(bench.name) + 1,
                    title=bench.name,
                    reason=f"{type(exc).__name__}: {last}",
                )
                result["traceback"] = detail.splitlines()[-12:]
            result["duration_s"] = round(time.monotonic() - b0, 2)
            if drained is not None:
                result["daemon_before"] = drained
                if not drained["drained"] and result["status"] == "ok":
                    result["notes"].append(
                        f"{bench.name}: started while the daemon was still busy after "
                        f"{drained['waited_s']} s: {sum(drained['backlog_after'].values())} "
                        f"queued messages, price board {drained['market_lag_ms_after']} ms "
                        "behind the exchange"
                    )
                with contextlib.suppress(Exception):
                    result["daemon_backlog_after"] = env.backlog()
            results[bench.name] = result
            _progress(
                f"    {bench.name}: {result['status']}"
                f"{'' if result.get('pass') is None else ', pass' if result['pass'] else ', FAIL'}"
                f" ({result['duration_s']:.1f} s)"
            )
            later = set().union(*(b.needs for b in selected[index + 1 :]))
            try:
                env.release(later)
            except Exception as exc:
                harness_errors.append(f"releasing helpers after {bench.name}: {exc!r}")
    except KeyboardInterrupt:
        harness_errors.append("interrupted")
    finally:
        try:
            env.close()
        except Exception as exc:
            harness_errors.append(f"stopping helpers: {exc!r}")
        harness_errors.extend(env.errors)
        scratch.cleanup()
    results = {b.name: results[b.name] for b in chosen if b.name in results}
    report = {
        "schema": SCHEMA,
        "mode": profile.name,
        "command": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv),
        "started_at": started.isoformat(timespec="seconds"),
        "wall_s": round(time.monotonic() - t0, 1),
        "machine": machine,
        "log_path": str(log_path),
        "benchmarks": results,
        "errors": harness_errors,
    }
    document = json.dumps(to_json_ready(report), indent=2, sort_keys=False)
    sys.stdout.write(document + "\n")
    sys.stdout.flush()
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(document + "\n", encoding="utf-8")
    sys.stderr.write("\n")
    print_table(report, sys.stderr)
    failed = any(r["status"] == "error" for r in results.values()) or bool(harness_errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run())
