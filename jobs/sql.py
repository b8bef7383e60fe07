"""Spark SQL over every Portrait table, registered by name, plus older versions on request (time travel)."""
from __future__ import annotations

from pyspark.sql import DataFrame

from jobs.storage import Warehouse


def parse_versions(specs: list[str]) -> dict[str, list[int]]:
    """['profiles=3', 'profiles=5', 'labels=2'] -> {'profiles': [3, 5], 'labels': [2]}."""
    out: dict[str, list[int]] = {}
    for spec in specs:
        table, _, version = spec.partition("=")
        if not table or not version.isdigit():
            raise ValueError(f"--at {spec!r}: expected TABLE=VERSION, e.g. profiles=3")
        out.setdefault(table, []).append(int(version))
    return out


def register_tables(wh: Warehouse, versions: dict[str, list[int]] | None = None) -> list[str]:
    """Register each existing table as a temp view named after it, and TABLE_vN for each requested version."""
    names = []
    for name in sorted(wh.specs):
        if wh.exists(name):
            wh.read(name).createOrReplaceTempView(name)
            names.append(name)
    for name, wanted in (versions or {}).items():
        for version in wanted:
            wh.read(name, version=version).createOrReplaceTempView(f"{name}_v{version}")
            names.append(f"{name}_v{version}")
    return names


def run_sql(wh: Warehouse, query: str, versions: dict[str, list[int]] | None = None) -> DataFrame:
    registered = register_tables(wh, versions)
    if not registered:
        raise FileNotFoundError(f"no Portrait tables under {wh.root}; run 'portrait demo' first "
                                f"or point warehouse.path at your warehouse")
    return wh.spark.sql(query)
