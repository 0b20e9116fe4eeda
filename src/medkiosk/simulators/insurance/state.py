"""The insurance simulator's memory: people, tokens, sign-ins and the outpatient books, behind one lock.

It implements the ``SimulatorState`` protocol of :mod:`medkiosk.simulators.control`, so the shared
control surface can show, load, add and reset its collections. Its clock can be moved forward
(tokens and sign-ins expire by it, settlements are dated by it) so tests and training need not wait.

Collections, each keyed as noted (``add`` replaces a record with the same key):

* ``people`` (psn_no), ``tokens`` (ec_token), ``signins`` (sign_no) — identity;
* ``catalog`` (admdvs, med_list_codg), ``policies`` (admdvs, kind) — the settlement rules;
* ``registrations`` (mdtrt_id), ``fee_details`` (mdtrt_id, feedetl_sn), ``settlements`` (setl_id),
  ``messages`` (msgid), ``year_to_date`` (psn_no, year) — what the outpatient transactions did.

The transactions themselves live in :mod:`medkiosk.simulators.insurance.outpatient`; they hold
:attr:`InsuranceState.lock` for the whole of one transaction so it is atomic.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter

from medkiosk.simulators.insurance.data import (
    ANY_REGION,
    DEFAULT_CATALOG,
    DEFAULT_POLICIES,
    CatalogEntryRecord,
    FeeDetailRecord,
    MessageRecord,
    PersonRecord,
    PolicyKind,
    PolicyRecord,
    RegistrationRecord,
    SettlementRecord,
    SigninRecord,
    TokenRecord,
    YearToDateRecord,
    persona_people,
)

CHINA_TZ = timezone(timedelta(hours=8), "CST")

DEFAULT_TOKEN_TTL_SECONDS = 600
DEFAULT_SIGNIN_TTL_SECONDS = 12 * 3600

R = TypeVar("R", bound=BaseModel)

_RECORDS: dict[str, type[BaseModel]] = {
    "people": PersonRecord,
    "tokens": TokenRecord,
    "signins": SigninRecord,
    "catalog": CatalogEntryRecord,
    "policies": PolicyRecord,
    "registrations": RegistrationRecord,
    "fee_details": FeeDetailRecord,
    "settlements": SettlementRecord,
    "messages": MessageRecord,
    "year_to_date": YearToDateRecord,
}
_KEYS: dict[str, Callable[[Any], Any]] = {
    "people": lambda r: r.psn_no,
    "tokens": lambda r: r.ec_token,
    "signins": lambda r: r.sign_no,
    "catalog": lambda r: (r.admdvs, r.med_list_codg),
    "policies": lambda r: (r.admdvs, r.kind),
    "registrations": lambda r: r.mdtrt_id,
    "fee_details": lambda r: (r.mdtrt_id, r.feedetl_sn),
    "settlements": lambda r: r.setl_id,
    "messages": lambda r: r.msgid,
    "year_to_date": lambda r: (r.psn_no, r.year),
}


PERSON_NOT_FOUND = "未查询到该人员参保信息"
CARD_LOST = "该社保卡已挂失，请持身份证到人工窗口办理"


class Refusal(Exception):
    """A transaction the platform refuses: answered with infcode -1 and this message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InsuranceState:
    """What the platform knows: people, tokens, sign-ins, the rules and the outpatient books."""

    collections = tuple(_RECORDS)

    def __init__(self, people: Iterable[PersonRecord] | None = None, *, seed: int | None = None,
                 catalog: Iterable[CatalogEntryRecord] | None = None,
                 policies: Iterable[PolicyRecord] | None = None,
                 token_ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS,
                 signin_ttl_seconds: int = DEFAULT_SIGNIN_TTL_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self._initial: dict[str, list[BaseModel]] = {
            "people": [p.model_copy(deep=True) for p in (persona_people() if people is None else people)],
            "catalog": [c.model_copy(deep=True) for c in (DEFAULT_CATALOG if catalog is None else catalog)],
            "policies": [p.model_copy(deep=True) for p in (DEFAULT_POLICIES if policies is None else policies)],
        }
        self._seed = seed
        self.token_ttl_seconds = token_ttl_seconds
        self.signin_ttl_seconds = signin_ttl_seconds
        self._clock = clock
        self._lock = threading.RLock()
        self._refmsg_seq = itertools.count(1)
        self.reset()

    @property
    def lock(self) -> threading.RLock:
        """Held by a transaction from its first read to its last write."""
        return self._lock

    # -- clock ------------------------------------------------------------------------------
    def now(self) -> float:
        return self._clock() + self._offset

    def now_local(self) -> datetime:
        return datetime.fromtimestamp(self.now(), CHINA_TZ)

    def today(self) -> date:
        return self.now_local().date()

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock forward (tokens and sign-ins age with it)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds

    @property
    def clock_offset(self) -> float:
        return self._offset

    # -- SimulatorState ---------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self._data: dict[str, dict[Any, BaseModel]] = {name: {} for name in _RECORDS}
            for name, records in self._initial.items():
                self._data[name] = {_KEYS[name](r): r.model_copy(deep=True) for r in records}
            self._offset = 0.0
            self._random = random.Random(self._seed)
            self._ids = itertools.count(1)
            self._reindex()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {name: [r.model_dump(mode="json") for r in records.values()] for name, records in self._data.items()}

    def load(self, data: dict[str, Any]) -> None:
        """Replace the named collections (others stay); all are checked before any is replaced."""
        parsed = {name: self._keyed(name, self._parse(name, items)) for name, items in data.items()}
        if "people" in parsed:
            _check_unique(parsed["people"])
        with self._lock:
            self._data.update(parsed)
            self._reindex()

    def add(self, collection: str, items: list[dict[str, Any]]) -> int:
        """Add (or replace, by key) records; one bad item refuses them all and changes nothing."""
        records = self._keyed(collection, self._parse(collection, items))
        with self._lock:
            merged = {**self._data[collection], **records}
            if collection == "people":
                _check_unique(merged)
            self._data[collection] = merged
            self._reindex()
        return len(records)

    @staticmethod
    def _parse(collection: str, items: Any) -> list[Any]:
        if collection not in _RECORDS:
            raise KeyError(f"no collection {collection!r}; have {sorted(_RECORDS)}")
        if not isinstance(items, list):
            raise TypeError(f"{collection} takes a list of records")
        return TypeAdapter(list[_RECORDS[collection]]).validate_python(items)

    @staticmethod
    def _keyed(collection: str, records: list[BaseModel]) -> dict[Any, BaseModel]:
        keyed: dict[Any, BaseModel] = {}
        for record in records:
            key = _KEYS[collection](record)
            if key in keyed:
                raise ValueError(f"{collection}: key {key!r} appears twice")
            keyed[key] = record
        return keyed

    def _reindex(self) -> None:
        people: Iterable[PersonRecord] = self._data["people"].values()  # type: ignore[assignment]
        self._by_id_number = {p.id_number: p for p in people}
        self._by_card_no = {p.card_no: p for p in people if p.card_no}
        self._by_ec_qr = {p.ec_qr: p for p in people if p.ec_qr}

    # -- records by key (callers doing a transaction hold the lock) --------------------------
    def get(self, collection: str, key: Any) -> Any:
        with self._lock:
            return self._data[collection].get(key)

    def put(self, collection: str, record: BaseModel) -> None:
        with self._lock:
            self._data[collection][_KEYS[collection](record)] = record
            if collection == "people":
                self._reindex()

    def remove(self, collection: str, key: Any) -> None:
        with self._lock:
            self._data[collection].pop(key, None)

    def values(self, collection: str) -> list[Any]:
        with self._lock:
            return list(self._data[collection].values())

    def new_id(self, kind: int, admdvs: str) -> str:
        """A fresh id: region, today, a kind digit (1 visit, 2 settlement, 3 cancellation), a sequence."""
        with self._lock:
            while True:
                candidate = f"{admdvs}{self.today():%Y%m%d}{kind}{next(self._ids):07d}"
                if all(candidate not in self._data[c] for c in ("registrations", "settlements")):
                    return candidate

    # -- rules ------------------------------------------------------------------------------
    def catalog_entry(self, treatment_admdvs: str, code: str) -> CatalogEntryRecord | None:
        return self.get("catalog", (treatment_admdvs, code)) if code else None

    def policy(self, insured_admdvs: str, kind: PolicyKind) -> PolicyRecord | None:
        return self.get("policies", (insured_admdvs, kind)) or self.get("policies", (ANY_REGION, kind))

    def year_to_date(self, psn_no: str, year: int) -> YearToDateRecord:
        return self.get("year_to_date", (psn_no, year)) or YearToDateRecord(psn_no=psn_no, year=year)

    def set_balance(self, psn_no: str, balance: Decimal) -> None:
        with self._lock:
            person = self._data["people"][psn_no]
            self.put("people", person.model_copy(update={"balance": balance}))

    # -- people -----------------------------------------------------------------------------
    def person(self, psn_no: str) -> PersonRecord | None:
        with self._lock:
            return self._data["people"].get(psn_no)  # type: ignore[return-value]

    def person_by_id_number(self, id_number: str) -> PersonRecord | None:
        with self._lock:
            return self._by_id_number.get(id_number.strip().upper())

    def person_by_card_no(self, card_no: str) -> PersonRecord | None:
        with self._lock:
            return self._by_card_no.get(card_no.strip())

    def person_by_ec_qr(self, qrcode: str) -> PersonRecord | None:
        with self._lock:
            return self._by_ec_qr.get(qrcode.strip())

    # -- e-certificate tokens ---------------------------------------------------------------
    def issue_token(self, person: PersonRecord, org_id: str) -> TokenRecord:
        with self._lock:
            now = self.now()
            self._data["tokens"] = {k: t for k, t in self._data["tokens"].items() if t.expires_at > now}
            token = TokenRecord(ec_token=f"ect{self._random.getrandbits(128):032x}", psn_no=person.psn_no,
                                org_id=org_id, issued_at=now, expires_at=now + self.token_ttl_seconds)
            self._data["tokens"][token.ec_token] = token
            return token

    def token(self, ec_token: str) -> TokenRecord | None:
        with self._lock:
            return self._data["tokens"].get(ec_token)  # type: ignore[return-value]

    # -- sign-ins ---------------------------------------------------------------------------
    def sign_in(self, fixmedins_code: str, *, opter_no: str, mac: str, ip: str) -> SigninRecord:
        with self._lock:
            now = self.now_local()
            record = SigninRecord(
                sign_no=f"{now:%Y%m%d%H%M%S}{self._random.randrange(10**16):016d}",
                fixmedins_code=fixmedins_code, opter_no=opter_no, mac=mac, ip=ip,
                sign_time=f"{now:%Y-%m-%d %H:%M:%S}", expires_at=self.now() + self.signin_ttl_seconds,
            )
            self._data["signins"][record.sign_no] = record
            return record

    def signed_in(self, sign_no: str, fixmedins_code: str) -> bool:
        with self._lock:
            record = self._data["signins"].get(sign_no)
            return bool(record and record.fixmedins_code == fixmedins_code and record.expires_at > self.now())

    def forget_signins(self) -> None:
        """Drop every sign-in, as the platform does overnight: clients must sign in again."""
        with self._lock:
            self._data["signins"].clear()

    # -- reply ids --------------------------------------------------------------------------
    def next_refmsgid(self, admdvs: str) -> str:
        """The platform's own id for a reply: region, time to the millisecond, a sequence (30 chars)."""
        now = self.now_local()
        return f"{admdvs or '000000'}{now:%Y%m%d%H%M%S}{now.microsecond // 1000:03d}{next(self._refmsg_seq) % 10**7:07d}"


def _check_unique(people: dict[Any, Any]) -> None:
    for attribute in ("id_number", "card_no", "ec_qr"):
        owners: dict[str, str] = {}
        for person in people.values():
            value = getattr(person, attribute)
            if not value:
                continue
            if value in owners:
                raise ValueError(f"{attribute} of psn_no {person.psn_no} is already used by psn_no {owners[value]}")
            owners[value] = person.psn_no
