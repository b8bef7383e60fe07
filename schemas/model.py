"""Tables the model stages write: the training snapshot, segments and evaluation metrics."""
from pyspark.sql.types import (ArrayType, BooleanType, DoubleType, FloatType, IntegerType, LongType, StringType,
                               StructField, StructType, TimestampType)

from schemas.profiles import SCORE

# One row per user at the cutoff: model inputs (features from before the cutoff only) and horizon labels.
TRAINING_SNAPSHOT = StructType([
    StructField("user_id", StringType(), False),
    StructField("behaviour", ArrayType(FloatType()), False),   # see jobs.model.inputs.behaviour_columns
    StructField("text", ArrayType(FloatType()), False),        # text_vector ++ recent_text_vector; zeros if none
    StructField("interest", ArrayType(FloatType()), False),
    StructField("holdout", BooleanType(), False),
    StructField("bought", FloatType(), False),
    StructField("churned", FloatType(), False),
    StructField("categories", ArrayType(FloatType()), False),  # multi-hot over the category vocabulary
    StructField("spend_tier", IntegerType(), False),           # 0 none, 1 low, 2 mid, 3 high
    StructField("spend", DoubleType(), False),
])

SEGMENTS = StructType([
    StructField("segment_id", IntegerType(), False),
    StructField("size", LongType(), False),
    StructField("share", DoubleType(), False),
    StructField("description", StringType(), False),
    StructField("distinguishing_features", ArrayType(SCORE)),  # z-score of the segment mean vs the population
    StructField("top_categories", ArrayType(SCORE)),           # lift of top-category share vs the population
    StructField("mean_propensity", DoubleType()),
    StructField("mean_churn_risk", DoubleType()),
    StructField("silhouette", DoubleType()),
    StructField("model_run_id", StringType(), False),
    StructField("as_of", TimestampType(), False),
])

MODEL_METRICS = StructType([
    StructField("run_id", StringType(), False),
    StructField("metric", StringType(), False),   # propensity_roc_auc, churn_pr_auc, category_recall_at_10, ...
    StructField("method", StringType(), False),   # model, rfm_rule, mllib
    StructField("value", DoubleType()),
    StructField("users", LongType()),             # held-out users it was computed on
    StructField("as_of", TimestampType(), False),
])

# portrait backtest: one row per (as-of date, metric, method). Trained on the days before as_of (features before
# cutoff = as_of - horizon, labels in [cutoff, as_of)); scored at as_of against [as_of, as_of + horizon).
BACKTESTS = StructType([
    StructField("run_id", StringType(), False),
    StructField("as_of", TimestampType(), False),
    StructField("cutoff", TimestampType(), False),
    StructField("horizon_days", IntegerType(), False),
    StructField("metric", StringType(), False),   # propensity_roc_auc, churn_pr_auc, category_recall_at_10, ...
    StructField("method", StringType(), False),   # model, rfm_rule, mllib, gbt
    StructField("value", DoubleType()),           # null: undefined (one class only among the users)
    StructField("ci_low", DoubleType()),          # 95% bootstrap interval over users
    StructField("ci_high", DoubleType()),
    StructField("users", LongType(), False),      # users scored (a hashed sample beyond model.evaluation_users)
    StructField("published", BooleanType(), False),  # the scores profiles would carry
])
