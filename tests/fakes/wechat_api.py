"""A fake WeChat API (api.weixin.qq.com) for the tests: the two endpoints the adapter calls, every request
recorded, and failures on demand.

- GET  cgi-bin/token?grant_type=client_credential&appid=..&secret=..  -> {"access_token", "expires_in": 7200}
- POST cgi-bin/message/custom/send?access_token=..  (JSON body: touser, msgtype, text.content)
       -> {"errcode": 0, "errmsg": "ok"}; 40001 for an unknown token, 45015 for a closed window.

Use `serve(fake.app)` from tests.fakes.server and point the adapter's `api_base` at the URL it yields.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from typing import Any, Dict, List, Tuple

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

TOKEN_INVALID = 40001
WINDOW_CLOSED = 45015


class FakeWeChatApi:
    """The fake server; `app` is the Starlette app to serve. Safe to drive from the test thread while
    the server runs in its own."""

    def __init__(self, app_id: str = "wx0123456789abcdef", app_secret: str = "fake-app-secret") -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/cgi-bin/token", self._token, methods=["GET"]),
                Route("/cgi-bin/message/custom/send", self._custom_send, methods=["POST"]),
            ]
        )
        self.reset()

    # ---- test controls -------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget requests, tokens, closed windows and pending failures."""
        with self._lock:
            self.requests: List[Dict[str, Any]] = []
            self.sent: List[Dict[str, Any]] = []  # accepted custom/send bodies, in order
            self.tokens_issued: List[str] = []
            self._valid_tokens: set = set()
            self._token_numbers = itertools.count(1)
            self._closed: set = set()
            self._failures: List[int] = []  # HTTP statuses for the next requests
            self._hangs: List[float] = []  # seconds to sleep before the next answers
            self._errcodes: List[int] = []  # errcodes for the next custom/send calls

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        """Answer the next `count` requests (any endpoint) with HTTP `status`."""
        with self._lock:
            self._failures.extend([status] * count)

    def hang_next(self, count: int = 1, seconds: float = 1.0) -> None:
        """Sleep `seconds` before answering each of the next `count` requests (to cause client timeouts)."""
        with self._lock:
            self._hangs.extend([seconds] * count)

    def errcode_next(self, count: int = 1, errcode: int = -1) -> None:
        """Answer the next `count` custom/send calls with HTTP 200 and `errcode` (e.g. -1 system busy,
        45047 over the count, 40003 bad openid)."""
        with self._lock:
            self._errcodes.extend([errcode] * count)

    def close_window(self, openid: str) -> None:
        """From now on, sends to `openid` answer 45015 (the worker's last message is too old)."""
        with self._lock:
            self._closed.add(openid)

    def open_window(self, openid: str) -> None:
        """The worker wrote again: sends to `openid` are accepted."""
        with self._lock:
            self._closed.discard(openid)

    def invalidate_tokens(self) -> None:
        """Every access token issued so far is refused with 40001 (as when another process fetched a
        new one, or WeChat revoked it)."""
        with self._lock:
            self._valid_tokens.clear()

    def sent_texts(self, recipient: str | None = None) -> List[str]:
        """The texts WeChat accepted (errcode 0), in order, optionally only those to `recipient`."""
        with self._lock:
            return [body["text"]["content"] for body in self.sent if recipient is None or body["touser"] == recipient]

    # ---- endpoints -----------------------------------------------------------------------------

    async def _record(self, request: Request) -> Tuple[Any, Response | None]:
        """Record the request and apply pending failures; returns the JSON body and the failure answer,
        if any."""
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            self.requests.append(
                {
                    "method": request.method,
                    "path": request.url.path,
                    "query": dict(request.query_params),
                    "headers": dict(request.headers),
                    "json": body,
                    "raw": raw,
                }
            )
            hang = self._hangs.pop(0) if self._hangs else 0.0
            status = self._failures.pop(0) if self._failures else None
        if hang:
            await asyncio.sleep(hang)
        if status is not None:
            return body, PlainTextResponse("injected failure", status_code=status)
        return body, None

    async def _token(self, request: Request) -> Response:
        _, failure = await self._record(request)
        if failure is not None:
            return failure
        query = request.query_params
        if query.get("grant_type") != "client_credential":
            return JSONResponse({"errcode": 40002, "errmsg": "invalid grant_type"})
        if query.get("appid") != self.app_id:
            return JSONResponse({"errcode": 40013, "errmsg": "invalid appid"})
        if query.get("secret") != self.app_secret:
            return JSONResponse({"errcode": 40125, "errmsg": "invalid appsecret"})
        with self._lock:
            token = f"fake-token-{next(self._token_numbers)}"
            self.tokens_issued.append(token)
            self._valid_tokens.add(token)
        return JSONResponse({"access_token": token, "expires_in": 7200})

    async def _custom_send(self, request: Request) -> Response:
        body, failure = await self._record(request)
        if failure is not None:
            return failure
        with self._lock:
            if request.query_params.get("access_token") not in self._valid_tokens:
                return _errcode(TOKEN_INVALID, "invalid credential, access_token is invalid or not latest")
            if self._errcodes:
                return _errcode(self._errcodes.pop(0), "injected errcode")
            if not _is_text_message(body):
                return _errcode(44002, "empty post data or invalid message")
            if body["touser"] in self._closed:
                return _errcode(WINDOW_CLOSED, "response out of time limit or subscription is canceled")
            self.sent.append(body)
        return JSONResponse({"errcode": 0, "errmsg": "ok"})


def _errcode(code: int, message: str) -> Response:
    return JSONResponse({"errcode": code, "errmsg": message})


def _is_text_message(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and isinstance(body.get("touser"), str)
        and body.get("msgtype") == "text"
        and isinstance(body.get("text"), dict)
        and isinstance(body["text"].get("content"), str)
        and bool(body["text"]["content"])
    )
