"""Build the Rasa training data from `content/` and `nlu_data/`, and train the model.

The build writes a plain Rasa project under `build/rasa/` (domain, NLU data, rules), so that
`rasa data validate` and `rasa` itself can be run on exactly what the model was trained on.
Training is skipped when nothing it depends on has changed since the last model.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List

import yaml

from bot import urgency
from helpline import content
from helpline.paths import ProjectPaths

# FAQ entries whose example questions may describe a crisis (documents kept, harassment, a child
# at work): not used as examples of ordinary messages for the urgency classifier.
URGENT_LOOKING_ENTRIES = frozenset({"id_documents_kept", "sexual_harassment", "minimum_age"})
CONVERSATION_TOPICS = {
    "greet": "smalltalk", "goodbye": "smalltalk", "thanks": "smalltalk", "affirm": "smalltalk",
    "deny": "smalltalk", "change_language": "smalltalk", "request_human": "helpline",
    "out_of_scope": "other", "nlu_fallback": "other",
}
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainResult:
    """What `train` did: whether it trained, the model file, and how long it took."""

    trained: bool
    model: Path
    seconds: float


class _LiteralDumper(yaml.SafeDumper):
    """Writes multi-line text as YAML block literals, so the built files stay readable."""


_LiteralDumper.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None),
)


def _dump(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.dump(data, Dumper=_LiteralDumper, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _conditional(lang: str, text: str) -> Dict[str, object]:
    return {"condition": [{"type": "slot", "name": "language", "value": lang}], "text": text}


def _sources(paths: ProjectPaths) -> List[Path]:
    """Every file the model depends on (its fingerprint)."""
    files = [paths.config, Path(__file__), Path(content.__file__)]
    files += sorted(paths.content.glob("**/*.yml"))
    files += sorted(paths.nlu_data.glob("**/*.yml"))
    files += sorted(paths.bot.glob("**/*.yml")) + sorted(paths.bot.glob("*.py"))
    return files


def fingerprint(paths: ProjectPaths) -> str:
    """A hash of everything the model is trained from."""
    digest = hashlib.sha256()
    for path in _sources(paths):
        digest.update(str(path.relative_to(paths.root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build(paths: ProjectPaths) -> Dict[str, str]:
    """Write the Rasa project for `paths` into `paths.build`; return each intent's topic.

    Raises `content.ContentInvalid` when the content has errors.
    """
    entries = content.load(paths.content)
    if paths.build.exists():
        shutil.rmtree(paths.build)
    data = paths.build / "data"
    data.mkdir(parents=True)

    domain = yaml.safe_load(paths.bot.joinpath("domain.yml").read_text(encoding="utf-8"))
    responses = yaml.safe_load(paths.bot.joinpath("responses.yml").read_text(encoding="utf-8"))["responses"]
    domain["intents"] = list(domain["intents"]) + [entry.intent for entry in entries]
    domain["responses"] = dict(responses)
    for entry in entries:
        domain["responses"][entry.response] = [
            _conditional(lang, entry.answers[lang].text) for lang in content.LANGUAGES
        ]
    _dump(paths.build / "domain.yml", domain)

    nlu = [
        {"intent": entry.intent, "examples": "".join(
            f"- {example}\n" for lang in content.LANGUAGES for example in entry.answers[lang].examples
        )}
        for entry in entries
    ]
    _dump(data / "faq_nlu.yml", {"version": "3.1", "nlu": nlu})
    rules = [
        {"rule": f"answer {entry.id}", "steps": [{"intent": entry.intent}, {"action": entry.response}]}
        for entry in entries
    ]
    _dump(data / "faq_rules.yml", {"version": "3.1", "rules": rules})
    for source in sorted(paths.nlu_data.glob("*.yml")):
        shutil.copy(source, data / source.name)

    topics = dict(CONVERSATION_TOPICS)
    topics.update({entry.intent: entry.topic for entry in entries})
    return topics


def train_urgency_model(paths: ProjectPaths, progress: Progress = print) -> urgency.UrgencyModel:
    """Train and save the urgency classifier: the labelled examples, and the FAQ questions and
    conversational messages ("我要找人工") as ordinary, not urgent, ones."""
    from rasa.shared.nlu.training_data.loading import load_data

    ordinary = [
        text
        for entry in content.load(paths.content)
        if entry.id not in URGENT_LOOKING_ENTRIES
        for answer in entry.answers.values()
        for text in answer.examples
    ]
    conversation = load_data(str(paths.nlu_data / "conversation.yml"))
    ordinary += [message.get("text") for message in conversation.intent_examples]
    model = urgency.UrgencyModel.train(urgency.labelled_examples(paths.bot / "urgency_examples"), ordinary)
    for language, choice in model.choices.items():
        progress(
            f"    {language}: a pattern (not self-harm) overruled below "
            f"{choice.thresholds.confirm}, classifier alone from {choice.thresholds.alone} "
            f"(against a silencer from {choice.thresholds.silenced}); "
            f"on calibration: recall {choice.recall:.3f} of {choice.urgent} (target {choice.target}), "
            f"false alarms {choice.false_alarm_rate:.3f} of {choice.calm}"
        )
    paths.models.mkdir(parents=True, exist_ok=True)
    model.save(paths.urgency_model)
    return model


def train(paths: ProjectPaths, force: bool = False, progress: Progress = print) -> TrainResult:
    """Build and train the model unless it is up to date with its sources."""
    started = time.monotonic()
    wanted = fingerprint(paths)
    if not force and paths.model.exists() and paths.model_info.exists():
        info = json.loads(paths.model_info.read_text(encoding="utf-8"))
        if info.get("fingerprint") == wanted:
            progress(f"Model is up to date: {paths.model.relative_to(paths.root)}")
            return TrainResult(False, paths.model, time.monotonic() - started)

    progress("1/4 Checking content and building the training data")
    topics = build(paths)
    progress(f"    {len(topics)} intents; Rasa project written to {paths.build.relative_to(paths.root)}")
    progress("2/4 Training the urgency classifier")
    train_urgency_model(paths, progress)
    progress("3/4 Training the Rasa model (NLU pipeline and rules)")
    from rasa.api import train as rasa_train  # imported here: Rasa's import alone takes seconds

    result = rasa_train(
        domain=str(paths.build / "domain.yml"),
        config=str(paths.config),
        training_files=[str(paths.build / "data")],
        output=str(paths.models),
        fixed_model_name=paths.model.name[: -len(".tar.gz")],
        force_training=True,
    )
    if result.code != 0 or not result.model:
        raise RuntimeError(f"Rasa training failed (exit code {result.code})")
    seconds = time.monotonic() - started
    paths.model_info.write_text(
        json.dumps({"fingerprint": wanted, "topics": topics, "train_seconds": round(seconds, 1)}, indent=2),
        encoding="utf-8",
    )
    progress(f"4/4 Model written to {paths.model.relative_to(paths.root)} in {seconds:.0f} s")
    return TrainResult(True, paths.model, seconds)
