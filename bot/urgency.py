"""Urgency detection: does this message need a person at once, and why.

Every message is checked, whoever owns the conversation. The patterns live in `urgency.yml`
beside this module so that they can be reviewed like content; this module only applies them.
Recall comes first: a missed crisis is worse than a false alarm.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Pattern, Tuple

import yaml

from bot.normalize import normalized

PATTERNS_FILE = Path(__file__).with_name("urgency.yml")
CATEGORIES = (
    "self_harm",
    "violence",
    "serious_injury_illness",
    "fire_chemical",
    "detention",
    "documents_forced_labour",
    "sexual_harassment",
    "child_labour",
    "wages_withheld_leaving",
)


@dataclass(frozen=True)
class Urgency:
    """The verdict on one message: urgent or not, and the category of the first pattern matched."""

    urgent: bool
    category: Optional[str] = None


NOT_URGENT = Urgency(False)


class UrgencyPatternError(ValueError):
    """The patterns file is malformed: an unknown category or a regular expression that does not compile."""


@dataclass(frozen=True)
class _Patterns:
    hyperbole: Dict[str, Pattern[str]]
    resolved: Dict[str, Pattern[str]]
    general: Dict[str, Pattern[str]]
    first_person: Dict[str, Pattern[str]]
    categories: Tuple[Tuple[str, Dict[str, Pattern[str]]], ...]


def _compile(parts: List[str], where: str) -> Pattern[str]:
    try:
        return re.compile("|".join(f"(?:{part})" for part in parts))
    except re.error as error:
        raise UrgencyPatternError(f"{PATTERNS_FILE.name}: {where}: {error}") from error


@lru_cache(maxsize=None)
def _load(path: Path = PATTERNS_FILE) -> _Patterns:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    unknown = set(data["categories"]) - set(CATEGORIES)
    if unknown:
        raise UrgencyPatternError(f"{path.name}: unknown categories {sorted(unknown)}")
    hyperbole = {lang: _compile(parts, f"hyperbole.{lang}") for lang, parts in data["hyperbole"].items()}
    resolved, general, first_person = (
        {lang: _compile(parts, f"{key}.{lang}") for lang, parts in data[key].items()}
        for key in ("resolved", "general", "first_person")
    )
    categories = tuple(
        (name, {lang: _compile(parts, f"{name}.{lang}") for lang, parts in data["categories"][name].items()})
        for name in CATEGORIES
        if name in data["categories"]
    )
    return _Patterns(hyperbole, resolved, general, first_person, categories)


def _forms(text: str) -> Dict[str, str]:
    """The text in the form each language's patterns are written against."""
    return {"zh": text, "vi": f" {normalized(text)} "}


def detect(text: str) -> Urgency:
    """Check one message against every category, in both languages' patterns.

    Both languages are always checked: a worker may mix them, and language detection must never
    be the reason a crisis is missed.
    """
    patterns = _load()
    forms = _forms(text)
    cleaned = {lang: patterns.hyperbole[lang].sub(" ", form) for lang, form in forms.items()}
    over_and_done = any(patterns.resolved[lang].search(form) for lang, form in cleaned.items())
    in_general = any(patterns.general[lang].search(form) for lang, form in cleaned.items()) and not any(
        patterns.first_person[lang].search(form) for lang, form in cleaned.items()
    )
    for category, by_language in patterns.categories:
        if (over_and_done or in_general) and category != "self_harm":
            continue
        for lang, pattern in by_language.items():
            if pattern.search(cleaned[lang]):
                return Urgency(True, category)
    return NOT_URGENT
