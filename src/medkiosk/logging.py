"""Structured JSON logs (structlog) whose every line is scrubbed of patient data at the source."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from medkiosk.domain.masking import mask_card, mask_id_number, mask_name, mask_phone, scrub_text

_MASKERS = {
    "name": mask_name,
    "patient_name": mask_name,
    "psn_name": mask_name,
    "id_number": mask_id_number,
    "certno": mask_id_number,
    "phone": mask_phone,
    "card_no": mask_card,
    "card_sn": mask_card,
    "visit_card_no": mask_card,
}


def _mask_value(key: str, value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask_value(k, v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask_value(key, v) for v in value]
    if isinstance(value, str):
        masker = _MASKERS.get(key)
        return masker(value) if masker else scrub_text(value)
    return value


def mask_personal_data(_logger, _method, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: mask known personal fields and scrub ID/phone shapes from all text."""
    return {key: _mask_value(key, value) for key, value in event_dict.items()}


def _drop_color_message(_logger, _method, event_dict: dict[str, Any]) -> dict[str, Any]:
    """uvicorn passes its message again, with terminal colours, as an ``extra``: not for a JSON line."""
    event_dict.pop("color_message", None)
    return event_dict


# Loggers whose INFO line is the whole request URL: a patient lookup's URL holds the card or ID number
# it looks up. Our adapters log every upstream call themselves (operation, key, status, timing).
_QUIET_BELOW_WARNING = ("httpx", "httpcore")


def configure_logging(level: str = "INFO", *, stream=None) -> None:
    """JSON lines to stderr (or ``stream``); standard-library loggers go through the same masking,
    their ``extra`` fields included."""
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        mask_personal_data,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.JSONRenderer(ensure_ascii=False)],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processor=structlog.processors.JSONRenderer(ensure_ascii=False),
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), _drop_color_message, *shared]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _QUIET_BELOW_WARNING:
        logging.getLogger(name).setLevel(logging.WARNING)


def get_logger(name: str | None = None):
    return structlog.get_logger(name)
