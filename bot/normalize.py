"""Text normalisation shared by the tokenizer, language detection and urgency detection.

Workers type Vietnamese with or without diacritics and with chat abbreviations ("cty k tra luong"),
and Chinese with Latin words mixed in. Everything that compares words compares them in one folded
form, so "không", "khong", "ko" and "k" are the same word to the assistant.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Iterator, List

# Chat abbreviations, written as the folded (no diacritics) full form.
VIETNAMESE_ABBREVIATIONS = {
    "k": "khong", "ko": "khong", "kh": "khong", "khg": "khong", "kg": "khong", "hok": "khong",
    "hk": "khong", "hong": "khong", "dc": "duoc", "dk": "duoc", "dx": "duoc", "j": "gi",
    "z": "vay", "v": "vay", "cx": "cung", "ng": "nguoi", "e": "em", "a": "anh", "c": "chi",
    "cty": "cong ty", "ct": "cong ty", "bhxh": "bao hiem xa hoi", "bhyt": "bao hiem y te",
    "bhtn": "bao hiem that nghiep", "hdld": "hop dong lao dong", "hd": "hop dong",
    "sx": "san xuat", "nv": "nhan vien", "ntn": "nhu the nao", "bn": "bao nhieu",
    "bnh": "bao nhieu", "mk": "minh", "mn": "moi nguoi", "r": "roi", "vs": "voi", "trc": "truoc",
    "ns": "noi", "lm": "lam", "ik": "di", "ck": "chong", "vk": "vo", "bme": "bo me",
    "ad": "admin", "sdt": "so dien thoai", "tl": "tra loi", "ng ta": "nguoi ta", "cv": "cong viec",
    "bt": "binh thuong", "mng": "moi nguoi", "oke": "ok", "okie": "ok", "okela": "ok",
    "tks": "cam on", "thks": "cam on", "thanks": "cam on", "thank": "cam on", "tk": "cam on",
    "cmnd": "chung minh nhan dan", "cccd": "can cuoc cong dan", "tn": "tin nhan",
}

# "a" abbreviates "anh" except as the last word, where it is the polite particle "ạ" without its mark.
_PARTICLES_AT_END = frozenset({"a"})
_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN_RE = re.compile(rf"[{_HAN}]|[^\W_{_HAN}]+", re.UNICODE)
HAN_RE = re.compile(rf"[{_HAN}]")


def fold(text: str) -> str:
    """Lower-case `text` and strip diacritics ("Không được" -> "khong duoc"; "đ" -> "d")."""
    text = text.lower().replace("đ", "d")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def is_han(char: str) -> bool:
    """True for a CJK ideograph (a Chinese character)."""
    return bool(HAN_RE.fullmatch(char))


@dataclass(frozen=True)
class Word:
    """One normalised word of a message, with its place in the original text."""

    text: str
    start: int
    end: int


def words(text: str) -> Iterator[Word]:
    """Split `text` into normalised words.

    A Chinese character is a word of its own (the featuriser builds character n-grams from them);
    a Latin run is folded and, when it is a chat abbreviation, expanded into the words it stands
    for, each keeping the abbreviation's span. Punctuation and emoji are dropped.
    """
    matches = list(_TOKEN_RE.finditer(unicodedata.normalize("NFC", text)))
    for index, match in enumerate(matches):
        raw = match.group()
        folded = fold(raw)
        if folded in _PARTICLES_AT_END and index == len(matches) - 1:
            yield Word(folded, match.start(), match.end())  # "... không ạ": a particle, not "anh"
            continue
        expansion = VIETNAMESE_ABBREVIATIONS.get(folded, folded)
        for part in expansion.split():
            yield Word(part, match.start(), match.end())


def normalized(text: str) -> str:
    """The words of `text` joined by spaces: the form the urgency patterns are written against."""
    return " ".join(word.text for word in words(text))


def word_list(text: str) -> List[str]:
    """The normalised words of `text`, as strings."""
    return [word.text for word in words(text)]
