from decimal import Decimal

import pytest
from pydantic import BaseModel, ValidationError

from medkiosk.domain.money import Money, NonNegativeMoney


class Bill(BaseModel):
    total: Money
    paid: NonNegativeMoney = Decimal("0")


@pytest.mark.parametrize(("value", "expected"), [("12.50", "12.50"), (Decimal("12.5"), "12.50"), (12, "12.00"),
                                                  (" 7.1 ", "7.10")])
def test_amounts_arrive_as_strings_ints_or_exact_decimals(value, expected):
    assert Bill(total=value).total == Decimal(expected)


def test_floats_and_fractions_of_a_cent_are_refused():
    with pytest.raises(ValidationError, match="float"):
        Bill(total=12.5)
    with pytest.raises(ValidationError, match="two decimal places"):
        Bill(total="12.505")


def test_money_travels_as_a_two_place_string():
    assert Bill(total="3").model_dump(mode="json")["total"] == "3.00"


def test_a_refund_may_be_negative_but_a_payment_not():
    assert Bill(total="-5.00").total == Decimal("-5.00")
    with pytest.raises(ValidationError, match="negative"):
        Bill(total="1", paid="-0.01")
