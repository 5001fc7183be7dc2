
import pytest
import yaml

from bot import urgency

DEV_SET = urgency.EXAMPLES_DIR / "first_sets.yml"


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
    ("拉长抄起凳子就砸过来了", "violence"),
    ("冷库那边漏氨气了", "fire_chemical"),
    ("co be cung to bi may cuon toc vao", "serious_injury_illness"),
    ("中介借的路费利滚利，根本走不了", "documents_forced_labour"),
])
def test_each_category_is_caught_in_both_languages(text, category):
    assert urgency.detect(text) == urgency.Urgency(True, category, "patterns")


@pytest.mark.parametrize("text", [
    "累死了", "热死我了", "笑死我了", "想死你们了，终于放假了", "mệt chết đi được", "nong muon chet",
    "加班费怎么算", "工伤怎么认定", "公司可以扣身份证吗", "bảo hộ lao động là gì",
    "cty co duoc giu cccd cua cong nhan k", "去年手被机器夹过，早就好了，现在还能申请工伤吗",
])
def test_hyperbole_general_questions_and_old_events_are_not_urgent(text):
    assert not urgency.detect(text).urgent


@pytest.mark.parametrize("text, silenced", [
    ("公司可以扣身份证吗", True),  # the words of a crisis, asked in general
    ("去年手被机器夹过，早就好了，现在还能申请工伤吗", True),  # over and done
    ("刷抖音看到有个厂着火了", True),  # far away
    ("累死了", False),  # exaggeration is taken out before the categories are matched
    ("加班费怎么算", False),
])
def test_crisis_words_in_a_silencing_context_are_marked_silenced(text, silenced):
    assert urgency.detect(text) == (urgency.SILENCED if silenced else urgency.NOT_URGENT)


@pytest.mark.parametrize("text, urgent", [
    # folding makes "từ từ" (slowly) and "tự tử", "tủi thân" and "túi than" (charcoal) one spelling
    ("để từ từ rồi tính", False), ("de tu tu roi tinh", False), ("e muốn tự tử", True), ("muon tu tu cho xong", True),
    ("sinh nhật một mình, tủi thân ghê", False), ("mua 2 tui than voi bang keo roi", True),
    # taking or buying medicine is ordinary; a whole strip or saving it up is not
    ("phòng y tế cho uống thuốc rồi", False), ("mua thuốc ở nhà thuốc có được bảo hiểm trả không", False),
    ("uong het 2 vi thuoc ngu roi", True), ("gom du thuoc roi", True),
])
def test_words_folding_makes_alike_are_told_apart(text, urgent):
    assert urgency.detect(text).urgent is urgent


@pytest.mark.parametrize("text, urgent", [
    # someone else's suicide in the news, a film or a dream is not the worker's crisis...
    ("抖音上刷到有人在厂里跳楼 评论说是被欠薪 这种事多吗", False),
    ("doc bao thay cong nhan o binh duong nhay lau, toi nghiep qua", False),
    ("从二楼跳下去了… 是在梦里 醒来一身汗", False),
    ("三年前失恋那阵子觉得活着没意思 后来慢慢走出来了 现在结婚了", False),
    # ...unless the worker wants the same now
    ("看新闻说又有人跳楼了 我也想跳", True),
    ("xem phim thay nhan vat tu tu, e cung muon vay", True),
    # said laughing is exaggeration; "not a joke" is not
    ("今天质检说我们这批全返工 死了算了哈哈", False),
    ("不想活了 真的 不是哈哈 欠了网贷三万", True),
    ("k muon song nua that, k phai haha", True),
    ("luong thang nay tre 3 ngay, chu tro doi tien nha muon chet luon haha", False),
])
def test_self_harm_told_of_elsewhere_or_in_jest(text, urgent):
    assert urgency.detect(text).urgent is urgent


def test_self_harm_is_never_silenced_by_the_past_or_general_markers():
    assert urgency.detect("以前也想过，现在还是不想活了").category == "self_harm"
    assert urgency.detect("hoi truoc e cung vay, gio e muon chet").category == "self_harm"


def test_development_set_recall_and_false_alarms():
    """The first labelled sets, the ones the patterns were first tuned on."""
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
        "elsewhere: {zh: [a], vi: [a]}\nown_wish: {zh: [a], vi: [a]}\n"
        "categories:\n  self_harm:\n    zh: ['(unclosed']\n    vi: [a]\n",
        encoding="utf-8",
    )
    with pytest.raises(urgency.UrgencyPatternError, match="self_harm.zh"):
        urgency._load(bad)


PATTERN_HIT = urgency.Urgency(True, "violence", "patterns")
SELF_HARM_HIT = urgency.Urgency(True, "self_harm", "patterns")
NO_HIT = urgency.NOT_URGENT


def test_a_self_harm_pattern_always_stands():
    # "nhiều đêm e nghĩ hay là treo cổ cho xong" inside a question about deductions got 0.002
    assert urgency.decide(SELF_HARM_HIT, 0.0, urgency.Thresholds(confirm=0.5, alone=0.9, silenced=0.9))
    assert urgency.decide(SELF_HARM_HIT, 0.002, urgency.Thresholds(confirm=0.5, alone=0.9, silenced=0.9))
    assert not urgency.decide(PATTERN_HIT, 0.002, urgency.Thresholds(confirm=0.5, alone=0.9, silenced=0.9))


