"""Wiring: the one place that decides which adapters, store and clock the service runs with."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from medkiosk.adapters.einvoice.http import EInvoiceHttpAdapter
from medkiosk.adapters.his.http import HisHttpAdapter
from medkiosk.adapters.his.port import HisPort
from medkiosk.adapters.insurance.http import InsuranceHttpAdapter
from medkiosk.adapters.insurance.port import InsurancePort
from medkiosk.adapters.payment.http import PaymentChannelHttpAdapter
from medkiosk.domain.session import SessionClock
from medkiosk.security.crypto import FieldCipher
from medkiosk.services.checkin import CheckInService
from medkiosk.services.clock import Clock
from medkiosk.services.departments import DepartmentService
from medkiosk.services.devices import DeviceService
from medkiosk.services.identify import IdentifyService
from medkiosk.services.payments import PaymentEngine, Ports
from medkiosk.services.queues import QueueService
from medkiosk.services.sessions import SessionService
from medkiosk.settings import Settings
from medkiosk.store.db import make_engine, make_relaxed_engine, make_session_factory
from medkiosk.store.uow import UnitOfWork


@dataclass
class Container:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    clock: Clock
    cipher: FieldCipher
    his: HisPort
    insurance: InsurancePort
    channel: object
    einvoice: object
    executor: ThreadPoolExecutor
    devices: DeviceService
    sessions: SessionService
    identify: IdentifyService
    payments: PaymentEngine
    queues: QueueService | None = None
    checkin: CheckInService | None = None
    departments: DepartmentService | None = None
    relaxed_engine: Engine | None = None

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory, self.relaxed_engine)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        for adapter in (self.his, self.insurance, self.channel, self.einvoice):
            close = getattr(adapter, "close", None)
            if close:
                close()
        self.engine.dispose()
        if self.relaxed_engine is not None and self.relaxed_engine is not self.engine:
            self.relaxed_engine.dispose()


def build_container(settings: Settings, *, his: HisPort | None = None, insurance: InsurancePort | None = None,
                    channel=None, einvoice=None, clock: Clock | None = None, engine: Engine | None = None) -> Container:
    clock = clock or Clock()
    engine = engine or make_engine(settings.database_url)
    session_factory = make_session_factory(engine)
    relaxed_engine = make_relaxed_engine(engine)

    def uow_factory() -> UnitOfWork:
        return UnitOfWork(session_factory, relaxed_engine)

    cipher = FieldCipher(settings.data_key_bytes)
    his = his or HisHttpAdapter(settings.his_url, timeout=settings.upstream_timeout_seconds)
    insurance = insurance or InsuranceHttpAdapter(
        settings.insurance_url, hospital_code=settings.hospital_code, hospital_name=settings.hospital_name,
        hospital_admdvs=settings.hospital_admdvs, device_no="medkiosk-service",
        timeout=settings.upstream_timeout_seconds)
    channel = channel or PaymentChannelHttpAdapter(settings.payment_url, merchant_id=settings.merchant_id,
                                                   timeout=settings.upstream_timeout_seconds)
    einvoice = einvoice or EInvoiceHttpAdapter(settings.einvoice_url, timeout=settings.upstream_timeout_seconds)
    executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="upstream")
    devices = DeviceService(uow_factory, clock, max_skew=settings.signature_max_skew_seconds)
    sessions = SessionService(uow_factory, clock, cipher, SessionClock(
        idle=timedelta(seconds=settings.session_idle_seconds), warn=timedelta(seconds=settings.session_warn_seconds),
        max_age=timedelta(seconds=settings.session_max_seconds)))
    identify = IdentifyService(uow_factory, clock, his, insurance, cipher, sessions,
                               hospital_region=settings.hospital_admdvs, executor=executor)
    payments = PaymentEngine(uow_factory, clock, cipher, sessions, Ports(his, insurance, channel, einvoice),
                             hospital_name=settings.hospital_name, executor=executor,
                             pay_window=timedelta(seconds=settings.pay_window_seconds), tz=settings.tz)
    container = Container(settings, engine, session_factory, clock, cipher, his, insurance, channel, einvoice,
                          executor, devices, sessions, identify, payments)
    container.relaxed_engine = relaxed_engine
    container.queues = QueueService(uow_factory, clock, tz=settings.tz)
    container.checkin = CheckInService(clock, his, sessions, container.queues)
    container.departments = DepartmentService(uow_factory, clock, his)
    return container
