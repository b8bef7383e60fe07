"""The planted user archetypes: each has its own categories, prices, activity, hours, reviews and mood."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import (ArrayType, BooleanType, DoubleType, IntegerType, StringType, StructField,
                               StructType)

from jobs.generator.vocabulary import CATEGORY_INDEX


@dataclass(frozen=True)
class Archetype:
    name: str
    share: float                 # of the population
    categories: tuple[str, ...]  # preferred categories
    price_preference: str        # low, any, high
    sessions_per_day: float
    events_per_session: float
    cart_prob: float             # per event after the first
    buy_prob: float              # per session
    peak_hour: int               # UTC
    review_prob: float           # per purchased line
    positive_prob: float         # sentiment of their reviews
    brand_loyal: bool


# Per-session buy probabilities are low, as on real platforms (most sessions buy nothing); a
# shopping-intent episode (see population.py) lifts them for a week.
ARCHETYPES: tuple[Archetype, ...] = (
    Archetype("bargain_hunter", 0.20, ("grocery", "home", "pet"), "low", 0.5, 5, 0.25, 0.10, 20, 0.20, 0.55, False),
    Archetype("brand_loyalist", 0.15, ("electronics", "sports", "outdoors"), "any", 0.4, 4, 0.30, 0.14, 12, 0.30,
              0.85, True),
    Archetype("high_spender", 0.12, ("jewelry", "electronics", "beauty"), "high", 0.45, 4, 0.30, 0.16, 21, 0.25,
              0.75, False),
    Archetype("window_shopper", 0.23, ("fashion", "beauty", "home"), "any", 0.8, 7, 0.08, 0.02, 15, 0.05, 0.50, False),
    Archetype("churning", 0.15, ("books", "toys", "outdoors"), "any", 0.5, 4, 0.20, 0.08, 9, 0.30, 0.15, False),
    Archetype("new_user", 0.15, ("baby", "pet", "toys"), "any", 0.7, 5, 0.20, 0.10, 18, 0.10, 0.70, False),
)

_SCHEMA = StructType([
    StructField("archetype", StringType()), StructField("share_lo", DoubleType()), StructField("share_hi", DoubleType()),
    StructField("pref_categories", ArrayType(IntegerType())), StructField("price_preference", StringType()),
    StructField("sessions_per_day", DoubleType()), StructField("events_per_session", DoubleType()),
    StructField("cart_prob", DoubleType()), StructField("buy_prob", DoubleType()), StructField("peak_hour", IntegerType()),
    StructField("review_prob", DoubleType()), StructField("positive_prob", DoubleType()),
    StructField("brand_loyal", BooleanType()),
])


def archetype_frame(spark: SparkSession) -> DataFrame:
    """One row per archetype, with [share_lo, share_hi) its slice of the unit interval."""
    total = sum(a.share for a in ARCHETYPES)
    rows, lo = [], 0.0
    for a in ARCHETYPES:
        hi = lo + a.share / total
        d = asdict(a)
        rows.append((a.name, lo, hi, [CATEGORY_INDEX[c] for c in a.categories], a.price_preference,
                     float(d["sessions_per_day"]), float(d["events_per_session"]), a.cart_prob, a.buy_prob,
                     a.peak_hour, a.review_prob, a.positive_prob, a.brand_loyal))
        lo = hi
    return spark.createDataFrame(rows, _SCHEMA)
