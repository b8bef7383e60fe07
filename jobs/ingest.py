"""Landing input tables: from the generator or from a real dataset's adapter."""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from conf import Config
from jobs.full import open_warehouse
from jobs.generator import generate_tables
from jobs.runs import RunRecorder, recorded
from jobs.storage import Warehouse


def write_inputs(wh: Warehouse, tables: dict[str, DataFrame], rec: RunRecorder) -> None:
    """Overwrite each input table, recording its row count."""
    for name, df in tables.items():
        with rec.stage(f"write {name}") as st:
            wh.overwrite(name, df, run_id=rec.run_id)
            st.rows_out = rec.rows_out[name] = wh.count(name)


def run_generate(cfg: Config, spark: SparkSession) -> RunRecorder:
    """Generate synthetic inputs and the hidden ground truth into the warehouse."""
    g = cfg.generator
    rec = RunRecorder("generate")
    rec.details.update({"users": str(g.users), "days": str(g.days), "seed": str(g.seed)})
    wh = open_warehouse(cfg, spark)
    with recorded(wh, rec):
        tables = generate_tables(spark, g, cfg.time.zone)
        write_inputs(wh, {**tables.inputs(), "ground_truth": tables.ground_truth}, rec)
    return rec
