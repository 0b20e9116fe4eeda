"""Simulator of the aggregated payment channel (WeChat Pay / Alipay / UnionPay): see docs/simulators/payment.md."""

from medkiosk.simulators.payment.app import create_app
from medkiosk.simulators.payment.state import PaymentState

__all__ = ["PaymentState", "create_app"]
