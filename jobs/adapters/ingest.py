"""Landing an adapter's tables: write inputs, quarantine parse failures, record the run."""
from __future__ import annotations

from datetime import datetime
from typing import Callable, Mapping

from pyspark.sql import DataFrame, SparkSession

from conf import Config
from jobs.full import open_warehouse
from jobs.ingest import write_inputs
from jobs.privacy import PseudonymKey, privacy_key
from jobs.runs import RunRecorder, write_run

Builder = Callable[[str, datetime, "PseudonymKey | None"], tuple[dict[str, DataFrame], DataFrame, int]]


def run_adapter(cfg: Config, spark: SparkSession, job: str, path: str, build: Builder,
                env: Mapping[str, str] | None = None) -> RunRecorder:
    """``build(run_id, at, key)`` returns (input tables, quarantined rows, raw rows read).

    The key pseudonymises ids in the raw rows kept for quarantine (an output table).
    """
    rec = RunRecorder(job)
    rec.details["source"] = path
    wh = open_warehouse(cfg, spark)
    try:
        key = privacy_key(cfg.privacy, env, rec)
        with rec.stage("parse") as st:
            tables, failures, rows_read = build(rec.run_id, rec.started_at, key)
            failures = failures.cache()
            st.rows_in = rec.rows_in["source"] = rows_read
            st.rows_out = rows_read - failures.count()
            rec.rows_quarantined["source"] = failures.count()
        write_inputs(wh, tables, rec)
        wh.append("quarantine", failures, run_id=rec.run_id)
        write_run(wh, rec, "succeeded")
    except Exception as error:
        write_run(wh, rec, "failed", error)
        raise
    rec.console.print(rec.summary())
    if rec.rows_quarantined["source"]:
        rec.console.print(f"  {job}: {rec.rows_quarantined['source']:,} of {rows_read:,} source rows could not be "
                          f"parsed; moved to quarantine (reasons malformed_row / unparseable_<column>)")
    return rec
