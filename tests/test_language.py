import pytest

from bot.language import choose_reply_language, detect, requested_language


@pytest.mark.parametrize("text, expected", [
    ("加班费怎么算", "zh"),
    ("HR不给我签合同", "zh"),
    ("ok谢谢", "zh"),
    ("nghỉ phép năm mấy ngày", "vi"),
    ("hôm nay OT 3 tiếng", "vi"),
    ("toi bi no luong 2 thang", "vi"),
    ("cty k cho nghi", "vi"),
    ("e hoi ti", "vi"),
    ("bhxh dong bao nhieu", "vi"),
    ("my boss didnt pay me", "en"),
    ("how much is overtime pay", "en"),
    ("hello", "en"),
])
def test_detects_the_language(text, expected):
    assert detect(text).language == expected


@pytest.mark.parametrize("text", ["ok", "?", "123", "👍", "...", "  "])
def test_text_without_a_language_has_none(text):
    assert detect(text).language is None


def test_detection_is_deterministic():
    assert {detect("thanks a lot").language for _ in range(20)} == {detect("thanks a lot").language}


def test_reply_language_is_sticky_for_short_or_english_messages():
    assert choose_reply_language("ok", previous="vi") == "vi"
    assert choose_reply_language("123", previous="zh") == "zh"
    assert choose_reply_language("thank you", previous="vi") == "vi"
    assert choose_reply_language("ok", previous=None, default="zh") == "zh"


def test_a_chinese_or_vietnamese_message_switches_the_reply_language():
    assert choose_reply_language("cam on chi", previous="zh") == "vi"
    assert choose_reply_language("谢谢", previous="vi") == "zh"


@pytest.mark.parametrize("text, current, expected", [
    ("能说越南语吗", "zh", "vi"),
    ("noi tieng trung di", "vi", "zh"),
    ("请用中文", "vi", "zh"),
    ("nói tiếng Việt đi", "zh", "vi"),
    ("换个语言", "zh", "vi"),
])
def test_requested_language(text, current, expected):
    assert requested_language(text, current) == expected
