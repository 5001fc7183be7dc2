"""The conversation store: conversations, their messages, the outbox, and small channel state
(SQLAlchemy; the schema is made by the Alembic migrations in `helpline/migrations/`).

Work that must survive a crash is a row before it is a task: an inbound message is stored before it
is processed, a reply is stored (with its outbox row) before it is sent.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import declarative_base, relationship, sessionmaker

Base = declarative_base()

# Conversation owners: who answers the worker. Changed only through the handoff service.
BOT, QUEUED, HUMAN, CLOSED = "bot", "queued", "human", "closed"
# Inbound message states.
RECEIVED, ANSWERED, KEPT = "received", "answered", "kept"  # kept: stored for operators, no bot answer
# Outbound message states.
PENDING, SENT, FAILED = "pending", "sent", "failed"
# Case states.
CASE_QUEUED, CASE_ASSIGNED, CASE_ESCALATED, CASE_RESOLVED = "queued", "assigned", "escalated", "resolved"
OPEN_CASE_STATES = (CASE_QUEUED, CASE_ASSIGNED, CASE_ESCALATED)
ROLES = ("operator", "supervisor", "editor", "admin")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("channel", "sender", name="uq_conversation_channel_sender"),)

    id = Column(Integer, primary_key=True)
    channel = Column(String(16), nullable=False)
    sender = Column(String(128), nullable=False)  # platform user id: shown to no one, never logged
    language = Column(String(8))
    owner = Column(String(8), nullable=False, default=BOT)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    last_inbound_at = Column(DateTime)
    slow_down_noted_at = Column(DateTime)

    messages = relationship("Message", back_populates="conversation", order_by="Message.id")


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel", "platform_message_id", name="uq_message_channel_platform_id"),
        Index("ix_messages_conversation", "conversation_id", "id"),
        Index("ix_messages_status", "direction", "status"),
    )

    id = Column(Integer, primary_key=True)
    conversation_id = Column(Integer, ForeignKey("conversations.id"), nullable=False)
    channel = Column(String(16), nullable=False)
    direction = Column(String(3), nullable=False)  # in | out
    author = Column(String(16), nullable=False)  # worker | bot | operator | system
    kind = Column(String(16), nullable=False, default="text")
    text = Column(Text)
    platform_message_id = Column(String(128))  # inbound: the platform's id (dedupe); outbound: as sent
    status = Column(String(16), nullable=False)
    intent = Column(String(64))
    topic = Column(String(32))
    urgent_category = Column(String(32))
    language = Column(String(8))
    created_at = Column(DateTime, nullable=False, default=utcnow)

    conversation = relationship("Conversation", back_populates="messages")


class OutboxItem(Base):
    """An outbound message still to be delivered by its channel, with its retry state."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id = Column(Integer, primary_key=True)
    message_id = Column(Integer, ForeignKey("messages.id"), nullable=False, unique=True)
    conversation_id = Column(Integer, ForeignKey("conversations.id"), nullable=False)
    status = Column(String(16), nullable=False, default=PENDING)
    attempts = Column(Integer, nullable=False, default=0)
    next_attempt_at = Column(DateTime, nullable=False, default=utcnow)
    last_error = Column(String(200))
    sent_at = Column(DateTime)

    message = relationship("Message")


class Operator(Base):
    __tablename__ = "operators"

    id = Column(Integer, primary_key=True)
    username = Column(String(64), nullable=False, unique=True)
    password_hash = Column(String(200), nullable=False)
    role = Column(String(16), nullable=False)
    failed_logins = Column(Integer, nullable=False, default=0)
    locked_until = Column(DateTime)
    created_at = Column(DateTime, nullable=False, default=utcnow)


class OperatorSession(Base):
    """A console login: the cookie holds a random token, the table only its hash."""

    __tablename__ = "operator_sessions"

    token_hash = Column(String(64), primary_key=True)
    operator_id = Column(Integer, ForeignKey("operators.id"), nullable=False)
    csrf = Column(String(64), nullable=False)
    expires_at = Column(DateTime, nullable=False)

    operator = relationship("Operator")


class Case(Base):
    """A handoff to a person: opened by the handoff service, worked in the console."""

    __tablename__ = "cases"
    __table_args__ = (Index("ix_cases_status", "status", "urgent", "queued_at"),)

    id = Column(Integer, primary_key=True)
    reference = Column(String(16), nullable=False, unique=True)
    conversation_id = Column(Integer, ForeignKey("conversations.id"), nullable=False)
    status = Column(String(16), nullable=False)
    urgent = Column(Integer, nullable=False, default=0)
    category = Column(String(32))
    topic = Column(String(32))
    language = Column(String(8))
    channel = Column(String(16), nullable=False)
    reason = Column(String(32), nullable=False)  # asked | not_understood | urgent
    operator_id = Column(Integer, ForeignKey("operators.id"))
    consent = Column(String(16))  # yes | no | anonymous
    consent_asked_at = Column(DateTime)
    outcome = Column(Text)
    escalation_reason = Column(Text)
    queued_at = Column(DateTime, nullable=False, default=utcnow)
    first_reply_at = Column(DateTime)
    resolved_at = Column(DateTime)
    still_waiting_noted_at = Column(DateTime)

    conversation = relationship("Conversation")
    operator = relationship("Operator")


class CaseNote(Base):
    __tablename__ = "case_notes"

    id = Column(Integer, primary_key=True)
    case_id = Column(Integer, ForeignKey("cases.id"), nullable=False, index=True)
    operator_id = Column(Integer, ForeignKey("operators.id"), nullable=False)
    text = Column(Text, nullable=False)
    created_at = Column(DateTime, nullable=False, default=utcnow)

    operator = relationship("Operator")


class AuditEntry(Base):
    """Who did what to a case, and when: every action and every read."""

    __tablename__ = "audit"

    id = Column(Integer, primary_key=True)
    case_id = Column(Integer, ForeignKey("cases.id"), index=True)
    actor = Column(String(64), nullable=False)  # an operator's username, or bot / worker / system
    action = Column(String(32), nullable=False)
    detail = Column(String(200))
    created_at = Column(DateTime, nullable=False, default=utcnow)


class ChannelState(Base):
    """Small values a channel keeps between runs (Zalo's rotating tokens)."""

    __tablename__ = "channel_state"

    key = Column(String(64), primary_key=True)
    value = Column(Text, nullable=False)
    version = Column(Integer, nullable=False, default=1)
    updated_at = Column(Float, nullable=False)


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets its folder made, a busy timeout and foreign keys."""
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, future=True)

        @event.listens_for(engine, "connect")
        def _pragmas(connection, _record) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, future=True)


def migrate(url: str) -> None:
    """Bring the database at `url` to the newest schema (Alembic upgrade head)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "head")


def session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(bind=engine, expire_on_commit=False, future=True)
