"""run_together: calls run at once, results in order, the caller's Spark job group inherited, failures raised."""
from __future__ import annotations

import threading
import time

import pytest

from jobs.together import run_together


def test_calls_run_at_once_and_results_come_back_in_order(spark):
    # Each call waits for the other at a barrier: run one after another, the first would time out.
    meeting = threading.Barrier(3, timeout=30)

    def call(value: int) -> int:
        meeting.wait()
        return value

    assert run_together(spark, lambda: call(1), lambda: call(2), lambda: call(3)) == [1, 2, 3]


def test_each_call_runs_its_spark_jobs_in_the_callers_job_group(spark):
    sc = spark.sparkContext
    sc.setJobGroup("together-test", "a job group set by the caller")
    try:
        def group_and_count(n: int) -> tuple[str | None, int]:
            return sc.getLocalProperty("spark.jobGroup.id"), spark.range(n).count()

        assert run_together(spark, lambda: group_and_count(5), lambda: group_and_count(7)) == [
            ("together-test", 5), ("together-test", 7)]
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)


def test_the_first_failure_is_raised_after_every_call_has_ended(spark):
    finished = []

    def slow() -> None:
        time.sleep(1.0)
        finished.append("slow")

    def failing() -> None:
        raise ValueError("the first call failed")

    with pytest.raises(ValueError, match="the first call failed"):
        run_together(spark, failing, slow)
    assert finished == ["slow"]


def test_one_call_runs_on_the_callers_thread(spark):
    assert run_together(spark, threading.current_thread) == [threading.current_thread()]
