"""After the chaos: every order as our store, the channel, HIS, insurance and the e-invoice platform see it.

Each check returns the orders that break it, one line each with the figures of every side, so a
failing assertion says exactly which order went wrong and how.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select

from medkiosk.store.models import PaymentOrder, PaymentStep

ZERO = Decimal("0.00")
TERMINAL = {"completed", "refunded", "closed", "failed"}
PAID = {"SUCCESS", "REFUND"}
REFUND_COUNTS = {"SUCCESS", "PROCESSING"}


def _d(value) -> Decimal:
    return ZERO if value is None else Decimal(str(value))


@dataclass
class Ledger:
    orders: dict[str, dict]
    steps: dict[str, list[dict]]
    trades: dict[str, dict]
    refunds: dict[str, list[dict]]
    postings: dict[str, list[dict]]
    settlements: dict[str, list[dict]]
    registrations: list[dict]
    invoices: dict[str, list[dict]]
    all_his_payments: list[dict] = field(default_factory=list)

    @classmethod
    def read(cls, container, sims) -> "Ledger":
        with container.uow() as uow:
            orders = {o.order_no: {c.name: getattr(o, c.name) for c in PaymentOrder.__table__.columns}
                      for o in uow.session.scalars(select(PaymentOrder))}
            steps: dict[str, list[dict]] = defaultdict(list)
            for s in uow.session.scalars(select(PaymentStep).order_by(PaymentStep.id)):
                steps[s.order_no].append({"step": s.step, "key": s.key, "status": s.status})
        refunds: dict[str, list[dict]] = defaultdict(list)
        for refund in sims.state("payment", "refunds"):
            refunds[refund["out_trade_no"]].append(refund)
        postings: dict[str, list[dict]] = defaultdict(list)
        his_payments = sims.state("his", "payments")
        for payment in his_payments:
            postings[payment["idempotency_key"].split(":")[0]].append(payment)
        batches = {no[-20:]: no for no in orders}  # the engine's charge batch (chrg_bchno) is its order number's tail
        settlements: dict[str, list[dict]] = defaultdict(list)
        for settlement in sims.state("insurance", "settlements"):
            settlements[batches.get(settlement["chrg_bchno"], "?" + settlement["chrg_bchno"])].append(settlement)
        invoices: dict[str, list[dict]] = defaultdict(list)
        for invoice in sims.state("einvoice", "invoices"):
            invoices[invoice["bill_no"]].append(invoice)
        # The hospital app's own trades (kind "app", registrations paid ahead) are not the kiosks' to count.
        kiosk_trades = {t["out_trade_no"]: t for t in sims.state("payment", "orders") if t.get("kind") != "app"}
        return cls(orders, dict(steps), kiosk_trades,
                   dict(refunds), dict(postings), dict(settlements), sims.state("insurance", "registrations"),
                   dict(invoices), his_payments)

    # -- each side's view of one order ---------------------------------------------------------
    def trade(self, order_no: str) -> dict | None:
        return self.trades.get(f"{order_no}P1")

    def channel_paid(self, order_no: str) -> Decimal:
        trade = self.trade(order_no)
        return _d(trade["paid_amount"]) if trade and trade["state"] in PAID else ZERO

    def channel_refunded(self, order_no: str) -> Decimal:
        return sum((_d(r["refund_amount"]) for r in self.refunds.get(f"{order_no}P1", [])
                    if r["state"] in REFUND_COUNTS), ZERO)

    def net_take(self, order_no: str) -> Decimal:
        return self.channel_paid(order_no) - self.channel_refunded(order_no)

    def posted(self, order_no: str) -> list[dict]:
        return [p for p in self.postings.get(order_no, []) if p["status"] != "cancelled"]

    def valid_settlements(self, order_no: str) -> list[dict]:
        return [s for s in self.settlements.get(order_no, []) if s["status"] == "valid"]

    def describe(self, order_no: str) -> str:
        o = self.orders[order_no]
        posted = self.posted(order_no)
        valid = self.valid_settlements(order_no)
        settled = ",".join(f"{s['setl_id'][-6:]}:{s['status']}:{s['psn_cash_pay']}"
                           for s in self.settlements.get(order_no, [])) or "-"
        steps = " ".join(f"{s['step']}={s['status']}" for s in self.steps.get(order_no, []))
        return (f"{order_no} [{o['state']}, {o['mode']}/{o['category']}, cash {o['cash']}, anomaly {o['anomaly']}, "
                f"attempts {o['attempts']}] channel paid {self.channel_paid(order_no)} refunded "
                f"{self.channel_refunded(order_no)} (net {self.net_take(order_no)}), ours paid {o['paid_amount']} "
                f"refunded {o['refunded_amount']}; HIS posted {len(posted)} cash "
                f"{sum((_d(p['cash']) for p in posted), ZERO)}; insurance {settled} (valid {len(valid)}); "
                f"message {o['message']!r}; journal: {steps}")

    # -- the checks -------------------------------------------------------------------------------
    def money_disagreements(self) -> list[str]:
        """The channel's net take = the cash HIS posted = the valid settlement's psn_cash_pay; or all undone."""
        problems = []
        for order_no, order in self.orders.items():
            net, posted, valid = self.net_take(order_no), self.posted(order_no), self.valid_settlements(order_no)
            his_cash = sum((_d(p["cash"]) for p in posted), ZERO)
            if posted:
                ok = net == his_cash and len(posted) == 1
                if order["mode"] == "insurance":
                    ok = ok and len(valid) == 1 and _d(valid[0]["psn_cash_pay"]) == his_cash \
                        and posted[0]["insurance_settlement_id"] == valid[0]["setl_id"]
                else:
                    ok = ok and not valid
            else:
                ok = net == ZERO and not valid
            if not ok:
                problems.append(self.describe(order_no))
        return problems

    def states_that_contradict_the_upstreams(self) -> list[str]:
        """completed ⇔ HIS posted it; refunded, closed and failed orders left nothing anywhere."""
        problems = []
        for order_no, order in self.orders.items():
            posted = bool(self.posted(order_no))
            if (order["state"] == "completed") != posted and order["state"] in TERMINAL:
                problems.append(self.describe(order_no))
        return problems

    def double_charges(self) -> list[str]:
        """One trade per order, refunds never above what was paid, one posting, settlement and invoice."""
        problems = []
        by_order: dict[str, list[str]] = defaultdict(list)
        for trade_no in self.trades:
            by_order[trade_no[:-2] if trade_no[-2:-1] == "P" else trade_no].append(trade_no)
        for order_no, trade_nos in by_order.items():
            if trade_nos != [f"{order_no}P1"]:
                problems.append(f"{order_no}: channel trades {trade_nos}")
        for trade_no, refunds in self.refunds.items():
            paid = _d(self.trades[trade_no]["paid_amount"]) if trade_no in self.trades else ZERO
            refunded = sum((_d(r["refund_amount"]) for r in refunds if r["state"] != "ABNORMAL"), ZERO)
            if refunded > paid:
                problems.append(f"{trade_no}: refunded {refunded} of {paid} paid")
        for order_no in self.orders:
            if len(self.posted(order_no)) > 1:
                problems.append(f"{order_no}: posted to HIS {len(self.posted(order_no))} times")
            if len(self.valid_settlements(order_no)) > 1:
                problems.append(f"{order_no}: {len(self.valid_settlements(order_no))} valid settlements")
            blue = [i for i in self.invoices.get(order_no, []) if i["kind"] == "blue" and i["status"] == "issued"]
            if len(blue) > 1:
                problems.append(f"{order_no}: {len(blue)} valid e-invoices")
        problems += [f"settlements of no order of ours: {group}" for key, group in self.settlements.items()
                     if key.startswith("?")]
        prescriptions = Counter(n for p in self.all_his_payments if p["status"] != "cancelled" for n in p["order_nos"])
        problems += [f"HIS order {n} paid by {c} postings" for n, c in prescriptions.items() if c > 1]
        completed = Counter(n for o in self.orders.values() if o["state"] == "completed"
                            for n in o["his_order_nos"])
        problems += [f"HIS order {n} in {c} completed kiosk orders" for n, c in completed.items() if c > 1]
        return problems

    def journal_disagreements(self) -> list[str]:
        """What our store says was paid and refunded is what the channel says."""
        return [self.describe(no) for no, o in self.orders.items()
                if _d(o["paid_amount"]) != self.channel_paid(no) or _d(o["refunded_amount"]) != self.channel_refunded(no)]

    def unfinished(self) -> list[str]:
        """Orders not in a final state, and orders that waited for a payment that never came but are not closed."""
        problems = [self.describe(no) for no, o in self.orders.items() if o["state"] not in TERMINAL]
        for order_no, order in self.orders.items():
            if order["out_trade_no"] and self.channel_paid(order_no) == ZERO and order["state"] != "closed":
                problems.append(self.describe(order_no))
        return problems

    def open_insurance_visits(self) -> list[str]:
        """Insurance visits (2201) of orders that did not complete but were never withdrawn."""
        by_msgid = {s["key"]: no for no, steps in self.steps.items() for s in steps if s["step"] == "2201"}
        problems = []
        for visit in self.registrations:
            order_no = by_msgid.get(visit["msgid"])
            if order_no is None:
                problems.append(f"registration {visit['mdtrt_id']} by an unjournaled msgid {visit['msgid']}")
            elif visit["status"] == "registered" and self.orders[order_no]["state"] != "completed":
                problems.append(f"visit {visit['ipt_otp_no']} registered as {visit['mdtrt_id']} — "
                                + self.describe(order_no))
        return problems

    def invoice_problems(self) -> list[str]:
        """Each completed order has its one e-invoice; nothing else has one."""
        problems = []
        for order_no, order in self.orders.items():
            blue = [i for i in self.invoices.get(order_no, []) if i["kind"] == "blue" and i["status"] == "issued"]
            if order["state"] == "completed" and (len(blue) != 1 or order["invoice_state"] != "issued"):
                problems.append(f"{order_no} completed, invoice_state {order['invoice_state']}, "
                                f"{len(blue)} at the platform")
            if order["state"] != "completed" and blue:
                problems.append(f"{order_no} {order['state']} but invoiced {blue[0]['invoice_no']}")
        return problems

    # -- counts -------------------------------------------------------------------------------------
    def counts(self) -> dict[str, Counter]:
        settlements = [s for group in self.settlements.values() for s in group]
        steps = [s for group in self.steps.values() for s in group]
        refunds = [r for group in self.refunds.values() for r in group]
        return {
            "orders by state": Counter(o["state"] for o in self.orders.values()),
            "orders by mode": Counter(f"{o['mode']}/{o['category']}" for o in self.orders.values()),
            "orders by pay method": Counter(str(o["pay_method"]) for o in self.orders.values()),
            "anomalies": Counter(o["anomaly"] for o in self.orders.values() if o["anomaly"]),
            "channel": Counter({"trades": len(self.trades),
                                "paid": sum(1 for t in self.trades.values() if t["state"] in PAID),
                                "closed": sum(1 for t in self.trades.values() if t["state"] == "CLOSED"),
                                "refunds": len(refunds)}),
            "insurance settlements": Counter(s["status"] for s in settlements),
            "journal": Counter(s["step"] for s in steps if s["step"] in ("2601", "2208", "refund", "2202", "2205")),
            "HIS payments": Counter(p["status"] for p in self.all_his_payments),
        }

    def money(self) -> dict[str, Decimal]:
        return {
            "channel took": sum((self.channel_paid(n) for n in self.orders), ZERO),
            "channel refunded": sum((self.channel_refunded(n) for n in self.orders), ZERO),
            "HIS cash posted": sum((_d(p["cash"]) for n in self.orders for p in self.posted(n)), ZERO),
            "insurance cash (valid)": sum((_d(s["psn_cash_pay"]) for n in self.orders
                                           for s in self.valid_settlements(n)), ZERO),
        }
