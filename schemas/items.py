"""The item catalogue."""
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

ITEMS = StructType([
    StructField("item_id", StringType(), False),
    StructField("title", StringType(), True),
    StructField("category", StringType(), True),
    StructField("brand", StringType(), True),
    StructField("price", DoubleType(), True),
])
