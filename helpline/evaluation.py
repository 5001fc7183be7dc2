"""The evaluation report: intent accuracy, language identification, urgency, and speed.

Every figure comes from test files under `eval_data/` that were written apart from the training
data and are never used in training: held-out questions phrased differently (`heldout_*.yml`),
short messages labelled with their language (`language_id.tsv`), and messages labelled urgent or
not (`urgency_*.yml`, one file per blind test set). The report is printed and written to
`reports/eval.md`, with a confusion matrix per language as PNG.
"""

from __future__ import annotations

import asyncio
import csv
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Tuple

import yaml

from bot import language as language_id
from bot import urgency
from helpline.assistant import Assistant
from helpline.paths import ProjectPaths

TARGETS = {"intent_accuracy": 0.95, "language_accuracy": 0.99, "urgency_recall": 1.0, "false_alarm_rate": 0.05}


@dataclass
class IntentScores:
    language: str
    total: int
    accuracy: float
    macro_f1: float
    answered_right: float  # right intent and confident enough to answer
    fallback_rate: float
    errors: List[Tuple[str, str, str]]  # expected, predicted, text
    latencies_ms: List[float]


def load_heldout(path: Path) -> List[Tuple[str, str]]:
    """(expected intent, question) pairs from a held-out file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [(intent, str(question)) for intent, questions in data.items() for question in questions]


async def score_intents(assistant: Assistant, lang: str, cases: List[Tuple[str, str]], png: Path) -> IntentScores:
    from sklearn.metrics import f1_score

    expected, predicted, errors, latencies = [], [], [], []
    confident_right = fallbacks = 0
    for intent, text in cases:
        started = time.perf_counter()
        result = await assistant.understand(text, lang)
        latencies.append((time.perf_counter() - started) * 1000)
        nlu = await assistant.classify(text)
        expected.append(intent)
        predicted.append(result.intent)
        fallbacks += nlu["fallback"]
        if result.intent == intent:
            confident_right += not nlu["fallback"]
        else:
            errors.append((intent, result.intent, text))
    labels = sorted(set(expected) | set(predicted))
    _confusion_png(expected, predicted, labels, png, f"Held-out questions ({lang})")
    total = len(cases)
    return IntentScores(
        language=lang,
        total=total,
        accuracy=sum(e == p for e, p in zip(expected, predicted)) / total,
        macro_f1=float(f1_score(expected, predicted, labels=sorted(set(expected)), average="macro", zero_division=0)),
        answered_right=confident_right / total,
        fallback_rate=fallbacks / total,
        errors=errors,
        latencies_ms=latencies,
    )


def _confusion_png(expected: List[str], predicted: List[str], labels: List[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(expected, predicted, labels=labels)
    size = max(8, len(labels) * 0.22)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    axes.set_yticks(range(len(labels)), labels, fontsize=6)
    axes.set_xlabel("predicted")
    axes.set_ylabel("expected")
    axes.set_title(title)
    for (row, col), count in ((rc, matrix[rc]) for rc in zip(*matrix.nonzero())):
        axes.text(col, row, str(count), ha="center", va="center", fontsize=5,
                  color="white" if row == col else "red")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def score_language_id(path: Path) -> Tuple[float, Dict[str, Tuple[int, int]], List[Tuple[str, str, str]]]:
    """Overall accuracy, (right, total) per kind, and the misses (label, detected, text)."""
    per_kind: Dict[str, List[int]] = defaultdict(lambda: [0, 0])
    misses = []
    with path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            detected = language_id.detect(row["text"]).language
            right = detected == row["label"]
            per_kind[row["kind"]][0] += right
            per_kind[row["kind"]][1] += 1
            if not right:
                misses.append((row["label"], str(detected), row["text"]))
    right = sum(r for r, _ in per_kind.values())
    total = sum(t for _, t in per_kind.values())
    return right / total, {k: (r, t) for k, (r, t) in sorted(per_kind.items())}, misses


@dataclass
class UrgencyScores:
    language: str
    urgent: int = 0
    caught: int = 0
    calm: int = 0
    false_alarms: int = 0
    wrong_category: int = 0
    misses: List[str] = field(default_factory=list)
    alarms: List[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.caught / self.urgent if self.urgent else 1.0

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.calm if self.calm else 0.0


def load_urgency_sets(folder: Path) -> Dict[str, List[Dict[str, Any]]]:
    """The urgency test sets (`urgency*.yml`), by file name."""
    return {path.name: yaml.safe_load(path.read_text(encoding="utf-8")) for path in sorted(folder.glob("urgency*.yml"))}


def score_urgency(cases: List[Dict[str, Any]], detector: urgency.UrgencyDetector) -> List[UrgencyScores]:
    scores: Dict[str, UrgencyScores] = {}
    for case in cases:
        lang = case["language"]
        score = scores.setdefault(lang, UrgencyScores(lang))
        verdict = detector.detect(case["text"])
        if case["urgent"]:
            score.urgent += 1
            if verdict.urgent:
                score.caught += 1
                score.wrong_category += verdict.category != case.get("category")
            else:
                score.misses.append(f"[{case.get('category')}] {case['text']}")
        else:
            score.calm += 1
            if verdict.urgent:
                score.false_alarms += 1
                score.alarms.append(f"[{verdict.category}] {case['text']}")
    return [scores[lang] for lang in sorted(scores)]


def combine_scores(per_set: List[List[UrgencyScores]]) -> List[UrgencyScores]:
    """Several sets' scores as one set's, per language."""
    totals: Dict[str, UrgencyScores] = {}
    for scores in per_set:
        for u in scores:
            total = totals.setdefault(u.language, UrgencyScores(u.language))
            for counted in fields(UrgencyScores)[1:]:  # every field but the language adds up
                setattr(total, counted.name, getattr(total, counted.name) + getattr(u, counted.name))
    return [totals[lang] for lang in sorted(totals)]


def _mark(value: float, target: float, higher_is_better: bool = True) -> str:
    met = value >= target if higher_is_better else value <= target
    return "met" if met else "**NOT met**"


def run(paths: ProjectPaths = ProjectPaths()) -> str:
    """Evaluate the trained assistant; write and return the Markdown report."""
    started = time.perf_counter()
    assistant = Assistant.load(paths)
    load_seconds = time.perf_counter() - started
    reports = paths.reports
    reports.mkdir(parents=True, exist_ok=True)

    intent_scores = []
    for lang in ("zh", "vi"):
        cases = load_heldout(paths.eval_data / f"heldout_{lang}.yml")
        intent_scores.append(asyncio.run(score_intents(assistant, lang, cases, reports / f"confusion_{lang}.png")))
    lang_accuracy, per_kind, lang_misses = score_language_id(paths.eval_data / "language_id.tsv")
    urgency_sets = load_urgency_sets(paths.eval_data)
    # a writer may write what another already had ("你好", the labelling guide's own examples): each
    # set is scored in two parts, the messages the training data lacks and those it has, so the
    # figures without the latter come at no second pass
    seen = {example.text.strip() for example in urgency.labelled_examples(paths.bot / "urgency_examples")}
    parts = {
        name: [score_urgency([c for c in cases if (c["text"].strip() in seen) is known], assistant.urgency)
               for known in (False, True)]
        for name, cases in urgency_sets.items()
    }
    per_set = {name: combine_scores(pair) for name, pair in parts.items()}
    urgency_scores = combine_scores(list(per_set.values()))
    unseen_scores = combine_scores([unseen for unseen, _ in parts.values()])
    all_cases = [case for cases in urgency_sets.values() for case in cases]
    patterns_only = score_urgency(all_cases, urgency.UrgencyDetector(None))
    unseen_count = sum(u.urgent + u.calm for u in unseen_scores)
    latencies = sorted(ms for scores in intent_scores for ms in scores.latencies_ms)
    import json

    info = json.loads(paths.model_info.read_text(encoding="utf-8"))

    lines = ["# Evaluation report", "", "Made by `helpline eval` from the files in `eval_data/` (never used in training).", ""]
    lines += ["## Intents (held-out questions)", "",
              "| language | questions | accuracy | macro-F1 | answered right (confident) | fallback rate | target accuracy |",
              "|---|---|---|---|---|---|---|"]
    for s in intent_scores:
        lines.append(f"| {s.language} | {s.total} | {s.accuracy:.3f} | {s.macro_f1:.3f} | {s.answered_right:.3f} | "
                     f"{s.fallback_rate:.3f} | {TARGETS['intent_accuracy']} {_mark(s.accuracy, TARGETS['intent_accuracy'])} |")
    lines += ["", "Accuracy counts the classifier's best intent; \"answered right\" also requires it to be above the "
              "fallback threshold (otherwise the bot asks the worker to rephrase).",
              "Confusion matrices: `confusion_zh.png`, `confusion_vi.png`.", ""]
    lines += ["## Language identification", "",
              f"Accuracy {lang_accuracy:.3f} on {sum(t for _, t in per_kind.values())} messages "
              f"(target {TARGETS['language_accuracy']}: {_mark(lang_accuracy, TARGETS['language_accuracy'])}).", "",
              "| kind | right | total |", "|---|---|---|"]
    lines += [f"| {kind} | {r} | {t} |" for kind, (r, t) in per_kind.items()]
    lines += ["", "## Urgency", "", "| language | urgent | recall | not urgent | false-alarm rate | category differs |",
              "|---|---|---|---|---|---|"]
    for u in urgency_scores:
        lines.append(f"| {u.language} | {u.urgent} | {u.recall:.3f} {_mark(u.recall, 1.0)} | {u.calm} | "
                     f"{u.false_alarm_rate:.3f} {_mark(u.false_alarm_rate, 0.05, False)} | {u.wrong_category} |")
    if len(per_set) > 1:
        lines += ["", "Per test set: " + "; ".join(
            f"`{name}` {u.language} recall {u.recall:.3f} of {u.urgent}, false alarms {u.false_alarm_rate:.3f} of {u.calm}"
            for name, scores in per_set.items() for u in scores) + "."]
    if unseen_count < len(all_cases):
        lines += ["", f"{len(all_cases) - unseen_count} of the {len(all_cases)} test messages also occur among the "
                  "labelled training examples; without them: " + "; ".join(
                      f"{u.language} recall {u.recall:.3f} of {u.urgent}, false alarms {u.false_alarm_rate:.3f} of {u.calm}"
                      for u in unseen_scores) + "."]
    lines += ["", "Patterns alone (without the classifier): " + "; ".join(
        f"{u.language} recall {u.recall:.3f}, false alarms {u.false_alarm_rate:.3f}" for u in patterns_only) + ".",
        "The test sets `eval_data/urgency*.yml` were written blind, each by its own writer, from "
        "`bot/urgency_examples/LABELLING.md` alone, and are used for nothing else; the patterns were tuned on "
        "`bot/urgency_examples/*.yml` and the classifier trained on `bot/urgency_examples/**` (with the FAQ questions "
        "as ordinary messages). A test set whose results have guided a change is retired to "
        "`bot/urgency_examples/` (`retired_set_*.yml`) and replaced by a fresh one."]
    model = assistant.urgency.model
    if model is not None:
        lines += ["", "Thresholds chosen by `helpline train` on `bot/urgency_examples/calibration/` (never used to tune "
                  "the patterns; the classifier's probabilities cross-validated): the least alarming that reach the "
                  "language's recall target:", "",
                  "| language | recall target | other pattern overruled below (a self-harm pattern never is) | "
                  "classifier alone at | classifier against a silencer at | calibration recall | "
                  "calibration false alarms |",
                  "|---|---|---|---|---|---|---|"]
        for language, choice in sorted(model.choices.items()):
            lines.append(f"| {language} | {choice.target} | {choice.thresholds.confirm} | "
                         f"{choice.thresholds.alone} | {choice.thresholds.silenced} | "
                         f"{choice.recall:.3f} of {choice.urgent} | "
                         f"{choice.false_alarm_rate:.3f} of {choice.calm} |")
    lines += ["", "## Speed", "",
              f"- Model load: {load_seconds:.1f} s; last training: {info.get('train_seconds', '?')} s.",
              f"- `understand` per message after load (NLU, urgency, language), over {len(latencies)} messages: "
              f"median {statistics.median(latencies):.1f} ms, p95 {latencies[int(len(latencies) * 0.95) - 1]:.1f} ms, "
              f"max {latencies[-1]:.1f} ms.", ""]
    lines += ["## Misses", ""]
    for s in intent_scores:
        lines.append(f"### Intents ({s.language}): {len(s.errors)} wrong")
        lines += [f"- {exp} -> {pred}: {text}" for exp, pred, text in s.errors]
        lines.append("")
    lines.append(f"### Language identification: {len(lang_misses)} wrong")
    lines += [f"- {label} -> {got}: {text}" for label, got, text in lang_misses]
    lines.append("")
    for u in urgency_scores:
        lines.append(f"### Urgency ({u.language}): {len(u.misses)} missed, {len(u.alarms)} false alarms")
        lines += [f"- missed {m}" for m in u.misses] + [f"- false alarm {a}" for a in u.alarms]
        lines.append("")
    report = "\n".join(lines)
    (reports / "eval.md").write_text(report, encoding="utf-8")
    return report
