from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.normalize import fold, normalized, word_list
from bot.tokenizer import HelplineTokenizer


def tokenize(text):
    tokenizer = HelplineTokenizer(HelplineTokenizer.get_default_config())
    return tokenizer.tokenize(Message(data={TEXT: text}), TEXT)


def test_each_chinese_character_is_a_token():
    assert [t.text for t in tokenize("加班费怎么算")] == list("加班费怎么算")


def test_chinese_with_latin_words_and_digits():
    assert [t.text for t in tokenize("HR不给我签合同,干了2个月")] == ["hr", "不", "给", "我", "签", "合", "同", "干", "了", "2", "个", "月"]


def test_vietnamese_is_folded_so_diacritics_do_not_matter():
    with_marks = [t.text for t in tokenize("Tôi bị nợ lương 2 tháng")]
    without = [t.text for t in tokenize("toi bi no luong 2 thang")]
    assert with_marks == without == ["toi", "bi", "no", "luong", "2", "thang"]


def test_chat_abbreviations_are_expanded():
    assert [t.text for t in tokenize("cty k tra luong, đc ko")] == ["cong", "ty", "khong", "tra", "luong", "duoc", "khong"]


def test_tokens_keep_their_place_in_the_text():
    text = "chị ơi, cty nợ lương"
    for token in tokenize(text):
        assert text[token.start:token.end]
    cty = [t for t in tokenize(text) if t.text in ("cong", "ty")]
    assert {text[t.start:t.end] for t in cty} == {"cty"}


def test_a_message_of_only_emoji_still_has_a_token():
    tokens = tokenize("👍👍")
    assert len(tokens) == 1


def test_fold_handles_d_with_stroke_and_upper_case():
    assert fold("ĐƯỢC Không") == "duoc khong"
    assert normalized("Đc ko?") == "duoc khong"
    assert word_list("nghỉ việc") == word_list("nghĩ viêc") == ["nghi", "viec"]
