"""The insurance wire format and the adapter's reading of it, with no network (httpx.MockTransport)."""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import httpx
import pytest

from medkiosk.adapters.errors import UpstreamNotFound, UpstreamRefused, UpstreamUnknown
from medkiosk.adapters.insurance import (
    Certificate,
    ECertificate,
    GatewayHeaderTransport,
    InsuranceHttpAdapter,
    InsuredPerson,
)
from medkiosk.adapters.insurance.wire import (
    CHINA_TZ,
    MsgidSequence,
    PersonInfoOutput,
    dump_json,
    new_msgid,
    parse_response,
)

HOSPITAL_CODE = "H32010600001"
NOW = datetime(2026, 11, 25, 9, 30, 5, tzinfo=CHINA_TZ)
ID_NUMBER = "320102195803154210"

PERSON_OUTPUT = {
    "baseinfo": {"psn_no": "32010000000000000001", "psn_cert_type": "01", "certno": ID_NUMBER, "psn_name": "王建国",
                 "gend": "1", "naty": "01", "brdy": "1958-03-15", "age": 68},
    "insuinfo": [{"balc": 1520.35, "insutype": "310", "psn_type": "12", "psn_insu_stas": "1",
                  "psn_insu_date": "2005-07-01", "paus_insu_date": None, "cvlserv_flag": "0",
                  "insuplc_admdvs": "320100", "emp_name": "示范市机械厂"}],
    "idetinfo": [],
}


# -- envelopes ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("sent", "read"), [("0", 0), (0, 0), (-1, -1), ("-1", -1), (" 0 ", 0)])
def test_infcode_is_read_whether_it_arrives_as_a_number_or_a_string(sent, read):
    reply = parse_response(json.dumps({"infcode": sent, "err_msg": "", "output": {}}))

    assert reply.infcode == read
    assert reply.ok is (read == 0)


@pytest.mark.parametrize("sent", ["abc", "", True, 1.5, None])
def test_an_infcode_that_is_not_an_integer_makes_the_reply_unreadable(sent):
    with pytest.raises(ValueError):
        parse_response(json.dumps({"infcode": sent}))


def test_a_reply_without_infcode_is_unreadable():
    with pytest.raises(ValueError):
        parse_response('{"err_msg": "", "output": {}}')


@pytest.mark.parametrize("body", ["<html>502 Bad Gateway</html>", "[0]", ""])
def test_a_body_that_is_not_a_json_object_is_unreadable(body):
    with pytest.raises(ValueError):
        parse_response(body)


def test_output_is_the_same_whether_sent_as_an_object_or_as_a_json_string():
    as_object = parse_response(json.dumps({"infcode": 0, "output": PERSON_OUTPUT}))
    as_string = parse_response(json.dumps({"infcode": "0", "output": json.dumps(PERSON_OUTPUT, ensure_ascii=False)}))

    assert as_object.output == as_string.output
    assert as_string.output["baseinfo"]["psn_name"] == "王建国"


@pytest.mark.parametrize("output", [None, "", "  "])
def test_an_empty_output_reads_as_none(output):
    assert parse_response(json.dumps({"infcode": -1, "err_msg": "x", "output": output})).output is None


def test_a_balance_sent_as_a_json_number_is_read_as_an_exact_decimal_never_through_a_float():
    inner = '{"baseinfo": {"psn_no": "1", "certno": "x", "psn_name": "y"}, ' \
            '"insuinfo": [{"balc": 1520.3500000000000001, "insutype": "310"}]}'
    reply = parse_response(json.dumps({"infcode": 0, "output": inner}))

    assert PersonInfoOutput.model_validate(reply.output).insuinfo[0].balc == Decimal("1520.3500000000000001")


def test_requests_carry_decimals_as_json_numbers_with_their_own_digits_and_chinese_unescaped():
    body = dump_json({"medfee_sumamt": Decimal("1520.35"), "opter_name": "自助机"})

    assert body == '{"medfee_sumamt":1520.35,"opter_name":"自助机"}'.encode()


