"""Daily reconciliation (对账): run a business day against the channel's statement, HIS, insurance
and the kiosks' bank POS settlement batches.

The day is the hospital's (``settings.timezone``, Asia/Shanghai). Our side is read with narrow
SELECTs (no ORM objects; a server-side cursor on PostgreSQL) into the domain's compact indexes;
the statement is streamed from the channel into a temporary file and read back one line at a
time, so memory holds our index and never the statement. What the domain finds is stored with
the run, and each discrepancy is also an event the operations platform can alert on.

Card payments are not on the channel's statement: each kiosk's agent settles its bank POS once a
day and reports the batch (:meth:`ReconciliationService.record_pos_batch`, stored once however
often it is sent); the run compares, kiosk by kiosk, the lines of the batches closed on the day
with our card transactions of the period those batches cover.
"""

from __future__ import annotations

import datetime as dt
import io
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, case, func, select, type_coerce, update
from sqlalchemy.exc import IntegrityError

from medkiosk.adapters.errors import UpstreamError
from medkiosk.adapters.insurance.port import SettlementLine
from medkiosk.adapters.payment.statement import Refund, StatementSummary, Trade, iter_statement
from medkiosk.domain.masking import scrub_text
from medkiosk.domain.payment import PaymentState, step_key
from medkiosk.domain.reconciliation import (
    KIND_LABELS,
    SOURCE_LABELS,
    BatchFigures,
    Certainty,
    ChannelMatcher,
    Discrepancy,
    DiscrepancyKind,
    OurCardTrade,
    OurPosting,
    OurRefund,
    OurTrade,
    PosLine,
    SettlementTotals,
    Severity,
    Source,
    classify_posting,
    classify_refund,
    classify_settlement,
    batch_totals_mismatch,
    classify_trade,
    fen,
    match_pos_lines,
    match_postings,
    missing_batch,
    missing_postings,
    missing_refund,
    missing_trade,
    totals_mismatch,
    ZERO,
)
from medkiosk.logging import get_logger
from medkiosk.services import audit
from medkiosk.services.clock import Clock, as_utc
from medkiosk.services.events import record_event
from medkiosk.store.models import PaymentOrder, PaymentStep
from medkiosk.store.models_pos import PosSettlementBatch
from medkiosk.store.models_reconciliation import ReconciliationDiscrepancy, ReconciliationRun
from medkiosk.store.uow import UnitOfWork

if TYPE_CHECKING:
    from medkiosk.bootstrap import Container

# The statement's trade type of a payment made in the hospital's own app (JSAPI) — registrations paid
# ahead, refunded by a kiosk only when swapped to insurance (换号). Not the kiosks' trades to match.
APP_TRADE_TYPE = "JSAPI"
log = get_logger(__name__)

EVENT_KIND = "reconciliation_discrepancy"
FAILED_EVENT_KIND = "reconciliation_failed"
MAX_EVENTS_PER_RUN = 200
"""Beyond this many discrepancies a run raises one summary event instead of one each (a broken statement)."""
REFUND_WINDOW = timedelta(minutes=10)
"""A refund is accepted by the channel within seconds of our journal entry; ten minutes is the margin."""
MARGIN = timedelta(minutes=5)
BATCH = 500
YIELD_PER = 50_000
POSTED_STATES = (PaymentState.COMPLETED.value, PaymentState.POSTING.value)
POS_STEPS = ("pos.sale", "pos.void", "pos.refund")
POS_EXPECTED_DAYS = 7
"""A kiosk that reported a POS batch within this many days before the day is expected to report one for it."""
POS_NEIGHBOUR_DAYS = 2
"""A transaction listed in a neighbouring day's batch of the same kiosk is not missing from this day's."""
POS_GIVE_BACK_DAYS = 2
"""How long before the day a void or refund may have been asked of a kiosk that was offline."""


@dataclass(frozen=True)
class PosBatchLineReport:
    """One line of a settled POS batch as the agent reports it."""

    reference: str
    kind: str
    amount: Decimal
    key: str
    original_reference: str | None
    approved_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"reference": self.reference, "kind": self.kind, "amount": f"{self.amount:.2f}", "key": self.key,
                "original_reference": self.original_reference, "approved_at": self.approved_at.astimezone(dt.timezone.utc).isoformat()}


@dataclass(frozen=True)
class PosBatchReport:
    """A settled POS batch (批结算) as the agent reports it: the terminal's totals and its lines."""

    terminal_id: str
    batch_no: str
    settled_at: datetime
    business_date: dt.date | None
    sale_count: int
    sale_amount: Decimal
    void_count: int
    void_amount: Decimal
    refund_count: int
    refund_amount: Decimal
    net_amount: Decimal
    lines: tuple[PosBatchLineReport, ...]


class ReconciliationFailed(Exception):
    """A run could not finish (the statement could not be fetched or read …); recorded on the run."""

    def __init__(self, run_id: int, message: str) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.message = message


class ReconciliationError(ValueError):
    """A staff request refused; the message is Chinese and shown as is."""


class PosBatchConflict(ReconciliationError):
    """A kiosk reported a batch already stored (same terminal, number and time) with other contents."""


