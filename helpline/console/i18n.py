"""The console's interface strings (`helpline/console/i18n.yml`): English, Chinese and Vietnamese.

Every key must be in every language, with the same `{placeholders}`, so that switching the interface
language never shows a raw key or drops a number.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict

from helpline import yamlfile

LANGUAGES = ("en", "zh", "vi")
_PLACEHOLDER_RE = re.compile(r"\{([a-z_]+)\}")

Strings = Dict[str, Dict[str, str]]


def load(path: Path) -> Strings:
    """{language: {key: text}} for every interface language.

    Raises `helpline.yamlfile.ContentInvalid` listing every problem (file, line, reason).
    """
    data, root = yamlfile.read(path)
    problems = yamlfile.Problems(path, root)
    if not isinstance(data, dict) or any(not isinstance(data.get(lang), dict) for lang in LANGUAGES):
        problems.add("the file must be a mapping with a mapping of strings under each of " + ", ".join(LANGUAGES))
        problems.raise_if_any()
    for extra in sorted(map(str, set(data) - set(LANGUAGES))):
        problems.add(f"unknown language {extra}", extra)
    reference = data["en"]
    for lang in LANGUAGES:
        strings = data[lang]
        for key, text in strings.items():
            if not isinstance(text, str) or not text.strip():
                problems.add(f"{lang}.{key} must be a non-empty text", lang, key)
            elif key not in reference:
                problems.add(f"{lang}.{key} is not in en", lang, key)
            elif lang != "en" and _placeholders(text) != _placeholders(reference[key]):
                problems.add(f"{lang}.{key} has placeholders {sorted(_placeholders(text))}, "
                             f"en has {sorted(_placeholders(reference[key]))}", lang, key)
        missing = [key for key in reference if key not in strings]
        if missing:
            problems.add(f"{lang} is missing " + ", ".join(missing), lang)
    problems.raise_if_any()
    return {lang: {str(key): text for key, text in data[lang].items()} for lang in LANGUAGES}


def _placeholders(text: str) -> set:
    return set(_PLACEHOLDER_RE.findall(text))
