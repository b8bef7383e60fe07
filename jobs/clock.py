"""What a day, an hour and a weekday are: the business time zone's (``time.zone``), in one place.

Timestamps are stored as instants, and Spark's session runs in UTC. What a shopper calls a day is
decided in the platform's zone: the ``dt`` partitions, ``as_of`` and the model's cutoff (local
midnights), every day window, the hour and weekday features, and the dates printed in reasons.
``from_utc_timestamp`` applies the zone's rules at each instant, so across a daylight-saving change
a local day has 23 or 25 hours and no event is lost or counted twice. Python-side day arithmetic is
wall-clock arithmetic on zone-aware datetimes, which ``zoneinfo`` does the same way.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pyspark.sql import Column
from pyspark.sql import functions as F


def _col(ts: Column | str) -> Column:
    return F.col(ts) if isinstance(ts, str) else ts


def wall_clock(ts: Column | str, zone: str) -> Column:
    """The local wall-clock time of an instant, as a timestamp whose UTC rendering reads as local time."""
    return F.from_utc_timestamp(_col(ts), zone)


def local_day(ts: Column | str, zone: str) -> Column:
    """The local date of an instant: the ``dt`` partition and the state tables' ``day``."""
    return F.to_date(wall_clock(ts, zone))


def local_hour(ts: Column | str, zone: str) -> Column:
    return F.hour(wall_clock(ts, zone))


def iso_weekday(day: Column | str) -> Column:
    """ISO weekday of a date column: 1 = Monday (Spark's ``dayofweek`` has 1 = Sunday)."""
    return (F.dayofweek(_col(day)) + 5) % 7 + 1


def local_date_text(ts: Column | str, zone: str) -> Column:
    """``yyyy-MM-dd`` of an instant in the zone, for reasons a person reads."""
    return F.date_format(wall_clock(ts, zone), "yyyy-MM-dd")


def instant_from_local(naive: Column, zone: str) -> Column:
    """A naive local time (a timestamp read as wall-clock time) -> the instant it names in ``zone``."""
    return F.to_utc_timestamp(naive, zone)


def local_date(at: datetime, zone: str) -> date:
    """The local date of a zone-aware instant."""
    return aware(at).astimezone(ZoneInfo(zone)).date()


def day_start(day: date, zone: str) -> datetime:
    """The first instant of a local date (its midnight; where midnight is skipped, the first hour that exists)."""
    return datetime.combine(day, time(0), ZoneInfo(zone))


def add_days(at: datetime, days: int, zone: str) -> datetime:
    """``at`` moved by whole local days (wall-clock arithmetic: a midnight stays a midnight across DST)."""
    return aware(at).astimezone(ZoneInfo(zone)) + timedelta(days=days)


def is_local_midnight(at: datetime | None, zone: str) -> bool:
    return at is not None and at.tzinfo is not None and aware(at) == day_start(local_date(at, zone), zone)


def local_midnight_date(at: datetime, zone: str) -> date:
    """The date that starts at ``at``; ``at`` must be a local midnight, because the state keeps whole local days."""
    if at.tzinfo is None:
        raise ValueError(f"as_of {at} has no time zone; it must be an instant")
    if not is_local_midnight(at, zone):
        raise ValueError(f"as_of {at.isoformat()} is not a midnight in {zone}; the feature state keeps whole "
                         f"local days, so windows must end at a day boundary")
    return local_date(at, zone)


def midnight_after(latest: datetime | None, zone: str) -> datetime:
    """Local midnight after the latest event's time (rows or feature state): the default profile date."""
    if latest is None:
        raise ValueError("no clean events in transactions, browse or social; cannot pick a profile date "
                         "(set as_of in config)")
    return day_start(local_date(latest, zone) + timedelta(days=1), zone)


def aware(at: datetime) -> datetime:
    """Spark hands timestamps back as naive UTC datetimes (the session and process run in UTC)."""
    return at if at.tzinfo is not None else at.replace(tzinfo=ZoneInfo("UTC"))
