#!/usr/bin/env bash
# Package Portrait and submit one of its jobs with spark-submit.
#
#   ./spark-submit.sh full|incremental|generate|demo|sql [portrait options...]
#
# Environment:
#   SPARK_MASTER      where to run (default local[*])
#   PORTRAIT_DELTA    "spark" to load delta-spark from Maven (clusters), "rs" for delta-rs (default: rs
#                     when SPARK_MASTER is local, spark otherwise)
#   PORTRAIT_ENV      a packed venv (venv-pack/conda-pack .tar.gz) shipped to executors via --archives
#   PORTRAIT_GPUS     GPUs per executor (0 = none); sets Spark's GPU resource configs
#   SPARK_SUBMIT      the spark-submit binary (default: the one next to pyspark)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
job="${1:?usage: spark-submit.sh full|incremental|generate|demo|sql [options]}"; shift || true

master="${SPARK_MASTER:-local[*]}"
delta="${PORTRAIT_DELTA:-$([[ $master == local* ]] && echo rs || echo spark)}"
python="${PYSPARK_PYTHON:-$(command -v python3)}"
submit="${SPARK_SUBMIT:-$("$python" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-submit"))')}"

# The job package: jobs/, udfs/, schemas/ and conf/ (with its YAML) in one zip for --py-files.
build="$(mktemp -d)"; trap 'rm -rf "$build"' EXIT
(cd "$here" && "$python" -m zipfile -c "$build/portrait.zip" jobs udfs schemas conf)
# A launcher outside jobs/, so jobs' modules never shadow top-level ones on sys.path.
printf 'from jobs.cli import main\nmain()\n' > "$build/portrait_main.py"

args=(--master "$master" --name "portrait-$job" --py-files "$build/portrait.zip"
      --conf spark.sql.session.timeZone=UTC
      --conf spark.sql.shuffle.partitions="${PORTRAIT_SHUFFLE_PARTITIONS:-200}"
      --conf spark.sql.execution.arrow.maxRecordsPerBatch="${PORTRAIT_ARROW_BATCH:-10000}"
      --conf spark.sql.parquet.outputTimestampType=TIMESTAMP_MICROS
      --conf spark.executorEnv.TZ=UTC)

if [[ $delta == spark ]]; then
  spark_mm="$("$python" -c 'import pyspark; print(".".join(pyspark.__version__.split(".")[:2]))')"
  delta_version="${DELTA_VERSION:-4.4.1}"
  args+=(--packages "io.delta:delta-spark_${spark_mm}_2.13:${delta_version}"
         --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension
         --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog
         --conf spark.databricks.delta.properties.defaults.minReaderVersion=1
         --conf spark.databricks.delta.properties.defaults.minWriterVersion=2
         --conf spark.databricks.delta.properties.defaults.enableDeletionVectors=false)
fi

if [[ -n ${PORTRAIT_ENV:-} ]]; then  # executors unpack the venv as ./environment and use its python
  args+=(--archives "${PORTRAIT_ENV}#environment" --conf spark.pyspark.python=./environment/bin/python)
else
  export PYSPARK_PYTHON="$python"
fi

if [[ ${PORTRAIT_GPUS:-0} != 0 ]]; then
  args+=(--conf spark.executor.resource.gpu.amount="$PORTRAIT_GPUS"
         --conf spark.task.resource.gpu.amount="${PORTRAIT_TASK_GPUS:-1}"
         --conf spark.executor.resource.gpu.discoveryScript="${PORTRAIT_GPU_DISCOVERY:-$SPARK_HOME/examples/src/main/scripts/getGpusResources.sh}")
fi

"$submit" "${args[@]}" "$build/portrait_main.py" "$job" "$@"