@dataclass(frozen=True)
class RunView:
    id: int
    business_date: dt.date
    status: str
    triggered_by: str
    started_at: datetime
    finished_at: datetime | None
    error: str
    figures: dict[str, Any]
    discrepancy_count: int
    open_count: int

    @property
    def status_label(self) -> str:
        return {"running": "进行中", "succeeded": "已完成", "failed": "失败"}.get(self.status, self.status)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "business_date": self.business_date.isoformat(), "status": self.status,
                "triggered_by": self.triggered_by, "started_at": self.started_at.isoformat(),
                "finished_at": self.finished_at.isoformat() if self.finished_at else None, "error": self.error,
                "figures": self.figures, "discrepancy_count": self.discrepancy_count, "open_count": self.open_count}


@dataclass(frozen=True)
class DiscrepancyView:
    id: int
    run_id: int
    source: str
    kind: str
    severity: str
    reference: str
    order_no: str | None
    ours: Decimal | None
    theirs: Decimal | None
    message: str
    fix: str
    details: dict[str, Any]
    created_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None

    @property
    def source_label(self) -> str:
        return SOURCE_LABELS.get(Source(self.source), self.source) if self.source in Source._value2member_map_ \
            else self.source

    @property
    def kind_label(self) -> str:
        return KIND_LABELS.get(DiscrepancyKind(self.kind), self.kind) \
            if self.kind in DiscrepancyKind._value2member_map_ else self.kind

    @property
    def resolved(self) -> bool:
        return self.resolved_at is not None

    @classmethod
    def of(cls, row: ReconciliationDiscrepancy) -> "DiscrepancyView":
        return cls(row.id, row.run_id, row.source, row.kind, row.severity, row.reference, row.order_no, row.ours,
                   row.theirs, row.message, row.fix, dict(row.details or {}), as_utc(row.created_at),
                   as_utc(row.resolved_at) if row.resolved_at else None, row.resolved_by, row.resolution_note)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "run_id": self.run_id, "source": self.source, "kind": self.kind,
                "severity": self.severity, "reference": self.reference, "order_no": self.order_no,
                "ours": None if self.ours is None else f"{self.ours:.2f}",
                "theirs": None if self.theirs is None else f"{self.theirs:.2f}", "message": self.message,
                "fix": self.fix, "details": self.details, "created_at": self.created_at.isoformat(),
                "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
                "resolved_by": self.resolved_by, "resolution_note": self.resolution_note}


