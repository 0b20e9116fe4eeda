"""Tickets (工单): open them from an alert, an inspection or by hand; move them through their states;
keep the handling record; read their clocks. The rules live in ``domain.tickets``.

Every change is written with its audit entry in one transaction. A ticket's state changes are kept
on the ticket (``transitions``), which is what its clocks are computed from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from medkiosk.domain import tickets as domain
from medkiosk.domain.tickets import (ClockLevel, ClockReading, Priority, TicketSource, TicketState, Transition,
                                     TransitionRefused)
from medkiosk.logging import get_logger
from medkiosk.services import audit
from medkiosk.services.clock import Clock, as_utc
from medkiosk.store.models_operations import AlertRecord
from medkiosk.store.models_tickets import Ticket
from medkiosk.store.uow import UnitOfWork

log = get_logger(__name__)

MAX_PARTS = 10


class TicketNotFound(LookupError):
    pass


class TicketError(ValueError):
    """Refused input; the message is Chinese and shown as is."""


@dataclass(frozen=True)
class TicketView:
    row: Ticket
    own: ClockReading
    resolve: ClockReading

    @property
    def state(self) -> TicketState:
        return TicketState(self.row.state)

    @property
    def allowed(self) -> frozenset[TicketState]:
        return domain.TRANSITIONS[self.state]


def history_of(row: Ticket) -> list[Transition]:
    return [Transition(as_utc(datetime.fromisoformat(t["at"])), TicketState(t["state"])) for t in row.transitions or []]


def readings(row: Ticket, now: datetime) -> tuple[ClockReading, ClockReading]:
    history = history_of(row)
    return (domain.own_clock(history, now, timedelta(seconds=row.own_target_seconds)),
            domain.resolve_clock(history, now, timedelta(seconds=row.resolve_target_seconds)))


def _parts(parts: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out = []
    for part in (parts or [])[:MAX_PARTS]:
        name = str(part.get("name", "")).strip()[:60]
        if not name:
            continue
        try:
            quantity = int(part.get("quantity") or 1)
        except (TypeError, ValueError) as exc:
            raise TicketError(f"配件“{name}”的数量应为整数") from exc
        if not 1 <= quantity <= 1000:
            raise TicketError(f"配件“{name}”的数量应在 1 到 1000 之间")
        out.append({"name": name, "quantity": quantity})
    return out


class TicketService:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], clock: Clock,
                 targets: dict[Priority, domain.Targets] | None = None) -> None:
        self._uow = uow_factory
        self._clock = clock
        self.targets = targets or domain.DEFAULT_TARGETS

    # -- opening ---------------------------------------------------------------------------------------
    def _add(self, uow: UnitOfWork, actor: str, *, title: str, description: str, device_id: str | None,
             source: TicketSource, source_ref: str | None, priority: Priority, client: str = "") -> Ticket:
        now = self._clock.now()
        targets = self.targets[priority]
        row = Ticket(title=title[:200], description=description[:4000], device_id=device_id or None,
                     source=source.value, source_ref=source_ref, priority=priority.value, state=TicketState.NEW.value,
                     own_target_seconds=int(targets.own.total_seconds()),
                     resolve_target_seconds=int(targets.resolve.total_seconds()), own_level="ok", resolve_level="ok",
                     transitions=[{"at": now.isoformat(), "state": TicketState.NEW.value, "by": actor, "note": ""}],
                     cause="", action="", parts=[], created_by=actor, created_at=now, updated_at=now)
        uow.session.add(row)
        uow.session.flush()
        audit.append(uow, self._clock, actor, "ticket.created", f"ticket:{row.id}",
                     {"source": source.value, "source_ref": source_ref, "device": device_id, "priority": priority.value,
                      "title": row.title, "client": client})
        log.info("ticket.created", ticket=row.id, source=source.value, device=device_id, priority=priority.value)
        return row

    def create(self, actor: str, *, title: str, description: str = "", device_id: str = "",
               priority: str = Priority.P2.value, client: str = "") -> Ticket:
        title = title.strip()
        if not title:
            raise TicketError("请填写工单标题（故障现象）")
        try:
            level = Priority(priority)
        except ValueError as exc:
            raise TicketError("优先级只能是 P1、P2、P3") from exc
        with self._uow() as uow:
            row = self._add(uow, actor, title=title, description=description.strip(), device_id=device_id.strip(),
                            source=TicketSource.MANUAL, source_ref=None, priority=level, client=client)
            uow.commit()
            uow.session.expunge(row)
            return row

    def from_alert(self, alert_id: int, actor: str, *, client: str = "") -> tuple[Ticket, bool]:
        """The alert's ticket: made once; pressing again (or two people at once) returns the first.
        Returns the ticket and whether it was made now."""
        ref = f"alert:{alert_id}"
        existing = self._by_source(TicketSource.ALERT, ref)
        if existing is not None:
            return existing, False
        with self._uow() as uow:
            alert = uow.session.get(AlertRecord, alert_id)
            if alert is None:
                raise TicketNotFound(f"alert {alert_id}")
            labels = dict(alert.labels or {})
            place = " ".join(v for v in (labels.get("building", ""), labels.get("floor", ""), labels.get("area", "")) if v)
            description = f"告警 #{alert.id}（{alert.rule}）：{alert.summary}" + (f"\n位置：{place}" if place else "")
            try:
                row = self._add(uow, actor, title=alert.summary or alert.rule, description=description,
                                device_id=labels.get("device") or None, source=TicketSource.ALERT, source_ref=ref,
                                priority=domain.priority_for_severity(alert.severity), client=client)
                alert.notes = [*(alert.notes or []), {"at": self._clock.now().isoformat(), "by": actor,
                                                      "action": "ticket", "text": f"工单 #{row.id}"}]
                uow.commit()
            except IntegrityError:
                uow.rollback()
                existing = self._by_source(TicketSource.ALERT, ref)
                if existing is None:
                    raise
                return existing, False
            uow.session.expunge(row)
            return row, True

    def from_inspection(self, uow: UnitOfWork, item_id: int, actor: str, *, device_id: str, title: str,
                        description: str, client: str = "") -> Ticket:
        """Inside the sign-off's transaction: the problem becomes a ticket with it, or not at all."""
        return self._add(uow, actor, title=title, description=description, device_id=device_id,
                         source=TicketSource.INSPECTION, source_ref=f"inspection-item:{item_id}", priority=Priority.P2,
                         client=client)

    def _by_source(self, source: TicketSource, ref: str) -> Ticket | None:
        with self._uow() as uow:
            row = uow.session.scalars(select(Ticket).where(Ticket.source == source.value,
                                                           Ticket.source_ref == ref)).first()
            if row is not None:
                uow.session.expunge(row)
            return row

    # -- moving ----------------------------------------------------------------------------------------
    def move(self, ticket_id: int, actor: str, target: str, *, note: str = "", assignee: str = "",
             cause: str = "", action: str = "", parts: list[dict[str, Any]] | None = None,
             client: str = "") -> Ticket:
        """One state change, checked by the domain: ``assigned`` needs an assignee, ``waiting`` a
        reason, ``resolved`` the handling record (cause, action, parts)."""
        try:
            to = TicketState(target)
        except ValueError as exc:
            raise TicketError("没有这个工单状态") from exc
        note = note.strip()[:500]
        now = self._clock.now()
        with self._uow() as uow:
            row = self._locked(uow, ticket_id)
            current = TicketState(row.state)
            domain.check_transition(current, to)
            details: dict[str, Any] = {"from": current.value, "to": to.value, "note": note, "client": client}
            if to is TicketState.ASSIGNED:
                assignee = (assignee.strip() or actor)[:60]
                row.assignee = details["assignee"] = assignee
            if to is TicketState.WAITING and not note:
                raise TransitionRefused("转为等待前请写明在等什么（如厂家配件、HIS 厂商）")
            if to is TicketState.CLOSED and current is TicketState.NEW and not note:
                raise TransitionRefused("直接关闭新工单前请写明原因（如误报、重复）")
            if to is TicketState.RESOLVED:
                domain.check_resolution(cause, action)
                row.cause, row.action, row.parts = cause.strip()[:2000], action.strip()[:2000], _parts(parts)
                details.update(cause=row.cause, action=row.action, parts=row.parts)
            if to is TicketState.IN_PROGRESS and not row.assignee:
                row.assignee = actor
            row.state = to.value
            row.transitions = [*(row.transitions or []),
                               {"at": now.isoformat(), "state": to.value, "by": actor, "note": note}]
            row.updated_at = now
            audit.append(uow, self._clock, actor, f"ticket.{to.value}", f"ticket:{ticket_id}", details)
            uow.commit()
            uow.session.expunge(row)
            return row

    def _locked(self, uow: UnitOfWork, ticket_id: int) -> Ticket:
        row = uow.session.get(Ticket, ticket_id, with_for_update=True)
        if row is None:
            raise TicketNotFound(ticket_id)
        return row

    # -- reading ---------------------------------------------------------------------------------------
    def _views(self, query) -> list[TicketView]:
        now = self._clock.now()
        with self._uow() as uow:
            rows = list(uow.session.scalars(query))
            for row in rows:
                uow.session.expunge(row)
        return [TicketView(row, *readings(row, now)) for row in rows]

    def get(self, ticket_id: int) -> TicketView:
        views = self._views(select(Ticket).where(Ticket.id == ticket_id))
        if not views:
            raise TicketNotFound(ticket_id)
        return views[0]

    def tickets(self, *, open_only: bool = False, limit: int = 200) -> list[TicketView]:
        query = select(Ticket).order_by(Ticket.id.desc()).limit(limit)
        if open_only:
            query = query.where(Ticket.state != TicketState.CLOSED.value)
        return self._views(query)

    def for_device(self, device_id: str, limit: int = 50) -> list[TicketView]:
        """设备异常记录: a device's tickets, newest first."""
        return self._views(select(Ticket).where(Ticket.device_id == device_id).order_by(Ticket.id.desc()).limit(limit))

    def for_alerts(self, alert_ids: list[int]) -> dict[int, int]:
        """Which of these alerts already have a ticket: alert id → ticket id."""
        if not alert_ids:
            return {}
        with self._uow() as uow:
            rows = uow.session.execute(select(Ticket.id, Ticket.source_ref).where(
                Ticket.source == TicketSource.ALERT.value,
                Ticket.source_ref.in_([f"alert:{i}" for i in alert_ids]))).all()
        return {int(ref.split(":")[1]): tid for tid, ref in rows}

    # -- clocks ----------------------------------------------------------------------------------------
    def check_clocks(self) -> list[tuple[int, str, ClockLevel]]:
        """Announce (log + audit) each clock that has just reached 75 % or 100 %; run in the background."""
        now = self._clock.now()
        announced = []
        with self._uow() as uow:
            rows = list(uow.session.scalars(select(Ticket).where(Ticket.state.in_(
                [TicketState.NEW.value, TicketState.ASSIGNED.value, TicketState.IN_PROGRESS.value]))))
            for row in rows:
                own, resolve = readings(row, now)
                for name, reading, attr in (("own", own, "own_level"), ("resolve", resolve, "resolve_level")):
                    reached = domain.crossed(ClockLevel(getattr(row, attr)), reading.level)
                    if reached is None:
                        continue
                    setattr(row, attr, reached.value)
                    announced.append((row.id, name, reached))
                    log.warning(f"ticket.sla_{reached.value}", ticket=row.id, clock=name, device=row.device_id,
                                elapsed=int(reading.elapsed.total_seconds()))
                    audit.append(uow, self._clock, "system", f"ticket.sla_{reached.value}", f"ticket:{row.id}",
                                 {"clock": name, "elapsed_seconds": int(reading.elapsed.total_seconds()),
                                  "target_seconds": int(reading.target.total_seconds())})
            uow.commit()
        return announced
