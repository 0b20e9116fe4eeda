"""The identification loop's rules: the pending token stays in the agent, a session's end forgets everything."""

from __future__ import annotations

import asyncio
import json

import httpx

from medkiosk.agent.client import ServiceClient
from medkiosk.agent.drivers.base import CardRead
from medkiosk.agent.drivers.simulated import SimulatedInsuranceCardReader
from medkiosk.agent.identification import Identification, OutcomeMailbox
from medkiosk.security.signing import DeviceSigner, generate_key

CARD = CardRead(card_no="A32010011", card_sn="SN", id_number="320102197205185958", name="钱明")


def identification(reply, seen: list | None = None) -> Identification:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append((request.url.path, json.loads(request.content)))
        return reply(request)

    client = ServiceClient("http://service.test", DeviceSigner("K1", generate_key()),
                           transport=httpx.MockTransport(handler))
    return Identification({"insurance_card_reader": SimulatedInsuranceCardReader()}, client)


def needs_phone_then_identified(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/api/device/identify":
        return httpx.Response(200, json={"outcome": "needs_phone", "masked_name": "钱*", "message": "请输入手机号",
                                         "next_step": "输入后确定", "pending": "secret"})
    return httpx.Response(200, json={"outcome": "identified", "session": {"id": "s1"}})


def test_a_needs_phone_reply_loses_its_token_on_the_way_to_the_page_and_the_phone_answer_carries_it():
    seen: list = []
    ident = identification(needs_phone_then_identified, seen)

    async def scenario():
        shown = await ident.identify(CARD)
        done = await ident.answer_phone("13905150011")
        return shown, done

    shown, done = asyncio.run(scenario())
    assert "pending" not in shown and shown["outcome"] == "needs_phone"
    assert seen[1] == ("/api/device/identify/phone", {"pending": "secret", "phone": "13905150011"})
    assert done == {"outcome": "identified", "session": {"id": "s1"}}
    assert not ident.has_pending


def test_an_unreachable_service_is_an_error_outcome_and_keeps_the_pending_token():
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return needs_phone_then_identified(request)
        raise httpx.ConnectError("down")

    ident = identification(flaky)

    async def scenario():
        await ident.identify(CARD)
        return await ident.answer_phone("13905150011")

    outcome = asyncio.run(scenario())
    assert outcome["outcome"] == "error" and outcome["message"] and outcome["next_step"]
    assert ident.has_pending


def test_a_reply_without_an_outcome_becomes_an_error_not_a_pass_through():
    ident = identification(lambda r: httpx.Response(401, json={"detail": {"message": "设备认证失败"}}))
    outcome = asyncio.run(ident.identify(CARD))
    assert outcome["outcome"] == "error"


def test_a_reply_that_arrives_after_the_session_ended_is_dropped():
    ident = identification(needs_phone_then_identified)

    async def scenario():
        identifying = asyncio.create_task(ident.identify(CARD))
        await asyncio.sleep(0)  # the request is on its way
        ident.session_ended()
        await identifying
        return await ident.mailbox.take(0.05)

    assert asyncio.run(scenario()) is None
    assert not ident.has_pending


def test_the_mailbox_hands_an_outcome_to_one_waiter_and_forgets_stale_ones():
    async def scenario():
        box = OutcomeMailbox(ttl=60)
        waiter = asyncio.create_task(box.take(2))
        await asyncio.sleep(0.01)
        box.post({"outcome": "refused"})
        first = await waiter
        second = await box.take(0.05)
        stale = OutcomeMailbox(ttl=0)
        stale.post({"outcome": "identified"})
        await asyncio.sleep(0.01)
        return first, second, await stale.take(0.05)

    assert asyncio.run(scenario()) == ({"outcome": "refused"}, None, None)


def test_a_poll_whose_page_has_gone_leaves_the_outcome_for_the_next_poll():
    import asyncio

    from medkiosk.agent.identification import OutcomeMailbox

    async def scenario():
        mailbox = OutcomeMailbox()

        async def gone() -> bool:
            return True

        async def arrive_soon():
            await asyncio.sleep(0.05)
            mailbox.post({"outcome": "identified"})

        arrival = asyncio.create_task(arrive_soon())
        assert await mailbox.take(2.0, gone=gone, check_every=0.5) is None
        await arrival
        return await mailbox.take(0.1)

    assert asyncio.run(scenario()) == {"outcome": "identified"}


# -- payment codes at the scanner ------------------------------------------------------------------

WECHAT_CODE = "130012345678901234"


def scan(code: str):
    from medkiosk.agent.drivers.base import Medium, ScanRead

    return ScanRead(medium=Medium.E_CERTIFICATE, qrcode=code)


def identified(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"outcome": "identified", "session": {"id": "s1"}})