class ReconciliationService:
    """Runs, stores and serves the daily reconciliation. ``his`` / ``insurance`` None skip those checks."""

    def __init__(self, uow_factory: Callable[[], UnitOfWork], clock: Clock, *, channel: Any, his: Any = None,
                 insurance: Any = None, tz: ZoneInfo | dt.tzinfo, hospital_admdvs: str,
                 pay_window: timedelta = timedelta(minutes=5)) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._channel = channel
        self._his = his
        self._insurance = insurance
        self._tz = tz
        self._admdvs = hospital_admdvs
        self._window = pay_window + MARGIN

    @classmethod
    def from_container(cls, container: "Container") -> "ReconciliationService":
        settings = container.settings
        return cls(container.uow, container.clock, channel=container.channel, his=container.his,
                   insurance=container.insurance, tz=settings.tz, hospital_admdvs=settings.hospital_admdvs,
                   pay_window=timedelta(seconds=settings.pay_window_seconds))

    # ============================================================================================
    # running
    # ============================================================================================
    def yesterday(self) -> dt.date:
        """The last whole business day in the hospital's time zone."""
        return self._clock.now().astimezone(self._tz).date() - timedelta(days=1)

    def bounds(self, day: dt.date) -> tuple[datetime, datetime]:
        """The business day as a UTC interval ``[start, end)``."""
        start = datetime.combine(day, dt.time(), self._tz)
        end = datetime.combine(day + timedelta(days=1), dt.time(), self._tz)
        return start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)

    def run_scheduled(self) -> RunView | None:
        """The daily background run of yesterday; None when another copy of the service took it."""
        return self.run(self.yesterday(), triggered_by="schedule", scheduled=True)

    def run(self, day: dt.date, *, triggered_by: str = "cli", scheduled: bool = False) -> RunView | None:
        """Reconcile ``day``, store the run and its discrepancies, record an event for each.

        Raises :class:`ReconciliationFailed` (the run is stored as failed, with an event) when a
        side cannot be read. With ``scheduled`` the day is claimed first; None if already claimed.
        """
        if day >= self._clock.now().astimezone(self._tz).date():
            raise ValueError(f"{day} has not ended yet: only a finished business day can be reconciled")
        run_id = self._open_run(day, triggered_by, day.isoformat() if scheduled else None)
        if run_id is None:
            log.info("reconciliation.already_claimed", day=day.isoformat())
            return None
        log.info("reconciliation.started", run_id=run_id, day=day.isoformat(), triggered_by=triggered_by)
        figures: dict[str, Any] = {}
        try:
            found = self._channel_side(day, figures)
            found += self._his_side(day, figures) if self._his is not None else []
            found += self._insurance_side(day, figures) if self._insurance is not None else []
            found += self._pos_side(day, figures)
            if self._his is None:
                figures["his"] = {"skipped": True}
            if self._insurance is None:
                figures["insurance"] = {"skipped": True}
            self._fill_order_numbers(found)
        except Exception as exc:
            message = exc.message if isinstance(exc, UpstreamError) else f"{type(exc).__name__}: {exc}"
            self._fail_run(run_id, day, message, figures)
            log.error("reconciliation.failed", run_id=run_id, day=day.isoformat(), error=type(exc).__name__)
            raise ReconciliationFailed(run_id, message) from exc
        view = self._finish_run(run_id, day, found, figures)
        log.info("reconciliation.finished", run_id=run_id, day=day.isoformat(), discrepancies=len(found))
        return view

    # -- the channel ------------------------------------------------------------------------------
    def _channel_side(self, day: dt.date, figures: dict[str, Any]) -> list[Discrepancy]:
        start, end = self.bounds(day)
        trades = self._our_trades(start, end)
        refunds = self._our_refunds(start, end)
        indexed = {"orders": len(trades), "refunds": len(refunds)}
        matcher = ChannelMatcher(trades, refunds)
        summary: StatementSummary | None = None
        with tempfile.TemporaryFile(prefix="medkiosk-statement-") as raw:
            size = self._channel.download_statement(day, raw)
            raw.seek(0)
            lines = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            trade, refund = matcher.trade, matcher.refund
            app_lines = 0
            for row in iter_statement(lines):
                kind = type(row)
                if kind is not Trade and kind is not Refund:
                    summary = row
                elif row.trade_type == APP_TRADE_TYPE:
                    app_lines += 1  # the hospital app's own payment (and its refunds): the app reconciles them
                elif kind is Trade:
                    trade(row)
                else:
                    refund(row)
            lines.detach()
        assert summary is not None  # iter_statement ends with the summary or raises
        found = list(matcher.discrepancies)
        found += self._unknown_trades(matcher.unknown_trades)
        found += self._unknown_refunds(matcher.unknown_refunds)
        certain, late_trades, late_refunds = matcher.missing()
        found += certain
        found += self._late_trades(day, late_trades, matcher)
        found += self._late_refunds(day, late_refunds, matcher)
        figures["channel"] = {
            "statement_bytes": size, "trades": summary.trade_count, "trade_amount": str(summary.trade_amount),
            "refunds": summary.refund_count, "refund_amount": str(summary.refund_amount),
            "fees": str(summary.fee_total), "our_orders": indexed["orders"], "our_refunds": indexed["refunds"],
            "matched_trades": matcher.matched_trades, "matched_refunds": matcher.matched_refunds,
            "app_lines": app_lines,
            "discrepancies": len(found)}
        return found

    def _certainty(self, column, start: datetime, late_from: datetime):
        return case((column < start, int(Certainty.LOOKBACK)), (column < late_from, int(Certainty.CERTAIN)),
                    else_=int(Certainty.LATE))

    def _our_trades(self, start: datetime, end: datetime) -> dict[str, OurTrade]:
        """Every order with a channel order created in the day (and one pay window before), keyed by out_trade_no."""
        t = PaymentOrder.__table__.c
        query = select(t.out_trade_no, t.state, type_coerce(t.paid_amount, BigInteger),
                       self._certainty(t.created_at, start, end - self._window)).where(
            t.created_at >= start - self._window, t.created_at < end, t.out_trade_no.is_not(None),
            # Card payments go through the kiosk's bank POS, not the QR channel: not on its statement.
            t.pay_method != "bank_card")
        index: dict[str, OurTrade] = {}
        states: dict[str, str] = {}
        certainties = list(Certainty)
        new = tuple.__new__
        with self._uow() as uow:
            for out_trade_no, state, paid, certainty in uow.session.execute(
                    query.execution_options(yield_per=YIELD_PER)):
                index[out_trade_no] = new(OurTrade, (states.setdefault(state, state), paid,
                                                     certainties[certainty]))
        return index

    def _refund_query(self):
        s, o = PaymentStep.__table__.c, PaymentOrder.__table__.c
        return select(s.key, o.out_trade_no, o.order_no, o.state, s.detail, s.started_at).join_from(
            PaymentStep.__table__, PaymentOrder.__table__, s.order_no == o.order_no).where(s.step == "refund")

    def _our_refunds(self, start: datetime, end: datetime) -> dict[str, OurRefund]:
        s = PaymentStep.__table__.c
        query = self._refund_query().where(s.started_at >= start - REFUND_WINDOW, s.started_at < end)
        with self._uow() as uow:
            rows = uow.session.execute(query).all()
        return {row.key: self._our_refund(row, start, end) for row in rows}

    def _our_refund(self, row, start: datetime, end: datetime) -> OurRefund:
        at = as_utc(row.started_at)
        certainty = Certainty.LOOKBACK if at < start else (
            Certainty.CERTAIN if at < end - REFUND_WINDOW else Certainty.LATE)
        amount = fen(Decimal(str((row.detail or {}).get("amount", "0"))))
        return OurRefund(row.out_trade_no or "", row.order_no, row.state, amount, certainty)

    def _unknown_trades(self, unknown: list[tuple[str, Decimal]]) -> list[Discrepancy]:
        """Trades on the statement whose order is outside the indexed days, or not ours at all."""
        found = []
        ours = self._trades_by_number([number for number, _ in unknown])
        for out_trade_no, amount in unknown:
            discrepancy = classify_trade(out_trade_no, ours.get(out_trade_no), amount)
            if discrepancy is not None:
                found.append(discrepancy)
        return found

    def _trades_by_number(self, numbers: Sequence[str]) -> dict[str, OurTrade]:
        t = PaymentOrder.__table__.c
        found: dict[str, OurTrade] = {}
        with self._uow() as uow:
            for chunk in _chunks(numbers):
                for number, state, paid in uow.session.execute(select(
                        t.out_trade_no, t.state, type_coerce(t.paid_amount, BigInteger)).where(
                        t.out_trade_no.in_(chunk))):
                    found[number] = OurTrade(state, paid, Certainty.LOOKBACK)
        return found

    def _unknown_refunds(self, unknown: list[tuple[str, str, Decimal, str]]) -> list[Discrepancy]:
        s = PaymentStep.__table__.c
        ours: dict[str, OurRefund] = {}
        with self._uow() as uow:
            for chunk in _chunks([number for number, *_ in unknown]):
                for row in uow.session.execute(self._refund_query().where(s.key.in_(chunk))):
                    ours[row.key] = OurRefund(row.out_trade_no or "", row.order_no, row.state,
                                              fen(Decimal(str((row.detail or {}).get("amount", "0")))),
                                              Certainty.LOOKBACK)
        found = []
        for out_refund_no, out_trade_no, amount, state in unknown:
            discrepancy = classify_refund(out_refund_no, ours.get(out_refund_no), amount, state)
            if discrepancy is not None:
                if discrepancy.order_no is None:
                    discrepancy = _with(discrepancy, details={**discrepancy.details, "out_trade_no": out_trade_no})
                found.append(discrepancy)
        return found

    def _local_day(self, moment: datetime | None) -> dt.date | None:
        return None if moment is None else as_utc(moment).astimezone(self._tz).date()

    def _late_trades(self, day: dt.date, numbers: list[str], matcher: ChannelMatcher) -> list[Discrepancy]:
        """Orders of the day's last pay window missing from the statement: paid after midnight is fine."""
        found = []
        for out_trade_no in numbers:
            ours = matcher.ours_trade(out_trade_no)
            assert ours is not None
            try:
                status = self._channel.query(out_trade_no)
            except UpstreamError:
                found.append(missing_trade(out_trade_no, ours, note="（无法向支付渠道确认）"))
                continue
            paid_on = self._local_day(status.paid_at) if status is not None and status.paid else None
            if paid_on is not None and paid_on > day:
                continue  # on the next day's statement
            shown = "渠道无此订单" if status is None else f"渠道状态 {status.state}"
            found.append(missing_trade(out_trade_no, ours, note=f"（{shown}）"))
        return found

    def _late_refunds(self, day: dt.date, numbers: list[str], matcher: ChannelMatcher) -> list[Discrepancy]:
        found = []
        for out_refund_no in numbers:
            ours = matcher.ours_refund(out_refund_no)
            assert ours is not None
            try:
                status = self._channel.query_refund(out_refund_no)
            except UpstreamError:
                found.append(missing_refund(out_refund_no, ours, note="（无法向支付渠道确认）"))
                continue
            accepted_on = self._local_day(status.created_at) if status is not None else None
            if accepted_on is not None and accepted_on > day:
                continue
            found.append(missing_refund(out_refund_no, ours))
        return found

    # -- HIS ----------------------------------------------------------------------------------------
    def _his_side(self, day: dt.date, figures: dict[str, Any]) -> list[Discrepancy]:
        start, end = self.bounds(day)
        ours = self._our_postings(start, end)
        indexed = len(ours)
        listed = self._his.list_payments(since=start - self._window, until=end + self._window)
        kiosk = [p for p in listed if _is_posting_key(p.idempotency_key)]
        found, unknown = match_postings(kiosk, ours)
        in_day = [p for p in unknown if start <= as_utc(p.posted_at) < end]
        known = self._postings_by_key([p.idempotency_key for p in in_day])
        for posting in in_day:
            discrepancy = classify_posting(posting, known.get(posting.idempotency_key))
            if discrepancy is not None:
                found.append(discrepancy)
        found += missing_postings(ours)
        figures["his"] = {"postings": len(listed), "kiosk_postings": len(kiosk), "our_orders": indexed,
                          "discrepancies": len(found)}
        return found

    def _posting_query(self):
        o = PaymentOrder.__table__.c
        return select(o.order_no, o.state, type_coerce(o.his_total, BigInteger), type_coerce(o.fund, BigInteger),
                      type_coerce(o.account, BigInteger), type_coerce(o.cash, BigInteger), o.created_at)

    def _our_postings(self, start: datetime, end: datetime) -> dict[str, OurPosting]:
        o = PaymentOrder.__table__.c
        query = self._posting_query().where(o.created_at >= start - self._window, o.created_at < end,
                                            o.state.in_(POSTED_STATES))
        index: dict[str, OurPosting] = {}
        with self._uow() as uow:
            for row in uow.session.execute(query.execution_options(yield_per=YIELD_PER)):
                certainty = Certainty.LOOKBACK if as_utc(row.created_at) < start else Certainty.CERTAIN
                index[_posting_key(row.order_no)] = _our_posting(row, certainty)
        return index

    def _postings_by_key(self, keys: Sequence[str]) -> dict[str, OurPosting]:
        o = PaymentOrder.__table__.c
        found: dict[str, OurPosting] = {}
        with self._uow() as uow:
            for chunk in _chunks([key.rpartition(":")[0] for key in keys]):
                for row in uow.session.execute(self._posting_query().where(o.order_no.in_(chunk))):
                    found[_posting_key(row.order_no)] = _our_posting(row, Certainty.LOOKBACK)
        return found

    # -- insurance ------------------------------------------------------------------------------------
    def _insurance_side(self, day: dt.date, figures: dict[str, Any]) -> list[Discrepancy]:
        start, end = self.bounds(day)
        o, s = PaymentOrder.__table__.c, PaymentStep.__table__.c
        settled_in_day = select(s.order_no).where(s.step == "2207", s.status == "succeeded", s.started_at >= start,
                                                 s.started_at < end)
        query = select(o.order_no, o.setl_id, o.mdtrt_id, o.total, o.fund, o.account, o.cash).where(
            o.setl_id.is_not(None), o.order_no.in_(settled_in_day))
        with self._uow() as uow:
            rows = uow.session.execute(query).all()
        totals = SettlementTotals()
        lines = []
        by_setl_id = {}
        for row in rows:
            total, fund_, account, cash = (v if v is not None else ZERO for v in (row.total, row.fund, row.account,
                                                                                  row.cash))
            totals = totals.add(total, fund_, account)
            lines.append(SettlementLine(setl_id=row.setl_id, total=total, fund=fund_, account=account, cash=cash,
                                        mdtrt_id=row.mdtrt_id or ""))
            by_setl_id[row.setl_id] = row.order_no
        reply = self._insurance.reconcile_totals(clearing_agency=self._admdvs, begins_on=day, ends_on=day,
                                                 total=totals.total, fund=totals.fund, account=totals.account,
                                                 count=totals.count)
        figures["insurance"] = {"settlements": totals.count, "total": str(totals.total), "fund": str(totals.fund),
                                "account": str(totals.account), "totals_consistent": reply.consistent,
                                "platform_count": reply.count,
                                "platform_total": None if reply.total is None else str(reply.total)}
        if reply.consistent:
            return []
        details = self._insurance.reconcile_details(clearing_agency=self._admdvs, begins_on=day, ends_on=day,
                                                    settlements=lines)
        figures["insurance"]["details_differences"] = len(details.differences)
        if not details.differences:
            return [totals_mismatch(day, totals, reply)]
        return [classify_settlement(difference, by_setl_id.get(difference.setl_id))
                for difference in details.differences]

    # -- the kiosks' bank POS ------------------------------------------------------------------------
    def record_pos_batch(self, device_id: str, report: PosBatchReport) -> dict[str, Any]:
        """Store a settled batch a kiosk's agent reports; the same batch reported again is stored once
        and answered as the first time. Raises :class:`PosBatchConflict` for the same batch with other
        contents."""
        settled_at = report.settled_at.astimezone(dt.timezone.utc)  # stored as UTC: SQLite keeps no offset
        day = report.business_date or settled_at.astimezone(self._tz).date()
        lines = [line.to_json() for line in report.lines]
        row = PosSettlementBatch(
            device_id=device_id, terminal_id=report.terminal_id, batch_no=report.batch_no, settled_at=settled_at,
            business_date=day, sale_count=report.sale_count, sale_amount=report.sale_amount,
            void_count=report.void_count, void_amount=report.void_amount, refund_count=report.refund_count,
            refund_amount=report.refund_amount, net_amount=report.net_amount, lines=lines,
            received_at=self._clock.now())
        with self._uow() as uow:
            uow.session.add(row)
            try:
                uow.commit()
                log.info("pos_batch.stored", device_id=device_id, batch_no=report.batch_no, day=day.isoformat(),
                         lines=len(lines))
                return _batch_json(row, stored=True)
            except IntegrityError:
                uow.session.rollback()
        b = PosSettlementBatch
        with self._uow() as uow:
            first = uow.session.scalars(select(b).where(
                b.device_id == device_id, b.terminal_id == report.terminal_id, b.batch_no == report.batch_no,
                b.settled_at == settled_at)).one()
            same = (first.business_date == day and first.lines == lines and
                    [first.sale_count, first.sale_amount, first.void_count, first.void_amount, first.refund_count,
                     first.refund_amount, first.net_amount] ==
                    [report.sale_count, report.sale_amount, report.void_count, report.void_amount,
                     report.refund_count, report.refund_amount, report.net_amount])
            if not same:
                log.error("pos_batch.conflict", device_id=device_id, batch_no=report.batch_no)
                raise PosBatchConflict(f"批次 {report.batch_no} 已上送过，内容不同")
            return _batch_json(first, stored=False)

    def _pos_side(self, day: dt.date, figures: dict[str, Any]) -> list[Discrepancy]:
        """Each kiosk's POS batches closed on ``day`` against our card transactions of the period they cover.

        A batch covers what the terminal did since its previous settlement: the kiosk's latest batch
        before the day (or the day's start) to the day's last settlement. A line is matched by the
        key the sale or give-back was made under, whenever our journal has it.
        """
        start, end = self.bounds(day)
        b = PosSettlementBatch
        with self._uow() as uow:
            batches = list(uow.session.scalars(select(b).where(b.business_date == day).order_by(b.settled_at)))
            previous = dict(uow.session.execute(select(b.device_id, func.max(b.settled_at)).where(
                b.business_date < day, b.business_date >= day - timedelta(days=POS_EXPECTED_DAYS)).group_by(
                b.device_id)).all())
            neighbours = uow.session.execute(select(b.device_id, b.lines).where(
                b.business_date != day, b.business_date >= day - timedelta(days=POS_NEIGHBOUR_DAYS),
                b.business_date <= day + timedelta(days=POS_NEIGHBOUR_DAYS))).all()
        periods: dict[str, tuple[datetime, datetime]] = {}
        for batch in batches:
            since = as_utc(previous[batch.device_id]) if batch.device_id in previous else start
            periods[batch.device_id] = (since, as_utc(batch.settled_at))  # ordered: the last one wins
        elsewhere = {(device_id, line["key"]) for device_id, lines in neighbours for line in lines or []}
        lower = min([start, *(since for since, _ in periods.values())]) - self._window - \
            timedelta(days=POS_GIVE_BACK_DAYS)
        upper = max([end, *(until for _, until in periods.values())]) + self._window
        ours, at = self._our_card_trades(lower, upper)
        lines = [_pos_line(batch.device_id, batch.terminal_id, batch.batch_no, line)
                 for batch in batches for line in batch.lines or []]
        unknown = sorted({line.key for line in lines} - ours.keys())
        if unknown:
            more, more_at = self._card_trades_by_key(unknown)
            ours.update(more)
            at.update(more_at)

        expected = [key for key, trade in ours.items()
                    if trade.device_id in periods and trade.done and (trade.kind != "sale" or trade.amount)
                    and periods[trade.device_id][0] < at[key] <= periods[trade.device_id][1]
                    and (trade.device_id, key) not in elsewhere]
        found, clean = match_pos_lines(lines, ours, expected)
        for batch in batches:
            mismatch = batch_totals_mismatch(_batch_figures(batch))
            if mismatch is not None:
                found.append(mismatch)

        in_day: dict[str, list[OurCardTrade]] = {}
        for key, trade in ours.items():
            if trade.done and start <= at[key] < end:
                in_day.setdefault(trade.device_id, []).append(trade)
        missing = sorted((set(in_day) | set(previous)) - set(periods))
        for device_id in missing:
            trades = in_day.get(device_id, [])
            found.append(missing_batch(device_id, day, len(trades), sum(t.amount for t in trades if t.kind == "sale")))

        def total(name: str) -> str:
            return str(sum((getattr(batch, name) for batch in batches), ZERO))

        figures["bank_pos"] = {
            "kiosks": len(periods), "batches": len(batches), "lines": len(lines),
            "sales": sum(batch.sale_count for batch in batches), "sale_amount": total("sale_amount"),
            "voids": sum(batch.void_count for batch in batches), "void_amount": total("void_amount"),
            "pos_refunds": sum(batch.refund_count for batch in batches), "pos_refund_amount": total("refund_amount"),
            "net_amount": total("net_amount"), "our_card_transactions": len(expected), "matched_lines": clean,
            "missing_batches": len(missing), "discrepancies": len(found)}
        return found

    def _card_query(self):
        s, o = PaymentStep.__table__.c, PaymentOrder.__table__.c
        return select(s.key, s.step, s.status, s.detail, s.finished_at, o.order_no, o.device_id, o.state,
                      type_coerce(o.paid_amount, BigInteger)).join_from(
            PaymentStep.__table__, PaymentOrder.__table__, s.order_no == o.order_no).where(
            s.step.in_(POS_STEPS), o.pay_method == "bank_card")

    def _our_card_trades(self, lower: datetime, upper: datetime) -> tuple[dict[str, OurCardTrade], dict[str, datetime]]:
        """Card sales and give-backs begun in ``[lower, upper)``, by key, and when the POS made each."""
        s = PaymentStep.__table__.c
        with self._uow() as uow:
            rows = uow.session.execute(self._card_query().where(s.started_at >= lower, s.started_at < upper)).all()
        return _card_trades(rows)

    def _card_trades_by_key(self, keys: Sequence[str]) -> tuple[dict[str, OurCardTrade], dict[str, datetime]]:
        s = PaymentStep.__table__.c
        rows = []
        with self._uow() as uow:
            for chunk in _chunks(keys):
                rows += uow.session.execute(self._card_query().where(s.key.in_(chunk))).all()
        return _card_trades(rows)

    # -- storing ------------------------------------------------------------------------------------
    def _fill_order_numbers(self, found: list[Discrepancy]) -> None:
        """Channel discrepancies are found by out_trade_no; staff look orders up by order_no."""
        wanted = {d.reference for d in found if d.order_no is None and d.source is Source.CHANNEL}
        wanted |= {d.details["out_trade_no"] for d in found if d.order_no is None and "out_trade_no" in d.details}
        if not wanted:
            return
        t = PaymentOrder.__table__.c
        orders: dict[str, str] = {}
        with self._uow() as uow:
            for chunk in _chunks(sorted(wanted)):
                orders.update(uow.session.execute(select(t.out_trade_no, t.order_no).where(
                    t.out_trade_no.in_(chunk))).tuples().all())
        for i, d in enumerate(found):
            if d.order_no is None:
                order_no = orders.get(d.reference) or orders.get(d.details.get("out_trade_no", ""))
                if order_no:
                    found[i] = _with(d, order_no=order_no)

    def _open_run(self, day: dt.date, triggered_by: str, schedule_key: str | None) -> int | None:
        with self._uow() as uow:
            run = ReconciliationRun(business_date=day, status="running", triggered_by=triggered_by[:80],
                                    schedule_key=schedule_key, started_at=self._clock.now(), error="", figures={},
                                    discrepancy_count=0)
            uow.session.add(run)
            try:
                uow.commit()
            except IntegrityError:
                return None
            return run.id

    def _fail_run(self, run_id: int, day: dt.date, message: str, figures: dict[str, Any]) -> None:
        with self._uow() as uow:
            uow.session.execute(update(ReconciliationRun).where(ReconciliationRun.id == run_id).values(
                status="failed", finished_at=self._clock.now(), error=message[:2000], figures=figures,
                # A failed scheduled run gives the day back, so the next attempt (or a person) can run it.
                schedule_key=None))
            record_event(uow, self._clock, FAILED_EVENT_KIND, f"{day} 对账未能完成：{message}", severity="critical",
                         details={"run_id": run_id, "date": day.isoformat()})
            uow.commit()

    def _finish_run(self, run_id: int, day: dt.date, found: list[Discrepancy], figures: dict[str, Any]) -> RunView:
        now = self._clock.now()
        order = {Severity.CRITICAL: 0, Severity.WARNING: 1}
        found = sorted(found, key=lambda d: (order[d.severity], d.source.value, d.kind.value, d.reference))
        with self._uow() as uow:
            rows = [ReconciliationDiscrepancy(
                run_id=run_id, source=d.source.value, kind=d.kind.value, severity=d.severity.value,
                reference=d.reference[:64], order_no=d.order_no, ours=d.ours, theirs=d.theirs,
                message=scrub_text(d.message), fix=d.fix, details={k: scrub_text(str(v)) for k, v in d.details.items()},
                created_at=now) for d in found]
            uow.session.add_all(rows)
            uow.session.flush()
            for row in rows[:MAX_EVENTS_PER_RUN]:
                record_event(uow, self._clock, EVENT_KIND,
                             f"{day} 对账：{SOURCE_LABELS[Source(row.source)]}"
                             f"{KIND_LABELS[DiscrepancyKind(row.kind)]}，{row.message}",
                             severity=row.severity,
                             details={"run_id": run_id, "discrepancy_id": row.id, "date": day.isoformat(),
                                      "source": row.source, "kind": row.kind, "reference": row.reference,
                                      "order_no": row.order_no or ""})
            if len(rows) > MAX_EVENTS_PER_RUN:
                record_event(uow, self._clock, EVENT_KIND,
                             f"{day} 对账另有 {len(rows) - MAX_EVENTS_PER_RUN} 条差异未逐条告警，请查看对账页面。",
                             severity="critical", details={"run_id": run_id, "date": day.isoformat()})
            run = uow.session.get(ReconciliationRun, run_id)
            run.status, run.finished_at, run.figures, run.discrepancy_count = "succeeded", now, figures, len(rows)
            uow.commit()
            return _run_view(run, len(rows))

    # ============================================================================================
    # reading and resolving (staff)
    # ============================================================================================
    def runs(self, *, limit: int = 60) -> list[RunView]:
        d = ReconciliationDiscrepancy
        open_counts = (select(d.run_id, func.count().label("n")).where(d.resolved_at.is_(None))
                       .group_by(d.run_id).subquery())
        with self._uow() as uow:
            rows = uow.session.execute(select(ReconciliationRun, open_counts.c.n).outerjoin(
                open_counts, open_counts.c.run_id == ReconciliationRun.id).order_by(
                ReconciliationRun.business_date.desc(), ReconciliationRun.id.desc()).limit(limit)).all()
            return [_run_view(run, n or 0) for run, n in rows]

    def run_detail(self, run_id: int, *, open_only: bool = False) -> tuple[RunView, list[DiscrepancyView]] | None:
        d = ReconciliationDiscrepancy
        with self._uow() as uow:
            run = uow.session.get(ReconciliationRun, run_id)
            if run is None:
                return None
            query = select(d).where(d.run_id == run_id).order_by(d.id)
            if open_only:
                query = query.where(d.resolved_at.is_(None))
            rows = [DiscrepancyView.of(row) for row in uow.session.scalars(query)]
            open_count = uow.session.scalar(select(func.count()).select_from(d).where(
                d.run_id == run_id, d.resolved_at.is_(None))) or 0
            return _run_view(run, open_count), rows

    def resolve(self, actor: str, discrepancy_id: int, note: str, *, client: str = "") -> DiscrepancyView:
        """Finance marks a discrepancy resolved with what was done; audited, and only once."""
        note = scrub_text((note or "").strip())
        if not note:
            raise ReconciliationError("请填写处理说明（如：已在商户平台原路退款，退款单号……）")
        if len(note) > 500:
            raise ReconciliationError("处理说明不能超过 500 个字")
        with self._uow() as uow:
            row = uow.session.get(ReconciliationDiscrepancy, discrepancy_id, with_for_update=True)
            if row is None:
                raise LookupError(discrepancy_id)
            if row.resolved_at is not None:
                raise ReconciliationError(f"该差异已由 {row.resolved_by} 处理")
            row.resolved_at, row.resolved_by, row.resolution_note = self._clock.now(), actor[:60], note
            audit.append(uow, self._clock, actor, "reconciliation.resolved", f"discrepancy:{discrepancy_id}", {
                "run_id": row.run_id, "source": row.source, "kind": row.kind, "reference": row.reference,
                "order_no": row.order_no or "", "note": note, "client": client})
            uow.commit()
            view = DiscrepancyView.of(row)
        log.info("reconciliation.resolved", discrepancy_id=discrepancy_id, actor=actor)
        return view


