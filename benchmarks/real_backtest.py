"""Out-of-time backtests on the real samples in ../shared/data: the published model against every baseline.

    python benchmarks/real_backtest.py                          # every dataset, two origins each
    python benchmarks/real_backtest.py --dataset taobao-sample  # one

For each dataset: land it through its mapping, run the full job (which writes the daily tiles), then
``portrait backtest`` at two as-of dates inside the data's span (T and T - H, T the latest date with a
whole horizon after it). ROC-AUC and PR-AUC per target and method, with 95% bootstrap intervals over
users, go to benchmarks/results/real_backtest.json.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results" / "real_backtest.json"


def backtest_dataset(spark, dataset: str, work: Path, origins: int, embedding: bool) -> dict:
    from conf import load_config, overlay_path
    from jobs.backtest import run_backtest
    from jobs.demo import land
    from jobs.full import run_full

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cfg = load_config(overlay_path(dataset), overrides=[
        "spark.shuffle_partitions=4", f"warehouse.path={work / 'warehouse'}", f"privacy.key_file={work / 'hmac.key'}",
        "model.enabled=false", f"embedding.enabled={str(embedding).lower()}", "images.enabled=false",
        f"model.checkpoint_dir={work / 'checkpoints'}",
        f"model.tracking_uri=file:{work / 'mlruns'}"])
    started = time.perf_counter()
    land(cfg, spark, dataset, None)
    run_full(cfg, spark)
    prepared = time.perf_counter()
    rows = run_backtest(cfg, spark, None, origins)
    finished = time.perf_counter()
    by_origin: dict[str, dict] = {}
    for r in rows:
        origin = by_origin.setdefault(r[1].date().isoformat(), {"cutoff": r[2].date().isoformat(), "users": r[9],
                                                               "metrics": {}})
        origin["metrics"].setdefault(r[4], {})[r[5]] = {
            "value": r[6], "ci95": [r[7], r[8]], "published": r[10]}
    return {"horizon_days": cfg.model.horizon_days, "embedding": embedding, "origins": by_origin,
            "seconds": {"land_and_full": round(prepared - started, 1), "backtest": round(finished - prepared, 1)},
            "published_minus_best_baseline": margins(by_origin, BASELINES),
            "published_minus_best_other_method": margins(by_origin)}


METHODS = ("model", "network", "mllib", "gbt", "stack", "rfm_rule")
BASELINES = ("mllib", "rfm_rule")  # the baselines: a logistic regression on behaviour counts, the RFM rule


def margins(by_origin: dict[str, dict], among: tuple[str, ...] | None = None) -> dict[str, dict[str, float | None]]:
    """Per origin and binary metric: the published model's value minus the best of ``among`` (every other
    method scored at that origin when None)."""
    out: dict[str, dict[str, float | None]] = {}
    for when, origin in by_origin.items():
        for metric, methods in origin["metrics"].items():
            if not metric.endswith(("roc_auc", "pr_auc")):  # higher is better (a Brier score is not)
                continue
            published = [m["value"] for m in methods.values() if m["published"]]
            others = [m["value"] for name, m in methods.items() if not m["published"] and m["value"] is not None
                      and (among is None or name in among)]
            if published and published[0] is not None and others:
                out.setdefault(when, {})[metric] = round(published[0] - max(others), 4)
    return out


def table(results: dict, metric: str = "propensity_roc_auc") -> str:
    """The results as a markdown table: per dataset and origin, each method's ``metric`` with its interval."""
    target = metric.split("_")[0]
    origins = [o for found in results.get("datasets", {}).values() for o in found["origins"].values()]
    methods = [m for m in METHODS if any(m in o["metrics"].get(metric, {}) for o in origins)]
    lines = [f"| dataset | as_of T | users | published (winner on T - H) | {' | '.join(methods)} |",
             "|" + "---|" * (4 + len(methods))]
    for name, found in results.get("datasets", {}).items():
        for when, origin in sorted(found["origins"].items()):
            by = origin["metrics"].get(metric, {})
            winner = next(iter(origin["metrics"].get(f"champion_{target}", {})), "-")
            cells = ["n/a" if m not in by or by[m]["value"] is None else
                     f"{by[m]['value']:.3f} [{by[m]['ci95'][0]:.2f}, {by[m]['ci95'][1]:.2f}]" for m in methods]
            lines.append(f"| {name} | {when} | {origin['users']:,} | {winner} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main(dataset: Optional[list[str]] = typer.Option(None, help="Datasets (default: all four)."),
         origins: int = 2, embedding: bool = True, work: Path = ROOT / "benchmarks" / ".work" / "real_backtest",
         out: Path = RESULTS, table_only: bool = typer.Option(False, help="Print the tables of ``out``; run nothing.")
         ) -> None:
    if table_only:
        for metric in ("propensity_roc_auc", "churn_pr_auc"):
            print(f"\n{metric}\n\n" + table(json.loads(out.read_text()), metric))
        return
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from conf import load_config
    from jobs.spark import spark_session

    spark = spark_session(load_config(overrides=["spark.shuffle_partitions=4"]).spark)
    chosen = dataset or ["hm-sample", "online-retail-sample", "taobao-sample", "olist-sample"]
    results = json.loads(out.read_text()) if out.exists() else {}
    for name in chosen:
        results.setdefault("datasets", {})[name] = backtest_dataset(spark, name, work / name, origins, embedding)
        results["command"] = "python benchmarks/real_backtest.py " + " ".join(sys.argv[1:])
        results["conditions"] = "2-core workplace machine; as_of T = the latest local midnight with a whole horizon " \
                                "of data after it, and T - horizon; 200 bootstrap draws over users"
        out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        print(json.dumps(results["datasets"][name]["published_minus_best_baseline"], indent=2))


if __name__ == "__main__":
    typer.run(main)
