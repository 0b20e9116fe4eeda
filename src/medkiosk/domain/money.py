"""Money: yuan as ``Decimal`` with exactly two places — never a float, anywhere.

``Money`` is the annotated type every model uses: it accepts a string ("12.50"), an int or an
exact ``Decimal`` (JSON numbers parsed with ``parse_float=Decimal``), refuses floats and
amounts with more than two places, and serialises to a two-place string on the wire.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer

CENT = Decimal("0.01")


def parse_amount(value: Any) -> Decimal:
    """An amount from the wire; a float is refused because it has already lost its cents."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError('money must be a string such as "12.50" or an exact number, not a float')
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{value!r} is not an amount") from None
    if isinstance(value, int):
        value = Decimal(value)
    if not isinstance(value, Decimal):
        raise ValueError(f"{value!r} is not an amount")
    if not value.is_finite():
        raise ValueError("an amount must be a finite number")
    if value != value.quantize(CENT):
        raise ValueError("an amount has at most two decimal places")
    return value.quantize(CENT)


def not_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("an amount cannot be negative")
    return value


def format_amount(value: Decimal) -> str:
    return f"{value:.2f}"


Money = Annotated[
    Decimal,
    BeforeValidator(parse_amount),
    PlainSerializer(format_amount, return_type=str, when_used="json"),
]
"""Yuan with two places; a string on the wire, a Decimal in Python."""

NonNegativeMoney = Annotated[Money, AfterValidator(not_negative)]
