"""Urgency detection: does this message need a person at once, and why.

Every message is checked, whoever owns the conversation. Two detectors, either of which is enough:
- patterns (`urgency.yml` beside this module, reviewed like content): precise, explainable, and
  they know hyperbole ("累死了") and questions about the law in general from a crisis;
- a classifier (`UrgencyModel`) trained by `helpline train` on the labelled messages in
  `urgency_examples.yml` and, as ordinary messages, the FAQ example questions: it catches crises
  told in words no pattern lists ("我在江边站了好久 水好黑").
Recall comes first: a missed crisis is worse than a false alarm.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Dict, Iterable, List, Pattern, Tuple

import yaml

from bot.normalize import normalized

PATTERNS_FILE = Path(__file__).with_name("urgency.yml")
EXAMPLES_FILE = Path(__file__).with_name("urgency_examples.yml")
NOT_URGENT_LABEL = "not_urgent"
CATEGORIES = (
    "self_harm",
    "violence",
    "serious_injury_illness",
    "fire_chemical",
    "detention",
    "sexual_harassment",
    "child_labour",
    "documents_forced_labour",
    "wages_withheld_leaving",
)


@dataclass(frozen=True)
class Urgency:
    """The verdict on one message: urgent or not, and the category of the first pattern matched."""

    urgent: bool
    category: str | None = None
    source: str | None = None  # "patterns" or "model": which detector said so


NOT_URGENT = Urgency(False)


class UrgencyPatternError(ValueError):
    """The patterns file is malformed: an unknown category or a regular expression that does not compile."""


@dataclass(frozen=True)
class _Patterns:
    hyperbole: Dict[str, Pattern[str]]
    resolved: Dict[str, Pattern[str]]
    general: Dict[str, Pattern[str]]
    hypothetical: Dict[str, Pattern[str]]
    first_person: Dict[str, Pattern[str]]
    categories: Tuple[Tuple[str, Dict[str, Pattern[str]]], ...]


def _compile(parts: List[str], where: str) -> Pattern[str]:
    try:
        return re.compile("|".join(f"(?:{part})" for part in parts))
    except re.error as error:
        raise UrgencyPatternError(f"{PATTERNS_FILE.name}: {where}: {error}") from error


@cache
def _load(path: Path = PATTERNS_FILE) -> _Patterns:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    unknown = set(data["categories"]) - set(CATEGORIES)
    if unknown:
        raise UrgencyPatternError(f"{path.name}: unknown categories {sorted(unknown)}")
    hyperbole = {lang: _compile(parts, f"hyperbole.{lang}") for lang, parts in data["hyperbole"].items()}
    resolved, general, hypothetical, first_person = (
        {lang: _compile(parts, f"{key}.{lang}") for lang, parts in data[key].items()}
        for key in ("resolved", "general", "hypothetical", "first_person")
    )
    categories = tuple(
        (name, {lang: _compile(parts, f"{name}.{lang}") for lang, parts in data["categories"][name].items()})
        for name in CATEGORIES
        if name in data["categories"]
    )
    return _Patterns(hyperbole, resolved, general, hypothetical, first_person, categories)


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
    supposed = any(patterns.hypothetical[lang].search(form.strip()) for lang, form in cleaned.items())
    for category, by_language in patterns.categories:
        if (over_and_done or in_general or supposed) and category != "self_harm":
            continue
        for lang, pattern in by_language.items():
            if pattern.search(cleaned[lang]):
                return Urgency(True, category, "patterns")
    return NOT_URGENT


def _features(text: str) -> str:
    return f"{text} {normalized(text)}"


class UrgencyModel:
    """A classifier over character n-grams: not urgent, or one of the categories."""

    def __init__(self, pipeline: Any, threshold: float) -> None:
        self._pipeline = pipeline
        self.threshold = threshold

    @classmethod
    def train(cls, examples: Iterable[Tuple[str, str | None]], threshold: float = 0.5) -> "UrgencyModel":
        """Fit on (text, category or None for not urgent) pairs."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline, make_union

        texts, labels = [], []
        for text, category in examples:
            texts.append(_features(text))
            labels.append(category or NOT_URGENT_LABEL)
        pipeline = make_pipeline(
            make_union(
                TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True),
                TfidfVectorizer(analyzer="char", ngram_range=(2, 3), sublinear_tf=True),
            ),
            LogisticRegression(C=10, class_weight="balanced", max_iter=2000),
        )
        pipeline.fit(texts, labels)
        return cls(pipeline, threshold)

    def predict(self, text: str) -> Urgency:
        """Urgent when the probability of all categories together reaches the threshold."""
        probabilities = self._pipeline.predict_proba([_features(text)])[0]
        classes = list(self._pipeline.classes_)
        calm = probabilities[classes.index(NOT_URGENT_LABEL)]
        if 1.0 - calm < self.threshold:
            return NOT_URGENT
        best = max((p, c) for p, c in zip(probabilities, classes) if c != NOT_URGENT_LABEL)
        return Urgency(True, best[1], "model")

    def save(self, path: Path) -> None:
        import skops.io as sio

        sio.dump({"pipeline": self._pipeline, "threshold": self.threshold}, path)

    @classmethod
    def load(cls, path: Path) -> "UrgencyModel":
        """Load a saved model; only scikit-learn, NumPy and SciPy types are accepted from the file."""
        import skops.io as sio

        untrusted = sio.get_untrusted_types(file=path)
        foreign = [t for t in untrusted if not t.startswith(("sklearn.", "numpy.", "scipy.", "builtins."))]
        if foreign:
            raise UrgencyPatternError(f"{path}: unexpected types in the urgency model: {foreign}")
        data = sio.load(path, trusted=untrusted)
        return cls(data["pipeline"], data["threshold"])


def labelled_examples(path: Path = EXAMPLES_FILE) -> List[Tuple[str, str | None]]:
    """(text, category or None) pairs from the labelled examples file."""
    cases = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [(case["text"], case.get("category") if case["urgent"] else None) for case in cases]


class UrgencyDetector:
    """Patterns first, then the classifier when there is one."""

    def __init__(self, model: UrgencyModel | None = None) -> None:
        self._model = model

    def detect(self, text: str) -> Urgency:
        verdict = detect(text)
        if verdict.urgent or self._model is None:
            return verdict
        return self._model.predict(text)
