"""Model inputs from a profiles frame, and point-in-time training data with horizon labels.

Features for training are folded from the tiles of days strictly before the cutoff T; labels
from the tiles of the horizon's days [T, T + H). The same ``model_inputs`` turns today's profiles into the inputs
the scoring stage feeds to the trained model, so training and scoring cannot drift apart.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from datetime import date, datetime, timedelta
from typing import Callable

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.clock import local_day, local_midnight_date
from jobs.features.common import money_sum
from jobs.features.intent import short_window_columns

TEXT_DIM = 384
TEXT_VECTORS = ("text_vector", "recent_text_vector")  # concatenated into the model's text input

# Heavy-tailed counts and amounts enter as log1p; rates and shares as they are.
LOG_COLUMNS = ["frequency", "monetary", "avg_order_value", "recency_days", "top_category_weight", "median_unit_price",
               "views", "clicks", "carts", "favs", "sessions", "avg_session_events", "avg_session_minutes",
               "avg_dwell_s", "active_days", "days_since_last_event", "review_count", "comment_count", "like_count",
               "share_count", "follow_count", "tenure_days", "open_intent_items", "days_since_last_cart",
               "days_since_last_fav", "purchase_interval_days"]
PLAIN_COLUMNS = ["top_category_share", "top_brand_share", "view_to_cart_rate", "cart_to_buy_rate", "weekend_share",
                 "night_share", "mean_rating", "age"]
PRICE_BANDS = ("low", "mid", "high")
HORIZON_WEEKDAYS = "horizon_weekday_share"


@dataclass(frozen=True)
class InputSpec:
    """What the model's behaviour vector holds, in order; saved with the model."""

    windows: tuple[int, ...]
    categories: tuple[str, ...]   # the category vocabulary (most bought first)
    recent_days: int
    image_dim: int = 0            # width of image_interest_vector in the interest input (0: no photos)
    short_windows: tuple[int, ...] = ()  # features.short_windows: per-kind counts of the last days
    horizon_days: int = 0         # the horizon scored for: its weekdays weigh the user's weekday mix (0: unused)
    zone: str = "UTC"             # whose calendar the horizon's weekdays are in

    def scalar_columns(self) -> list[str]:
        per_window = [f"{kind}_{w}d" for w in self.windows for kind in ("orders", "spend")]
        horizon = [HORIZON_WEEKDAYS] if self.horizon_days else []
        return (per_window + [f"events_{self.recent_days}d"] + short_window_columns(self.short_windows)
                + LOG_COLUMNS + PLAIN_COLUMNS + horizon)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, raw: dict) -> "InputSpec":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})

    def logged(self) -> set[str]:
        """The scalars that enter as log1p (heavy-tailed counts and amounts)."""
        return set(LOG_COLUMNS) | set(short_window_columns(self.short_windows)) | {
            c for c in self.scalar_columns() if c.startswith(("spend_", "orders_", "events_"))}

    @cached_property
    def _layout(self) -> tuple[list[str], list[str], set[str]]:
        """(scalar columns, names, logged scalars), built once: ``describe`` runs per user and input."""
        return self.scalar_columns(), self.names(), self.logged()

    def describe(self, position: int, value: float) -> str:
        """A behaviour input and its value as the profile holds it, for a reason: "carts_1d=3"."""
        scalars, names, logged = self._layout
        name = names[position]
        if position < len(scalars):
            shown = float(np.expm1(value)) if name in logged else value
            return f"{name}={shown:.0f}" if abs(shown - round(shown)) < 1e-6 else f"{name}={shown:.3g}"
        if position < 2 * len(scalars):
            return f"{scalars[position - len(scalars)]} {'unknown' if value >= 0.5 else 'known'}"
        return f"{name}={value:.2f}"

    def names(self) -> list[str]:
        """One name per position of the behaviour vector (used to describe segments and reasons)."""
        scalars = self.scalar_columns()
        return (scalars + [f"{c}_missing" for c in scalars] + [f"hour_{h}" for h in range(24)]
                + [f"weekday_{d}" for d in range(1, 8)] + [f"category_share:{c}" for c in self.categories]
                + [f"price_band:{b}" for b in PRICE_BANDS])