# -- msgids -------------------------------------------------------------------------------------
def test_a_msgid_is_the_hospital_code_the_time_and_a_four_digit_sequence():
    msgid = new_msgid(HOSPITAL_CODE, NOW, 42)

    assert len(msgid) == 30
    assert (msgid[:12], msgid[12:26], msgid[26:]) == (HOSPITAL_CODE, "20261125093005", "0042")


@pytest.mark.parametrize(("code", "seq"), [("H3201060000", 1), ("H320106000012", 1), (HOSPITAL_CODE, 10_000),
                                           (HOSPITAL_CODE, -1)])
def test_a_msgid_cannot_be_made_from_a_bad_code_or_sequence(code, seq):
    with pytest.raises(ValueError):
        new_msgid(code, NOW, seq)


def test_the_msgid_sequence_wraps_after_9999():
    sequence = MsgidSequence(start=9998)

    assert [sequence.next() for _ in range(3)] == [9998, 9999, 0]


def test_after_a_conflict_the_msgid_sequence_goes_on_from_a_fresh_random_point():
    sequence = MsgidSequence(start=100, rng=random.Random(5))
    landing = random.Random(5).randrange(10_000)

    assert [sequence.next() for _ in range(2)] == [100, 101]
    sequence.jump()
    assert [sequence.next() for _ in range(2)] == [landing, (landing + 1) % 10_000]


def test_two_sequences_running_through_the_same_numbers_part_after_one_conflict():
    # Two service processes journal their msgids under one unique key: the second to take a number
    # is refused and, jumping away, stops colliding with the other — rather than stepping on into
    # the numbers the other is about to take.
    journal: set[int] = set()
    sequences = [MsgidSequence(start=500, rng=random.Random(n)) for n in (1, 2)]
    conflicts = 0
    for _ in range(100):
        for sequence in sequences:
            number = sequence.next()
            while number in journal:
                conflicts += 1
                sequence.jump()
                number = sequence.next()
            journal.add(number)

    assert conflicts == 1


def test_the_adapter_jumps_its_sequence_when_told_its_last_msgid_was_taken():
    adapter = _adapter(lambda request: httpx.Response(500), msgid_sequence=MsgidSequence(start=7, rng=random.Random(3)))

    first, after = adapter.new_msgid(), adapter.new_msgid(after_conflict=True)

    assert first.endswith("0007") and after.endswith(f"{random.Random(3).randrange(10_000):04d}")


def test_msgids_from_many_threads_in_the_same_second_are_unique():
    adapter = _adapter(lambda request: httpx.Response(500))
    msgids: list[str] = []
    lock = threading.Lock()

    def make() -> None:
        mine = [adapter.new_msgid() for _ in range(1000)]
        with lock:
            msgids.extend(mine)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(msgids) == 8000 and len(set(msgids)) == 8000
    assert all(len(m) == 30 and m.startswith(HOSPITAL_CODE + "20261125093005") for m in msgids)


# -- the adapter over a scripted platform -------------------------------------------------------
class ScriptedPlatform:
    """Answers each infno from a script (a list of replies, used in order) and records requests."""

    def __init__(self, script: dict[str, list[Callable[[dict], httpx.Response] | dict]]) -> None:
        self.script = {infno: list(replies) for infno, replies in script.items()}
        self.requests: list[httpx.Request] = []
        self.bodies: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = json.loads(request.content)
        self.bodies.append(body)
        key = "ec.query" if request.url.path == "/ec/query" else body["infno"]
        reply = self.script[key].pop(0)
        return reply(body) if callable(reply) else httpx.Response(200, json=reply)

    def sent(self, infno: str) -> list[dict]:
        return [b for b in self.bodies if b.get("infno") == infno]


