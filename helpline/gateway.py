"""The messaging gateway: the web app that receives the platforms' webhooks, stores every message,
lets the assistant answer, and delivers the answers (one process, ASGI).

`create_app(settings)` builds it; `helpline run` serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker

from channel_adapters import base
from channel_adapters.web import WebAdapter
from helpline import logs, store
from helpline.api import build_router, install_error_handlers
from helpline.assistant import Assistant
from helpline.channels import build_adapters
from helpline.conversations import Accepted, Conversations
from helpline.events import EventBus
from helpline.handoff import Effects, Handoff, log_effects
from helpline.outbox import Outbox
from helpline.paths import ProjectPaths
from helpline.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What the app holds while it runs."""

    settings: Settings
    sessions: sessionmaker
    assistant: Assistant
    adapters: Dict[str, Any]
    conversations: Conversations
    outbox: Outbox
    handoff: Handoff
    events: EventBus
    tasks: List["asyncio.Task[Any]"] = field(default_factory=list)

    async def publish(self, effects: Effects) -> None:
        """After a handoff change: console events, the on-call notice for urgent cases, and the outbox."""
        log_effects(effects)
        for event in effects.events:
            await self.events.publish(event)
        for urgent in effects.urgent_cases:
            self.tasks.append(asyncio.create_task(_notify_oncall(self.settings.oncall_webhook_url, urgent)))
        self.outbox.wake()


async def _notify_oncall(url: Optional[str], urgent: Dict[str, Any]) -> None:
    """POST an urgent case to the on-call webhook (ids and category only), three tries."""
    logs.event(log, "oncall.urgent_case", case=urgent["case_id"], category=urgent["category"])
    if not url:
        return
    import httpx

    async with httpx.AsyncClient(timeout=10) as client:
        for attempt in range(3):
            try:
                response = await client.post(url, json={"event": "urgent_case", **urgent})
                if response.status_code < 300:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(2 ** attempt)
    logs.event(log, "oncall.failed", logging.ERROR, case=urgent["case_id"])


CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "media-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


