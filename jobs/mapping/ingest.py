"""``portrait ingest --mapping FILE``: land a source onto the five input tables, with its quarantine and a runs row.

Without a slice every input table is replaced. With ``since`` / ``until`` (local dates), only the
event tables' ``dt`` partitions in [since, until) that the slice holds are replaced, so later slices
land as new partitions for ``portrait incremental``; ``users`` and ``items`` are replaced whole (they
are snapshots). Each ingest reports every source row it could not parse or the mapping rejected.
"""
from __future__ import annotations

from datetime import date
from functools import reduce
from importlib.abc import Traversable
from pathlib import Path
from typing import Mapping as EnvMapping

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf import CONF_DIR, Config
from jobs.full import open_warehouse
from jobs.mapping.sources import CORRUPT, parse_source, parsed_rows, read_source, source_files
from jobs.mapping.spec import Mapping, load_mapping
from jobs.mapping.tables import build_tables
from jobs.privacy import privacy_key
from jobs.runs import RunRecorder, recorded
from jobs.storage import Warehouse
from jobs.validation.checks import parse_failure
from jobs.validation.validate import PARSE_ERROR, REASON, quarantine_rows
from schemas import INPUT_TABLES


def mapping_path(name_or_path: str) -> Path | Traversable:
    """A packaged mapping by dataset name (``taobao-sample``: ``conf/mappings/taobao-sample.yaml``) or any YAML path."""
    given = Path(name_or_path)
    return given if given.suffix in (".yaml", ".yml") else CONF_DIR / "mappings" / f"{name_or_path}.yaml"


def resolve(cfg: Config, name_or_path: str, path: str | None = None) -> tuple[Mapping, Path]:
    """The checked mapping (a bad one fails here, before Spark starts) and the directory its files are in:
    ``path``, else a packaged dataset's configured directory (``datasets``), else the mapping file's own."""
    spec = load_mapping(mapping_path(name_or_path))
    if path:
        return spec, Path(path)
    dataset = getattr(cfg.datasets, name_or_path.replace("-", "_"), None)
    return spec, Path(dataset) if dataset else Path(name_or_path).parent


def event_slice(since: date | None, until: date | None) -> F.Column:
    """Event rows whose local date ``dt`` is in [since, until)."""
    keep = F.lit(True)
    if since is not None:
        keep = keep & (F.col("dt") >= F.lit(since))
    if until is not None:
        keep = keep & (F.col("dt") < F.lit(until))
    return keep


def land_tables(wh: Warehouse, tables: dict[str, DataFrame], rec: RunRecorder, sliced: bool) -> None:
    """Write each input table: whole, or (``sliced``) the event tables' partitions the slice holds."""
    for name, df in tables.items():
        with rec.stage(f"write {name}") as st:
            if sliced and INPUT_TABLES[name].partition_by:
                df = df.cache()
                dts = sorted(r[0] for r in df.select("dt").distinct().collect())  # days: a few per slice
                if not wh.exists(name):
                    wh.overwrite(name, df, run_id=rec.run_id)
                elif dts:
                    wh.overwrite_partitions(name, df, dts, run_id=rec.run_id)
                st.rows_out = rec.rows_out[name] = df.count()
                df.unpersist()
            else:
                wh.overwrite(name, df, run_id=rec.run_id)
                st.rows_out = rec.rows_out[name] = wh.count(name)


def parse_sources(spark: SparkSession, spec: Mapping, root: Path, zone: str, key, rec: RunRecorder
                  ) -> tuple[dict[str, DataFrame], DataFrame]:
    """Each source read and parsed (cached: read once), and its unparseable rows as quarantine rows."""
    parsed, failures = {}, []
    for name, source in spec.sources.items():
        raw = read_source(spark, source, source_files(root, source, name))
        for column in source.columns:
            if column not in raw.columns:
                raise spec.error(("sources", name, "columns", column),
                                 f"sources.{name}.columns.{column}: the source has no such column "
                                 f"(it has: {', '.join(c for c in raw.columns if c != CORRUPT)})")
        df = raw.transform(parse_source(source, zone, key)).cache()
        counts = {r[PARSE_ERROR]: r["count"] for r in df.groupBy(PARSE_ERROR).count().collect()}
        total = rec.rows_in[f"source:{name}"] = sum(counts.values())
        rec.rows_quarantined[f"source:{name}"] = total - counts.get(None, 0)
        for reason, n in sorted((r, n) for r, n in counts.items() if r is not None):
            column, description = parse_failure(reason)
            where = "" if column == "*" else f" (column {column})"
            rec.console.print(f"  {spec.name}:{name}: {n:,} of {total:,} source rows {description}{where}; "
                              f"moved to quarantine with reason {reason}")
        parsed[name] = df
        failures.append(df.filter(F.col(PARSE_ERROR).isNotNull()).withColumn(REASON, F.col(PARSE_ERROR))
                        .transform(quarantine_rows(f"{spec.name}:{name}", rec.run_id, rec.started_at)))
    return parsed, reduce(DataFrame.unionByName, failures)


def count_rejections(rejected: DataFrame, rec: RunRecorder) -> None:
    for r in rejected.groupBy("source_table", "reason").count().orderBy("source_table", "reason").collect():
        rec.rows_quarantined[r["source_table"]] = rec.rows_quarantined.get(r["source_table"], 0) + r["count"]
        rec.console.print(f"  {r['source_table']}: {r['count']:,} rows rejected by the mapping; moved to "
                          f"quarantine with reason {r['reason']}")


def run_mapping_ingest(cfg: Config, spark: SparkSession, spec: Mapping, root: Path, since: date | None = None,
                       until: date | None = None, env: EnvMapping[str, str] | None = None) -> RunRecorder:
    """Read the mapping's sources under ``root``, build and write the input tables, and append what could
    not be parsed or was rejected to quarantine."""
    zone = spec.zone or cfg.time.zone
    sliced = since is not None or until is not None
    rec = RunRecorder(f"ingest-{spec.name}")
    rec.details.update({"mapping": spec.name, "source": str(root), "zone": zone})
    if sliced:
        rec.details["slice"] = f"[{since or ''}, {until or ''})"
    wh = open_warehouse(cfg, spark)
    with recorded(wh, rec):
        key = privacy_key(cfg.privacy, env, rec)
        with rec.stage("parse") as st:
            parsed, quarantine = parse_sources(spark, spec, root, zone, key, rec)
            st.rows_in = sum(rec.rows_in.values())
            st.rows_out = st.rows_in - sum(rec.rows_quarantined.values())
        tables, rejected = build_tables(spark, spec, {n: parsed_rows(df) for n, df in parsed.items()},
                                        cfg.time.zone, key, rec.run_id, rec.started_at)
        if sliced:
            tables = {t: df.filter(event_slice(since, until)) if INPUT_TABLES[t].partition_by else df
                      for t, df in tables.items()}
        if rejected is not None:
            rejected = rejected.cache()
            count_rejections(rejected, rec)
            quarantine = quarantine.unionByName(rejected)
        land_tables(wh, tables, rec, sliced)
        wh.append("quarantine", quarantine, run_id=rec.run_id)
    return rec
