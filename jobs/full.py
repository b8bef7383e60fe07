"""The full recompute: validate every input row once, write its daily tiles, and fold profiles and labels
from them (the incremental job from empty state: the same tiles, the same folds)."""
from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass
from functools import reduce
from datetime import date, datetime
from typing import Callable, Collection, Mapping, Sequence

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from conf import Config
from jobs.embed import embed_stage
from jobs.images import failed_images_message, image_stage
from jobs.faults import fault_point
from jobs.features.state_profiles import (EVENT_TABLES, Vectors, day_states, events_seen, fold_key,
                                          profiles_from_state, settled_tables, spanned_tables)
from jobs.privacy import ingest_privacy
from jobs.frames import checkpointed, conform
from jobs.model.stages import ModelOutputs, fold_dates, model_stages
from jobs.clock import midnight_after
from jobs.features.text_vectors import title_vectors
from jobs.inputs import read_inputs
from jobs.ledger import PROFILES_APP, StepPlan, already_committed, commit_step, plan_step
from jobs.runs import RunRecorder, write_run
from jobs.storage import Warehouse
from jobs.tags import DataGaps, rule_tags
from jobs.validation import (ValidationReport, clean_rows, quarantine_message, quarantine_rows, tag_inputs,
                             unknown_items_message)
from jobs.validation.validate import Counts, ObservedTable, table_reason_counts
from schemas import INPUT_TABLES, QUARANTINE, SETTLED_TABLES, STATE_TABLES, TableSpec
from schemas.profiles import profiles_schema

# In write order; each commits the step. The quarantine goes first: its write is also validation's count.
STEP_OUTPUTS = ("quarantine", *STATE_TABLES, *SETTLED_TABLES, "profiles", "labels", "segments", "model_metrics")


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    as_of: datetime | None  # None: an incremental run that found nothing pending
    report: ValidationReport
    rows_out: dict[str, int]


def open_warehouse(cfg: Config, spark: SparkSession) -> Warehouse:
    """The warehouse, with the profiles schema that matches the configured RFM windows."""
    f = cfg.features
    profiles = TableSpec("profiles", profiles_schema(f.rfm_windows, f.short_windows), ("user_id",))
    return Warehouse(cfg.warehouse.path, spark, cfg.warehouse.engine, specs={"profiles": profiles})


QuarantineWrite = Callable[[DataFrame], bool]  # writes the quarantine rows; False if an earlier attempt had


def validate(tagged: dict[str, DataFrame], cfg: Config, run_id: str, at: datetime,
             write_quarantine: QuarantineWrite | None = None, quarantined: Collection[str] | None = None
             ) -> tuple[dict[str, DataFrame], ValidationReport]:
    """Clean tables and the reconciled counts.

    With ``write_quarantine``, the failed rows of the ``quarantined`` tables (default: all) go through it, and
    that pass over each cached table also counts its rows (``ObservedTable``). A table it did not read (left
    out, or written by an earlier attempt of the step), or whose reader gave reasons of its own, is counted in
    a pass of its own.
    """
    observed: dict[str, Counts | None] = {}
    if write_quarantine is not None:
        watched = {t: ObservedTable.of(t, df, cfg.validation) for t, df in tagged.items()
                   if quarantined is None or t in quarantined}
        failed = [w.rows.transform(quarantine_rows(t, run_id, at)) for t, w in watched.items()]
        rows = reduce(DataFrame.unionByName, failed) if failed else \
            next(iter(tagged.values())).sparkSession.createDataFrame([], QUARANTINE)
        if write_quarantine(rows):
            observed = {t: w.counts() for t, w in watched.items()}
    counts = {t: c if (c := observed.get(t)) is not None else table_reason_counts(t, df, cfg.validation)
              for t, df in tagged.items()}
    return {t: df.transform(clean_rows(t)) for t, df in tagged.items()}, ValidationReport.from_counts(counts)


def quarantine_write(wh: Warehouse, rec: RunRecorder, plan: StepPlan) -> QuarantineWrite:
    """Append the step's quarantine rows once (``write_once``)."""
    return lambda rows: bool(write_once(wh, rec, plan, [("quarantine", wh.append, rows)]))


