"""Shared fixtures: one real local Spark session for the whole test run."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()


@pytest.hookimpl(tryfirst=True)  # before xdist's worker reads the marks into the node ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``pytest -n 2 --dist loadgroup``, one worker runs each module, and one worker runs every module
    that reads the shared demo, so no module- or session-scoped warehouse is built twice."""
    on_demo = {item.module.__name__ for item in items if "demo_run" in getattr(item, "fixturenames", ())}
    for item in items:
        module = item.module.__name__
        item.add_marker(pytest.mark.xdist_group("demo" if module in on_demo else module))


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


PORTRAIT = str(Path(sys.executable).parent / "portrait")


def portrait(*args: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the real ``portrait`` command in ``cwd``."""
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    return subprocess.run([PORTRAIT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@dataclass(frozen=True)
class DemoRun:
    directory: Path
    result: subprocess.CompletedProcess

    @property
    def warehouse(self) -> Path:
        return self.directory / "warehouse"


# Small enough for CI, big enough for every stage: generate, validate, embed, features, snapshot,
# 2-process training, evaluation with both baselines, scoring, segments and tags.
DEMO_ARGS = ("demo", "--users", "400", "--days", "14", "--set", "spark.shuffle_partitions=2",
             "--set", "generator.items=300",  # fewer titles to embed: 2,400 took about 20 s of CI
             "--set", "model.epochs=4", "--set", "model.segments_k_max=6", "--set", "model.segments_sample=400",
             "--set", "privacy.k_anonymity_floor=20",
             # 400 users over 14 days give few confident scores; low thresholds so model tags exist to check.
             "--set", "model.propensity_tag_min=0.2", "--set", "model.churn_tag_min=0.2")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> DemoRun:
    """One real ``portrait demo`` (model included) that the CLI, model, notebook and report tests share."""
    directory = tmp_path_factory.mktemp("demo")
    result = portrait(*DEMO_ARGS, cwd=directory)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return DemoRun(directory, result)
