"""``python -m bench [--size full|small] [--only dispatch,reminders,…] [--results FILE]``

Starts what it needs (its own PostgreSQL server and Redis, unless given ``--pg`` and
``--redis``; Celery workers, an aiosmtpd sink, gunicorn), runs each scenario, prints its
figure, its baseline and their ratio, and with ``--results`` writes them with the machine
they ran on (``make bench`` writes bench/RESULTS.md at full size; CI runs the small size
to prove it still works).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from bench.harness import Environment, Result, machine

#: scenario → (full size, small size)
SIZES = {
    "dispatch": (100_000, 2_000),
    "reminders": (1_000_000, 20_000),
    "submissions": (4_000, 400),
    "report": (1_000_000, 20_000),
    "import": (1_000_000, 20_000),
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("full", "small"), default="full")
    parser.add_argument("--only", default=",".join(SIZES), help="scenarios, comma-separated")
    parser.add_argument("--count", type=int, help="override every chosen scenario's size")
    parser.add_argument("--results", type=Path, help="write the results (Markdown) to this file")
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_URL"),
                        help="a running PostgreSQL server to use (a database of its own is made on it); "
                             "by default the run starts its own (bench/servers.py)")
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL"),
                        help="a running Redis to use; by default the run starts its own")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(SIZES)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")

    env = Environment(args.pg, args.redis)
    env.setup()
    results: list[Result] = []
    failed = []
    try:
        app = env.app()
        for name in chosen:
            size = args.count or SIZES[name][0 if args.size == "full" else 1]
            print(f"== {name} ({size:,})", flush=True)
            module = __import__(f"bench.{name.replace('import', 'importing')}", fromlist=["run"])
            started = time.monotonic()
            try:
                result = module.run(env, app, size)
            except Exception:  # a broken scenario is reported, and the others still run
                traceback.print_exc()
                failed.append(name)
                continue
            for one in result if isinstance(result, list) else [result]:
                results.append(one)
                print(_line(one), f"[{time.monotonic() - started:.0f} s]", flush=True)
                for note in one.notes:
                    print("   ", note)
    finally:
        env.teardown(failed=bool(failed))
    print()
    print(table(results))
    if args.results:
        args.results.write_text(markdown(results, args.size, env.described()))
        print(f"\nwritten to {args.results}")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    return f"{value:,.0f} {unit}"


def _line(result: Result) -> str:
    ratio = f"{result.ratio:.2f}" if result.ratio is not None else "—"
    verdict = {True: "goal met", False: "GOAL NOT MET", None: "no goal of its own"}[result.met]
    return (f"{result.scenario}: {_number(result.figure, result.unit)} | baseline "
            f"{_number(result.baseline, result.unit)} | ratio {ratio} | {result.goal}: {verdict}")


def table(results: list[Result]) -> str:
    rows = [("Scenario", "Attest", "Baseline", "Ratio", "Goal", "Met")]
    for r in results:
        rows.append((r.scenario, _number(r.figure, r.unit), _number(r.baseline, r.unit),
                     f"{r.ratio:.2f}" if r.ratio is not None else "—", r.goal,
                     {True: "yes", False: "NO", None: "—"}[r.met]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows)


def markdown(results: list[Result], size: str, servers: dict[str, str]) -> str:
    lines = ["# Benchmark results", "",
             f"`make bench` ({size} size), {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. "
             "Each baseline was measured in the same run, on the same machine; the ratio is "
             "Attest's figure over the baseline's (for durations, Attest's time over the baseline's).", "",
             "| Scenario | Attest | Baseline | Ratio | Goal | Met |", "|---|---|---|---|---|---|"]
    for r in results:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "—"
        met = {True: "yes", False: "**no**", None: "—"}[r.met]
        lines.append(f"| {r.scenario} | {_number(r.figure, r.unit)} | {_number(r.baseline, r.unit)} | {ratio} | "
                     f"{r.goal} | {met} |")
    lines += ["", "## What each baseline is", ""]
    for r in results:
        lines.append(f"- **{r.scenario}**: {r.baseline_name}.")
        lines += [f"  - {note}" for note in r.notes]
    lines += ["", "## Machine", ""]
    lines += [f"- {key}: {value}" for key, value in {**machine(), **servers}.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
