"""The generator's hidden truth, kept apart from the inputs, for evaluation only."""
from pyspark.sql.types import (ArrayType, BooleanType, DoubleType, StringType, StructField, StructType,
                               TimestampType)

GROUND_TRUTH = StructType([
    StructField("user_id", StringType(), False),
    StructField("archetype", StringType(), False),
    StructField("cutoff_ts", TimestampType(), False),
    StructField("bought_after_cutoff", BooleanType(), False),
    StructField("churned_after_cutoff", BooleanType(), False),  # no activity of any kind after the cutoff
    StructField("spend_after_cutoff", DoubleType(), False),
    StructField("categories_after_cutoff", ArrayType(StringType()), False),
])
