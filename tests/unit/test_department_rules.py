"""The department configuration (domain/departments.py): the HIS list reshaped for the kiosk, and the
reasons a configuration is refused."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from medkiosk.domain.departments import (
    DepartmentEntry,
    HisDepartment,
    apply,
    default_position,
    seed_entry,
    validate,
    without_codes,
)

HIS = [
    HisDepartment("0101", "心血管内科", "01", "内科", "门诊楼2层A区", "高血压、冠心病。"),
    HisDepartment("0102", "呼吸与危重症医学科", "01", "内科", "门诊楼2层B区", "慢阻肺、哮喘。"),
    HisDepartment("0201", "普通外科", "02", "外科", "门诊楼4层A区", "甲状腺、乳腺。"),
    HisDepartment("0202", "骨科", "02", "外科", "门诊楼4层B区", "骨折、关节。"),
]
DOCTORS = {"0202": ["D020201", "D020202", "D020203"], "0101": ["D010101", "D010102"]}


def shown(groups) -> list[tuple[str, str]]:
    return [(g.name, d.name) for g in groups for d in g.departments]


def test_with_nothing_configured_the_kiosk_shows_the_his_list_as_it_is():
    groups = apply(HIS, [])
    assert shown(groups) == [("内科", "心血管内科"), ("内科", "呼吸与危重症医学科"), ("外科", "普通外科"), ("外科", "骨科")]
    first = groups[0].departments[0]
    assert (first.intro, first.location, first.his_codes, first.doctor_codes, first.key) == (
        "高血压、冠心病。", "门诊楼2层A区", ("0101",), None, None)


def test_a_renamed_department_keeps_the_his_intro_and_location_unless_given_its_own():
    entry = replace(seed_entry(HIS, "0101", "k1"), name="心内科")
    department = apply(HIS, [entry])[0].departments[0]
    assert (department.name, department.intro, department.location) == ("心内科", "高血压、冠心病。", "门诊楼2层A区")
    own = apply(HIS, [replace(entry, intro="胸痛请挂此科", location="2层东")])[0].departments[0]
    assert (own.intro, own.location) == ("胸痛请挂此科", "2层东")


def test_a_merge_shows_several_his_departments_as_one_and_a_hidden_one_not_at_all():
    merged = DepartmentEntry("k1", "内科综合门诊", ("0101", "0102"), position=default_position(0))
    hidden = DepartmentEntry("k2", "普通外科", ("0201",), hidden=True)
    assert shown(apply(HIS, [merged, hidden])) == [("内科", "内科综合门诊"), ("外科", "骨科")]
    assert validate(HIS, [merged, hidden]) == []


def test_a_split_shows_one_his_department_as_several_each_with_its_doctors():
    joints = DepartmentEntry("k1", "关节外科", ("0202",), position=40, doctor_codes=("D020201",))
    spine = DepartmentEntry("k2", "脊柱外科", ("0202",), position=41, doctor_codes=("D020202", "D020203"))
    groups = apply(HIS, [spine, joints])
    assert shown(groups)[-2:] == [("外科", "关节外科"), ("外科", "脊柱外科")]
    assert groups[-1].departments[-1].doctor_codes == ("D020202", "D020203")
    assert validate(HIS, [joints, spine], DOCTORS) == []


def test_reordering_and_regrouping_move_a_department_and_its_group_first():
    moved = DepartmentEntry("k1", "骨科", ("0202",), position=1, group="特色门诊")
    assert shown(apply(HIS, [moved]))[0] == ("特色门诊", "骨科")


def test_codes_the_his_no_longer_lists_are_skipped_at_the_kiosk_but_refused_when_saving():
    gone = DepartmentEntry("k1", "老年科", ("0999",))
    assert shown(apply(HIS, [gone])) == shown(apply(HIS, []))
    assert validate(HIS, [gone]) == ["科室“老年科”对应的 HIS 科室代码 0999 在 HIS 中不存在"]


def test_a_his_code_mapped_twice_without_a_doctor_split_is_refused():
    one = DepartmentEntry("k1", "心内科", ("0101",))
    two = DepartmentEntry("k2", "心肺门诊", ("0101", "0102"))
    assert validate(HIS, [one, two]) == [("HIS 科室 0101（心血管内科）同时对应到“心内科”、“心肺门诊”："
                                          "一个 HIS 科室只能对应一个自助机科室，拆分时须为每个科室选定各自的医生")]


def test_a_split_whose_doctors_overlap_or_are_empty_or_work_elsewhere_is_refused():
    joints = DepartmentEntry("k1", "关节外科", ("0202",), doctor_codes=("D020201", "D020202"))
    spine = DepartmentEntry("k2", "脊柱外科", ("0202",), doctor_codes=("D020202",))
    assert validate(HIS, [joints, spine]) == ["拆分 HIS 科室 0202（骨科）时，医生 D020202 同时分在“关节外科”和“脊柱外科”"]
    empty = replace(spine, doctor_codes=())
    assert "科室“脊柱外科”的医生范围为空：请至少选择一位医生，或不限定医生" in validate(HIS, [joints, empty])
    stranger = replace(spine, doctor_codes=("D010101",))
    assert validate(HIS, [replace(joints, doctor_codes=("D020201",)), stranger], DOCTORS) == [
        "科室“脊柱外科”选择的医生 D010101 不在其对应的 HIS 科室出诊"]


def test_an_empty_name_no_his_code_and_two_departments_of_one_name_in_a_group_are_refused():
    assert validate(HIS, [DepartmentEntry("k1", "", ("0101",))]) == ["对应 HIS 科室 0101 的科室的名称不能为空"]
    assert validate(HIS, [DepartmentEntry("k1", "空科室", ())]) == ["科室“空科室”未对应任何 HIS 科室"]
    assert validate(HIS, [DepartmentEntry("k1", "骨科", ("0201",))]) == [
        "分组“外科”中有多个科室都叫“骨科”，患者无法区分"]
    assert validate(HIS, [DepartmentEntry("k1", "科" * 41, ("0101",))]) == [f"科室“{'科' * 41}”的名称最长 40 字"]


def test_a_merge_takes_its_codes_out_of_the_departments_that_showed_them():
    both = DepartmentEntry("k1", "心肺门诊", ("0101", "0102"))
    only = DepartmentEntry("k2", "外科", ("0201",))
    assert without_codes([both, only], {"0102", "0201"}) == [replace(both, his_codes=("0101",))]


def test_json_round_trip_keeps_an_entry_and_tidies_what_was_typed():
    entry = DepartmentEntry("k1", "关节外科", ("0202",), 5, False, "外科", ("D020201",), "简介", "4层")
    assert DepartmentEntry.from_json(entry.to_json()) == entry
    typed = DepartmentEntry.from_json({"key": "k2", "name": " 心内科 ", "his_codes": ["0101", " 0101", ""]})
    assert (typed.name, typed.his_codes, typed.doctor_codes) == ("心内科", ("0101",), None)


# --- properties --------------------------------------------------------------------------------------------
@st.composite
def his_and_configuration(draw):
    """A HIS list and a configuration valid by construction: each HIS code is left alone, hidden, merged
    into another entry, renamed, or split between doctors."""
    count = draw(st.integers(1, 12))
    his = [HisDepartment(f"{i:04d}", f"科{i}", f"g{i % 3}", f"组{i % 3}") for i in range(count)]
    entries: list[DepartmentEntry] = []
    merged: DepartmentEntry | None = None
    for index, department in enumerate(his):
        fate = draw(st.sampled_from(["alone", "hidden", "merged", "renamed", "split"]))
        position = draw(st.integers(0, 200))
        if fate == "hidden":
            entries.append(DepartmentEntry(f"h{index}", department.name, (department.code,), position, True))
        elif fate == "merged":
            if merged is None:
                merged = DepartmentEntry(f"m{index}", f"合并{index}", (department.code,), position)
                entries.append(merged)
            else:
                entries[entries.index(merged)] = merged = replace(merged, his_codes=(*merged.his_codes, department.code))
        elif fate == "renamed":
            entries.append(DepartmentEntry(f"r{index}", f"改名{index}", (department.code,), position))
        elif fate == "split":
            parts = draw(st.integers(2, 3))
            for part in range(parts):
                entries.append(DepartmentEntry(f"s{index}-{part}", f"拆分{index}-{part}", (department.code,),
                                               position + part, doctor_codes=(f"D{department.code}{part}",)))
    return his, entries


@settings(max_examples=200, deadline=None)
@given(his_and_configuration(), st.randoms())
def test_every_visible_his_department_is_reachable_exactly_once_and_order_does_not_depend_on_entry_order(
        case, rng):
    his, entries = case
    assert validate(his, entries) == []
    groups = apply(his, entries)
    shuffled = list(entries)
    rng.shuffle(shuffled)
    assert apply(his, shuffled) == groups  # stable: the same tree whatever order the rows came in
    hidden = {c for e in entries if e.hidden for c in e.his_codes}
    reached: dict[str, list] = {}
    for group in groups:
        for department in group.departments:
            for code in department.his_codes:
                reached.setdefault(code, []).append(department.doctor_codes)
    assert set(reached) == {d.code for d in his} - hidden
    for code, ways in reached.items():
        if len(ways) > 1:  # a split: every way has its own doctors, none shared
            doctors = [d for way in ways for d in way]
            assert None not in ways and len(doctors) == len(set(doctors))
    for group in groups:  # within a group, by position
        inside = [d.position for d in group.departments]
        assert inside == sorted(inside)


@settings(max_examples=100, deadline=None)
@given(his_and_configuration(), st.data())
def test_mapping_a_code_a_second_time_is_always_refused(case, data):
    his, entries = case
    whole = [e for e in entries if e.doctor_codes is None]
    if not whole:
        return
    taken = data.draw(st.sampled_from(whole)).his_codes[0]
    extra = DepartmentEntry("x", "重复科室", (taken,))
    assert any("同时对应到" in p for p in validate(his, [*entries, extra]))
