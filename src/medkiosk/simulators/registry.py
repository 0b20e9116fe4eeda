"""The simulators we ship, by name (``medkiosk sim NAME``)."""

from __future__ import annotations

from fastapi import FastAPI

NAMES = ("his", "insurance", "einvoice", "payment")


def create(name: str) -> FastAPI:
    if name == "his":
        from medkiosk.simulators.his.app import create_app
    elif name == "insurance":
        from medkiosk.simulators.insurance.app import create_app
    elif name == "payment":
        from medkiosk.simulators.payment.app import create_app
    elif name == "einvoice":
        from medkiosk.simulators.einvoice.app import create_app
    else:
        raise ValueError(f"no simulator {name!r}; have {', '.join(NAMES)}")
    return create_app()
