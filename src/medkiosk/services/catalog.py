"""The service tiles a kiosk offers, by terminal type. Tiles not built yet say 即将开放."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from medkiosk.settings import TerminalType


@dataclass(frozen=True)
class ServiceTile:
    key: str
    name: str
    hint: str
    available: bool = False
    needs_patient: bool = True

    def to_json(self) -> dict:
        data = asdict(self)
        data["status_label"] = "" if self.available else "即将开放"
        return data


OUTPATIENT_TILES = (
    ServiceTile("register", "当日挂号", "选科室、选医生、取号", available=True),
    ServiceTile("appointment_pickup", "预约取号", "取已在手机或电话预约的号", available=True),
    ServiceTile("payment", "门诊缴费", "缴纳处方、检查、检验费用", available=True),
    ServiceTile("check_in", "报到", "就诊前报到排队", available=True),
    ServiceTile("exam_booking", "检查预约", "CT、核磁、超声、心电图", available=True),
    ServiceTile("reports", "报告打印", "打印检验、检查报告", available=True),
    ServiceTile("reprint", "补打单据", "补打检查申请单、处方底方", available=True),
    ServiceTile("queries", "费用查询", "查询费用明细与电子发票"),
)

WARD_TILES = (
    ServiceTile("inpatient_deposit", "预交金缴纳", "住院押金充值"),
    ServiceTile("inpatient_bill", "住院费用查询", "每日清单与费用明细"),
    ServiceTile("discharge_settlement", "出院结算", "出院手续与医保结算"),
    ServiceTile("reports", "报告打印", "打印检验、检查报告"),
)


def tiles_for(terminal_type: TerminalType) -> list[dict]:
    tiles = WARD_TILES if terminal_type is TerminalType.WARD else OUTPATIENT_TILES
    return [tile.to_json() for tile in tiles]
