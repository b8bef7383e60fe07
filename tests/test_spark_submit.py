"""spark-submit.sh for real: the shared demo (``conftest.demo_run``) is the job zipped and submitted to local[2],
generate then full in one application, the model included (2 TorchDistributor processes from the zipped package)."""
from __future__ import annotations

from deltalake import DeltaTable

from conftest import DEMO_ARGS


def test_spark_submit_demo_builds_profiles_from_scratch(demo_run):
    output = demo_run.result.stdout + demo_run.result.stderr
    # Per-stage progress lines (spark-submit's PythonRunner merges the driver's stderr into stdout).
    assert "[full] write" in output and "[full] train" in output
    users = int(DEMO_ARGS[DEMO_ARGS.index("--users") + 1])
    profiles = DeltaTable(str(demo_run.warehouse / "profiles")).to_pyarrow_table()
    assert profiles.num_rows == users
    assert profiles.column("purchase_propensity").null_count == 0
    runs = DeltaTable(str(demo_run.warehouse / "runs")).to_pyarrow_table().to_pylist()
    runs.sort(key=lambda r: r["started_at"])
    # The demo's own runs come first; other demo tests may add theirs (a lookalike audience) later.
    assert [(r["job"], r["status"]) for r in runs[:2]] == [("generate", "succeeded"), ("full", "succeeded")]
