"""A small full run, model on, at two revisions of the code: the fixed cost every test and demo run pays.

    python benchmarks/revision_ab.py --old db90594            # about 10 minutes with 2 rounds

One generated warehouse (``--users`` users over ``--days`` days) is copied fresh for every run. Each run is a
new process with the revision's code on its path and one Spark session, which runs the full job twice: the
first pays the JVM's and the Python workers' warm-up, the second is what a session's next run costs. The two
revisions alternate (old, new, old, new), so a slow minute of the machine falls on both. Reports the median
of each side and new / old. Writes benchmarks/results/revision_ab.json.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_file import write_result  # noqa: E402  (after the path)

RESULTS = ROOT / "benchmarks" / "results" / "revision_ab.json"

# Run inside each revision's checkout: two full runs in one session, the seconds of each as a JSON line.
RUN = """
import json, sys, time
from conf import load_config
from jobs.full import run_full
from jobs.spark import spark_session
cfg = load_config(overrides=sys.argv[1:])
spark = spark_session(cfg.spark)
seconds = []
for _ in range(2):
    spark.catalog.clearCache()
    started = time.perf_counter()
    run_full(cfg, spark, env={})
    seconds.append(round(time.perf_counter() - started, 1))
print("SECONDS " + json.dumps(seconds))
"""


def settings(work: Path, warehouse: Path, users: int, days: int) -> list[str]:
    """The run's config: small and model on, as the tests' full runs (2 epochs, no challengers)."""
    return [f"warehouse.path={warehouse}", f"generator.users={users}", f"generator.days={days}",
            "generator.items=150", "spark.shuffle_partitions=2", "model.epochs=2", "model.baselines=false",
            "model.segments_k_max=5", f"privacy.key_file={work / 'hmac.key'}",
            f"model.tracking_uri=file:{work / 'mlruns'}", f"model.checkpoint_dir={work / 'checkpoints'}",
            f"model.serving_dir={work / 'serving'}"]


def seconds_at(code: Path, script: str, args: list[str]) -> list[float]:
    """Run ``script`` in a new process with ``code``'s checkout on its path; the seconds it prints (``SECONDS [...]``)."""
    env = {**os.environ, "PYTHONPATH": str(code), "PYSPARK_PYTHON": sys.executable}
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=code, env=env, capture_output=True, text=True,
                          check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("SECONDS ")), None)
    if done.returncode or line is None:
        raise RuntimeError(f"the run at {code} failed:\n{done.stderr[-3000:]}")
    return json.loads(line.removeprefix("SECONDS "))


@contextmanager
def checkout(revision: str, path: Path) -> Iterator[Path]:
    """``revision``'s code in a git worktree at ``path``, removed on exit."""
    # A worktree of an interrupted run, whose directory was deleted since, would block the path.
    subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], check=True, capture_output=True)
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), revision], check=True,
                   capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False)


def alternated(rounds: int, sides: dict[str, Path], run: Callable[[str, Path], list[float]]
               ) -> dict[str, list[list[float]]]:
    """``run(side, code)`` at each side's code, the sides alternating (old, new, old, new, ...) for ``rounds`` rounds, so that
    a slow minute of the machine falls on both."""
    measured: dict[str, list[list[float]]] = {side: [] for side in sides}
    for _ in range(rounds):
        for side, code in sides.items():
            measured[side].append(run(side, code))
            print(side, measured[side][-1], flush=True)
    return measured


def head_revision(name: str = "HEAD") -> str:
    """The short commit hash ``name`` (a branch, a tag, ``HEAD``) stands for now: what a result file records."""
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", name], capture_output=True,
                          text=True).stdout.strip()


def timed_runs(code: Path, work: Path, users: int, days: int) -> list[float]:
    run = work / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(work / "source", run)
    shutil.rmtree(work / "checkpoints", ignore_errors=True)  # no run resumes another's training
    return seconds_at(code, RUN, settings(work, run, users, days))


def main(old: str = typer.Option(..., help="The revision to compare with (the new side is this checkout)."),
         rounds: int = 2, users: int = 200, days: int = 10,
         work: Path = ROOT / "benchmarks" / ".work" / "revision_ab", out: Path = RESULTS) -> None:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "hmac.key").write_text("revision-ab-" + "0" * 52)
    with checkout(old, work / "old") as old_code:
        env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
        generate = ("import sys\nfrom conf import load_config\nfrom jobs.ingest import run_generate\n"
                    "from jobs.spark import spark_session\ncfg = load_config(overrides=sys.argv[1:])\n"
                    "run_generate(cfg, spark_session(cfg.spark))\n")
        subprocess.run([sys.executable, "-c", generate, *settings(work, work / "source", users, days)], cwd=ROOT,
                       env={**env, "PYTHONPATH": str(ROOT)}, check=True, capture_output=True)
        measured = alternated(rounds, {"old": old_code, "new": ROOT},
                              lambda _, code: timed_runs(code, work, users, days))
    median = {side: {"first_run_s": round(statistics.median(r[0] for r in runs), 1),
                     "second_run_s": round(statistics.median(r[1] for r in runs), 1)} for side, runs in measured.items()}
    result = {
        "old": old, "new": f"{head_revision()} (the checkout, with any uncommitted changes)",
        "users": users, "days": days, "rounds": rounds,
        "seconds_per_round": measured, "median": median,
        "second_run_new_over_old": round(median["new"]["second_run_s"] / median["old"]["second_run_s"], 3),
        "first_run_new_over_old": round(median["new"]["first_run_s"] / median["old"]["first_run_s"], 3),
        "conditions": "full job, model on (2 epochs, no challengers), 2 shuffle partitions; each run a new process "
                      "with one session running the job twice; sides alternate",
    }
    write_result(out, result)


if __name__ == "__main__":
    typer.run(main)
