"""The embedding cache: one vector per (model, normalised text), so no text is embedded twice."""
from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType, TimestampType

EMBEDDING_CACHE = StructType([
    StructField("model_id", StringType(), False),
    StructField("text_sha256", StringType(), False),  # of the normalised text; the text itself is not kept
    StructField("embedding", ArrayType(FloatType()), False),
    StructField("created_at", TimestampType(), False),
])
