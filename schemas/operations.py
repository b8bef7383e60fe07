"""Operational tables: ``quarantine`` (rejected input rows) and ``runs`` (one row per job run)."""
from pyspark.sql.types import (ArrayType, DoubleType, LongType, MapType, StringType, StructField, StructType,
                               TimestampType)

QUARANTINE = StructType([
    StructField("source_table", StringType(), False),
    StructField("raw_row", StringType(), False),  # the row as JSON, exactly as it arrived
    StructField("reason", StringType(), False),
    StructField("run_id", StringType(), False),
    StructField("quarantined_at", TimestampType(), False),
])

COUNTS = MapType(StringType(), LongType())

RUNS = StructType([
    StructField("run_id", StringType(), False),
    StructField("job", StringType(), False),
    StructField("status", StringType(), False),  # succeeded, failed
    StructField("started_at", TimestampType(), False),
    StructField("finished_at", TimestampType(), True),
    StructField("partitions", ArrayType(StringType()), True),
    StructField("rows_in", COUNTS, True),
    StructField("rows_out", COUNTS, True),
    StructField("rows_quarantined", COUNTS, True),
    StructField("stage_seconds", MapType(StringType(), DoubleType()), True),
    StructField("details", MapType(StringType(), StringType()), True),
    StructField("error", StringType(), True),
])
