"""Console events: in one process, and across processes through a real Redis (scale-out mode)."""

import asyncio

from helpline.events import EventBus

REDIS = "redis://127.0.0.1:6379/0"


async def _receive_one(bus, publisher, event):
    async with bus.subscribe() as queue:
        await asyncio.sleep(0.2)  # the Redis subscription is live
        await publisher.publish(event)
        return await asyncio.wait_for(queue.get(), timeout=5)


def test_in_process_events_reach_every_subscriber():
    async def scenario():
        bus = EventBus()
        async with bus.subscribe() as first, bus.subscribe() as second:
            await bus.publish({"id": 1, "change": "opened"})
            return first.get_nowait(), second.get_nowait()

    assert asyncio.run(scenario()) == ({"id": 1, "change": "opened"},) * 2


def test_an_event_published_by_one_process_reaches_consoles_of_another_through_redis():
    async def scenario():
        one, two = EventBus(REDIS), EventBus(REDIS)
        await one.start()
        await two.start()
        try:
            return await _receive_one(two, one, {"id": 7, "change": "claimed", "urgent": True})
        finally:
            await one.stop()
            await two.stop()

    assert asyncio.run(scenario()) == {"id": 7, "change": "claimed", "urgent": True}
