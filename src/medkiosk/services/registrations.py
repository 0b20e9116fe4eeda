"""Registration (挂号) at a kiosk: a doctor's number held in the HIS, paid by the payment engine, a slip.

The HIS owns the numbers — it sells them at the windows and in the app too — so it decides who
gets the last one: a hold (锁号) either takes a number or is refused ``slot_full``. A hold comes
with an unpaid fee order on a new visit, which the payment engine pays like any bill (2201 and
settlement for the insured, self-pay otherwise); the engine's posting of that payment is what
confirms the registration in the HIS. A hold whose payment is abandoned, closed or expired is
released here (and by the HIS itself once its ``hold_until`` passes), so an unpaid number goes
back on sale; a payment that lands after its hold was gone is refused by the HIS at posting and
refunded by the engine. Appointments made in the app or by phone (预约) are picked up the same
way, inside the hospital's pick-up window.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import threading
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from medkiosk.adapters.errors import UpstreamError, UpstreamRefused
from medkiosk.adapters.his.port import (
    HisPort,
    Registration,
    RegistrationStatus,
    ScheduleSlot,
)
from medkiosk.agent.documents import Receipt
from medkiosk.domain.payment import PaymentMode, PaymentState
from medkiosk.domain.registration import (
    RegistrationRules,
    RegistrationState,
    after_payment,
    moment_text,
)
from medkiosk.logging import get_logger
from medkiosk.services.clock import Clock
from medkiosk.services.devices import AuthenticatedDevice
from medkiosk.services.documents import COUNTED, ISSUED
from medkiosk.services.payments import PaymentEngine, PaymentRefused
from medkiosk.services.sessions import SessionService
from medkiosk.store.models_exams import DocumentPrint
from medkiosk.store.models_registrations import KioskRegistration

log = get_logger(__name__)

TO_WINDOW = "请到人工窗口办理"
HALF_DAY_LABELS = {"am": "上午", "pm": "下午"}
# A kiosk record in one of these is over: the next attempt at the same number is a new one.
ENDED = frozenset({RegistrationState.RELEASED.value, RegistrationState.REFUSED.value,
                   RegistrationState.CANCELLING.value, RegistrationState.CANCELLED.value})
LEVEL_LABELS = {"ordinary": "普通号", "expert": "专家号"}
NOTE_CROSS_REGION = "异地医保结算：按就医地目录、参保地政策"


class RegistrationRefused(Exception):
    """A registration the kiosk cannot make; ``message`` and ``next_step`` are Chinese and fit to show."""

    def __init__(self, message: str, next_step: str = TO_WINDOW, *, status: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.next_step = next_step
        self.status = status


class RegistrationService:
    def __init__(self, uow_factory, clock: Clock, sessions: SessionService, his: HisPort, payments: PaymentEngine,
                 rules: RegistrationRules, *, hospital_name: str, channel=None) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._sessions = sessions
        self._his = his
        self._payments = payments
        self.rules = rules
        self._hospital_name = hospital_name
        self._channel = channel  # the app's payments are the hospital merchant's: refunded there (换号)

    # -- what can be registered -------------------------------------------------------------------
    def dates(self) -> dict[str, Any]:
        """The days a patient can register for at a kiosk today (today first)."""
        days = self.rules.bookable_dates(self._clock.now())
        today = days[0]
        return {"dates": [{"date": d.isoformat(), "label": _day_label(d, today)} for d in days]}

    def schedules(self, device: AuthenticatedDevice, day: dt.date, department_codes: list[str],
                  doctor_codes: list[str] | None = None) -> dict[str, Any]:
        """A kiosk department's doctors on a day, each with the half-days that still have numbers.

        A kiosk department (as the hospital configured it) is one or more HIS departments, merged,
        or part of one, split by doctor: ``department_codes`` and ``doctor_codes`` say which.
        """
        self._sessions.payer(device)  # a live, identified session only
        now = self._clock.now()
        self._check_day(now, day)
        wanted = set(doctor_codes) if doctor_codes else None
        slots = [s for code in dict.fromkeys(department_codes) for s in self._slots(day, code)
                 if wanted is None or s.doctor_code in wanted]
        doctors: dict[str, dict[str, Any]] = {}
        for slot in sorted(slots, key=lambda s: (s.level.value != "expert", s.doctor_code, s.half_day.value)):
            doctor = doctors.setdefault(slot.doctor_code, {
                "doctor_code": slot.doctor_code, "doctor_name": slot.doctor_name, "title": slot.doctor_title,
                "level": slot.level.value, "level_label": LEVEL_LABELS.get(slot.level.value, ""), "slots": []})
            decision = self.rules.can_register(now, slot.date, slot.half_day.value)
            doctor["slots"].append({
                "schedule_id": slot.schedule_id, "half_day": slot.half_day.value,
                "half_day_label": HALF_DAY_LABELS[slot.half_day.value], "fee": str(slot.fee),
                "remaining": slot.remaining,
                "open": decision.allowed and slot.remaining > 0,
                "note": "已挂满" if slot.remaining <= 0 else ("" if decision.allowed else decision.message)})
        return {"date": day.isoformat(), "doctors": list(doctors.values())}

    # -- registering ------------------------------------------------------------------------------
    def register(self, device: AuthenticatedDevice, schedule_id: str, day: dt.date,
                 mode: PaymentMode | None = None) -> dict[str, Any]:
        """Hold the number in the HIS and start paying its fee; the kiosk then pays as for any bill."""
        payer = self._sessions.payer(device)
        slot = next((s for s in self._slots(day, None) if s.schedule_id == schedule_id), None)
        if slot is None:
            raise RegistrationRefused("没有找到这个号源，可能已停诊或已调整。", "请返回重新选择医生", status=404)
        now = self._clock.now()
        decision = self.rules.can_register(now, slot.date, slot.half_day.value)
        if not decision.allowed:
            raise RegistrationRefused(decision.message, decision.next_step, status=422)
        if slot.remaining <= 0:
            raise RegistrationRefused("这个号已经挂满了。", "请选择其他医生或其他时间")
        kind = "same_day" if slot.date == self.rules.today(now) else "advance"
        # One hold per attempt: a repeated tap (or a retried request) holds nothing twice; after backing
        # out, the same number can be taken again in the same session as a new attempt.
        key, row = self._attempt("RG", payer.session_id, schedule_id)
        if row is not None and row.order_no is not None:
            return self._replay(device, self._follow(device, row))
        if row is None:
            row = self._insert(key, kind, payer, slot)
        try:
            held = self._his.hold_registration(idempotency_key=key, patient_id=payer.his_patient_id,
                                               schedule_id=schedule_id, source="kiosk")
        except UpstreamRefused as exc:
            self._set(row.id, state=RegistrationState.REFUSED.value)
            if exc.code == "slot_full":
                raise RegistrationRefused("这个号刚刚被挂完了。", "请选择其他医生或其他时间") from exc
            raise RegistrationRefused(exc.message, TO_WINDOW) from exc
        except UpstreamError as exc:
            # The hold may or may not exist in the HIS; unpaid, it lapses there by itself.
            log.warning("registration.hold_unknown", schedule_id=schedule_id, error=str(exc))
            raise RegistrationRefused("暂时无法挂号，请稍后再试。", TO_WINDOW, status=503) from exc
        return self._pay_for(device, row.id, held, mode, payer)

    def _pay_for(self, device: AuthenticatedDevice, row_id: int, held: Registration, mode: PaymentMode | None,
                 payer) -> dict[str, Any]:
        row = self._set(row_id, state=RegistrationState.HELD.value, registration_no=held.registration_no,
                        visit_no=held.visit_no, queue_no=held.queue_no, hold_until=held.hold_until,
                        details=_details(held))
        if mode is None:
            mode = PaymentMode.INSURANCE if payer.insured is not None and payer.certificate is not None \
                else PaymentMode.SELF_PAY
        try:
            order = self._payments.start(device, held.visit_no, mode=mode)
        except PaymentRefused as exc:
            self._release(row, reason="payment refused")
            raise RegistrationRefused(exc.message, exc.next_step, status=exc.status) from exc
        row = self._set(row.id, order_no=order["order_no"])
        log.info("registration.held", registration_no=row.registration_no, order_no=row.order_no,
                 kind=row.kind, device_id=device.id)
        return {"registration": self._row_json(row), "payment": order}

    def status(self, device: AuthenticatedDevice, registration_no: str) -> dict[str, Any]:
        """Where the registration stands; once its fee is paid it is registered, and the slip can print."""
        row = self._own(device, registration_no)
        return {"registration": self._row_json(self._follow(device, row))}

    def release(self, device: AuthenticatedDevice, registration_no: str) -> dict[str, Any]:
        """The patient backs out before paying: the payment is cancelled and the number goes back."""
        row = self._own(device, registration_no)
        if row.order_no is not None:
            self._payments.cancel(device, row.order_no)
        return {"registration": self._row_json(self._follow(device, row))}

    def _follow(self, device: AuthenticatedDevice | None, row: KioskRegistration) -> KioskRegistration:
        """Bring the row up to its payment: completed → registered; ended unpaid → released."""
        if row.state == RegistrationState.REFUNDING_APP.value:
            return self._refund_app(row)
        if row.state != RegistrationState.HELD.value or row.order_no is None:
            return row
        order = self._payments.view(device, row.order_no)
        payment = PaymentState(order["state"])
        outcome = after_payment(row.kind, payment)
        if outcome is RegistrationState.RELEASED:
            return self._release(row, reason=f"payment {payment.value}")
        if outcome is RegistrationState.HELD:
            return row
        row = self._set(row.id, state=outcome.value,
                        details={**row.details, "split": order.get("split") or {}, "receipt_no": order.get("receipt_no"),
                                 "cross_region_notice": order.get("cross_region_notice", "")})
        return self._refund_app(row) if outcome is RegistrationState.REFUNDING_APP else row

    def _release(self, row: KioskRegistration, *, reason: str) -> KioskRegistration:
        if row.registration_no is not None:
            release = self._his.release_swap if row.kind == "swap" else self._his.release_registration
            try:
                release(row.registration_no, idempotency_key=f"{row.idempotency_key}-R"[:64])
            except UpstreamRefused as exc:
                log.info("registration.release_refused", registration_no=row.registration_no, code=exc.code)
            except UpstreamError as exc:
                # The HIS lets an unpaid hold lapse at hold_until; the next sweep asks again.
                log.warning("registration.release_unknown", registration_no=row.registration_no, error=str(exc))
                return row
        log.info("registration.released", registration_no=row.registration_no, reason=reason)
        return self._set(row.id, state=RegistrationState.RELEASED.value)

    def release_abandoned(self) -> int:
        """The sweep: release the holds whose payment ended without money (closed, failed, expired),
        and ask again for the fee of a cancelled registration whose refund could not start. Answers
        how many numbers it released."""
        with self._uow() as uow:
            rows = list(uow.session.scalars(select(KioskRegistration).where(
                KioskRegistration.state.in_([RegistrationState.HELD.value, RegistrationState.CANCELLING.value,
                                             RegistrationState.REFUNDING_APP.value]),
                KioskRegistration.order_no.is_not(None))))
            uow.session.expunge_all()
        released = 0
        for row in rows:
            if row.state == RegistrationState.CANCELLING.value:
                self._give_back(row)
            elif self._follow(None, row).state == RegistrationState.RELEASED.value:
                released += 1
        return released

    # -- cancelling (退号) -------------------------------------------------------------------------
    def cancel(self, device: AuthenticatedDevice, registration_no: str) -> dict[str, Any]:
        """Cancel a number taken and paid at a kiosk, within the hospital's rules, and give the fee back.

        The HIS cancels first (its number goes back on sale); then the payment engine gives the fee
        back (HIS posting cancelled, 2208 for the insured, the cash refunded). If the second step
        cannot finish now, the registration stays ``cancelling`` and the sweep asks again: the
        patient's money is never left behind.
        """
        row = self._follow(device, self._own(device, registration_no))
        if row.state in (RegistrationState.CANCELLING.value, RegistrationState.CANCELLED.value):
            return {"registration": self._row_json(self._give_back(row)), "payment": self._payment_of(row)}
        if row.state != RegistrationState.REGISTERED.value or row.order_no is None:
            raise RegistrationRefused("这个号还没有挂号成功，不能退号。", "请返回查看", status=409)
        try:
            current = self._his.registration(registration_no)
        except UpstreamError as exc:
            raise RegistrationRefused("暂时无法办理退号，请稍后再试。", TO_WINDOW, status=503) from exc
        checked_in = current is not None and current.checked_in_at is not None
        decision = self.rules.can_cancel(self._clock.now(), row.day, row.half_day, checked_in=checked_in, seen=False)
        if not decision.allowed:
            raise RegistrationRefused(decision.message, decision.next_step)
        try:
            self._his.cancel_registration(registration_no, idempotency_key=f"{row.idempotency_key}-C"[:64],
                                          reason="患者自助退号")
        except UpstreamRefused as exc:
            raise RegistrationRefused(exc.message, TO_WINDOW) from exc
        except UpstreamError as exc:
            raise RegistrationRefused("暂时无法办理退号，请稍后再试。", TO_WINDOW, status=503) from exc
        row = self._set(row.id, state=RegistrationState.CANCELLING.value)
        log.info("registration.cancelled", registration_no=registration_no, device_id=device.id)
        return {"registration": self._row_json(self._give_back(row)), "payment": self._payment_of(row)}

    def mine(self, device: AuthenticatedDevice) -> dict[str, Any]:
        """The numbers the patient took at a kiosk for today and later, each with whether it can be
        cancelled (退号) now and, if not, why (the HIS still refuses one already checked in)."""
        payer = self._sessions.payer(device)
        now = self._clock.now()
        today = self.rules.today(now)
        with self._uow() as uow:
            rows = list(uow.session.scalars(select(KioskRegistration).where(
                KioskRegistration.patient_id == payer.patient_row_id, KioskRegistration.day >= today,
                KioskRegistration.state.in_([RegistrationState.REGISTERED.value,
                                             RegistrationState.REFUNDING_APP.value])).order_by(
                KioskRegistration.day, KioskRegistration.half_day, KioskRegistration.id)))
            uow.session.expunge_all()
        items = []
        for row in rows:
            decision = self.rules.can_cancel(now, row.day, row.half_day, checked_in=False, seen=False)
            items.append({**self._row_json(row), "can_cancel": decision.allowed,
                          "note": "" if decision.allowed else decision.message,
                          "next_step": "" if decision.allowed else decision.next_step})
        return {"registrations": items}

    def _give_back(self, row: KioskRegistration) -> KioskRegistration:
        """Have the payment engine give the fee back; ``cancelled`` once it has taken the job on."""
        try:
            self._payments.give_back(None, row.order_no, reason="退号")
        except PaymentRefused as exc:
            log.warning("registration.refund_pending", registration_no=row.registration_no, reason=exc.message)
            return row
        return self._set(row.id, state=RegistrationState.CANCELLED.value)

    def _payment_of(self, row: KioskRegistration) -> dict[str, Any] | None:
        return self._payments.view(None, row.order_no) if row.order_no else None

    # -- the swap to insurance (换号) ---------------------------------------------------------------
    def swappable(self, device: AuthenticatedDevice) -> dict[str, Any]:
        """Registrations the patient paid in the hospital app as self-pay, which can become insurance ones."""
        payer = self._sessions.payer(device)
        insured = payer.insured is not None and payer.certificate is not None
        if not insured:
            return {"registrations": [], "insurance_available": False,
                    "note": "换成医保挂号需要先用医保卡或医保电子凭证识别身份。"}
        try:
            found = self._his.swappable(payer.his_patient_id)
        except UpstreamError as exc:
            raise RegistrationRefused("暂时无法查询挂号记录，请稍后再试。", TO_WINDOW, status=503) from exc
        items = [{**self._registration_json(r), "app_paid_amount": str(r.app_paid_amount or r.fee)} for r in found]
        return {"registrations": items, "insurance_available": True, "note": ""}

    def swap(self, device: AuthenticatedDevice, registration_no: str) -> dict[str, Any]:
        """Pay the registration again with insurance, keeping doctor, half-day and number; then the app
        payment is refunded. Until the new payment is posted, the registration stays as it was."""
        payer = self._sessions.payer(device)
        if payer.insured is None or payer.certificate is None:
            raise RegistrationRefused("换成医保挂号需要医保身份。", "请插医保卡或出示医保电子凭证后再试", status=422)
        key, row = self._attempt("SW", payer.session_id, registration_no)
        if row is not None and row.order_no is not None:
            return self._replay(device, self._follow(device, row))
        try:
            found = next((r for r in self._his.swappable(payer.his_patient_id)
                          if r.registration_no == registration_no), None)
        except UpstreamError as exc:
            raise RegistrationRefused("暂时无法查询挂号记录，请稍后再试。", TO_WINDOW, status=503) from exc
        if found is None:
            raise RegistrationRefused("这个挂号不能换成医保挂号（可能不是在医院App自费支付的，或已经换过）。",
                                      TO_WINDOW, status=404)
        if row is None:
            row = self._insert(key, "swap", payer, found)
        # Unposted, a swap lapses in the HIS by itself: the registration stays as it was.
        started = self._ask_his(row, lambda: self._his.start_swap(registration_no, idempotency_key=key),
                                what="swap", unknown="暂时无法办理换号，请稍后再试。")
        row = self._set(row.id, state=RegistrationState.HELD.value, registration_no=registration_no,
                        visit_no=started.swap_visit_no, queue_no=started.queue_no, hold_until=started.swap_hold_until,
                        details={**_details(started), "app_trade_no": started.app_trade_no,
                                 "app_paid_amount": str(started.app_paid_amount or started.fee)})
        try:
            order = self._payments.start(device, started.swap_visit_no, mode=PaymentMode.INSURANCE)
        except PaymentRefused as exc:
            self._release(row, reason="payment refused")
            raise RegistrationRefused(exc.message, exc.next_step, status=exc.status) from exc
        row = self._set(row.id, order_no=order["order_no"])
        log.info("registration.swap_started", registration_no=registration_no, order_no=row.order_no,
                 device_id=device.id)
        if PaymentState(order["state"]) is PaymentState.COMPLETED:  # insurance covered it all
            row = self._follow(device, row)
        return {"registration": self._row_json(row), "payment": order}

    def _refund_app(self, row: KioskRegistration) -> KioskRegistration:
        """Refund the app's payment of a swapped registration; ``registered`` once the channel confirms.

        The refund number is fixed by the registration, so asking again (this request, the sweep)
        finds the refund already made rather than making a second one.
        """
        details = row.details or {}
        trade, amount = details.get("app_trade_no"), Decimal(details.get("app_paid_amount") or row.fee)
        refund_no = f"{row.registration_no}SW"[:32]
        try:
            result = self._channel.query_refund(refund_no)
            if result is None:
                result = self._channel.refund(trade, refund_no, amount, amount, "换成医保挂号，退还App支付")
            if result.state != "SUCCESS":
                result = self._channel.query_refund(refund_no) or result  # a refund reported as processing
        except UpstreamError as exc:
            log.warning("registration.app_refund_failed", registration_no=row.registration_no, code=exc.code,
                        error=str(exc))
            return row  # stays refunding_app: the sweep asks again
        if result.state != "SUCCESS":
            log.info("registration.app_refund_processing", registration_no=row.registration_no,
                     state=str(result.state))
            return row
        try:
            self._his.app_refunded(row.registration_no, idempotency_key=f"{row.idempotency_key}-A"[:64],
                                   refund_no=refund_no)
        except UpstreamError as exc:
            log.warning("registration.app_refund_not_told", registration_no=row.registration_no, error=str(exc))
            return row
        log.info("registration.swapped", registration_no=row.registration_no, refund_no=refund_no)
        return self._set(row.id, state=RegistrationState.REGISTERED.value,
                         details={**details, "app_refund_no": refund_no})

    # -- appointments to pick up (预约取号) --------------------------------------------------------
    def appointments(self, device: AuthenticatedDevice) -> dict[str, Any]:
        """The patient's appointments made in the app or by phone, each with when it can be picked up."""
        payer = self._sessions.payer(device)
        try:
            booked = self._his.appointments(payer.his_patient_id)
        except UpstreamError as exc:
            raise RegistrationRefused("暂时无法查询预约，请稍后再试。", TO_WINDOW, status=503) from exc
        now = self._clock.now()
        items = []
        for appointment in booked:
            decision = self.rules.can_pick_up(now, appointment.date, appointment.half_day.value)
            opens, closes = self.rules.pick_up_window(appointment.date, appointment.half_day.value)
            items.append({
                **self._registration_json(appointment),
                "paid_in_app": appointment.paid_in_app,
                "window_from": moment_text(opens), "window_until": moment_text(closes),
                "can_pick_up": decision.allowed,
                "note": "" if decision.allowed else decision.message,
                "next_step": "" if decision.allowed else decision.next_step,
            })
        return {"appointments": items}

    def pick_up(self, device: AuthenticatedDevice, registration_no: str,
                mode: PaymentMode | None = None) -> dict[str, Any]:
        """Pick up an appointment inside its window: paid in the app, it is registered at once;
        otherwise its fee is paid here like a held number's."""
        payer = self._sessions.payer(device)
        try:
            booked = self._his.appointments(payer.his_patient_id)
        except UpstreamError as exc:
            raise RegistrationRefused("暂时无法查询预约，请稍后再试。", TO_WINDOW, status=503) from exc
        appointment = next((a for a in booked if a.registration_no == registration_no), None)
        key, row = self._attempt("PU", payer.session_id, registration_no)
        if appointment is None:
            if row is not None and row.state in (RegistrationState.HELD.value, RegistrationState.REGISTERED.value):
                return self._replay(device, self._follow(device, row))  # picked up a moment ago, in this session
            raise RegistrationRefused("没有找到这个预约，可能已取号或已取消。", "请返回查看，或到人工窗口咨询", status=404)
        decision = self.rules.can_pick_up(self._clock.now(), appointment.date, appointment.half_day.value)
        if not decision.allowed:
            raise RegistrationRefused(decision.message, decision.next_step, status=422)
        if row is not None and row.state in (RegistrationState.HELD.value, RegistrationState.REGISTERED.value):
            return self._replay(device, row)
        if row is None:
            row = self._insert(key, "pick_up", payer, appointment)
        picked = self._ask_his(row, lambda: self._his.pick_up_appointment(registration_no, idempotency_key=key),
                               what="pick_up", unknown="暂时无法取号，请稍后再试。")
        if picked.status is RegistrationStatus.REGISTERED:  # paid in the app: nothing to pay here
            row = self._set(row.id, state=RegistrationState.REGISTERED.value, registration_no=picked.registration_no,
                            visit_no=picked.visit_no, queue_no=picked.queue_no,
                            details={**_details(picked), "paid_in_app": str(picked.app_paid_amount or picked.fee)})
            log.info("registration.picked_up", registration_no=picked.registration_no, paid_in_app=True,
                     device_id=device.id)
            return {"registration": self._row_json(row), "payment": None}
        return self._pay_for(device, row.id, picked, mode, payer)

    def _ask_his(self, row: KioskRegistration, call, *, what: str, unknown: str) -> Registration:
        """Send an attempt's request to the HIS under its key: a refusal ends the attempt (``refused``)
        and is shown; no answer leaves it as it is, to be asked again under the same key."""
        try:
            return call()
        except UpstreamRefused as exc:
            self._set(row.id, state=RegistrationState.REFUSED.value)
            raise RegistrationRefused(exc.message, TO_WINDOW) from exc
        except UpstreamError as exc:
            log.warning(f"registration.{what}_unknown", registration_no=row.registration_no, error=str(exc))
            raise RegistrationRefused(unknown, TO_WINDOW, status=503) from exc

    def _replay(self, device: AuthenticatedDevice, row: KioskRegistration) -> dict[str, Any]:
        payment = self._payments.view(device, row.order_no) if row.order_no else None
        return {"registration": self._row_json(row), "payment": payment}

    # -- today's registrations, for a reprint (补打) ------------------------------------------------
    def today(self, device: AuthenticatedDevice) -> dict[str, Any]:
        """Today's registrations of the patient (made here, at a window or in the app), to reprint a slip."""
        payer = self._sessions.payer(device)
        now = self._clock.now()
        items = []
        for registration in self._registrations_today(payer.his_patient_id):
            if registration.status is not RegistrationStatus.REGISTERED:
                continue
            used = self._reprints(registration.registration_no)
            decision = self.rules.can_reprint(used, registration.date, self.rules.today(now))
            items.append({**self._registration_json(registration), "can_reprint": decision.allowed,
                          "reprints_left": max(0, self.rules.reprint_limit - used),
                          "note": "" if decision.allowed else decision.message})
        return {"registrations": items}

    def reprint(self, device: AuthenticatedDevice, registration_no: str) -> dict[str, Any]:
        """Today's registration slip again, marked 补打; counted against the limit, and logged."""
        payer = self._sessions.payer(device)
        found = next((r for r in self._registrations_today(payer.his_patient_id)
                      if r.registration_no == registration_no), None)
        if found is None or found.status is not RegistrationStatus.REGISTERED:
            raise RegistrationRefused("没有找到您今天的这个挂号，只能补打当天的挂号条。",
                                      "请核对后重试，或到人工窗口办理", status=404)
        try:
            registration = self._his.registration(registration_no) or found
        except UpstreamError:
            registration = found  # today's list has what the slip needs but the fee
        now = self._clock.now()
        own = self._latest(registration_no)
        details = {**_details(found), **((own.details or {}) if own is not None else {})}
        slip_row = KioskRegistration(
            registration_no=registration_no, day=found.date, half_day=found.half_day.value,
            fee=Decimal(registration.fee) if registration.fee is not None else (own.fee if own else Decimal("0.00")),
            queue_no=found.queue_no, visit_no=registration.visit_no or (own.visit_no if own else None),
            details=details)
        masked = self._sessions.current(device).patient.get("masked_name", "")
        slip = registration_slip(slip_row, hospital_name=self._hospital_name, masked_name=masked, reprint=True)
        print_no = self._count_reprint(payer, device, registration_no, found.date, now)
        log.info("registration.slip_reprinted", registration_no=registration_no, print_no=print_no,
                 device_id=device.id)
        return slip.model_dump(mode="json")

    def _count_reprint(self, payer, device: AuthenticatedDevice, registration_no: str, day: dt.date,
                       now: dt.datetime) -> int:
        """Take the next reprint under the limit; two kiosks at once cannot both take the last one."""
        doc_key = f"registration:{registration_no}"
        for _attempt in range(3):
            used = self._reprints(registration_no)
            decision = self.rules.can_reprint(used, day, self.rules.today(now))
            if not decision.allowed:
                raise RegistrationRefused(decision.message, decision.next_step, status=409)
            try:
                with self._uow() as uow:
                    uow.session.add(DocumentPrint(
                        doc_key=doc_key, seq=used + 1, kind="registration_slip", doc_no=registration_no,
                        title="挂号条（补打）", patient_id=payer.patient_row_id, copy=True, state=ISSUED,
                        device_id=device.id, created_at=now))
                    uow.commit()
                return used + 1
            except IntegrityError:
                continue  # another kiosk took that number this moment: count again
        raise RegistrationRefused("补打太频繁，请稍后再试。", TO_WINDOW, status=409)

    def _reprints(self, registration_no: str) -> int:
        with self._uow() as uow:
            return uow.session.scalar(select(func.count()).select_from(DocumentPrint).where(
                DocumentPrint.doc_key == f"registration:{registration_no}", DocumentPrint.state.in_(COUNTED))) or 0

    def _registrations_today(self, his_patient_id: str) -> list[Registration]:
        try:
            return self._his.registrations_today(his_patient_id)
        except UpstreamError as exc:
            raise RegistrationRefused("暂时无法查询挂号记录，请稍后再试。", TO_WINDOW, status=503) from exc

    def _latest(self, registration_no: str) -> KioskRegistration | None:
        with self._uow() as uow:
            row = uow.session.scalar(select(KioskRegistration).where(
                KioskRegistration.registration_no == registration_no).order_by(KioskRegistration.id.desc()).limit(1))
            if row is not None:
                uow.session.expunge(row)
            return row

    @staticmethod
    def _registration_json(registration: Registration) -> dict[str, Any]:
        details = _details(registration)
        return {"registration_no": registration.registration_no, "date": registration.date.isoformat(),
                "half_day": registration.half_day.value,
                "half_day_label": HALF_DAY_LABELS[registration.half_day.value],
                "department_name": details["department_name"], "doctor_name": details["doctor_name"],
                "level_label": LEVEL_LABELS.get(details["level"], ""), "location": details["location"],
                "window": details["window"], "queue_no": registration.queue_no,
                "fee": str(registration.fee) if registration.fee is not None else ""}

    # -- the slip ---------------------------------------------------------------------------------
    def slip(self, device: AuthenticatedDevice, registration_no: str) -> dict[str, Any]:
        """The registration slip (挂号条) for the agent's 80 mm printer."""
        row = self._follow(device, self._own(device, registration_no))
        if row.state not in (RegistrationState.REGISTERED.value, RegistrationState.REFUNDING_APP.value):
            raise RegistrationRefused("挂号尚未完成，暂不能打印挂号条。", "请先完成缴费", status=409)
        masked = self._sessions.current(device).patient.get("masked_name", "")
        return registration_slip(row, hospital_name=self._hospital_name, masked_name=masked).model_dump(mode="json")

    # -- helpers ----------------------------------------------------------------------------------
    def _check_day(self, now: dt.datetime, day: dt.date) -> None:
        if day not in self.rules.bookable_dates(now):
            # The half-day does not matter to a day out of range: the rules say which side it is on.
            decision = self.rules.can_register(now, day, "am")
            raise RegistrationRefused(decision.message, decision.next_step, status=422)

    def _slots(self, day: dt.date, department_code: str | None) -> list[ScheduleSlot]:
        try:
            return self._his.list_schedules(day, department_code)
        except UpstreamError as exc:
            raise RegistrationRefused("暂时无法查询号源，请稍后再试。", TO_WINDOW, status=503) from exc

    def _attempt(self, prefix: str, session_id: str, target: str) -> tuple[str, KioskRegistration | None]:
        """The idempotency key of this session's live attempt at ``target`` (with its row), or of a new
        attempt when every earlier one ended (released, refused, cancelled)."""
        base = f"{prefix}-" + hashlib.sha256(f"{session_id}:{target}".encode()).hexdigest()[:32]
        for attempt in itertools.count(1):
            key = f"{base}-{attempt}"
            row = self._existing(key)
            if row is None or row.state not in ENDED:
                return key, row
        raise AssertionError("unreachable")

    def _existing(self, key: str) -> KioskRegistration | None:
        with self._uow() as uow:
            row = uow.session.scalar(select(KioskRegistration).where(KioskRegistration.idempotency_key == key))
            if row is not None:
                uow.session.expunge(row)
            return row

    def _insert(self, key: str, kind: str, payer, slot: ScheduleSlot | Registration) -> KioskRegistration:
        """The kiosk's record, written before the HIS is asked: a schedule's number, or an appointment."""
        now = self._clock.now()
        row = KioskRegistration(
            idempotency_key=key, kind=kind, state=RegistrationState.HOLDING.value, patient_id=payer.patient_row_id,
            his_patient_id=payer.his_patient_id, device_id=payer.device_id, session_id=payer.session_id,
            schedule_id=slot.schedule_id or "", day=slot.date, half_day=slot.half_day.value,
            fee=Decimal(slot.fee if slot.fee is not None else "0.00"),
            registration_no=getattr(slot, "registration_no", None), details={}, created_at=now, updated_at=now)
        try:
            with self._uow() as uow:
                uow.session.add(row)
                uow.commit()
                uow.session.refresh(row)
                uow.session.expunge(row)
        except IntegrityError:
            existing = self._existing(key)
            if existing is None:
                raise
            return existing
        return row

    def _set(self, row_id: int, **values: Any) -> KioskRegistration:
        with self._uow() as uow:
            row = uow.session.get(KioskRegistration, row_id, with_for_update=True)
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = self._clock.now()
            uow.commit()
            uow.session.refresh(row)
            uow.session.expunge(row)
            return row

    def _own(self, device: AuthenticatedDevice, registration_no: str) -> KioskRegistration:
        payer = self._sessions.payer(device)
        with self._uow() as uow:
            row = uow.session.scalar(select(KioskRegistration).where(
                KioskRegistration.registration_no == registration_no).order_by(KioskRegistration.id.desc()).limit(1))
            if row is not None:
                uow.session.expunge(row)
        if row is None or row.his_patient_id != payer.his_patient_id:
            raise RegistrationRefused("没有找到这个挂号。", "请返回重新操作", status=404)
        return row

    @staticmethod
    def _row_json(row: KioskRegistration) -> dict[str, Any]:
        details = row.details or {}
        return {
            "registration_no": row.registration_no, "state": row.state, "kind": row.kind,
            "date": row.day.isoformat(), "half_day": row.half_day, "half_day_label": HALF_DAY_LABELS[row.half_day],
            "department_name": details.get("department_name", ""), "doctor_name": details.get("doctor_name", ""),
            "level_label": LEVEL_LABELS.get(details.get("level", ""), ""), "location": details.get("location", ""),
            "window": details.get("window", ""), "queue_no": row.queue_no, "fee": str(row.fee),
            "order_no": row.order_no,
        }


