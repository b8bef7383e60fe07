"""Do photos and descriptions earn their cost on H&M? The model's held-out propensity with and without each.

    python benchmarks/hm_modalities.py [--work DIR] [--seeds 1]

The H&M sample (../shared/data/hm-sample) is landed once through its mapping file. Then the full job,
model on, runs four times on the same tables, each a different input set for the network:

- ``behaviour``: purchases only (no text, no photos);
- ``titles``: plus item titles (interest_vector from MiniLM);
- ``titles_descriptions``: interest_vector from each article's title and description;
- ``titles_descriptions_photos``: and image_interest_vector from EfficientNet-Lite0 on the photos.

Each run trains on features before as_of - horizon and labels in [as_of - horizon, as_of), and is
scored on its held-out users (``model_metrics``); the baselines (logistic regression on behaviour,
the RFM rule) are scored on the same users. Texts and photos are embedded once (their caches are
shared across runs), and the seconds of each run's embedding stages are reported as the cost.
Writes benchmarks/results/hm_modalities.json.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conf import load_config, overlay_path  # noqa: E402
from jobs.demo import land  # noqa: E402
from jobs.full import open_warehouse, run_full  # noqa: E402
from jobs.spark import spark_session  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "hm_modalities.json"
VARIANTS = {
    "behaviour": ["embedding.enabled=false", "images.enabled=false"],
    "titles": ["embedding.enabled=true", "embedding.item_text=title", "images.enabled=false"],
    "titles_descriptions": ["embedding.enabled=true", "embedding.item_text=title_and_description",
                            "images.enabled=false"],
    "titles_descriptions_photos": ["embedding.enabled=true", "embedding.item_text=title_and_description",
                                   "images.enabled=true"],
}
METRICS = ("propensity_roc_auc", "propensity_pr_auc", "churn_roc_auc", "churn_pr_auc")


def main(work: Path = typer.Option(Path("/tmp/portrait-hm-modalities")), seeds: int = typer.Option(1)) -> None:
    shutil.rmtree(work, ignore_errors=True)
    base = [f"warehouse.path={work / 'warehouse'}", f"privacy.key_file={work / 'hmac.key'}",
            "spark.shuffle_partitions=4", f"model.checkpoint_dir={work / 'checkpoints'}",
            f"model.tracking_uri=file:{work / 'mlruns'}", f"model.serving_dir={work / 'models'}"]
    cfg = load_config(overlay_path("hm-sample"), overrides=base)
    spark = spark_session(cfg.spark)
    land(cfg, spark, "hm-sample", None)
    result: dict = {"dataset": "hm-sample", "runs": {}}
    for seed in range(seeds):
        for name, overrides in VARIANTS.items():
            run_cfg = load_config(overlay_path("hm-sample"), overrides=[*base, *overrides, f"model.seed={42 + seed}"])
            summary = run_full(run_cfg, spark)
            wh = open_warehouse(run_cfg, spark)
            rows = wh.read("model_metrics").filter(f"run_id = '{summary.run_id}'").collect()
            run = next(r for r in wh.read("runs").collect() if r.run_id == summary.run_id)
            stages = dict(run.stage_seconds or {})
            metrics = {f"{r.metric}/{r.method}": r.value for r in rows if r.metric in METRICS}
            held_out = max((r.users or 0 for r in rows), default=0)
            result["runs"][f"{name}/seed{seed}"] = {
                "metrics": metrics, "held_out_users": held_out,
                "embed_seconds": stages.get("embed"), "images_seconds": stages.get("images"),
                "run_seconds": round(sum(stages.values()), 1) if stages else None,
                "rows_out": dict(run.rows_out)}
            print(name, seed, json.dumps(result["runs"][f"{name}/seed{seed}"]), flush=True)
    spark.stop()
    summary: dict = {}
    for name in VARIANTS:
        runs = [v for k, v in result["runs"].items() if k.startswith(name + "/")]
        summary[name] = {m: round(sum(r["metrics"].get(f"{m}/model", float("nan")) for r in runs) / len(runs), 4)
                         for m in METRICS}
    result["model_mean_by_variant"] = summary
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    typer.run(main)
