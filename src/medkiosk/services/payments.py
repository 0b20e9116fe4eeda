"""Paying a visit's bills at the kiosk: the payment engine and its recovery worker.

Every external call is journalled (payment_steps) before it is made, with an idempotency key
derived from the order and the step, and the order's state is written after it returns. A crash
anywhere leaves an order whose state and journal tell the recovery worker what may have happened
upstream; ``advance`` then finishes or unwinds it. Two workers never drive one order at once:
each takes a lease on the order row first.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo as dt_tzinfo
from decimal import Decimal
from typing import Any, Callable, Iterator

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, NoResultFound

from medkiosk.adapters.errors import UpstreamError, UpstreamRefused, UpstreamUnknown
from medkiosk.adapters.insurance.port import FeeItem, SettlementRequest
from medkiosk.adapters.payment.port import PAID_STATES
from medkiosk.domain.money import CENT
from medkiosk.domain.payment import (
    CHECK_LABELS,
    AmountMismatch,
    PaymentMode,
    PaymentState,
    PayMethod,
    TERMINAL_STATES,
    Split,
    check_equal,
    check_transition,
    out_refund_no,
    out_trade_no,
    pos_give_back_kind,
    refundable,
    step_key,
)
from medkiosk.domain.regions import PatientCategory
from medkiosk.logging import get_logger
from medkiosk.security.crypto import FieldCipher
from medkiosk.services.clock import Clock, as_utc
from medkiosk.services.devices import AuthenticatedDevice
from medkiosk.services.events import record_event
from medkiosk.services.sessions import (
    SCHEME_LABELS,
    Payer,
    SessionService,
    certificate_from_json,
    certificate_to_json,
    insured_from_json,
    insured_to_json,
)
from medkiosk.store.models import Patient, PaymentOrder, PaymentStep

log = get_logger(__name__)

ZERO = Decimal("0.00")
TO_CASHIER = "请到人工收费窗口办理"
LEASE = timedelta(seconds=30)
PAY_WINDOW = timedelta(minutes=5)
MAX_SETTLE_ATTEMPTS = 2
POS_REPORT_GRACE = timedelta(minutes=10)
"""How long after its deadline a bank-card payment waits for the kiosk's POS report before staff are told."""
BILLS_FRESH_SECONDS = 120.0
"""How long the bills a session was shown stand in for a HIS read before pre-settlement."""
CANCEL_WAIT_SECONDS = 5.0
"""How long a patient's cancel waits for another request driving the order (a poll) to let go."""
MSGID_DRAWS = 10
"""Draws of a msgid another process already journalled before giving up: after the first, each lands at random."""
UNWOUND_STATES = frozenset({PaymentState.FAILED, PaymentState.CLOSED, PaymentState.REFUNDED})
# An order's invoice work still owed once it is finished: issue one (completed), void one (given back).
FOLLOW_UP_INVOICE = frozenset({"pending", "void_pending"})
"""Ends in which the bill was not paid: an insurance visit opened for it must be withdrawn."""

# The lease this thread (request or recovery round) holds: (order_no, token). Every write to that
# order checks the token, so a worker whose lease ran out and was taken over stops at once.
# The list holds the row as our last write left it, so driving needs no re-reads.
_HELD: ContextVar[tuple[str, str, list] | None] = ContextVar("payment_lease", default=None)


class LeaseLost(Exception):
    """Another worker took the order over after our lease ran out: stop driving it."""

STATE_LABELS = {
    PaymentState.CREATED: "正在计算费用",
    PaymentState.PRESETTLED: "请确认支付",
    PaymentState.AWAITING_PAYMENT: "等待支付",
    PaymentState.PAID: "已支付，正在结算",
    PaymentState.SETTLING: "正在医保结算",
    PaymentState.SETTLED: "医保已结算",
    PaymentState.POSTING: "正在登记缴费",
    PaymentState.COMPLETED: "缴费成功",
    PaymentState.UNWINDING: "正在撤销结算",
    PaymentState.REFUNDING: "正在退款",
    PaymentState.REFUNDED: "已退款",
    PaymentState.CLOSED: "已取消，未扣款",
    PaymentState.FAILED: "未能缴费",
}

CROSS_REGION_NOTICE = {
    PatientCategory.CROSS_PROVINCE: "异地医保（跨省）：按就医地目录、参保地待遇政策结算；需已办理异地就医备案。",
    PatientCategory.SAME_PROVINCE: "异地医保（省内）：按就医地目录、参保地待遇政策结算。",
}


