"""Shared fixtures: one real local Spark session for the whole test run."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def cfg():
    from conf import load_config

    return load_config(overrides=["spark.shuffle_partitions=2", "spark.driver_memory=4g"])


@pytest.fixture(scope="session")
def spark(cfg):
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from jobs.spark import spark_session

    session = spark_session(cfg.spark)
    yield session
    session.stop()


@pytest.fixture
def warehouse(spark, tmp_path):
    from jobs.storage import Warehouse

    return Warehouse(str(tmp_path / "warehouse"), spark, engine="delta-rs")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.fail(f"real samples not found at {SHARED_DATA}; the project expects ../shared/data beside it")
    return SHARED_DATA
