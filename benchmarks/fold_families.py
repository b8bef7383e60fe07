"""Where the fold into the profiles spends its time: each feature family folded alone, and all of them together.

    python benchmarks/scale.py --users 20000 --histories 30     # builds the warehouse it reads
    python benchmarks/fold_families.py                         # benchmarks/.work/scale/n30 (N users, 30 days)

The fold is the largest stage of a full run at 20k users and more (benchmarks/results/scale_20k.json), and the
one a step pays for every touched user. On a warehouse a full run has written, each family's fold is run alone
to a no-op sink, then every family together as the full job folds them (``profiles_from_state``), twice each in
one session: the first round warms the JVM and the Python workers, the second is reported. ``share_of_all``
is a family's seconds over the seconds of all together, measured in the same round. Writes
benchmarks/results/fold_families.json.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.fold_inputs import fold_inputs, noop_seconds  # noqa: E402  (after the path)
from benchmarks.results_file import write_result  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "fold_families.json"


def main(warehouse: Path = ROOT / "benchmarks" / ".work" / "scale" / "n30", out: Path = RESULTS,
         rounds: int = 2) -> None:
    from jobs.features.state_profiles import feature_families, profiles_from_state, settled_tables

    found = fold_inputs(warehouse)
    cfg, spark, state, vectors, as_of, present = (found.cfg, found.spark, found.state, found.vectors, found.as_of,
                                                  found.present)
    users, items = state["users"], state["items"]
    inputs = {**state, **settled_tables(cfg, as_of, vectors)(state)}

    measured: dict[str, float] = {}
    for _ in range(rounds):
        measured = {family.name: noop_seconds(family.fold(inputs))
                    for family in feature_families(cfg, as_of, items, vectors)}
        measured["all"] = noop_seconds(profiles_from_state(cfg, as_of, as_of, present, vectors)(inputs))
        print(json.dumps(measured), flush=True)
    users_n = users.count()
    spark.stop()
    result = {
        "warehouse": str(warehouse.relative_to(ROOT) if warehouse.is_relative_to(ROOT) else warehouse),
        "users": users_n, "as_of": as_of.isoformat(), "rounds": rounds,
        "seconds": measured,
        "share_of_all": {k: round(v / measured["all"], 3) for k, v in measured.items() if k != "all"},
        "conditions": "each family folded alone to Spark's no-op sink, then all together; the last round",
    }
    write_result(out, result)


if __name__ == "__main__":
    typer.run(main)
