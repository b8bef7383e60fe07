"""The floor of a daily incremental step: what it must pay at 20k users whatever state it keeps.

    python benchmarks/model_eval.py         # first: leaves a 20k-user warehouse under benchmarks/.work/model_eval
    python benchmarks/incremental_floor.py  # then: about a minute

A day passing changes every user's as-of-relative features (recency, windows, tenure), so an
incremental step that must equal a full recompute re-scores and re-tags every user and rewrites
``profiles`` and ``labels``, even if its feature state makes the features themselves free. This
measures those steps on the benchmark's own 20k profiles, and compares them in the same run's terms
with the full job's stages from its ``runs`` row (the full job without snapshot, training and
evaluation, which a daily step does not repeat). The network has the trained network's shape and
random weights: scoring time does not depend on the weights. Writes benchmarks/results/incremental_floor.json.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORK = ROOT / "benchmarks" / ".work" / "model_eval"
RESULTS = ROOT / "benchmarks" / "results" / "incremental_floor.json"
MODEL_COLUMNS = ("user_embedding", "purchase_propensity", "churn_risk", "category_affinity", "spend_tier",
                 "segment_id", "model_run_id")
TRAINING_STAGES = ("snapshot", "train", "evaluate")


@contextmanager
def timed(seconds: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    seconds[name] = round(time.perf_counter() - started, 1)


def main(work: Path = WORK, out: Path = RESULTS) -> None:
    from conf import load_config
    from jobs.full import open_warehouse
    from jobs.model.inputs import InputSpec, model_inputs
    from jobs.model.network import ModelBundle, NetworkShape, UserModel
    from jobs.model.score import predict, with_model_scores
    from jobs.spark import spark_session
    from jobs.storage import Warehouse
    from jobs.tags import rule_tags

    if not (work / "warehouse" / "profiles").exists():
        raise typer.BadParameter(f"no profiles under {work}: run benchmarks/model_eval.py first")
    cfg = load_config(overrides=[f"warehouse.path={work / 'warehouse'}"])
    spark = spark_session(cfg.spark)
    wh = open_warehouse(cfg, spark)
    full = wh.read("runs").filter("job = 'full' and status = 'succeeded'").orderBy("finished_at").collect()[-1]
    stages = dict(full["stage_seconds"])

    seconds: dict[str, float] = {}
    with timed(seconds, "read_profiles"):
        profiles = wh.read("profiles").drop(*MODEL_COLUMNS).localCheckpoint(eager=True)
    as_of = profiles.first()["as_of"]
    categories = tuple(sorted({c["name"] for r in profiles.select("top_categories").collect() for c in r[0] or []}))
    spec = InputSpec(tuple(cfg.features.rfm_windows), categories, cfg.embedding.recent_text_days, 0,
                     tuple(cfg.features.short_windows))
    inputs = profiles.transform(model_inputs(spec))
    first = inputs.first()
    text_dim = len(first["interest"])
    shape = NetworkShape(len(first["behaviour"]), text_dim, len(categories),
                         n_text_vectors=len(first["text"]) // text_dim)
    bundle = ModelBundle(shape, UserModel(shape).state_dict(), spec, "floor")
    with timed(seconds, "score_every_user"):
        scored = profiles.transform(with_model_scores(inputs.transform(predict(bundle)), categories,
                                                      cfg.features.top_k, "floor")).localCheckpoint(eager=True)
    with timed(seconds, "rule_tags_every_user"):
        labels = scored.transform(rule_tags(cfg.tags, as_of, cfg.time.zone)).localCheckpoint(eager=True)
    scratch = work / "floor-warehouse"
    shutil.rmtree(scratch, ignore_errors=True)
    target = Warehouse(str(scratch), spark, engine="delta-rs", specs=wh.specs)
    target.overwrite("profiles", wh.read("profiles"))  # a table to merge into, as the daily step has
    with timed(seconds, "merge_every_profile"):
        target.merge("profiles", wh.read("profiles"))
    with timed(seconds, "overwrite_labels"):
        target.overwrite("labels", labels)
    shutil.rmtree(scratch, ignore_errors=True)

    floor = round(sum(seconds.values()), 1)
    full_s = round(sum(v for k, v in stages.items() if k not in TRAINING_STAGES), 1)
    result = {"users": profiles.count(), "floor_seconds": seconds, "floor_s": floor,
              "full_s_without_training": full_s, "full_stage_seconds": stages,
              "ratio_floor_vs_full": round(floor / full_s, 3), "budget_at_0_15_s": round(0.15 * full_s, 1)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    typer.run(main)
