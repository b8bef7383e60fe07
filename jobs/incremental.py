"""The incremental job: validate only new or changed input partitions, fold them into the feature state,
and refresh every profile from that state, as a full recompute over every partition would give it.

Every profile is rewritten each step: a day passing moves every user's as-of-relative columns
(recency, the rolling windows), and every tag that depends on them (docs/incremental-design.md).
What the step saves is reading, validating and embedding history, and aggregating it from rows.
"""
from __future__ import annotations

import json
from contextlib import ExitStack
from datetime import date, datetime
from functools import partial
from typing import Mapping

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf import Config, ValidationConf
from jobs.clock import aware, is_local_midnight, local_date, midnight_after
from jobs.full import (RunSummary, Write, embedded_vectors, open_warehouse, quarantine_write, read_and_validate,
                       succeeded, write_once, write_profiles_and_labels, write_settled)
from jobs.features.state_profiles import (EVENT_TABLES, CatalogueChange, Family, day_states, feature_families, fold_key,
                                          events_seen, moved_settled_tables, photo_tiles,
                                          profiles_from_state, refolded_users, refreshed_profiles,
                                          rewritten_partitions, settled_before, touched_users, updated_state)
from jobs.features.text_vectors import tiled_texts
from jobs.frames import checkpointed
from jobs.model.serving import load_serving
from jobs.model.stages import model_labels, rescored
from jobs.ledger import (PROFILES_APP, StepPlan, commit_step, partitions_of, plan_step, processed_version,
                         version_before_step)
from jobs.runs import RunRecorder, write_run
from jobs.storage import Warehouse
from jobs.tags import DataGaps, rule_tags
from jobs.validation import ValidationReport, clean_rows
from jobs.validation.validate import tag_table
from schemas import INPUT_TABLES, SETTLED_TABLES, STATE_TABLES

REFERENCE_TABLES = ("users", "items")
OUTPUTS = ("quarantine", *STATE_TABLES, *SETTLED_TABLES, "profiles", "labels")  # in write order; each commits the step


class StateMissing(RuntimeError):
    """The warehouse has no feature state yet: a full recompute has to write it first."""


def partitions_to_read(plan: StepPlan, wh: Warehouse, catalogue: CatalogueChange | None = None
                       ) -> tuple[dict[str, list[date]], str | None]:
    """The ``dt`` partitions of each event table the step reads, and why it reads more than the pending ones.

    Validation checks each event row against the clean users and items. When ``users`` changed, a row
    quarantined as from an unknown user may now be clean, or a clean one may now be unknown, but only
    rows of the users whose rows changed: their partitions are validated again too. Likewise when
    ``items`` changed, for the items that came into or went out of the clean catalogue (``catalogue``,
    from ``catalogue_change``); an item whose attributes changed moves features, not validity. Without
    the version to compare with (vacuumed), every partition is validated again, as a full recompute would.
    """
    pending: dict[str, set[date]] = {t: set() for t in EVENT_TABLES}
    for p in plan.pending:
        if p.partition.source_table in pending:
            pending[p.partition.source_table].add(p.partition.dt)
    changed = {p.partition.source_table for p in plan.pending}

    def every(table: str) -> tuple[dict[str, list[date]], str]:
        return ({t: [p.dt for p in partitions_of(wh, t, plan.versions[t])] for t in EVENT_TABLES if t in plan.versions},
                f"{table} changed, and the version the last step read is gone (vacuumed), so every event "
                f"partition is validated again")

    def holding(ids: DataFrame, key: str) -> int:
        """Add the partitions with rows of these ids; returns how many ids."""
        count = ids.count()
        for table in (t for t in EVENT_TABLES if t in plan.versions and count):
            rows = wh.read(table, version=plan.versions[table]).join(ids, key, "left_semi")
            pending[table] |= {r[0] for r in rows.select("dt").distinct().collect()}
        return count

    notes = []
    if "items" in changed:
        if catalogue is None:
            return every("items")
        notes.append(f"items changed ({holding(catalogue.came_or_went().localCheckpoint(eager=True), 'item_id'):,} "
                     f"item ids came or went)")
    if "users" in changed:
        users = changed_users(wh, plan)
        if users is None:
            return every("users")
        notes.append(f"users changed ({holding(users, 'user_id'):,} user ids)")
    why = "; ".join(notes) + ": the partitions holding their rows are validated again" if notes else None
    return {t: sorted(dts) for t, dts in pending.items()}, why


