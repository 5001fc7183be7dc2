"""Where the project's parts live on disk, relative to the project root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ProjectPaths:
    """The folders and files the assistant is built from and into."""

    root: Path = ROOT

    @property
    def content(self) -> Path:
        return self.root / "content" / "faq"

    @property
    def nlu_data(self) -> Path:
        return self.root / "nlu_data"

    @property
    def bot(self) -> Path:
        return self.root / "bot"

    @property
    def config(self) -> Path:
        return self.root / "config.yml"

    @property
    def build(self) -> Path:
        """The generated Rasa project (training data and domain): rebuilt by `helpline train`."""
        return self.root / "build" / "rasa"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def model(self) -> Path:
        return self.models / "helpline.tar.gz"

    @property
    def model_info(self) -> Path:
        """What the model was trained from (fingerprint) and what it knows (intent topics)."""
        return self.models / "helpline.json"

    @property
    def urgency_model(self) -> Path:
        """The urgency classifier (see `bot.urgency.UrgencyModel`)."""
        return self.models / "urgency.skops"

    @property
    def eval_data(self) -> Path:
        return self.root / "eval_data"

    @property
    def reports(self) -> Path:
        return self.root / "reports"
