"""The incremental job's feature state as tables: built from clean rows, updated by partition, folded into profiles.

The full job writes every state table from all clean rows; the incremental job rebuilds only the
partitions it reads and replaces them (``updated_state``); both read profiles back with the same
fold (``profiles_from_state``), whose columns equal the full job's ``build_profiles`` (see
``tests/test_incremental.py``).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from conf import Config
from jobs.features.activity import all_events
from jobs.features.affinity import affinity_features
from jobs.features.profiles import profiles_from_features
from jobs.features.state import (activity_from_state, browse_day_state, conversion_from_state, event_day_state,
                                 interaction_day_state, interactions_from_state, order_day_state, price_day_state,
                                 price_from_state, replace_partitions, rfm_from_state, social_day_state,
                                 social_from_state, time_patterns_from_state)
from jobs.features.text_vectors import VectorLookup, text_means, weighted_title_means, written_texts

# The value of a state row's ``source`` for each input table (the event-wide families keep it).
SOURCE_OF = {"transactions": "transaction", "browse": "browse", "social": "social"}
EVENT_TABLES = tuple(SOURCE_OF)


# The input tables each state table's rows come from (its schema is in ``schemas.STATE_TABLES``).
STATE_SOURCES: dict[str, tuple[str, ...]] = {
    "state_orders": ("transactions",),
    "state_prices": ("transactions",),
    "state_browse": ("browse",),
    "state_social": ("social",),
    "state_texts": ("social",),
    "state_events": ("transactions", "browse", "social"),
    "state_interactions": ("transactions", "browse"),
}


def partition_keys(table: str) -> tuple[str, ...]:
    """What one input partition's rows in a state table are found by: (source, dt) where several tables feed it."""
    return ("source", "dt") if len(STATE_SOURCES[table]) > 1 else ("dt",)


def day_states(clean: dict[str, DataFrame]) -> dict[str, DataFrame]:
    """Every state table's rows for the partitions in ``clean`` (clean rows, browse not yet sessionised)."""
    tx, browse, social = clean["transactions"], clean["browse"], clean["social"]
    return {
        "state_orders": tx.transform(order_day_state()),
        "state_prices": tx.transform(price_day_state()),
        "state_browse": browse.transform(browse_day_state()),
        "state_social": social.transform(social_day_state()),
        "state_texts": written_texts(social),
        "state_events": all_events(browse, tx, social).transform(event_day_state()),
        "state_interactions": interaction_day_state(browse, tx),
    }


def rewritten_partitions(table: str, partitions: dict[str, list[date]]) -> list[date]:
    """The ``dt`` partitions of a state table that a step rewrites: every one its input tables had read."""
    return sorted({dt for t in STATE_SOURCES[table] for dt in partitions.get(t, [])})


def updated_state(table: str, fresh: DataFrame, partitions: dict[str, list[date]]
                  ) -> Callable[[DataFrame], DataFrame]:
    """old state -> the new rows of its ``rewritten_partitions``: ``fresh`` replaces what was read
    (``partitions``: input table -> dts), and another source's rows in the same ``dt`` stay.

    A partition read that has no clean rows left (all quarantined, or erased) loses its old rows too.
    """
    def apply(old: DataFrame) -> DataFrame:
        rows = [(SOURCE_OF[t], dt) for t in STATE_SOURCES[table] for dt in partitions.get(t, [])]
        replaced = old.sparkSession.createDataFrame(rows, "source string, dt date").select(*partition_keys(table))
        rewritten = old.filter(F.col("dt").isin(rewritten_partitions(table, partitions)))
        return rewritten.transform(replace_partitions(fresh, partition_keys(table), replaced))
    return apply


def present_sources(events_state: DataFrame) -> set[str]:
    """The event tables with at least one clean row, from ``state_events``."""
    table_of = {v: k for k, v in SOURCE_OF.items()}
    return {table_of[r[0]] for r in events_state.select("source").distinct().collect()}


def latest_event(events_state: DataFrame) -> datetime | None:
    return events_state.agg(F.max("last_ts")).first()[0]


def profiles_from_state(cfg: Config, as_of: datetime, updated_at: datetime, present: set[str],
                        embeddings: DataFrame | None = None, titles: VectorLookup | None = None,
                        ) -> Callable[[dict[str, DataFrame]], DataFrame]:
    """{state table: frame, plus clean ``users`` and ``items``} -> profiles, as ``build_profiles`` gives them."""
    f = cfg.features
    recent = cfg.tags.active_window_days

    def apply(state: dict[str, DataFrame]) -> DataFrame:
        items, events = state["items"], state["state_events"]
        weighted = state["state_interactions"].transform(interactions_from_state(f.affinity_weights, as_of, items))
        features = [
            state["state_orders"].transform(rfm_from_state(f.rfm_windows, as_of)),
            weighted.transform(affinity_features(f.top_k)),
            state["state_prices"].transform(price_from_state(f.price_band_quantiles, as_of, items)),
            conversion_from_state(as_of, f.session_gap_minutes)(state["state_browse"], state["state_orders"]),
            events.transform(activity_from_state(as_of, recent)),
            events.transform(time_patterns_from_state(as_of, f.night_hours)),
            state["state_social"].transform(social_from_state(as_of)),
        ]
        if embeddings is not None:
            e = cfg.embedding
            features.append(state["state_texts"].transform(
                text_means(as_of, e.text_half_life_days, e.recent_text_days, embeddings)))
            features.append(state["state_interactions"].transform(
                interactions_from_state(e.interest_weights, as_of, items)).transform(weighted_title_means(titles)))
        return state["users"].transform(profiles_from_features(cfg, as_of, updated_at, present, features))
    return apply
