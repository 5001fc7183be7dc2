"""The inbox and the dialogue: an inbound message is stored (duplicates dropped), then answered,
one conversation at a time and in order, and the replies are stored in the outbox in the same
transaction that marks the message answered, so after a crash each message is answered exactly once.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Deque, Dict, List, Optional

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from channel_adapters import base
from helpline import logs
from helpline.assistant import Assistant
from helpline.handoff import Effects, Handoff
from helpline.settings import Settings
from helpline.store import (
    ANSWERED,
    BOT,
    CLOSED,
    HUMAN,
    KEPT,
    PENDING,
    QUEUED,
    RECEIVED,
    Conversation,
    Message,
    OutboxItem,
    utcnow,
)

log = logging.getLogger(__name__)
NON_TEXT_KINDS = frozenset({base.IMAGE, base.STICKER, base.LOCATION, base.FILE, base.LINK, base.VOICE, base.OTHER})


@dataclass(frozen=True)
class Accepted:
    """A stored inbound message."""

    message_id: int
    conversation_id: int


@dataclass(frozen=True)
class Answer:
    """What processing one inbound message produced: the outbox rows of its replies, in order."""

    message_id: int
    outbox_ids: List[int]
    texts: List[str]


class RateLimiter:
    """At most `limit` messages per `window` seconds per conversation (in this process)."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit, self._window, self._clock = limit, window, clock
        self._seen: Dict[int, Deque[float]] = collections.defaultdict(collections.deque)

    def allow(self, key: int) -> bool:
        now = self._clock()
        seen = self._seen[key]
        while seen and now - seen[0] > self._window:
            seen.popleft()
        if len(seen) >= self._limit:
            return False
        seen.append(now)
        return True


