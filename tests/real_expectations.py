"""Profiles and rule tags computed in plain Python from events read straight out of a dataset's CSV files.

Independent of the product: no Spark, no Portrait code; ``zoneinfo`` decides local days and hours,
``statistics`` the medians. The tests compare every user Portrait profiles with what this says.
"""
from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc
WEIGHTS = {"view": 1.0, "click": 1.0, "fav": 2.0, "cart": 3.0, "buy": 5.0}  # conf/local.yaml's affinity weights


@dataclass(frozen=True)
class Event:
    user: str
    at: dt.datetime                 # an aware instant
    kind: str                       # view, click, cart, fav, or buy (a transaction line)
    category: str | None = None     # the item's category, when the catalogue lists the item
    order: str | None = None
    amount: float | None = None
    quantity: int | None = None


@dataclass
class Expected:
    counts: Counter = field(default_factory=Counter)
    orders: dict = field(default_factory=dict)      # window -> set of order ids
    spend: dict = field(default_factory=dict)       # window -> sum
    order_ids: set = field(default_factory=set)
    amounts: list = field(default_factory=list)
    unit_prices: list = field(default_factory=list)
    last_order: dt.datetime | None = None
    last_event: dt.datetime | None = None
    days: set = field(default_factory=set)
    recent_events: int = 0
    hours: Counter = field(default_factory=Counter)
    weekdays: Counter = field(default_factory=Counter)
    weights: Counter = field(default_factory=Counter)
    browsed: list = field(default_factory=list)     # instants of the browse events (every kind but buy)

    @property
    def events(self) -> int:
        return sum(self.hours.values())

    @property
    def monetary(self) -> float | None:
        return sum(self.amounts) if self.amounts else None

    def top_category(self) -> tuple[str | None, float | None, float | None]:
        if not self.weights:
            return None, None, None
        name, weight = min(self.weights.items(), key=lambda kv: (-kv[1], kv[0]))
        return name, weight / sum(self.weights.values()), weight


def expected_profiles(events: list[Event], zone: str, as_of: dt.datetime, windows: list[int],
                      recent_days: int) -> dict[str, Expected]:
    z = ZoneInfo(zone)
    today = as_of.astimezone(z).date()

    # Instants are compared and subtracted in UTC: Python compares two datetimes of one zone by wall clock.
    def window_start(days: int) -> dt.datetime:
        return dt.datetime.combine(today - dt.timedelta(days=days), dt.time(0), z).astimezone(UTC)

    starts = {w: window_start(w) for w in windows}
    recent = window_start(recent_days)
    out: dict[str, Expected] = defaultdict(Expected)
    as_of = as_of.astimezone(UTC)
    for e in events:
        at = e.at.astimezone(UTC)
        if at >= as_of:
            continue
        u, local = out[e.user], at.astimezone(z)
        u.counts[e.kind] += 1
        u.days.add(local.date())
        u.hours[local.hour] += 1
        u.weekdays[local.isoweekday()] += 1
        u.recent_events += at >= recent
        u.last_event = max(u.last_event or at, at)
        if e.category is not None and WEIGHTS.get(e.kind, 0) > 0:
            u.weights[e.category] += WEIGHTS[e.kind]
        if e.kind != "buy":
            u.browsed.append(at)
            continue
        u.order_ids.add(e.order)
        u.last_order = max(u.last_order or at, at)
        if e.amount is not None:
            u.amounts.append(e.amount)
            if e.quantity and e.quantity > 0:
                u.unit_prices.append(e.amount / e.quantity)
        for w, start in starts.items():
            if at >= start:
                u.orders.setdefault(w, set()).add(e.order)
                u.spend[w] = u.spend.get(w, 0.0) + (e.amount or 0.0)
    return out


def days_between(as_of: dt.datetime, then: dt.datetime | None) -> float | None:
    return None if then is None else (as_of.astimezone(UTC) - then.astimezone(UTC)).total_seconds() / 86_400


def gap_sessions(times: list[dt.datetime], gap_minutes: int) -> list[tuple[int, float]]:
    """Events with no session id -> (events, minutes) per session: a gap longer than ``gap_minutes`` starts one."""
    sessions: list[list[dt.datetime]] = []
    for at in sorted(times):
        if sessions and (at - sessions[-1][-1]).total_seconds() <= gap_minutes * 60:
            sessions[-1].append(at)
        else:
            sessions.append([at])
    return [(len(s), (s[-1] - s[0]).total_seconds() / 60) for s in sessions]