def _sign_in_reply(sign_no: str) -> dict:
    return {"infcode": "0", "err_msg": "", "output": json.dumps({"signinoutb": {"sign_time": "2026-11-25 09:30:05",
                                                                                 "sign_no": sign_no}})}


def _adapter(handler, **kwargs) -> InsuranceHttpAdapter:
    return InsuranceHttpAdapter("http://insurance.invalid", hospital_code=HOSPITAL_CODE, hospital_name="示范医院",
                                hospital_admdvs="320100", device_no="KIOSK-0101", clock=lambda: NOW,
                                transport=httpx.MockTransport(handler), **kwargs)


def test_the_gateway_transport_signs_each_request_with_the_x_tif_headers():
    platform = ScriptedPlatform({"9001": [_sign_in_reply("S1")], "1101": [{"infcode": 0, "output": PERSON_OUTPUT}]})
    gateway = GatewayHeaderTransport("hospital-paas", "s3cret-token", clock=lambda: 1795600000.9,
                                     nonce_factory=lambda: "19ab-ff01")
    adapter = _adapter(platform, wire_transport=gateway)

    adapter.person_info(Certificate("02", ID_NUMBER))

    expected = hashlib.sha256(b"1795600000" + b"s3cret-token" + b"19ab-ff01" + b"1795600000").hexdigest()
    for request in platform.requests:
        assert request.headers["x-tif-paasid"] == "hospital-paas"
        assert request.headers["x-tif-timestamp"] == "1795600000"
        assert request.headers["x-tif-nonce"] == "19ab-ff01"
        assert request.headers["x-tif-signature"] == expected
        assert b"s3cret-token" not in request.content and "s3cret-token" not in str(request.headers)
    assert "s3cret-token" not in repr(gateway)


def test_the_plain_transport_sends_json_without_gateway_headers():
    platform = ScriptedPlatform({"9001": [_sign_in_reply("S1")]})
    _adapter(platform).sign_in()

    request = platform.requests[0]
    assert request.headers["content-type"].startswith("application/json")
    assert not [h for h in request.headers if h.startswith("x-tif-")]


def test_the_envelope_names_the_hospital_the_device_and_leaves_the_insured_region_empty_for_1101():
    platform = ScriptedPlatform({"9001": [_sign_in_reply("S1")], "1101": [{"infcode": 0, "output": PERSON_OUTPUT}]})
    _adapter(platform).person_info(Certificate("03", "A32010001", "SN-1"))

    envelope = platform.sent("1101")[0]
    assert (envelope["fixmedins_code"], envelope["mdtrtarea_admvs"], envelope["insuplc_admdvs"]) == (HOSPITAL_CODE, "320100", "")
    assert (envelope["dev_no"], envelope["opter_type"], envelope["infver"], envelope["sign_no"]) == ("KIOSK-0101", "2", "V1.0", "S1")
    assert envelope["inf_time"] == "2026-11-25 09:30:05"
    assert (envelope["input"]["data"]["mdtrt_cert_type"], envelope["input"]["data"]["card_sn"]) == ("03", "SN-1")


def test_a_retry_after_a_lost_sign_in_signs_in_again_and_reuses_the_callers_msgid():
    not_signed_in = {"infcode": -1, "err_msg": "未签到或签到已失效", "output": None}
    platform = ScriptedPlatform({
        "9001": [_sign_in_reply("S1"), _sign_in_reply("S2")],
        "5301": [not_signed_in, {"infcode": "0", "output": json.dumps({"feedetail": [
            {"opsp_dise_code": "M03900", "opsp_dise_name": "糖尿病", "begndate": "2024-01-01", "enddate": ""}]})}],
    })
    msgid = new_msgid(HOSPITAL_CODE, NOW, 7)

    diseases = _adapter(platform).special_diseases("32010000000000000006", "320100", msgid=msgid)

    attempts = platform.sent("5301")
    assert [a["msgid"] for a in attempts] == [msgid, msgid]
    assert [a["sign_no"] for a in attempts] == ["S1", "S2"]
    assert attempts[0]["insuplc_admdvs"] == "320100"
    assert [(d.code, d.ends_on) for d in diseases] == [("M03900", None)]


