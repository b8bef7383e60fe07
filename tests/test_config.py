"""Typed config: defaults, overlays, CLI overrides, and early, named failures."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from conf import ConfigError, load_config, overlay_path


def test_embedded_default_loads():
    cfg = load_config()
    assert cfg.warehouse.path == "./warehouse"
    assert cfg.features.rfm_windows == [7, 30, 90]


def test_overrides_are_typed():
    cfg = load_config(overrides=["tags.dormant_days=21", "features.rfm_windows=[7, 30, 90, 180]",
                                 "as_of=2025-02-01T00:00:00Z"])
    assert cfg.tags.dormant_days == 21
    assert cfg.features.rfm_windows == [7, 30, 90, 180]
    assert cfg.as_of == datetime(2025, 2, 1, tzinfo=timezone.utc)


def test_unknown_key_fails_naming_it():
    with pytest.raises(ConfigError, match="tags.dormant_dayz"):
        load_config(overrides=["tags.dormant_dayz=3"])


def test_unknown_section_fails_naming_it():
    with pytest.raises(ConfigError, match="'nope'"):
        load_config(overrides=["nope.key=1"])


def test_bad_value_fails_naming_the_key():
    with pytest.raises(ConfigError, match="generator.users"):
        load_config(overrides=["generator.users=-5"])


def test_tag_windows_must_be_computed_windows():
    with pytest.raises(ConfigError, match="loyal_window_days=60"):
        load_config(overrides=["tags.loyal_window_days=60"])


def test_dataset_overlays_set_the_documented_date_range():
    cfg = load_config(overlay_path("taobao-sample"))
    assert cfg.validation.ts_min == datetime(2017, 11, 25, tzinfo=timezone.utc)
    assert cfg.validation.ts_max == datetime(2017, 12, 4, tzinfo=timezone.utc)


def test_overlay_file_with_unknown_key_fails(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("spark:\n  masterr: local[1]\n")
    with pytest.raises(ConfigError, match="spark.masterr"):
        load_config(bad)