def test_a_payment_code_shown_while_a_payment_waits_goes_to_that_orders_poll_and_never_to_the_service():
    seen: list = []
    ident = identification(identified, seen)

    async def scenario():
        with ident.expecting_payment_code("PO1"):
            waiter = asyncio.create_task(ident.next_outcome(2, payment_order="PO1"))
            await asyncio.sleep(0.01)
            await ident.identify(scan(WECHAT_CODE))
            return await waiter

    assert asyncio.run(scenario()) == {"outcome": "payment_code", "auth_code": WECHAT_CODE, "order_no": "PO1"}
    assert seen == []


def test_a_payment_code_when_no_payment_waits_is_never_sent_as_identity_and_is_soon_forgotten():
    seen: list = []
    ident = identification(identified, seen)
    outcome = asyncio.run(ident.identify(scan("287654321098765432")))  # an Alipay code
    assert outcome["outcome"] == "error" and "付款码" in outcome["message"] and outcome["next_step"]
    assert seen == []


def test_an_e_certificate_shown_while_a_payment_waits_is_still_identified_by_the_service():
    seen: list = []
    ident = identification(identified, seen)

    async def scenario():
        with ident.expecting_payment_code("PO1"):
            return await ident.identify(scan("ECQR-320100-0001"))

    assert asyncio.run(scenario())["outcome"] == "identified"
    assert seen == [("/api/device/identify", {"medium": "e_certificate", "qrcode": "ECQR-320100-0001"})]


def test_a_code_read_for_one_order_is_never_handed_to_a_poll_for_another_or_to_an_identification_poll():
    ident = identification(identified)

    async def scenario():
        with ident.expecting_payment_code("PO1"):
            await ident.identify(scan(WECHAT_CODE))
        other = await ident.next_outcome(0.05, payment_order="PO2")
        with ident.expecting_payment_code("PO1"):
            await ident.identify(scan(WECHAT_CODE))
        plain = await ident.next_outcome(0.05)
        return other, plain

    assert asyncio.run(scenario()) == (None, None)


def test_codes_count_for_the_order_a_moment_after_its_poll_ends_and_not_after_the_session_ends():
    ident = identification(identified)
    with ident.expecting_payment_code("PO1"):
        assert ident.payment_order == "PO1"
    assert ident.payment_order == "PO1"  # the gap between one long-poll and the next
    ident.session_ended()
    assert ident.payment_order is None

    no_grace = Identification({}, ident.client, payment_code_grace=0.0)
    with no_grace.expecting_payment_code("PO2"):
        assert no_grace.payment_order == "PO2"
    assert no_grace.payment_order is None


def test_only_wallet_payment_codes_count_as_payment_codes():
    from medkiosk.agent.drivers.base import Medium, ScanRead
    from medkiosk.agent.identification import payment_code_in

    for code in ("130012345678901234", "104567890123456789", "287654321098765432", "6226090000000048001"):
        assert payment_code_in(scan(code)) == code
    for code in ("160012345678901234", "13001234567890123", "ECQR-320100-0001", "V10000001", "1300123456789012345"):
        assert payment_code_in(scan(code)) is None
    assert payment_code_in(ScanRead(medium=Medium.VISIT_CARD, visit_card_no=WECHAT_CODE)) is None
    assert payment_code_in(CARD) is None


def test_an_exam_slip_qr_is_never_sent_as_identity_and_says_how_to_check_in():
    seen: list = []
    ident = identification(identified, seen)
    outcome = asyncio.run(ident.identify(scan("EXAM:EX20261126001")))
    assert outcome["outcome"] == "error" and "检查预约单" in outcome["message"]
    assert "报到" in outcome["next_step"] and "医保卡" in outcome["next_step"]
    assert seen == []  # neither the service nor, through it, the insurance platform saw it