def test_a_second_sign_in_refusal_is_a_refusal_not_a_loop():
    not_signed_in = {"infcode": -1, "err_msg": "未签到或签到已失效"}
    platform = ScriptedPlatform({"9001": [_sign_in_reply("S1"), _sign_in_reply("S2")],
                                 "1101": [not_signed_in, not_signed_in]})

    with pytest.raises(UpstreamRefused, match="未签到"):
        _adapter(platform).person_info(Certificate("02", ID_NUMBER))
    assert len(platform.sent("1101")) == 2


def test_1101_reads_the_person_into_readable_fields():
    platform = ScriptedPlatform({"9001": [_sign_in_reply("S1")], "1101": [{"infcode": "0", "output": PERSON_OUTPUT}]})

    person = _adapter(platform).person_info(Certificate("02", ID_NUMBER))

    assert person == InsuredPerson(psn_no="32010000000000000001", name="王建国", id_number=ID_NUMBER, gender="M",
                                   birth_date=datetime(1958, 3, 15).date(), insured_region="320100", scheme="310",
                                   person_type="12", balance=Decimal("1520.35"))


def test_the_insurance_in_force_is_chosen_over_a_suspended_one():
    output = json.loads(json.dumps(PERSON_OUTPUT))
    suspended = dict(output["insuinfo"][0], insutype="390", psn_insu_stas="2", insuplc_admdvs="320200", balc=0)
    output["insuinfo"] = [suspended, output["insuinfo"][0]]
    platform = ScriptedPlatform({"9001": [_sign_in_reply("S1")], "1101": [{"infcode": 0, "output": output}]})

    person = _adapter(platform).person_info(Certificate("02", ID_NUMBER))

    assert (person.scheme, person.insured_region) == ("310", "320100")


def test_a_reply_without_an_insured_region_is_unreadable_rather_than_defaulted_to_the_hospitals():
    output = json.loads(json.dumps(PERSON_OUTPUT))
    output["insuinfo"][0]["insuplc_admdvs"] = ""
    platform = ScriptedPlatform({"9001": [_sign_in_reply("S1")], "1101": [{"infcode": 0, "output": output}]})

    with pytest.raises(UpstreamUnknown):
        _adapter(platform).person_info(Certificate("02", ID_NUMBER))


def test_1101_not_found_is_a_not_found_refusal():
    platform = ScriptedPlatform({"9001": [_sign_in_reply("S1")],
                                 "1101": [{"infcode": -1, "err_msg": "未查询到该人员参保信息"}]})

    with pytest.raises(UpstreamNotFound) as not_found:
        _adapter(platform).person_info(Certificate("02", ID_NUMBER))
    assert not_found.value.permanent and not_found.value.operation == "1101"


@pytest.mark.parametrize(("reply", "code"), [
    (lambda body: httpx.Response(502, text="Bad Gateway"), "HTTP_502"),
    (lambda body: httpx.Response(200, text="<html>maintenance</html>"), "UNPARSABLE"),
    (lambda body: httpx.Response(200, json={"infcode": 0, "output": {"baseinfo": {}}}), "UNPARSABLE"),
    (lambda body: httpx.Response(200, content=b"\xff\xfe"), "UNPARSABLE"),
])
def test_anything_that_is_not_a_readable_reply_is_an_unknown_outcome(reply, code):
    platform = ScriptedPlatform({"9001": [_sign_in_reply("S1")], "1101": [reply]})

    with pytest.raises(UpstreamUnknown) as unknown:
        _adapter(platform).person_info(Certificate("02", ID_NUMBER))
    assert unknown.value.code == code and not unknown.value.permanent


