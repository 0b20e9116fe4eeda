"""The agent's JSON logs, and the masks that keep patients' identifiers out of them."""

from __future__ import annotations

import logging
import sys

import structlog


def mask_name(name: str) -> str:
    """王建国 → 王*国, 张伟 → 张*: the form shown on screen and written to logs."""
    name = name.strip()
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def mask_middle(value: str, keep_start: int = 4, keep_end: int = 4) -> str:
    """1101**********1234 for ID numbers; short values (card numbers) show at most a quarter at each end."""
    value = value.strip()
    keep_start, keep_end = min(keep_start, len(value) // 4), min(keep_end, len(value) // 4)
    return value[:keep_start] + "*" * (len(value) - keep_start - keep_end) + value[len(value) - keep_end:]


def mask_phone(phone: str) -> str:
    """13905150001 → 139****0001."""
    phone = phone.strip()
    if len(phone) != 11:
        return mask_middle(phone)
    return phone[:3] + "****" + phone[-4:]


def configure_logging(level: str = "INFO") -> None:
    """structlog to stdout as one JSON object a line, for the ops platform's log collector."""
    logging.basicConfig(format="%(message)s", stream=sys.stdout, level=level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str = "medkiosk.agent"):
    return structlog.get_logger(name)
