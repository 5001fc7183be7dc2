"""The console's JSON API under /api (described by the app's OpenAPI at /openapi.json).

Every request is checked here for the operator's session and, for changes, the CSRF token; the
handoff service checks role and assignment on every case it touches.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any, Callable, Dict, List, Optional

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from helpline import auth
from helpline.handoff import Effects, HandoffError
from helpline.store import Case, Message

COOKIE = "helpline_session"
KEEPALIVE_SECONDS = 15.0


class LoginBody(BaseModel):
    username: str = Field(..., max_length=64)
    password: str = Field(..., max_length=256)


class TextBody(BaseModel):
    text: str = Field(..., max_length=4000)


class ReasonBody(BaseModel):
    reason: str = Field(..., max_length=2000)
    contact_factory: bool = False


class OutcomeBody(BaseModel):
    outcome: str = Field(..., max_length=2000)


class AssignBody(BaseModel):
    operator: str = Field(..., max_length=64)


def _time(value: Optional[dt.datetime]) -> Optional[str]:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def _error(message: str, code: str, status: int, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, "code": code, **extra}, status_code=status)


def build_router(runtime_of: Callable[[Request], Any]) -> APIRouter:
    """The /api routes; `runtime_of(request)` gives the gateway's runtime (sessions, handoff, events)."""
    router = APIRouter(prefix="/api", tags=["console"])

    def identity(request: Request) -> auth.Identity:
        runtime = runtime_of(request)
        who = auth.identify(runtime.sessions, request.cookies.get(COOKIE))
        if who is None:
            raise _Unauthorized()
        if request.method == "POST" and request.headers.get("x-csrf-token") != who.csrf:
            raise _Forbidden("missing or wrong CSRF token")
        return who

    async def act(request: Request, call: Callable[[], Effects]) -> Effects:
        runtime = runtime_of(request)
        effects = await asyncio.to_thread(call)
        await runtime.publish(effects)
        return effects

    def summary(session: Any, case: Case) -> Dict[str, Any]:
        last_operator = session.execute(
            select(func.max(Message.id)).where(Message.conversation_id == case.conversation_id,
                                               Message.author == "operator")).scalar()
        unread = session.execute(
            select(func.count(Message.id)).where(Message.conversation_id == case.conversation_id,
                                                 Message.direction == "in", Message.id > (last_operator or 0))).scalar()
        waited_until = case.resolved_at or case.first_reply_at or dt.datetime.utcnow()
        return {
            "id": case.id, "reference": case.reference, "status": case.status, "urgent": bool(case.urgent),
            "category": case.category, "topic": case.topic, "language": case.language, "channel": case.channel,
            "operator": case.operator.username if case.operator else None, "queued_at": _time(case.queued_at),
            "waiting_seconds": int((waited_until - case.queued_at).total_seconds()), "unread": unread,
        }

    def details(request: Request, who: auth.Identity, case_id: int) -> Dict[str, Any]:
        runtime = runtime_of(request)
        found = runtime.handoff.read(who, case_id)
        case = found["case"]
        with runtime.sessions() as session:
            case = session.get(Case, case.id)
            result = summary(session, case)
        window = found["window"]
        result.update({
            "consent": case.consent, "consent_asked": bool(case.consent_asked_at), "outcome": case.outcome,
            "escalation_reason": case.escalation_reason, "first_reply_at": _time(case.first_reply_at),
            "resolved_at": _time(case.resolved_at), "reason": case.reason,
            "window": {**window, "closes_at": _time(window["closes_at"])},
            "messages": [{"id": m.id, "direction": m.direction, "author": m.author, "text": m.text, "kind": m.kind,
                          "status": m.status, "at": _time(m.created_at), "intent": m.intent, "topic": m.topic, "language": m.language,
                          "urgent_category": m.urgent_category} for m in found["messages"]],
            "notes": [{"id": n.id, "author": author, "text": n.text, "at": _time(n.created_at)} for n, author in found["notes"]],
            "audit": [{"actor": a.actor, "action": a.action, "detail": a.detail, "at": _time(a.created_at)}
                      for a in found["audit"]],
        })
        return result

    @router.post("/login")
    async def login(request: Request, body: LoginBody) -> Response:
        runtime = runtime_of(request)
        try:
            token, who = await asyncio.to_thread(auth.login, runtime.sessions, body.username, body.password)
        except auth.AuthError as error:
            await asyncio.sleep(0.5)  # slows guessing; the lock-out stops it
            if error.code == "locked":
                return _error(str(error), error.code, 423, retry_after=error.retry_after)
            return _error(str(error), error.code, 401)
        response = JSONResponse({"operator": {"id": who.id, "username": who.username, "role": who.role}, "csrf": who.csrf})
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=runtime.settings.cookie_secure,
                            max_age=auth.SESSION_HOURS * 3600, path="/")
        return response

    @router.post("/logout")
    async def logout(request: Request, who: auth.Identity = Depends(identity)) -> Response:
        await asyncio.to_thread(auth.logout, runtime_of(request).sessions, request.cookies.get(COOKIE, ""))
        response = JSONResponse({"ok": True})
        response.delete_cookie(COOKIE, path="/")
        return response

    @router.get("/me")
    async def me(who: auth.Identity = Depends(identity)) -> Dict[str, Any]:
        return {"operator": {"id": who.id, "username": who.username, "role": who.role}, "csrf": who.csrf}

    @router.get("/cases")
    async def cases(request: Request, status: str = "open", who: auth.Identity = Depends(identity)) -> Response:
        if status not in ("open", "mine", "queued", "assigned", "escalated", "resolved"):
            return _error("status must be open, mine, queued, assigned, escalated or resolved", "bad_status", 400)
        runtime = runtime_of(request)

        def load() -> List[Dict[str, Any]]:
            found = runtime.handoff.list_cases(who, status)
            with runtime.sessions() as session:
                return [summary(session, session.get(Case, c.id)) for c in found]

        return JSONResponse({"cases": await asyncio.to_thread(load)})

    @router.get("/cases/{case_id}")
    async def case(request: Request, case_id: int, who: auth.Identity = Depends(identity)) -> Response:
        return JSONResponse(await asyncio.to_thread(details, request, who, case_id))

    async def changed(request: Request, who: auth.Identity, case_id: int, call: Callable[[], Effects],
                      status: int = 200) -> Response:
        effects = await act(request, call)
        body = await asyncio.to_thread(details, request, who, case_id)
        if effects.message_id:
            body["sent"] = effects.message_id
        return JSONResponse(body, status_code=status)

    @router.post("/cases/{case_id}/claim")
    async def claim(request: Request, case_id: int, who: auth.Identity = Depends(identity)) -> Response:
        return await changed(request, who, case_id, lambda: runtime_of(request).handoff.claim(who, case_id))

    @router.post("/cases/{case_id}/messages", status_code=201)
    async def reply(request: Request, case_id: int, body: TextBody, who: auth.Identity = Depends(identity)) -> Response:
        return await changed(request, who, case_id, lambda: runtime_of(request).handoff.reply(who, case_id, body.text), 201)

    @router.post("/cases/{case_id}/notes", status_code=201)
    async def note(request: Request, case_id: int, body: TextBody, who: auth.Identity = Depends(identity)) -> Response:
        return await changed(request, who, case_id, lambda: runtime_of(request).handoff.note(who, case_id, body.text), 201)

    @router.post("/cases/{case_id}/escalate")
    async def escalate(request: Request, case_id: int, body: ReasonBody, who: auth.Identity = Depends(identity)) -> Response:
        return await changed(request, who, case_id, lambda: runtime_of(request).handoff.escalate(
            who, case_id, body.reason, body.contact_factory))

    @router.post("/cases/{case_id}/resolve")
    async def resolve(request: Request, case_id: int, body: OutcomeBody, who: auth.Identity = Depends(identity)) -> Response:
        return await changed(request, who, case_id, lambda: runtime_of(request).handoff.resolve(who, case_id, body.outcome))

    @router.post("/cases/{case_id}/handback")
    async def handback(request: Request, case_id: int, who: auth.Identity = Depends(identity)) -> Response:
        return await changed(request, who, case_id, lambda: runtime_of(request).handoff.handback(who, case_id))

    @router.post("/cases/{case_id}/consent/ask")
    async def ask_consent(request: Request, case_id: int, who: auth.Identity = Depends(identity)) -> Response:
        return await changed(request, who, case_id, lambda: runtime_of(request).handoff.ask_consent(who, case_id))

    @router.post("/cases/{case_id}/assign")
    async def assign(request: Request, case_id: int, body: AssignBody, who: auth.Identity = Depends(identity)) -> Response:
        return await changed(request, who, case_id, lambda: runtime_of(request).handoff.assign(who, case_id, body.operator))

    @router.get("/operators")
    async def operators(request: Request, who: auth.Identity = Depends(identity)) -> Response:
        found = await asyncio.to_thread(runtime_of(request).handoff.operators, who)
        return JSONResponse({"operators": [{"id": o.id, "username": o.username, "role": o.role} for o in found]})

    @router.get("/events")
    async def events(request: Request, who: auth.Identity = Depends(identity)) -> Response:
        bus = runtime_of(request).events

        async def stream():
            async with bus.subscribe() as queue:
                yield ": connected\n\n"
                while True:
                    try:
                        event = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_SECONDS)
                    except asyncio.TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    yield f"event: case\ndata: {json.dumps(event)}\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    return router


class _Unauthorized(Exception):
    pass


class _Forbidden(Exception):
    pass


def install_error_handlers(app: Any) -> None:
    """Turn the API's refusals into JSON with a status and a code."""

    @app.exception_handler(_Unauthorized)
    async def unauthorized(_request: Request, _error: _Unauthorized) -> Response:
        return _error_response("log in first", "unauthorized", 401)

    @app.exception_handler(_Forbidden)
    async def forbidden(_request: Request, error: _Forbidden) -> Response:
        return _error_response(str(error), "forbidden", 403)

    @app.exception_handler(HandoffError)
    async def refused(_request: Request, error: HandoffError) -> Response:
        return _error_response(str(error), error.code, error.status)


def _error_response(message: str, code: str, status: int) -> Response:
    return JSONResponse({"error": message, "code": code}, status_code=status)
