"""Behavioural features: pure, curried ``DataFrame -> DataFrame`` functions, one row per user."""
from jobs.features.activity import activity_features, all_events
from jobs.features.affinity import affinity_features, interactions, price_band_features, top_k_shares
from jobs.features.conversion import conversion_features, sessionize
from jobs.features.profiles import assemble_profiles, fill_zero
from jobs.features.rfm import rfm_features
from jobs.features.social import social_features
from jobs.features.time_patterns import time_pattern_features

__all__ = ["activity_features", "all_events", "affinity_features", "interactions", "price_band_features",
           "top_k_shares", "conversion_features", "sessionize", "assemble_profiles", "fill_zero",
           "rfm_features", "social_features", "time_pattern_features"]
