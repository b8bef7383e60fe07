"""Sessions, browse events, purchases and social activity, driven by each user's archetype."""
from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.generator.catalogue import N_CATEGORIES, item_id, items_per_category
from jobs.generator.random import pick, uniform
from jobs.generator.vocabulary import (BRAND_STEMS, CATEGORIES, INTENT_PHRASES, OPENERS, QUESTIONS, STOCK_PHRASES,
                                      VERDICTS)

USER_COLUMNS = ["user_id", "pref_categories", "price_preference", "events_per_session", "cart_prob", "buy_prob",
                "review_prob", "positive_prob", "brand_loyal", "fav_brand", "intent_day"]
INTENT_DAYS = 7           # how long an intent episode lifts the chance to buy
INTENT_LIFT = 5.0         # the episode multiplies the per-session buy probability ...
INTENT_MAX_BUY_PROB = 0.9  # ... up to this


def sessions(users: DataFrame, days: int, start: date, seed: int) -> DataFrame:
    """One row per session: user, day, start time and the session's category."""
    day_grid = users.sparkSession.range(days).withColumnRenamed("id", "day")
    active = users.crossJoin(day_grid).filter((F.col("day") >= F.col("first_day")) & (F.col("day") < F.col("last_day_excl")))
    # floor(2·mean·u1 + u2) has exactly the intended mean (dithered rounding).
    n = F.floor(F.col("sessions_per_day") * F.col("activity") * 2 * uniform(seed, "n_sess", "user_id", "day")
                + uniform(seed, "n_sess_dither", "user_id", "day"))
    per_day = active.withColumn("_n", n.cast("int")).filter(F.col("_n") > 0)
    s = per_day.withColumn("s", F.explode(F.sequence(F.lit(0), F.col("_n") - 1)))
    u = lambda salt: uniform(seed, salt, "user_id", "day", "s")  # noqa: E731
    jitter = F.round((u("h1") + u("h2") + u("h3") - 1.5) * 4).cast("int")
    hour = F.pmod(F.col("peak_hour") + jitter, F.lit(24))
    start_ts = (F.lit(start).cast("timestamp") + F.make_interval(days=F.col("day").cast("int"), hours=hour,
                                                                  mins=F.floor(u("min") * 60).cast("int")))
    preferred = F.element_at("pref_categories", (F.floor(u("pref") * F.size("pref_categories")) + 1).cast("int"))
    category = F.when(u("explore") < 0.85, preferred).otherwise(F.floor(u("cat") * N_CATEGORIES).cast("int"))
    return s.select(*USER_COLUMNS, "day", "s",
                    # Opaque ids: a session or order id must not reveal whose it is.
                    F.concat(F.lit("S"), F.lower(F.hex(F.xxhash64(F.lit(seed), "user_id", "day", "s"))))
                    .alias("session_id"),
                    start_ts.alias("start_ts"), category.alias("category_idx"),
                    (u("buy") < _buy_prob()).alias("buys"))


def _buy_prob() -> Column:
    """The archetype's per-session buy probability, lifted during a shopping-intent episode."""
    in_episode = (F.col("day") > F.col("intent_day")) & (F.col("day") <= F.col("intent_day") + INTENT_DAYS)
    lifted = F.least(F.col("buy_prob") * INTENT_LIFT, F.lit(INTENT_MAX_BUY_PROB))
    return F.when(F.coalesce(in_episode, F.lit(False)), lifted).otherwise(F.col("buy_prob"))


def _item_index(seed: int, per_cat: int) -> Column:
    """Which item of the category: price preference picks from the cheap or dear end, loyalists their brand."""
    u = uniform(seed, "item", "session_id", "e")
    cube = u * u * u
    k = (F.when(F.col("price_preference") == "low", F.floor(cube * per_cat))
         .when(F.col("price_preference") == "high", F.lit(per_cat - 1) - F.floor(cube * per_cat))
         .otherwise(F.floor(u * per_cat)))
    n_brands = len(BRAND_STEMS)
    loyal_k = F.least(F.floor(k / n_brands) * n_brands + F.col("fav_brand"), F.lit(per_cat - 1))
    return F.when(F.col("brand_loyal") & (uniform(seed, "loyal", "session_id", "e") < 0.8), loyal_k).otherwise(k)


