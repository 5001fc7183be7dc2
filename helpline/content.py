"""The FAQ content editors own (`content/faq/*.yml`): loading and checking it.

A broken file is refused with its file, line, entry and reason, so that an editor who is not a
programmer can find and mend it. See `content/README.md` for the format.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Tuple

import yaml

from bot.normalize import fold
from helpline.yamlfile import ContentError, ContentInvalid, child, line_of, read

TOPICS = (
    "hours", "wages", "contract", "resignation_dismissal", "social_insurance", "leave",
    "injury_safety", "personal", "emergency", "helpline", "smalltalk", "other",
)
LANGUAGES = ("zh", "vi")
MIN_EXAMPLES = 10
MIN_PLAIN_VIETNAMESE = 3
MAX_ANSWER_BYTES = 1800
_ID_RE = re.compile(r"[a-z][a-z0-9_]*")
_ENTRY_FIELDS = ("id", "topic", "reviewed_on", "review_by", "zh", "vi")
_LANGUAGE_FIELDS = ("answer", "sources", "examples")


@dataclass(frozen=True)
class Answer:
    """One language's side of an entry."""

    text: str
    sources: Tuple[str, ...]
    examples: Tuple[str, ...]


@dataclass(frozen=True)
class Entry:
    """One FAQ entry: a question workers ask, answered in both languages."""

    id: str
    topic: str
    reviewed_on: dt.date
    review_by: dt.date
    answers: Dict[str, Answer]
    file: Path
    line: int

    @property
    def intent(self) -> str:
        """The Rasa intent the entry's example questions train."""
        return self.id

    @property
    def response(self) -> str:
        """The Rasa response that carries the entry's answers."""
        return f"utter_faq_{self.id}"


def has_diacritics(text: str) -> bool:
    """True if `text` has a letter with a diacritic (Vietnamese written with its marks)."""
    return fold(text) != text.lower()


class _EntryChecker:
    """Checks one entry, turning each problem into a located `ContentError`."""

    def __init__(self, path: Path, node: yaml.Node, value: Any) -> None:
        self.path, self.node, self.value = path, node, value
        self.errors: List[ContentError] = []
        self.entry_id = value.get("id") if isinstance(value, dict) and isinstance(value.get("id"), str) else None

    def fail(self, reason: str, *keys: Any) -> None:
        self.errors.append(ContentError(self.path, line_of(self.node, *keys), self.entry_id, reason))

    def check(self) -> Entry | None:
        value = self.value
        if not isinstance(value, dict):
            self.fail("an entry must be a mapping with " + ", ".join(_ENTRY_FIELDS))
            return None
        missing = [field for field in _ENTRY_FIELDS if field not in value]
        if missing:
            self.fail("missing " + ", ".join(missing))
            return None
        unknown = sorted(set(value) - set(_ENTRY_FIELDS))
        if unknown:
            self.fail("unknown fields " + ", ".join(map(str, unknown)), unknown[0])
        if not isinstance(value["id"], str) or not _ID_RE.fullmatch(value["id"]):
            self.fail("id must be lower_snake_case", "id")
        if value["topic"] not in TOPICS:
            self.fail(f"topic {value['topic']!r} is not one of {', '.join(TOPICS)}", "topic")
        reviewed_on = self._date("reviewed_on")
        review_by = self._date("review_by")
        if reviewed_on and review_by and review_by <= reviewed_on:
            self.fail("review_by must be after reviewed_on", "review_by")
        answers = {lang: self._answer(lang) for lang in LANGUAGES}
        if self.errors or not all(answers.values()) or not reviewed_on or not review_by:
            return None
        return Entry(
            id=value["id"], topic=value["topic"], reviewed_on=reviewed_on, review_by=review_by,
            answers=answers, file=self.path, line=self.node.start_mark.line + 1,
        )

    def _date(self, field: str) -> dt.date | None:
        raw = self.value[field]
        if isinstance(raw, dt.date):
            return raw
        try:
            return dt.date.fromisoformat(str(raw))
        except ValueError:
            self.fail(f"{field} must be a date as YYYY-MM-DD, not {raw!r}", field)
            return None

    def _answer(self, lang: str) -> Answer | None:
        side = self.value[lang]
        if not isinstance(side, dict):
            self.fail(f"{lang} must be a mapping with " + ", ".join(_LANGUAGE_FIELDS), lang)
            return None
        missing = [field for field in _LANGUAGE_FIELDS if not side.get(field)]
        if missing:
            self.fail(f"{lang}: missing or empty " + ", ".join(missing), lang)
            return None
        text = side["answer"]
        if not isinstance(text, str):
            self.fail(f"{lang}.answer must be text", lang, "answer")
            return None
        if len(text.encode("utf-8")) > MAX_ANSWER_BYTES:
            self.fail(f"{lang}.answer is {len(text.encode('utf-8'))} bytes, more than {MAX_ANSWER_BYTES}", lang, "answer")
        sources, examples = side["sources"], side["examples"]
        for field, items in (("sources", sources), ("examples", examples)):
            if not isinstance(items, list) or not all(isinstance(item, str) and item.strip() for item in items):
                self.fail(f"{lang}.{field} must be a list of non-empty texts", lang, field)
                return None
        if len(examples) < MIN_EXAMPLES:
            self.fail(f"{lang}.examples has {len(examples)} questions, at least {MIN_EXAMPLES} needed", lang, "examples")
        if lang == "vi":
            plain = sum(not has_diacritics(example) for example in examples)
            if plain < MIN_PLAIN_VIETNAMESE:
                self.fail(
                    f"vi.examples has {plain} questions without diacritics, at least {MIN_PLAIN_VIETNAMESE} needed",
                    lang, "examples",
                )
        seen: Dict[str, int] = {}
        for index, example in enumerate(examples):
            key = example_key(example)
            if key in seen:
                self.fail(f"{lang}.examples repeats {example!r}", lang, "examples", index)
            seen[key] = index
        return Answer(text.strip(), tuple(sources), tuple(e.strip() for e in examples))