class PaymentRefused(Exception):
    """What the patient is told when a payment cannot go ahead; nothing has changed."""

    def __init__(self, message: str, next_step: str = TO_CASHIER, *, status: int = 409,
                 offer_self_pay: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.next_step = next_step
        self.status = status
        self.offer_self_pay = offer_self_pay


@dataclass(frozen=True)
class PosTrade:
    """A bank-card sale as the kiosk's POS reported it, shaped like a channel trade for ``_record_paid``."""

    amount: Decimal
    transaction_id: str  # the bank's reference number (参考号)
    paid_amount: Decimal | None = None
    channel: str = "bank_card"


@dataclass(frozen=True)
class PosReport:
    """What the agent reports from the POS: a sale's or a refund's outcome."""

    key: str  # the order's out_trade_no for a sale, its out_refund_no for a void or refund
    kind: str  # sale, void or refund
    status: str  # approved, declined (nothing charged), or unknown (still finding out)
    amount: Decimal | None = None
    reference: str = ""
    message: str = ""
    approved_at: datetime | None = None


@dataclass(frozen=True)
class Ports:
    his: Any
    insurance: Any
    channel: Any
    einvoice: Any


class PaymentEngine:
    def __init__(self, uow_factory, clock: Clock, cipher: FieldCipher, sessions: SessionService, ports: Ports,
                 *, hospital_name: str, executor: ThreadPoolExecutor, owner: str | None = None,
                 pay_window: timedelta = PAY_WINDOW, tz: dt_tzinfo = UTC) -> None:
        self._executor = executor
        self._tz = tz
        self._uow = uow_factory
        self._clock = clock
        self._cipher = cipher
        self._sessions = sessions
        self._p = ports
        self._hospital_name = hospital_name
        self._owner = owner or f"engine-{secrets.token_hex(4)}"
        self._bills: dict[str, tuple[float, Any]] = {}
        self._bills_lock = threading.Lock()
        self._pay_window = pay_window

    # ============================================================================================
    # patient-facing
    # ============================================================================================
    def bills(self, device: AuthenticatedDevice) -> dict[str, Any]:
        """The patient's unpaid orders grouped by visit, with what can be paid how."""
        payer = self._sessions.payer(device)
        visits = self._unpaid_visits(payer)
        self._remember_bills(payer.session_id, visits)
        return {
            "visits": [self._visit_json(v) for v in visits],
            "insurance_available": payer.insured is not None and payer.certificate is not None,
            "category": payer.category.value,
            "cross_region_notice": CROSS_REGION_NOTICE.get(payer.category, ""),
        }

    def start(self, device: AuthenticatedDevice, visit_no: str, *, mode: PaymentMode,
              order_nos: list[str] | None = None) -> dict[str, Any]:
        """Create an order for a visit's orders (default: all of them) and compute its split."""
        payer = self._sessions.payer(device)
        # The bills this session was just shown spare a HIS round trip before pre-settlement; HIS is
        # still asked, beside 2201, and pre-settlement stops if the bill changed meanwhile.
        shown = self._shown_bills(payer.session_id)
        recheck = None
        if shown is not None and any(v.visit_no == visit_no for v in shown):
            visits = shown
            recheck = self._executor.submit(self._unpaid_visits, payer)
        else:
            visits = self._unpaid_visits(payer)
        visit = next((v for v in visits if v.visit_no == visit_no), None)
        if visit is None:
            raise PaymentRefused("没有找到这次就诊的待缴费用，可能已经缴过了。", "请返回查看待缴费用", status=404)
        items = [i for i in visit.items if order_nos is None or i.order_no in set(order_nos)]
        if not items:
            raise PaymentRefused("请选择要缴费的项目。", "请选择后再试", status=422)
        if mode is PaymentMode.INSURANCE and (payer.insured is None or payer.certificate is None):
            raise PaymentRefused("本次身份识别没有医保信息，只能自费支付。", "请插医保卡或出示医保电子凭证后使用医保，或选择自费",
                                 status=422, offer_self_pay=True)
        for item in items:
            if (item.unit_price * item.quantity).quantize(CENT) != item.amount:
                raise PaymentRefused("医院账单的单价与金额不一致，不能自助缴费。", status=409)
        his_total = sum((i.amount for i in items), ZERO)
        now = self._clock.now()
        order_no = self._new_order_no(now)
        insurance = None
        if mode is PaymentMode.INSURANCE:
            insurance = self._cipher.encrypt("payment.insurance", json.dumps({
                "person": insured_to_json(payer.insured), "certificate": certificate_to_json(payer.certificate)}))
        details = {
            "visit": {"visit_no": visit.visit_no, "date": visit.visit_date.isoformat(),
                      "department": visit.department_name, "department_code": visit.department_code,
                      "doctor": visit.doctor_name, "doctor_code": visit.doctor_code,
                      "special_disease": self._special_disease(visit, payer, mode, now)},
            "items": [{"order_no": i.order_no, "item_code": i.item_code, "name": i.name, "kind": str(i.kind),
                       "insurance_code": i.insurance_code, "self_pay_only": i.self_pay_only,
                       "unit_price": str(i.unit_price), "quantity": i.quantity, "amount": str(i.amount),
                       "unit": getattr(i, "unit", "")} for i in items],
        }
        active_key = f"{payer.his_patient_id}:{visit.visit_no}"
        token = self._token()
        for attempt in (1, 2):
            try:
                created = _new_order(
                    order_no=order_no, patient_id=payer.patient_row_id, his_patient_id=payer.his_patient_id,
                    device_id=device.id, session_id=payer.session_id, visit_no=visit.visit_no,
                    his_order_nos=sorted({i.order_no for i in items}), mode=mode.value,
                    category=payer.category.value, state=PaymentState.CREATED.value, his_total=his_total,
                    insurance_enc=insurance, details=details, active_key=active_key,
                    lease_owner=token, lease_until=now + LEASE, created_at=now, updated_at=now)
                with self._uow().core() as conn:
                    conn.execute(_ORDER_INSERT, created)
                created = PaymentOrder(**created)
                break
            except IntegrityError as exc:
                # The visit has an order in flight (its unique active key): end it if no money can
                # have moved, and try once more; otherwise the patient must wait for its outcome.
                if attempt == 2 or not self._end_unpaid_order(active_key):
                    raise PaymentRefused("这次就诊有一笔缴费正在处理中，请稍候查看结果。",
                                         "请稍后在“缴费记录”中查看，或到人工窗口咨询", status=409) from exc
        log.info("payment.created", order_no=order_no, device_id=device.id, mode=mode.value,
                 his_total=str(his_total))
        # The row as inserted (every column given) starts the lease's cache: no read.
        with self._driving(order_no, token=token, row=created):
            self._presettle(order_no, recheck)
            last = self._load(order_no)  # our last write: no read after the lease is let go
        return self._order_json(last)

    def _remember_bills(self, session_id: str, visits) -> None:
        now = time.monotonic()
        with self._bills_lock:
            for key in [k for k, (at, _) in self._bills.items() if now - at > BILLS_FRESH_SECONDS]:
                del self._bills[key]
            self._bills[session_id] = (now, visits)

    def _shown_bills(self, session_id: str):
        with self._bills_lock:
            at, visits = self._bills.get(session_id, (0.0, None))
        return visits if time.monotonic() - at <= BILLS_FRESH_SECONDS else None

    @staticmethod
    def _bill_unchanged(order: PaymentOrder, visits) -> bool:
        visit = next((v for v in visits if v.visit_no == order.visit_no), None)
        if visit is None:
            return False
        chosen = {i["order_no"] for i in order.details["items"]}
        now = sorted((i.order_no, i.item_code, str(i.amount)) for i in visit.items if i.order_no in chosen)
        return now == sorted((i["order_no"], i["item_code"], i["amount"]) for i in order.details["items"])

    def _end_unpaid_order(self, active_key: str) -> bool:
        """The patient starts the visit's bill again: end the earlier order if no money can have moved.

        True when the visit has no order in flight any more (a new one may be created)."""
        with self._uow() as uow:
            earlier = uow.session.scalars(select(PaymentOrder).where(PaymentOrder.active_key == active_key)).first()
        if earlier is None:
            return True  # ended meanwhile
        state = PaymentState(earlier.state)
        if state not in (PaymentState.PRESETTLED, PaymentState.AWAITING_PAYMENT):
            return False  # money may be moving: the unique key refuses the new order
        with self._driving(earlier.order_no, wait=CANCEL_WAIT_SECONDS) as held:
            if held:
                self._cancel_held(earlier.order_no)
        with self._uow() as uow:
            return uow.session.get(PaymentOrder, earlier.order_no).active_key is None

    def pay(self, device: AuthenticatedDevice, order_no: str, method: PayMethod,
            auth_code: str | None = None) -> dict[str, Any]:
        """Start paying the cash part: a QR order the patient scans, or a payment code they show.

        A payment code held to the scanner while the QR code is on screen is charged too: the QR
        order is closed first (if the patient paid it meanwhile, that payment goes ahead instead).
        """
        order = self._own_order(device, order_no)
        state = PaymentState(order.state)
        switching = (state is PaymentState.AWAITING_PAYMENT and method is PayMethod.PAYMENT_CODE
                     and order.pay_method == PayMethod.QR.value)
        if state is not PaymentState.PRESETTLED and not switching:
            return self.view(device, order_no)
        if method is PayMethod.NONE:
            raise PaymentRefused("请选择支付方式。", "请选择扫码支付或银行卡支付", status=422)
        if method is PayMethod.PAYMENT_CODE and not (auth_code and auth_code.isdigit() and 16 <= len(auth_code) <= 24):
            raise PaymentRefused("未能识别付款码，请重新出示手机付款码。", "请重新扫码", status=422)
        # (_own_order has touched the session: paying is activity)
        last = None
        with self._driving(order_no, wait=CANCEL_WAIT_SECONDS) as held:
            if held:
                state = self._state(order_no)
                if state is PaymentState.PRESETTLED:
                    self._start_paying(order_no, method, auth_code)
                elif switching and state is PaymentState.AWAITING_PAYMENT:
                    self._switch_to_payment_code(order_no, auth_code)
                last = self._load(order_no)
        return self._order_json(last or self._load(order_no))

    def _start_paying(self, order_no: str, method: PayMethod, auth_code: str | None) -> None:
        order = self._load(order_no)
        trade_no = key = out_trade_no(order_no)
        step = {PayMethod.PAYMENT_CODE: "code.charge", PayMethod.BANK_CARD: "pos.sale"}.get(method, "qr.create")
        self._transition(order_no, PaymentState.AWAITING_PAYMENT, pay_method=method.value,
                         out_trade_no=trade_no, pay_deadline=self._clock.now() + self._pay_window,
                         begin=[(step, trade_no, {"amount": str(order.cash)})])
        if method is PayMethod.PAYMENT_CODE:
            self._charge_payment_code(order_no, trade_no, auth_code)
            return
        if method is PayMethod.BANK_CARD:
            return  # the kiosk's POS charges the card (the agent drives it) and reports back
        try:
            qr = self._p.channel.create_qr_order(trade_no, order.cash, self._description(),
                                                 int(self._pay_window.total_seconds()))
        except UpstreamError as exc:
            self._end(key, "unknown" if isinstance(exc, UpstreamUnknown) else "refused")
            # No code was shown, so nobody can have paid: close it at once (safely, by the channel).
            self._update(order_no, message="支付通道暂时无法连接，未扣款，请稍后再试。")
            self._close_or_collect(order_no)
            self._drive(order_no)
            return
        # Nobody can have paid a code not yet on screen: no query until the page polls.
        # Relaxed: lost in a crash, the order is still awaiting its channel order, which recovery asks.
        self._update(order_no, details_patch={"code_url": qr.code_url}, finish=(key, "succeeded", None),
                     relaxed=True)

    def _switch_to_payment_code(self, order_no: str, auth_code: str) -> None:
        """Close the QR order; once the channel says it is closed unpaid, charge the code under …P(n+1)."""
        order = self._load(order_no)
        try:
            self._p.channel.close_order(order.out_trade_no)
        except UpstreamRefused:
            pass  # e.g. paid meanwhile: the query tells
        except UpstreamUnknown:
            return  # the QR stays valid; the patient can still scan it
        try:
            trade = self._p.channel.query(order.out_trade_no)
        except UpstreamError:
            return
        if trade is not None and trade.state in PAID_STATES:
            self._record_paid(order_no, trade)
            self._drive(order_no)
            return
        if trade is None or trade.state != "CLOSED":
            return
        attempt = int(order.out_trade_no.rsplit("P", 1)[1]) + 1
        trade_no = out_trade_no(order_no, attempt)
        self._update(order_no, out_trade_no=trade_no, pay_method=PayMethod.PAYMENT_CODE.value,
                     pay_deadline=self._clock.now() + self._pay_window,
                     details_patch={"code_url": None,
                                    "closed_trades": [*order.details.get("closed_trades", []), order.out_trade_no]},
                     begin=[("code.charge", trade_no, {"amount": str(order.cash)})])
        self._charge_payment_code(order_no, trade_no, auth_code)

    def _charge_payment_code(self, order_no: str, trade_no: str, auth_code: str) -> None:
        """Charge the code under ``trade_no`` (its journal step already begun with the order's write)."""
        order = self._load(order_no)
        key = trade_no
        try:
            result = self._p.channel.charge_payment_code(trade_no, auth_code, order.cash, self._description())
            self._end(key, "succeeded", {"state": str(result.state)})
        except UpstreamRefused as exc:
            self._end(key, "refused")
            self._update(order_no, message=exc.message)
        except UpstreamUnknown:
            self._end(key, "unknown")  # the query below finds out
        self._drive(order_no)

    def _description(self) -> str:
        return f"{self._hospital_name}门诊缴费"

    def status(self, device: AuthenticatedDevice, order_no: str) -> dict[str, Any]:
        """Where the order stands; while waiting for the patient's payment, ask the channel.

        The page polls this every two seconds per kiosk: while nothing has changed it writes
        nothing (no lease); the order is driven only when there is something to do.
        """
        order = self._own_order(device, order_no)
        state = PaymentState(order.state)
        if state.terminal and order.invoice_state not in FOLLOW_UP_INVOICE and order.visit_state != "open":
            return self._order_json(order)
        if (state is PaymentState.AWAITING_PAYMENT and order.pay_method != PayMethod.BANK_CARD.value
                and not self._past_deadline(order)):
            try:
                trade = self._p.channel.query(order.out_trade_no)
            except UpstreamError:
                return self._order_json(order)
            if trade is None or trade.state not in PAID_STATES and trade.state not in ("CLOSED", "PAYERROR"):
                return self._order_json(order)  # still waiting for the patient
            with self._driving(order_no, wait=CANCEL_WAIT_SECONDS) as held:
                current = self._load(order_no) if held else None
                if current is not None and PaymentState(current.state) is PaymentState.AWAITING_PAYMENT \
                        and current.out_trade_no == trade.out_trade_no and trade.state in PAID_STATES:
                    # What the channel just said is used as is: no second query before settling.
                    if self._record_paid(order_no, trade):
                        self._drive(order_no)
                elif current is not None:
                    self._drive(order_no)
                last = self._load(order_no) if current is not None else None
            return self._order_json(last or self._load(order_no))
        return self._order_json(self._advance(order_no))

    def cancel(self, device: AuthenticatedDevice, order_no: str) -> dict[str, Any]:
        """The patient backs out: nothing charged is kept (a payment that raced in is refunded)."""
        order = self._own_order(device, order_no)
        if PaymentState(order.state) in (PaymentState.PRESETTLED, PaymentState.AWAITING_PAYMENT):
            # A poll may be driving the order this moment: wait for it rather than ignore the tap.
            with self._driving(order_no, wait=CANCEL_WAIT_SECONDS) as held:
                if held:
                    self._cancel_held(order_no)
        return self.view(device, order_no)

    def give_back(self, device: AuthenticatedDevice | None, order_no: str, *, reason: str) -> dict[str, Any]:
        """Give a completed payment back (退费; a cancelled registration's fee): every part, by its own path.

        The HIS posting is cancelled first — until the HIS agrees, nothing moves and the payment
        stands. Then the order unwinds like any other: the settlement cancelled (2208) and the cash
        refunded to where it came from, the insurance visit withdrawn (2202) and the e-invoice
        voided. Asked again (a retry, or the recovery round), it carries on from where it stands.
        """
        if device is not None:
            self._own_order(device, order_no)
        with self._driving(order_no, wait=CANCEL_WAIT_SECONDS) as held:
            if not held:
                raise PaymentRefused("这笔缴费正在处理中，请稍后再试。", status=409)
            order = self._load(order_no)
            if order.details.get("given_back"):
                self._drive(order_no)
                return self._order_json(self._load(order_no))
            if PaymentState(order.state) is not PaymentState.COMPLETED or not order.receipt_no:
                raise PaymentRefused("这笔缴费尚未完成，不能退费。", status=409)
            key = step_key(order_no, "his.cancel")
            self._begin(order_no, "his.cancel", key, {"receipt_no": order.receipt_no, "reason": reason}, reuse=True)
            try:
                self._p.his.cancel_payment(order.receipt_no, key, reason)
            except UpstreamRefused as exc:
                self._end(key, "refused", {"message": exc.message})
                raise PaymentRefused(f"医院系统不能撤销这笔缴费：{exc.message}") from exc
            except UpstreamUnknown as exc:
                self._end(key, "unknown")  # asked again with the same key: the HIS cancels once
                raise PaymentRefused("暂时无法办理退费，请稍后再试。", status=503) from exc
            invoice_state = {"issued": "void_pending", "pending": "none"}.get(order.invoice_state, order.invoice_state)
            self._transition(
                order_no, PaymentState.UNWINDING if order.setl_id else PaymentState.REFUNDING, giving_back=True,
                finish=(key, "succeeded", None), message=f"已{reason}，费用将原路退回。", invoice_state=invoice_state,
                visit_state="open" if order.visit_state == "kept" else order.visit_state,
                details_patch={"given_back": reason})
            log.info("payment.given_back", order_no=order_no, reason=reason)
            self._drive(order_no)
            last = self._load(order_no)
        return self._order_json(last)

    def _after_refunded(self, order: PaymentOrder) -> bool:
        """Everything paid is back: void the invoice of a payment given back, withdraw the insurance visit."""
        self._void_invoice(order)
        return self._withdraw_visit(self._load(order.order_no))

    def _void_invoice(self, order: PaymentOrder) -> None:
        if order.invoice_state != "void_pending" or not order.invoice_no or self._p.einvoice is None:
            return
        key = step_key(order.order_no, "invoice.void")
        self._begin(order.order_no, "einvoice.void", key, {"invoice_no": order.invoice_no}, reuse=True)
        try:
            self._p.einvoice.void(order.invoice_no, key, order.details.get("given_back") or "退费")
        except UpstreamError as exc:  # the money is back; the void is asked again next round
            self._end(key, "unknown" if isinstance(exc, UpstreamUnknown) else "refused")
            return
        self._update(order.order_no, invoice_state="voided", finish=(key, "succeeded", None))

    def _cancel_held(self, order_no: str) -> None:
        order = self._load(order_no)
        state = PaymentState(order.state)
        if state is PaymentState.AWAITING_PAYMENT and order.pay_method == PayMethod.BANK_CARD.value:
            # Only the POS knows whether the card was charged: its report closes the order or carries it on.
            self._update(order_no, details_patch={"cancel_requested": True})
            return
        if state is PaymentState.AWAITING_PAYMENT:
            self._close_or_collect(order_no)
        elif state is PaymentState.PRESETTLED:
            self._transition(order_no, PaymentState.CLOSED, message="您已取消缴费，未扣款。")
        self._drive(order_no)

    # -- the kiosk's bank POS (driven by the agent) ------------------------------------------------
    def record_pos_report(self, device: AuthenticatedDevice, report: PosReport) -> dict[str, Any]:
        """The agent tells what the POS did for one of this kiosk's orders; repeating a report is harmless."""
        order_no = report.key.rsplit("P" if report.kind == "sale" else "R", 1)[0]
        with self._uow() as uow:
            order = uow.session.get(PaymentOrder, order_no)
        if order is None or order.device_id != device.id or order.pay_method != PayMethod.BANK_CARD.value:
            raise PaymentRefused("没有找到这笔银行卡交易。", "请到人工窗口核对", status=404)
        with self._driving(order_no, wait=CANCEL_WAIT_SECONDS) as held:
            if not held:
                raise PaymentRefused("订单正在处理，请稍后再报告。", "稍后重试", status=409)
            if report.kind == "sale":
                self._pos_sale_reported(order_no, report)
            else:
                self._pos_refund_reported(order_no, report)
            self._drive(order_no)
        return self._order_json(self._load(order_no))

    def pos_tasks(self, device: AuthenticatedDevice) -> list[dict[str, Any]]:
        """Card payments this kiosk's POS must give back (void or refund), oldest first."""
        with self._uow() as uow:
            rows = uow.session.execute(select(PaymentOrder, PaymentStep).join(
                PaymentStep, PaymentStep.order_no == PaymentOrder.order_no).where(
                PaymentOrder.device_id == device.id, PaymentOrder.state == PaymentState.REFUNDING.value,
                PaymentOrder.pay_method == PayMethod.BANK_CARD.value,
                PaymentStep.step.in_(["pos.void", "pos.refund"]), PaymentStep.status != "succeeded",
            ).order_by(PaymentOrder.updated_at).limit(20)).all()
        return [{"key": step.key, "kind": step.detail["kind"], "amount": step.detail["amount"],
                 "reference": step.detail["reference"], "trade_no": order.out_trade_no} for order, step in rows]

    def _pos_sale_reported(self, order_no: str, report: PosReport) -> None:
        order = self._load(order_no)
        state = PaymentState(order.state)
        if report.key != order.out_trade_no:
            raise PaymentRefused("交易号与订单不符。", "请到人工窗口核对", status=409)
        if state is not PaymentState.AWAITING_PAYMENT:
            if report.status == "approved" and state in (PaymentState.CLOSED, PaymentState.FAILED):
                self._stuck(order_no, f"银行卡已扣款（参考号{report.reference}）但订单已关闭，请人工退款")
            return  # reported before: already taken forward
        if report.status == "approved":
            self._end(report.key, "succeeded", {"reference": report.reference, **(
                {"approved_at": report.approved_at.isoformat()} if report.approved_at else {})})
            self._record_paid(order_no, PosTrade(amount=report.amount, transaction_id=report.reference))
        elif report.status == "declined":
            self._end(report.key, "refused", {"message": report.message})
            self._transition(order_no, PaymentState.CLOSED,
                             message=f"银行卡支付未成功（{report.message or '交易被拒绝'}），未扣款。可换用扫码支付。")

    def _pos_refund_reported(self, order_no: str, report: PosReport) -> None:
        order = self._load(order_no)
        if PaymentState(order.state) is not PaymentState.REFUNDING:
            return
        if report.status == "approved":
            self._transition(order_no, PaymentState.REFUNDED, refunded_amount=order.refunded_amount + report.amount,
                             finish=(report.key, "succeeded", {"reference": report.reference}))
        elif report.status == "declined":
            self._end(report.key, "refused", {"message": report.message})
            self._stuck(order_no, f"自助机POS退款被拒绝：{report.message}")

    def history(self, device: AuthenticatedDevice, *, days: int = 30) -> dict[str, Any]:
        """The patient's payments at the kiosks over the last ``days`` days, newest first."""
        payer = self._sessions.payer(device)
        since = self._clock.now() - timedelta(days=days)
        with self._uow() as uow:
            orders = uow.session.scalars(select(PaymentOrder).where(
                PaymentOrder.patient_id == payer.patient_row_id, PaymentOrder.created_at >= since,
                PaymentOrder.state.in_([PaymentState.COMPLETED.value, PaymentState.REFUNDED.value])
            ).order_by(PaymentOrder.created_at.desc()).limit(100)).all()
            return {"days": days, "payments": [
                {**self._order_json(o), "created_at": as_utc(o.created_at).isoformat()} for o in orders]}

    def record_reprint(self, device: AuthenticatedDevice, order_no: str, document: str) -> int:
        """Count and log a reprint (补打); returns how many times this document has been reprinted."""
        self._own_order(device, order_no)
        with self._uow() as uow:
            row = uow.session.get(PaymentOrder, order_no, with_for_update=True)
            counts = dict(row.details.get("reprints", {}))
            counts[document] = counts.get(document, 0) + 1
            row.details = {**row.details, "reprints": counts}
            uow.commit()
        log.info("payment.reprint", order_no=order_no, document=document, device_id=device.id,
                 count=counts[document])
        return counts[document]

    def invoice_pdf(self, device: AuthenticatedDevice, order_no: str) -> bytes:
        order = self._own_order(device, order_no)
        if not order.invoice_no:
            raise PaymentRefused("电子票据尚未开具，请稍后再试。", "可稍后在“缴费记录”中打印", status=409)
        try:
            return self._p.einvoice.pdf(order.invoice_no)
        except UpstreamError as exc:
            raise PaymentRefused("暂时无法获取电子票据，请稍后再试。", "可稍后在“缴费记录”中打印", status=503) from exc

    def view(self, device: AuthenticatedDevice | None, order_no: str) -> dict[str, Any]:
        return self._order_json(self._read(order_no))

    # ============================================================================================
    # driving the machine
    # ============================================================================================
    def advance(self, order_no: str) -> PaymentState:
        """Drive an order as far as it can go now; returns the state it stopped in."""
        return PaymentState(self._advance(order_no).state)

    def _advance(self, order_no: str) -> PaymentOrder:
        """Drive the order if nobody else is; the row as it then stands."""
        last = None
        with self._driving(order_no) as held:
            if held:
                self._drive(order_no)
                last = self._load(order_no)  # our last write: no read
        return last or self._load(order_no)

    def recover(self, *, older_than: timedelta = timedelta(seconds=0)) -> dict[str, int]:
        """Resume or unwind every unfinished order no one is driving (after a crash, a timeout, a restart).

        Finished orders come back too while a follow-up is owed: an insurance visit to withdraw, an
        e-invoice to issue. An order still being created is left to its request for two leases' time.
        """
        now = self._clock.now()
        free = or_(PaymentOrder.lease_until.is_(None), PaymentOrder.lease_until < now)
        unfinished = [s.value for s in PaymentState if not s.terminal and s is not PaymentState.CREATED]
        with self._uow() as uow:
            order_nos = list(uow.session.scalars(select(PaymentOrder.order_no).where(
                free, PaymentOrder.updated_at <= now - older_than, or_(
                    PaymentOrder.state.in_(unfinished),
                    (PaymentOrder.state == PaymentState.CREATED.value)
                    & (PaymentOrder.created_at <= now - max(older_than, 2 * LEASE)),
                    (PaymentOrder.visit_state == "open")
                    & PaymentOrder.state.in_([s.value for s in UNWOUND_STATES]),
                    (PaymentOrder.invoice_state == "pending")
                    & (PaymentOrder.state == PaymentState.COMPLETED.value),
                    (PaymentOrder.invoice_state == "void_pending")
                    & PaymentOrder.state.in_([s.value for s in UNWOUND_STATES]),
                )).order_by(PaymentOrder.updated_at).limit(500)))
        counts: dict[str, int] = {}
        for order_no in order_nos:
            try:
                state = self.advance(order_no)
            except Exception as exc:  # one bad order must not stop the others; it is retried next round
                log.exception("payment.recover_failed", order_no=order_no, error=type(exc).__name__)
                state = self._state(order_no)
            counts[state.value] = counts.get(state.value, 0) + 1
        return counts

    def _drive(self, order_no: str) -> PaymentState:
        """One step after another until the order finishes or must wait for something outside."""
        for _ in range(20):
            order = self._load(order_no)
            state = PaymentState(order.state)
            step: Callable[[PaymentOrder], bool] | None = {
                PaymentState.CREATED: self._creation_interrupted,
                PaymentState.PRESETTLED: self._confirmation_abandoned,
                PaymentState.AWAITING_PAYMENT: self._await_payment,
                PaymentState.PAID: self._after_paid,
                PaymentState.SETTLING: self._settling_interrupted,
                PaymentState.SETTLED: self._start_posting,
                PaymentState.POSTING: self._post,
                PaymentState.UNWINDING: self._unwind,
                PaymentState.REFUNDING: self._refund,
                PaymentState.COMPLETED: self._invoice,
                PaymentState.FAILED: self._withdraw_visit,
                PaymentState.CLOSED: self._withdraw_visit,
                PaymentState.REFUNDED: self._after_refunded,
            }.get(state)
            if step is None or not step(order):
                return PaymentState(self._load(order_no).state)
        return PaymentState(self._load(order_no).state)

    # -- pre-settlement -----------------------------------------------------------------------------
    def _presettle(self, order_no: str, recheck=None) -> None:
        order = self._load(order_no)
        if PaymentMode(order.mode) is PaymentMode.SELF_PAY:
            if self._bill_changed(order_no, recheck):
                return
            self._presettled(order_no, Split.self_pay(order.his_total))
            return
        person, certificate = self._insurance_of(order)
        ins = self._p.insurance
        visit = order.details["visit"]
        batch_no = self._batch_no(order)
        try:
            # The visit counts as open before 2201 goes out: it may register one even if no reply comes.
            msgid = self._with_msgids(order_no, ["2201"], visit_state="open")["2201"]
            registration = ins.register_visit(
                psn_no=person.psn_no, insured_region=person.insured_region, scheme=person.scheme,
                certificate=certificate, visit_no=order.visit_no, began_at=order.created_at,
                department_code=visit.get("department_code", ""), department_name=visit.get("department", ""),
                doctor_code=visit.get("doctor_code", ""), doctor_name=visit.get("doctor", ""), msgid=msgid)
            mdtrt_id = registration.mdtrt_id
            msgids = self._with_msgids(order_no, ["2203", "2204", "2206"], mdtrt_id=mdtrt_id, chrg_bchno=batch_no)
            # 2203 and 2204 only need the visit: send them together.
            visit_info = self._executor.submit(
                ins.upload_visit_info, psn_no=person.psn_no, insured_region=person.insured_region,
                mdtrt_id=mdtrt_id, began_at=order.created_at, med_type=self._med_type(order),
                disease_code=(visit.get("special_disease") or {}).get("code", ""),
                disease_name=(visit.get("special_disease") or {}).get("name", ""), msgid=msgids["2203"])
            results = ins.upload_fees(psn_no=person.psn_no, insured_region=person.insured_region,
                                      mdtrt_id=mdtrt_id, batch_no=batch_no, items=self._fee_items(order),
                                      msgid=msgids["2204"])
            visit_info.result()
            check_equal("detail_total", order.his_total, sum((r.amount for r in results), ZERO))
            order = self._load(order_no)
            pre = ins.pre_settle(self._settle_request(order, person, certificate), msgid=msgids["2206"])
            check_equal("settlement_total", order.his_total, pre.total)
            split = Split(pre.total, pre.fund, pre.account, pre.cash)
        except AmountMismatch as exc:
            self._anomaly(order_no, exc, refund=False)
            self._transition(order_no, PaymentState.FAILED, anomaly=exc.check,
                             message=f"{CHECK_LABELS[exc.check]}，本次未扣款。")
            self._drive(order_no)
            return
        except UpstreamRefused as exc:
            offer = "备案" in exc.message or "自费" in exc.message
            self._transition(order_no, PaymentState.FAILED, message=exc.message,
                             details_patch={"offer_self_pay": True} if offer else None)
            self._drive(order_no)
            return
        except UpstreamUnknown:
            self._transition(order_no, PaymentState.FAILED, message="医保平台暂时无法连接，本次未扣款，请稍后再试。")
            self._drive(order_no)
            return
        if self._bill_changed(order_no, recheck):
            return
        self._presettled(order_no, split)

    def _bill_changed(self, order_no: str, recheck) -> bool:
        """Did HIS change the bill since the patient was shown it? Then stop before any money moves."""
        if recheck is None:
            return False
        try:
            unchanged = self._bill_unchanged(self._load(order_no), recheck.result())
        except PaymentRefused:
            unchanged = False
        if unchanged:
            return False
        self._transition(order_no, PaymentState.FAILED, message="医院账单已有变化或暂时无法核对，本次未扣款，请返回重新查看待缴费用。")
        self._drive(order_no)
        return True

    def _presettled(self, order_no: str, split: Split) -> None:
        self._transition(order_no, PaymentState.PRESETTLED, total=split.total, fund=split.fund,
                         account=split.account, cash=split.cash)
        if split.cash == ZERO:
            self._transition(order_no, PaymentState.PAID, pay_method=PayMethod.NONE.value, paid_amount=ZERO)
            self._drive(order_no)

    def _creation_interrupted(self, order: PaymentOrder) -> bool:
        """Found still CREATED long after its request: it crashed pre-settling; no money moved."""
        self._transition(order.order_no, PaymentState.FAILED, message="缴费未完成，未扣款，请重新办理。")
        return True

    def _confirmation_abandoned(self, order: PaymentOrder) -> bool:
        """Pre-settled but never confirmed: after the pay window the patient has gone; close it."""
        if self._clock.now() - as_utc(order.updated_at) < self._pay_window:
            return False
        self._transition(order.order_no, PaymentState.CLOSED, message="缴费未确认，已取消，未扣款。")
        return True

    def _withdraw_visit(self, order: PaymentOrder) -> bool:
        """The bill was not paid: withdraw the insurance visit opened for it, fee details and all.

        2202 when the platform told us the visit (mdtrt_id); otherwise — the 2201 reply was lost —
        a reversal (2601) of the 2201 message, which undoes it if it was processed and blocks it if
        it arrives later. A refusal or no answer leaves the visit open; recovery tries again.
        """
        if order.visit_state != "open":
            return False
        order_no = order.order_no
        person, _ = self._insurance_of(order)
        with self._uow() as uow:
            sent = list(uow.session.scalars(select(PaymentStep.key).where(
                PaymentStep.order_no == order_no, PaymentStep.step == "2201")))
        try:
            if order.mdtrt_id:
                try:
                    self._p.insurance.cancel_visit(mdtrt_id=order.mdtrt_id, psn_no=person.psn_no,
                                                   insured_region=person.insured_region, visit_no=order.visit_no,
                                                   msgid=self._msgid(order_no, "2202"))
                    sent = []
                except UpstreamRefused as exc:
                    # e.g. already withdrawn: the reversals below say so in a word that cannot be misread
                    log.info("payment.visit_cancel_refused", order_no=order_no, message=exc.message)
            for original in sent:
                self._p.insurance.reverse(original_msgid=original, original_infno="2201", psn_no=person.psn_no,
                                          insured_region=person.insured_region, msgid=self._msgid(order_no, "2601"))
        except UpstreamError as exc:
            log.warning("payment.visit_withdraw_failed", order_no=order_no, error=type(exc).__name__)
            return False
        self._update(order_no, visit_state="withdrawn")
        return False

    # -- waiting for the patient's money -------------------------------------------------------------
    def _await_payment(self, order: PaymentOrder) -> bool:
        if order.pay_method == PayMethod.BANK_CARD.value:
            overdue = order.pay_deadline is not None and self._clock.now() >= as_utc(order.pay_deadline) + POS_REPORT_GRACE
            if overdue and not order.details.get("pos_overdue"):
                self._update(order.order_no, details_patch={"pos_overdue": True})
                self._stuck(order.order_no, "银行卡支付超时未收到自助机POS的结果，请核对该机POS交易")
            return False  # only the kiosk's POS report moves it on
        try:
            trade = self._p.channel.query(order.out_trade_no)
        except UpstreamError:
            trade = None
            if not self._past_deadline(order):
                return False
        if trade is not None and trade.state in PAID_STATES:
            return self._record_paid(order.order_no, trade)
        if trade is not None and trade.state in ("CLOSED", "PAYERROR"):
            self._transition(order.order_no, PaymentState.CLOSED,
                             message=order.message or "支付未成功，未扣款。")
            return True
        if not self._past_deadline(order):
            return False
        return self._close_or_collect(order.order_no)

    def _close_or_collect(self, order_no: str) -> bool:
        """Close the channel order; if the patient paid in the meantime, take the payment forward."""
        order = self._load(order_no)
        try:
            self._p.channel.close_order(order.out_trade_no)
        except UpstreamRefused:
            pass  # e.g. already paid: the query below tells
        except UpstreamUnknown:
            return False  # try again next round
        try:
            trade = self._p.channel.query(order.out_trade_no)
        except UpstreamError:
            return False
        if trade is not None and trade.state in PAID_STATES:
            return self._record_paid(order_no, trade)
        self._transition(order_no, PaymentState.CLOSED, message=order.message or "支付已取消或超时，未扣款。")
        return True

    def _record_paid(self, order_no: str, trade) -> bool:
        order = self._load(order_no)
        paid = trade.paid_amount if trade.paid_amount is not None else trade.amount
        try:
            check_equal("cash_paid", order.cash, paid)
            mismatch = None
        except AmountMismatch as exc:
            mismatch = exc
        paid_fields = {"paid_amount": paid, "transaction_id": trade.transaction_id,
                       "channel": str(getattr(trade, "channel", "") or "")}
        if mismatch:
            # The check's verdict is written with the payment, so a crash right after cannot lose it.
            self._transition(order_no, PaymentState.PAID, anomaly=mismatch.check,
                             message=f"{CHECK_LABELS[mismatch.check]}，已为您办理退款。", **paid_fields)
            self._anomaly(order_no, mismatch, refund=True)
            return True
        # The payment is written together with the next step's journal entry (one write, not two).
        if PaymentMode(order.mode) is PaymentMode.SELF_PAY:
            return self._start_posting(order, through=PaymentState.PAID, **paid_fields)
        return self._settle(order, through=PaymentState.PAID, **paid_fields)

    # -- settlement --------------------------------------------------------------------------------
    def _after_paid(self, order: PaymentOrder) -> bool:
        if order.anomaly:  # the channel took a different amount from the one asked
            self._transition(order.order_no, PaymentState.REFUNDING)
            return True
        if PaymentMode(order.mode) is PaymentMode.SELF_PAY:
            return self._start_posting(order)
        return self._settle(order)

    def _settle(self, order: PaymentOrder, *, through: PaymentState | None = None, **fields) -> bool:
        order_no = order.order_no
        person, certificate = self._insurance_of(order)
        msgid = self._with_msgids(order_no, ["2207"], target=[*([through] if through else []), PaymentState.SETTLING],
                                  attempts=order.attempts + 1, **fields)["2207"]
        try:
            result = self._p.insurance.settle(self._settle_request(order, person, certificate), msgid=msgid)
        except UpstreamRefused as exc:
            self._end(msgid, "refused", {"message": exc.message})
            self._transition(order_no, PaymentState.REFUNDING, message=f"医保结算未成功（{exc.message}），已为您办理退款。")
            return True
        except UpstreamUnknown:
            self._end(msgid, "unknown")
            self._transition(order_no, PaymentState.UNWINDING, details_patch={"reverse_msgid": msgid})
            return True
        settled = (msgid, "succeeded", {"setl_id": result.setl_id})
        try:
            check_equal("settlement_total", order.his_total, result.total)
            Split(result.total, result.fund, result.account, result.cash)
            check_equal("settlement_cash", order.cash, result.cash)
        except AmountMismatch as exc:
            self._transition(order_no, PaymentState.UNWINDING, setl_id=result.setl_id, anomaly=exc.check,
                             message=f"{CHECK_LABELS[exc.check]}，已撤销结算并为您退款。", finish=settled)
            self._anomaly(order_no, exc, refund=True)
            return True
        # Settled, and the HIS posting begins, in one write (POSTING with a setl_id is settled).
        return self._start_posting(order, through=PaymentState.SETTLED, setl_id=result.setl_id, fund=result.fund,
                                   account=result.account, finish=settled)

    def _settling_interrupted(self, order: PaymentOrder) -> bool:
        """Found in SETTLING with no recorded outcome: the 2207 outcome is unknown — reverse it."""
        with self._uow() as uow:
            step = uow.session.scalars(select(PaymentStep).where(
                PaymentStep.order_no == order.order_no, PaymentStep.step == "2207"
            ).order_by(PaymentStep.id.desc()).limit(1)).first()
        if step is None:  # crashed before the msgid was even written: nothing was sent
            self._transition(order.order_no, PaymentState.UNWINDING, details_patch={"reverse_msgid": None})
            return True
        self._end(step.key, "unknown")
        self._transition(order.order_no, PaymentState.UNWINDING, details_patch={"reverse_msgid": step.key})
        return True

    def _unwind(self, order: PaymentOrder) -> bool:
        order_no = order.order_no
        person, _ = self._insurance_of(order)
        if order.setl_id:
            # A committed settlement to undo (HIS refused for good, or amounts disagree): 2208.
            try:
                self._p.insurance.cancel_settlement(setl_id=order.setl_id, mdtrt_id=order.mdtrt_id,
                                                    psn_no=person.psn_no, insured_region=person.insured_region,
                                                    msgid=self._msgid(order_no, "2208"))
            except UpstreamRefused as exc:
                # Refused — already undone, or the platform cannot now? A reversal of the 2207
                # message answers unambiguously, and undoes the settlement if it still stands.
                if not self._reverse_settlement(order, person, refusal=exc.message):
                    return False
            except UpstreamUnknown:
                return False  # retried by the recovery worker
            self._update(order_no, setl_id=None, details_patch={"cancelled_setl_id": order.setl_id})
            self._transition(order_no, PaymentState.REFUNDING)
            return True
        reverse_msgid = order.details.get("reverse_msgid")
        if reverse_msgid:
            try:
                self._p.insurance.reverse(original_msgid=reverse_msgid, original_infno="2207",
                                          psn_no=person.psn_no, insured_region=person.insured_region,
                                          msgid=self._msgid(order_no, "2601"))
            except UpstreamUnknown:
                return False
            except UpstreamRefused as exc:
                self._stuck(order_no, f"医保冲正被拒绝：{exc.message}")
                return False
        self._update(order_no, details_patch={"reverse_msgid": None})
        if order.anomaly is None and order.attempts < MAX_SETTLE_ATTEMPTS:
            return self._settle(self._load(order_no))  # settle again, with a new msgid
        self._transition(order_no, PaymentState.REFUNDING,
                         message=order.message or "医保结算未能完成，已为您办理退款。")
        return True

    def _reverse_settlement(self, order: PaymentOrder, person, *, refusal: str) -> bool:
        with self._uow() as uow:
            settle_msgids = [step.key for step in uow.session.scalars(select(PaymentStep).where(
                PaymentStep.order_no == order.order_no, PaymentStep.step == "2207")) if
                step.detail.get("setl_id") == order.setl_id]
        if not settle_msgids:
            self._stuck(order.order_no, f"撤销医保结算被拒绝：{refusal}")
            return False
        try:
            self._p.insurance.reverse(original_msgid=settle_msgids[-1], original_infno="2207",
                                      psn_no=person.psn_no, insured_region=person.insured_region,
                                      msgid=self._msgid(order.order_no, "2601"))
        except UpstreamRefused as exc:
            self._stuck(order.order_no, f"撤销医保结算被拒绝：{refusal}；冲正也被拒绝：{exc.message}")
            return False
        except UpstreamUnknown:
            return False
        return True

    # -- HIS posting ---------------------------------------------------------------------------------
    def _start_posting(self, order: PaymentOrder, *, through: PaymentState | None = None, **changes) -> bool:
        key = step_key(order.order_no, "post")
        order = self._transition(order.order_no, [*([through] if through else []), PaymentState.POSTING],
                                 begin=[("his.post", key, {"total": str(order.his_total)})], **changes)
        return self._post(order, begun=True)

    def _post(self, order: PaymentOrder, *, begun: bool = False) -> bool:
        order_no = order.order_no
        key = step_key(order_no, "post")
        if not begun:
            self._begin(order_no, "his.post", key, {"total": str(order.his_total)}, reuse=True)
        try:
            posted = self._p.his.post_payment(self._posting(order, key))
        except UpstreamRefused as exc:
            # An earlier attempt whose reply was lost may have posted: HIS refuses the retry then
            # (e.g. "already paid"), but keeps the first posting. Look before unwinding.
            try:
                posted = self._posted_under(order, key)
            except UpstreamError:
                self._end(key, "unknown", {"message": exc.message})
                return False  # cannot tell now: ask again next round
            if posted is not None:
                return self._posted(order, key, posted)
            self._end(key, "refused", {"message": exc.message})
            target = PaymentState.UNWINDING if order.setl_id else PaymentState.REFUNDING
            self._transition(order_no, target, message=f"医院登记缴费未成功（{exc.message}），已为您办理退款。")
            return True
        except UpstreamUnknown:
            self._end(key, "unknown")
            return False  # the same key is retried: HIS posts once
        return self._posted(order, key, posted)

    def _posted(self, order: PaymentOrder, key: str, posted) -> bool:
        invoice_key = step_key(order.order_no, "invoice")
        order = self._transition(
            order.order_no, PaymentState.COMPLETED, receipt_no=posted.receipt_no, message="缴费成功。",
            invoice_state="pending", visit_state="kept" if order.visit_state == "open" else order.visit_state,
            finish=(key, "succeeded", {"receipt_no": posted.receipt_no}),
            begin=[("einvoice.issue", invoice_key, {})] if self._p.einvoice is not None else [])
        log.info("payment.completed", order_no=order.order_no, cash=str(order.cash))
        if self._p.einvoice is not None:
            self._issue_invoice(order, invoice_key)
        return False

    def _posted_under(self, order: PaymentOrder, key: str):
        """The HIS payment posted with ``key``, if one stands."""
        since = as_utc(order.created_at) - timedelta(days=1)
        return next((p for p in self._p.his.list_payments(patient_id=order.his_patient_id, since=since)
                     if p.idempotency_key == key and p.status == "posted"), None)

    # -- e-invoice (after the bill is paid; failure never unwinds money) -------------------------------
    def _invoice(self, order: PaymentOrder) -> bool:
        if order.invoice_state != "pending" or self._p.einvoice is None:
            return False
        key = step_key(order.order_no, "invoice")
        self._begin(order.order_no, "einvoice.issue", key, {}, reuse=True)
        self._issue_invoice(order, key)
        return False

    def _issue_invoice(self, order: PaymentOrder, key: str) -> None:
        try:
            invoice = self._p.einvoice.issue(self._invoice_request(order, key))
        except UpstreamError as exc:
            self._end(key, "unknown" if isinstance(exc, UpstreamUnknown) else "refused")
            return
        except Exception as exc:  # the bill is paid; an invoice problem is retried, never fatal
            log.exception("payment.invoice_failed", order_no=order.order_no, error=type(exc).__name__)
            self._end(key, "refused", {"error": type(exc).__name__})
            return
        # Relaxed: lost in a crash, recovery issues again under the same key and gets this invoice.
        self._update(order.order_no, invoice_no=invoice.invoice_no, invoice_state="issued", relaxed=True,
                     finish=(key, "succeeded", {"invoice_no": invoice.invoice_no}))

    # -- refunds ---------------------------------------------------------------------------------------
    def _refund(self, order: PaymentOrder) -> bool:
        order_no = order.order_no
        amount = refundable(order.paid_amount, order.refunded_amount, order.paid_amount)
        if amount == ZERO:
            self._transition(order_no, PaymentState.REFUNDED,
                             message=order.message or "已撤销，未扣款。")
            return True
        refund_no = out_refund_no(order_no, 1)
        if order.pay_method == PayMethod.BANK_CARD.value:
            # The kiosk's POS gives it back (void while the sale is in the terminal's open batch, that
            # is on the hospital's day of the sale; refund later): the agent collects this task and
            # reports the outcome (record_pos_report).
            kind = pos_give_back_kind(self._sold_at(order), self._clock.now(), self._tz)
            self._begin(order_no, f"pos.{kind}", refund_no, {"amount": str(amount), "reference": order.transaction_id,
                                                              "kind": kind}, reuse=True)
            return False
        self._begin(order_no, "refund", refund_no, {"amount": str(amount)}, reuse=True)
        try:
            result = self._p.channel.refund(order.out_trade_no, refund_no, amount, order.paid_amount,
                                            order.anomaly or "kiosk payment unwound")
        except UpstreamRefused as exc:
            self._end(refund_no, "refused", {"message": exc.message})
            existing = self._safe_query_refund(refund_no)
            if existing is None or existing.state != "SUCCESS":
                self._stuck(order_no, f"退款被支付通道拒绝：{exc.message}")
                return False
            result = existing
        except UpstreamUnknown:
            self._end(refund_no, "unknown")
            return False  # retried with the same out_refund_no
        if result.state == "SUCCESS":
            self._end(refund_no, "succeeded")
            self._transition(order_no, PaymentState.REFUNDED, refunded_amount=order.refunded_amount + amount)
            return True
        # PROCESSING: the channel finishes it; the next round asks again
        queried = self._safe_query_refund(refund_no)
        if queried is not None and queried.state == "SUCCESS":
            self._end(refund_no, "succeeded")
            self._transition(order_no, PaymentState.REFUNDED, refunded_amount=order.refunded_amount + amount)
            return True
        return False

    def _safe_query_refund(self, refund_no: str):
        try:
            return self._p.channel.query_refund(refund_no)
        except UpstreamError:
            return None

    # ============================================================================================
    # helpers
    # ============================================================================================
    def _unpaid_visits(self, payer: Payer):
        try:
            return self._p.his.unpaid_orders(payer.his_patient_id)
        except UpstreamError as exc:
            raise PaymentRefused("暂时无法查询待缴费用，请稍后再试。", status=503) from exc

    @staticmethod
    def _visit_json(visit) -> dict[str, Any]:
        items = [{"order_no": i.order_no, "name": i.name, "kind": str(i.kind), "amount": str(i.amount),
                  "quantity": i.quantity, "self_pay_only": i.self_pay_only} for i in visit.items]
        self_pay = sum((i.amount for i in visit.items if i.self_pay_only), ZERO)
        total = sum((i.amount for i in visit.items), ZERO)
        return {"visit_no": visit.visit_no, "date": visit.visit_date.isoformat(),
                "department": visit.department_name, "doctor": visit.doctor_name, "items": items,
                "total": str(total), "self_pay_only_total": str(self_pay),
                "mixed": ZERO < self_pay < total}

    def _order_json(self, order: PaymentOrder) -> dict[str, Any]:
        state = PaymentState(order.state)
        category = PatientCategory(order.category)
        body = {
            "order_no": order.order_no, "state": state.value, "state_label": STATE_LABELS[state],
            "terminal": state.terminal, "mode": order.mode, "pay_method": order.pay_method,
            "visit": order.details.get("visit", {}), "items": order.details.get("items", []),
            "his_total": str(order.his_total),
            "split": None if order.total is None else {
                "total": str(order.total), "fund": str(order.fund), "account": str(order.account),
                "cash": str(order.cash)},
            "paid_amount": str(order.paid_amount), "refunded_amount": str(order.refunded_amount),
            "message": order.message, "anomaly": order.anomaly,
            "cross_region_notice": CROSS_REGION_NOTICE.get(category, "") if order.mode == "insurance" else "",
            "offer_self_pay": bool(order.details.get("offer_self_pay")),
            "receipt_no": order.receipt_no, "invoice_no": order.invoice_no,
        }
        if state is PaymentState.AWAITING_PAYMENT and order.pay_method == PayMethod.BANK_CARD.value:
            body["pos"] = {"trade_no": order.out_trade_no, "amount": str(order.cash)}
        if state is PaymentState.AWAITING_PAYMENT:
            body["code_url"] = order.details.get("code_url")
            body["pay_deadline"] = as_utc(order.pay_deadline).isoformat() if order.pay_deadline else None
        if order.anomaly or state is PaymentState.REFUNDED:
            body["next_step"] = TO_CASHIER if order.anomaly else ""
        return body

    def _own_order(self, device: AuthenticatedDevice, order_no: str) -> PaymentOrder:
        """The order, if it belongs to the patient identified at this kiosk now."""
        # The order is read in the payer's own transaction: one round of the pool, not two.
        payer, found = self._sessions.payer_and(
            device, lambda conn: conn.execute(_ORDER_BY_NO, {"b_order_no": order_no}).first())
        order = None if found is None else PaymentOrder(**found._mapping)
        if order is None or order.patient_id != payer.patient_row_id:
            raise PaymentRefused("没有找到这笔缴费。", "请返回重新办理", status=404)
        return order

    def _insurance_of(self, order: PaymentOrder):
        data = json.loads(self._cipher.decrypt("payment.insurance", order.insurance_enc))
        return insured_from_json(data["person"]), certificate_from_json(data["certificate"])

    def _special_disease(self, visit, payer: Payer, mode: PaymentMode, now: datetime) -> dict[str, str] | None:
        """The visit's 门诊慢特病, when the doctor recorded one and the patient holds a filing valid today.

        The filings are asked of the platform (5301) only for such a visit; if it cannot answer, the
        visit settles as ordinary outpatient — never refused for that.
        """
        code = getattr(visit, "special_disease_code", None)
        if mode is not PaymentMode.INSURANCE or not code or payer.insured is None:
            return None
        filings = payer.insured.special_diseases
        if not filings:
            try:
                filings = self._p.insurance.special_diseases(payer.insured.psn_no, payer.insured.insured_region)
            except UpstreamError as exc:
                log.warning("payment.special_diseases_unavailable", error=type(exc).__name__)
                return None
        today = now.date()
        for filing in filings:
            if filing.code == code and (filing.begins_on is None or filing.begins_on <= today) \
                    and (filing.ends_on is None or today <= filing.ends_on):
                return {"code": code, "name": visit.special_disease_name or filing.name}
        return None  # not filed (or lapsed): settled as an ordinary outpatient visit

    @staticmethod
    def _med_type(order: PaymentOrder) -> str:
        """11 ordinary outpatient; 14 门诊慢特病 (its own policy, with the disease code in 2203)."""
        return "14" if order.details["visit"].get("special_disease") else "11"

    def _settle_request(self, order: PaymentOrder, person, certificate) -> SettlementRequest:
        return SettlementRequest(psn_no=person.psn_no, insured_region=person.insured_region, scheme=person.scheme,
                                 certificate=certificate, mdtrt_id=order.mdtrt_id, batch_no=self._batch_no(order),
                                 total=order.his_total, med_type=self._med_type(order), use_account=True)

    @staticmethod
    def _batch_no(order: PaymentOrder) -> str:
        return order.chrg_bchno or order.order_no[-20:]

    @staticmethod
    def _fee_items(order: PaymentOrder) -> list[FeeItem]:
        visit = order.details["visit"]
        return [FeeItem(serial=f"{n:04d}", hospital_code=i["item_code"], insurance_code=i["insurance_code"] or "",
                        quantity=Decimal(i["quantity"]), unit_price=Decimal(i["unit_price"]),
                        amount=Decimal(i["amount"]), occurred_at=order.created_at,
                        department_code=visit.get("department_code", ""), department_name=visit.get("department", ""),
                        doctor_code=visit.get("doctor_code", ""), doctor_name=visit.get("doctor", ""),
                        prescription_no=i["order_no"])
                for n, i in enumerate(order.details["items"], start=1)]

    def _posting(self, order: PaymentOrder, key: str):
        from medkiosk.adapters.his.port import PaymentPosting

        return PaymentPosting(
            idempotency_key=key, patient_id=order.his_patient_id, visit_no=order.visit_no,
            order_nos=list(order.his_order_nos), total=order.his_total, fund=order.fund or ZERO,
            account=order.account or ZERO, cash=order.cash or ZERO, insurance_settlement_id=order.setl_id,
            channel=("insurance" if order.pay_method == PayMethod.NONE.value and order.mode == "insurance"
                     else (order.channel or "none")), trade_no=order.transaction_id, paid_at=self._clock.now())

    def _invoice_request(self, order: PaymentOrder, key: str):
        from medkiosk.adapters.einvoice.port import InvoiceRequest

        with self._uow().core() as conn:
            name_enc = conn.execute(_PAYER_NAME, {"b_patient_id": order.patient_id}).scalar_one()
        payer_name = self._cipher.decrypt("patient.name", name_enc)
        insurance_type = None
        if order.mode == PaymentMode.INSURANCE.value:
            person, _ = self._insurance_of(order)
            insurance_type = SCHEME_LABELS.get(person.scheme, person.scheme)
        return InvoiceRequest(
            idempotency_key=key, bill_no=order.order_no, payer_name=payer_name, insurance_type=insurance_type,
            total=order.total, fund=order.fund, account=order.account,
            cash=order.cash, items=[{"name": i["name"], "amount": i["amount"], "category": i["kind"]}
                                    for i in order.details.get("items", [])],
            cross_region_note="异地医保结算" if PatientCategory(order.category).cross_region
            and order.mode == "insurance" else None, issued_at=self._clock.now())

    def _stuck(self, order_no: str, why: str) -> None:
        """An order the machine cannot finish by itself: staff must act (it is retried meanwhile)."""
        order = self._load(order_no)
        with self._uow() as uow:
            record_event(uow, self._clock, "payment_stuck", f"缴费订单需要人工处理：{why}", severity="critical",
                         device_id=order.device_id, details={"order_no": order_no, "state": order.state})
            uow.commit()
        log.error("payment.stuck", order_no=order_no, state=order.state)

    def _anomaly(self, order_no: str, exc: AmountMismatch, *, refund: bool, note: str = "") -> None:
        order = self._load(order_no)
        with self._uow() as uow:
            record_event(uow, self._clock, "payment_anomaly",
                         f"缴费金额核对不一致：{CHECK_LABELS.get(exc.check, exc.check)}", severity="critical",
                         device_id=order.device_id,
                         details={"order_no": order_no, "check": exc.check, "expected": str(exc.expected),
                                  "actual": str(exc.actual), "refund": refund, "note": note})
            uow.commit()
        log.error("payment.anomaly", order_no=order_no, check=exc.check, expected=str(exc.expected),
                  actual=str(exc.actual))

    def _new_order_no(self, now: datetime) -> str:
        return f"PO{now:%Y%m%d%H%M%S}{secrets.token_hex(4).upper()}"

    def _msgid(self, order_no: str, infno: str) -> str:
        """A fresh msgid, journalled before it is sent (it is what a reversal names)."""
        return self._with_msgids(order_no, [infno])[infno]

    # -- store primitives ------------------------------------------------------------------------------
    def _load(self, order_no: str) -> PaymentOrder:
        # While we hold the lease nobody else writes the order: our last write is its state.
        held = _HELD.get()
        if held is not None and held[0] == order_no and held[2]:
            return held[2][0]
        return self._read(order_no)

    def _read(self, order_no: str) -> PaymentOrder | None:
        """The order as the store holds it (a plain SELECT; the row as a detached PaymentOrder)."""
        with self._uow().core() as conn:
            found = conn.execute(_ORDER_BY_NO, {"b_order_no": order_no}).first()
        return None if found is None else PaymentOrder(**found._mapping)

    def _state(self, order_no: str) -> PaymentState:
        return PaymentState(self._load(order_no).state)

    def _transition(self, order_no: str, target: PaymentState | list[PaymentState], **changes) -> PaymentOrder:
        """Move the order to ``target`` (refused unless the machine allows it) and write ``changes``.

        A list of targets passes through each in turn (each move checked) and stores the last.
        """
        row = self._update(order_no, target=target, **changes)
        log.info("payment.state", order_no=order_no, state=row.state)
        return row

    def _with_msgids(self, order_no: str, infnos: list[str], **changes) -> dict[str, str]:
        """Fresh msgids for ``infnos``, journalled in the same write as ``changes`` (before any is sent).

        The journal's unique key is what makes a msgid ours alone: another service process may
        have drawn the same one in the same second. Then this process's sequence jumps to a fresh
        random point — stepping on from the taken number would run through the very numbers the
        other process is drawing now, conflict after conflict.
        """
        conflict = False
        for _ in range(MSGID_DRAWS):
            msgids = {infno: self._p.insurance.new_msgid(after_conflict=conflict and n == 0)
                      for n, infno in enumerate(infnos)}
            try:
                self._update(order_no, begin=[(infno, msgid, {}) for infno, msgid in msgids.items()], **changes)
            except IntegrityError as exc:
                taken = self._journalled(msgids.values())
                if not taken:
                    raise  # some other constraint: a bug to see, not a msgid to draw again
                log.warning("payment.msgid_conflict", order_no=order_no, taken=taken, error=str(exc.orig)[:300])
                conflict = True
                continue
            return msgids
        raise RuntimeError(f"could not allocate unique msgids in {MSGID_DRAWS} draws")

    def _journalled(self, keys) -> list[str]:
        with self._uow() as uow:
            return sorted(uow.session.scalars(select(PaymentStep.key).where(PaymentStep.key.in_(list(keys)))))

    def _update(self, order_no: str, *, target: PaymentState | list[PaymentState] | None = None,
                details_patch: dict | None = None,
                begin: list[tuple[str, str, dict]] = (), finish: tuple[str, str, dict | None] | None = None,
                relaxed: bool = False, giving_back: bool = False, **fields) -> PaymentOrder:
        """One transaction: the order's row, and the journal steps that ``begin`` or ``finish`` with it.

        ``relaxed`` commits without waiting for the disk flush: only for a write that recovery
        redoes idempotently if a crash loses it — never one that precedes an external call.
        """
        held = _HELD.get()
        if held is None or held[0] != order_no or not held[2]:
            return self._update_unheld(order_no, target=target, details_patch=details_patch, begin=begin,
                                       finish=finish, relaxed=relaxed, giving_back=giving_back, **fields)
        # Under our lease nobody else drives the order, so the row our last write left (held[2]) is
        # its state: the transitions are checked against it and only the changed columns are
        # written, by plain statements. The write is fenced by the lease's token in its WHERE
        # clause: no row matched means the lease was taken over, and nothing is written.
        now = self._clock.now()
        current = held[2][0]
        values: dict[str, Any] = {}
        state = current.state
        for step_target in ([] if target is None else [target] if isinstance(target, PaymentState) else target):
            state = check_transition(PaymentState(state), step_target, giving_back=giving_back).value
            values["state"] = state
            if step_target in TERMINAL_STATES:
                values["active_key"] = None
        values.update(fields)
        values["lease_until"] = now + LEASE  # each step renews it
        values["updated_at"] = now
        with self._uow().core(flush_wait=not relaxed) as conn:
            if details_patch:
                # details is the one column written without the lease too (a reprint's count): merge
                # the patch into it as it stands, under the row lock.
                details = conn.execute(_ORDER_DETAILS_LOCKED, {"b_order_no": order_no}).scalar()
                values["details"] = {**(details or {}), **details_patch}
            result = conn.execute(_ORDER_WRITE, {**values, "b_order_no": order_no, "b_token": held[1]})
            if result.rowcount != 1:
                raise LeaseLost(order_no)
            if finish is not None:
                self._finish_step(conn, *finish, now=now)
            if begin:
                conn.execute(_STEP_INSERT, [
                    {"order_no": order_no, "step": name, "key": key, "status": "started", "detail": detail,
                     "started_at": now, "finished_at": None} for name, key, detail in begin])
        row = _order_with(current, values)
        held[2][:] = [row]
        return row

    @staticmethod
    def _finish_step(conn, key: str, status: str, detail: dict | None, *, now: datetime) -> None:
        """End a journal step (in the caller's transaction); ``detail`` is merged into what it holds."""
        values: dict[str, Any] = {"status": status, "finished_at": now, "b_key": key}
        if detail:
            current = conn.execute(_STEP_DETAIL, {"b_key": key}).one()[0]
            values["detail"] = {**(current or {}), **detail}
        if conn.execute(_STEP_WRITE, values).rowcount != 1:
            raise NoResultFound(f"no journal step {key!r}")

    def _update_unheld(self, order_no: str, *, target: PaymentState | list[PaymentState] | None = None,
                       details_patch: dict | None = None,
                       begin: list[tuple[str, str, dict]] = (), finish: tuple[str, str, dict | None] | None = None,
                       relaxed: bool = False, giving_back: bool = False, **fields) -> PaymentOrder:
        """``_update`` without a lease's row to start from: the row is read and locked first."""
        now = self._clock.now()
        with self._uow() as uow:
            if relaxed:
                uow.without_flush_wait()
            row = uow.session.get(PaymentOrder, order_no, with_for_update=True)
            held = _HELD.get()
            if held is not None and held[0] == order_no:
                if row.lease_owner != held[1]:
                    raise LeaseLost(order_no)
                row.lease_until = now + LEASE  # each step renews it
            for step_target in ([] if target is None else [target] if isinstance(target, PaymentState) else target):
                row.state = check_transition(PaymentState(row.state), step_target, giving_back=giving_back).value
                if step_target in TERMINAL_STATES:
                    row.active_key = None
            for name, value in fields.items():
                setattr(row, name, value)
            if details_patch:
                row.details = {**row.details, **details_patch}
            row.updated_at = now
            if finish is not None:
                key, status, detail = finish
                step = uow.session.scalars(select(PaymentStep).where(PaymentStep.key == key)).one()
                step.status, step.finished_at = status, now
                if detail:
                    step.detail = {**step.detail, **detail}
            for name, key, detail in begin:
                uow.session.add(PaymentStep(order_no=order_no, step=name, key=key, status="started",
                                            detail=detail, started_at=now))
            uow.commit()
        if held is not None and held[0] == order_no:
            held[2][:] = [row]
        return row

    def _begin(self, order_no: str, step: str, key: str, detail: dict, *, reuse: bool = False) -> str:
        now = self._clock.now()
        with self._uow().core() as conn:
            if reuse and conn.execute(_STEP_WRITE, {"status": "started", "finished_at": None,
                                                    "b_key": key}).rowcount == 1:
                return key
            conn.execute(_STEP_INSERT, {"order_no": order_no, "step": step, "key": key, "status": "started",
                                        "detail": detail, "started_at": now, "finished_at": None})
        return key

    def _end(self, key: str, status: str, detail: dict | None = None) -> None:
        with self._uow().core() as conn:
            self._finish_step(conn, key, status, detail, now=self._clock.now())

    def _sold_at(self, order: PaymentOrder) -> datetime:
        """When the POS approved the card sale: its own time as reported, else when the report came."""
        with self._uow() as uow:
            sale = uow.session.scalars(select(PaymentStep).where(PaymentStep.key == order.out_trade_no)).first()
        if sale is not None and sale.detail.get("approved_at"):
            return datetime.fromisoformat(sale.detail["approved_at"])
        return as_utc(sale.finished_at if sale is not None and sale.finished_at else order.updated_at)

    def _past_deadline(self, order: PaymentOrder) -> bool:
        return order.pay_deadline is not None and self._clock.now() >= as_utc(order.pay_deadline)

    def _token(self) -> str:
        return f"{self._owner}-{secrets.token_hex(4)}"

    @contextmanager
    def _driving(self, order_no: str, *, wait: float = 0.0, token: str | None = None,
                 row: PaymentOrder | None = None) -> Iterator[bool]:
        """Hold the order's lease for the block (yields False when someone else drives it).

        The lease belongs to this block, not to the engine: two requests of one process, or a
        request and the recovery worker, never drive one order at once.
        """
        if token is None:
            token, row = self._lease(order_no, wait=wait)
        if token is None:
            yield False
            return
        reset = _HELD.set((order_no, token, [row] if row is not None else []))
        try:
            yield True
        except LeaseLost:
            log.warning("payment.lease_lost", order_no=order_no)
        finally:
            _HELD.reset(reset)
            self._release(order_no, token)

    def _lease(self, order_no: str, *, wait: float = 0.0) -> tuple[str | None, PaymentOrder | None]:
        """Take the order's lease; with it, the row as it stands (so driving starts without a read)."""
        token = self._token()
        give_up = time.monotonic() + wait
        while True:
            now = self._clock.now()
            take = {"lease_owner": token, "lease_until": now + LEASE, "b_order_no": order_no, "b_now": now}
            with self._uow().core(flush_wait=False) as conn:
                if conn.dialect.update_returning:
                    found = conn.execute(_LEASE_TAKE_RETURNING, take).first()
                elif conn.execute(_LEASE_TAKE, take).rowcount == 1:
                    found = conn.execute(_ORDER_BY_NO, {"b_order_no": order_no}).first()
                else:
                    found = None
            if found is not None:
                return token, PaymentOrder(**found._mapping)
            if time.monotonic() >= give_up:
                return None, None
            time.sleep(0.05)

    def _release(self, order_no: str, token: str) -> None:
        with self._uow().core(flush_wait=False) as conn:
            conn.execute(_ORDER_WRITE, {"lease_owner": None, "lease_until": None, "b_order_no": order_no,
                                        "b_token": token})


_ORDERS = PaymentOrder.__table__
_STEPS = PaymentStep.__table__
_ORDER_COLUMNS = tuple(c.key for c in _ORDERS.c)

# The hot path's statements, built once: a prebuilt statement keeps its cache key, so executing it
# (values as parameters; an UPDATE sets the columns named in them) skips building and keying it.
_ORDER_INSERT = insert(_ORDERS)
_ORDER_BY_NO = select(_ORDERS).where(_ORDERS.c.order_no == bindparam("b_order_no"))
_ORDER_DETAILS_LOCKED = select(_ORDERS.c.details).where(
    _ORDERS.c.order_no == bindparam("b_order_no")).with_for_update()
_ORDER_WRITE = update(_ORDERS).where(_ORDERS.c.order_no == bindparam("b_order_no"),
                                     _ORDERS.c.lease_owner == bindparam("b_token"))
"""A write by the lease's holder: no row matches once another worker has taken the lease over."""
_LEASE_TAKE = update(_ORDERS).where(
    _ORDERS.c.order_no == bindparam("b_order_no"),
    or_(_ORDERS.c.lease_until.is_(None), _ORDERS.c.lease_until < bindparam("b_now")))
_LEASE_TAKE_RETURNING = _LEASE_TAKE.returning(*_ORDERS.c)
_STEP_INSERT = insert(_STEPS)
_STEP_DETAIL = select(_STEPS.c.detail).where(_STEPS.c.key == bindparam("b_key"))
_STEP_WRITE = update(_STEPS).where(_STEPS.c.key == bindparam("b_key"))
_PAYER_NAME = select(Patient.__table__.c.name_enc).where(Patient.__table__.c.id == bindparam("b_patient_id"))


def _new_order(**values) -> dict[str, Any]:
    """Every column of a new order: ``values`` and the columns' own defaults for the rest."""
    row = {}
    for column in _ORDERS.c:
        if column.key in values:
            row[column.key] = values[column.key]
        elif column.default is None:
            row[column.key] = None
        elif column.default.is_callable:
            row[column.key] = column.default.arg(None)
        else:
            row[column.key] = column.default.arg
    return row


def _order_with(row: PaymentOrder, changes: dict[str, Any]) -> PaymentOrder:
    """A new (detached) order: ``row``'s columns with ``changes`` — what the store now holds after a write."""
    data = {name: getattr(row, name) for name in _ORDER_COLUMNS}
    data.update(changes)
    return PaymentOrder(**data)