@pytest.mark.parametrize("pattern, probability, urgent", [
    (PATTERN_HIT, 0.06, True),  # a pattern stands unless the classifier is nearly sure it is wrong
    (PATTERN_HIT, 0.04, False),
    (NO_HIT, 0.69, False),  # alone, the classifier needs more
    (NO_HIT, 0.70, True),
    (urgency.SILENCED, 0.89, False),  # crisis words the patterns silenced: the classifier must be surer
    (urgency.SILENCED, 0.90, True),
])
def test_a_pattern_needs_less_from_the_classifier_than_the_classifier_alone(pattern, probability, urgent):
    assert urgency.decide(pattern, probability, urgency.Thresholds(confirm=0.05, alone=0.7, silenced=0.9)) is urgent


def test_thresholds_are_the_least_alarming_that_reach_the_recall_target():
    # Four crises (one only the classifier sees, at 0.62) and four calm messages (one a pattern hit
    # the classifier doubts, at 0.01; one the classifier likes, at 0.45).
    patterns = [PATTERN_HIT, PATTERN_HIT, NO_HIT, SELF_HARM_HIT, PATTERN_HIT, NO_HIT, NO_HIT, NO_HIT]
    probabilities = [0.9, 0.3, 0.62, 0.0, 0.01, 0.45, 0.1, 0.05]
    urgent = [True, True, True, True, False, False, False, False]
    choice = urgency.choose_thresholds(patterns, probabilities, urgent, recall_target=1.0)
    assert (choice.recall, choice.false_alarm_rate, choice.target) == (1.0, 0.0, 1.0)
    assert choice.thresholds.confirm > 0.01 and choice.thresholds.confirm <= 0.3
    assert 0.45 < choice.thresholds.alone <= 0.62


def test_the_silenced_threshold_keeps_calm_messages_with_silenced_crisis_words_quiet():
    # Two crises only the classifier sees (0.5, 0.7); two calm messages whose crisis words the
    # patterns silenced ("新闻说…着火了") that the classifier likes (0.55, 0.6), and one it does not.
    patterns = [NO_HIT, NO_HIT, urgency.SILENCED, urgency.SILENCED, NO_HIT]
    probabilities = [0.5, 0.7, 0.55, 0.6, 0.1]
    urgent = [True, True, False, False, False]
    choice = urgency.choose_thresholds(patterns, probabilities, urgent, recall_target=1.0)
    assert (choice.recall, choice.false_alarm_rate) == (1.0, 0.0)
    assert 0.1 < choice.thresholds.alone <= 0.5 < 0.6 < choice.thresholds.silenced


def test_when_no_thresholds_reach_the_target_the_best_recall_is_kept_at_its_most_sensitive():
    choice = urgency.choose_thresholds([NO_HIT, NO_HIT, NO_HIT], [0.05, 0.5, 0.02], [True, True, False], recall_target=1.0)
    assert choice.recall == 0.5
    assert (choice.thresholds.confirm, choice.thresholds.alone) == (min(urgency.CONFIRM_GRID), min(urgency.ALONE_GRID))


def test_examples_under_calibration_are_marked(tmp_path):
    (tmp_path / "calibration").mkdir()
    (tmp_path / "a.yml").write_text("- {text: 累死了, language: zh, urgent: false}\n", encoding="utf-8")
    (tmp_path / "calibration" / "b.yml").write_text(
        "- {text: 他打我, language: zh, urgent: true, category: violence}\n", encoding="utf-8"
    )
    assert urgency.labelled_examples(tmp_path) == [
        urgency.Example("累死了", "zh", None, False),
        urgency.Example("他打我", "zh", "violence", True),
    ]


def test_every_labelled_example_is_well_formed():
    examples = urgency.labelled_examples()
    assert {e.language for e in examples} == {"zh", "vi"}
    assert {e.category for e in examples} - {None} == set(urgency.CATEGORIES)
    assert any(e.calibration for e in examples) and not all(e.calibration for e in examples)


def test_the_trained_model_is_saved_and_loaded_with_its_thresholds(tmp_path):
    crises = {"他打我": "violence", "他又打我了": "violence", "车间着火了": "fire_chemical",
              "quan doc danh em": "violence", "xuong chay roi": "fire_chemical", "bao ve danh toi": "violence"}
    calm = ["几点下班", "工资几号发", "年假几天", "tang ca bao nhieu", "luong bao gio tra", "nghi phep may ngay"]
    examples = [urgency.Example(t, urgency.script(t), c, True) for t, c in crises.items()]
    examples += [urgency.Example(t, urgency.script(t), None, True) for t in calm]
    model = urgency.UrgencyModel.train(examples, ordinary=["你好", "xin chao"], folds=2)
    path = tmp_path / "urgency.skops"
    model.save(path)
    loaded = urgency.UrgencyModel.load(path)
    assert loaded.choices == model.choices and set(loaded.choices) == {"zh", "vi"}
    assert loaded.probability("他打我") == pytest.approx(model.probability("他打我"))
    assert loaded.category("他打我") == "violence"
