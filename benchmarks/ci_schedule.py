"""How ``make test``'s two xdist workers shared the suite, from a clean clone's log, and what xdist's default order
(groups by their number of tests) would have made of the same per-test times.

    d=$(mktemp -d) && git clone . $d && cd $d && PYTHONUNBUFFERED=1 PYTEST_ADDOPTS=-vv make test 2>&1 \\
        | while IFS= read -r l; do echo "$(date +%T) $l"; done > ci.log
    python benchmarks/ci_schedule.py ci.log

The log's lines are stamped to the second as they arrive; a test's time is the time since its worker's previous
report (module fixtures fall to a group's first test). The replay follows xdist's ``LoadScopeScheduling``: each
worker starts with one group and takes the next when two or fewer of its tests are left. Writes
benchmarks/results/ci_schedule.json.
"""
from __future__ import annotations

import re
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_file import write_result  # noqa: E402  (after the path)

REPORT = re.compile(r"^(\d\d:\d\d:\d\d) \[(gw\d+)\] \[\s*\d+%\] (?:PASSED|SKIPPED|FAILED|ERROR|XFAIL|XPASS) (.+)@(\S+)\s*$")
STARTED = "scheduling tests via"
WORKERS, REFILL_AT = 2, 2  # xdist hands a worker its next group when this many of its tests or fewer are left


def test_times(log: list[str]) -> tuple[dict[str, float], dict[str, list[str]], dict[str, float]]:
    """(seconds per test, the groups' tests in the order the workers took them, each worker's last report)."""
    clock = lambda line: datetime.strptime(line[:8], "%H:%M:%S")  # noqa: E731
    start = next(clock(line) for line in log if STARTED in line)
    last, seconds, groups = {}, {}, defaultdict(list)
    for line in log:
        if m := REPORT.match(line):
            at = clock(line)
            seconds[m[3]] = (at - last.get(m[2], start)).total_seconds()
            groups[m[4]].append(m[3])
            last[m[2]] = at
    return seconds, dict(groups), {w: (at - start).total_seconds() for w, at in sorted(last.items())}


def replay(order: list[str], groups: dict[str, list[str]], seconds: dict[str, float]) -> list[float]:
    """Each worker's finishing second when the groups are handed out in ``order``."""
    queue, clock, pending = list(order), [0.0] * WORKERS, [[] for _ in range(WORKERS)]

    def refill(worker: int) -> None:
        if queue and len(pending[worker]) <= REFILL_AT:
            pending[worker].extend(groups[queue.pop(0)])

    for worker in range(WORKERS):
        pending[worker].extend(groups[queue.pop(0)])
    for worker in range(WORKERS):
        refill(worker)
    while any(pending):
        worker = min((w for w in range(WORKERS) if pending[w]), key=lambda w: clock[w] + seconds[pending[w][0]])
        clock[worker] += seconds[pending[worker].pop(0)]
        refill(worker)
    return clock


def main(log: Path, out: Path = ROOT / "benchmarks" / "results" / "ci_schedule.json") -> None:
    seconds, groups, ended = test_times(log.read_text(errors="replace").splitlines())
    kept = list(groups)  # the order the groups first reported in: near enough the order they were handed out
    by_count = sorted(kept, key=lambda g: -len(groups[g]))  # xdist's default (a stable sort, as xdist's)
    write_result(out, {
        "log": log.name, "tests": len(seconds), "test_seconds": round(sum(seconds.values())),
        "workers_ended_s": ended,
        "groups": {g: {"tests": len(groups[g]), "seconds": round(sum(seconds[t] for t in groups[g]))} for g in kept},
        "replay_kept_order_s": replay(kept, groups, seconds),
        "replay_by_test_count_s": replay(by_count, groups, seconds)})


if __name__ == "__main__":
    typer.run(main)
