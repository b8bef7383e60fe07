"""Spark SQL over every Portrait table, registered by name."""
from __future__ import annotations

from pyspark.sql import DataFrame

from jobs.storage import Warehouse


def register_tables(wh: Warehouse) -> list[str]:
    """Register each existing table as a temp view named after it; return the names."""
    names = []
    for name in sorted(wh.specs):
        if wh.exists(name):
            wh.read(name).createOrReplaceTempView(name)
            names.append(name)
    return names


def run_sql(wh: Warehouse, query: str) -> DataFrame:
    registered = register_tables(wh)
    if not registered:
        raise FileNotFoundError(f"no Portrait tables under {wh.root}; run 'portrait demo' first "
                                f"or point warehouse.path at your warehouse")
    return wh.spark.sql(query)
