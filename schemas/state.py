"""Mergeable feature state the incremental job keeps between runs (see docs/incremental-design.md).

One row per user, input partition ``dt`` and event ``day`` (the local date of ``ts`` in ``time.zone``); texts keep one row
each. Keeping ``dt`` lets a partition that received late data replace its rows; keeping ``day`` lets the
rolling windows slide by whole days, whatever partition an event was filed under. The tables are
partitioned by ``dt`` too, so a step rewrites only the partitions it read.
"""
from pyspark.sql.types import (ArrayType, DateType, DecimalType, DoubleType, LongType, StringType, StructField,
                               StructType, TimestampType)

from schemas.events import PARTITION

ORDER_DAY_STATE = StructType([
    StructField("user_id", StringType(), False),
    StructField("dt", DateType(), False, PARTITION),
    StructField("day", DateType(), False),
    # Distinct order ids, not a count: an order whose lines straddle midnight must count once per window.
    StructField("order_ids", ArrayType(StringType(), False), False),
    StructField("amount_sum", DecimalType(38, 6)),  # exact sum of the known amounts; null when none is known
    StructField("amounts_known", LongType(), False),
    StructField("lines", LongType(), False),        # transaction lines: the funnel's purchases
    StructField("first_ts", TimestampType(), False),
    StructField("last_ts", TimestampType(), False),
])

# The ``state_orders`` tiles before ``settled_before``, merged per user: the same parts, without dt and day.
ORDER_SUMMARY = StructType([f for f in ORDER_DAY_STATE.fields if f.name not in ("dt", "day")])
SETTLED_ORDERS = StructType([*ORDER_SUMMARY.fields, StructField("settled_before", DateType(), False)])

EVENT_DAY_STATE = StructType([
    StructField("user_id", StringType(), False),
    StructField("source", StringType(), False),  # browse, transaction, social: each table's partitions move alone
    StructField("dt", DateType(), False, PARTITION),
    StructField("day", DateType(), False),
    StructField("hour_counts", ArrayType(LongType(), False), False),  # 24 counts, local hours; their sum is the events
    StructField("last_ts", TimestampType(), False),
])

# The ``state_events`` tiles of every partition before ``settled_before``, merged: one row per user (a few where
# steps appended the summaries of the partitions that crossed the boundary; ``settled_before`` then says which
# boundary each row was settled up to). A step folds these and the tiles from ``settled_before`` on, so its cost
# does not grow with the days behind it.
# Every part merges exactly: a set of days, integer counts, a latest time.
EVENT_SUMMARY = StructType([
    StructField("user_id", StringType(), False),
    StructField("days", ArrayType(DateType()), False),            # distinct local days with an event, sorted
    StructField("hour_counts", ArrayType(LongType()), False),     # 24 counts, local hours
    StructField("weekday_counts", ArrayType(LongType()), False),  # 7 counts, ISO weekdays, Monday first
    StructField("last_ts", TimestampType(), False),
])
SETTLED_EVENTS = StructType([*EVENT_SUMMARY.fields, StructField("settled_before", DateType(), False)])

# The ``state_browse`` tiles before ``settled_before``, merged per user: the last cart and favourite (null: none).
BROWSE_SUMMARY = StructType([
    StructField("user_id", StringType(), False),
    StructField("last_cart_ts", TimestampType()),
    StructField("last_fav_ts", TimestampType()),
])
SETTLED_BROWSE = StructType([*BROWSE_SUMMARY.fields, StructField("settled_before", DateType(), False)])

SOCIAL_DAY_STATE = StructType([
    StructField("user_id", StringType(), False),
    StructField("dt", DateType(), False, PARTITION),
    StructField("day", DateType(), False),
    StructField("kind_counts", ArrayType(LongType(), False), False),  # one count per SOCIAL_KINDS entry
    StructField("rating_sum", LongType()),                             # reviews' ratings; null when none is known
    StructField("ratings_known", LongType(), False),
])

# The ``state_social`` tiles before ``settled_before``, merged per user: the same sums, without dt and day.
SOCIAL_SUMMARY = StructType([
    StructField("user_id", StringType(), False),
    StructField("kind_counts", ArrayType(LongType()), False),
    StructField("rating_sum", LongType()),
    StructField("ratings_known", LongType(), False),
])
SETTLED_SOCIAL = StructType([*SOCIAL_SUMMARY.fields, StructField("settled_before", DateType(), False)])

INTERACTION_DAY_STATE = StructType([
    StructField("user_id", StringType(), False),
    StructField("source", StringType(), False),  # browse or transaction
    StructField("dt", DateType(), False, PARTITION),
    StructField("day", DateType(), False),
    StructField("item_id", StringType(), False),
    StructField("kind", StringType(), False),    # view, click, cart, fav, buy
    # Counts, not weights: the configured weights apply when the state is read, so changing them needs no rebuild.
    StructField("events", LongType(), False),
])

