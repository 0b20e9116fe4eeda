"""Simulator of the national medical-security platform (国家医疗保障信息平台): see docs/simulators/insurance.md."""

from medkiosk.simulators.insurance.app import create_app
from medkiosk.simulators.insurance.state import InsuranceState

__all__ = ["InsuranceState", "create_app"]
