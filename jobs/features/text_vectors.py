"""Texts to embed, and per-user vectors built from their embeddings."""
from __future__ import annotations

from datetime import date, datetime
from typing import Callable, Iterator

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.clock import local_midnight_date
from jobs.features.affinity import fixed_kind_weight
from jobs.features.common import SECONDS_PER_DAY, before, unsettled, within_days
from schemas.embeddings import TEXT_VECTORS, mean_vector_schema
from schemas.state import INTEREST_SUMMARY
from udfs.vector_batches import Columns, NullableRows, map_vector_batches

TEXT_KINDS = ("review", "comment")


def normalized_text(column: str) -> Column:
    """Strip and collapse whitespace; null when nothing is left. Mirrors ``udfs.embeddings.normalize_text``."""
    cleaned = F.trim(F.regexp_replace(F.col(column), r"\s+", " "))
    return F.when(cleaned != "", cleaned)


def text_key(column: str) -> Column:
    """The cache key of a normalised text: its SHA-256."""
    return F.sha2(F.col(column), 256)


def with_text_keys(column: str = "text") -> Callable[[DataFrame], DataFrame]:
    """Add ``norm_text`` and ``text_sha256``; rows with no usable text get nulls."""
    def apply(df: DataFrame) -> DataFrame:
        return df.withColumn("norm_text", normalized_text(column)).withColumn("text_sha256", text_key("norm_text"))
    return apply


ITEM_TEXTS = {"title": ("title",), "description": ("description",), "title_and_description": ("title", "description")}
# The catalogue column an item's photo vector is found through (``jobs.images``).
IMAGE_COLUMNS = ("image_path",)


def item_text(which: str = "title") -> Column:
    """The text an item is embedded by (``embedding.item_text``): its title, its description, or both joined."""
    return F.concat_ws(". ", *[F.col(c) for c in ITEM_TEXTS[which]])


def texts_to_embed(social: DataFrame, items: DataFrame, which: str = "title") -> DataFrame:
    """Every review, comment and item text (``item_text``), normalised and keyed: text_sha256, norm_text."""
    written = social.filter(F.col("kind").isin(*TEXT_KINDS)).select("text")
    titles = items.select(item_text(which).alias("text"))
    return (written.unionByName(titles).transform(with_text_keys())
            .filter(F.col("text_sha256").isNotNull()).select("text_sha256", "norm_text"))


def tiled_texts(social: DataFrame, texts_tile: DataFrame) -> DataFrame:
    """The ``social`` rows, of any partition, whose text a ``state_texts`` tile keys: what a step embeds again
    after the encoder changed, so that every user's text vectors fold from the new encoder's vectors alone."""
    keys = texts_tile.select("text_sha256").distinct()
    return (social.transform(with_text_keys()).join(keys, "text_sha256", "left_semi")
            .drop("norm_text", "text_sha256"))


def _weighted_sums(owners: np.ndarray, columns: np.ndarray, weights: np.ndarray, n_owners: int,
                   vectors: np.ndarray) -> np.ndarray:
    """[n_owners, dim]: per owner, the sum of ``weights[i] * vectors[columns[i]]`` over its rows (float64, or int64
    for whole-number weights and vectors).

    One sparse product instead of a Python loop per owner. Within an owner the rows are summed in the
    order given (a CSR row keeps its input order), so callers sort rows first and the result does not
    depend on how Spark delivered them.
    """
    matrix = csr_matrix((weights, (owners, columns)), shape=(n_owners, len(vectors)))
    return np.asarray(matrix @ vectors)


def _user_chunks(batches: Iterator[pd.DataFrame]) -> Iterator[tuple[pd.DataFrame, np.ndarray, np.ndarray]]:
    """A partition's rows, which Spark sorted (``user_id`` first), as chunks of whole users: each chunk's rows,
    its distinct users, and each row's index into them.

    Arrow batches arrive in the partition's order, so a user's rows are contiguous; only the last user of a
    batch may continue into the next one, and only those rows are carried over. Memory stays at one batch
    plus one user, however many users the partition holds.
    """
    carry: pd.DataFrame | None = None
    for batch in batches:
        rows = batch if carry is None else pd.concat([carry, batch], ignore_index=True)
        if not len(rows):
            continue
        last = rows["user_id"].iloc[-1]
        done = (rows["user_id"] != last).to_numpy()
        carry = rows[~done]
        if done.any():
            yield _owners(rows[done])
    if carry is not None and len(carry):
        yield _owners(carry)