def catalogue_change(wh: Warehouse, plan: StepPlan, validation: ValidationConf) -> CatalogueChange | None:
    """The clean catalogue the last step read against the one this step reads; None if that one is gone."""
    last = processed_version(wh, "items")
    if last is None:
        return None

    def clean(version: int) -> DataFrame:
        rows = wh.read("items", version=version).transform(tag_table("items", validation))
        return rows.transform(clean_rows("items")).localCheckpoint(eager=True)
    try:
        then = clean(last)
    except Exception:  # noqa: BLE001  (the old version's files were vacuumed: whatever the store raises, no diff)
        return None
    return CatalogueChange(then, clean(plan.versions["items"]))


def changed_users(wh: Warehouse, plan: StepPlan) -> DataFrame | None:
    """user_id of every ``users`` row added, removed or changed since the last step; None if that version is gone."""
    last = processed_version(wh, "users")
    if last is None:
        return None
    try:
        now, then = wh.read("users", version=plan.versions["users"]), wh.read("users", version=last)
        changed = now.exceptAll(then).unionByName(then.exceptAll(now)).select("user_id").dropna().distinct()
        return changed.localCheckpoint(eager=True)
    except Exception:  # noqa: BLE001  (the old version's files were vacuumed: whatever the store raises, no diff)
        return None


def profiles_as_of(wh: Warehouse) -> datetime | None:
    """The date today's profiles are computed as of (a step with nothing new but a later one still runs)."""
    found = wh.read("profiles").select("as_of").limit(1).collect() if wh.exists("profiles") else []
    if not found:
        return None
    return aware(found[0][0])


def profiles_fold_key(wh: Warehouse) -> str | None:
    """The ``fold_key`` of the run that wrote today's profiles, from its ``runs`` row; None if unknown
    (a run killed before writing its row). ``forget`` records the key of the profiles it rewrote."""
    # The last commit that names its run: maintenance (a vacuum, an operator's optimize) changes no row.
    named = [h for h in wh.history("profiles") if h.get("run_id")]
    latest = max(named, key=lambda h: h["version"])["run_id"] if named else None
    found = (wh.read("runs").filter(F.col("run_id") == F.lit(latest)).select(F.col("details")["fold"])
             .limit(1).collect() if latest and wh.exists("runs") else [])
    return found[0][0] if found else None


def current_model_run(wh: Warehouse) -> str | None:
    """The run whose model scored today's profiles: the incremental job scores with it too."""
    if not wh.exists("profiles"):
        return None
    found = wh.read("profiles").select("model_run_id").dropna().limit(1).collect()
    return found[0][0] if found else None


