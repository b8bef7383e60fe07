"""Output tables analysts query: ``profiles`` (one row per user) and ``labels`` (tags)."""
from __future__ import annotations

from pyspark.sql.types import (ArrayType, DoubleType, FloatType, IntegerType, LongType, StringType, StructField,
                               StructType, TimestampType)

SHARE = StructType([StructField("name", StringType()), StructField("share", DoubleType())])


def rfm_fields(windows: tuple[int, ...] | list[int]) -> list[StructField]:
    per_window = []
    for w in windows:
        per_window += [StructField(f"orders_{w}d", LongType()), StructField(f"spend_{w}d", DoubleType())]
    return per_window + [
        StructField("frequency", LongType()),
        StructField("monetary", DoubleType()),
        StructField("avg_order_value", DoubleType()),
        StructField("first_order_ts", TimestampType()),
        StructField("last_order_ts", TimestampType()),
        StructField("recency_days", DoubleType()),
        StructField("purchase_interval_days", DoubleType()),  # mean days between orders, first to last (2+ orders)
    ]


AFFINITY_FIELDS = [
    StructField("top_categories", ArrayType(SHARE)),
    StructField("top_category", StringType()),
    StructField("top_category_share", DoubleType()),
    StructField("top_category_weight", DoubleType()),
    StructField("top_brands", ArrayType(SHARE)),
    StructField("top_brand", StringType()),
    StructField("top_brand_share", DoubleType()),
    StructField("median_unit_price", DoubleType()),
    StructField("price_band", StringType()),
]

CONVERSION_FIELDS = [
    StructField("views", LongType()),
    StructField("clicks", LongType()),
    StructField("carts", LongType()),
    StructField("favs", LongType()),
    StructField("view_to_cart_rate", DoubleType()),
    StructField("cart_to_buy_rate", DoubleType()),
    StructField("sessions", LongType()),
    StructField("avg_session_events", DoubleType()),
    StructField("avg_session_minutes", DoubleType()),
    StructField("avg_dwell_s", DoubleType()),
]

ACTIVITY_FIELDS = [
    StructField("active_days", LongType()),
    StructField("events_7d", LongType()),
    StructField("last_event_ts", TimestampType()),
    StructField("days_since_last_event", DoubleType()),
]

TIME_PATTERN_FIELDS = [
    StructField("hour_hist", ArrayType(DoubleType())),
    StructField("weekday_hist", ArrayType(DoubleType())),  # Monday first
    StructField("peak_hour", IntegerType()),
    StructField("peak_weekday", IntegerType()),  # 1 = Monday ... 7 = Sunday
    StructField("weekend_share", DoubleType()),
    StructField("night_share", DoubleType()),
]

SOCIAL_FIELDS = [
    StructField("review_count", LongType()),
    StructField("mean_rating", DoubleType()),
    StructField("comment_count", LongType()),
    StructField("like_count", LongType()),
    StructField("share_count", LongType()),
    StructField("follow_count", LongType()),
]


EMBEDDING_FIELDS = [
    StructField("text_vector", ArrayType(FloatType())),      # recency-weighted mean of review/comment embeddings
    StructField("recent_text_vector", ArrayType(FloatType())),  # plain mean of the last days' reviews/comments
    StructField("interest_vector", ArrayType(FloatType())),  # weighted mean of viewed/carted/bought title embeddings
    # the same weights over the items' photos (CNN vectors); null when none of the user's items has a photo
    StructField("image_interest_vector", ArrayType(FloatType())),
]


# Filled by the scoring stage from the current model; null when the model is disabled.
SCORE = StructType([StructField("name", StringType()), StructField("score", DoubleType())])
MODEL_FIELDS = [
    StructField("user_embedding", ArrayType(FloatType())),
    StructField("purchase_propensity", DoubleType()),   # P(buys anything in the next horizon)
    StructField("churn_risk", DoubleType()),            # P(no activity at all in the next horizon)
    # The inputs that pushed each score up most, with their values ("carts_1d=3"): what the tags' reasons quote.
    StructField("propensity_drivers", ArrayType(StringType())),
    StructField("churn_drivers", ArrayType(StringType())),
    StructField("category_affinity", ArrayType(SCORE)),  # top categories by P(buys in category)
    StructField("spend_tier", StringType()),            # none / low / mid / high, predicted for the horizon
    StructField("segment_id", IntegerType()),
    StructField("model_run_id", StringType()),
]


def intent_fields(short_windows: tuple[int, ...] | list[int]) -> list[StructField]:
    """Short-horizon intent (jobs.features.intent): per-kind counts of the last days, open carts and favourites."""
    counts = [StructField(f"{kind}_{w}d", LongType())
              for w in short_windows for kind in ("views", "carts", "favs", "buys")]
    return counts + [
        StructField("open_intent_items", LongType()),  # carted or favourited in the longest short window, not bought
        StructField("last_cart_ts", TimestampType()),
        StructField("last_fav_ts", TimestampType()),
        StructField("days_since_last_cart", DoubleType()),
        StructField("days_since_last_fav", DoubleType()),
    ]


def profiles_schema(windows: tuple[int, ...] | list[int] = (7, 30, 90),
                    short_windows: tuple[int, ...] | list[int] = (1, 3, 7)) -> StructType:
    """The profiles schema; its RFM and intent columns follow the configured windows."""
    return StructType(
        [StructField("user_id", StringType(), False), StructField("signup_ts", TimestampType()),
         StructField("age", IntegerType())]  # at as_of, where the source records an age or a birth year
        + rfm_fields(windows) + intent_fields(short_windows) + AFFINITY_FIELDS + CONVERSION_FIELDS + ACTIVITY_FIELDS
        + TIME_PATTERN_FIELDS + SOCIAL_FIELDS + EMBEDDING_FIELDS + MODEL_FIELDS
        + [StructField("as_of", TimestampType(), False), StructField("updated_at", TimestampType(), False)]
    )


PROFILES = profiles_schema()

LABELS = StructType([
    StructField("user_id", StringType(), False),
    StructField("tag", StringType(), False),
    StructField("score", DoubleType(), True),
    StructField("reason", StringType(), False),
    StructField("as_of", TimestampType(), False),
])