def _scalar(name: str, log: bool) -> Column:
    value = F.coalesce(F.col(name).cast("double"), F.lit(0.0))
    return F.log1p(F.greatest(value, F.lit(0.0))) if log else value


def _histogram(name: str, size: int) -> Column:
    return F.coalesce(F.col(name), F.array_repeat(F.lit(0.0), size))


def category_shares(categories: tuple[str, ...]) -> list[Column]:
    """Per vocabulary category, its share of the user's weighted activity (0 outside the user's top k)."""
    def share(name: str) -> Column:
        hits = F.filter(F.coalesce("top_categories", F.array().cast("array<struct<name:string,share:double>>")),
                        lambda s: s["name"] == F.lit(name))
        return F.coalesce(F.try_element_at(hits, F.lit(1))["share"], F.lit(0.0))
    return [share(c) for c in categories]


def behaviour_vector(spec: InputSpec) -> Column:
    """The behavioural features as one float array (nulls as 0 plus a missing flag per scalar)."""
    scalars = spec.scalar_columns()
    logged = spec.logged()
    values = [_scalar(c, c in logged) for c in scalars]
    missing = [F.col(c).isNull().cast("double") for c in scalars]
    bands = [(F.col("price_band") == b).cast("double") for b in PRICE_BANDS]
    parts = [F.array(*values, *missing), _histogram("hour_hist", 24), _histogram("weekday_hist", 7),
             F.array(*category_shares(spec.categories)), F.array(*[F.coalesce(b, F.lit(0.0)) for b in bands])]
    return F.concat(*parts).cast("array<float>")


def _vector_or_zeros(name: str, width: int = TEXT_DIM) -> Column:
    return F.coalesce(F.col(name), F.array_repeat(F.lit(0.0), width).cast("array<float>")).cast("array<float>")


def interest_input(spec: InputSpec) -> Column:
    """The titles' interest vector, then (when the model sees photos) the photos' one."""
    parts = [_vector_or_zeros("interest_vector")]
    if spec.image_dim:
        parts.append(_vector_or_zeros("image_interest_vector", spec.image_dim))
    return F.concat(*parts)


def horizon_weekday_share(horizon_days: int, zone: str) -> Column:
    """The share of the user's activity (``weekday_hist``) on the weekdays of the ``horizon_days`` local days
    from ``as_of``, each day weighted once: a weekend shopper scores high for a horizon that holds a weekend."""
    start = local_day("as_of", zone)
    hist = F.coalesce(F.col("weekday_hist"), F.array_repeat(F.lit(0.0), 7))
    days = [F.weekday(F.date_add(start, i)) for i in range(horizon_days)]  # 0 = Monday, as weekday_hist
    return sum((hist[d] for d in days), F.lit(0.0))


def model_inputs(spec: InputSpec) -> Callable[[DataFrame], DataFrame]:
    """profiles -> user_id, behaviour, text, interest (arrays of float, never null)."""
    def apply(profiles: DataFrame) -> DataFrame:
        tenure = (F.col("as_of").cast("double") - F.col("signup_ts").cast("double")) / 86_400.0
        if spec.horizon_days:
            profiles = profiles.withColumn(HORIZON_WEEKDAYS, horizon_weekday_share(spec.horizon_days, spec.zone))
        return (profiles.withColumn("tenure_days", tenure)
                .select("user_id", behaviour_vector(spec).alias("behaviour"),
                        F.concat(*[_vector_or_zeros(c) for c in TEXT_VECTORS]).alias("text"),
                        interest_input(spec).alias("interest")))
    return apply