def read_and_validate(cfg: Config, wh: Warehouse, env: Mapping[str, str] | None, rec: RunRecorder,
                      cleanup: ExitStack, versions: dict[str, int] | None = None,
                      partitions: dict[str, list[date]] | None = None, write_quarantine: QuarantineWrite | None = None,
                      quarantined: Collection[str] | None = None, events_cached: ExitStack | None = None
                      ) -> tuple[dict[str, DataFrame], ValidationReport]:
    """Read the inputs (at ``versions``; only ``partitions`` of the tables it names), pseudonymise them, and
    split each into clean rows and quarantine (``validate``: written through ``write_quarantine``, if given).
    The validated rows stay cached until ``cleanup`` closes; the event tables' until ``events_cached`` does, if
    given: the caller closes it once their last readers (the tiles, the texts to embed) are done, so that the
    folds after them have the memory those rows held (at 80,000 users over 180 days the profiles write of a full
    run failed for want of it)."""
    private = ingest_privacy(cfg.privacy, env, rec)  # strict mode without a key stops here, first
    with rec.stage("read") as st:
        raw, absent = read_inputs(wh, cfg.inputs, versions, partitions)
        raw = {t: df.transform(private) for t, df in raw.items()}
        st.rows_out = len(raw)
    with rec.stage("validate") as st:
        tagged = {t: df.persist(StorageLevel.MEMORY_AND_DISK)
                  for t, df in tag_inputs(raw, cfg.validation, cfg.time.zone).items()}
        for table, df in tagged.items():
            held_by = events_cached if events_cached is not None and table in EVENT_TABLES else cleanup
            held_by.callback(df.unpersist)
        clean, report = validate(tagged, cfg, rec.run_id, rec.started_at, write_quarantine, quarantined)
        st.rows_in, st.rows_out = sum(report.rows_in.values()), sum(report.rows_clean.values())
        rec.rows_in.update(report.rows_in)
        rec.rows_quarantined.update(report.rows_quarantined)
        for table, reasons in report.by_reason.items():
            for reason, n in reasons.items():
                rec.console.print("  " + quarantine_message(table, reason, n, report.rows_in[table], cfg.validation))
        for table, n in report.unknown_items.items():
            rec.rows_out[f"unknown_item_id:{table}"] = n
            rec.console.print("  " + unknown_items_message(table, n, report.rows_in[table]))
        for table in absent:
            rec.console.print(f"  {table}: table absent; features that need it are null")
    return clean, report


def embedded_vectors(cfg: Config, wh: Warehouse, clean: dict[str, DataFrame], interactions: DataFrame,
                     rec: RunRecorder, cleanup: ExitStack) -> Vectors:
    """Embed every text and photo not in its cache; the text vectors, and the title and photo vectors of the
    catalogue (photos: of the items in ``interactions``, the ``state_interactions`` tiles the run reads: all of them
    in a full run, those ``photo_tiles`` finds in a step)."""
    texts = titles = images = None
    if cfg.embedding.enabled:
        with rec.stage("embed") as st:
            texts, counts = embed_stage(wh, cfg.embedding, clean["social"], clean["items"], rec.run_id)
            st.rows_in, st.rows_out = counts.texts, counts.embedded
            rec.rows_out.update({"texts_embedded": counts.embedded, "texts_from_cache": counts.from_cache})
        titles = title_vectors(clean["items"], texts, cfg.embedding.item_text)
    if cfg.images.enabled:
        with rec.stage("images") as st:
            images, found = image_stage(wh, cfg.images, clean["items"], interactions, rec.run_id, cleanup)
            st.rows_in, st.rows_out = found.images, found.embedded
            rec.rows_out.update({"images_embedded": found.embedded, "images_from_cache": found.from_cache})
            if found.failed:
                rec.details["image_failures"] = json.dumps(found.failed, sort_keys=True)
                rec.console.print("  " + failed_images_message(found))
    return Vectors(texts, titles, images)


Write = tuple[str, Callable[..., None], DataFrame]  # (table, Warehouse method, rows)