# The ``state_interactions`` tiles before ``settled_before``, summed per (user, category) and (user, brand) for the
# affinity columns: weights in fixed point (jobs.features.common.FIXED_POINT), so they merge exactly.
AFFINITY_SUMMARY = StructType([
    StructField("user_id", StringType(), False),
    StructField("facet", StringType(), False),   # category or brand
    StructField("name", StringType(), False),
    StructField("weight", LongType(), False),    # events x kind weight x 2**30
])
SETTLED_AFFINITY = StructType([*AFFINITY_SUMMARY.fields, StructField("settled_before", DateType(), False)])

# The ``state_interactions`` tiles before ``settled_before``, summed per user for ``interest_vector`` (title vectors;
# empty while embedding is off) and ``image_interest_vector`` (photo vectors; empty while images are off): fixed-point
# whole numbers (jobs.features.common.FIXED_POINT), so they merge exactly.
INTEREST_SUMMARY = StructType([
    StructField("user_id", StringType(), False),
    StructField("vector_sums", ArrayType(LongType()), False),  # events x kind weight x item vector, per component
    StructField("weight_sum", LongType(), False),               # events x kind weight
])
SETTLED_INTEREST = StructType([*INTEREST_SUMMARY.fields, StructField("settled_before", DateType(), False)])

PRICE_DAY_STATE = StructType([
    StructField("user_id", StringType(), False),
    StructField("dt", DateType(), False, PARTITION),
    StructField("day", DateType(), False),
    # A median does not merge; the multiset of unit prices does (bounded by the distinct prices paid).
    StructField("unit_price", DoubleType(), False),
    StructField("lines", LongType(), False),
])

# The ``state_prices`` tiles before ``settled_before``: each user's multiset of unit prices, one row per price (bounded
# by the distinct prices they paid). A multiset merges exactly, and the median over it is the median over every line.
PRICE_SUMMARY = StructType([
    StructField("user_id", StringType(), False),
    StructField("unit_price", DoubleType(), False),
    StructField("lines", LongType(), False),
])
SETTLED_PRICES = StructType([*PRICE_SUMMARY.fields, StructField("settled_before", DateType(), False)])

BROWSE_DAY_STATE = StructType([
    StructField("user_id", StringType(), False),
    StructField("dt", DateType(), False, PARTITION),
    StructField("day", DateType(), False),
    StructField("session_id", StringType()),  # null: events the source did not sessionise (see auto_ts)
    StructField("views", LongType(), False),
    StructField("clicks", LongType(), False),
    StructField("carts", LongType(), False),
    StructField("favs", LongType(), False),
    StructField("events", LongType(), False),
    StructField("dwell_ms_sum", LongType()),
    StructField("dwell_known", LongType(), False),
    StructField("first_ts", TimestampType(), False),
    StructField("last_ts", TimestampType(), False),
    # Gap-based sessions can span midnight and partitions, so unsessionised events keep their times.
    StructField("auto_ts", ArrayType(TimestampType(), False), False),
])

# A session, or a piece of one: a source's session id (null: sessionised by the gaps between events), its first
# and last event, and how many events it holds.
SESSION = StructType([
    StructField("session_id", StringType()),
    StructField("first_ts", TimestampType(), False),
    StructField("last_ts", TimestampType(), False),
    StructField("n", LongType(), False),
])

# The ``state_browse`` tiles before ``settled_before``, merged per user: the funnel's sums, the totals of the sessions
# no later tile can reach (closed), and the sessions a later tile still can (open), which a fold merges with its own.
SESSION_SUMMARY = StructType([
    StructField("user_id", StringType(), False),
    *[f for f in BROWSE_DAY_STATE.fields if f.name in ("views", "clicks", "carts", "favs", "dwell_ms_sum", "dwell_known")],
    StructField("closed_sessions", LongType(), False),
    StructField("closed_events", LongType(), False),
    StructField("closed_micros", LongType(), False),
    StructField("open_sessions", ArrayType(SESSION, False), False),
])
SETTLED_SESSIONS = StructType([*SESSION_SUMMARY.fields, StructField("settled_before", DateType(), False)])

TEXT_STATE = StructType([
    StructField("user_id", StringType(), False),
    StructField("dt", DateType(), False, PARTITION),
    StructField("ts", TimestampType(), False),
    # The key of the embedding cache, never the text: erasure and privacy stay where they are.
    StructField("text_sha256", StringType(), False),
])
