"""Paper for the 80 mm printer: payment receipts and exception slips, built from an order's record.

The patient's name is masked (the slip does not need it whole); the document is the agent's
``Receipt`` model, which the agent renders to ESC/POS.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from medkiosk.agent.documents import Receipt
from medkiosk.domain.payment import PaymentState

NOTE_CROSS_REGION = "异地医保结算：按就医地目录、参保地政策"


def _line(label: str, value: str) -> dict[str, Any]:
    return {"type": "text", "text": f"{label}：{value}"}


def payment_receipt(order: dict[str, Any], *, hospital_name: str, masked_name: str, printed_at: datetime,
                    reprint: bool = False) -> Receipt:
    """The receipt of a completed payment, or an exception slip for one that was unwound."""
    state = PaymentState(order["state"])
    lines: list[dict[str, Any]] = [
        {"type": "text", "text": hospital_name, "bold": True, "double": True, "align": "center"},
    ]
    if state is PaymentState.COMPLETED:
        lines.append({"type": "text", "text": "门诊缴费凭条" + ("（补打）" if reprint else ""), "bold": True,
                      "align": "center"})
    else:
        lines.append({"type": "text", "text": "缴费异常凭条", "bold": True, "align": "center"})
    lines += [
        {"type": "rule"},
        _line("患者", masked_name),
        _line("就诊科室", order.get("visit", {}).get("department", "")),
        _line("订单号", order["order_no"]),
    ]
    if order.get("receipt_no"):
        lines.append(_line("收据号", order["receipt_no"]))
    lines.append({"type": "rule"})
    for item in order.get("items", []):
        lines.append({"type": "text", "text": f"{item['name'][:14]}  ×{item['quantity']}  ￥{item['amount']}"})
    lines.append({"type": "rule"})
    split = order.get("split")
    if split:
        lines += [_line("费用合计", f"￥{split['total']}"), _line("医保统筹支付", f"￥{split['fund']}"),
                  _line("个人账户支付", f"￥{split['account']}"), _line("现金支付", f"￥{split['cash']}")]
    if order.get("cross_region_notice"):
        lines.append({"type": "text", "text": NOTE_CROSS_REGION})
    if state is not PaymentState.COMPLETED:
        lines += [
            {"type": "rule"},
            {"type": "text", "text": order.get("message") or "本次缴费未完成", "bold": True},
            _line("已支付", f"￥{order['paid_amount']}"),
            _line("已退款", f"￥{order['refunded_amount']}"),
            {"type": "text", "text": "请持本凭条到人工收费窗口办理", "bold": True},
        ]
    elif order.get("invoice_no"):
        lines.append(_line("电子票据号", order["invoice_no"]))
    lines += [
        {"type": "qr", "payload": order["order_no"]},
        _line("打印时间", f"{printed_at:%Y-%m-%d %H:%M}"),
        {"type": "feed", "lines": 2},
    ]
    job = f"{order['order_no']}-{'re' if reprint else ''}{'receipt' if state is PaymentState.COMPLETED else 'slip'}"
    return Receipt(job_id=job, title="缴费凭条" if state is PaymentState.COMPLETED else "缴费异常凭条", lines=lines)