def assert_profile(p: dict, e: Expected, as_of: dt.datetime, windows: list[int], recent_days: int,
                   browse: bool, approx, gap_minutes: int = 30) -> None:
    """Every feature family the source supports, for one user (``p``: the stored profile row)."""
    spend_known = bool(e.amounts)
    for w in windows:
        assert p[f"orders_{w}d"] == len(e.orders.get(w, ())), w
        want = (e.spend.get(w, 0.0) if spend_known else None)
        assert p[f"spend_{w}d"] == (approx(want) if want is not None else None), w
    assert p["frequency"] == len(e.order_ids)
    assert p["monetary"] == (approx(e.monetary) if e.monetary is not None else None)
    assert p["recency_days"] == (approx(days_between(as_of, e.last_order)) if e.last_order else None)
    assert p["active_days"] == len(e.days)
    assert p[f"events_{recent_days}d"] == e.recent_events
    assert p["days_since_last_event"] == (approx(days_between(as_of, e.last_event)) if e.last_event else None)
    if e.events:
        assert p["hour_hist"] == approx([e.hours[h] / e.events for h in range(24)])
        assert p["weekday_hist"] == approx([e.weekdays[d] / e.events for d in range(1, 8)])
        assert p["night_share"] == approx(sum(e.hours[h] for h in range(6)) / e.events)
        assert p["peak_hour"] == max(range(24), key=lambda h: (e.hours[h], -h))
    else:
        assert p["hour_hist"] is None and p["night_share"] is None
    name, share, _ = e.top_category()
    assert p["top_category"] == name
    assert p["top_category_share"] == (approx(share) if share is not None else None)
    median = statistics.median(e.unit_prices) if e.unit_prices else None
    assert p["median_unit_price"] == (approx(median) if median is not None else None)
    if browse:
        assert (p["views"], p["carts"], p["favs"]) == (e.counts["view"], e.counts["cart"], e.counts["fav"])
        sessions = gap_sessions(e.browsed, gap_minutes)
        assert p["sessions"] == (len(sessions) if sessions else None)
        if sessions:
            assert p["avg_session_events"] == approx(sum(n for n, _ in sessions) / len(sessions))
            assert p["avg_session_minutes"] == approx(sum(m for _, m in sessions) / len(sessions))
    else:
        assert (p["views"], p["sessions"], p["view_to_cart_rate"]) == (None, None, None)


def expected_tags(users: list[str], profiles: dict[str, Expected], tags, as_of: dt.datetime,
                  browse: bool, social: bool) -> dict[str, set[str]]:
    """The rule tags each user must carry (conf tags: thresholds), from the plain-Python profiles."""
    spenders = {u: profiles[u].spend.get(tags.spend_window_days, 0.0) for u in users
                if u in profiles and profiles[u].amounts}
    buyers = sorted(v for v in spenders.values() if v > 0)
    out = {}
    for user in users:
        e = profiles.get(user, Expected())
        want = set()
        if e.recent_events >= tags.active_min_events:  # recent: the last tags.active_window_days days
            want.add("active")
        if len(e.orders.get(tags.loyal_window_days, ())) >= tags.loyal_min_orders:
            want.add("loyal")
        idle = days_between(as_of, e.last_event)
        if idle is None or idle >= tags.dormant_days:
            want.add("dormant")
        name, share, weight = e.top_category()
        if name is not None and share >= tags.category_lover_min_share and weight >= tags.category_lover_min_weight:
            want.add(f"category_lover:{name}")
        spend = spenders.get(user, 0.0)
        if spend > 0:
            rank = sum(v < spend for v in buyers)  # percent_rank: ties share the lowest rank
            pct = rank / (len(buyers) - 1) if len(buyers) > 1 else 0.0
            low, high = tags.spender_quantiles
            want.add("low_spender" if pct < low else "mid_spender" if pct < high else "high_spender")
        if e.order_ids and not e.amounts:
            want.add("spend_unknown")
        if not browse:
            want.add("browse_unknown")
        if not social:
            want.add("social_unknown")
        out[user] = want
    return out
