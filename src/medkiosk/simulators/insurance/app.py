"""A runnable fake of the national medical-security platform: envelopes in, envelopes out.

``POST /fsi/api`` takes the platform's request envelope and dispatches on ``infno``: 9001 sign-in,
1101 person info, 5301 special-disease filings, and the outpatient transactions of
:mod:`medkiosk.simulators.insurance.outpatient` (2201–2208, 2601 reversal, 3201/3202
reconciliation). ``POST /ec/query`` resolves an e-certificate QR to a token. Like a real platform it
answers HTTP 200 with ``infcode`` -1 for every refusal, sends ``infcode`` as a number for even msgid
sequences and as a string for odd ones, and sends ``output`` as a JSON string for 9001, 5301, 2204
and 3202, so a client must cope with both shapes. A transaction that changes something is
processed once per msgid; the same msgid again gets the first reply.
The shared control surface is under ``/__sim__/``, plus ``/__sim__/clock`` to age tokens.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Request, Response

from medkiosk.simulators.control import SimulatedError, SimulatorControl, clock_router
from medkiosk.simulators.insurance import outpatient
from medkiosk.simulators.insurance.data import PersonRecord
from medkiosk.simulators.insurance.state import (
    CARD_LOST,
    PERSON_NOT_FOUND,
    InsuranceState,
    Refusal,
)

INFVER = "V1.0"
ENVELOPE_FIELDS = (
    "infno", "msgid", "mdtrtarea_admvs", "insuplc_admdvs", "recer_sys_code", "dev_no", "dev_safe_info",
    "cainfo", "signtype", "infver", "opter_type", "opter", "opter_name", "inf_time", "fixmedins_code",
    "fixmedins_name", "sign_no", "input",
)
NON_EMPTY_FIELDS = (
    "infno", "msgid", "mdtrtarea_admvs", "recer_sys_code", "infver", "opter_type", "opter", "opter_name",
    "inf_time", "fixmedins_code", "fixmedins_name",
)
OUTPUT_AS_JSON_STRING = {"9001", "5301", "2204", "3202"}

NOT_SIGNED_IN = "未签到或签到已失效"
CARD_SN_MISSING = "跨省异地就医须上传社保卡卡识别码(card_sn)，请重新读卡"
CARD_SN_MISMATCH = "社保卡卡识别码(card_sn)与卡号不符，请重新读卡"
EC_TOKEN_UNKNOWN = "电子凭证令牌(ecToken)无效，请重新扫码"
EC_TOKEN_EXPIRED = "电子凭证令牌(ecToken)已过期，请重新扫码"
EC_TOKEN_OTHER_ORG = "电子凭证令牌(ecToken)不属于本定点医药机构，请重新扫码"
EC_QR_INVALID = "电子凭证二维码无效或已过期，请刷新后重试"
MSGID_FORMAT = "报文ID(msgid)格式错误：应为定点医药机构编号(12位)+yyyyMMddHHmmss+4位顺序号，共30位"

EC_OK, EC_BAD_REQUEST, EC_QR_UNKNOWN, EC_FAULT = 0, 1001, 1002, 1999


def create_app(state: InsuranceState | None = None, *, seed: int | None = None) -> FastAPI:
    """The simulator as an ASGI app; ``state`` defaults to the demo personas."""
    state = state if state is not None else InsuranceState(seed=seed)
    control = SimulatorControl("insurance", state, seed=seed)
    app = FastAPI(title="medkiosk · national insurance platform simulator", version="1.0",
                  description="国家医疗保障信息平台（门诊身份与门诊结算部分）的模拟器。See docs/simulators/insurance.md.")
    app.state.control = control
    app.state.insurance = state
    app.include_router(control.router())
    app.include_router(clock_router(state, lambda: _clock(state)))

    handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
        "9001": lambda envelope: _sign_in(state, envelope),
        "1101": lambda envelope: _person_info(state, envelope),
        "5301": lambda envelope: _special_diseases(state, envelope),
    }
    for infno, handler in outpatient.HANDLERS.items():
        handlers[infno] = _outpatient(state, handler)

    @app.post("/fsi/api", tags=["platform"])
    async def fsi_api(request: Request) -> Response:
        received = state.now_local()
        try:
            envelope = json.loads(await request.body(), parse_float=Decimal)
        except ValueError:
            return _reply(state, {}, received, error="请求报文不是合法的JSON")
        if not isinstance(envelope, dict):
            return _reply(state, {}, received, error="请求报文应为JSON对象")
        problem = _envelope_problem(envelope, handlers)
        if problem:
            return _reply(state, envelope, received, error=problem)
        infno = envelope["infno"]
        try:
            output = await control.operate(infno, envelope["input"], lambda: handlers[infno](envelope))
        except (Refusal, SimulatedError) as refused:
            return _reply(state, envelope, received, error=refused.message)
        if isinstance(output, _Garbled):
            return Response(b"<html><body><h1>502 Bad Gateway</h1></body></html>", status_code=502,
                            media_type="text/html")
        return _reply(state, envelope, received, output=output, as_string=infno in OUTPUT_AS_JSON_STRING)

    @app.post("/ec/query", tags=["e-certificate"])
    async def ec_query(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _json({"code": EC_BAD_REQUEST, "message": "请求报文不是合法的JSON"})
        if not isinstance(body, dict):
            return _json({"code": EC_BAD_REQUEST, "message": "请求报文应为JSON对象"})
        missing = [k for k in ("qrcode", "orgId", "businessType") if not isinstance(body.get(k), str) or not body[k]]
        if missing:
            return _json({"code": EC_BAD_REQUEST, "message": f"缺少参数：{'、'.join(missing)}"})
        try:
            await control.before("ec.query", body)
        except SimulatedError as fault:
            return _json({"code": EC_FAULT, "message": fault.message})
        person = state.person_by_ec_qr(body["qrcode"])
        if person is None:
            return _json({"code": EC_QR_UNKNOWN, "message": EC_QR_INVALID})
        token = state.issue_token(person, body["orgId"])
        await control.after("ec.query")
        return _json({"code": EC_OK, "message": "成功", "data": {
            "ecToken": token.ec_token, "idNo": person.id_number, "userName": person.name, "idType": "01",
            "insuOrg": person.insuplc_admdvs, "expiresIn": state.token_ttl_seconds,
        }})

    return app


class _Garbled(dict):
    """An output that was committed but must reach the caller as a gateway error (magic input)."""


def _outpatient(state: InsuranceState, handler: outpatient.Handler) -> Callable[[dict[str, Any]], Any]:
    """An outpatient handler behind the sign-in check and, when it changes something, once per msgid."""

    def run(envelope: dict[str, Any]) -> Any:
        _require_sign_in(state, envelope)
        with state.lock:
            if envelope["infno"] not in outpatient.RECORDED:
                return handler(state, envelope)
            output, first_time = outpatient.once(state, envelope, handler)
        if first_time and outpatient.reply_lost_by_magic(envelope):
            return _Garbled(output or {})
        return output

    return run


# -- the envelope -------------------------------------------------------------------------------
def _envelope_problem(envelope: dict[str, Any], handlers: dict[str, Any]) -> str | None:
    missing = [f for f in ENVELOPE_FIELDS if f not in envelope]
    if missing:
        return f"报文缺少必填字段：{'、'.join(missing)}"
    not_text = [f for f in ENVELOPE_FIELDS if f != "input" and not isinstance(envelope[f], str)]
    if not_text:
        return f"字段应为字符串：{'、'.join(not_text)}"
    empty = [f for f in NON_EMPTY_FIELDS if not envelope[f].strip()]
    if empty:
        return f"必填字段不能为空：{'、'.join(empty)}"
    if not isinstance(envelope["input"], dict):
        return "交易输入(input)应为JSON对象"
    if envelope["infno"] not in handlers:
        return f"不支持的交易编号(infno)：{envelope['infno']}"
    if len(envelope["fixmedins_code"]) != 12:
        return "定点医药机构编号(fixmedins_code)应为12位"
    if not _msgid_ok(envelope["msgid"], envelope["fixmedins_code"]):
        return MSGID_FORMAT
    if not _is_admdvs(envelope["mdtrtarea_admvs"]):
        return "就医地医保区划(mdtrtarea_admvs)应为6位数字"
    if envelope["insuplc_admdvs"] and not _is_admdvs(envelope["insuplc_admdvs"]):
        return "参保地医保区划(insuplc_admdvs)应为6位数字或为空"
    if envelope["infver"] != INFVER:
        return f"接口版本号(infver)应为{INFVER}"
    if envelope["opter_type"] not in ("1", "2", "3"):
        return "经办人类别(opter_type)应为1、2或3"
    try:
        datetime.strptime(envelope["inf_time"], "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return "交易时间(inf_time)格式应为yyyy-MM-dd HH:mm:ss"
    return None


def _msgid_ok(msgid: str, fixmedins_code: str) -> bool:
    if len(msgid) != 30 or msgid[:12] != fixmedins_code or not msgid[12:].isdigit():
        return False
    try:
        datetime.strptime(msgid[12:26], "%Y%m%d%H%M%S")
    except ValueError:
        return False
    return True


def _is_admdvs(value: str) -> bool:
    return len(value) == 6 and value.isdigit()


def _infcode_as_number(msgid: Any) -> bool:
    """Even msgid sequence → ``infcode`` as a number, odd (or unreadable) → as a string."""
    tail = msgid[-4:] if isinstance(msgid, str) else ""
    return tail.isdigit() and int(tail) % 2 == 0


def _reply(state: InsuranceState, envelope: dict[str, Any], received: datetime, *,
           output: dict[str, Any] | None = None, error: str | None = None, as_string: bool = False) -> Response:
    code = -1 if error is not None else 0
    admdvs = envelope.get("mdtrtarea_admvs")
    body = {
        "infcode": code if _infcode_as_number(envelope.get("msgid")) else str(code),
        "inf_refmsgid": state.next_refmsgid(admdvs if isinstance(admdvs, str) and _is_admdvs(admdvs) else ""),
        "refmsg_time": _ms(received),
        "respond_time": _ms(state.now_local()),
        "err_msg": error or "",
        "warn_msg": "",
        "output": None if error is not None else (_dumps(output) if as_string else output),
    }
    return _json(body)


def _ms(moment: datetime) -> str:
    return f"{moment:%Y%m%d%H%M%S}{moment.microsecond // 1000:03d}"


def _dumps(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, default=_number)


def _number(value: Any) -> Any:
    # Amounts carry two places; a float prints exactly those digits, which the client reads back
    # as a Decimal. Real platforms send amounts as JSON numbers too.
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _json(body: dict[str, Any]) -> Response:
    return Response(_dumps(body).encode(), media_type="application/json")


# -- transactions -------------------------------------------------------------------------------
def _data(envelope: dict[str, Any]) -> dict[str, Any]:
    data = envelope["input"].get("data")
    if not isinstance(data, dict):
        raise Refusal("交易输入缺少data节点")
    return data


def _require_sign_in(state: InsuranceState, envelope: dict[str, Any]) -> None:
    if not state.signed_in(envelope["sign_no"], envelope["fixmedins_code"]):
        raise Refusal(NOT_SIGNED_IN)


def _sign_in(state: InsuranceState, envelope: dict[str, Any]) -> dict[str, Any]:
    sign_in = envelope["input"].get("signIn")
    if not isinstance(sign_in, dict) or not isinstance(sign_in.get("opter_no"), str) or not sign_in["opter_no"]:
        raise Refusal("签到输入signIn缺失或缺少操作员编号(opter_no)")
    record = state.sign_in(envelope["fixmedins_code"], opter_no=sign_in["opter_no"],
                           mac=str(sign_in.get("mac") or ""), ip=str(sign_in.get("ip") or ""))
    return {"signinoutb": {"sign_time": record.sign_time, "sign_no": record.sign_no}}


def _person_info(state: InsuranceState, envelope: dict[str, Any]) -> dict[str, Any]:
    _require_sign_in(state, envelope)
    if envelope["insuplc_admdvs"]:
        raise Refusal("1101人员信息获取交易的参保地医保区划(insuplc_admdvs)须为空")
    data = _data(envelope)
    cert_type = data.get("mdtrt_cert_type")
    number = str(data.get("mdtrt_cert_no") or "").strip()
    if cert_type not in ("01", "02", "03"):
        raise Refusal("就诊凭证类型(mdtrt_cert_type)应为01（电子凭证）、02（身份证）或03（社保卡）")
    if not number:
        raise Refusal("就诊凭证编号(mdtrt_cert_no)不能为空")
    if cert_type == "01":
        person = _person_by_token(state, number, envelope["fixmedins_code"])
    elif cert_type == "02":
        person = state.person_by_id_number(number)
    else:
        person = _person_by_card(state, number, str(data.get("card_sn") or "").strip(), envelope["mdtrtarea_admvs"])
    if person is None:
        raise Refusal(PERSON_NOT_FOUND)
    return _person_output(state, person)


def _person_by_token(state: InsuranceState, ec_token: str, fixmedins_code: str) -> PersonRecord | None:
    token = state.token(ec_token)
    if token is None:
        raise Refusal(EC_TOKEN_UNKNOWN)
    if token.expires_at <= state.now():
        raise Refusal(EC_TOKEN_EXPIRED)
    if token.org_id != fixmedins_code:
        raise Refusal(EC_TOKEN_OTHER_ORG)
    return state.person(token.psn_no)


def _person_by_card(state: InsuranceState, card_no: str, card_sn: str, treatment_admdvs: str) -> PersonRecord | None:
    person = state.person_by_card_no(card_no)
    if person is None:
        return None
    if person.lost_card:
        raise Refusal(CARD_LOST)
    cross_province = person.insuplc_admdvs[:2] != treatment_admdvs[:2]
    if cross_province and not card_sn:
        raise Refusal(CARD_SN_MISSING)
    if card_sn and card_sn != person.card_sn:
        raise Refusal(CARD_SN_MISMATCH)
    return person


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _person_output(state: InsuranceState, person: PersonRecord) -> dict[str, Any]:
    return {
        "baseinfo": {
            "psn_no": person.psn_no, "psn_cert_type": "01", "certno": person.id_number, "psn_name": person.name,
            "gend": person.gend, "naty": person.naty, "brdy": person.birth_date.isoformat(),
            "age": Decimal(_age(person.birth_date, state.today())),
        },
        "insuinfo": [{
            "balc": person.balance, "insutype": person.insutype, "psn_type": person.psn_type,
            "psn_insu_stas": person.insu_status, "psn_insu_date": person.insured_since.isoformat(),
            "paus_insu_date": None, "cvlserv_flag": "1" if person.cvlserv else "0",
            "insuplc_admdvs": person.insuplc_admdvs, "emp_name": person.emp_name,
        }],
        "idetinfo": [],
    }


def _special_diseases(state: InsuranceState, envelope: dict[str, Any]) -> dict[str, Any]:
    _require_sign_in(state, envelope)
    psn_no = str(_data(envelope).get("psn_no") or "").strip()
    if not psn_no:
        raise Refusal("人员编号(psn_no)不能为空")
    person = state.person(psn_no)
    if person is None:
        raise Refusal(PERSON_NOT_FOUND)
    if not envelope["insuplc_admdvs"]:
        raise Refusal("参保地医保区划(insuplc_admdvs)不能为空，请先通过1101获取")
    if envelope["insuplc_admdvs"] != person.insuplc_admdvs:
        raise Refusal("参保地医保区划(insuplc_admdvs)与该人员参保地不符")
    return {"feedetail": [
        {"opsp_dise_code": d.code, "opsp_dise_name": d.name, "begndate": d.begndate.isoformat(),
         "enddate": d.enddate.isoformat() if d.enddate else ""}
        for d in person.special_diseases
    ]}


# -- simulator-specific control -----------------------------------------------------------------
def _clock(state: InsuranceState) -> dict[str, Any]:
    return {"now": state.now_local().isoformat(timespec="seconds"), "offset_seconds": state.clock_offset,
            "token_ttl_seconds": state.token_ttl_seconds, "signin_ttl_seconds": state.signin_ttl_seconds}
