"""The item catalogue: prices rise with an item's index inside its category, so price taste is plantable."""
from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.generator.random import pick, uniform
from jobs.generator.vocabulary import ADJECTIVES, BRAND_STEMS, CATEGORIES

N_CATEGORIES = len(CATEGORIES)


def items_per_category(n_items: int) -> int:
    return max(1, n_items // N_CATEGORIES)


def item_id(category: Column, k: Column) -> Column:
    """Item ids interleave categories: id = category + N_CATEGORIES * k."""
    return F.format_string("I%06d", (category + k * N_CATEGORIES).cast("long"))


def generate_items(spark: SparkSession, n_items: int, seed: int) -> DataFrame:
    per_cat = items_per_category(n_items)
    ids = spark.range(per_cat * N_CATEGORIES, numPartitions=2)
    cat = (F.col("id") % N_CATEGORIES).cast("int")
    k = (F.col("id") / N_CATEGORIES).cast("long")
    brand = F.concat_ws(" ", pick(list(BRAND_STEMS), k % len(BRAND_STEMS)),
                        pick([c.brand_word for c in CATEGORIES], cat))
    noun = F.element_at(F.array(*[F.array(*[F.lit(n) for n in c.nouns]) for c in CATEGORIES]), cat + 1)
    noun = F.element_at(noun, (F.floor(uniform(seed, "noun", "id") * 5) + 1).cast("int"))
    rel = k.cast("double") / max(per_cat - 1, 1)
    price = pick([c.base_price for c in CATEGORIES], cat) * (F.lit(0.3) + 2.7 * rel * rel) * (
        0.9 + 0.2 * uniform(seed, "price", "id"))
    title = F.concat_ws(" ", brand, pick(list(ADJECTIVES), F.floor(uniform(seed, "adj", "id") * len(ADJECTIVES))),
                        noun, F.format_string("M%d", k))
    return ids.select(
        item_id(cat, k).alias("item_id"), title.alias("title"), pick([c.name for c in CATEGORIES], cat).alias("category"),
        brand.alias("brand"), F.round(price, 2).alias("price"), F.lit(None).cast("string").alias("description"),
        F.lit(None).cast("string").alias("image_path"), noun.alias("_noun"))
