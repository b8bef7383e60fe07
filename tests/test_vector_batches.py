"""Vectors handed back to Spark as Arrow lists built from one matrix per batch: the rows must be those that plain
Python lists give, null rows included, through a real Spark session."""
import numpy as np
import pandas as pd
import pytest
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import ArrayType, FloatType, LongType, StringType, StructField, StructType

from udfs.vector_batches import NullableRows, map_vector_batches, record_batch

SCHEMA = StructType([
    StructField("user_id", StringType(), False),
    StructField("sums", ArrayType(LongType()), False),
    StructField("mean", ArrayType(FloatType()), True),
])


def test_a_matrix_becomes_the_lists_of_its_rows_and_absent_rows_are_null():
    batch = record_batch({"user_id": np.array(["u1", "u2", "u3"], dtype=object),
                          "sums": np.array([[1, -2, 3], [4, 5, -6], [2 ** 62, 0, -(2 ** 62)]], dtype=np.int64),
                          "mean": NullableRows(np.array([[0.5, 1.5], [2.5, 3.5], [-1.0, 0.25]], dtype=np.float32),
                                               np.array([False, True, True]))},
                         to_arrow_schema(SCHEMA))
    assert batch.to_pylist() == [{"user_id": "u1", "sums": [1, -2, 3], "mean": None},
                                 {"user_id": "u2", "sums": [4, 5, -6], "mean": [2.5, 3.5]},
                                 {"user_id": "u3", "sums": [2 ** 62, 0, -(2 ** 62)], "mean": [-1.0, 0.25]}]


@pytest.mark.parametrize("large", ["false", "true"])
def test_spark_reads_back_the_rows_the_batches_hold(spark, large):
    def sums_and_means(frames):  # defined here: the workers get it by value, not by this module's name
        """Per row: (n, -n, 2n) as longs, and (n / 4, n / 2) as floats, null where n is odd."""
        for frame in frames:
            n = frame["n"].to_numpy(dtype=np.int64)
            yield {"user_id": frame["user_id"].to_numpy(dtype=object), "sums": np.outer(n, [1, -1, 2]),
                   "mean": NullableRows(np.outer(n, [0.25, 0.5]).astype(np.float32), n % 2 == 0)}

    previous = {key: spark.conf.get(key) for key in ("spark.sql.execution.arrow.maxRecordsPerBatch",
                                                     "spark.sql.execution.arrow.useLargeVarTypes")}
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "3")  # several batches per task
    spark.conf.set("spark.sql.execution.arrow.useLargeVarTypes", large)
    try:
        users = spark.createDataFrame(pd.DataFrame({"user_id": [f"u{n}" for n in range(8)], "n": range(8)}))
        out = {row.user_id: row for row in users.repartition(2).transform(
            map_vector_batches(sums_and_means, SCHEMA)).collect()}
    finally:
        for key, value in previous.items():
            spark.conf.set(key, value)
    assert sorted(out) == [f"u{n}" for n in range(8)]
    for n in range(8):
        row = out[f"u{n}"]
        assert row.sums == [n, -n, 2 * n]
        assert row.mean == (None if n % 2 else [n / 4, n / 2])