# -- the daily background run ------------------------------------------------------------------------
def seconds_until(now: datetime, at: str, tz: dt.tzinfo) -> float:
    """Seconds from ``now`` to the next ``HH:MM`` in ``tz`` (tomorrow's if today's has passed)."""
    hour, minute = (int(part) for part in at.split(":"))
    local = now.astimezone(tz)
    target = datetime.combine(local.date(), dt.time(hour, minute), tz)
    if target <= local:
        target = datetime.combine(local.date() + timedelta(days=1), dt.time(hour, minute), tz)
    return (target - local).total_seconds()


async def run_daily(container: "Container") -> None:
    """Reconcile yesterday every day at ``settings.reconcile_at`` (the service's background task).

    Every copy of the service wakes; the first to claim the day runs it (``schedule_key``). A
    failed run is recorded (with an event) and gives the day back for a person to run again.
    """
    import asyncio

    settings = container.settings
    service = ReconciliationService.from_container(container)
    while True:
        await asyncio.sleep(seconds_until(container.clock.now(), settings.reconcile_at, settings.tz))
        try:
            await asyncio.to_thread(service.run_scheduled)
        except Exception as exc:  # recorded on the run; the loop must live to run tomorrow
            log.warning("reconciliation.scheduled_failed", error=type(exc).__name__)
        await asyncio.sleep(61)  # past the minute, so one day is never run twice by one copy