def users_at(cutoff: datetime, zone: str, event_tiles: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Clean users as a team at ``cutoff`` (a local midnight) knew them: signed up before it, or, where the
    source records no signup (none of Taobao, H&M, Online Retail or Olist does), seen in an event on a
    local day before it. A user who first appears later did not exist yet: training on them, or scoring
    them at ``cutoff``, would use the future."""
    seen = (event_tiles.filter(F.col("day") < F.lit(local_midnight_date(cutoff, zone)))
            .select("user_id").distinct().withColumn("_seen", F.lit(True)))

    def apply(users: DataFrame) -> DataFrame:
        signed_up = F.col("signup_ts") < F.lit(cutoff)
        return (users.join(seen, "user_id", "left")
                .filter(signed_up | (F.col("signup_ts").isNull() & F.col("_seen").isNotNull())).drop("_seen"))
    return apply


def _days(start: date, end: date) -> Column:
    """A tile's local ``day`` in [start, end)."""
    return (F.col("day") >= F.lit(start)) & (F.col("day") < F.lit(end))


def bought_categories(items: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """``state_interactions`` tiles -> (user_id, day, category, lines): purchase lines per bought category."""
    def apply(tiles: DataFrame) -> DataFrame:
        return (tiles.filter((F.col("source") == "transaction") & (F.col("kind") == "buy"))
                .join(items.select("item_id", "category"), "item_id").filter(F.col("category").isNotNull())
                .select("user_id", "day", "category", F.col("events").alias("lines")))
    return apply


def category_vocabulary(cutoff: datetime, zone: str, limit: int, items: DataFrame
                        ) -> Callable[[DataFrame], tuple[str, ...]]:
    """``state_interactions`` tiles -> the ``limit`` categories with most purchase lines before ``cutoff``
    (ties by name): the category head's classes."""
    def apply(tiles: DataFrame) -> tuple[str, ...]:
        counts = (tiles.transform(bought_categories(items)).filter(F.col("day") < F.lit(local_midnight_date(cutoff, zone)))
                  .groupBy("category").agg(F.sum("lines").alias("lines"))
                  .orderBy(F.desc("lines"), "category").limit(limit).collect())
        return tuple(r["category"] for r in counts)
    return apply


def horizon_labels(cutoff: datetime, horizon_days: int, zone: str, categories: tuple[str, ...],
                   tier_quantiles: list[float]) -> Callable[[dict[str, DataFrame]], DataFrame]:
    """{tiles, ``users``, ``items``} -> per user: bought, churned (no activity at all), multi-hot categories
    bought, spend and its tier in the ``horizon_days`` local days from ``cutoff`` (a local midnight).

    Spend tiers: 0 no purchase, then 1/2/3 by the buyers' spend quantiles (1 for every buyer when the
    source has no amounts).
    """
    start = local_midnight_date(cutoff, zone)
    in_horizon = _days(start, start + timedelta(days=horizon_days))

    def apply(tiles: dict[str, DataFrame]) -> DataFrame:
        bought = (tiles["state_orders"].filter(in_horizon).groupBy("user_id")
                  .agg(F.coalesce(money_sum(F.col("amount_sum")), F.lit(0.0)).alias("spend"))
                  .withColumn("_bought", F.lit(True)))
        cats = (tiles["state_interactions"].filter(in_horizon).transform(bought_categories(tiles["items"]))
                .groupBy("user_id").agg(F.collect_set("category").alias("_cats")))
        active = (tiles["state_events"].filter(in_horizon).select("user_id").distinct()
                  .withColumn("_active", F.lit(True)))
        # Quantiles of the buyers' spend, within 1e-4 of rank: exact below 10,000 buyers, and a bounded sketch
        # (not every value on one executor) at a hundred million.
        cuts = bought.approxQuantile("spend", list(tier_quantiles), 1e-4)
        low, high = cuts if len(cuts) == 2 else (0.0, 0.0)
        spend = F.coalesce("spend", F.lit(0.0))
        tier = (F.when(F.col("_bought").isNull(), 0).when(spend > high, 3).when(spend > low, 2).otherwise(1))
        multi_hot = F.array(*[F.coalesce(F.array_contains("_cats", c), F.lit(False)).cast("float") for c in categories])
        return (tiles["users"].select("user_id").join(bought, "user_id", "left").join(cats, "user_id", "left")
                .join(active, "user_id", "left")
                .select("user_id", F.col("_bought").isNotNull().cast("float").alias("bought"),
                        F.col("_active").isNull().cast("float").alias("churned"),
                        multi_hot.cast("array<float>").alias("categories"),
                        tier.cast("int").alias("spend_tier"), spend.cast("double").alias("spend")))
    return apply


def holdout_flag(share: float, seed: int) -> Column:
    """Held-out users, chosen by a hash of the (pseudonymised) id, so the split is stable across runs."""
    return (F.abs(F.xxhash64(F.lit(seed), "user_id")) % 10_000) < int(share * 10_000)
