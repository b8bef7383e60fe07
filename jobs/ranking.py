"""Ranks over all rows without a global window: Spark sorts by range partitions, so no task holds every row."""
from __future__ import annotations

from typing import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StructField, StructType


def percent_rank(column: str, name: str, ascending: bool = True) -> Callable[[DataFrame], DataFrame]:
    """df -> df with ``name``: what ``F.percent_rank().over(Window.orderBy(column))`` gives (ties share the lowest
    rank; a single row ranks 0.0), null where ``column`` is null (those rows are not ranked).

    ``Window.orderBy`` without a partition moves every row into one task: at a hundred million users that
    task is the job. Here the values are sorted across range partitions, numbered with ``zipWithIndex``
    (one small job counts each partition's rows), and each distinct value takes its first position.
    """
    def apply(df: DataFrame) -> DataFrame:
        value = F.col(column)
        values = df.select(column).filter(value.isNotNull())
        order = value.asc() if ascending else value.desc()
        field = values.schema[column]
        numbered = values.orderBy(order).rdd.zipWithIndex().map(lambda row_i: (row_i[0][0], row_i[1]))
        schema = StructType([StructField(column, field.dataType, False), StructField("_position", LongType(), False)])
        first = (df.sparkSession.createDataFrame(numbered, schema).groupBy(column)
                 .agg(F.min("_position").alias("_first")))
        total = values.agg(F.count("*").alias("_n"))
        ranks = first.crossJoin(total).select(
            column, F.when(F.col("_n") > 1, F.col("_first") / (F.col("_n") - 1)).otherwise(F.lit(0.0)).alias(name))
        return df.join(ranks, column, "left")
    return apply
