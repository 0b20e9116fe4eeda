import io
import json

from hypothesis import given, strategies as st

from medkiosk.domain.masking import mask_id_number, mask_name, mask_phone, scrub_text
from medkiosk.logging import configure_logging, get_logger


def test_names_keep_only_their_first_and_last_character():
    assert mask_name("张三") == "张*"
    assert mask_name("王建国") == "王*国"
    assert mask_name("欧阳小明") == "欧**明"
    assert mask_name("") == ""


def test_id_numbers_show_the_first_and_last_four():
    assert mask_id_number("110105194912310021") == "1101**********0021"


def test_phones_hide_the_middle_four():
    assert mask_phone("13905150001") == "139****0001"


@given(st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), min_size=3, max_size=6))
def test_a_masked_name_never_shows_its_middle(name):
    masked = mask_name(name)
    assert len(masked) == len(name)
    assert masked[1:-1] == "*" * (len(name) - 2)


def test_free_text_loses_id_numbers_and_phones():
    text = scrub_text("患者 320102195803154210 电话 13905150001 已报到")
    assert "320102195803154210" not in text and "13905150001" not in text
    assert "3201**********4210" in text and "139****0001" in text


def test_log_lines_carry_no_name_id_number_or_phone():
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    get_logger("test").info("identify.ok", name="王建国", id_number="320102195803154210", phone="13905150001",
                            note="读卡 320102195803154210", nested={"psn_name": "李秀英"})
    line = stream.getvalue()
    record = json.loads(line)
    for secret in ("王建国", "320102195803154210", "13905150001", "李秀英"):
        assert secret not in line
    assert record["name"] == "王*国"
    assert record["nested"]["psn_name"] == "李*英"


def test_an_upstream_lookup_by_card_number_leaves_no_card_number_in_the_log():
    """httpx's own INFO line is the whole URL, and a patient lookup's URL holds the card it looks up."""
    import httpx

    from medkiosk.adapters.his.http import HisHttpAdapter

    stream = io.StringIO()
    configure_logging("INFO", stream=stream)

    def his(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"code": "NOT_FOUND", "message": "无此患者"})

    with HisHttpAdapter("http://his.test", transport=httpx.MockTransport(his)) as adapter:
        assert adapter.find_patient(insurance_card_no="B320000004") is None
    assert "B320000004" not in stream.getvalue()
    assert "HTTP Request" not in stream.getvalue()


def test_a_standard_library_log_line_keeps_its_extra_fields_masked():
    import logging

    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    logging.getLogger("medkiosk.adapters.insurance").warning(
        "insurance timeout", extra={"infno": "2207", "msgid": "H32010000120261126000001", "certno": "320102195803154210"})
    record = json.loads(stream.getvalue())
    assert record["event"] == "insurance timeout"
    assert record["infno"] == "2207" and record["msgid"] == "H32010000120261126000001"
    assert record["certno"] == "3201**********4210"
