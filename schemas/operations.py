"""Operational tables: ``quarantine`` (rejected input rows), ``runs`` (one row per job run) and
``processed_partitions`` (the ledger of input partitions a job has turned into outputs)."""
from pyspark.sql.types import (ArrayType, DateType, DoubleType, IntegerType, LongType, MapType, StringType,
                               StructField, StructType, TimestampType)

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

# Append-only: a partition's current state is its row with the highest step, then the latest processed_at
# (``forget`` re-records a partition it rewrote under the same step). Unpartitioned inputs
# (users, items) have one row per step with a null dt: the whole table is their one partition.
PROCESSED_PARTITIONS = StructType([
    StructField("source_table", StringType(), False),
    StructField("dt", DateType(), True),
    StructField("files_fingerprint", StringType(), False),  # SHA-256 of the partition's sorted data file names
    StructField("file_count", IntegerType(), False),
    StructField("table_version", LongType(), False),        # the input table's Delta version when it was read
    StructField("step", LongType(), False),                  # the job step (app transaction version) that took it
    StructField("run_id", StringType(), False),
    StructField("processed_at", TimestampType(), False),
])
