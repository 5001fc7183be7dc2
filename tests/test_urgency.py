
import pytest
import yaml

from bot import urgency

DEV_SET = urgency.EXAMPLES_FILE


@pytest.mark.parametrize("text, category", [
    ("我不想活了", "self_harm"),
    ("活着没意思，想跳搂", "self_harm"),
    ("toi k muon song nua", "self_harm"),
    ("chắc em tự tữ mất", "self_harm"),
    ("组长打我，还说再告状就弄死我", "violence"),
    ("quan doc doa giet em", "violence"),
    ("我手指被冲床压断了，血止不住", "serious_injury_illness"),
    ("chong e bi may cat dut 2 ngon tay", "serious_injury_illness"),
    ("宿舍着火了，门被锁了", "fire_chemical"),
    ("hoa chat ro ri, ca xuong chong mat", "fire_chemical"),
    ("保安把我们锁在宿舍不让出去", "detention"),
    ("cty khoa cong khong cho cong nhan ra", "detention"),
    ("中介扣了我的护照不还", "documents_forced_labour"),
    ("quản đốc giữ CMND của em không trả", "documents_forced_labour"),
    ("组长老是摸我，还叫我去他房间", "sexual_harassment"),
    ("to truong hay sam so em", "sexual_harassment"),
    ("我表弟才14岁在厂里上夜班", "child_labour"),
    ("em 14t, cty bat lam ca dem", "child_labour"),
    ("我下礼拜就走了，老板说走的人工资一分不给", "wages_withheld_leaving"),
    ("sep noi neu e nghi thi k tra luong, mai e nghi roi", "wages_withheld_leaving"),
])
def test_each_category_is_caught_in_both_languages(text, category):
    assert urgency.detect(text) == urgency.Urgency(True, category, "patterns")


@pytest.mark.parametrize("text", [
    "累死了", "热死我了", "笑死我了", "想死你们了，终于放假了", "mệt chết đi được", "nong muon chet",
    "加班费怎么算", "工伤怎么认定", "公司可以扣身份证吗", "bảo hộ lao động là gì",
    "cty co duoc giu cccd cua cong nhan k", "去年手被机器夹过，早就好了，现在还能申请工伤吗",
])
def test_hyperbole_general_questions_and_old_events_are_not_urgent(text):
    assert urgency.detect(text) == urgency.NOT_URGENT


def test_self_harm_is_never_silenced_by_the_past_or_general_markers():
    assert urgency.detect("以前也想过，现在还是不想活了").category == "self_harm"
    assert urgency.detect("hoi truoc e cung vay, gio e muon chet").category == "self_harm"


def test_development_set_recall_and_false_alarms():
    """The labelled examples (bot/urgency_examples.yml) the patterns were tuned on."""
    cases = yaml.safe_load(DEV_SET.read_text(encoding="utf-8"))
    urgent = [c for c in cases if c["urgent"]]
    calm = [c for c in cases if not c["urgent"]]
    missed = [c["text"] for c in urgent if not urgency.detect(c["text"]).urgent]
    alarms = [c["text"] for c in calm if urgency.detect(c["text"]).urgent]
    assert len(urgent) >= 300 and len(calm) >= 200
    assert len(missed) / len(urgent) <= 0.01, missed
    assert len(alarms) / len(calm) <= 0.05, alarms


def test_a_broken_pattern_file_is_refused(tmp_path):
    bad = tmp_path / "urgency.yml"
    bad.write_text(
        "hyperbole: {zh: [a], vi: [a]}\nresolved: {zh: [a], vi: [a]}\ngeneral: {zh: [a], vi: [a]}\n"
        "hypothetical: {zh: [a], vi: [a]}\nfirst_person: {zh: [a], vi: [a]}\n"
        "categories:\n  self_harm:\n    zh: ['(unclosed']\n    vi: [a]\n",
        encoding="utf-8",
    )
    with pytest.raises(urgency.UrgencyPatternError, match="self_harm.zh"):
        urgency._load(bad)
