"""The users table: one row per platform user. Name, phone and email are PII."""
from pyspark.sql.types import IntegerType, StringType, StructField, StructType, TimestampType

PII = {"pii": True}

USERS = StructType([
    StructField("user_id", StringType(), False),
    StructField("signup_ts", TimestampType(), True),
    StructField("gender", StringType(), True),
    StructField("birth_year", IntegerType(), True),
    StructField("city", StringType(), True),
    StructField("name", StringType(), True, PII),
    StructField("phone", StringType(), True, PII),
    StructField("email", StringType(), True, PII),
    StructField("age", IntegerType(), True),  # in years, where the source records it (H&M)
])