# -- helpers ----------------------------------------------------------------------------------------
def _run_view(run: ReconciliationRun, open_count: int) -> RunView:
    return RunView(run.id, run.business_date, run.status, run.triggered_by, as_utc(run.started_at),
                   as_utc(run.finished_at) if run.finished_at else None, run.error or "", dict(run.figures or {}),
                   run.discrepancy_count, open_count)


def _batch_json(row: PosSettlementBatch, *, stored: bool) -> dict[str, Any]:
    return {"batch_id": row.id, "stored": stored, "business_date": row.business_date.isoformat(),
            "batch_no": row.batch_no, "terminal_id": row.terminal_id, "lines": len(row.lines or []),
            "net_amount": f"{row.net_amount:.2f}"}


def _pos_line(device_id: str, terminal_id: str, batch_no: str, line: dict[str, Any]) -> PosLine:
    return PosLine(line["key"], line["kind"], fen(Decimal(line["amount"])), line.get("reference") or "", device_id,
                   terminal_id, batch_no)


def _batch_figures(row: PosSettlementBatch) -> BatchFigures:
    return BatchFigures(row.device_id, row.terminal_id, row.batch_no, row.sale_count, fen(row.sale_amount),
                        row.void_count, fen(row.void_amount), row.refund_count, fen(row.refund_amount),
                        fen(row.net_amount),
                        tuple(_pos_line(row.device_id, row.terminal_id, row.batch_no, line) for line in row.lines or []))


