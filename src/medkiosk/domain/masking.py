"""Masking of names, ID numbers, phones and card numbers for screens, paper and logs."""

from __future__ import annotations

import re


def mask_name(name: str | None) -> str:
    """张三 → 张*, 张小三 → 张*三, 欧阳小明 → 欧**明; Latin names keep their first letter."""
    if not name:
        return ""
    name = name.strip()
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def mask_id_number(value: str | None) -> str:
    """1101**********1234: the first four and the last four stay."""
    if not value:
        return ""
    value = value.strip()
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask_phone(value: str | None) -> str:
    """139****0001."""
    if not value:
        return ""
    value = value.strip()
    if len(value) < 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_card(value: str | None) -> str:
    """Card numbers keep only their last four characters."""
    if not value:
        return ""
    value = value.strip()
    return "*" * max(len(value) - 4, 0) + value[-4:]


# Free-text scrubbing for log lines: anything shaped like an ID number or a mobile phone.
_ID_RE = re.compile(r"(?<![0-9A-Za-z])(\d{6})(\d{8})(\d{3}[0-9Xx])(?![0-9A-Za-z])")
_PHONE_RE = re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)")


def scrub_text(text: str) -> str:
    """Mask ID numbers and mobile numbers wherever they appear in free text."""
    text = _ID_RE.sub(lambda m: m.group(1)[:4] + "*" * 10 + m.group(3), text)
    return _PHONE_RE.sub(lambda m: m.group(1) + "****" + m.group(3), text)
