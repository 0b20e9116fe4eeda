"""Resident ID numbers (GB 11643-1999): checksum, birth date and gender read from the number."""

from __future__ import annotations

from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def id_check_char(first17: str) -> str:
    """The 18th character of an ID number whose first 17 digits are given."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("an ID number's body is 17 digits")
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _WEIGHTS)) % 11]


def is_valid_id_number(value: str) -> bool:
    value = value.strip().upper()
    if len(value) != 18 or not value[:17].isdigit():
        return False
    if value[17] != id_check_char(value[:17]):
        return False
    try:
        birth_date_from_id(value)
    except ValueError:
        return False
    return True


def birth_date_from_id(value: str) -> date:
    return date(int(value[6:10]), int(value[10:12]), int(value[12:14]))


def gender_from_id(value: str) -> str:
    """'M' or 'F': the 17th digit is odd for men."""
    return "M" if int(value[16]) % 2 else "F"


def make_id_number(region: str, birth: date, sequence: int) -> str:
    """Build a valid ID number (used by the simulators' demo data). ``sequence`` is 0–999."""
    body = f"{region}{birth:%Y%m%d}{sequence:03d}"
    return body + id_check_char(body)
