"""The demo: land a dataset, run the full recompute, and show what came out."""
from __future__ import annotations

from typing import Callable, Mapping

from pyspark.sql import SparkSession
from rich.console import Console

from conf import Config
from jobs.full import open_warehouse, run_full
from jobs.ingest import run_generate
from jobs.sql import run_sql

DEMO_QUERY = "SELECT tag, count(*) AS users FROM labels GROUP BY tag ORDER BY users DESC, tag"


def land(cfg: Config, spark: SparkSession, dataset: str, path: str | None,
         env: Mapping[str, str] | None = None) -> None:
    """Write the input tables for ``dataset`` into the warehouse."""
    if dataset == "generated":
        run_generate(cfg, spark)
        return
    from jobs.mapping.ingest import resolve, run_mapping_ingest

    if getattr(cfg.datasets, dataset.replace("-", "_"), None) is None:
        raise ValueError(f"unknown dataset {dataset!r}")
    run_mapping_ingest(cfg, spark, *resolve(cfg, dataset, path), env=env)


def run_demo(cfg: Config, spark: SparkSession, dataset: str, path: str | None,
             show: Callable[..., None], env: Mapping[str, str] | None = None) -> None:
    console = Console(highlight=False, soft_wrap=True)
    land(cfg, spark, dataset, path, env)
    run_full(cfg, spark, env=env)
    wh = open_warehouse(cfg, spark)
    console.print(f"\n[bold]Portrait tables[/] under {wh.path('')} ({wh.engine}):")
    for name in sorted(wh.specs):
        if wh.exists(name):
            console.print(f"  {name:<13} {wh.count(name):>10,} rows  {wh.path(name)}")
    console.print(f"\n[bold]Query:[/] {DEMO_QUERY}")
    show(run_sql(wh, DEMO_QUERY), 50)
    if wh.exists("segments"):
        console.print("\n[bold]Segments[/] (KMeans on the model's user embeddings):")
        show(run_sql(wh, "SELECT segment_id, size, description FROM segments ORDER BY segment_id"), 50)
    console.print(f"Query them yourself: portrait sql \"select * from profiles limit 5\" -w {cfg.warehouse.path}")
    console.print("See them: portrait report --out portrait-report.html, then open the file in a browser")
