"""Parsing raw text columns, with rows that fail to parse kept for quarantine, never dropped."""
from __future__ import annotations

from datetime import datetime
from functools import reduce
from typing import Callable

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from jobs.privacy import PseudonymKey, hmac_column
from jobs.validation.validate import PARSE_ERROR, RAW_JSON, REASON, quarantine_rows

CORRUPT = "_corrupt_record"


def raw_schema(columns: list[str]) -> StructType:
    """All-string columns plus the column Spark fills with lines it cannot split."""
    return StructType([StructField(c, StringType()) for c in columns] + [StructField(CORRUPT, StringType())])


def read_raw_csv(spark: SparkSession, paths: list[str], columns: list[str], header: bool) -> DataFrame:
    """Read CSV files as strings; malformed lines keep their text in ``_corrupt_record``."""
    return (spark.read.schema(raw_schema(columns)).option("header", header).option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT).option("multiLine", True).option("escape", '"')
            .csv(paths))


def as_long(column: str) -> Column:
    return F.expr(f"try_cast(trim({column}) AS BIGINT)")


def as_double(column: str) -> Column:
    return F.expr(f"try_cast(trim({column}) AS DOUBLE)")


def as_timestamp(column: str, fmt: str = "yyyy-MM-dd HH:mm:ss") -> Column:
    return F.expr(f"try_to_timestamp(trim({column}), '{fmt}')")


def as_digits(column: str) -> Column:
    """An id that must be all digits, kept as a string."""
    return F.when(F.trim(F.col(column)).rlike(r"^[0-9]+$"), F.trim(F.col(column)))


def as_hex_id(column: str) -> Column:
    return F.when(F.trim(F.col(column)).rlike(r"^[0-9a-f]{32}$"), F.trim(F.col(column)))


def parse_columns(parsers: dict[str, Column], raw_columns: list[str], id_columns: list[str] = (),
                  key: PseudonymKey | None = None) -> Callable[[DataFrame], DataFrame]:
    """Add ``_{name}`` parsed columns, ``_raw_json`` and ``_parse_error``.

    A row is ``malformed_row`` when Spark could not split it into the expected fields, and
    ``unparseable_{name}`` for the first column whose non-empty text failed to parse.
    The raw JSON kept for quarantine carries pseudonyms for ``id_columns`` (with a key); a
    malformed line, which cannot be split into fields, is kept only as its hash and length.
    """
    def apply(raw: DataFrame) -> DataFrame:
        fields = [hmac_column(F.col(c), key).alias(c) if key is not None and c in id_columns else F.col(c)
                  for c in raw_columns]
        malformed = F.to_json(F.struct(F.sha2(F.col(CORRUPT), 256).alias("malformed_line_sha256"),
                                       F.length(CORRUPT).alias("length")))
        kept = F.when(F.col(CORRUPT).isNotNull(), malformed if key is not None else F.col(CORRUPT))
        out = raw.withColumn(RAW_JSON, F.coalesce(kept, F.to_json(F.struct(*fields), {"ignoreNullFields": "false"})))
        for name, parser in parsers.items():
            out = out.withColumn(f"_{name}", parser)
        failures = [F.when(F.col(CORRUPT).isNotNull(), F.lit("malformed_row"))] + [
            F.when(F.col(f"_{name}").isNull() & F.col(name).isNotNull() & (F.trim(F.col(name)) != ""),
                   F.lit(f"unparseable_{name}")) for name in parsers]
        return out.withColumn(PARSE_ERROR, F.coalesce(*failures))
    return apply


def parsed_rows(df: DataFrame) -> DataFrame:
    return df.filter(F.col(PARSE_ERROR).isNull())


def parse_failures(source: str, run_id: str, at: datetime) -> Callable[[DataFrame], DataFrame]:
    """Rows that failed to parse, in the quarantine table's shape."""
    def apply(df: DataFrame) -> DataFrame:
        return df.withColumn(REASON, F.col(PARSE_ERROR)).transform(quarantine_rows(source, run_id, at))
    return apply


def union_all(frames: list[DataFrame]) -> DataFrame:
    return reduce(DataFrame.unionByName, frames)
