"""The kiosk service as the chaos rig runs it: production's JSON logs in every uvicorn worker.

``medkiosk serve`` configures logging once and runs one process; with ``--workers`` uvicorn starts
each worker afresh, so each must configure its own. Used as
``uvicorn --factory chaos_service:create_app --workers N`` (this folder on PYTHONPATH).
"""

from __future__ import annotations

from fastapi import FastAPI

from medkiosk.api.app import create_app as create_service
from medkiosk.logging import configure_logging


def create_app() -> FastAPI:
    configure_logging()
    return create_service()