class Conversations:
    """Stores inbound messages and answers them through the assistant."""

    def __init__(self, sessions: sessionmaker, assistant: Assistant, settings: Settings, handoff: Handoff,
                 on_replies: Callable[[], None], publish: Callable[[Effects], Awaitable[None]]) -> None:
        self._sessions = sessions
        self._assistant = assistant
        self._settings = settings
        self._handoff = handoff
        self._on_replies = on_replies
        self._publish = publish
        self._limiter = RateLimiter(settings.rate_limit, settings.rate_window)
        self._locks: Dict[int, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self._answers: Dict[int, "asyncio.Future[Answer]"] = {}
        self._hold: Dict[int, float] = {}  # message id -> seconds to hold its replies (WeChat passive reply)

    # --- the inbox -------------------------------------------------------------------------------

    def accept(self, inbound: base.InboundMessage) -> Optional[Accepted]:
        """Store `inbound`; None when the channel already delivered this platform message id."""
        with self._sessions() as session:
            conversation = self._conversation(session, inbound.channel, inbound.sender)
            message = Message(
                conversation_id=conversation.id, channel=inbound.channel, direction="in", author="worker",
                kind=inbound.kind, text=inbound.text, platform_message_id=inbound.message_id, status=RECEIVED,
            )
            conversation.last_inbound_at = utcnow()
            session.add(message)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                logs.event(log, "inbox.duplicate", channel=inbound.channel, conversation=conversation.id)
                return None
            logs.event(log, "inbox.accepted", channel=inbound.channel, conversation=conversation.id,
                       sender=logs.pseudonym(self._settings.secret_key, inbound.sender), kind=inbound.kind)
            return Accepted(message.id, conversation.id)

    @staticmethod
    def _conversation(session: Session, channel: str, sender: str) -> Conversation:
        found = session.execute(
            select(Conversation).where(Conversation.channel == channel, Conversation.sender == sender)
        ).scalar_one_or_none()
        if found:
            return found
        conversation = Conversation(channel=channel, sender=sender, owner=BOT)
        session.add(conversation)
        try:
            session.commit()
        except IntegrityError:  # another request made it first
            session.rollback()
            return session.execute(
                select(Conversation).where(Conversation.channel == channel, Conversation.sender == sender)
            ).scalar_one()
        return conversation

    def unfinished(self) -> List[int]:
        """Conversations with inbound messages not yet answered (after a restart)."""
        with self._sessions() as session:
            return list(session.execute(
                select(Message.conversation_id).where(Message.direction == "in", Message.status == RECEIVED).distinct()
            ).scalars())

    # --- answering -------------------------------------------------------------------------------

    async def answer_within(self, accepted: Accepted, seconds: float, hold: float = 0.0) -> Optional[Answer]:
        """Answer `accepted` and wait up to `seconds` for it; None when it takes longer (it is still
        answered, and its replies go out through the outbox). With `hold`, its replies wait that many
        seconds in the outbox, so the caller may deliver them itself (WeChat's passive reply)."""
        future = asyncio.get_running_loop().create_future()
        self._answers[accepted.message_id] = future
        if hold:
            self._hold[accepted.message_id] = hold
        self.schedule(accepted.conversation_id)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout=seconds)
        except Exception:  # a timeout, or the dialogue failed (logged there): the caller answers "later"
            return None
        finally:
            self._answers.pop(accepted.message_id, None)
            self._hold.pop(accepted.message_id, None)

    def schedule(self, conversation_id: int) -> "asyncio.Task[None]":
        """Answer the conversation's waiting messages, in order, in the background."""
        return asyncio.get_running_loop().create_task(self.process(conversation_id))

    async def process(self, conversation_id: int) -> None:
        """Answer every unanswered inbound message of one conversation, oldest first."""
        async with self._locks[conversation_id]:
            while True:
                message_id = await asyncio.to_thread(self._next_waiting, conversation_id)
                if message_id is None:
                    return
                try:
                    answer = await self._answer(message_id)
                except Exception as error:
                    # Left as received: answered on the next start. Not retried now, so one bad
                    # message cannot spin; the error is logged without the text.
                    logs.event(log, "dialogue.error", logging.ERROR, conversation=conversation_id,
                               message=message_id, error=type(error).__name__)
                    future = self._answers.pop(message_id, None)
                    if future and not future.done():
                        future.set_exception(error)
                    return
                future = self._answers.pop(message_id, None)
                if future and not future.done():
                    future.set_result(answer)
                self._on_replies()

    def _next_waiting(self, conversation_id: int) -> Optional[int]:
        with self._sessions() as session:
            return session.execute(
                select(Message.id).where(Message.conversation_id == conversation_id, Message.direction == "in",
                                         Message.status == RECEIVED).order_by(Message.id).limit(1)
            ).scalar_one_or_none()

    async def _answer(self, message_id: int) -> Answer:
        with self._sessions() as session:
            message = session.get(Message, message_id)
            conversation = message.conversation
            snapshot = (message.kind, message.text, conversation.id, conversation.channel, conversation.language,
                        conversation.owner)
        kind, text, conversation_id, channel, language, owner = snapshot
        default = self._settings.channel_languages.get(channel, self._settings.default_language)
        outcome = _Outcome(language=language or default)
        if self._settings.assistant_delay:
            await asyncio.sleep(self._settings.assistant_delay)

        if kind == base.FOLLOW:
            outcome.replies = [self._assistant.render("utter_welcome", outcome.language)]
        elif kind == base.UNFOLLOW:
            outcome.status = KEPT
        elif owner in (QUEUED, HUMAN):
            # With a person: the bot stays silent, the message goes to the case.
            outcome.status = KEPT
            outcome.worker_message = True
            outcome.urgent_category = self._assistant.urgency.detect(text).category if text else None
        elif not text:
            outcome.replies = [self._assistant.render("utter_non_text", outcome.language)] if kind in NON_TEXT_KINDS else []
        elif not self._limiter.allow(conversation_id):
            outcome.status = KEPT
            outcome.replies = self._slow_down_note(conversation_id, outcome.language)
        else:
            turn = await self._assistant.respond(str(conversation_id), text, language, default)
            outcome.language, outcome.intent, outcome.topic = turn.language, turn.intent, turn.topic
            outcome.urgent_category = turn.urgent_category
            if turn.urgent:
                outcome.handoff = "urgent"
            elif turn.action == "handoff":
                outcome.handoff = "asked" if turn.intent == "request_human" else "not_understood"
            else:
                outcome.replies = turn.replies
        outbox_ids, effects = await asyncio.to_thread(self._store, message_id, outcome, self._hold.get(message_id, 0.0))
        await self._publish(effects)
        logs.event(log, "dialogue.answered", conversation=conversation_id, message=message_id, status=outcome.status,
                   replies=len(outbox_ids), handoff=outcome.handoff or "-", intent=outcome.intent or "-",
                   urgent=outcome.urgent_category or "-")
        return Answer(message_id, outbox_ids, outcome.replies + effects.replies)

    def _slow_down_note(self, conversation_id: int, language: str) -> List[str]:
        with self._sessions.begin() as session:
            conversation = session.get(Conversation, conversation_id)
            now = utcnow()
            noted = conversation.slow_down_noted_at
            if noted and (now - noted).total_seconds() < self._settings.rate_window:
                return []
            conversation.slow_down_noted_at = now
        return [self._assistant.render("utter_slow_down", language)]

    def _store(self, message_id: int, outcome: "_Outcome", hold: float) -> tuple:
        """One transaction: the message marked done, the handoff if any, the replies and their outbox rows."""
        with self._sessions.begin() as session:
            message = session.get(Message, message_id)
            conversation = message.conversation
            message.status, message.intent, message.topic = outcome.status, outcome.intent, outcome.topic
            message.urgent_category = outcome.urgent_category
            message.language = outcome.language
            conversation.language = outcome.language
            if conversation.owner == CLOSED and outcome.status == ANSWERED:
                conversation.owner = BOT
            effects = Effects()
            if outcome.handoff:
                effects = self._handoff.open_case(session, conversation, outcome.handoff, outcome.urgent_category,
                                                  outcome.topic)
            elif outcome.worker_message:
                effects = self._handoff.on_worker_message(session, conversation, message.text, outcome.urgent_category)
            due = utcnow() + dt.timedelta(seconds=hold)
            items = []
            for text in outcome.replies + effects.replies:
                reply = Message(conversation_id=conversation.id, channel=conversation.channel, direction="out",
                                author="bot", kind=base.TEXT, text=text, status=PENDING, language=outcome.language)
                session.add(reply)
                session.flush()
                item = OutboxItem(message_id=reply.id, conversation_id=conversation.id, status=PENDING,
                                  attempts=0, next_attempt_at=due)
                session.add(item)
                items.append(item)
            session.flush()
            return [item.id for item in items], effects


@dataclass
class _Outcome:
    """What answering one inbound message decided, before it is stored."""

    language: str
    status: str = ANSWERED
    replies: List[str] = field(default_factory=list)
    intent: Optional[str] = None
    topic: Optional[str] = None
    urgent_category: Optional[str] = None
    handoff: Optional[str] = None  # asked | not_understood | urgent
    worker_message: bool = False  # the conversation is with a person
