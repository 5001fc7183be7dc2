"""The handoff service: the one place a conversation's owner changes and a case moves.

Every change is one call that updates the case and the conversation in one transaction, writes the
audit trail, queues what the worker must be told (in their language) in the outbox, and returns
the console events to publish. Operators reach it through the API, the dialogue through
`open_case` and `on_worker_message`.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.normalize import fold
from helpline import logs
from helpline.auth import Identity
from helpline.office_hours import OfficeHours, describe_return, office_hours
from helpline.settings import Settings
from helpline.store import (
    BOT,
    CASE_ASSIGNED,
    CASE_ESCALATED,
    CASE_QUEUED,
    CASE_RESOLVED,
    CLOSED,
    HUMAN,
    OPEN_CASE_STATES,
    PENDING,
    QUEUED,
    AuditEntry,
    Case,
    CaseNote,
    Conversation,
    Message,
    Operator,
    OutboxItem,
    utcnow,
)

log = logging.getLogger(__name__)
Render = Callable[..., str]


class HandoffError(Exception):
    """An operator's request refused. `status` is the HTTP status the API answers with."""

    status = 422

    def __init__(self, message: str, code: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.code = code
        if status is not None:
            self.status = status


@dataclass
class Effects:
    """What a handoff call produced besides the database rows: console events, and urgent cases for
    the on-call notification."""

    events: List[Dict[str, Any]] = field(default_factory=list)
    urgent_cases: List[Dict[str, Any]] = field(default_factory=list)
    replies: List[str] = field(default_factory=list)  # texts for the worker (from the dialogue's calls)
    message_id: Optional[int] = None  # the operator's reply, when the call sent one

    def merge(self, other: "Effects") -> None:
        self.events += other.events
        self.urgent_cases += other.urgent_cases
        self.replies += other.replies


def new_reference() -> str:
    """A case reference easy to read aloud and type on a phone: six digits, "482-917"."""
    digits = f"{secrets.randbelow(10**6):06d}"
    return f"{digits[:3]}-{digits[3:]}"


_CONSENT_WORDS = {  # matched on the folded answer; Chinese words need no word boundary
    "yes": re.compile(r"^\s*(?:(?:1|ok|co|dong y|duoc|yes)\b|是|好|可以|同意|行)"),
    "no": re.compile(r"^\s*(?:(?:2|khong|ko|k|no)\b|不)"),
    "anonymous": re.compile(r"^\s*(?:3\b|匿名|不要.{0,4}名字|an danh|giau ten|khong (?:ghi |neu )?ten)"),
}


def parse_consent(text: str) -> Optional[str]:
    """A worker's answer to the consent question: "1"/"好" yes, "2"/"không" no, "3"/"匿名" anonymous."""
    folded = fold(text).strip()
    for answer in ("anonymous", "no", "yes"):
        if _CONSENT_WORDS[answer].search(folded):
            return answer
    return None


class Handoff:
    """Opens cases and carries out operators' actions on them."""

    def __init__(self, sessions: sessionmaker, settings: Settings, render: Render) -> None:
        self._sessions = sessions
        self._settings = settings
        self._render = render
        self._hours: Dict[str, OfficeHours] = {
            lang: office_hours(settings.office_hours, zone, settings.office_closed_days.get(lang))
            for lang, zone in settings.office_timezones.items()
        }

    # --- helpers ---------------------------------------------------------------------------------

    def _audit(self, session: Session, case: Optional[Case], actor: str, action: str, detail: str = "") -> None:
        session.add(AuditEntry(case_id=case.id if case else None, actor=actor, action=action, detail=detail[:200]))

    @staticmethod
    def _event(case: Case, change: str) -> Dict[str, Any]:
        return {"id": case.id, "reference": case.reference, "status": case.status, "urgent": bool(case.urgent),
                "change": change}

    def _queue_text(self, session: Session, conversation: Conversation, author: str, text: str) -> Message:
        """Store an outbound message and its outbox row (delivered by the outbox)."""
        message = Message(conversation_id=conversation.id, channel=conversation.channel, direction="out",
                          author=author, kind="text", text=text, status=PENDING, language=conversation.language)
        session.add(message)
        session.flush()
        session.add(OutboxItem(message_id=message.id, conversation_id=conversation.id, status=PENDING, attempts=0,
                               next_attempt_at=utcnow()))
        return message

    def _open_case(self, session: Session, conversation: Conversation) -> Optional[Case]:
        return session.execute(
            select(Case).where(Case.conversation_id == conversation.id, Case.status.in_(OPEN_CASE_STATES))
        ).scalar_one_or_none()

    def _language(self, conversation: Conversation) -> str:
        return conversation.language if conversation.language in self._hours else "zh"

    def is_open(self, language: str, now: Optional[dt.datetime] = None) -> bool:
        return self._hours[language].is_open(now or dt.datetime.now(dt.timezone.utc))

    # --- from the dialogue ---------------------------------------------------------------------

    def open_case(self, session: Session, conversation: Conversation, reason: str, urgent_category: Optional[str],
                  topic: Optional[str], now: Optional[dt.datetime] = None) -> Effects:
        """Hand the conversation to a person (in the caller's transaction): reuse its open case or open
        one, and tell the worker, in their language, what happens next."""
        now = now or dt.datetime.now(dt.timezone.utc)
        language = self._language(conversation)
        effects = Effects()
        case = self._open_case(session, conversation)
        change = "message"
        if case is None:
            case = Case(reference=self._unique_reference(session), conversation_id=conversation.id, status=CASE_QUEUED,
                        urgent=int(bool(urgent_category)), category=urgent_category, topic=topic, language=language,
                        channel=conversation.channel, reason=reason, queued_at=utcnow())
            session.add(case)
            session.flush()
            self._audit(session, case, "bot", "opened", f"reason={reason} urgent={urgent_category or '-'}")
            change = "opened"
        elif urgent_category and not case.urgent:
            case.urgent, case.category = 1, urgent_category
            self._audit(session, case, "bot", "marked_urgent", urgent_category)
        conversation.owner = HUMAN if case.operator_id else QUEUED
        numbers = self._render("utter_emergency_numbers", language)
        if urgent_category:
            effects.replies.append(self._render("utter_urgent", language, case_ref=case.reference, emergency_numbers=numbers))
            effects.urgent_cases.append({"reference": case.reference, "category": urgent_category, "language": language,
                                         "channel": conversation.channel, "case_id": case.id})
        if not self.is_open(language, now):
            back = describe_return(self._hours[language].next_opening(now), now, language)
            if not urgent_category:
                effects.replies.append(self._render("utter_handoff_out_of_hours", language, case_ref=case.reference,
                                                    return_time=back, emergency_numbers=numbers))
        elif not urgent_category:
            ahead = session.execute(
                select(func.count(Case.id)).where(Case.status == CASE_QUEUED, Case.id != case.id)
            ).scalar_one()
            wait = max(5, self._settings.minutes_per_waiting_case * (ahead + 1))
            effects.replies.append(self._render("utter_handoff_queued", language, case_ref=case.reference,
                                                wait_minutes=wait))
        case.still_waiting_noted_at = utcnow()
        effects.events.append(self._event(case, change))
        return effects

    def on_worker_message(self, session: Session, conversation: Conversation, text: Optional[str],
                          urgent_category: Optional[str]) -> Effects:
        """A worker's message while a person owns the conversation: the bot stays silent, but the
        consent answer is recorded, an urgent message raises the case, and a waiting worker gets at
        most one "still waiting" note per interval."""
        effects = Effects()
        case = self._open_case(session, conversation)
        if case is None:
            return effects
        language = self._language(conversation)
        if urgent_category and not case.urgent:
            case.urgent, case.category = 1, urgent_category
            self._audit(session, case, "bot", "marked_urgent", urgent_category)
            effects.urgent_cases.append({"reference": case.reference, "category": urgent_category, "language": language,
                                         "channel": conversation.channel, "case_id": case.id})
            numbers = self._render("utter_emergency_numbers", language)
            effects.replies.append(self._render("utter_urgent", language, case_ref=case.reference, emergency_numbers=numbers))
        elif case.consent_asked_at and case.consent is None and text and parse_consent(text):
            case.consent = parse_consent(text)
            self._audit(session, case, "worker", "consent", case.consent)
            effects.replies.append(self._render("utter_consent_recorded", language))
            effects.events.append(self._event(case, "consent"))
        elif case.status == CASE_QUEUED:
            noted = case.still_waiting_noted_at
            if noted is None or (utcnow() - noted).total_seconds() >= self._settings.still_waiting_interval:
                case.still_waiting_noted_at = utcnow()
                effects.replies.append(self._render("utter_still_waiting", language, case_ref=case.reference))
        effects.events.append(self._event(case, "message"))
        return effects

    def _unique_reference(self, session: Session) -> str:
        while True:
            reference = new_reference()
            if session.execute(select(Case.id).where(Case.reference == reference)).first() is None:
                return reference

    # --- from the console ----------------------------------------------------------------------

    def _case(self, session: Session, case_id: int, who: Identity, claiming: bool = False) -> Case:
        if who.role == "editor":
            raise HandoffError("editors do not work on cases", "forbidden", 403)
        case = session.get(Case, case_id)
        if case is None:
            raise HandoffError("no such case", "not_found", 404)
        if who.sees_all or case.operator_id == who.id:
            return case
        if case.operator_id is None and (claiming or case.status == CASE_QUEUED):
            return case
        raise HandoffError("this case belongs to another operator", "forbidden", 403)

    def list_cases(self, who: Identity, status: str = "open") -> List[Case]:
        """The queue: urgent first, then the longest waiting. Operators see unclaimed cases and their own."""
        if who.role == "editor":
            raise HandoffError("editors do not work on cases", "forbidden", 403)
        with self._sessions() as session:
            query = select(Case)
            if status == "open":
                query = query.where(Case.status.in_(OPEN_CASE_STATES))
            elif status == "mine":
                query = query.where(Case.operator_id == who.id, Case.status.in_(OPEN_CASE_STATES))
            else:
                query = query.where(Case.status == status)
            if not who.sees_all:
                query = query.where((Case.operator_id == who.id) | (Case.operator_id.is_(None)))
            query = query.order_by(Case.urgent.desc(), Case.queued_at, Case.id)
            cases = list(session.execute(query).scalars())
            for case in cases:
                _ = case.operator  # loaded while the session is open
            return cases

    def read(self, who: Identity, case_id: int) -> Dict[str, Any]:
        """The whole case for the console (every read is audited)."""
        with self._sessions.begin() as session:
            case = self._case(session, case_id, who)
            self._audit(session, case, who.username, "read")
            session.flush()
            return self._details(session, case)

    def _details(self, session: Session, case: Case) -> Dict[str, Any]:
        conversation = case.conversation
        messages = session.execute(
            select(Message).where(Message.conversation_id == conversation.id).order_by(Message.id)
        ).scalars()
        notes = session.execute(select(CaseNote).where(CaseNote.case_id == case.id).order_by(CaseNote.id)).scalars()
        audit = session.execute(select(AuditEntry).where(AuditEntry.case_id == case.id).order_by(AuditEntry.id)).scalars()
        return {
            "case": case, "operator": case.operator.username if case.operator else None,
            "conversation_language": conversation.language, "window": self.window(conversation),
            "messages": list(messages), "notes": [(n, n.operator.username) for n in notes], "audit": list(audit),
        }

    def _require_open_window(self, conversation: Conversation) -> None:
        """Refuse to send to the worker when the platform's reply window is closed."""
        window = self.window(conversation)
        if not window["open"]:
            raise HandoffError(f"reply window closed: {window['reason']}", "window_closed")

    def window(self, conversation: Conversation, now: Optional[dt.datetime] = None) -> Dict[str, Any]:
        """Whether the channel still lets us write to the worker, and for how long."""
        hours = self._settings.reply_windows.get(conversation.channel)
        if hours is None:
            return {"open": True, "closes_at": None, "seconds_left": None, "reason": None}
        if conversation.last_inbound_at is None:
            return {"open": False, "closes_at": None, "seconds_left": 0, "reason": "the worker has not written yet"}
        closes = conversation.last_inbound_at + dt.timedelta(hours=hours)
        left = (closes - (now or utcnow())).total_seconds()
        reason = None if left > 0 else (
            f"{conversation.channel} allows replies only within {hours:g} hours of the worker's last message")
        return {"open": left > 0, "closes_at": closes, "seconds_left": max(0, int(left)), "reason": reason}

    def claim(self, who: Identity, case_id: int) -> Effects:
        """Take a queued case. Two operators claiming at once: one wins, the other gets a 409."""
        with self._sessions.begin() as session:
            case = self._case(session, case_id, who, claiming=True)
            won = session.execute(
                update(Case).where(Case.id == case.id, Case.operator_id.is_(None), Case.status == CASE_QUEUED)
                .values(operator_id=who.id, status=CASE_ASSIGNED).execution_options(synchronize_session=False)
            ).rowcount
            if not won:
                session.refresh(case)
                holder = case.operator.username if case.operator else "nobody"
                raise HandoffError(f"already claimed by {holder}", "already_claimed", 409)
            session.refresh(case)
            case.conversation.owner = HUMAN
            self._audit(session, case, who.username, "claimed")
            return Effects(events=[self._event(case, "claimed")])

    def reply(self, who: Identity, case_id: int, text: str) -> Effects:
        """Send an operator's reply through the worker's channel (refused when its window is closed)."""
        text = (text or "").strip()
        if not text:
            raise HandoffError("empty reply", "empty")
        with self._sessions.begin() as session:
            case = self._case(session, case_id, who)
            if case.operator_id != who.id and not who.sees_all:
                raise HandoffError("claim the case before replying", "not_claimed", 409)
            if case.status == CASE_RESOLVED:
                raise HandoffError("the case is resolved", "resolved", 409)
            self._require_open_window(case.conversation)
            message = self._queue_text(session, case.conversation, "operator", text)
            case.first_reply_at = case.first_reply_at or utcnow()
            case.conversation.owner = HUMAN
            self._audit(session, case, who.username, "replied")
            session.flush()
            return Effects(events=[self._event(case, "message")], message_id=message.id)

    def note(self, who: Identity, case_id: int, text: str) -> Effects:
        text = (text or "").strip()
        if not text:
            raise HandoffError("empty note", "empty")
        with self._sessions.begin() as session:
            case = self._case(session, case_id, who)
            session.add(CaseNote(case_id=case.id, operator_id=who.id, text=text))
            self._audit(session, case, who.username, "note")
            return Effects(events=[self._event(case, "note")])

    def ask_consent(self, who: Identity, case_id: int) -> Effects:
        with self._sessions.begin() as session:
            case = self._case(session, case_id, who)
            self._require_open_window(case.conversation)
            case.consent_asked_at, case.consent = utcnow(), None
            self._queue_text(session, case.conversation, "system",
                             self._render("utter_consent_ask", self._language(case.conversation)))
            self._audit(session, case, who.username, "consent_asked")
            return Effects(events=[self._event(case, "consent")])

    def escalate(self, who: Identity, case_id: int, reason: str, contact_factory: bool = False) -> Effects:
        reason = (reason or "").strip()
        if not reason:
            raise HandoffError("say why the case is escalated", "reason_required")
        with self._sessions.begin() as session:
            case = self._case(session, case_id, who)
            if case.status == CASE_RESOLVED:
                raise HandoffError("the case is resolved", "resolved", 409)
            if contact_factory and case.consent not in ("yes", "anonymous"):
                raise HandoffError("the worker has not agreed to the factory being contacted", "consent_required")
            case.status, case.escalation_reason = CASE_ESCALATED, reason
            self._audit(session, case, who.username, "escalated",
                        f"contact_factory={contact_factory} consent={case.consent or '-'}")
            return Effects(events=[self._event(case, "escalated")])

    def resolve(self, who: Identity, case_id: int, outcome: str) -> Effects:
        outcome = (outcome or "").strip()
        if not outcome:
            raise HandoffError("record the outcome", "outcome_required")
        with self._sessions.begin() as session:
            case = self._case(session, case_id, who)
            if case.status == CASE_RESOLVED:
                raise HandoffError("the case is already resolved", "resolved", 409)
            case.status, case.outcome, case.resolved_at = CASE_RESOLVED, outcome, utcnow()
            case.conversation.owner = CLOSED
            self._queue_text(session, case.conversation, "system",
                             self._render("utter_case_resolved", self._language(case.conversation)))
            self._audit(session, case, who.username, "resolved")
            return Effects(events=[self._event(case, "resolved")])

    def handback(self, who: Identity, case_id: int) -> Effects:
        """Give the conversation back to the bot; the case ends (resolved, outcome "handed back")."""
        with self._sessions.begin() as session:
            case = self._case(session, case_id, who)
            if case.status != CASE_RESOLVED:
                case.status, case.resolved_at = CASE_RESOLVED, utcnow()
                case.outcome = case.outcome or "handed back to the assistant"
            case.conversation.owner = BOT
            self._queue_text(session, case.conversation, "system",
                             self._render("utter_handback", self._language(case.conversation)))
            self._audit(session, case, who.username, "handed_back")
            return Effects(events=[self._event(case, "handed_back")])

    def assign(self, who: Identity, case_id: int, username: str) -> Effects:
        if not who.sees_all:
            raise HandoffError("only supervisors reassign cases", "forbidden", 403)
        with self._sessions.begin() as session:
            case = self._case(session, case_id, who)
            target = session.execute(select(Operator).where(Operator.username == username)).scalar_one_or_none()
            if target is None or target.role == "editor":
                raise HandoffError(f"no operator {username}", "no_operator")
            case.operator_id = target.id
            if case.status == CASE_QUEUED:
                case.status = CASE_ASSIGNED
            case.conversation.owner = HUMAN
            self._audit(session, case, who.username, "assigned", f"to={username}")
            return Effects(events=[self._event(case, "assigned")])

    def operators(self, who: Identity) -> List[Operator]:
        if not who.sees_all:
            raise HandoffError("only supervisors see the team", "forbidden", 403)
        with self._sessions() as session:
            return list(session.execute(select(Operator).order_by(Operator.username)).scalars())


def log_effects(effects: Effects) -> None:
    for event in effects.events:
        logs.event(log, "case." + event["change"], case=event["id"], status=event["status"], urgent=event["urgent"])