def test_a_connection_failure_is_an_unknown_outcome():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(UpstreamUnknown) as unknown:
        _adapter(refuse).sign_in()
    assert unknown.value.code == "TRANSPORT"


def test_the_e_certificate_query_is_sent_for_this_hospital_and_a_non_zero_code_is_a_refusal():
    platform = ScriptedPlatform({"ec.query": [
        {"code": 0, "message": "成功", "data": {"ecToken": "T1", "idNo": ID_NUMBER, "userName": "王建国",
                                              "idType": "01", "insuOrg": "340100", "expiresIn": 600}},
        {"code": "1002", "message": "电子凭证二维码无效或已过期，请刷新后重试"},
    ]})
    adapter = _adapter(platform)

    certificate = adapter.resolve_e_certificate("QR-1")
    with pytest.raises(UpstreamRefused, match="电子凭证二维码无效"):
        adapter.resolve_e_certificate("QR-2")

    assert platform.bodies[0] == {"qrcode": "QR-1", "orgId": HOSPITAL_CODE, "businessType": "01101"}
    assert (certificate.token, certificate.insured_region) == ("T1", "340100")
    assert certificate.as_certificate() == Certificate("01", "T1")


def test_the_generic_call_returns_output_as_a_dict_and_sends_the_callers_region_and_msgid():
    platform = ScriptedPlatform({"9001": [_sign_in_reply("S1")],
                                 "2201": [{"infcode": "0", "output": json.dumps({"data": {"mdtrt_id": "M1"}})}]})
    msgid = new_msgid(HOSPITAL_CODE, NOW, 1234)

    output = _adapter(platform).call("2201", {"data": {"psn_no": "1"}}, insuplc_admdvs="340100", msgid=msgid)

    assert output == {"data": {"mdtrt_id": "M1"}}
    assert (platform.sent("2201")[0]["msgid"], platform.sent("2201")[0]["insuplc_admdvs"]) == (msgid, "340100")


# -- readable models ----------------------------------------------------------------------------
def test_names_id_numbers_and_tokens_stay_out_of_reprs():
    person = InsuredPerson(psn_no="1", name="王建国", id_number=ID_NUMBER, gender="M", birth_date=None,
                           insured_region="320100", scheme="310", person_type="11", balance=Decimal("1.00"))
    certificate = ECertificate(token="secret-token", id_number=ID_NUMBER, name="王建国", insured_region="320100")

    for text in (repr(person), repr(certificate), repr(Certificate("02", ID_NUMBER))):
        assert "王建国" not in text and ID_NUMBER not in text and "secret-token" not in text


@pytest.mark.parametrize(("kind", "number"), [("04", "x"), ("02", "  ")])
def test_a_certificate_needs_a_known_kind_and_a_number(kind, number):
    with pytest.raises(ValueError):
        Certificate(kind, number)


# -- outpatient settlement over a scripted platform ---------------------------------------------
SETTLE_OUTPUT = {
    "setlinfo": {"setl_id": "S1", "mdtrt_id": "M1", "psn_no": "32010000000000000001", "medfee_sumamt": 268.00,
                 "fulamt_ownpay_amt": 68.0, "overlmt_selfpay": 0, "preselfpay_amt": 18.0, "inscp_scp_amt": 182.0,
                 "act_pay_dedc": 100.0, "hifp_pay": 65.6, "pool_prop_selfpay": 0.8, "fund_pay_sumamt": 65.6,
                 "psn_part_amt": 202.4, "acct_pay": 202.4, "psn_cash_pay": 0, "balc": 1317.95,
                 "setl_time": "2026-11-25 09:31:00", "clr_optins": "320100"},
    "setldetail": [{"fund_pay_type": "310100", "fund_pay_type_name": "职工基本医疗保险统筹基金", "fund_payamt": 65.6}],
}