class BodyTooLarge(base.WebhookRejected):
    status = 413


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body over {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(settings: Settings, assistant: Optional[Assistant] = None,
               paths: ProjectPaths = ProjectPaths()) -> FastAPI:
    """The gateway app. The assistant is loaded at start-up unless one is given (tests share one)."""
    settings = settings.with_secret(paths.root / "var")
    logs.quiet_libraries()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await asyncio.to_thread(store.migrate, settings.database_url)
        engine = store.make_engine(settings.database_url)
        sessions = store.session_factory(engine)
        loaded = assistant or await asyncio.to_thread(Assistant.load, paths)
        adapters = build_adapters(settings, sessions)
        outbox = Outbox(sessions, adapters, settings.outbox_max_attempts, settings.outbox_backoff_seconds)
        events = EventBus(settings.redis_url)
        await events.start()
        handoff = Handoff(sessions, settings, loaded.render)
        runtime: Runtime

        async def publish(effects: Effects) -> None:
            await runtime.publish(effects)

        conversations = Conversations(sessions, loaded, settings, handoff, outbox.wake, publish)
        runtime = Runtime(settings, sessions, loaded, adapters, conversations, outbox, handoff, events)
        runtime.tasks.append(asyncio.create_task(outbox.run()))
        unfinished = await asyncio.to_thread(conversations.unfinished)
        runtime.tasks += [conversations.schedule(cid) for cid in unfinished]
        logs.event(log, "gateway.ready", channels=",".join(sorted(adapters)) or "none", resumed=len(unfinished))
        app.state.runtime = runtime
        try:
            yield
        finally:
            app.state.runtime = None
            for task in runtime.tasks:
                task.cancel()
            await asyncio.gather(*runtime.tasks, return_exceptions=True)
            for adapter in adapters.values():
                await adapter.aclose()
            await events.stop()
            engine.dispose()

    app = FastAPI(title="helpline", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Messaging gateway (webhooks) and the operator console's API.")
    app.state.runtime = None

    def runtime_of(request: Request) -> Runtime:
        return request.app.state.runtime

    app.include_router(build_router(runtime_of))
    install_error_handlers(app)
    from helpline import console

    console.mount(app)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if request.url.path.startswith(("/console", "/api")):
            response.headers["Content-Security-Policy"] = CSP
            response.headers["X-Frame-Options"] = "DENY"
            if not request.url.path.startswith("/console/static/"):
                response.headers["Cache-Control"] = "no-store"  # case data must not linger in caches
        return response

    @app.get("/healthz")
    async def healthz(request: Request) -> Response:
        runtime = runtime_of(request)
        if runtime is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ok", "channels": sorted(runtime.adapters)})

    async def receive(request: Request, channel: str) -> tuple:
        """Verify, parse and store; returns (adapter, [(inbound, accepted or None)]) or a Response."""
        runtime = runtime_of(request)
        adapter = runtime.adapters.get(channel) if runtime else None
        if adapter is None:
            return None, PlainTextResponse("channel is off", status_code=404)
        try:
            body = await _read_body(request, runtime.settings.max_body_bytes)
            webhook = base.WebhookRequest(request.method, dict(request.query_params),
                                          {k.lower(): v for k, v in request.headers.items()}, body)
            inbound = adapter.parse(webhook)
        except base.WebhookRejected as rejected:
            logs.event(log, "webhook.rejected", logging.WARNING, channel=channel, status=rejected.status,
                       reason=rejected.reason.replace(" ", "_")[:80])
            return None, JSONResponse({"error": rejected.reason}, status_code=rejected.status)
        except Exception as error:  # an adapter bug on hostile input: refuse, never a 500
            logs.event(log, "webhook.unparsable", logging.ERROR, channel=channel, error=type(error).__name__)
            return None, JSONResponse({"error": "malformed request"}, status_code=400)
        stored = []
        for message in inbound:
            accepted = await asyncio.to_thread(runtime.conversations.accept, message)
            stored.append((message, accepted))
        return adapter, stored

    def schedule_all(runtime: Runtime, stored: List[tuple]) -> None:
        for conversation_id in {a.conversation_id for _, a in stored if a}:
            runtime.conversations.schedule(conversation_id)

    @app.post("/webhooks/zalo")
    @app.post("/webhooks/telegram")
    async def push_webhook(request: Request) -> Response:
        channel = request.url.path.rsplit("/", 1)[-1]
        adapter, stored = await receive(request, channel)
        if adapter is None:
            return stored
        schedule_all(runtime_of(request), stored)
        return JSONResponse({"ok": True})

    @app.get("/webhooks/wechat")
    async def wechat_verify(request: Request) -> Response:
        runtime = runtime_of(request)
        adapter = runtime.adapters.get("wechat") if runtime else None
        if adapter is None:
            return PlainTextResponse("channel is off", status_code=404)
        try:
            return PlainTextResponse(adapter.verify_get(dict(request.query_params)))
        except base.WebhookRejected as rejected:
            logs.event(log, "webhook.rejected", logging.WARNING, channel="wechat", status=rejected.status,
                       reason="verification")
            return PlainTextResponse("forbidden", status_code=rejected.status)

    @app.post("/webhooks/wechat")
    async def wechat_webhook(request: Request) -> Response:
        adapter, stored = await receive(request, "wechat")
        if adapter is None:
            return stored
        runtime = runtime_of(request)
        fresh = [(m, a) for m, a in stored if a]
        if len(fresh) != 1:
            schedule_all(runtime, stored)
            return PlainTextResponse("success")
        inbound, accepted = fresh[0]
        return await _passive_or_success(runtime, adapter, inbound, accepted)

    async def _passive_or_success(runtime: Runtime, adapter: Any, inbound: base.InboundMessage,
                                  accepted: Accepted) -> Response:
        """Answer in the HTTP response when the reply is ready in time (WeChat's passive reply), else
        'success' and the customer-service API through the outbox."""
        seconds = runtime.settings.wechat_passive_seconds
        answer = await runtime.conversations.answer_within(accepted, seconds, hold=seconds + 1.0)
        body = None
        if answer and answer.outbox_ids:
            body = adapter.passive_reply(inbound, answer.texts[0])  # None when too long for a passive reply
            if body is not None and not await asyncio.to_thread(runtime.outbox.mark_sent, answer.outbox_ids[:1]):
                body = None
        await asyncio.to_thread(_release, runtime.sessions, accepted.message_id)  # the rest go by the outbox
        runtime.outbox.wake()
        return Response(body, media_type="application/xml") if body else PlainTextResponse("success")

    @app.post("/webhooks/web")
    async def web_webhook(request: Request) -> Response:
        adapter, stored = await receive(request, "web")
        if adapter is None:
            return stored
        runtime = runtime_of(request)
        [(_, accepted)] = stored
        if accepted is None:
            return JSONResponse({"replies": [], "duplicate": True})
        answer = await runtime.conversations.answer_within(accepted, runtime.settings.web_wait_seconds)
        if answer is None:
            return JSONResponse({"replies": [], "pending": True})
        await asyncio.to_thread(runtime.outbox.mark_sent, answer.outbox_ids)
        last = await asyncio.to_thread(_last_outbound_id, runtime.sessions, accepted.conversation_id)
        return JSONResponse({"replies": answer.texts, "last_id": last})

    @app.get("/webhooks/web/messages")
    async def web_messages(request: Request, sender: str = "", after: int = 0) -> Response:
        runtime = runtime_of(request)
        if runtime is None or "web" not in runtime.adapters:
            return PlainTextResponse("channel is off", status_code=404)
        if not WebAdapter.valid_sender(sender):
            return JSONResponse({"error": "sender must be 16-64 letters, digits, _ or -"}, status_code=400)
        messages = await asyncio.to_thread(_web_messages, runtime.sessions, sender, after)
        return JSONResponse({"messages": messages})

    return app


def _release(sessions: sessionmaker, inbound_message_id: int) -> None:
    """Let the outbox send the replies it was holding for a passive reply (made due now)."""
    with sessions.begin() as session:
        message = session.get(store.Message, inbound_message_id)
        if message is None:
            return
        later = select(store.Message.id).where(store.Message.conversation_id == message.conversation_id,
                                               store.Message.id > inbound_message_id,
                                               store.Message.direction == "out").scalar_subquery()
        session.execute(update(store.OutboxItem).where(store.OutboxItem.message_id.in_(later),
                                                       store.OutboxItem.status == store.PENDING)
                        .values(next_attempt_at=store.utcnow()).execution_options(synchronize_session=False))


def _last_outbound_id(sessions: sessionmaker, conversation_id: int) -> int:
    with sessions() as session:
        return session.execute(
            select(store.Message.id).where(store.Message.conversation_id == conversation_id,
                                           store.Message.direction == "out").order_by(store.Message.id.desc()).limit(1)
        ).scalar_one_or_none() or 0


def _web_messages(sessions: sessionmaker, sender: str, after: int) -> List[Dict[str, Any]]:
    with sessions() as session:
        conversation = session.execute(
            select(store.Conversation).where(store.Conversation.channel == "web", store.Conversation.sender == sender)
        ).scalar_one_or_none()
        if conversation is None:
            return []
        rows = session.execute(
            select(store.Message).where(store.Message.conversation_id == conversation.id,
                                        store.Message.direction == "out", store.Message.id > after)
            .order_by(store.Message.id)
        ).scalars()
        return [{"id": m.id, "text": m.text, "author": m.author, "at": m.created_at.isoformat() + "Z"} for m in rows]
