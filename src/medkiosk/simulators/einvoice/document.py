"""The e-invoice's PDF, laid out like a medical-charges e-invoice (医疗收费电子票据) on A4.

A red-letter invoice shows 红冲 and its amounts negative; a voided blue one says it was voided
and by which red invoice. Every page says it came from the simulator, so a training print can
never pass for a real invoice.
"""

from __future__ import annotations

from decimal import Decimal

from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, Spacer

from medkiosk.adapters.einvoice.port import InvoiceKind, InvoiceStatus, PayerIdType
from medkiosk.documents.pdf import cjk_font, render_a4, ruled_table, styles
from medkiosk.simulators.einvoice.records import InvoiceRecord
from medkiosk.simulators.personas import HOSPITAL_NAME

TITLE = "医疗收费电子票据"
CROSS_REGION = "异地医保结算"
RED_LETTER = "红冲"
PAYER_ID_TYPES = {
    PayerIdType.RESIDENT_ID: "居民身份证",
    PayerIdType.PASSPORT: "护照",
    PayerIdType.TRAVEL_PERMIT: "港澳台居民来往内地通行证",
    PayerIdType.OTHER: "其他",
}
_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_SECTION_UNITS = ("", "万", "亿", "万亿")
_GAP = "&nbsp;" * 4  # a paragraph collapses plain spaces


def amount_in_words(value: Decimal) -> str:
    """The amount in Chinese capital numerals as cheques and invoices write it: 壹佰捌拾元伍角整, 壹元零伍分."""
    cents = int((abs(value) * 100).to_integral_value())
    yuan, rest = divmod(cents, 100)
    jiao, fen = divmod(rest, 10)
    if cents == 0:
        return "零元整"
    words = _integer_words(yuan) + "元" if yuan else ""
    if jiao:
        words += _DIGITS[jiao] + "角"
    elif fen and yuan:
        words += "零"
    words += _DIGITS[fen] + "分" if fen else "整"
    return ("负" if value < 0 else "") + words


def _integer_words(number: int) -> str:
    sections = []
    while number:
        number, section = divmod(number, 10_000)
        sections.append(section)
    words, zero_pending = "", False
    for index in reversed(range(len(sections))):
        section = sections[index]
        if section == 0:
            zero_pending = bool(words)
            continue
        if words and (zero_pending or section < 1000):
            words += "零"
        words += _section_words(section) + _SECTION_UNITS[index]
        zero_pending = False
    return words


def _section_words(section: int) -> str:
    words, zero_pending = "", False
    for power, unit in ((3, "仟"), (2, "佰"), (1, "拾"), (0, "")):
        digit = section // 10**power % 10
        if digit == 0:
            zero_pending = bool(words)
            continue
        if zero_pending:
            words += "零"
            zero_pending = False
        words += _DIGITS[digit] + unit
    return words


def render_invoice(invoice: InvoiceRecord, original: InvoiceRecord | None = None) -> bytes:
    """The invoice's PDF; ``original`` is the blue invoice a red one voids (for its code and number)."""
    font = cjk_font()
    s = styles(font)
    red = invoice.kind is InvoiceKind.RED
    sign = Decimal(-1) if red else Decimal(1)

    def money(value: Decimal) -> str:
        return f"{sign * value:.2f}"

    story: list = [Paragraph(TITLE, s["title"])]
    if red:
        story.append(Paragraph(f"（{RED_LETTER}）红字票据", s["stamp"]))
    story.append(Paragraph(f"票据代码：{invoice.invoice_code}{_GAP}票据号码：{invoice.invoice_no}{_GAP}"
                           f"校验码：{invoice.check_code}{_GAP}开票日期：{invoice.issued_at:%Y-%m-%d %H:%M:%S}",
                           s["subtitle"]))
    header = [
        ["交款人", invoice.payer_name, "证件类型", PAYER_ID_TYPES[invoice.payer_id_type]],
        ["业务流水号", invoice.bill_no, "医保类型", invoice.insurance_type or "自费"],
    ]
    story.append(ruled_table(header, [28 * mm, 58 * mm, 28 * mm, 60 * mm], font, header_rows=0))
    if invoice.cross_region_note:
        note = invoice.cross_region_note
        line = note if note.startswith(CROSS_REGION) else f"{CROSS_REGION}：{note}"
        story += [Spacer(1, 3 * mm), Paragraph(line, s["body"])]
    story.append(Spacer(1, 4 * mm))

    rows = [["项目名称", "类别", "金额（元）"]]
    rows += [[Paragraph(item.name, s["cell"]), item.category, money(item.amount)] for item in invoice.items]
    story.append(ruled_table(rows, [104 * mm, 36 * mm, 34 * mm], font, right_columns=[2]))
    story.append(Spacer(1, 4 * mm))

    totals = [
        ["合计（大写）", amount_in_words(sign * invoice.total), "合计（小写）", f"￥{money(invoice.total)}"],
        ["医保统筹基金支付", money(invoice.fund), "个人账户支付", money(invoice.account)],
        ["个人现金支付", money(invoice.cash), "", ""],
    ]
    story.append(ruled_table(totals, [36 * mm, 56 * mm, 32 * mm, 50 * mm], font, header_rows=0,
                             right_columns=[1, 3]))
    story.append(Spacer(1, 5 * mm))

    if red:
        blue = f"票据代码 {original.invoice_code} 票据号码 {original.invoice_no}" if original else \
            f"票据号码 {invoice.original_invoice_no}"
        story.append(Paragraph(f"{RED_LETTER}：本票据冲销原{blue}。原因：{invoice.void_reason or '—'}", s["body"]))
    elif invoice.status is InvoiceStatus.VOIDED:
        story.append(Paragraph(f"已{RED_LETTER}作废", s["stamp"]))
        story.append(Paragraph(f"本票据已于{invoice.voided_at:%Y-%m-%d %H:%M:%S}被红字票据 {invoice.red_invoice_no} "
                               f"冲销。原因：{invoice.void_reason or '—'}", s["body"]))
    story += [
        Spacer(1, 8 * mm),
        Paragraph(f"收款单位（章）：{HOSPITAL_NAME}{_GAP}收款人：自助终端{_GAP}复核人：—", s["body"]),
        Spacer(1, 4 * mm),
        Paragraph("本票据由 medkiosk 财政电子票据平台模拟器生成，仅供测试与培训，不作报销凭证。", s["small"]),
    ]
    return render_a4(story, title=f"{TITLE} {invoice.invoice_code}-{invoice.invoice_no}", author=HOSPITAL_NAME,
                     subject=RED_LETTER if red else TITLE)
