"""The embedding caches: one vector per (model, normalised text) and per (model, image bytes), so nothing is
embedded twice."""
from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType, TimestampType

EMBEDDING_CACHE = StructType([
    StructField("model_id", StringType(), False),
    StructField("text_sha256", StringType(), False),  # of the normalised text; the text itself is not kept
    StructField("embedding", ArrayType(FloatType()), False),
    StructField("created_at", TimestampType(), False),
])


# One row per (image model, image bytes): the vector, or null with the reason the image could not be decoded,
# so no image is embedded (or retried) twice.
IMAGE_CACHE = StructType([
    StructField("model_id", StringType(), False),
    StructField("image_sha256", StringType(), False),  # of the file's bytes
    StructField("embedding", ArrayType(FloatType()), True),
    StructField("reason", StringType(), True),
    StructField("created_at", TimestampType(), False),
])


# Per user, from the user's reviews and comments (``text_means``): the recency-weighted mean embedding, and the
# plain mean of the recent ones (null without any).
TEXT_VECTORS = StructType([
    StructField("user_id", StringType(), False),
    StructField("text_vector", ArrayType(FloatType()), False),
    StructField("recent_text_vector", ArrayType(FloatType()), True),
])


def mean_vector_schema(name: str) -> StructType:
    """user_id and one mean vector named ``name`` (``item_vector_means``)."""
    return StructType([StructField("user_id", StringType(), False), StructField(name, ArrayType(FloatType()), False)])
