"""Canned replies operators insert in the console (`content/canned_replies.yml`): loading and checking.

Each reply has a key, a short title in every interface language (en, zh, vi) and its text in every
language workers are answered in (zh, vi). A broken file is refused with its file, line, reply and reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

from helpline import yamlfile
from helpline.content import LANGUAGES as WORKER_LANGUAGES

INTERFACE_LANGUAGES = ("en", "zh", "vi")
MAX_TITLE_CHARS = 40
# A reply is sent as one message: well under the platforms' limits (WeChat ~2,048 bytes), and short
# enough to read on a phone.
MAX_TEXT_CHARS = 500
_KEY_RE = re.compile(r"[a-z][a-z0-9_]*")
_FIELDS = ("key", "title", "text")


@dataclass(frozen=True)
class CannedReply:
    """One reply an operator can insert: titles for the console, texts for the worker."""

    key: str
    title: Dict[str, str]
    text: Dict[str, str]

    def as_json(self) -> Dict[str, Any]:
        """The reply as GET /api/canned returns it."""
        return {"key": self.key, "title": dict(self.title), "text": dict(self.text)}


def load(path: Path) -> List[CannedReply]:
    """The replies in `path`, in file order.

    Raises `helpline.yamlfile.ContentInvalid` listing every problem (file, line, reply key, reason).
    """
    data, root = yamlfile.read(path)
    problems = yamlfile.Problems(path, root)
    if not isinstance(data, dict) or not isinstance(data.get("replies"), list) or not data["replies"]:
        problems.add("the file must have a non-empty list `replies:`", "replies")
        problems.raise_if_any()
    replies: List[CannedReply] = []
    seen: Dict[str, int] = {}
    for index, value in enumerate(data["replies"]):
        reply = _check(problems, index, value)
        if reply is None:
            continue
        if reply.key in seen:
            problems.add(f"key already used by reply {seen[reply.key] + 1}", "replies", index, "key", entry=reply.key)
        seen.setdefault(reply.key, index)
        replies.append(reply)
    problems.raise_if_any()
    return replies


def _check(problems: yamlfile.Problems, index: int, value: Any) -> CannedReply | None:
    where = ("replies", index)
    if not isinstance(value, dict):
        problems.add("a reply must be a mapping with " + ", ".join(_FIELDS), *where)
        return None
    key = value.get("key") if isinstance(value.get("key"), str) else None
    before = len(problems.errors)
    missing = [field for field in _FIELDS if field not in value]
    if missing:
        problems.add("missing " + ", ".join(missing), *where, entry=key)
        return None
    unknown = sorted(map(str, set(value) - set(_FIELDS)))
    if unknown:
        problems.add("unknown fields " + ", ".join(unknown), *where, unknown[0], entry=key)
    if key is None or not _KEY_RE.fullmatch(key):
        problems.add("key must be lower_snake_case", *where, "key", entry=key)
    title = _texts(problems, value["title"], INTERFACE_LANGUAGES, MAX_TITLE_CHARS, (*where, "title"), key)
    text = _texts(problems, value["text"], WORKER_LANGUAGES, MAX_TEXT_CHARS, (*where, "text"), key)
    if len(problems.errors) > before or title is None or text is None:
        return None
    return CannedReply(key=key, title=title, text=text)


def _texts(problems: yamlfile.Problems, value: Any, languages: tuple, limit: int, where: tuple,
           key: str | None) -> Dict[str, str] | None:
    field = where[-1]
    if not isinstance(value, dict):
        problems.add(f"{field} must be a mapping with " + ", ".join(languages), *where, entry=key)
        return None
    missing = [lang for lang in languages if not isinstance(value.get(lang), str) or not value[lang].strip()]
    if missing:
        problems.add(f"{field}: missing or empty " + ", ".join(missing), *where, entry=key)
        return None
    unknown = sorted(map(str, set(value) - set(languages)))
    if unknown:
        problems.add(f"{field}: unknown languages " + ", ".join(unknown), *where, unknown[0], entry=key)
    texts = {lang: " ".join(value[lang].split()) if field == "title" else value[lang].strip() for lang in languages}
    for lang, text in texts.items():
        if len(text) > limit:
            problems.add(f"{field}.{lang} is {len(text)} characters, more than {limit}", *where, lang, entry=key)
    return texts
