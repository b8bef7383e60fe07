"""Social interactions: reviews, comments, likes, shares and follows."""
from pyspark.sql.types import DateType, IntegerType, StringType, StructField, StructType, TimestampType

SOCIAL_KINDS = ("review", "comment", "like", "share", "follow")

SOCIAL = StructType([
    StructField("user_id", StringType(), False),
    StructField("item_id", StringType(), True),  # null for follows and reviews of multi-item orders
    StructField("kind", StringType(), False),  # one of SOCIAL_KINDS
    StructField("text", StringType(), True),
    StructField("rating", IntegerType(), True),  # 1..5, reviews only
    StructField("ts", TimestampType(), False),
    StructField("dt", DateType(), False, {"partition": True}),
])