def write_once(wh: Warehouse, rec: RunRecorder, plan: StepPlan, writes: list[Write]) -> list[str]:
    """One commit per output table, each tagged with the run id and the step (the ledger commit comes after);
    returns the tables written.

    A table that already holds the step (an earlier attempt died after writing it) is skipped, so a
    rerun never appends the step's quarantine rows or metrics twice.
    """
    written = []
    for table, write, df in writes:
        if already_committed(wh, table, plan):
            rec.console.print(f"  {table}: step {plan.step} was committed by an earlier attempt; skipped")
            continue
        write(table, df, run_id=rec.run_id, txn=plan.txn)
        written.append(table)
        fault_point(f"after_write:{table}")
    return written


def write_tiles(wh: Warehouse, rec: RunRecorder, plan: StepPlan, clean: dict[str, DataFrame], zone: str
                ) -> dict[str, DataFrame]:
    """Every tile table rebuilt from all clean rows, then read back: the profiles, the training snapshot and
    the labels all fold from these small tables, not from the events."""
    with rec.stage("tiles") as st:
        write_once(wh, rec, plan, [(table, wh.overwrite, rows) for table, rows in day_states(clean, zone).items()])
        tiles = {table: wh.read(table) for table in STATE_TABLES}
        st.rows_out = sum(wh.count(table) for table in STATE_TABLES)
    return tiles


def write_settled(wh: Warehouse, rec: RunRecorder, plan: StepPlan, settled: dict[str, DataFrame],
                  appended: Collection[str] = ()) -> dict[str, DataFrame]:
    """Replace each settled table (``write_once``), or append to those ``appended`` (a step's crossing summaries),
    then read them back."""
    with rec.stage("settle") as st:
        write_once(wh, rec, plan, [(table, wh.append if table in appended else wh.overwrite, rows)
                                   for table, rows in settled.items()])
        st.rows_out = sum(wh.count(table) for table in settled)
    return {table: wh.read(table) for table in settled}


def split_settled(cfg: Config, wh: Warehouse, plan: StepPlan) -> frozenset[str]:
    """The settled tables this attempt of the step writes split at the model's fold dates (``fold_dates``), for its
    snapshots to read. Not one an earlier attempt wrote (``write_once`` keeps it): that attempt may have run other
    code, which split it elsewhere or not at all, so the snapshots fold every tile under it instead."""
    return frozenset(t for t in spanned_tables(cfg) if not already_committed(wh, t, plan))


def write_profiles_and_labels(wh: Warehouse, rec: RunRecorder, plan: StepPlan, profiles: DataFrame,
                              tags: list[Callable[[DataFrame], DataFrame]], more: Sequence[Write] = ()) -> None:
    """Write ``profiles`` (``write_once``), then the labels: each of ``tags`` applied to the profiles as
    written, read back; then ``more``.

    Without the model, the fold runs once, in the profiles write, with nothing profile-sized held in memory;
    the tags then read their dozen columns from a columnar table, instead of every column of a materialised
    frame on each of their passes (the spender ranks take three).
    """
    write_once(wh, rec, plan, [("profiles", wh.overwrite, profiles.transform(conform(wh.spec("profiles").schema,
                                                                                   "profiles")))])
    written = wh.read("profiles")  # after the write: this step's profiles, whichever attempt wrote them
    labels = reduce(DataFrame.unionByName, [written.transform(t) for t in tags])
    write_once(wh, rec, plan, [("labels", wh.overwrite, labels), *more])


def write_outputs(wh: Warehouse, rec: RunRecorder, plan: StepPlan, profiles: DataFrame,
                  tags: list[Callable[[DataFrame], DataFrame]], model: ModelOutputs | None,
                  report: ValidationReport) -> None:
    """The full job's outputs after the quarantine and the tiles, then the ledger."""
    more: list[Write] = []
    if model is not None:
        more += [("segments", wh.overwrite, model.segments), ("model_metrics", wh.append, model.metrics)]
    with rec.stage("write") as st:
        write_profiles_and_labels(wh, rec, plan, profiles, tags, more)
        commit_step(wh, plan, rec.run_id, rec.started_at)
        rec.rows_out.update({t: wh.count(t) for t in ("profiles", "labels")})
        rec.rows_out["quarantine"] = sum(report.rows_quarantined.values())
        st.rows_out = sum(rec.rows_out[t] for t in ("profiles", "labels", "quarantine"))


