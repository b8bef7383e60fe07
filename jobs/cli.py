"""The ``portrait`` command line."""
from __future__ import annotations

import os
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from conf import Config, ConfigError, load_config, overlay_path

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Portrait: user profiles from e-commerce tables.")
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

ConfigOpt = Annotated[Optional[list[Path]], typer.Option("--config", "-c", help="Overlay YAML on conf/local.yaml.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Override a key: --set tags.dormant_days=21")]
WarehouseOpt = Annotated[Optional[str], typer.Option("--warehouse", "-w", help="Warehouse directory.")]


class Dataset(str, Enum):
    generated = "generated"
    taobao_sample = "taobao-sample"
    olist_sample = "olist-sample"
    hm_sample = "hm-sample"
    online_retail_sample = "online-retail-sample"


def _config(config: list[Path] | None, overrides: list[str] | None, warehouse: str | None,
            *extra_overlays: Path, extra: tuple[str, ...] = ()) -> Config:
    sets = list(extra) + list(overrides or [])
    if warehouse:
        sets.append(f"warehouse.path={warehouse}")
    return load_config(*extra_overlays, *(config or []), overrides=sets)


def _spark(cfg: Config):
    from jobs.spark import spark_session

    return spark_session(cfg.spark)


def print_frame(df, limit: int = 50, title: str | None = None) -> None:
    """Print up to ``limit`` rows of a DataFrame as a table."""
    rows = df.limit(limit + 1).collect()
    table = Table(title=title, show_lines=False)
    for name in df.columns:
        table.add_column(name)
    for row in rows[:limit]:
        table.add_row(*["NULL" if v is None else str(v) for v in row])
    out.print(table)
    if len(rows) > limit:
        out.print(f"(first {limit} rows shown)")


@app.command()
def generate(users: Annotated[Optional[int], typer.Option(help="Number of users.")] = None,
             days: Annotated[Optional[int], typer.Option(help="Days of activity.")] = None,
             seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
             config: ConfigOpt = None, set_: SetOpt = None, warehouse: WarehouseOpt = None) -> None:
    """Write synthetic input tables (with planted archetypes and bad rows) and their ground truth."""
    from jobs.ingest import run_generate

    extra = tuple(f"generator.{k}={v}" for k, v in (("users", users), ("days", days), ("seed", seed)) if v is not None)
    cfg = _config(config, set_, warehouse, extra=extra)
    run_generate(cfg, _spark(cfg))


@app.command()
def backtest(as_of: Annotated[Optional[str], typer.Option(
                 "--as-of", help="T: train before it, score at it (a local midnight; default: the latest date "
                                 "with a whole horizon after it).")] = None,
             horizon: Annotated[Optional[int], typer.Option(help="Days of outcome after T (model.horizon_days).")] = None,
             origins: Annotated[int, typer.Option(min=1, help="Also backtest at T - H, T - 2H, ...: how many dates.")] = 1,
             config: ConfigOpt = None, set_: SetOpt = None, warehouse: WarehouseOpt = None) -> None:
    """Out-of-time backtest of the model and every baseline, from the tiles a full run wrote."""
    from jobs.backtest import run_backtest

    # --as-of is read as the config reads as_of (a local time in time.zone, checked to be a midnight).
    extra = tuple(f"{k}={v}" for k, v in (("as_of", as_of), ("model.horizon_days", horizon)) if v is not None)
    cfg = _config(config, set_, warehouse, extra=extra)
    rows = run_backtest(cfg, _spark(cfg), cfg.as_of if as_of else None, origins, env=os.environ)
    table = Table(title="backtest (95% bootstrap interval over users)")
    for name in ("as_of", "metric", "method", "value", "interval", "users"):
        table.add_column(name)
    for r in sorted(rows, key=lambda r: (r[1], r[4], r[5])):
        value = "n/a" if r[6] is None else f"{r[6]:.3f}"
        interval = "" if r[7] is None else f"[{r[7]:.3f}, {r[8]:.3f}]"
        table.add_row(r[1].date().isoformat(), r[4], r[5] + (" (published)" if r[10] else ""), value, interval,
                      str(r[9]))
    out.print(table)


@app.command()
def full(config: ConfigOpt = None, set_: SetOpt = None, warehouse: WarehouseOpt = None) -> None:
    """Full recompute: validate all inputs, rebuild profiles and labels."""
    from jobs.full import run_full

    cfg = _config(config, set_, warehouse)
    run_full(cfg, _spark(cfg), env=os.environ)


