"""The assistant at run time: the trained Rasa model, urgency detection and the reply language.

`understand` is the stateless view of one message (what `helpline predict` prints); `respond` is
one turn of a conversation, with Rasa's tracker kept for the conversation and its language slot
set by the caller, who owns the conversation's sticky language.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List

from bot import urgency
from bot.language import choose_reply_language, detect, requested_language
from helpline.paths import ProjectPaths

log = logging.getLogger(__name__)

FALLBACK_INTENT = "nlu_fallback"
HANDOFF_RESPONSES = frozenset({"utter_handoff"})
CLARIFY_RESPONSES = frozenset({"utter_clarify", "utter_offer_person", "utter_out_of_scope"})
CLARIFY_INTENTS = frozenset({FALLBACK_INTENT, "out_of_scope"})


class ModelMissing(RuntimeError):
    """There is no trained model: run `helpline train`."""


@dataclass(frozen=True)
class Understanding:
    """What the assistant makes of one message on its own (one line of `helpline predict`)."""

    text: str
    language: str | None
    intent: str
    confidence: float
    topic: str
    urgent: bool
    urgent_category: str | None
    action: str  # answer | clarify | handoff

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


@dataclass(frozen=True)
class Turn:
    """One turn of a conversation: the bot's replies, in `language`, and what they amount to."""

    language: str
    intent: str
    confidence: float
    topic: str
    urgent: bool
    urgent_category: str | None
    action: str  # answer | clarify | handoff
    replies: List[str] = field(default_factory=list)
    responses: List[str] = field(default_factory=list)


class _KeepMissing(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class Assistant:
    """The trained assistant, loaded once per process."""

    def __init__(self, agent: Any, topics: Dict[str, str], detector: urgency.UrgencyDetector) -> None:
        self._agent = agent
        self._topics = topics
        self.urgency = detector

    @classmethod
    def load(cls, paths: ProjectPaths = ProjectPaths()) -> "Assistant":
        """Load the trained model; raises `ModelMissing` when there is none."""
        if not paths.model.exists() or not paths.model_info.exists():
            raise ModelMissing(f"no trained model at {paths.model}: run `helpline train`")
        from rasa.core.agent import Agent  # imported here: importing Rasa takes seconds

        agent = Agent.load(str(paths.model))
        topics = json.loads(paths.model_info.read_text(encoding="utf-8"))["topics"]
        model = urgency.UrgencyModel.load(paths.urgency_model) if paths.urgency_model.exists() else None
        return cls(agent, topics, urgency.UrgencyDetector(model))

    @property
    def intents(self) -> List[str]:
        return list(self._agent.domain.intents)

    def topic(self, intent: str) -> str:
        return self._topics.get(intent, "other")

    async def classify(self, text: str) -> Dict[str, Any]:
        """Rasa's NLU result for `text`, with `intent` the best real intent (never the fallback)
        and `fallback` true when the classifier was not confident enough."""
        parsed = await self._agent.parse_message(text)
        ranking = [item for item in parsed.get("intent_ranking", []) if item["name"] != FALLBACK_INTENT]
        best = ranking[0] if ranking else {"name": FALLBACK_INTENT, "confidence": 0.0}
        return {
            "intent": best["name"],
            "confidence": float(best["confidence"]),
            "fallback": parsed["intent"]["name"] == FALLBACK_INTENT,
        }

    async def understand(self, text: str, language: str | None = None) -> Understanding:
        """Classify one message on its own: intent, topic, urgency and what the bot would do."""
        verdict = self.urgency.detect(text)
        nlu = await self.classify(text)
        intent = nlu["intent"]
        if verdict.urgent or intent == "request_human":
            action = "handoff"
        elif nlu["fallback"] or intent in CLARIFY_INTENTS:
            action = "clarify"
        else:
            action = "answer"
        return Understanding(
            text=text,
            language=language or detect(text).language,
            intent=intent,
            confidence=round(nlu["confidence"], 4),
            topic=self.topic(intent),
            urgent=verdict.urgent,
            urgent_category=verdict.category,
            action=action,
        )

    async def respond(self, conversation_id: str, text: str, previous_language: str | None,
                      default_language: str = "zh") -> Turn:
        """Answer one message of a conversation.

        The reply language is the message's own (Chinese or Vietnamese), else the conversation's
        previous one, else `default_language`; a request to switch language switches it. An urgent
        message is recorded on Rasa's tracker but not answered by the bot: the caller hands the
        conversation to a person (action `handoff`, no replies).
        """
        from rasa.core.channels.channel import UserMessage
        from rasa.shared.core.events import ActionExecuted, SlotSet, UserUttered

        verdict = self.urgency.detect(text)
        nlu = await self.classify(text)
        language = choose_reply_language(text, previous_language, default_language)
        if nlu["intent"] == "change_language" and not nlu["fallback"]:
            language = requested_language(text, previous_language or language)

        tracker = await self._agent.processor.fetch_tracker_and_update_session(conversation_id)
        if tracker.get_slot("language") != language:
            tracker.update(SlotSet("language", language))
            await self._agent.processor.save_tracker(tracker)

        message = UserMessage(text, sender_id=conversation_id)
        if verdict.urgent:
            await self._agent.log_message(message)
            return Turn(language, nlu["intent"], nlu["confidence"], self.topic(nlu["intent"]), True,
                        verdict.category, "handoff")

        bot_messages = await self._agent.handle_message(message) or []
        tracker = await self._agent.processor.get_tracker(conversation_id)
        responses: List[str] = []
        for event in reversed(tracker.events):
            if isinstance(event, UserUttered):
                break
            if isinstance(event, ActionExecuted) and event.action_name.startswith("utter_"):
                responses.insert(0, event.action_name)
        if HANDOFF_RESPONSES & set(responses):
            action = "handoff"
        elif CLARIFY_RESPONSES & set(responses):
            action = "clarify"
        else:
            action = "answer"
        intent = FALLBACK_INTENT if nlu["fallback"] else nlu["intent"]
        return Turn(
            language, intent, nlu["confidence"], self.topic(intent), False, None, action,
            replies=[m["text"] for m in bot_messages if m.get("text")], responses=responses,
        )

    def render(self, response: str, language: str, **values: Any) -> str:
        """The text of a domain response in `language`, with its {placeholders} filled from `values`."""
        for variation in self._agent.domain.responses.get(response, []):
            conditions = variation.get("condition") or []
            if any(c.get("name") == "language" and c.get("value") == language for c in conditions):
                return variation["text"].format_map(_KeepMissing(values))
        raise KeyError(f"response {response} has no {language} text")
