"""Consumables (耗材): stock in the store room, replacements on devices, and when each device runs out.

A replacement takes one unit from stock and records which device it went into; from then on the
device's transactions (``ops_telemetry_hours`` / ``_minutes``) wear it down at the item's prints
per transaction. The forecast (``domain.consumables``) says when it runs out at the device's usual
hourly use; a device that runs out before the next inspection is warned about (and is a finding
of that inspection).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from sqlalchemy import func, select

from medkiosk.domain import consumables as domain
from medkiosk.logging import get_logger
from medkiosk.services import audit
from medkiosk.services.clock import Clock, as_utc
from medkiosk.services.monitoring import DeviceView
from medkiosk.store.models_operations import TelemetryHour, TelemetryMinute
from medkiosk.store.models_tickets import ConsumableItem, ConsumableMovement
from medkiosk.store.uow import UnitOfWork

log = get_logger(__name__)

HISTORY_DAYS = 7
MINUTES_TRUSTED = timedelta(hours=47)  # minute buckets are kept 48 h (services.monitoring)


class ConsumableError(ValueError):
    """Refused input; the message is Chinese and shown as is."""


@dataclass(frozen=True)
class Forecast:
    device_id: str
    item_code: str
    item_name: str
    replaced_at: datetime
    remaining: float
    """Prints left in the loaded unit."""
    prints_per_unit: int
    runs_out_at: datetime | None
    before_next_inspection: bool

    @property
    def percent_left(self) -> float:
        return self.remaining / self.prints_per_unit if self.prints_per_unit else 0.0


def _floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


class ConsumableService:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], clock: Clock, tz: tzinfo) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._tz = tz

    def items(self) -> list[ConsumableItem]:
        with self._uow() as uow:
            rows = list(uow.session.scalars(select(ConsumableItem).order_by(ConsumableItem.code)))
            for row in rows:
                uow.session.expunge(row)
            return rows

    def low_stock(self) -> list[ConsumableItem]:
        return [item for item in self.items() if item.stock <= item.low_stock]

    def movements(self, *, device_id: str | None = None, limit: int = 50) -> list[ConsumableMovement]:
        query = select(ConsumableMovement).order_by(ConsumableMovement.id.desc()).limit(limit)
        if device_id:
            query = query.where(ConsumableMovement.device_id == device_id)
        with self._uow() as uow:
            rows = list(uow.session.scalars(query))
            for row in rows:
                uow.session.expunge(row)
            return rows

    def _move(self, actor: str, item_code: str, kind: str, quantity: int, *, device_id: str | None = None,
              note: str = "", client: str = "", absolute: bool = False) -> ConsumableMovement:
        now = self._clock.now()
        with self._uow() as uow:
            # Two engineers taking the last roll: one of them is refused.
            item = uow.session.scalars(select(ConsumableItem).where(ConsumableItem.code == item_code)
                                       .with_for_update()).first()
            if item is None:
                raise ConsumableError("没有这种耗材")
            after = quantity if absolute else item.stock + quantity
            if after < 0:
                raise ConsumableError(f"{item.name}库存不足（现有 {item.stock} {item.unit}），请先登记入库")
            change = after - item.stock if absolute else quantity
            low = item.low_stock
            item.stock, item.updated_at = after, now
            row = ConsumableMovement(item_code=item_code, kind=kind, quantity=change, stock_after=after,
                                     device_id=device_id, note=note.strip()[:300], by=actor, at=now)
            uow.session.add(row)
            uow.session.flush()
            audit.append(uow, self._clock, actor, f"consumable.{kind}", f"consumable:{item_code}",
                         {"quantity": change, "stock_after": after, "device": device_id, "note": row.note,
                          "client": client})
            uow.commit()
            uow.session.expunge(row)
        if after <= low:
            log.warning("consumable.low_stock", item=item_code, stock=after, low_stock=low)
        return row

    def receive(self, actor: str, item_code: str, quantity: int, *, note: str = "", client: str = "") -> ConsumableMovement:
        """A delivery into the store room (入库)."""
        if not 1 <= quantity <= 100_000:
            raise ConsumableError("入库数量应在 1 到 100000 之间")
        return self._move(actor, item_code, "receipt", quantity, note=note, client=client)

    def replace(self, actor: str, device_id: str, item_code: str, *, note: str = "",
                client: str = "") -> ConsumableMovement:
        """One unit loaded into a device (更换耗材): stock goes down by one; the device's count starts again."""
        device_id = device_id.strip()
        if not device_id:
            raise ConsumableError("请填写更换耗材的设备编号")
        return self._move(actor, item_code, "replacement", -1, device_id=device_id, note=note, client=client)

    def count(self, actor: str, item_code: str, stock: int, *, note: str = "", client: str = "") -> ConsumableMovement:
        """A stock-take sets the count (盘点)."""
        if not 0 <= stock <= 1_000_000:
            raise ConsumableError("盘点数量应在 0 到 1000000 之间")
        return self._move(actor, item_code, "count", stock, note=note, client=client, absolute=True)

    # -- forecasts ------------------------------------------------------------------------------------------
    def _transactions_since(self, uow: UnitOfWork, device_id: str, since: datetime, now: datetime) -> int:
        """Minute buckets where they are kept, whole hours before that (an hour is counted whole)."""
        cut = _floor_hour(now - MINUTES_TRUSTED)
        total = 0
        if since < cut:
            total += uow.session.scalar(select(func.coalesce(func.sum(TelemetryHour.transactions), 0)).where(
                TelemetryHour.device_id == device_id, TelemetryHour.bucket >= _floor_hour(since),
                TelemetryHour.bucket < cut)) or 0
        total += uow.session.scalar(select(func.coalesce(func.sum(TelemetryMinute.transactions), 0)).where(
            TelemetryMinute.device_id == device_id,
            TelemetryMinute.bucket >= max(since, cut).replace(second=0, microsecond=0))) or 0
        return int(total)

    def forecasts(self, fleet: list[DeviceView], next_inspection: datetime) -> list[Forecast]:
        """For every device and item replaced on it at least once: what is left and when it runs out."""
        now = self._clock.now()
        items = {item.code: item for item in self.items()}
        with self._uow() as uow:
            last = uow.session.execute(
                select(ConsumableMovement.device_id, ConsumableMovement.item_code,
                       func.max(ConsumableMovement.at).label("at"))
                .where(ConsumableMovement.kind == "replacement").group_by(ConsumableMovement.device_id,
                                                                          ConsumableMovement.item_code)).all()
            devices = {d.id for d in fleet}
            history_since = _floor_hour(now) - timedelta(days=HISTORY_DAYS)
            hourly: dict[str, dict[datetime, int]] = {}
            for row in uow.session.execute(select(TelemetryHour.device_id, TelemetryHour.bucket,
                                                  TelemetryHour.transactions)
                                           .where(TelemetryHour.bucket >= history_since,
                                                  TelemetryHour.bucket < _floor_hour(now))):
                hourly.setdefault(row.device_id, {})[as_utc(row.bucket)] = row.transactions
            out = []
            for row in last:
                item = items.get(row.item_code)
                if item is None or row.device_id not in devices:
                    continue
                replaced_at = as_utc(row.at)
                used = self._transactions_since(uow, row.device_id, replaced_at, now)
                remaining = domain.remaining_prints(item.prints_per_unit, used, item.prints_per_transaction)
                per_hour = domain.usual_use(hourly.get(row.device_id, {}), self._tz, HISTORY_DAYS)
                run_out = domain.run_out_at(remaining, per_hour, now, self._tz,
                                            prints_per_transaction=item.prints_per_transaction)
                out.append(Forecast(row.device_id, item.code, item.name, replaced_at, remaining, item.prints_per_unit,
                                    run_out, domain.runs_out_before(run_out, next_inspection)))
        return sorted(out, key=lambda f: (f.device_id, f.item_code))