@app.command()
def incremental(config: ConfigOpt = None, set_: SetOpt = None, warehouse: WarehouseOpt = None) -> None:
    """Process only new or changed input partitions, then refresh every profile and tag from the feature state."""
    from jobs.incremental import run_incremental

    cfg = _config(config, set_, warehouse)
    run_incremental(cfg, _spark(cfg), env=os.environ)


@app.command()
def ingest(mapping: Annotated[str, typer.Option(
               "--mapping", "-m", help="Mapping YAML (or a packaged one by dataset name, such as hm-sample).")],
           path: Annotated[Optional[Path], typer.Option(
               help="Directory the mapping's source files are relative to (default: the mapping file's).")] = None,
           since: Annotated[Optional[datetime], typer.Option(
               formats=["%Y-%m-%d"], help="Land only event days (local dates) from this one on.")] = None,
           until: Annotated[Optional[datetime], typer.Option(
               formats=["%Y-%m-%d"], help="Land only event days (local dates) before this one.")] = None,
           config: ConfigOpt = None, set_: SetOpt = None, warehouse: WarehouseOpt = None) -> None:
    """Land your own tables through a mapping file onto users, items, transactions, browse and social."""
    from jobs.mapping.ingest import resolve, run_mapping_ingest

    cfg = _config(config, set_, warehouse)
    spec, root = resolve(cfg, mapping, str(path) if path else None)  # a bad mapping stops here, before Spark
    run_mapping_ingest(cfg, _spark(cfg), spec, root, since.date() if since else None,
                       until.date() if until else None, env=os.environ)


@app.command()
def sql(query: Annotated[str, typer.Argument(help="Spark SQL over profiles, labels, quarantine, runs and inputs.")],
        limit: Annotated[int, typer.Option(help="Rows to print.")] = 50,
        at: Annotated[Optional[list[str]], typer.Option(
            "--at", help="Time travel: TABLE=VERSION, registered as TABLE_vVERSION beside TABLE.")] = None,
        config: ConfigOpt = None, set_: SetOpt = None, warehouse: WarehouseOpt = None) -> None:
    """Run Spark SQL over every Portrait table, registered by name, and print the answer."""
    from jobs.full import open_warehouse
    from jobs.sql import parse_versions, run_sql

    try:
        versions = parse_versions(at or [])
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--at") from None
    cfg = _config(config, set_, warehouse)
    print_frame(run_sql(open_warehouse(cfg, _spark(cfg)), query, versions), limit)


@app.command()
def demo(dataset: Annotated[Dataset, typer.Option(help="Which data to run on.")] = Dataset.generated,
         path: Annotated[Optional[Path], typer.Option(help="Directory in the dataset's format (its mapping file).")] = None,
         users: Annotated[Optional[int], typer.Option(help="Generated users.")] = None,
         days: Annotated[Optional[int], typer.Option(help="Generated days.")] = None,
         config: ConfigOpt = None, set_: SetOpt = None, warehouse: WarehouseOpt = None) -> None:
    """Land a dataset, run the full recompute, and show what the tables hold."""
    from jobs.demo import run_demo

    overlays = () if dataset is Dataset.generated else (overlay_path(dataset.value),)
    extra = tuple(f"generator.{k}={v}" for k, v in (("users", users), ("days", days)) if v is not None)
    cfg = _config(config, set_, warehouse, *overlays, extra=extra)
    run_demo(cfg, _spark(cfg), dataset.value, str(path) if path else None, print_frame, env=os.environ)