_FAR_FUTURE = datetime.max.replace(tzinfo=dt.timezone.utc)


def _card_trades(rows) -> tuple[dict[str, OurCardTrade], dict[str, datetime]]:
    """Journal rows of card steps as the domain's index, and when the POS made each (its own time for a
    sale, as the agent reported it; when the report came for a give-back; never, if it did not)."""
    trades: dict[str, OurCardTrade] = {}
    made_at: dict[str, datetime] = {}
    for row in rows:
        detail = row.detail or {}
        sale = row.step == "pos.sale"
        kind = "sale" if sale else str(detail.get("kind") or row.step.removeprefix("pos."))
        amount = (row[8] or 0) if sale else fen(Decimal(str(detail.get("amount", "0"))))
        trades[row.key] = OurCardTrade(row.order_no, row.device_id, kind, row.state, row.status == "succeeded",
                                       amount)
        approved = detail.get("approved_at") if sale else None
        moment = datetime.fromisoformat(approved) if approved else row.finished_at
        made_at[row.key] = as_utc(moment) if moment is not None else _FAR_FUTURE
    return trades, made_at


def _posting_key(order_no: str) -> str:
    return step_key(order_no, "post")  # the key the payment engine posts to HIS under


def _is_posting_key(key: str) -> bool:
    return key.endswith(":post")


def _our_posting(row, certainty: Certainty) -> OurPosting:
    return OurPosting(row.order_no, row.state, row[2] or 0, row[3] or 0, row[4] or 0, row[5] or 0, certainty)


def _with(discrepancy: Discrepancy, **changes: Any) -> Discrepancy:
    return replace(discrepancy, **changes)


def _chunks(items: Sequence[str] | Iterable[str], size: int = BATCH) -> Iterable[list[str]]:
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i:i + size]
