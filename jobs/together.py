"""Independent Spark work started at once, so that its waits overlap.

A model fit on a few thousand users is mostly waiting: an L-BFGS or k-means iteration is a Spark job whose
tasks take milliseconds, a boosted-tree fit waits for its barrier stage, and the network trains in processes of
its own while the executors idle. Fits that need nothing from each other are therefore started together, each
from its own thread; Spark schedules their jobs side by side (FIFO within the one pool, as one job would run).
The results are those of running them one after another: every fit is seeded and reads data computed before
it starts.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from pyspark import inheritable_thread_target
from pyspark.sql import SparkSession


def run_together(spark: SparkSession, *calls: Callable[[], Any]) -> list[Any]:
    """Each of ``calls``' results, in order, the calls run at once in threads that inherit the caller's Spark
    job group, description and other local properties. Every call ends before this returns; the first failure,
    in ``calls``' order, is then raised."""
    if len(calls) < 2:
        return [call() for call in calls]
    with ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="portrait-together") as pool:
        # Wrapped here, on the caller's thread: the wrapper copies the properties it has now.
        futures = [pool.submit(inheritable_thread_target(spark)(call)) for call in calls]
    return [future.result() for future in futures]
