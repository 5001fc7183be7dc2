"""The outbox: every reply is a row before it is sent; the sender delivers due rows through their
channel's adapter, retries failures with backoff, and after a restart carries on where it stopped.

Replies to one conversation go out in order: a conversation's later rows wait while its earliest
undelivered row waits for a retry.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Dict, Iterable, List, Optional

from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker

from channel_adapters.base import ChannelAdapter, DeliveryError, OutboundMessage
from helpline import logs
from helpline.store import FAILED, PENDING, SENT, Conversation, Message, OutboxItem, utcnow

log = logging.getLogger(__name__)
MAX_BACKOFF = 300.0
CONCURRENCY = 8
# Seconds between two messages to one worker, where the platform limits it (Telegram: about 1 a second per chat).
PACING = {"telegram": 1.0}


class Outbox:
    """Delivers pending outbound messages."""

    def __init__(self, sessions: sessionmaker, adapters: Dict[str, ChannelAdapter], max_attempts: int,
                 backoff: float) -> None:
        self._sessions = sessions
        self._adapters = adapters
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._wake = asyncio.Event()
        self._limit = asyncio.Semaphore(CONCURRENCY)

    def wake(self) -> None:
        """New rows are due: deliver them now rather than at the next poll."""
        self._wake.set()

    async def run(self, poll: float = 1.0) -> None:
        """Deliver due rows until cancelled."""
        while True:
            try:
                await self.deliver_due()
            except Exception as error:  # the loop must outlive a database hiccup; the rows stay pending
                logs.event(log, "outbox.loop_error", logging.ERROR, error=type(error).__name__)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=poll)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    def _due(self) -> List[int]:
        """Ids of the first pending row of each conversation, when that row is due."""
        now = utcnow()
        with self._sessions() as session:
            rows = session.execute(
                select(OutboxItem.id, OutboxItem.conversation_id, OutboxItem.next_attempt_at)
                .where(OutboxItem.status == PENDING).order_by(OutboxItem.id)
            ).all()
        first: Dict[int, tuple] = {}
        for row in rows:
            first.setdefault(row.conversation_id, row)
        return [row.id for row in first.values() if row.next_attempt_at <= now]

    async def deliver_due(self) -> int:
        """Send every due row once; return how many were sent."""
        due = await asyncio.to_thread(self._due)
        results = await asyncio.gather(*(self._deliver(item_id) for item_id in due))
        return sum(results)

    async def _deliver(self, item_id: int) -> bool:
        async with self._limit:
            loaded = await asyncio.to_thread(self._load, item_id)
            if loaded is None:
                return False
            outbound, conversation_id = loaded
            adapter = self._adapters.get(outbound.channel)
            if adapter is None:
                await asyncio.to_thread(self._fail, item_id, "channel is off", retry=False)
                return False
            try:
                await adapter.send(outbound)
            except DeliveryError as error:
                await asyncio.to_thread(self._fail, item_id, error.reason, error.retryable)
                logs.event(log, "outbox.send_failed", logging.WARNING, channel=outbound.channel,
                           conversation=conversation_id, retryable=error.retryable, reason=error.code or "error")
                return False
            except Exception as error:  # an adapter bug must not lose the message: retry it
                await asyncio.to_thread(self._fail, item_id, type(error).__name__, True)
                logs.event(log, "outbox.send_error", logging.ERROR, channel=outbound.channel,
                           conversation=conversation_id, error=type(error).__name__)
                return False
            await asyncio.to_thread(self.mark_sent, [item_id])
            if outbound.channel in PACING:
                await asyncio.to_thread(self._pace, conversation_id, PACING[outbound.channel])
            logs.event(log, "outbox.sent", channel=outbound.channel, conversation=conversation_id)
            return True

    def _load(self, item_id: int) -> Optional[tuple]:
        with self._sessions() as session:
            item = session.get(OutboxItem, item_id)
            if item is None or item.status != PENDING:
                return None
            message = item.message
            conversation = session.get(Conversation, item.conversation_id)
            return OutboundMessage(message.channel, conversation.sender, message.text or ""), conversation.id

    def mark_sent(self, item_ids: Iterable[int]) -> int:
        """Mark rows delivered (by the sender, a WeChat passive reply or a web response); returns how
        many were still pending, so a row is never delivered twice."""
        ids = list(item_ids)
        if not ids:
            return 0
        now = utcnow()
        with self._sessions.begin() as session:
            claimed = session.execute(
                update(OutboxItem).where(OutboxItem.id.in_(ids), OutboxItem.status == PENDING)
                .values(status=SENT, sent_at=now).execution_options(synchronize_session=False)
            ).rowcount
            message_ids = select(OutboxItem.message_id).where(OutboxItem.id.in_(ids)).scalar_subquery()
            session.execute(update(Message).where(Message.id.in_(message_ids))
                            .values(status=SENT).execution_options(synchronize_session=False))
        return claimed

    def _pace(self, conversation_id: int, seconds: float) -> None:
        """Hold the conversation's next reply for `seconds` after this one."""
        earliest = utcnow() + dt.timedelta(seconds=seconds)
        with self._sessions.begin() as session:
            session.execute(update(OutboxItem).where(OutboxItem.conversation_id == conversation_id,
                                                     OutboxItem.status == PENDING, OutboxItem.next_attempt_at < earliest)
                            .values(next_attempt_at=earliest).execution_options(synchronize_session=False))

    def _fail(self, item_id: int, reason: str, retry: bool) -> None:
        with self._sessions.begin() as session:
            item = session.get(OutboxItem, item_id)
            item.attempts += 1
            item.last_error = reason[:200]
            if retry and item.attempts < self._max_attempts:
                delay = min(self._backoff * 2 ** (item.attempts - 1), MAX_BACKOFF)
                item.next_attempt_at = utcnow() + dt.timedelta(seconds=delay)
            else:
                item.status = FAILED
                item.message.status = FAILED
