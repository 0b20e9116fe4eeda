"""The national insurance platform: its port, wire format, transports and HTTP adapter."""

from medkiosk.adapters.insurance.http import InsuranceHttpAdapter
from medkiosk.adapters.insurance.port import (
    Certificate,
    ECertificate,
    InsurancePort,
    InsuredPerson,
    SignIn,
    SpecialDisease,
)
from medkiosk.adapters.insurance.transport import GatewayHeaderTransport, PlainJsonTransport, WireTransport

__all__ = [
    "Certificate",
    "ECertificate",
    "GatewayHeaderTransport",
    "InsuranceHttpAdapter",
    "InsurancePort",
    "InsuredPerson",
    "PlainJsonTransport",
    "SignIn",
    "SpecialDisease",
    "WireTransport",
]
