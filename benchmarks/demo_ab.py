"""``portrait demo`` at two revisions of the code, alternating: what ``make demo`` costs after its setup.

    python benchmarks/demo_ab.py --old 4da1533        # about 30 minutes with 2 rounds
    python benchmarks/demo_ab.py --old 4da1533 --also 61923f2   # a third side in the same rounds: about 45 minutes
    python benchmarks/demo_ab.py --old 4da1533 --set model.baselines=false --out ...  # both sides with a setting

Each run is a new process, in a new empty directory, with the revision's checkout first on its path: it generates
10k users over 30 days, runs the full recompute with the model, and shows the tables, as ``make demo`` does after
``make setup`` (with ``--set``, every side runs ``portrait demo --set ...``: a setting both revisions read). Both sides
use this checkout's virtual environment. The sides alternate (old, new, old, new), so a
slow minute of the machine falls on both. Reports each side's median wall time, new / old and new / also. Writes
benchmarks/results/demo_ab.json.
"""
from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Sequence

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_file import write_result  # noqa: E402  (after the path)
from benchmarks.revision_ab import alternated, checkout, head_revision  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "demo_ab.json"


def demo_seconds(code: Path, directory: Path, overrides: Sequence[str] = ()) -> list[float]:
    """``portrait demo`` with ``code`` on the path, in a fresh ``directory``, with each of ``overrides`` as a ``--set``:
    its wall seconds (one-element list)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(code), "PYSPARK_PYTHON": sys.executable}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", "from jobs.cli import app; app()", "demo",
                           *[arg for o in overrides for arg in ("--set", o)]], cwd=directory, env=env,
                          capture_output=True, text=True, check=False)
    seconds = round(time.perf_counter() - started, 1)
    (directory.parent / f"{directory.name}.log").write_text(done.stdout + done.stderr)
    if done.returncode:
        raise RuntimeError(f"the demo at {code} failed:\n{done.stderr[-3000:]}")
    shutil.rmtree(directory, ignore_errors=True)
    return [seconds]


def stage_seconds(log: str) -> list[list]:
    """The generator's run and the full job's stages in a demo's output, in order: [[stage, seconds], ...] (a stage
    name can repeat: the model's validation round is a ``validate`` too)."""
    generated = [["generate", float(m[1])] for m in re.finditer(r"^\[generate\] run .*; ([0-9.]+)s$", log, re.M)]
    return generated + [[m[1], float(m[2])] for m in re.finditer(r"^\[full\] (\w+) .*\(([0-9.]+)s\)$", log, re.M)]


def main(old: str = typer.Option(..., help="The revision to compare with (the new side is this checkout)."),
         also: str = typer.Option(None, help="A second revision to compare with, in the same rounds (side 'also')."),
         set_: list[str] = typer.Option([], "--set", help="A config override both sides run with (repeatable)."),
         rounds: int = 2, work: Path = ROOT / "benchmarks" / ".work" / "demo_ab", out: Path = RESULTS) -> None:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with ExitStack() as checkouts:
        sides = {"old": checkouts.enter_context(checkout(old, work / "old"))}
        if also:
            sides["also"] = checkouts.enter_context(checkout(also, work / "also"))
        measured = alternated(rounds, {**sides, "new": ROOT},
                              lambda side, code: demo_seconds(code, work / f"demo_{side}", set_))
    median = {side: round(statistics.median(r[0] for r in runs), 1) for side, runs in measured.items()}
    stages = {side: stage_seconds((work / f"demo_{side}.log").read_text()) for side in measured}
    write_result(out, {
        **({"settings": set_} if set_ else {}),
        "old": old, "new": f"{head_revision()} (the checkout, with any uncommitted changes)", "rounds": rounds,
        **({"also": also, "new_over_also": round(median["new"] / median["also"], 3)} if also else {}),
        "seconds_per_round": {side: [r[0] for r in runs] for side, runs in measured.items()},
        "median_s": median, "new_over_old": round(median["new"] / median["old"], 3),
        "stages_last_round_s": stages,
        "conditions": "portrait demo (10k users, 30 days, model on"
                      + (f"; {', '.join(set_)}" if set_ else "") + "), each run a new process in a new directory; "
                      "one virtual environment for every side; sides alternate",
    })


if __name__ == "__main__":
    typer.run(main)
