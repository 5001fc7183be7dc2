import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from helpline.handoff import new_reference, parse_consent
from helpline.office_hours import describe_return, office_hours

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(day, hour, minute=0):
    return dt.datetime(2027, 3, day, hour, minute, tzinfo=SHANGHAI)


def test_office_hours_open_and_closed():
    hours = office_hours("11:00-21:00", "Asia/Shanghai", ["2027-03-10"])
    assert hours.is_open(at(9, 11)) and hours.is_open(at(9, 20, 59))
    assert not hours.is_open(at(9, 10, 59)) and not hours.is_open(at(9, 21))
    assert not hours.is_open(at(10, 12))  # a closed day
    assert hours.next_opening(at(9, 22)) == at(11, 11)  # tomorrow is closed: the day after
    assert hours.next_opening(at(9, 8)) == at(9, 11)


def test_the_return_time_as_a_worker_reads_it():
    assert describe_return(at(9, 11), at(9, 8), "zh") == "今天11:00"
    assert describe_return(at(10, 11), at(9, 22), "vi") == "11:00 ngày mai"
    assert describe_return(at(20, 11), at(9, 22), "zh") == "3月20日11:00"
    assert describe_return(at(20, 11), at(9, 22), "vi") == "11:00 ngày 20/3"


def test_vietnam_has_its_own_time_zone():
    hours = office_hours("11:00-21:00", "Asia/Ho_Chi_Minh")
    assert hours.is_open(dt.datetime(2027, 3, 9, 4, 30, tzinfo=dt.timezone.utc))  # 11:30 in Hanoi
    assert not hours.is_open(dt.datetime(2027, 3, 9, 3, 30, tzinfo=dt.timezone.utc))  # 12:30 in Shanghai


def test_bad_office_hours_are_refused():
    with pytest.raises(ValueError):
        office_hours("21:00-11:00", "Asia/Shanghai")


@pytest.mark.parametrize("text, answer", [
    ("1", "yes"), ("好的", "yes"), ("có", "yes"), ("dong y", "yes"),
    ("2", "no"), ("不要", "no"), ("không", "no"), ("ko", "no"),
    ("3", "anonymous"), ("匿名", "anonymous"), ("ẩn danh", "anonymous"), ("khong ghi ten", "anonymous"),
    ("加班费怎么算", None), ("", None),
])
def test_consent_answers(text, answer):
    assert parse_consent(text) == answer


def test_case_references_are_easy_to_read_aloud():
    references = {new_reference() for _ in range(200)}
    assert all(len(r) == 7 and r[3] == "-" and r.replace("-", "").isdigit() for r in references)
    assert len(references) > 190


def test_a_whole_day():
    hours = office_hours("00:00-24:00", "Asia/Shanghai")
    assert hours.is_open(at(9, 0)) and hours.is_open(at(9, 23, 59))
