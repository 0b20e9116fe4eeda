"""Consumables (耗材): how much of a loaded roll, ream, toner or ribbon is left, and when it runs out — pure.

Use is estimated from print counts: the kiosk's transactions since the item was last replaced,
times how many prints a transaction makes (a receipt per payment; an A4 page now and then). When
it runs out comes from the usual hourly use by hour of the day (nights use nothing), walked
forward hour by hour from now.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

HORIZON = timedelta(days=14)


@dataclass(frozen=True)
class ItemKind:
    code: str
    name: str
    """Chinese, as staff say it."""
    unit: str
    printer: str
    """The peripheral that uses it (receipt_printer, a4_printer)."""
    prints_per_unit: int
    """How many prints one loaded unit lasts."""
    prints_per_transaction: float
    low_stock: int
    """Warn when the store holds this many units or fewer."""


DEFAULT_ITEMS: tuple[ItemKind, ...] = (
    ItemKind("receipt_paper", "凭条打印纸", "卷", "receipt_printer", 250, 1.0, 20),
    ItemKind("a4_paper", "A4 打印纸", "包", "a4_printer", 500, 0.2, 5),
    ItemKind("toner", "硒鼓/碳粉", "个", "a4_printer", 3000, 0.2, 2),
    ItemKind("ribbon", "色带", "卷", "receipt_printer", 1500, 0.0, 2),
)


def remaining_prints(prints_per_unit: int, transactions_since_replaced: int, prints_per_transaction: float) -> float:
    return max(prints_per_unit - transactions_since_replaced * prints_per_transaction, 0.0)


def usual_use(hourly: Mapping[datetime, int], tz: tzinfo, days: int) -> dict[int, float]:
    """Mean transactions per hour of the day (local), over ``days`` days of hourly counts."""
    totals: dict[int, float] = {}
    for bucket, count in hourly.items():
        hour = bucket.astimezone(tz).hour
        totals[hour] = totals.get(hour, 0.0) + count
    return {hour: total / max(days, 1) for hour, total in totals.items()}


def run_out_at(remaining: float, per_hour: Mapping[int, float], now: datetime, tz: tzinfo, *,
               prints_per_transaction: float, horizon: timedelta = HORIZON) -> datetime | None:
    """When ``remaining`` prints are used up at the usual hourly use, or ``None`` beyond ``horizon``
    (or when nothing is used). Already empty: ``now``."""
    if remaining <= 0:
        return now
    if prints_per_transaction <= 0 or not any(v > 0 for v in per_hour.values()):
        return None
    at = now
    end = now + horizon
    while at < end:
        local = at.astimezone(tz)
        hour_end = (local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)).astimezone(at.tzinfo)
        share = (hour_end - at) / timedelta(hours=1)
        use = per_hour.get(local.hour, 0.0) * prints_per_transaction * share
        if use >= remaining:
            return at + (hour_end - at) * (remaining / use)
        remaining -= use
        at = hour_end
    return None


def runs_out_before(run_out: datetime | None, deadline: datetime) -> bool:
    return run_out is not None and run_out <= deadline
