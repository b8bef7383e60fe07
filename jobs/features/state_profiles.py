"""The daily tiles as tables: built from clean rows, updated by partition, folded into profiles.

The full job writes every tile table from all clean rows; the incremental job rebuilds only the
partitions it reads and replaces them (``updated_state``). Both fold profiles from the tiles with the
same families (``profiles_from_state``); the incremental job folds only the users a step touched
(``refreshed_profiles``), and ``tests/test_incremental.py`` checks that it equals a full recompute.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import reduce
from operator import or_
from typing import Callable, Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from conf import Config
from jobs.clock import local_day, local_midnight_date
from jobs.features.activity import (activity_from_state, all_events, event_day_state, event_summaries,
                                    merged_event_summaries)
from jobs.features.affinity import (AFFINITY_FACETS, affinity_from_state, affinity_weights, interaction_day_state,
                                    merged_affinity, price_day_state, price_from_state, price_lines)
from jobs.features.common import days_between, first_partition, from_partition
from jobs.features.conversion import (SessionRule, browse_day_state, closed_sessions, conversion_from_state,
                                      merged_session_summaries, session_summaries)
from jobs.features.intent import (intent_counts, intent_recency, intent_summaries, last_intent_times,
                                  merged_intent_summaries)
from jobs.features.profiles import profiles_from_features
from jobs.features.rfm import order_day_state, order_totals, rfm_from_state
from jobs.features.social import social_day_state, social_from_state, social_totals
from jobs.features.state import Close, Summarize, crossed, replace_partitions, resettled, settled, spanned
from jobs.features.text_vectors import (IMAGE_COLUMNS, ITEM_TEXTS, item_vector_means, item_vector_sums, merged_item_vector_sums,
                                        text_means, written_texts)
from jobs.features.time_patterns import time_patterns_from_state
from schemas.state import INTEREST_SUMMARY

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


def day_states(clean: dict[str, DataFrame], zone: str) -> dict[str, DataFrame]:
    """Every state table's rows for the partitions in ``clean`` (clean rows, browse not yet sessionised);
    a row's ``day`` is its local date in ``zone``."""
    tx, browse, social = clean["transactions"], clean["browse"], clean["social"]
    return {
        "state_orders": tx.transform(order_day_state(zone)),
        "state_prices": tx.transform(price_day_state(zone)),
        "state_browse": browse.transform(browse_day_state(zone)),
        "state_social": social.transform(social_day_state(zone)),
        "state_texts": written_texts(social),
        "state_events": all_events(browse, tx, social).transform(event_day_state(zone)),
        "state_interactions": interaction_day_state(browse, tx, zone),
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


@dataclass(frozen=True)
class EventsSeen:
    """What a run needs of ``state_events`` before it folds anything."""

    latest: datetime | None  # the latest event time: as_of is the local midnight after it
    sources: set[str]  # the event tables with at least one clean row


def events_seen(events_state: DataFrame, lead: int, since: date | None = None) -> EventsSeen:
    """The latest event and the sources present, in one aggregate over ``state_events`` (a row per source).

    With ``since`` (a local date, the profiles' as_of's in a step): over the partitions that can hold a day from it
    on (``from_partition``), when one does; every earlier partition holds only days before it. A source missing there
    is looked for in every partition, one row's worth (``take``: Spark stops at the first files that hold one). All
    the partitions otherwise (a full run; a step of late data alone).
    """
    def per_source(tiles: DataFrame) -> dict[str, tuple[datetime, date]]:
        rows = tiles.groupBy("source").agg(F.max("last_ts"), F.max("day")).collect()  # at most one per event table
        return {source: (latest, day) for source, latest, day in rows}

    if since is not None:
        recent = per_source(events_state.filter(from_partition(since, lead)))
        if recent and max(day for _, day in recent.values()) >= since:
            present = {t for t, source in SOURCE_OF.items()
                       if source in recent or events_state.filter(F.col("source") == source).take(1)}
            return EventsSeen(max(latest for latest, _ in recent.values()), present)
    every = per_source(events_state)
    return EventsSeen(max((latest for latest, _ in every.values()), default=None),
                      {t for t, source in SOURCE_OF.items() if source in every})


@dataclass(frozen=True)
class Family:
    """Profile columns folded from the same state tables.

    A user's columns change only when their rows in ``tables`` change, or when as_of moves past one of
    their rows, or past a row's day plus one of the ``windows`` (days): a window's edge. Columns counted
    from as_of itself (recency) change every day; ``slide`` recomputes those from the columns kept.
    """

    name: str
    tables: tuple[str, ...]
    fold: Callable[[dict[str, DataFrame]], DataFrame]
    windows: tuple[int, ...] = ()
    slide: Callable[[DataFrame], DataFrame] | None = None
    # Catalogue columns the fold reads through its rows' item_id: a change moves the users with rows on that item.
    item_columns: tuple[str, ...] = ()
    # Catalogue columns the fold reads over every item (the price bands' quantiles): a change moves everyone.
    catalogue_columns: tuple[str, ...] = ()
    # Settled tables (``SETTLED_TABLES``: one row per user) the fold reads beside the recent tiles of ``tables``.
    summaries: tuple[str, ...] = ()


@dataclass(frozen=True)
class CatalogueChange:
    """The clean ``items`` rows the profiles were folded with (``then``), and those a step reads (``now``)."""

    then: DataFrame
    now: DataFrame

    def came_or_went(self) -> DataFrame:
        """item_id of every item clean in one and not the other: rows that reference it change validity."""
        now, then = self.now.select("item_id"), self.then.select("item_id")
        return now.exceptAll(then).unionByName(then.exceptAll(now)).distinct()

    def changed_in(self, columns: tuple[str, ...]) -> DataFrame:
        """item_id of every item clean in both whose ``columns`` differ."""
        then = self.then.select("item_id", *[F.col(c).alias(f"_then_{c}") for c in columns])
        differs = reduce(or_, [~F.col(c).eqNullSafe(F.col(f"_then_{c}")) for c in columns])
        return self.now.select("item_id", *columns).join(then, "item_id").filter(differs).select("item_id").distinct()

    def differs_in(self, columns: tuple[str, ...]) -> bool:
        """Whether ``columns`` over the whole clean catalogue differ (an item coming or going counts)."""
        now, then = self.now.select("item_id", *columns), self.then.select("item_id", *columns)
        return bool(now.exceptAll(then).limit(1).count() or then.exceptAll(now).limit(1).count())


def recency(as_of: datetime, column: str, since: str) -> Callable[[DataFrame], DataFrame]:
    """Set ``column`` to the days from ``since`` to as_of, as the folds compute it."""
    return lambda df: df.withColumn(column, days_between(as_of, F.col(since)))


@dataclass(frozen=True)
class Vectors:
    """What the folds join to tiles by key: text vectors (text_sha256, embedding), and the items' title and
    photo vectors (item_id, embedding). None where that modality is off."""

    texts: DataFrame | None = None
    titles: DataFrame | None = None
    images: DataFrame | None = None


NO_VECTORS = Vectors()


@dataclass(frozen=True)
class SettledTable:
    """A ``SETTLED_TABLES`` table: the summaries (``summarize``, merged by ``merge``) of a tile table's partitions
    before ``settled_before``, so none of their days is in any window. ``item_columns``: the catalogue columns a
    summary reads through its rows' item_id; a change settles the users with rows on that item again.

    ``adds``: ``merge`` only adds (set unions, whole-number sums, min and max), so the table can take a step's
    crossing summaries as more rows of the same users (``crossed``), merged when the folds read it. A table that
    closes its rows at the boundary (``close``: open sessions) cannot: the rows must be rewritten merged."""

    tiles: str
    summarize: Summarize
    merge: Summarize
    item_columns: tuple[str, ...] = ()
    close: Close | None = None
    adds: bool = False

    def __post_init__(self) -> None:
        if self.adds and self.close is not None:
            raise ValueError(f"settled {self.tiles} summaries cannot both add and close at the boundary")


def no_summaries(schema: StructType) -> Summarize:
    """A summary of nothing: the settled table of a family that is off (its table exists, with no rows)."""
    return lambda tiles: tiles.sparkSession.createDataFrame([], schema)


def settled_of(cfg: Config, items: DataFrame | None, vectors: Vectors) -> dict[str, SettledTable]:
    """Every settled table, with the summaries of ``cfg``'s settings: affinity's read the clean ``items``' categories
    and brands, the interest sums the items' title vectors (``vectors``). (None: the tables are wanted, not their
    summaries.)"""
    f, e = cfg.features, cfg.embedding
    sessions = session_rule(cfg)

    def interest(item_vectors: DataFrame | None) -> Summarize:
        return (item_vector_sums(e.interest_weights, item_vectors) if item_vectors is not None
                else no_summaries(INTEREST_SUMMARY))
    return {
        "settled_events": SettledTable("state_events", event_summaries, merged_event_summaries, adds=True),
        "settled_browse": SettledTable("state_browse", intent_summaries, merged_intent_summaries, adds=True),
        "settled_sessions": SettledTable("state_browse", session_summaries(sessions), merged_session_summaries(sessions),
                                         close=closed_sessions(sessions, cfg.validation.max_days_after_partition,
                                                               cfg.time.zone)),
        "settled_orders": SettledTable("state_orders", order_totals, order_totals, adds=True),
        "settled_social": SettledTable("state_social", social_totals, social_totals, adds=True),
        "settled_interest": SettledTable("state_interactions", interest(vectors.titles), merged_item_vector_sums,
                                         item_columns=ITEM_TEXTS[e.item_text], adds=True),
        "settled_image_interest": SettledTable("state_interactions", interest(vectors.images), merged_item_vector_sums,
                                               item_columns=IMAGE_COLUMNS, adds=True),
        "settled_affinity": SettledTable("state_interactions", affinity_weights(f.affinity_weights, items),
                                         merged_affinity, item_columns=AFFINITY_FACETS, adds=True),
        "settled_prices": SettledTable("state_prices", price_lines, price_lines, adds=True),
    }


def session_rule(cfg: Config) -> SessionRule:
    return SessionRule(cfg.features.session_gap_minutes, cfg.features.session_id_idle_hours)


def settled_window(cfg: Config, table: str) -> int:
    """The longest window (days) of the folds that read ``table`` (a settled table); 0: none."""
    return {"settled_events": cfg.tags.active_window_days,  # activity's events_{n}d
            "settled_orders": max(cfg.features.rfm_windows)}.get(table, 0)


def settled_before(cfg: Config, as_of: datetime, table: str) -> date:
    """The partition ``table`` (a settled table) holds the tiles before, as of ``as_of``: the first that can hold a
    day of its window."""
    today = local_midnight_date(as_of, cfg.time.zone)
    return first_partition(today - timedelta(days=settled_window(cfg, table)), cfg.validation.max_days_after_partition)


Settle = bool | frozenset[str]  # the settled tables a fold reads: all (True), none (False), or those named


def settles(settle: Settle, table: str) -> bool:
    """Whether a fold with ``settle`` reads ``table`` (a settled table) rather than every tile under it."""
    return settle is True or (not isinstance(settle, bool) and table in settle)


def settled_tables(cfg: Config, as_of: datetime, vectors: Vectors, settle: bool = True,
                   spans: Sequence[datetime] = ()) -> Callable[[dict[str, DataFrame]], dict[str, DataFrame]]:
    """{tile table: frame, and the clean ``items``} -> every settled table as of ``as_of``, settled from all the
    tiles: what the full job writes. ``vectors``: those the profiles are then folded with. ``settle`` False: every
    table empty, for a fold that reads every tile (``profiles_from_state``).

    ``spans``: earlier dates that folds will also read these tables at (the model's snapshots). A table whose
    summaries only add (``SettledTable.adds``) is then written as the summaries of the spans between those dates'
    boundaries, each row marked with its span's end, as if steps had appended them (``spanned``): a fold at as_of
    merges them all, one at an earlier date those up to its boundary (``spanned_tables``). Each tile is summarised
    once for every fold, instead of once per fold."""
    def apply(tiles: dict[str, DataFrame]) -> dict[str, DataFrame]:
        found = {}
        for name, t in settled_of(cfg, tiles["items"], vectors).items():
            before = fold_boundary(cfg, as_of, name, settle)
            if before is None or not t.adds or not spans:
                found[name] = tiles[t.tiles].transform(settled(before, t.summarize, t.close))
                continue
            edges = sorted(e for e in {settled_before(cfg, d, name) for d in spans} if e < before)
            found[name] = tiles[t.tiles].transform(spanned(edges, before, t.summarize))
        return found
    return apply


def spanned_tables(cfg: Config) -> frozenset[str]:
    """The settled tables ``settled_tables`` splits at its ``spans``: a fold at one of those dates reads them."""
    return frozenset(name for name, t in settled_of(cfg, None, NO_VECTORS).items() if t.adds)


def fold_boundary(cfg: Config, as_of: datetime, table: str, settle: Settle) -> date | None:
    """The partition ``table`` (a settled table) is settled before for a fold as of ``as_of`` (``settled_before``),
    or None when the fold settles nothing there and reads every tile."""
    return settled_before(cfg, as_of, table) if settles(settle, table) else None


def moved_settled_tables(cfg: Config, as_of: datetime, vectors: Vectors, old: dict[str, DataFrame],
                         old_before: dict[str, date | None], tiles: dict[str, DataFrame], before: dict[str, DataFrame],
                         rewritten: dict[str, list[date]], catalogue: CatalogueChange | None = None
                         ) -> tuple[dict[str, DataFrame], set[str]]:
    """Every settled table moved from ``old`` (settled before ``old_before``) to ``as_of``, as the folds read it:
    equal to ``settled_tables`` over ``tiles``, the tile tables after the step, with the clean ``items``; ``before``:
    as the step found them; ``rewritten``: the partitions the step rewrote in each; ``catalogue``: the items' change,
    if any (users with settled rows on an item whose ``item_columns`` changed are settled again).

    Returns the rows of each table, and the names of those whose rows are to be appended, not written whole: the
    summaries of the partitions that crossed the boundary (``crossed``). A table takes an append when its merge only
    adds (``SettledTable.adds``), no user's rows are settled again, and the boundary crosses no compaction day
    (``compacts``). Otherwise it is rewritten, merged to a row per user (``resettled``). So a day costs what the
    day's crossing tiles cost, not a rewrite of every user's summaries."""
    moved, appended = {}, set()
    for name, t in settled_of(cfg, tiles["items"], vectors).items():
        was, now = old_before[name], settled_before(cfg, as_of, name)
        users = settled_again(tiles[t.tiles], before[t.tiles], rewritten[t.tiles], was, t.item_columns, catalogue)
        if (t.adds and users is None and was is not None and was <= now
                and not compacts(was, now, cfg.warehouse.settled_compaction_days)):
            moved[name] = crossed(tiles[t.tiles], was, now, t.summarize)
            appended.add(name)
        else:
            moved[name] = resettled(old[name], was, tiles[t.tiles], users, now, t.summarize, t.merge, t.close)
    return moved, appended


def compacts(was: date, now: date, every: int) -> bool:
    """Whether moving a settled boundary from ``was`` to ``now`` rewrites the table whole rather than appending: the
    days it crosses include one whose ordinal is a multiple of ``every`` (``warehouse.settled_compaction_days``).

    From one compaction to the next the boundary crosses at most ``every`` days, so a table holds at most ``every``
    rows per user (and key), however many days the steps skip; and every warehouse compacts on the same dates."""
    return any((was + timedelta(days=i)).toordinal() % every == 0 for i in range((now - was).days))


def settled_again(tiles: DataFrame, tiles_before: DataFrame, rewritten: list[date], was: date | None,
                  item_columns: tuple[str, ...], catalogue: CatalogueChange | None) -> DataFrame | None:
    """user_id of every user whose rows in a table settled before ``was`` are settled again from all their ``tiles``
    (``resettled``'s ``changed``): those with tiles, as the step found them (``tiles_before``) or left them, in a
    rewritten partition before ``was``, and those with tiles before it on an item whose ``item_columns`` changed.
    None when there can be none: no partition before ``was`` was rewritten, and no such column changed."""
    if was is None:
        return None
    again = [dt for dt in rewritten if dt < was]
    changed = [df.filter(F.col("dt").isin(again)) for df in (tiles, tiles_before)] if again else []
    if catalogue is not None and item_columns:
        changed.append(tiles.filter(F.col("dt") < F.lit(was)).join(catalogue.changed_in(item_columns), "item_id",
                                                                   "left_semi"))
    return reduce(DataFrame.unionByName, [df.select("user_id") for df in changed]).distinct() if changed else None


def photo_tiles(cfg: Config, as_of: datetime, was: date | None, tiles: DataFrame, tiles_before: DataFrame,
                rewritten: list[date], catalogue: CatalogueChange | None = None) -> DataFrame:
    """The ``state_interactions`` tiles whose items' photo vectors a step reads, ``settled_image_interest`` having
    been settled before ``was`` (None: not settled alike, so all): the partitions from ``was`` on (the ones it
    settles now, and those the fold reads), and every tile of the users it settles again (``settled_again``).

    So the image stage hashes the photos of the items the day's events reach, not those of every item anyone ever
    touched; the others' vectors are in the settled sums already."""
    if was is None or was > settled_before(cfg, as_of, "settled_image_interest"):
        return tiles
    users = settled_again(tiles, tiles_before, rewritten, was, IMAGE_COLUMNS, catalogue)
    recent = tiles.filter(F.col("dt") >= F.lit(was))
    return recent if users is None else recent.unionByName(tiles.join(users, "user_id", "left_semi"))


def feature_families(cfg: Config, as_of: datetime, items: DataFrame, vectors: Vectors = NO_VECTORS,
                     settle: Settle = True) -> list[Family]:
    """Every family of profile columns, each folded from its state tables (and settled tables) as of ``as_of``;
    ``settle`` False: from every tile, beside empty settled tables; a set: from those settled tables only."""
    f, e, zone = cfg.features, cfg.embedding, cfg.time.zone
    recent = cfg.tags.active_window_days
    lead = cfg.validation.max_days_after_partition
    (events_from, browse_from, sessions_from, orders_from, social_from, interest_from, affinity_from, image_from,
     prices_from) = (fold_boundary(cfg, as_of, t, settle) for t in (
         "settled_events", "settled_browse", "settled_sessions", "settled_orders", "settled_social", "settled_interest",
         "settled_affinity", "settled_image_interest", "settled_prices"))

    families = [
        Family("rfm", ("state_orders",),
               lambda s: rfm_from_state(f.rfm_windows, as_of, zone, orders_from)(s["state_orders"], s["settled_orders"]),
               tuple(f.rfm_windows), slide=recency(as_of, "recency_days", "last_order_ts"), summaries=("settled_orders",)),
        Family("affinity", ("state_interactions",),
               lambda s: affinity_from_state(f.affinity_weights, f.top_k, as_of, zone, items, affinity_from)(
                   s["state_interactions"], s["settled_affinity"]),
               item_columns=AFFINITY_FACETS, summaries=("settled_affinity",)),
        Family("price", ("state_prices",),
               lambda s: price_from_state(f.price_band_quantiles, as_of, zone, items, prices_from)(
                   s["state_prices"], s["settled_prices"]),
               catalogue_columns=("price",), summaries=("settled_prices",)),
        Family("conversion", ("state_browse", "state_orders"),
               lambda s: conversion_from_state(as_of, session_rule(cfg), zone, sessions_from, orders_from)(
                   s["state_browse"], s["settled_sessions"], s["state_orders"], s["settled_orders"]),
               summaries=("settled_sessions", "settled_orders")),
        Family("activity", ("state_events",),
               lambda s: activity_from_state(as_of, recent, zone, events_from)(s["state_events"], s["settled_events"]),
               (recent,), slide=recency(as_of, "days_since_last_event", "last_event_ts"), summaries=("settled_events",)),
        Family("time_patterns", ("state_events",),
               lambda s: time_patterns_from_state(as_of, f.night_hours, zone, events_from)(s["state_events"],
                                                                                           s["settled_events"]),
               summaries=("settled_events",)),
        Family("social", ("state_social",),
               lambda s: social_from_state(as_of, zone, social_from)(s["state_social"], s["settled_social"]),
               summaries=("settled_social",)),
        Family("intent", ("state_interactions",),
               lambda s: s["state_interactions"].transform(intent_counts(f.short_windows, as_of, zone, lead)),
               tuple(f.short_windows)),
        Family("intent_recency", ("state_browse",),
               lambda s: last_intent_times(as_of, zone, browse_from)(s["state_browse"], s["settled_browse"]),
               slide=intent_recency(as_of), summaries=("settled_browse",)),
    ]
    if vectors.texts is not None:
        families += [
            Family("text", ("state_texts",), lambda s: s["state_texts"].transform(
                text_means(as_of, e.text_half_life_days, e.recent_text_days, zone, vectors.texts)), (e.recent_text_days,)),
            Family("interest", ("state_interactions",),
                   lambda s: item_vector_means(e.interest_weights, as_of, zone, vectors.titles, "interest_vector",
                                               interest_from)(s["state_interactions"], s["settled_interest"]),
                   item_columns=ITEM_TEXTS[e.item_text], summaries=("settled_interest",)),
        ]
    if vectors.images is not None:
        # The same interactions and weights as interest_vector, over the items' photos.
        families.append(Family("image_interest", ("state_interactions",),
                               lambda s: item_vector_means(e.interest_weights, as_of, zone, vectors.images,
                                                           "image_interest_vector", image_from)(
                                   s["state_interactions"], s["settled_image_interest"]),
                               item_columns=IMAGE_COLUMNS, summaries=("settled_image_interest",)))
    return families


def fold_key(cfg: Config, present: set[str]) -> str:
    """What profile columns are folded with: the time zone, the feature, embedding, image and tag settings, the
    filing bound, and the tables present.

    A step keeps an untouched user's columns only from profiles folded with the same key.
    """
    settings = {"time": cfg.time.model_dump(mode="json"), "features": cfg.features.model_dump(mode="json"),
                "embedding": cfg.embedding.model_dump(mode="json"), "images": cfg.images.model_dump(mode="json"),
                "tags": cfg.tags.model_dump(mode="json"), "present": sorted(present),
                # The filing bound places the settled boundaries and the windows' first partitions.
                "max_days_after_partition": cfg.validation.max_days_after_partition}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def profiles_from_state(cfg: Config, as_of: datetime, updated_at: datetime, present: set[str],
                        vectors: Vectors = NO_VECTORS, settle: Settle = True
                        ) -> Callable[[dict[str, DataFrame]], DataFrame]:
    """{tile table: frame, settled table: frame (``settled_tables`` as of ``as_of``), plus clean ``users`` and ``items``}
    -> profiles: every family folded for every user.

    ``settle`` False: folded from every tile, with nothing settled (no settled table needed): for a date whose
    settled tables nobody keeps (the backtest's origins). Settling there would summarise the same tiles only for
    the folds to merge the summaries again: the training snapshot of a 10,000-user demo took 0.75 of the time this
    way, with the same rows. A set of settled tables: those, as written with ``as_of`` among their ``spans``
    (``settled_tables``; their rows up to as_of's boundary are read), and every tile for the others: the model's
    snapshots in the full job, which summarises each tile once for all its folds."""
    def apply(state: dict[str, DataFrame]) -> DataFrame:
        if settle is not True:
            empty = settled_tables(cfg, as_of, vectors, settle=False)(state)
            state = {**state, **{name: state[name].filter(F.col("settled_before") <= F.lit(
                settled_before(cfg, as_of, name))) if settles(settle, name) else rows for name, rows in empty.items()}}
        families = feature_families(cfg, as_of, state["items"], vectors, settle)
        features = [family.fold(state) for family in families]
        return state["users"].transform(profiles_from_features(cfg, as_of, updated_at, present, features))
    return apply


def crossing_rows(family: Family, was: datetime, now: datetime, zone: str, lead: int
                  ) -> Callable[[DataFrame], DataFrame]:
    """A state table -> its rows whose (local) day as_of moved past, or past by one of the family's windows.

    Found in the partitions from the longest window's edge on (``from_partition``), not in all history."""
    low, high = sorted((local_midnight_date(was, zone), local_midnight_date(now, zone)))

    def apply(state: DataFrame) -> DataFrame:
        day = F.col("day") if "day" in state.columns else local_day("ts", zone)
        windows = (0, *family.windows)
        edges = [(day >= F.lit(low - timedelta(days=w))) & (day < F.lit(high - timedelta(days=w))) for w in windows]
        return state.filter(from_partition(low - timedelta(days=max(windows)), lead) & reduce(or_, edges))
    return apply


def touched_users(family: Family, state: dict[str, DataFrame], before: dict[str, DataFrame],
                  rewritten: dict[str, list[date]], was: datetime, now: datetime, zone: str, lead: int,
                  catalogue: CatalogueChange | None = None) -> DataFrame:
    """user_id of every user whose ``family`` columns may differ from their profile as of ``was``.

    Those with rows in a partition the step rewrote, before (``before``: the state the step started
    from) or after, and those with rows as_of moved past (``crossing_rows``). When the catalogue
    changed: those with rows on an item whose ``item_columns`` changed, and everyone with rows if the
    ``catalogue_columns`` changed.
    """
    items = catalogue.changed_in(family.item_columns) if catalogue is not None and family.item_columns else None
    everyone = bool(catalogue is not None and family.catalogue_columns
                    and catalogue.differs_in(family.catalogue_columns))
    found = []
    for table in family.tables:
        in_rewritten = F.col("dt").isin(rewritten.get(table, []))
        found += [state[table].filter(in_rewritten), before[table].filter(in_rewritten),
                  state[table].transform(crossing_rows(family, was, now, zone, lead))]
        if items is not None:
            found.append(state[table].join(items, "item_id", "left_semi"))
        if everyone:
            found.append(state[table])
    return reduce(DataFrame.unionByName, [df.select("user_id") for df in found]).distinct()


def _as_in(folded: DataFrame, old: DataFrame, column: str) -> F.Column:
    """``old``'s column with ``folded``'s type (the profiles schema may store it wider); nullability aside."""
    want = folded.schema[column].dataType
    return F.col(column) if old.schema[column].dataType.simpleString() == want.simpleString() else \
        F.col(column).cast(want)


def refolded_users(families: list[Family], touched: Callable[[Family], DataFrame], users: DataFrame,
                   old: DataFrame) -> DataFrame:
    """(family, user_id) for every user each family folds again: its ``touched`` users, and every user not in
    ``old`` (new sign-ups), in one frame.

    One frame, so that a step finds every family's users in one job and keeps them in one checkpoint that
    the job releases, rather than a checkpoint and a count per family, held to the end of the session
    (a 2,000-user step ran 179 Spark jobs instead of 236). Families on the same tables and windows find the
    same users; the incremental job's ``touched`` builds that frame once for them.
    """
    names = users.sparkSession.createDataFrame([(f.name,) for f in families], "family string")
    unknown = users.select("user_id").join(old.select("user_id"), "user_id", "left_anti").crossJoin(names)
    found = [touched(f).select(F.lit(f.name).alias("family"), "user_id") for f in families]
    return reduce(DataFrame.unionByName, found, unknown.select("family", "user_id")).distinct()


def refreshed_profiles(cfg: Config, as_of: datetime, updated_at: datetime, present: set[str],
                       old: DataFrame, refolded: DataFrame, families: list[Family],
                       ) -> Callable[[dict[str, DataFrame]], DataFrame]:
    """Like ``profiles_from_state``, folding each of ``families`` (``feature_families`` as of ``as_of``, the ones
    ``refolded`` was found for) only for its ``refolded`` users (``refolded_users``).

    Every other user keeps their columns from ``old`` (the profiles as of an earlier date, folded with
    the same configuration and present tables), with ``slide`` applied.
    """
    def apply(state: dict[str, DataFrame]) -> DataFrame:
        features = []
        for family in families:
            users = refolded.filter(F.col("family") == F.lit(family.name)).select("user_id")
            mine = (*family.tables, *family.summaries)
            folded = family.fold({**state, **{t: state[t].join(users, "user_id", "left_semi") for t in mine}})
            columns = [c for c in folded.columns if c != "user_id"]
            kept = old.join(users, "user_id", "left_anti").select("user_id", *[_as_in(folded, old, c) for c in columns])
            if family.slide is not None:
                kept = kept.transform(family.slide).select("user_id", *columns)
            features.append(folded.unionByName(kept))
        return state["users"].transform(profiles_from_features(cfg, as_of, updated_at, present, features))
    return apply