def events(sess: DataFrame, n_items: int, seed: int) -> DataFrame:
    """Browse events inside each session (first event a view), with item, dwell and timing."""
    extra = (F.col("events_per_session") - 1) * 2 * uniform(seed, "n_ev", "session_id")
    n = (F.lit(1) + F.floor(extra + uniform(seed, "n_ev_dither", "session_id"))).cast("int")
    ev = sess.withColumn("_n", n).withColumn("e", F.explode(F.sequence(F.lit(0), F.col("_n") - 1)))
    u = lambda salt: uniform(seed, salt, "session_id", "e")  # noqa: E731
    kind = (F.when(F.col("e") == 0, "view").when(u("kind") < F.col("cart_prob"), "cart")
            .when(u("kind") < F.col("cart_prob") + 0.05, "fav").when(u("kind") < F.col("cart_prob") + 0.25, "click")
            .otherwise("view"))
    offset = F.col("e") * 30 + F.floor(u("gap") * 25)
    return ev.select(
        *USER_COLUMNS, "session_id", "buys", "e", "_n",
        item_id(F.col("category_idx"), _item_index(seed, items_per_category(n_items))).alias("item_id"),
        kind.alias("event_type"),
        (F.col("start_ts") + F.make_interval(secs=offset.cast("int"))).alias("ts"),
        (F.lit(3000) + F.floor(u("dwell") * 57_000)).cast("long").alias("dwell_ms"))


def browse_rows(ev: DataFrame) -> DataFrame:
    return ev.select("user_id", "item_id", "event_type", "ts", "dwell_ms", "session_id", F.to_date("ts").alias("dt"))


def transaction_rows(ev: DataFrame, items: DataFrame, seed: int) -> DataFrame:
    """Buying sessions turn their carted items (or, without a cart, the last item seen) into order lines."""
    lines = ev.filter(F.col("buys") & ((F.col("event_type") == "cart") | (F.col("e") == F.col("_n") - 1)))
    lines = lines.dropDuplicates(["session_id", "item_id"])
    quantity = (F.lit(1) + (uniform(seed, "qty", "session_id", "item_id") < 0.12).cast("int")).cast("int")
    ts = F.col("ts") + F.make_interval(mins=F.lit(2))
    return (lines.join(F.broadcast(items.select("item_id", "price")), "item_id")
            .select(F.concat(F.lit("O"), F.col("session_id")).alias("order_id"), "user_id", "item_id",
                    quantity.alias("quantity"), F.round(F.col("price") * quantity, 2).alias("amount"),
                    ts.alias("ts"), F.to_date(ts).alias("dt"),
                    "review_prob", "positive_prob"))


def _sentiment(seed: int, *keys: str) -> Column:
    """0 negative, 1 neutral, 2 positive: mostly the archetype's mood, sometimes neutral."""
    u = uniform(seed, "mood", *keys)
    return (F.when(uniform(seed, "neutral", *keys) < 0.12, 1)
            .when(u < F.col("positive_prob"), 2).otherwise(0))


def _from_sentiment(table: tuple[tuple[str, ...], ...], sentiment: Column, u: Column) -> Column:
    options = F.array(*[F.array(*[F.lit(x) for x in row]) for row in table])
    return F.element_at(F.element_at(options, sentiment + 1), (F.floor(u * 4) + 1).cast("int"))