def _owners(rows: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Rows with each user's contiguous, kept in Spark's order -> rows, users in that order, each row's user index.

    Read from the contiguous runs, not sorted again: Spark's sort already put the rows in the order their sums
    are added in, and sorting strings in pandas and again in ``np.unique`` cost more than the sums."""
    rows = rows.reset_index(drop=True)
    ids = rows["user_id"].to_numpy(dtype=object)
    firsts = np.r_[True, ids[1:] != ids[:-1]]
    users = ids[firsts]
    if not pd.Index(users).is_unique:
        raise ValueError("text_vectors: a user's rows arrived apart; the rows must be sorted by user_id "
                         "within each partition (_sorted_by_user) before they are added up")
    return rows, users, np.cumsum(firsts) - 1


def _sorted_by_user(df: DataFrame, order: list[str]) -> DataFrame:
    """Every user's rows in one partition, contiguous and in ``order``: what ``_user_chunks`` reads."""
    return df.repartition("user_id").sortWithinPartitions(*order)


def _text_means(half_life_days: float) -> Callable[[Iterator[pd.DataFrame]], Iterator[Columns]]:
    """pandas: a partition's (user_id, ts, text_sha256, recent, embedding) rows -> per user the recency-weighted
    mean and the mean of the recent rows (``TEXT_VECTORS``).

    Rows are partitioned by user, so every user is complete within one partition; each user's rows are
    summed in (ts, text_sha256) order. A text's weight is counted from the user's newest text, not from
    as_of: the mean is the same (the ratio of the weights is), and it does not change while as_of moves
    and the texts stay, so a daily step keeps the vectors of users who wrote nothing new.
    """
    def apply(batches: Iterator[pd.DataFrame]) -> Iterator[Columns]:
        for rows, users, owners in _user_chunks(batches):
            yield _text_means_of(rows, users, owners, half_life_days)
    return apply


TEXT_ORDER = ["user_id", "ts", "text_sha256"]


def _text_means_of(rows: pd.DataFrame, users: np.ndarray, owners: np.ndarray, half_life_days: float) -> Columns:
    """One chunk of whole users -> their rows of ``TEXT_VECTORS``."""
    vectors = np.stack(rows["embedding"].to_numpy()).astype(np.float64)
    newest = rows.groupby("user_id", sort=False)["ts"].transform("max")
    age_days = (newest - rows["ts"]).dt.total_seconds().to_numpy(dtype=np.float64) / SECONDS_PER_DAY
    weights = np.power(0.5, age_days / half_life_days)
    recent = rows["recent"].to_numpy(dtype=bool)
    at = np.arange(len(rows))
    means = (_weighted_sums(owners, at, weights, len(users), vectors)
             / np.bincount(owners, weights=weights, minlength=len(users))[:, None])
    recent_n = np.bincount(owners[recent], minlength=len(users))
    recent_sums = _weighted_sums(owners[recent], at[recent], np.ones(int(recent.sum())), len(users), vectors)
    recent_means = recent_sums / np.maximum(recent_n, 1)[:, None]
    return {"user_id": users, "text_vector": means.astype(np.float32),
            "recent_text_vector": NullableRows(recent_means.astype(np.float32), recent_n > 0)}


def written_texts(social: DataFrame) -> DataFrame:
    """user_id, dt, ts, text_sha256: one row per review or comment with a usable text (the ``state_texts`` tile)."""
    return (social.filter(F.col("kind").isin(*TEXT_KINDS)).transform(with_text_keys())
            .filter(F.col("text_sha256").isNotNull()).select("user_id", "dt", "ts", "text_sha256"))


def text_means(as_of: datetime, half_life_days: float, recent_days: int, zone: str,
               embeddings: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """``written_texts`` rows -> per user, from their reviews and comments before ``as_of``:

    - ``text_vector``: the recency-weighted mean embedding; a text written ``a`` days before the user's
      newest one weighs 0.5 ** (a / half_life_days);
    - ``recent_text_vector``: the plain mean embedding of the last ``recent_days`` local days, null when
      there are none. It is kept beside the long-memory vector because a fresh signal (a comment
      saying the user is about to buy) is one text among many there; here it is one among a few.

    ``embeddings`` has text_sha256 and embedding. Users with no embedded text get no row.
    """
    def apply(written: DataFrame) -> DataFrame:
        rows = (written.filter(before(as_of)).join(embeddings, "text_sha256")
                .select("user_id", "ts", "text_sha256", within_days(as_of, recent_days, zone).alias("recent"),
                        "embedding"))
        return rows.transform(lambda df: _sorted_by_user(df, TEXT_ORDER)).transform(
            map_vector_batches(_text_means(half_life_days), TEXT_VECTORS))
    return apply


def title_vectors(items: DataFrame, embeddings: DataFrame, which: str = "title") -> DataFrame:
    """item_id, embedding of its normalised ``item_text``: joined to interactions, never collected (10M items)."""
    return (items.withColumn("_item_text", item_text(which)).transform(with_text_keys("_item_text"))
            .join(embeddings, "text_sha256").select("item_id", "embedding"))


# Interest vectors are sums of whole numbers (``FIXED_POINT``). An (item, kind) term is the item's vector times the
# kind's fixed-point weight (``fixed_kind_weight``, the one place a weight is rounded), rounded once; a user's sum adds
# each term times its event count. So a settled summary plus the recent tiles gives the very bits that all the tiles
# give, and a daily step need not read history.
_INT64_HEADROOM = 2.0 ** 62


def _overflow_check(bound: np.ndarray, what: str) -> None:
    """Refuse sums whose bound (per user, float64) leaves no headroom in 64 bits."""
    if (bound >= _INT64_HEADROOM).any():
        raise OverflowError(f"state_interactions: {int((bound >= _INT64_HEADROOM).sum())} users' {what} overflow the "
                            f"interest vector's 64-bit fixed-point sums; cap them in validation")


def _per_user(owners: np.ndarray, *columns: np.ndarray) -> list[np.ndarray]:
    """Each of ``columns`` (rows sorted by owner) added up over each owner's contiguous rows, in owner order."""
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    return [np.add.reduceat(column, starts, axis=0) for column in columns]


def _added(rows: pd.DataFrame, users: np.ndarray, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``INTEREST_SUMMARY`` rows of whole users (``_user_chunks``) -> the users, and their sums added."""
    terms = np.stack(rows["vector_sums"].to_numpy()).astype(np.int64)
    _overflow_check(np.bincount(owners, weights=np.abs(terms).max(axis=1).astype(np.float64), minlength=len(users)),
                    "merged sums")
    return (users, *_per_user(owners, terms, rows["weight_sum"].to_numpy(dtype=np.int64)))


def _added_sums(batches: Iterator[pd.DataFrame]) -> Iterator[Columns]:
    """pandas: a partition's ``INTEREST_SUMMARY`` rows, each user's contiguous -> one per user, their sums added."""
    for chunk in _user_chunks(batches):
        users, sums, totals = _added(*chunk)
        yield {"user_id": users, "vector_sums": sums, "weight_sum": totals}


def _mean_vectors(name: str) -> Callable[[Iterator[pd.DataFrame]], Iterator[Columns]]:
    """pandas: ``INTEREST_SUMMARY`` rows, each user's contiguous -> (user_id, ``name``): per user with any weight,
    their sums added, over the weights added, as float32 (float64 arithmetic, as Spark's long / long then cast)."""
    def apply(batches: Iterator[pd.DataFrame]) -> Iterator[Columns]:
        for chunk in _user_chunks(batches):
            users, sums, totals = _added(*chunk)
            weighed = totals > 0
            means = sums[weighed].astype(np.float64) / totals[weighed].astype(np.float64)[:, None]
            yield {"user_id": users[weighed], name: means.astype(np.float32)}
    return apply


# How many tasks an item's interest rows may be spread over (by user), each with a copy of its vector.
ITEM_VECTOR_COPIES = 8


class _TaskVectors:
    """The item vectors at the head of a task's rows (``partial_item_vector_sums``), gathered as they arrive and
    looked up by the interaction rows after them."""

    def __init__(self) -> None:
        self._ids: list = []
        self._vectors: list[np.ndarray] = []
        self._index: pd.Index | None = None
        self.matrix = np.empty((0, 0), dtype=np.float32)

    def rows_with_vectors(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        """The interaction rows whose item has a vector, each with ``vector_row``: its item's row in ``matrix``."""
        for batch in batches:
            is_vector = batch["is_vector"].to_numpy(dtype=bool)
            if is_vector.any():
                if self._index is not None:
                    raise ValueError("text_vectors: an item vector arrived after rows that use it; each partition "
                                     "must hold its vectors first (partial_item_vector_sums)")
                self._ids.extend(batch["item_id"].to_numpy()[is_vector])
                self._vectors.extend(batch["embedding"].to_numpy()[is_vector])
            rows = batch[~is_vector]
            if not len(rows):
                continue
            if self._index is None:
                # An item's vector comes once per copy (ITEM_VECTOR_COPIES) that hashed to this task: keep the first.
                ids = pd.Index(self._ids)
                kept = ~ids.duplicated()
                self._index = ids[kept]
                if self._vectors:
                    self.matrix = np.stack([v for v, keep in zip(self._vectors, kept) if keep])
            at = self._index.get_indexer(rows["item_id"])
            known = at >= 0
            yield rows.loc[known, ["user_id", "fixed_weight", "events"]].assign(vector_row=at[known])


def _partial_sums(batches: Iterator[pd.DataFrame]) -> Iterator[Columns]:
    """pandas: a task's rows, the vectors of its items first (``is_vector``: item_id, embedding), then the tiles'
    (user_id, item_id, fixed_weight, events) rows on those items, each user's contiguous -> ``INTEREST_SUMMARY`` rows
    of partial sums, one per user the task saw: per user, the sums of events x rint(fixed_weight x vector) and of
    events x fixed_weight. ``merged_item_vector_sums`` adds them up. A row whose item has no vector counts for nothing.

    What crosses the shuffle to the users is a partial sum per user and task, not every (user, item) row with its
    vector: 8.8 GB for 20,000 users over 180 days, half of that full run's time. The task's rows come sorted by
    user and are added a chunk of whole users at a time (``_user_chunks``), so memory stays at a batch and the
    task's item vectors, however many users the task sees; holding every user's sums until the task ended did not
    scale (at 80,000 users a capped table of them handed on a row per user again and again: 5.4 GB of shuffle).
    Whole numbers, so how the rows are split (a user's days on one item in one row or several) moves no bit.

    A term rint(fixed_weight x vector) is the same for every user who reached that item with that weight, so a
    chunk rounds each (item, weight) pair once: the popular items' rows, most of a chunk, cost an index each."""
    task = _TaskVectors()
    for rows, users, owners in _user_chunks(task.rows_with_vectors(batches)):
        pairs = rows.groupby(["vector_row", "fixed_weight"], sort=False).ngroup().to_numpy()  # 0.. in first-seen order
        first = np.unique(pairs, return_index=True)[1]
        vectors = task.matrix[rows["vector_row"].to_numpy()[first]]
        weights = rows["fixed_weight"].to_numpy(dtype=np.int64)
        events = rows["events"].to_numpy(dtype=np.int64)
        largest = np.abs(vectors).max(axis=1).astype(np.float64)[pairs]  # per row, its item's largest |element|
        bounds = events.astype(np.float64) * weights * (largest + 1)  # no wrap
        # rint(weight x vector) in float64, in place: one (pairs x dim) temporary instead of four, and the events
        # multiplied in by the sparse product that adds each user's rows (a third of the time, the same bits).
        terms = vectors.astype(np.float64)
        terms *= weights[first][:, None]
        terms = np.rint(terms, out=terms).astype(np.int64)
        sums = _weighted_sums(owners, pairs, events, len(users), terms)
        totals, bound = _per_user(owners, weights * events, bounds)
        _overflow_check(bound, "weighted events")
        yield {"user_id": users, "vector_sums": sums, "weight_sum": totals}


def partial_item_vector_sums(weights: dict[str, float], item_vectors: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """``INTERACTION_DAY_STATE`` tiles -> ``INTEREST_SUMMARY`` rows of partial sums (``_partial_sums``), a few per
    user: what ``merged_item_vector_sums`` and the means add up. Kinds without a weight, and items without a vector,
    count for nothing.

    Each task takes a hash range of (item, copy) pairs: their vectors first, then the tile rows on them, narrow,
    sorted by user. A vector crosses from Spark to Python once per copy, not joined onto every (user, item) row; on a
    10,000-user demo warehouse the partial sums took 2.5 s this way against 6.1-7.6 s with the join. A user's rows on
    an item go to one of the item's ``ITEM_VECTOR_COPIES`` copies, by user, so a popular item's rows are that many
    tasks' work, not one's. The tile rows carry an empty vector, not a null one: Spark's Arrow writer took 5.8 s on
    the nulls of 740,000 rows against 1.9 s on empty arrays (docs/incremental-design.md, "The interest sums without
    a vector on each row")."""
    def apply(tiles: DataFrame) -> DataFrame:
        vector_type = item_vectors.schema["embedding"].dataType
        rows = (tiles.withColumn("fixed_weight", fixed_kind_weight(weights)).filter(F.col("fixed_weight") > 0)
                .select(F.lit(False).alias("is_vector"), "user_id", "item_id",
                        F.pmod(F.xxhash64("user_id"), F.lit(ITEM_VECTOR_COPIES)).alias("copy"), "fixed_weight",
                        "events", F.array().cast(vector_type).alias("embedding")))
        # Zeros, not nulls, in a vector row's counts: a null would make pandas read the batch's counts as floats.
        vectors = item_vectors.select(F.lit(True).alias("is_vector"), F.lit(None).cast("string").alias("user_id"),
                                      "item_id", F.explode(F.sequence(F.lit(0).cast("long"),
                                                                      F.lit(ITEM_VECTOR_COPIES - 1).cast("long"))
                                                           ).alias("copy"),
                                      F.lit(0).cast("long").alias("fixed_weight"), F.lit(0).cast("long").alias("events"),
                                      "embedding")
        return (vectors.unionByName(rows).repartition("item_id", "copy")
                .sortWithinPartitions(F.col("is_vector").desc(), "user_id")
                .transform(map_vector_batches(_partial_sums, INTEREST_SUMMARY)))
    return apply


def item_vector_sums(weights: dict[str, float], item_vectors: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """``INTERACTION_DAY_STATE`` tiles -> one ``INTEREST_SUMMARY`` row per user: the fixed-point sums of their
    events' weighted item vectors and of their weights (``item_vector_means``)."""
    return lambda tiles: tiles.transform(partial_item_vector_sums(weights, item_vectors)).transform(
        merged_item_vector_sums)


def merged_item_vector_sums(summaries: DataFrame) -> DataFrame:
    """``INTEREST_SUMMARY`` rows -> one per user: their sums added (whole numbers, so exact in any order)."""
    return summaries.transform(lambda df: _sorted_by_user(df, ["user_id"])).transform(
        map_vector_batches(_added_sums, INTEREST_SUMMARY))


def item_vector_means(weights: dict[str, float], as_of: datetime, zone: str, item_vectors: DataFrame, name: str,
                      settled_before: date | None = None) -> Callable[[DataFrame, DataFrame | None], DataFrame]:
    """(``INTERACTION_DAY_STATE`` tiles, ``SETTLED_INTEREST`` settled before ``settled_before``, or None: no settled
    summary) -> user_id, ``name``: the mean of the vectors of the items a user interacted with before ``as_of``,
    each event weighted by its kind (browse events by type, purchases as ``buy``).

    ``item_vectors`` has item_id and embedding: ``title_vectors`` for ``interest_vector``, the image stage's photo
    vectors for ``image_interest_vector``. With a settled summary, the tiles read are those from ``settled_before``
    on; the sums are exact (``FIXED_POINT``), so where the boundary lies moves no bit.
    """
    today = local_midnight_date(as_of, zone)

    def apply(tiles: DataFrame, settled: DataFrame | None) -> DataFrame:
        partials = partial_item_vector_sums(weights, item_vectors)
        if settled is None:
            sums = tiles.filter(F.col("day") < F.lit(today)).transform(partials)
        else:
            recent = tiles.transform(unsettled(as_of, zone, settled_before)).transform(partials)
            sums = settled.select(*INTEREST_SUMMARY.fieldNames()).unionByName(recent)
        # Added and divided in numpy, a user's rows at a time: Spark's array lambdas (``aggregate`` over
        # ``zip_with``, ``transform``) box every element; they took a fifth of a 20,000-user step's settling.
        return sums.transform(lambda df: _sorted_by_user(df, ["user_id"])).transform(
            map_vector_batches(_mean_vectors(name), mean_vector_schema(name)))
    return apply
