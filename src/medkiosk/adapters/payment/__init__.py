"""The aggregated payment channel (WeChat Pay / Alipay / UnionPay): its port, HTTP adapter and statement reader."""

from medkiosk.adapters.payment.http import PaymentChannelHttpAdapter
from medkiosk.adapters.payment.port import (
    PAID_STATES,
    ChargeResult,
    ChargeState,
    PaymentChannel,
    PaymentChannelPort,
    QrOrder,
    RefundState,
    RefundStatus,
    TradeState,
    TradeStatus,
)
from medkiosk.adapters.payment.statement import (
    Refund,
    Statement,
    StatementFormatError,
    StatementSummary,
    Trade,
    iter_statement,
    parse_statement,
)

__all__ = [
    "PAID_STATES",
    "ChargeResult",
    "ChargeState",
    "PaymentChannel",
    "PaymentChannelHttpAdapter",
    "PaymentChannelPort",
    "QrOrder",
    "Refund",
    "RefundState",
    "RefundStatus",
    "Statement",
    "StatementFormatError",
    "StatementSummary",
    "Trade",
    "TradeState",
    "TradeStatus",
    "iter_statement",
    "parse_statement",
]
