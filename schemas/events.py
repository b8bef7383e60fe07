"""Behavioural event tables, partitioned by the event's local date ``dt`` in the business zone (``time.zone``)."""
from pyspark.sql.types import (DateType, DoubleType, IntegerType, LongType, StringType, StructField,
                               StructType, TimestampType)

PARTITION = {"partition": True}

TRANSACTIONS = StructType([
    StructField("order_id", StringType(), False),
    StructField("user_id", StringType(), False),
    StructField("item_id", StringType(), False),
    StructField("quantity", IntegerType(), True),
    StructField("amount", DoubleType(), True),  # null where the source has no prices (Taobao)
    StructField("ts", TimestampType(), False),
    StructField("dt", DateType(), False, PARTITION),
])

BROWSE = StructType([
    StructField("user_id", StringType(), False),
    StructField("item_id", StringType(), False),
    StructField("event_type", StringType(), False),  # view, click, cart, fav
    StructField("ts", TimestampType(), False),
    StructField("dwell_ms", LongType(), True),
    StructField("session_id", StringType(), True),  # null: sessionised by inactivity gap
    StructField("dt", DateType(), False, PARTITION),
])
