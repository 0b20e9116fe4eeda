"""Departments as the hospital configures them for the kiosk (科室配置): the HIS's list, reshaped.

The HIS owns the departments; the configuration only says how the kiosk shows them. A kiosk
department (``DepartmentEntry``) maps one or more HIS department codes (several: a merge), may
show only some of their doctors (one HIS code in several entries, each with its own doctors: a
split), and carries its own name, group, order, intro and location. HIS departments that no entry
mentions are shown as the HIS names them, so a department the HIS adds appears without anyone
configuring it. Hidden entries keep their HIS codes out of the kiosk.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

NAME_MAX, GROUP_MAX, LOCATION_MAX, INTRO_MAX = 40, 40, 100, 500
POSITION_STEP = 10


@dataclass(frozen=True)
class HisDepartment:
    """A clinical department as the HIS lists it, with the top-level group it belongs to."""

    code: str
    name: str
    group_code: str = ""
    group_name: str = ""
    location: str = ""
    intro: str = ""


@dataclass(frozen=True)
class DepartmentEntry:
    """One kiosk department as the hospital configured it."""

    key: str
    """Stable across versions of the configuration: what the staff page edits by."""
    name: str
    his_codes: tuple[str, ...]
    position: int = 0
    hidden: bool = False
    group: str = ""
    """Empty: the HIS group of its first HIS code."""
    doctor_codes: tuple[str, ...] | None = None
    """None: every doctor of its HIS codes; else only these (a split)."""
    intro: str = ""
    """Empty: the HIS intro of its first HIS code."""
    location: str = ""
    """Empty: the HIS location of its first HIS code."""

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "his_codes": list(self.his_codes), "position": self.position,
                "hidden": self.hidden, "group": self.group,
                "doctor_codes": None if self.doctor_codes is None else list(self.doctor_codes),
                "intro": self.intro, "location": self.location}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DepartmentEntry:
        doctors = data.get("doctor_codes")
        return cls(key=str(data["key"]), name=str(data.get("name", "")).strip(),
                   his_codes=_unique(str(c).strip() for c in data.get("his_codes") or ()),
                   position=int(data.get("position", 0)), hidden=bool(data.get("hidden", False)),
                   group=str(data.get("group", "")).strip(),
                   doctor_codes=None if doctors is None else _unique(str(c).strip() for c in doctors),
                   intro=str(data.get("intro", "")).strip(), location=str(data.get("location", "")).strip())


@dataclass(frozen=True)
class KioskDepartment:
    """A department as a kiosk shows it."""

    name: str
    group: str
    intro: str
    location: str
    his_codes: tuple[str, ...]
    doctor_codes: tuple[str, ...] | None
    position: int
    key: str | None
    """The entry it comes from; None for a HIS department nobody configured."""


@dataclass(frozen=True)
class KioskGroup:
    name: str
    departments: tuple[KioskDepartment, ...]


def _unique(codes) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c for c in codes if c))


def default_position(his_index: int) -> int:
    """Where an unconfigured HIS department stands: its place in the HIS list, with room between."""
    return (his_index + 1) * POSITION_STEP


def seed_entry(his: Sequence[HisDepartment], code: str, key: str) -> DepartmentEntry:
    """An entry that shows HIS department ``code`` exactly as it is shown unconfigured (the start of an edit)."""
    index = next(i for i, d in enumerate(his) if d.code == code)
    department = his[index]
    return DepartmentEntry(key=key, name=department.name, his_codes=(code,), position=default_position(index),
                           group=department.group_name)


def apply(his: Sequence[HisDepartment], entries: Sequence[DepartmentEntry]) -> list[KioskGroup]:
    """The tree a kiosk shows: groups in the order of their first department, departments by position
    (ties by their place in the HIS list). Codes the HIS no longer lists are skipped, not refused:
    the HIS may drop a department after a publish, and the kiosk must still show the rest."""
    known = {d.code: (i, d) for i, d in enumerate(his)}
    mentioned: set[str] = set()
    shown: list[tuple[tuple, KioskDepartment]] = []
    for entry in entries:
        mentioned.update(entry.his_codes)
        codes = tuple(c for c in entry.his_codes if c in known)
        if entry.hidden or not codes:
            continue
        first = known[codes[0]][1]
        view = KioskDepartment(name=entry.name, group=entry.group or first.group_name,
                               intro=entry.intro or first.intro, location=entry.location or first.location,
                               his_codes=codes, doctor_codes=entry.doctor_codes, position=entry.position,
                               key=entry.key)
        shown.append(((entry.position, min(known[c][0] for c in codes), entry.name, entry.key), view))
    for index, department in enumerate(his):
        if department.code in mentioned:
            continue
        view = KioskDepartment(name=department.name, group=department.group_name, intro=department.intro,
                               location=department.location, his_codes=(department.code,), doctor_codes=None,
                               position=default_position(index), key=None)
        shown.append(((view.position, index, department.name, ""), view))
    shown.sort(key=lambda item: item[0])
    groups: dict[str, list[KioskDepartment]] = {}
    for _, view in shown:
        groups.setdefault(view.group, []).append(view)
    return [KioskGroup(name, tuple(departments)) for name, departments in groups.items()]


def validate(his: Sequence[HisDepartment], entries: Sequence[DepartmentEntry],
             doctors: Mapping[str, Collection[str]] | None = None) -> list[str]:
    """What is wrong with a configuration, in words for the IT centre's staff; empty when it can be published.

    ``doctors``: each HIS code's doctor codes, to check that a chosen doctor works in the department
    (not checked for codes it does not name)."""
    known = {d.code: d for d in his}
    problems: list[str] = []
    by_code: dict[str, list[DepartmentEntry]] = {}
    for entry in entries:
        label = f"科室“{entry.name}”" if entry.name else f"对应 HIS 科室 {'、'.join(entry.his_codes) or '（无）'} 的科室"
        if not entry.name:
            problems.append(f"{label}的名称不能为空")
        if len(entry.name) > NAME_MAX:
            problems.append(f"{label}的名称最长 {NAME_MAX} 字")
        if len(entry.group) > GROUP_MAX:
            problems.append(f"{label}的分组名称最长 {GROUP_MAX} 字")
        if len(entry.location) > LOCATION_MAX:
            problems.append(f"{label}的位置最长 {LOCATION_MAX} 字")
        if len(entry.intro) > INTRO_MAX:
            problems.append(f"{label}的简介最长 {INTRO_MAX} 字")
        if not entry.his_codes:
            problems.append(f"{label}未对应任何 HIS 科室")
        for code in entry.his_codes:
            if code not in known:
                problems.append(f"{label}对应的 HIS 科室代码 {code} 在 HIS 中不存在")
            by_code.setdefault(code, []).append(entry)
        if entry.doctor_codes is not None:
            if not entry.doctor_codes:
                problems.append(f"{label}的医生范围为空：请至少选择一位医生，或不限定医生")
            elif doctors is not None:
                allowed = {d for c in entry.his_codes if c in doctors for d in doctors[c]}
                checked = [c for c in entry.his_codes if c in doctors]
                strangers = [d for d in entry.doctor_codes if checked and d not in allowed]
                if strangers:
                    problems.append(f"{label}选择的医生 {'、'.join(strangers)} 不在其对应的 HIS 科室出诊")
    for code, sharing in by_code.items():
        if len(sharing) < 2:
            continue
        names = "、".join(f"“{e.name}”" for e in sharing)
        his_name = f"（{known[code].name}）" if code in known else ""
        if any(e.doctor_codes is None for e in sharing):
            problems.append(f"HIS 科室 {code}{his_name}同时对应到{names}：一个 HIS 科室只能对应一个自助机科室，"
                            f"拆分时须为每个科室选定各自的医生")
            continue
        seen: dict[str, str] = {}
        for entry in sharing:
            for doctor in entry.doctor_codes or ():
                if doctor in seen and seen[doctor] != entry.name:
                    problems.append(f"拆分 HIS 科室 {code}{his_name}时，医生 {doctor} 同时分在“{seen[doctor]}”和“{entry.name}”")
                seen.setdefault(doctor, entry.name)
    for group in apply(his, entries):
        names = [d.name for d in group.departments]
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"分组“{group.name}”中有多个科室都叫“{name}”，患者无法区分")
    return list(dict.fromkeys(problems))


def without_codes(entries: Sequence[DepartmentEntry], codes: Collection[str]) -> list[DepartmentEntry]:
    """The entries with ``codes`` taken out (a merge or a split takes them over); entries left with
    no HIS code are dropped."""
    kept = []
    for entry in entries:
        remaining = tuple(c for c in entry.his_codes if c not in codes)
        if remaining == entry.his_codes:
            kept.append(entry)
        elif remaining:
            kept.append(replace(entry, his_codes=remaining))
    return kept