def succeeded(wh: Warehouse, rec: RunRecorder, as_of: datetime | None, report: ValidationReport) -> RunSummary:
    """Record the run as succeeded, print its summary, and return it."""
    write_run(wh, rec, "succeeded")
    rec.console.print(rec.summary())
    return RunSummary(rec.run_id, as_of, report, dict(rec.rows_out))


def run_full(cfg: Config, spark: SparkSession, recorder: RunRecorder | None = None,
             env: Mapping[str, str] | None = None) -> RunSummary:
    """Read inputs, validate, build features and tags, write profiles, labels and quarantine.

    ``env`` is where the pseudonymisation key may come from (the CLI passes the process environment).
    """
    rec = recorder or RunRecorder("full")
    wh = open_warehouse(cfg, spark)
    rec.details["engine"] = wh.engine
    cleanup = ExitStack()  # cached frames, released when the run ends, however it ends
    try:
        plan = plan_step(wh, PROFILES_APP, INPUT_TABLES, recompute=True, outputs=STEP_OUTPUTS)
        rec.details["step"] = str(plan.step)
        if plan.resumed:
            rec.console.print(f"  step {plan.step}: resuming an attempt that died after writing some outputs; "
                              f"reading the input versions it read ({plan.txn.inputs})")
        events_cached = cleanup.enter_context(ExitStack())
        clean, report = read_and_validate(cfg, wh, env, rec, cleanup, plan.versions,
                                          write_quarantine=quarantine_write(wh, rec, plan), events_cached=events_cached)
        tiles = write_tiles(wh, rec, plan, clean, cfg.time.zone)
        seen = events_seen(tiles["state_events"], cfg.validation.max_days_after_partition)
        as_of = cfg.as_of or midnight_after(seen.latest, cfg.time.zone)
        rec.details["as_of"] = as_of.isoformat()
        # The vectors first: the interest vector's settled sums weigh the items' title vectors.
        vectors = embedded_vectors(cfg, wh, clean, tiles["state_interactions"], rec, cleanup)
        events_cached.close()  # nothing reads the events' rows after the tiles and the texts
        tiles |= {"users": clean["users"], "items": clean["items"]}
        # Split where the model's snapshots fold too, so that each tile is summarised once for every fold.
        spans = fold_dates(cfg, as_of)
        split = split_settled(cfg, wh, plan) if spans else frozenset()
        tiles |= write_settled(wh, rec, plan, settled_tables(cfg, as_of, vectors, spans=spans)(tiles))
        rec.partitions = sorted({str(r[0]) for r in tiles["state_events"].select("dt").distinct().collect()})
        present = seen.sources
        gaps = DataGaps(browse_missing="browse" not in present, social_missing="social" not in present)
        rec.details["fold"] = fold_key(cfg, present)
        with rec.stage("features") as st:
            profiles = profiles_from_state(cfg, as_of, rec.started_at, present, vectors)(tiles)
            if cfg.model.enabled:
                # Materialise once: scoring and segments build on it many times. Without the model, the fold
                # runs in the profiles write.
                profiles = checkpointed(profiles, cleanup)
            st.rows_in = st.rows_out = report.rows_clean["users"]  # a profile per clean user
        tags = [rule_tags(cfg.tags, as_of, cfg.time.zone, gaps)]
        model = None
        if cfg.model.enabled:
            model = model_stages(cfg, spark, wh, tiles, profiles, as_of, present, vectors, rec, cleanup, split)
            # The model's tags come from its own stages (segments and their marks): added as they are.
            profiles, tags = model.profiles, [*tags, lambda _: model.labels]
        write_outputs(wh, rec, plan, profiles, tags, model, report)
        return succeeded(wh, rec, as_of, report)
    except Exception as error:
        write_run(wh, rec, "failed", error)
        raise
    finally:
        cleanup.close()