def example_key(text: str) -> str:
    """The form in which two example questions count as the same."""
    return " ".join(fold(text).split())


def _load_file(path: Path) -> Tuple[List[Entry], List[ContentError]]:
    try:
        data, root = read(path)
    except ContentInvalid as invalid:
        return [], invalid.errors
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        return [], [ContentError(path, 1, None, "the file must have a list `entries:`")]
    nodes = child(root, "entries").value
    entries, errors = [], []
    for node, value in zip(nodes, data["entries"]):
        checker = _EntryChecker(path, node, value)
        entry = checker.check()
        errors.extend(checker.errors)
        if entry:
            entries.append(entry)
    return entries, errors


def _cross_check(entries: Iterable[Entry]) -> List[ContentError]:
    errors: List[ContentError] = []
    ids: Dict[str, Entry] = {}
    examples: Dict[str, Entry] = {}
    for entry in entries:
        if entry.id in ids:
            first = ids[entry.id]
            errors.append(ContentError(entry.file, entry.line, entry.id, f"id already used at {first.file}:{first.line}"))
        ids.setdefault(entry.id, entry)
        for answer in entry.answers.values():
            for example in answer.examples:
                other = examples.setdefault(example_key(example), entry)
                if other.id != entry.id:
                    errors.append(ContentError(
                        entry.file, entry.line, entry.id, f"example {example!r} is also an example of entry {other.id}",
                    ))
    return errors


def load(folder: Path) -> List[Entry]:
    """Load every entry under `folder` (files `*.yml`), raising `ContentInvalid` with every problem found."""
    files = sorted(folder.glob("**/*.yml"))
    if not files:
        raise ContentInvalid([ContentError(folder, 0, None, "no content files (*.yml)")])
    entries: List[Entry] = []
    errors: List[ContentError] = []
    for path in files:
        file_entries, file_errors = _load_file(path)
        entries.extend(file_entries)
        errors.extend(file_errors)
    errors.extend(_cross_check(entries))
    if errors:
        raise ContentInvalid(errors)
    return entries


def due_for_review(entries: Iterable[Entry], today: dt.date) -> List[Entry]:
    """Entries whose review date has passed."""
    return [entry for entry in entries if entry.review_by <= today]