def _settlement_request(**overrides):
    from medkiosk.adapters.insurance import SettlementRequest

    values = {"psn_no": "32010000000000000001", "insured_region": "340100", "scheme": "310",
              "certificate": Certificate("03", "B34010004", "SN-9"), "mdtrt_id": "M1", "batch_no": "B1",
              "total": Decimal("268.00")}
    return SettlementRequest(**{**values, **overrides})


def test_settle_sends_the_callers_msgid_and_the_persons_region_and_reads_every_amount_as_a_decimal():
    platform = ScriptedPlatform({"9001": [_sign_in_reply("S1")],
                                 "2207": [{"infcode": "0", "output": json.dumps(SETTLE_OUTPUT)}]})
    msgid = new_msgid(HOSPITAL_CODE, NOW, 42)

    result = _adapter(platform).settle(_settlement_request(), msgid=msgid)

    sent = platform.sent("2207")[0]
    assert (sent["msgid"], sent["insuplc_admdvs"]) == (msgid, "340100")
    data = sent["input"]["data"]
    assert (data["medfee_sumamt"], data["acct_used_flag"], data["card_sn"], data["psn_setlway"]) == (
        268.0, "1", "SN-9", "01")
    assert b'"medfee_sumamt":268.0' in platform.requests[1].content
    assert (result.setl_id, result.total, result.fund, result.account, result.cash) == (
        "S1", Decimal("268.00"), Decimal("65.60"), Decimal("202.40"), Decimal("0.00"))
    assert (result.deductible, result.balance_after, result.fund_ratio) == (Decimal("100.00"), Decimal("1317.95"), Decimal("0.8"))
    assert result.parts_add_up and result.details[0].amount == Decimal("65.60")
    assert result.settled_at == datetime(2026, 11, 25, 9, 31, tzinfo=CHINA_TZ)


def test_a_settlement_reply_without_a_setl_id_is_an_unknown_outcome():
    output = json.loads(json.dumps(SETTLE_OUTPUT))
    del output["setlinfo"]["setl_id"]
    platform = ScriptedPlatform({"9001": [_sign_in_reply("S1")], "2207": [{"infcode": 0, "output": output}]})

    with pytest.raises(UpstreamUnknown) as unknown:
        _adapter(platform).settle(_settlement_request(), msgid=new_msgid(HOSPITAL_CODE, NOW, 2))
    assert unknown.value.operation == "2207"


def test_a_settlement_refusal_is_a_refusal_and_a_dropped_connection_an_unknown_outcome():
    def drop(body: dict) -> httpx.Response:
        raise httpx.ReadError("connection reset")

    platform = ScriptedPlatform({"9001": [_sign_in_reply("S1")],
                                 "2207": [{"infcode": -1, "err_msg": "未办理异地就医备案，请先通过国家医保服务平台APP备案"}, drop]})
    adapter = _adapter(platform)

    with pytest.raises(UpstreamRefused, match="异地就医备案"):
        adapter.settle(_settlement_request(), msgid=new_msgid(HOSPITAL_CODE, NOW, 2))
    with pytest.raises(UpstreamUnknown) as unknown:
        adapter.settle(_settlement_request(), msgid=new_msgid(HOSPITAL_CODE, NOW, 3))
    assert unknown.value.code == "TRANSPORT"


@pytest.mark.parametrize("call", [
    lambda a: a.settle(_settlement_request(), msgid=""),
    lambda a: a.reverse(new_msgid(HOSPITAL_CODE, NOW, 1), "2207", "1", "340100", msgid=""),
    lambda a: a.settle(_settlement_request(insured_region=""), msgid=new_msgid(HOSPITAL_CODE, NOW, 1)),
    lambda a: a.settle(_settlement_request(), msgid="too-short"),
    lambda a: a.settle(_settlement_request(), msgid=new_msgid("H99999999999", NOW, 1)),
])
def test_a_state_changing_call_needs_the_callers_msgid_and_the_persons_region_before_anything_is_sent(call):
    platform = ScriptedPlatform({"9001": [_sign_in_reply("S1")]})

    with pytest.raises(ValueError):
        call(_adapter(platform))
    assert platform.bodies == []


