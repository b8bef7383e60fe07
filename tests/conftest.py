"""Shared fixtures: one real local Spark session for the whole test run."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()

# Every test JVM pyspark starts (this process's session, and the ``portrait`` commands the tests run) evaluates
# expressions interpreted, as Spark's own test suites can: on tables of a few hundred rows, compiling Java for
# each query costs more than it saves (test_state + test_features: 99 s against 119-148 s; test_validation +
# test_exactly_once: 149-187 s against 189-198 s). Adaptive execution is off too: on such tables it only
# replans each query between stages that a static plan runs at once (a 120-user full run, five pairs alternated in
# one JVM: 31.2 s against 35.1 s on average, every pair faster). Results are the same by Spark's contract; the
# shared demo (submitted with spark-submit.sh, below), the benchmarks and every real run keep code generation and
# adaptive execution. Constraint propagation is off too: it infers filters from every alias and join of a plan, and
# the fold properties' plans are wide (test_state's event and interaction folds, hypothesis seed 1, two pairs: 130 s
# and 122 s against 144 s and 141 s; a 60-user full run and step: the same within the noise). It only adds filters,
# so the rows are the same.
TEST_JVM_ARGS = ("--conf spark.sql.codegen.wholeStage=false --conf spark.sql.codegen.factoryMode=NO_CODEGEN "
                 "--conf spark.sql.adaptive.enabled=false --conf spark.sql.constraintPropagation.enabled=false "
                 "pyspark-shell")
os.environ.setdefault("PYSPARK_SUBMIT_ARGS", TEST_JVM_ARGS)


def pytest_configure(config: pytest.Config) -> None:
    """xdist's ``loadgroup`` hands out groups by their number of tests, most first, unless told to keep the
    collection's order (``--no-loadscope-reorder``). The order below is by minutes, not tests: by count, the
    spark-submit test (one test, three and a half minutes) and the backtest (three tests) came last, and one
    worker ran them alone while the other had finished."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


@pytest.hookimpl(tryfirst=True)  # before xdist's worker reads the marks into the node ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``pytest -n 2 --dist loadgroup``, one worker runs every test that reads the shared demo, and one
    worker each module's other tests, so no session- or module-scoped warehouse is built twice."""
    group = {}
    for item in items:
        # fixturenames is the closure: a test on a fixture built from the demo needs the demo too.
        group[item] = "demo" if "demo_run" in getattr(item, "fixturenames", ()) else item.module.__name__
        item.add_marker(pytest.mark.xdist_group(group[item]))
    # Longest groups first (xdist hands out groups in this order), so no long group starts last on one worker
    # while the other has finished: the suite's time is then about half the sum, not a long tail.
    items.sort(key=lambda item: LONGEST_FIRST.index(group[item]) if group[item] in LONGEST_FIRST else len(LONGEST_FIRST))


# Groups by their CI minutes (``--durations``), longest first; the rest follow in file order. (Earlier trials of
# this order measured nothing: xdist's reorder by test count overrode it until ``pytest_configure`` above.) In the
# clean clone at 2026-12-06 05:00 UTC, the two workers finished 21 s apart (1784 and 1805 s).
LONGEST_FIRST = ("demo", "test_real_samples", "test_incremental", "test_embeddings", "test_backtest", "test_state",
                 "test_mapping", "test_exactly_once", "test_images")


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


def portrait_here(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The same command line through the same entry point (``jobs.cli.main``), in this process and its Spark
    session: for the commands whose own process start is not what a test checks (a process start costs
    about half a minute of CI). Exit code, stdout and stderr as ``portrait`` returns them."""
    from pyspark.sql import SparkSession

    from jobs.cli import main

    session = SparkSession.getActiveSession()
    if session is None:
        # A session the command started would start its JVM in ``cwd``, and Spark resolves relative paths (the
        # datasets' ``../shared/data``) against the JVM's directory for every later test of the worker.
        raise RuntimeError("portrait_here runs on the worker's Spark session: request the spark fixture")
    out, err, code = io.StringIO(), io.StringIO(), 0
    here, argv = os.getcwd(), sys.argv
    partitions = session.conf.get("spark.sql.shuffle.partitions")
    os.chdir(cwd)
    sys.argv = ["portrait", *args]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    finally:
        sys.argv = argv
        os.chdir(here)
        # The command's config sets the session's; the other tests keep theirs.
        session.conf.set("spark.sql.shuffle.partitions", partitions)
    return subprocess.CompletedProcess(["portrait", *args], code, out.getvalue(), err.getvalue())


@dataclass(frozen=True)
class DemoRun:
    directory: Path
    result: subprocess.CompletedProcess

    @property
    def warehouse(self) -> Path:
        return self.directory / "warehouse"


# Small enough for CI, big enough for every stage: generate, validate, embed, features, snapshot,
# 2-process training, champion selection on a validation window (16 days: room for T - 2 x 7), evaluation
# with every candidate and the RFM rule, scoring, segments and tags.
DEMO_ARGS = ("demo", "--users", "400", "--days", "16", "--set", "spark.shuffle_partitions=2",
             "--set", "generator.items=300",  # fewer titles to embed: 2,400 took about 20 s of CI
             "--set", "model.epochs=4", "--set", "model.segments_k_max=6", "--set", "model.segments_sample=400",
             "--set", "privacy.k_anonymity_floor=20",
             # 400 users over 14 days give few confident scores; low thresholds so model tags exist to check.
             "--set", "model.propensity_tag_min=0.2", "--set", "model.churn_tag_min=0.2")


def spark_submit(*args: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run ``spark-submit.sh`` in ``cwd``: the job zipped and submitted to local[2], with Spark's own settings
    (code generation and adaptive execution on, as on a cluster). 2 shuffle partitions, not the cluster
    default of 200: spark-submit's settings win over ``--set``."""
    env = {**os.environ, "SPARK_MASTER": "local[2]", "PORTRAIT_SHUFFLE_PARTITIONS": "2", "PYSPARK_PYTHON": sys.executable,
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run([str(ROOT / "spark-submit.sh"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> DemoRun:
    """One real ``demo`` (model included) that the CLI, model, notebook, report and spark-submit tests share. It is
    submitted with ``spark-submit.sh``, as a scheduled job would be: generate and full in one application, the
    model's two TorchDistributor processes importing the zipped package. ``portrait demo`` runs the same
    ``jobs.cli.main`` (``test_cli`` then queries the tables with ``portrait sql``); one demo, not two, saves CI a
    model-on demo (the separate spark-submit test took 228 s of it)."""
    directory = tmp_path_factory.mktemp("demo")
    result = spark_submit(*DEMO_ARGS, cwd=directory, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return DemoRun(directory, result)
