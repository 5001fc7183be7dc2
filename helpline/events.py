"""Live events for the console (a case opened, claimed, a worker's new message...).

In one process the bus is in memory; in scale-out mode (`HELPLINE_REDIS_URL`) every process
publishes to Redis and relays what Redis sends to its own console connections, so a handoff taken
by one process shows in a console connected to another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, AsyncIterator, Dict, Optional, Set

from helpline import logs

log = logging.getLogger(__name__)
CHANNEL = "helpline.events"


class EventBus:
    """Publish events to every subscriber (in this process, and through Redis when configured)."""

    def __init__(self, redis_url: Optional[str] = None) -> None:
        self._subscribers: Set["asyncio.Queue[Dict[str, Any]]"] = set()
        self._redis_url = redis_url
        self._redis: Any = None
        self._relay: Optional["asyncio.Task[None]"] = None

    async def start(self) -> None:
        if not self._redis_url:
            return
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(self._redis_url)
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(CHANNEL)
        self._relay = asyncio.create_task(self._relay_from_redis(pubsub))

    async def _relay_from_redis(self, pubsub: Any) -> None:
        while True:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except Exception as error:  # Redis restarting: keep trying, the console re-fetches on reconnect
                logs.event(log, "events.redis_error", logging.WARNING, error=type(error).__name__)
                await asyncio.sleep(1.0)
                continue
            if message and message.get("type") == "message":
                self._deliver(json.loads(message["data"]))

    async def stop(self) -> None:
        if self._relay:
            self._relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay
        if self._redis:
            await self._redis.close()

    def _deliver(self, event: Dict[str, Any]) -> None:
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

    async def publish(self, event: Dict[str, Any]) -> None:
        """Send `event` (no message text, no platform id: ids and states only) to every console."""
        if self._redis is not None:
            await self._redis.publish(CHANNEL, json.dumps(event))
        else:
            self._deliver(event)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator["asyncio.Queue[Dict[str, Any]]"]:
        queue: "asyncio.Queue[Dict[str, Any]]" = asyncio.Queue(maxsize=1000)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