def test_a_cancellation_sent_with_positive_amounts_reads_the_same_as_one_sent_negative():
    def reply(sign: int) -> dict:
        return {"infcode": 0, "output": {"setlinfo": {
            "setl_id": "C1", "init_setl_id": "S1", "medfee_sumamt": sign * 268, "fund_pay_sumamt": sign * 65.6,
            "acct_pay": sign * 202.4, "psn_cash_pay": 0, "balc": 1520.35}}}

    platform = ScriptedPlatform({"9001": [_sign_in_reply("S1")], "2208": [reply(-1), reply(1)]})
    adapter = _adapter(platform)
    kwargs = {"setl_id": "S1", "mdtrt_id": "M1", "psn_no": "1", "insured_region": "320100"}

    negative = adapter.cancel_settlement(**kwargs, msgid=new_msgid(HOSPITAL_CODE, NOW, 1))
    positive = adapter.cancel_settlement(**kwargs, msgid=new_msgid(HOSPITAL_CODE, NOW, 2))

    assert negative == positive
    assert (negative.setl_id, negative.cancellation_id, negative.account, negative.balance_after) == (
        "S1", "C1", Decimal("202.40"), Decimal("1520.35"))


def test_a_reversal_status_the_adapter_does_not_know_is_an_unknown_outcome():
    platform = ScriptedPlatform({"9001": [_sign_in_reply("S1")], "2601": [{"infcode": 0, "output": {"data": {
        "omsgid": "X", "oinfno": "2207", "rvs_stas": "maybe"}}}]})

    with pytest.raises(UpstreamUnknown):
        _adapter(platform).reverse(new_msgid(HOSPITAL_CODE, NOW, 1), "2207", "1", "320100",
                                   msgid=new_msgid(HOSPITAL_CODE, NOW, 2))


def test_fee_lines_go_out_with_spec_names_and_come_back_classed():
    from medkiosk.adapters.insurance import FeeItem

    platform = ScriptedPlatform({"9001": [_sign_in_reply("S1")], "2204": [{"infcode": 0, "output": json.dumps({
        "result": [{"feedetl_sn": "1", "det_item_fee_sumamt": 450.0, "cnt": 1, "pric": 450.0, "pric_uplmt_amt": 420,
                    "selfpay_prop": 0.1, "fulamt_ownpay_amt": 0, "overlmt_amt": 30, "preselfpay_amt": 42,
                    "inscp_scp_amt": 378, "chrgitm_lv": "02", "med_chrgitm_type": "03", "memo": ""}]})}]})
    item = FeeItem(serial="1", hospital_code="E0004", insurance_code="002104000010000", quantity=Decimal("1"),
                   unit_price=Decimal("450.00"), amount=Decimal("450.00"), occurred_at=NOW, department_code="0701")

    [result] = _adapter(platform).upload_fees(psn_no="1", insured_region="320100", mdtrt_id="M1", batch_no="B1",
                                              items=[item], msgid=new_msgid(HOSPITAL_CODE, NOW, 5))

    line = platform.sent("2204")[0]["input"]["feedetail"][0]
    assert (line["med_list_codg"], line["medins_list_codg"], line["chrg_bchno"], line["fee_ocur_time"]) == (
        "002104000010000", "E0004", "B1", "2026-11-25 09:30:05")
    assert (line["det_item_fee_sumamt"], line["cnt"], line["pric"], line["bilg_dept_codg"]) == (450.0, 1.0, 450.0, "0701")
    assert (result.item_class, result.over_limit, result.pre_self_paid, result.in_scope, result.price_cap) == (
        "02", Decimal("30.00"), Decimal("42.00"), Decimal("378.00"), Decimal("420.00"))