@app.command()
def pseudonym(raw_ids: Annotated[list[str], typer.Argument(help="Raw user ids from the source systems.")],
              config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Print the pseudonym Portrait stores for each raw user id (needs the same key as the job)."""
    from jobs.privacy import load_key
    from jobs.privacy import pseudonym as to_pseudonym

    cfg = _config(config, set_, None)
    key = load_key(cfg.privacy.key_file, True, os.environ)  # never invent a key just to look one up
    for raw in raw_ids:
        out.print(f"{raw}\t{to_pseudonym(raw, key)}")


@app.command()
def report(out_file: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("portrait-report.html"),
           config: ConfigOpt = None, set_: SetOpt = None, warehouse: WarehouseOpt = None) -> None:
    """Write one self-contained HTML report: data quality, segments, tags, features, model metrics, runs."""
    from jobs.full import open_warehouse
    from jobs.report import collect_report_data, render_report

    cfg = _config(config, set_, warehouse)
    out_file.write_text(render_report(collect_report_data(open_warehouse(cfg, _spark(cfg))), cfg.warehouse.path))
    err.print(f"wrote {out_file} ({out_file.stat().st_size / 1024:,.0f} KiB); open it in any browser")


@app.command()
def lookalike(seed_users: Annotated[Path, typer.Option("--seed-users", help="File with one user id per line.")],
              k: Annotated[int, typer.Option("--k", help="Audience size (at least privacy.k_anonymity_floor).")],
              out_file: Annotated[Optional[Path], typer.Option("--out", help="Write the audience as CSV.")] = None,
              raw_ids: Annotated[bool, typer.Option(help="Seed ids are raw source ids: pseudonymise them.")] = False,
              config: ConfigOpt = None, set_: SetOpt = None, warehouse: WarehouseOpt = None) -> None:
    """The k users nearest to the seed users by profile embedding."""
    from jobs.audiences import lookalike_audience, read_seed_ids, write_csv

    cfg = _config(config, set_, warehouse)
    seeds = read_seed_ids(seed_users, raw_ids, cfg, os.environ)
    audience = lookalike_audience(cfg, _spark(cfg), seeds, k)
    if out_file:
        err.print(f"wrote {write_csv(audience, out_file):,} users to {out_file}")
    else:
        print_frame(audience, limit=k)


@app.command()
def forget(users: Annotated[list[str], typer.Option("--user", help="Raw user id to erase (repeat for more).")],
           config: ConfigOpt = None, set_: SetOpt = None, warehouse: WarehouseOpt = None) -> None:
    """Erase users from every table, the embedding cache and checkpoints; vacuum so the bytes are gone."""
    from jobs.forget import run_forget
    from jobs.full import open_warehouse

    cfg = _config(config, set_, warehouse)
    erasure = run_forget(cfg, open_warehouse(cfg, _spark(cfg)), users, env=os.environ)
    err.print(f"erased {erasure.subjects} user(s): " + ", ".join(f"{t} {n:,}" for t, n in erasure.rows_removed.items()))


@app.command()
def history(user: Annotated[str, typer.Option(help="User id as stored (a pseudonym; see 'portrait pseudonym').")],
            columns: Annotated[str, typer.Option(help="Comma-separated profile columns to show.")] =
            "frequency,monetary,recency_days,days_since_last_event,purchase_propensity,churn_risk,segment_id",
            config: ConfigOpt = None, set_: SetOpt = None, warehouse: WarehouseOpt = None) -> None:
    """A user's profile in every version of the profiles table (Delta time travel), oldest first."""
    from jobs.full import open_warehouse
    from jobs.history import profile_history

    cfg = _config(config, set_, warehouse)
    print_frame(profile_history(open_warehouse(cfg, _spark(cfg)), user, columns.split(",")), limit=1000)


@app.command()
def changes(from_version: Annotated[int, typer.Option("--from", help="Older labels table version.")],
            to_version: Annotated[int, typer.Option("--to", help="Newer labels table version.")],
            limit: Annotated[int, typer.Option(help="Rows to print.")] = 50,
            config: ConfigOpt = None, set_: SetOpt = None, warehouse: WarehouseOpt = None) -> None:
    """Tags added and removed between two versions of the labels table."""
    from jobs.full import open_warehouse
    from jobs.history import tag_changes

    cfg = _config(config, set_, warehouse)
    print_frame(tag_changes(open_warehouse(cfg, _spark(cfg)), from_version, to_version), limit)


@app.command("export-segment")
def export_segment(segment: Annotated[int, typer.Option(help="segment_id from the segments table.")],
                   out_file: Annotated[Path, typer.Option("--out", help="CSV file to write.")],
                   config: ConfigOpt = None, set_: SetOpt = None, warehouse: WarehouseOpt = None) -> None:
    """Export one segment's user ids (refused below the k-anonymity floor)."""
    from jobs.audiences import segment_members, write_csv

    cfg = _config(config, set_, warehouse)
    err.print(f"wrote {write_csv(segment_members(cfg, _spark(cfg), segment), out_file):,} users to {out_file}")


def main() -> None:
    from jobs.incremental import StateMissing
    from jobs.mapping.spec import MappingError
    from jobs.model.lookalike import AudienceRefused
    from jobs.model.serving import ServingModelMissing
    from jobs.privacy import PrivacyError
    from jobs.storage import StorageError

    try:
        app()
    except (ConfigError, MappingError, StorageError, PrivacyError, AudienceRefused, StateMissing, ServingModelMissing,
            FileNotFoundError) as error:
        err.print(f"[bold red]error:[/] {error}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
