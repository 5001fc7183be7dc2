"""Which language a worker writes in: Chinese ("zh"), Vietnamese ("vi") or English ("en").

Script rules decide most messages: Han characters are Chinese; a Vietnamese letter with a diacritic
is Vietnamese. Latin text without diacritics is the hard case ("toi bi no luong" or "my boss didnt
pay me"): every word of unaccented Vietnamese is a valid Vietnamese syllable (or a chat
abbreviation), and most English sentences have words that cannot be one, so the count of each
decides; a common English word that is also a valid syllable ("me", "to") counts half to each, and
langdetect (seeded, restricted to these languages) breaks ties. Text with no letters ("ok", "?", "123",
emoji) has no language: the caller keeps the conversation's previous one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from langdetect import DetectorFactory, LangDetectException, detect_langs

from bot.normalize import HAN_RE, VIETNAMESE_ABBREVIATIONS, fold

DetectorFactory.seed = 0  # langdetect is random unless seeded

LANGUAGES = ("zh", "vi")
_VIETNAMESE_LETTERS = re.compile(
    "[ăâđêôơưàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ]", re.IGNORECASE
)
_LATIN_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
# A Vietnamese syllable, without tone marks: onset, vowels, coda.
_SYLLABLE = re.compile(
    r"(?:ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|[bcdghklmnrstvx])?"
    r"(?:[aeiouy]{1,3})"
    r"(?:ch|ng|nh|[cmnpt])?"
)
# Words that are valid Vietnamese syllables but far more likely English in a chat message.
_ENGLISH_WORDS = frozenset(
    """
    i you he she we they it me him her us them my your his our their the a an and or but not no yes
    is am are was were be been do does did have has had can could will would should shall may might
    must to of in on at for with from by about as into like than then so too very just also only
    what when where who why how which this that these those there here all any some many much more
    most other such own same few each every both either neither hello hi hey ok okay please thanks
    thank sorry good bad new old big small long time day week month year work job pay paid money
    boss factory company overtime salary wage wages hour hours leave sick help need want know get
    got make made take took give gave go went come came see say said tell ask call contract quit
    fired insurance holiday today tomorrow yesterday now still again after before because if
    thanks bye see lot so im tired home man men nice hot cool fine sure well great let lets
    hope sad happy love miss mom dad wife son child kids family friend doctor hospital phone
    number name address email chat talk speak chinese vietnamese english language
    """.split()
)
# Words that say nothing about the language: "ok" alone keeps the conversation's language.
_NEUTRAL_WORDS = frozenset({"ok", "okay", "oke", "okie", "okela", "hihi", "haha", "hehe", "kk", "kkk"})


@dataclass(frozen=True)
class Detection:
    """The detected language (None when the text has none) and the rule that decided it."""

    language: str | None
    reason: str


def _is_vietnamese_syllable(word: str) -> bool:
    return bool(_SYLLABLE.fullmatch(word)) or word in VIETNAMESE_ABBREVIATIONS


def _langdetect_vi_or_en(text: str) -> str | None:
    try:
        candidates = detect_langs(text)
    except LangDetectException:
        return None
    scores = {c.lang: c.prob for c in candidates}
    vi, en = scores.get("vi", 0.0), scores.get("en", 0.0)
    if vi == en == 0.0:
        return None
    return "vi" if vi >= en else "en"


def detect(text: str) -> Detection:
    """Detect the language of one message."""
    han = len(HAN_RE.findall(text))
    latin_words = _LATIN_WORD.findall(text)
    if han and han >= len(latin_words):
        return Detection("zh", "han")
    if any(_VIETNAMESE_LETTERS.search(word) for word in latin_words):
        return Detection("vi", "diacritics")
    if han:
        return Detection("zh", "han")
    words = [fold(word) for word in latin_words if fold(word) not in _NEUTRAL_WORDS]
    if not words:
        return Detection(None, "no language")
    vietnamese = english = 0.0
    for word in words:
        syllable = _is_vietnamese_syllable(word)
        if syllable and word in _ENGLISH_WORDS:
            vietnamese += 0.5
            english += 0.5
        elif syllable:
            vietnamese += 1
        else:
            english += 1
    if vietnamese != english:
        return Detection("vi" if vietnamese > english else "en", "syllables")
    return Detection(_langdetect_vi_or_en(" ".join(words)) or "vi", "langdetect")


def choose_reply_language(text: str, previous: str | None, default: str = "zh") -> str:
    """The language to answer in: the message's own if it is Chinese or Vietnamese, else the
    conversation's previous language (short or English messages), else `default`."""
    detected = detect(text).language
    if detected in LANGUAGES:
        return detected
    return previous or default


_ASKS_FOR_VIETNAMESE = re.compile(r"越南|越语|\bviet\b|\bvn\b|\bvietnam")
_ASKS_FOR_CHINESE = re.compile(r"中文|汉语|漢語|普通话|华语|国语|\btrung\b|\bhoa\b|\btau\b|\bchinese\b|\bzhongwen\b")


def requested_language(text: str, current: str) -> str:
    """The language a worker asks to switch to ("说越南语", "noi tieng trung di").

    When the message names neither language (or both), the worker wants the one they are not
    getting: the other of the two.
    """
    folded = fold(text)
    wants_vi = bool(_ASKS_FOR_VIETNAMESE.search(folded))
    wants_zh = bool(_ASKS_FOR_CHINESE.search(folded))
    if wants_vi != wants_zh:
        return "vi" if wants_vi else "zh"
    return "vi" if current == "zh" else "zh"
