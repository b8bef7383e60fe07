"""Run records: per-stage progress lines while a job runs, and one ``runs`` row when it ends."""
from __future__ import annotations

import time
import traceback
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterator

from rich.console import Console

from schemas.operations import RUNS


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Stage:
    name: str
    rows_in: int | None = None
    rows_out: int | None = None


@dataclass
class RunRecorder:
    """Times stages, prints a line per stage, and builds the job's ``runs`` row."""

    job: str
    console: Console = field(default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True,
                                                                         markup=False))
    run_id: str = ""
    started_at: datetime = field(default_factory=utc_now)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    rows_in: dict[str, int] = field(default_factory=dict)
    rows_out: dict[str, int] = field(default_factory=dict)
    rows_quarantined: dict[str, int] = field(default_factory=dict)
    partitions: list[str] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.run_id:
            self.run_id = f"{self.job}-{self.started_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"

    @contextmanager
    def stage(self, name: str, rows_in: int | None = None) -> Iterator[Stage]:
        info = Stage(name, rows_in)
        start = time.perf_counter()
        yield info
        elapsed = time.perf_counter() - start
        self.stage_seconds[name] = round(self.stage_seconds.get(name, 0.0) + elapsed, 3)
        counts = ""
        if info.rows_in is not None or info.rows_out is not None:
            counts = f"  rows in {_n(info.rows_in)} -> out {_n(info.rows_out)}"
        self.console.print(f"[{self.job}] {name:<12}{counts}  ({elapsed:.1f}s)")

    def row(self, status: str, error: BaseException | None = None) -> dict:
        message = None
        if error is not None:
            message = f"{type(error).__name__}: {error}"
            if not isinstance(error, (ValueError, RuntimeError, KeyError)):
                message += "\n" + "".join(traceback.format_exception(error))[-4000:]
        return {
            "run_id": self.run_id, "job": self.job, "status": status, "started_at": self.started_at,
            "finished_at": utc_now(), "partitions": sorted(self.partitions), "rows_in": dict(self.rows_in),
            "rows_out": dict(self.rows_out), "rows_quarantined": dict(self.rows_quarantined),
            "stage_seconds": dict(self.stage_seconds), "details": dict(self.details), "error": message,
        }

    def summary(self) -> str:
        total = sum(self.stage_seconds.values())
        q = sum(self.rows_quarantined.values())
        return (f"[{self.job}] run {self.run_id}: {sum(self.rows_in.values()):,} rows in, {q:,} quarantined, "
                f"out {', '.join(f'{k} {v:,}' for k, v in self.rows_out.items())}; {total:.1f}s")


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def write_run(warehouse, recorder: RunRecorder, status: str, error: BaseException | None = None) -> None:
    """Append the run's row to ``runs``."""
    df = warehouse.spark.createDataFrame([recorder.row(status, error)], RUNS)
    warehouse.append("runs", df.coalesce(1), run_id=recorder.run_id)


@contextmanager
def recorded(warehouse, recorder: RunRecorder) -> Iterator[RunRecorder]:
    """The job's ``runs`` row: ``succeeded`` (and the summary printed) when the block ends, ``failed``
    with the error when it raises."""
    try:
        yield recorder
    except Exception as error:
        write_run(warehouse, recorder, "failed", error)
        raise
    write_run(warehouse, recorder, "succeeded")
    recorder.console.print(recorder.summary())