def _details(held: Registration) -> dict[str, Any]:
    window = ""
    if held.window_start and held.window_end:
        window = f"{held.window_start:%H:%M}-{held.window_end:%H:%M}"
    return {"department_code": held.department_code, "department_name": held.department_name,
            "doctor_code": held.doctor_code, "doctor_name": held.doctor_name, "level": held.level.value,
            "location": held.location, "window": window}


def _day_label(day: dt.date, today: dt.date) -> str:
    names = {0: "今天", 1: "明天", 2: "后天"}
    weekday = "一二三四五六日"[day.weekday()]
    prefix = names.get((day - today).days, "")
    return f"{prefix} {day.month}月{day.day}日 周{weekday}".strip()


def registration_slip(row: KioskRegistration, *, hospital_name: str, masked_name: str,
                      reprint: bool = False) -> Receipt:
    """The slip that tells the patient where to go: department, doctor, day, number, place; fee and split."""
    details = row.details or {}
    split = details.get("split") or {}
    lines: list[dict[str, Any]] = [
        {"type": "text", "text": hospital_name, "bold": True, "double": True, "align": "center"},
        {"type": "text", "text": "挂号条" + ("（补打）" if reprint else ""), "bold": True, "align": "center"},
        {"type": "rule"},
        {"type": "text", "text": f"序号：{row.queue_no}", "bold": True, "double": True, "align": "center"},
        {"type": "text", "text": f"患者：{masked_name}"},
        {"type": "text", "text": f"科室：{details.get('department_name', '')}"},
        {"type": "text", "text": f"医生：{details.get('doctor_name', '')}  {LEVEL_LABELS.get(details.get('level', ''), '')}"},
        {"type": "text", "text": f"就诊：{row.day.month}月{row.day.day}日 {HALF_DAY_LABELS[row.half_day]}"
                                 + (f" {details['window']}" if details.get("window") else "")},
        {"type": "text", "text": f"地点：{details.get('location', '')}", "bold": True},
        {"type": "rule"},
        {"type": "text", "text": f"挂号费：￥{row.fee}"},
    ]
    if details.get("paid_in_app"):
        lines.append({"type": "text", "text": f"已在医院App支付：￥{details['paid_in_app']}"})
    elif split:
        lines += [{"type": "text", "text": f"医保统筹支付：￥{split['fund']}"},
                  {"type": "text", "text": f"个人账户支付：￥{split['account']}"},
                  {"type": "text", "text": f"现金支付：￥{split['cash']}"}]
    if details.get("cross_region_notice"):
        lines.append({"type": "text", "text": NOTE_CROSS_REGION})
    lines += [
        {"type": "rule"},
        {"type": "qr", "payload": row.visit_no or row.registration_no or "-"},
        {"type": "text", "text": f"就诊号：{row.visit_no}", "align": "center"},
        {"type": "text", "text": "请按时到诊区自助机或分诊台报到", "align": "center"},
    ]
    return Receipt.model_validate({"title": "挂号条", "lines": lines})


_lock = threading.Lock()


def registrations_of(container) -> RegistrationService:
    """The container's registration service, built once on first use (the same shape as ``exams_of``)."""
    service = getattr(container, "_registrations", None)
    if service is None:
        with _lock:
            service = getattr(container, "_registrations", None)
            if service is None:
                service = RegistrationService(
                    container.uow, container.clock, container.sessions, container.his, container.payments,
                    container.settings.registration_rules(),
                    hospital_name=container.settings.hospital_name, channel=container.channel)
                container._registrations = service
    return service
