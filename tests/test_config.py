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


def test_dataset_overlays_set_the_documented_date_range_in_the_platforms_zone():
    cfg = load_config(overlay_path("taobao-sample"))
    assert cfg.time.zone == "Asia/Shanghai"
    # 2017-11-25 to 2017-12-03 in China time: from 16:00 UTC the day before.
    assert cfg.validation.ts_min == datetime(2017, 11, 24, 16, tzinfo=timezone.utc)
    assert cfg.validation.ts_max == datetime(2017, 12, 3, 16, tzinfo=timezone.utc)
    assert cfg.as_of == datetime(2017, 12, 3, 16, tzinfo=timezone.utc)


def test_a_time_with_an_offset_keeps_it_and_a_naive_one_is_local():
    cfg = load_config(overrides=["time.zone=Europe/London", "as_of=2025-07-01T01:00:00+02:00",
                                 "validation.ts_min=2025-07-01 00:00:00"])
    assert cfg.as_of == datetime(2025, 6, 30, 23, tzinfo=timezone.utc)  # midnight BST
    assert cfg.validation.ts_min == datetime(2025, 6, 30, 23, tzinfo=timezone.utc)  # BST is UTC+1
    assert cfg.with_overrides("tags.dormant_days=3").as_of == cfg.as_of  # survives a round trip


def test_as_of_must_start_a_local_day():
    with pytest.raises(ValueError, match=r"as_of=2025-07-01T00:00:00\+00:00 is 2025-07-01T01:00:00\+01:00 in Europe/London, not a local midnight"):
        load_config(overrides=["time.zone=Europe/London", "as_of=2025-07-01T00:00:00Z"])


def test_an_unknown_time_zone_fails_with_its_key():
    with pytest.raises(ConfigError, match="time.zone: .*Mars/Olympus"):
        load_config(overrides=["time.zone=Mars/Olympus"])


def test_overlay_file_with_unknown_key_fails(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("spark:\n  masterr: local[1]\n")
    with pytest.raises(ConfigError, match="spark.masterr"):
        load_config(bad)