def review_rows(tx: DataFrame, items: DataFrame, end_ts: Column, seed: int) -> DataFrame:
    """Reviews of purchased lines, 1-4 days later; texts combine category nouns, aspects and mood."""
    keys = ("order_id", "item_id")
    u = lambda salt: uniform(seed, salt, *keys)  # noqa: E731
    sentiment = _sentiment(seed, *keys)
    aspects = F.element_at(F.array(*[F.array(*[F.lit(a) for a in c.aspects]) for c in CATEGORIES]),
                           F.col("_cat") + 1)
    composed = F.concat(_from_sentiment(OPENERS, F.col("_sent"), u("open")), F.lit(" "), F.col("_noun"),
                        F.lit(". The "), F.element_at(aspects, (F.floor(u("aspect") * 4) + 1).cast("int")),
                        F.lit(" "), _from_sentiment(VERDICTS, F.col("_sent"), u("verdict")), F.lit("."))
    text = F.when(u("stock") < 0.25, _from_sentiment(STOCK_PHRASES, F.col("_sent"), u("phrase"))).otherwise(composed)
    rating = (F.when(F.col("_sent") == 2, 4 + (u("r") < 0.6).cast("int"))
              .when(F.col("_sent") == 0, 1 + (u("r") < 0.4).cast("int")).otherwise(3))
    ts = F.col("ts") + F.make_interval(days=(1 + F.floor(u("delay") * 3)).cast("int"),
                                       hours=F.floor(u("delay_h") * 12).cast("int"))
    cat_index = F.array_position(F.array(*[F.lit(c.name) for c in CATEGORIES]), F.col("category")).cast("int") - 1
    return (tx.filter(u("review") < F.col("review_prob"))
            .join(F.broadcast(items.select("item_id", "category", "_noun")), "item_id")
            .withColumn("_sent", sentiment).withColumn("_cat", cat_index)
            .select("user_id", "item_id", F.lit("review").alias("kind"), text.alias("text"),
                    rating.cast("int").alias("rating"), ts.alias("ts"))
            .filter(F.col("ts") < end_ts))


def interaction_rows(ev: DataFrame, items: DataFrame, seed: int) -> DataFrame:
    """Comments (questions about an item), likes and shares, from viewed items."""
    u = lambda salt: uniform(seed, salt, "session_id", "e")  # noqa: E731
    question = pick(list(QUESTIONS), F.floor(u("q") * len(QUESTIONS)))
    kind = (F.when(u("social") < F.col("review_prob") * 0.1, "comment").when(u("social") < 0.03, "like")
            .when(u("social") < 0.036, "share"))
    chosen = ev.withColumn("kind", kind).filter(F.col("kind").isNotNull())
    with_noun = chosen.join(F.broadcast(items.select("item_id", "_noun")), "item_id")
    text = F.when(F.col("kind") == "comment", F.expr("replace(_q, '{x}', _noun)"))
    return (with_noun.withColumn("_q", question)
            .select("user_id", "item_id", "kind", text.alias("text"), F.lit(None).cast("int").alias("rating"),
                    (F.col("ts") + F.make_interval(secs=F.lit(20))).alias("ts")))


def intent_rows(users: DataFrame, items: DataFrame, n_items: int, start: date, seed: int) -> DataFrame:
    """The comment that opens each shopping-intent episode, about an item of a preferred category."""
    u = lambda salt: uniform(seed, salt, "user_id")  # noqa: E731
    category = F.element_at("pref_categories", (F.floor(u("intent_cat") * F.size("pref_categories")) + 1).cast("int"))
    item = item_id(category, F.floor(u("intent_item") * items_per_category(n_items)))
    phrase = pick(list(INTENT_PHRASES), F.floor(u("intent_phrase") * len(INTENT_PHRASES)))
    ts = F.lit(start).cast("timestamp") + F.make_interval(days=F.col("intent_day"), hours=F.col("peak_hour"))
    active = (F.col("intent_day") >= F.col("first_day")) & (F.col("intent_day") < F.col("last_day_excl"))
    return (users.filter(F.col("intent_day").isNotNull() & active).withColumn("item_id", item)
            .withColumn("_p", phrase).join(F.broadcast(items.select("item_id", "_noun")), "item_id")
            .select("user_id", "item_id", F.lit("comment").alias("kind"),
                    F.expr("replace(_p, '{x}', _noun)").alias("text"), F.lit(None).cast("int").alias("rating"),
                    ts.alias("ts")))


def follow_rows(users: DataFrame, start: date, seed: int) -> DataFrame:
    """A few users follow a brand or another user (no item), once, on a random day."""
    u = lambda salt: uniform(seed, salt, "user_id")  # noqa: E731
    span = F.col("last_day_excl") - F.col("first_day")
    day = (F.col("first_day") + F.floor(u("follow_day") * span)).cast("int")
    return (users.filter((u("follows") < 0.1) & (F.col("first_day") < F.col("last_day_excl")))
            .select("user_id", F.lit(None).cast("string").alias("item_id"), F.lit("follow").alias("kind"),
                    F.lit(None).cast("string").alias("text"), F.lit(None).cast("int").alias("rating"),
                    (F.lit(start).cast("timestamp") + F.make_interval(days=day, hours=F.lit(10))).alias("ts")))

