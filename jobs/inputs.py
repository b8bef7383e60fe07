"""Reading the input tables: required ones must exist, optional ones may be absent."""
from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from conf import InputsConf
from jobs.storage import TableNotFound, Warehouse


def read_inputs(wh: Warehouse, inputs: InputsConf, versions: dict[str, int] | None = None,
                partitions: dict[str, list[date]] | None = None) -> tuple[dict[str, DataFrame], list[str]]:
    """All input tables, and the names of optional tables that were absent (read as empty).

    Every table is checked (existence, schema) before anything is returned, so a bad
    warehouse stops the job before it writes anything. ``versions`` pins tables to Delta versions
    (a step reads what it planned); tables not named are read at their current version. ``partitions``
    limits the partitioned tables it names to those ``dt`` values (the incremental job's pending ones).
    """
    versions = versions or {}
    missing = [t for t in inputs.required if not wh.exists(t)]
    if missing:
        raise TableNotFound("; ".join(
            f"{t}: table not found at {wh.path(t)}; run 'portrait generate' or point warehouse.path at your tables"
            for t in missing))
    absent = [t for t in inputs.optional if not wh.exists(t)]
    tables = {t: wh.read(t, versions.get(t)) for t in inputs.required}
    tables.update({t: wh.read_or_empty(t, versions.get(t)) for t in inputs.optional})
    for table, dts in (partitions or {}).items():
        if table in tables:
            tables[table] = tables[table].filter(F.col("dt").isin(sorted(dts)))
    return tables, absent

