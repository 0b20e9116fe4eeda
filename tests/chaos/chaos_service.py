"""The kiosk service as the chaos rig runs it: production's JSON logs in every uvicorn worker.

``medkiosk serve`` configures logging once and runs one process; with ``--workers`` uvicorn starts
each worker afresh, so each must configure its own. Used as
``uvicorn --factory chaos_service:create_app --workers N`` (this folder on PYTHONPATH).

``MEDKIOSK_CHAOS_MSGID_START`` starts every worker's insurance msgid counter at that number instead
of a random one: the workers' counters then run through the same numbers from the first message,
the worst case for msgid conflicts between service processes.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from medkiosk.adapters.insurance import InsuranceHttpAdapter
from medkiosk.adapters.insurance.wire import MsgidSequence
from medkiosk.api.app import create_app as create_service
from medkiosk.bootstrap import build_container
from medkiosk.logging import configure_logging
from medkiosk.settings import get_settings


def create_app() -> FastAPI:
    configure_logging()
    start = os.environ.get("MEDKIOSK_CHAOS_MSGID_START")
    if start is None:
        return create_service()
    settings = get_settings()
    insurance = InsuranceHttpAdapter(
        settings.insurance_url, hospital_code=settings.hospital_code, hospital_name=settings.hospital_name,
        hospital_admdvs=settings.hospital_admdvs, device_no="medkiosk-service",
        timeout=settings.upstream_timeout_seconds, msgid_sequence=MsgidSequence(int(start)))
    return create_service(container=build_container(settings, insurance=insurance))
