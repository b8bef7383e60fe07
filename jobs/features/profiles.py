"""Assemble the per-user feature frames into the profiles table's shape."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from conf import Config
from jobs.features.activity import activity_features, all_events
from jobs.features.affinity import affinity_features, interactions, price_band_features
from jobs.features.conversion import conversion_features, sessionize
from jobs.features.rfm import rfm_features
from jobs.features.social import social_features
from jobs.features.text_vectors import VectorLookup, interest_vectors, text_vectors
from jobs.features.time_patterns import time_pattern_features
from jobs.frames import conform
from schemas.profiles import profiles_schema


def fill_zero(columns: list[str]) -> Callable[[DataFrame], DataFrame]:
    """Counts of things that did not happen are 0, not null (only where the source was present)."""
    def apply(df: DataFrame) -> DataFrame:
        present = [c for c in columns if c in df.columns]
        return df.fillna(0, subset=present) if present else df
    return apply


def assemble_profiles(schema: StructType, as_of: datetime, updated_at: datetime,
                      features: list[DataFrame]) -> Callable[[DataFrame], DataFrame]:
    """One row per user in ``users``, left-joined with each per-user feature frame.

    A column no feature frame produced (its source table is absent) is null.
    """
    def apply(users: DataFrame) -> DataFrame:
        out = users.select("user_id", "signup_ts")
        for frame in features:
            out = out.join(frame, "user_id", "left")
        out = out.withColumn("as_of", F.lit(as_of).cast("timestamp")).withColumn(
            "updated_at", F.lit(updated_at).cast("timestamp"))
        return out.transform(conform(schema, "profiles", fill_missing=True))
    return apply


COUNT_COLUMNS = {
    "transactions": ["frequency"],  # the per-window order counts are added from the configured windows
    "browse": ["views", "clicks", "carts", "favs", "sessions"],
    "social": ["review_count", "comment_count", "like_count", "share_count", "follow_count"],
    "events": ["active_days"],
}


def build_profiles(cfg: Config, as_of: datetime, updated_at: datetime, present: set[str],
                   embeddings: DataFrame | None = None, titles: VectorLookup | None = None,
                   ) -> Callable[[dict[str, DataFrame]], DataFrame]:
    """Every feature for every clean user, in the profiles schema.

    ``present`` names the event tables that have clean rows; counts from an absent table stay null.
    With ``embeddings`` (text_sha256, embedding) and ``titles`` (item title vectors), the text and
    interest vectors are filled too.
    """
    f = cfg.features
    recent = cfg.tags.active_window_days
    zone = cfg.time.zone

    def apply(clean: dict[str, DataFrame]) -> DataFrame:
        tx, browse, social, items = clean["transactions"], clean["browse"], clean["social"], clean["items"]
        browse = browse.transform(sessionize(f.session_gap_minutes))
        events = all_events(browse, tx, social)
        weighted = interactions(f.affinity_weights, as_of, items)(browse, tx)
        features = [
            tx.transform(rfm_features(f.rfm_windows, as_of, zone)),
            weighted.transform(affinity_features(f.top_k)),
            tx.transform(price_band_features(f.price_band_quantiles, as_of, items)),
            conversion_features(as_of)(browse, tx),
            events.transform(activity_features(as_of, recent, zone)),
            events.transform(time_pattern_features(as_of, f.night_hours, zone)),
            social.transform(social_features(as_of)),
        ]
        if embeddings is not None:
            e = cfg.embedding
            features += [social.transform(text_vectors(as_of, e.text_half_life_days, e.recent_text_days, zone, embeddings)),
                         interest_vectors(e.interest_weights, as_of, titles)(browse, tx)]
        return clean["users"].transform(profiles_from_features(cfg, as_of, updated_at, present, features))
    return apply


def profiles_from_features(cfg: Config, as_of: datetime, updated_at: datetime, present: set[str],
                           features: list[DataFrame]) -> Callable[[DataFrame], DataFrame]:
    """users -> profiles: the per-user feature frames joined on, and counts of absent things set to 0."""
    f = cfg.features
    recent = cfg.tags.active_window_days
    zero = [c for table in present for c in COUNT_COLUMNS.get(table, [])] + COUNT_COLUMNS["events"]
    if "transactions" in present:
        zero += [f"orders_{w}d" for w in f.rfm_windows]
    zero.append(f"events_{recent}d")
    schema = profiles_schema(f.rfm_windows)

    def apply(users: DataFrame) -> DataFrame:
        return users.transform(assemble_profiles(schema, as_of, updated_at, features)).transform(fill_zero(zero))
    return apply
