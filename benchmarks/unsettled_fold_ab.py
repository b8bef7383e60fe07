"""A fold at a date whose settled tables nobody keeps (the model's snapshot cutoff): settled first, or every tile.

    python benchmarks/scale.py --users 20000 --histories 180   # builds the warehouse it reads
    python benchmarks/unsettled_fold_ab.py                      # benchmarks/.work/scale_20k_180/history_180

Until bb76375 the model's training and validation snapshots, and each backtest origin, settled every table at
their cutoff from all the tiles, then folded the profiles from those summaries and the recent tiles. Since then
they fold every tile with nothing settled (``profiles_from_state(..., settle=False)``). On a warehouse a full run
has written, this folds the profiles at the snapshot's cutoff (the last event's midnight less
``model.horizon_days``) both ways into Spark's no-op sink, alternating in one session, and checks that they are
the same rows. Writes benchmarks/results/unsettled_fold_ab.json.
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.fold_inputs import fold_inputs, noop_seconds  # noqa: E402  (after the path)
from benchmarks.results_file import write_result  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "unsettled_fold_ab.json"


def main(warehouse: Path = ROOT / "benchmarks" / ".work" / "scale_20k_180" / "history_180", out: Path = RESULTS,
         rounds: int = 3) -> None:
    from pyspark.sql import functions as F

    from jobs.clock import add_days
    from jobs.features.state_profiles import profiles_from_state, settled_tables
    from jobs.model.inputs import users_at

    found = fold_inputs(warehouse)
    cfg, state, vectors = found.cfg, found.state, found.vectors
    cutoff = add_days(found.as_of, -cfg.model.horizon_days, cfg.time.zone)
    at_cutoff = {**state, "users": state["users"].transform(users_at(cutoff, cfg.time.zone, state["state_events"]))}
    folds = {
        "settled": lambda: profiles_from_state(cfg, cutoff, cutoff, found.present, vectors)(
            {**at_cutoff, **settled_tables(cfg, cutoff, vectors)(at_cutoff)}),
        "every_tile": lambda: profiles_from_state(cfg, cutoff, cutoff, found.present, vectors, settle=False)(at_cutoff),
    }
    seconds: dict[str, list[float]] = {side: [] for side in folds}
    for _ in range(rounds):
        for side, fold in folds.items():
            seconds[side].append(noop_seconds(fold()))
        print(json.dumps(seconds), flush=True)
    # Each profile's columns hashed together (every column: vectors too), to compare the sides without
    # collecting them.
    rows = {side: sorted(tuple(r) for r in fold().select("user_id", F.xxhash64(*fold().columns)).collect())
            for side, fold in folds.items()}
    with_events = folds["every_tile"]().filter(F.col("last_event_ts").isNotNull()).count()
    median = {side: round(statistics.median(s[1:] or s), 1) for side, s in seconds.items()}  # the first round warms up
    write_result(out, {
        "warehouse": str(warehouse.relative_to(ROOT) if warehouse.is_relative_to(ROOT) else warehouse),
        "cutoff": cutoff.isoformat(), "users": len(rows["settled"]), "users_with_events": with_events,
        "rounds": rounds,
        "seconds_per_round": seconds, "median_s_after_the_first_round": median,
        "every_tile_over_settled": round(median["every_tile"] / median["settled"], 3),
        "same_rows": rows["settled"] == rows["every_tile"],
        "conditions": "the profiles at the cutoff folded into Spark's no-op sink, sides alternating in one session "
                      "(settled first); local[2], 2 cores; the first round warms the JVM and the Python workers",
    })
    found.spark.stop()


if __name__ == "__main__":
    typer.run(main)
