"""The item catalogue."""
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

ITEMS = StructType([
    StructField("item_id", StringType(), False),
    StructField("title", StringType(), True),
    StructField("category", StringType(), True),
    StructField("brand", StringType(), True),
    StructField("price", DoubleType(), True),
    StructField("description", StringType(), True),  # longer product text, where the source has one (H&M)
    StructField("image_path", StringType(), True),   # a local path or URI of the product photo
])
