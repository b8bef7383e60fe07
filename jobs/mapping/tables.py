"""Building the five input tables from parsed sources with the mapping's Spark SQL, and its rejections."""
from __future__ import annotations

from datetime import datetime
from functools import reduce
from typing import Callable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.clock import local_day
from jobs.mapping.spec import Mapping, TableMapping
from jobs.privacy import PseudonymKey, row_json
from jobs.validation.validate import RAW_JSON, REASON, quarantine_rows
from schemas import INPUT_TABLES

REJECTED = "_rejected"


def _escaped(sql: str) -> str:
    """SQL text placed into a query that ``spark.sql`` formats: braces in it are literal."""
    return sql.replace("{", "{{").replace("}", "}}")


def from_rows(spark: SparkSession, tm: TableMapping, sources: dict[str, DataFrame]) -> DataFrame:
    """The rows of the table's FROM clause, after its WHERE."""
    rows = spark.sql(f"SELECT * FROM {tm.from_clause()}", **{n: sources[n] for n in tm.source_names()})
    return rows.filter(F.expr(tm.where)) if tm.where else rows


def with_rejections(tm: TableMapping) -> Callable[[DataFrame], DataFrame]:
    """Add ``_rejected``: the reason of the first rejection that holds for the row, or null."""
    def apply(rows: DataFrame) -> DataFrame:
        reasons = [F.when(F.expr(r.when), F.lit(r.reason)) for r in tm.reject]
        return rows.withColumn(REJECTED, F.coalesce(*reasons) if reasons else F.lit(None).cast("string"))
    return apply


def selected(spark: SparkSession, table: str, tm: TableMapping, zone: str) -> Callable[[DataFrame], DataFrame]:
    """Kept FROM rows -> the table's columns, typed as its schema; ``dt`` is the local date of ``ts``."""
    schema = INPUT_TABLES[table].schema

    def apply(kept: DataFrame) -> DataFrame:
        exprs = ", ".join(f"{_escaped(sql)} AS `{column}`" for column, sql in tm.columns.items())
        group = f" GROUP BY {', '.join(_escaped(g) for g in tm.group_by)}" if tm.group_by else ""
        out = spark.sql(f"SELECT {'DISTINCT ' if tm.distinct else ''}{exprs} FROM {{rows}}{group}", rows=kept)
        if "dt" in schema.fieldNames() and "dt" not in tm.columns:
            out = out.withColumn("dt", local_day("ts", zone))
        return out.select(*[F.col(f.name).cast(f.dataType) if f.name in out.columns
                            else F.lit(None).cast(f.dataType).alias(f.name) for f in schema.fields])
    return apply


def rejected_rows(label: str, id_columns: set[str], key: PseudonymKey | None, run_id: str, at: datetime
                  ) -> Callable[[DataFrame], DataFrame]:
    """Rejected FROM rows -> quarantine rows (user id columns as pseudonyms), from ``label``."""
    def apply(rows: DataFrame) -> DataFrame:
        columns = [c for c in rows.columns if c != REJECTED]
        return (rows.filter(F.col(REJECTED).isNotNull())
                .withColumn(RAW_JSON, row_json(columns, id_columns, key))
                .withColumn(REASON, F.col(REJECTED)).transform(quarantine_rows(label, run_id, at)))
    return apply


def build_tables(spark: SparkSession, mapping: Mapping, sources: dict[str, DataFrame], zone: str,
                 key: PseudonymKey | None, run_id: str, at: datetime) -> tuple[dict[str, DataFrame], DataFrame | None]:
    """Every mapped input table (unmapped ones empty), and the rows the mapping rejected, as quarantine rows."""
    ids = {c for s in mapping.sources.values() for c, spec in s.columns.items() if spec.user_id}
    tables, rejected = {}, []
    for table in INPUT_TABLES:
        tm = mapping.tables.get(table)
        if tm is None:
            tables[table] = spark.createDataFrame([], INPUT_TABLES[table].schema)
            continue
        try:
            rows = from_rows(spark, tm, sources).transform(with_rejections(tm))
            tables[table] = rows.filter(F.col(REJECTED).isNull()).drop(REJECTED).transform(
                selected(spark, table, tm, zone))
        except Exception as err:  # noqa: BLE001 - Spark's analysis errors: say which table's SQL is wrong
            if type(err).__name__ not in ("AnalysisException", "ParseException", "PySparkException",
                                          "PySparkValueError", "PySparkTypeError"):
                raise
            first = str(err).strip().splitlines()[0]
            raise mapping.error(("tables", table), f"tables.{table}: its SQL does not run: {first}") from None
        if tm.reject:
            rejected.append(rows.transform(rejected_rows(f"{mapping.name}:{table}", ids, key, run_id, at)))
    return tables, reduce(DataFrame.unionByName, rejected) if rejected else None
