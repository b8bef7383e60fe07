"""spark-submit.sh for real: package the job, submit generate and full (``demo``) to local[2], get profiles."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from deltalake import DeltaTable

ROOT = Path(__file__).resolve().parents[1]


def submit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SPARK_MASTER": "local[2]",
           # spark-submit's settings win over --set: 2 shuffle partitions, not the cluster default of 200.
           "PORTRAIT_SHUFFLE_PARTITIONS": "2", "PYSPARK_PYTHON": sys.executable,
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run([str(ROOT / "spark-submit.sh"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


def test_spark_submit_full_builds_profiles_from_scratch(tmp_path):
    settings = ["--set", "spark.shuffle_partitions=2", "--warehouse", str(tmp_path / "wh")]
    # The model trains too (2 TorchDistributor processes from the zipped package), kept short for CI.
    model = ["--set", "model.epochs=2", "--set", "model.baselines=false", "--set", "model.segments_k_max=5"]
    # generate then full, in one submitted application (``demo``): one JVM, as a scheduled job would be.
    demo = submit("demo", "--users", "200", "--days", "10", "--set", "generator.items=150", *settings, *model,
                  cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr[-3000:]
    # Per-stage progress lines (spark-submit's PythonRunner merges the driver's stderr into stdout).
    assert "[full] write" in demo.stdout + demo.stderr
    profiles = DeltaTable(str(tmp_path / "wh" / "profiles")).to_pyarrow_table()
    assert profiles.num_rows == 200
    assert profiles.column("purchase_propensity").null_count == 0
    runs = DeltaTable(str(tmp_path / "wh" / "runs")).to_pyarrow_table().to_pylist()
    runs.sort(key=lambda r: r["started_at"])
    assert [(r["job"], r["status"]) for r in runs] == [("generate", "succeeded"), ("full", "succeeded")]
