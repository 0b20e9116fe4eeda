import pytest

from medkiosk.domain.regions import PatientCategory, classify, pooling_region

HOSPITAL = "320100"  # 南京市


@pytest.mark.parametrize(
    ("insured", "expected"),
    [
        ("320100", PatientCategory.LOCAL),
        ("320102", PatientCategory.LOCAL),  # a district of the same city pools with it
        ("320200", PatientCategory.SAME_PROVINCE),  # 无锡
        ("340100", PatientCategory.CROSS_PROVINCE),  # 合肥
        ("", PatientCategory.SELF_PAY),
        (None, PatientCategory.SELF_PAY),
    ],
)
def test_patients_are_classified_by_their_insured_region(insured, expected):
    assert classify(insured, HOSPITAL) is expected


def test_a_municipality_is_one_pool():
    assert classify("110105", "110108") is PatientCategory.LOCAL
    assert pooling_region("310115") == "31"


def test_cross_region_covers_both_kinds_of_elsewhere():
    assert PatientCategory.SAME_PROVINCE.cross_region and PatientCategory.CROSS_PROVINCE.cross_region
    assert not PatientCategory.LOCAL.cross_region and not PatientCategory.SELF_PAY.cross_region


def test_a_malformed_region_is_refused_not_guessed():
    with pytest.raises(ValueError):
        classify("32010", HOSPITAL)