def run_incremental(cfg: Config, spark: SparkSession, recorder: RunRecorder | None = None,
                    env: Mapping[str, str] | None = None) -> RunSummary:
    """Process the input partitions no step has processed yet (new days, late data), then refresh profiles.

    A run with nothing pending writes nothing but its ``runs`` row, unless ``as_of`` is set to another
    date than today's profiles': then every profile is refreshed as of it (windows slide, users go dormant).
    """
    rec = recorder or RunRecorder("incremental")
    wh = open_warehouse(cfg, spark)
    rec.details["engine"] = wh.engine
    cleanup = ExitStack()  # cached frames, released when the run ends, however it ends
    try:
        missing = [t for t in (*STATE_TABLES, *SETTLED_TABLES) if not wh.exists(t)]
        if missing:
            raise StateMissing(f"incremental: no feature state under {wh.root} ({', '.join(missing)}); run "
                               f"'portrait full' once first: it writes the state this job continues from")
        if cfg.embedding.enabled and not cfg.embedding.cache:
            raise ValueError("incremental: embedding.cache is off, but the text vectors fold every text "
                             "embedded so far from the cache; turn it on or disable embedding")
        plan = plan_step(wh, PROFILES_APP, INPUT_TABLES, outputs=OUTPUTS)
        rec.details["step"] = str(plan.step)
        if plan.is_empty() and (cfg.as_of is None or cfg.as_of == profiles_as_of(wh)):
            rec.details["noop"] = "true"
            rec.console.print(f"  nothing pending: every input partition was processed by step {plan.step - 1}; "
                              f"no table was written")
            return succeeded(wh, rec, None, ValidationReport())
        again = {p.partition.source_table for p in plan.pending}
        catalogue = catalogue_change(wh, plan, cfg.validation) if "items" in again else None
        partitions, why = partitions_to_read(plan, wh, catalogue)
        if why:
            rec.console.print(f"  {why}")
        rec.partitions = sorted({str(dt) for dts in partitions.values() for dt in dts})
        # Unchanged users and items are read only to validate against: their bad rows are in quarantine already.
        events_cached = cleanup.enter_context(ExitStack())
        clean, report = read_and_validate(cfg, wh, env, rec, cleanup, plan.versions, partitions,
                                          write_quarantine=quarantine_write(wh, rec, plan),
                                          quarantined=[t for t in INPUT_TABLES if t not in REFERENCE_TABLES or t in again],
                                          events_cached=events_cached)
        with rec.stage("state") as st:
            fresh = day_states(clean, cfg.time.zone)
            # The state this step starts from (an earlier attempt may have written some tables already).
            before = {t: wh.read(t, version=version_before_step(wh, t, plan)) for t in STATE_TABLES}
            # Only the partitions read are rewritten; a step with none (a later as_of alone) writes no state.
            writes: list[Write] = [(t, partial(wh.overwrite_partitions, partitions=rewritten_partitions(t, partitions)),
                                    wh.read(t).transform(updated_state(t, fresh[t], partitions)))
                                   for t in STATE_TABLES]
            write_once(wh, rec, plan, writes)
            state = {t: wh.read(t) for t in STATE_TABLES}
            st.rows_out = sum(report.rows_clean.get(t, 0) for t in EVENT_TABLES)
        was, lead = profiles_as_of(wh), cfg.validation.max_days_after_partition
        since = local_date(was, cfg.time.zone) if was is not None else None
        seen = events_seen(state["state_events"], lead, since)
        as_of = cfg.as_of or midnight_after(seen.latest, cfg.time.zone)
        rec.details["as_of"] = as_of.isoformat()
        present = seen.sources
        gaps = DataGaps(browse_missing="browse" not in present, social_missing="social" not in present)
        key = fold_key(cfg, present)
        rec.details["fold"] = key
        # Untouched users keep their columns only from profiles folded alike, as of a whole day.
        folded_alike = is_local_midnight(was, cfg.time.zone) and profiles_fold_key(wh) == key
        written = clean["social"]
        if not folded_alike and cfg.embedding.enabled and wh.exists("social"):
            # Every user is folded again, maybe with another encoder (the key holds it): the texts of earlier
            # steps are embedded too where the cache lacks them, as a full run would.
            written = tiled_texts(wh.read("social", version=plan.versions.get("social")), state["state_texts"])
        # The settled tables as the step found them, and the partition each was settled before: where the profiles'
        # as_of put it (both are written by the same runs), so an empty table has a boundary too. Folded with other
        # settings (weights, an encoder, the filing bound), they are settled again from all the tiles, as a full
        # run would.
        found_settled = {t: wh.read(t, version=version_before_step(wh, t, plan)) for t in SETTLED_TABLES}
        old_before = {t: settled_before(cfg, was, t) if folded_alike else None for t in SETTLED_TABLES}
        rewritten = {t: rewritten_partitions(t, partitions) for t in STATE_TABLES}
        photographed = photo_tiles(cfg, as_of, old_before["settled_image_interest"], state["state_interactions"],
                                   before["state_interactions"], rewritten["state_interactions"], catalogue)
        vectors = embedded_vectors(cfg, wh, {**clean, "social": written}, photographed, rec, cleanup)
        events_cached.close()  # nothing reads the day's event rows after the tiles and the texts
        state |= write_settled(wh, rec, plan, *moved_settled_tables(cfg, as_of, vectors, found_settled, old_before,
                                                                    {**state, "items": clean["items"]}, before,
                                                                    rewritten, catalogue))
        with rec.stage("features") as st:
            inputs = {**state, "users": clean["users"], "items": clean["items"]}
            if folded_alike:
                found: dict[tuple, DataFrame] = {}  # families on the same tables and windows touch the same users

                def touched(family: Family) -> DataFrame:
                    key = (family.tables, family.windows, family.item_columns, family.catalogue_columns)
                    if key not in found:
                        found[key] = touched_users(family, state, before, rewritten, was, as_of, cfg.time.zone,
                                                   cfg.validation.max_days_after_partition, catalogue)
                    return found[key]
                old = wh.read("profiles")
                families = feature_families(cfg, as_of, inputs["items"], vectors)
                refolded = checkpointed(refolded_users(families, touched, inputs["users"], old), cleanup)
                counts = {r["family"]: r["count"] for r in refolded.groupBy("family").count().collect()}
                rec.details["touched_users"] = json.dumps({f.name: counts.get(f.name, 0) for f in families},
                                                          sort_keys=True)
                profiles = refreshed_profiles(cfg, as_of, rec.started_at, present, old, refolded, families)(inputs)
            else:
                rec.console.print("  the profiles were folded with other settings or tables: every user is folded")
                profiles = profiles_from_state(cfg, as_of, rec.started_at, present, vectors)(inputs)
            st.rows_out = report.rows_clean["users"]  # a profile per clean user
        tags = [rule_tags(cfg.tags, as_of, cfg.time.zone, gaps)]
        model_run = current_model_run(wh) if cfg.model.enabled else None
        if model_run is not None:
            with rec.stage("score"):
                bundle, segments = load_serving(cfg.model.serving_dir, model_run)
                # Scoring reads the profiles twice (the network's inputs, and the frame its outputs join to):
                # folded once, here, rather than twice inside the write.
                profiles = checkpointed(profiles, cleanup).transform(rescored(cfg, bundle, segments))
                tags.append(model_labels(cfg, segments.marks))
                rec.details["model_run_id"] = model_run
        elif cfg.model.enabled:
            rec.console.print("  profiles hold no model scores yet (no full run trained one): features and rule "
                              "tags only")
        with rec.stage("write") as st:
            # Every profile is refolded or slid each step, so the tables are replaced whole: executors write the
            # files and one commit swaps them in. (A MERGE would say the same, through a source collected on
            # the driver.) What the step no longer produces (a user erased, a tag no longer earned) is gone.
            # Without the model, the fold runs here, once, in the profiles write.
            write_profiles_and_labels(wh, rec, plan, profiles, tags)
            commit_step(wh, plan, rec.run_id, rec.started_at)
            rec.rows_out.update({t: wh.count(t) for t in ("profiles", "labels")})
            rec.rows_out["quarantine"] = sum(v for t, v in report.rows_quarantined.items()
                                             if t not in REFERENCE_TABLES or t in again)
            st.rows_out = rec.rows_out["profiles"] + rec.rows_out["labels"]
        return succeeded(wh, rec, as_of, report)
    except Exception as error:
        write_run(wh, rec, "failed", error)
        raise
    finally:
        cleanup.close()
