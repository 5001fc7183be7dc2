"""A fake Telegram Bot API server for the tests.

Implements what python-telegram-bot calls for the helpline: `getMe` (what `Bot.initialize` and
`Application.initialize` call), `sendMessage`, and the webhook methods (`setWebhook`,
`deleteWebhook`, `getWebhookInfo`). Answers follow https://core.telegram.org/bots/api#making-requests:
`{"ok": true, "result": ...}`, or `{"ok": false, "error_code": ..., "description": ...}` with the same
HTTP status. Method names are case-insensitive, as in the real API. Parameters are read from the
query string, an urlencoded form (what python-telegram-bot sends) or a JSON body.

Usage:
    api = FakeTelegramApi("123:ABC")
    with serve(api.app) as base_url:
        adapter = TelegramAdapter(TelegramConfig(token="123:ABC", secret="s", api_base=base_url))
        ...
    api.sent_texts("42")
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http import HTTPStatus
from typing import Any, Dict, List, Optional, Set, Tuple
from urllib.parse import parse_qsl

import telegram
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

# Telegram refuses longer texts with "Bad Request: message is too long". A live measurement
# (FerroxLabs/wayland#934) found the limit counted in code points, which is what the fake counts.
MAX_TEXT_LENGTH = 4096


class FakeTelegramApi:
    """The Bot API for one bot token, on a Starlette app (`.app`).

    Records every request in `.requests` (dicts with `path`, `method`, `query`, `headers`, `json`:
    the request's parameters, whatever their encoding), every delivered message in `.sent` (dicts
    with `chat_id` as a string, `text`, `message_id`), and the webhook settings in `.webhook`.
    """

    def __init__(self, token: str, username: str = "helpline_test_bot") -> None:
        self.token = token
        self.username = username
        self.base_url: Optional[str] = None  # for the tests' convenience: set it to what serve() yields
        self.bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 1
        self.requests: List[Dict[str, Any]] = []
        self.sent: List[Dict[str, Any]] = []
        self.webhook: Dict[str, Any] = {}
        self._lock = threading.Lock()
        self._blocked: Set[str] = set()
        self._failures: List[Optional[Tuple[int, Optional[int]]]] = []
        self._hangs: List[float] = []
        self._message_ids: Dict[str, int] = {}
        self._methods = {
            "getme": self._get_me,
            "sendmessage": self._send_message,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
        }
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])

    # -- test controls -----------------------------------------------------------------------

    def fail_next(self, count: int = 1, status: int = 500, retry_after: Optional[int] = None, after: int = 0) -> None:
        """Answer the next `count` requests with HTTP `status` (and `parameters.retry_after`, as
        Telegram's flood control does with 429, when given), after letting `after` requests through."""
        with self._lock:
            self._failures.extend([None] * after + [(status, retry_after)] * count)

    def hang_next(self, count: int = 1, seconds: float = 5.0) -> None:
        """Hold the next `count` requests for up to `seconds` before answering, to make clients time
        out. A held request ends early when its client disconnects, and sends nothing."""
        with self._lock:
            self._hangs.extend([seconds] * count)

    def block(self, chat_id: Any) -> None:
        """The worker in `chat_id` blocks the bot: sends answer 403 "Forbidden: bot was blocked by the user"."""
        with self._lock:
            self._blocked.add(str(chat_id))

    def unblock(self, chat_id: Any) -> None:
        with self._lock:
            self._blocked.discard(str(chat_id))

    def reset(self) -> None:
        """Forget requests, sent messages, blocks, webhook settings and pending failures."""
        with self._lock:
            self.requests.clear()
            self.sent.clear()
            self.webhook.clear()
            self._blocked.clear()
            self._failures.clear()
            self._hangs.clear()
            self._message_ids.clear()

    def sent_texts(self, recipient: Any = None) -> List[str]:
        """The texts delivered, in order; only those to chat `recipient` when given."""
        with self._lock:
            return [m["text"] for m in self.sent if recipient is None or m["chat_id"] == str(recipient)]

    def calls(self, method: str) -> List[Dict[str, Any]]:
        """The recorded requests to Bot API method `method` (case-insensitive)."""
        with self._lock:
            return [r for r in self.requests if r["path"].rsplit("/", 1)[-1].lower() == method.lower()]

    # -- the server --------------------------------------------------------------------------

    async def _handle(self, request: Request) -> JSONResponse:
        params = await _parameters(request)
        with self._lock:
            self.requests.append(
                {
                    "path": request.url.path,
                    "method": request.method,
                    "query": dict(request.query_params),
                    "headers": dict(request.headers),
                    "json": params,
                }
            )
            hang = self._hangs.pop(0) if self._hangs else None
            failure = self._failures.pop(0) if self._failures else None
        if hang is not None:
            deadline = time.monotonic() + hang
            while time.monotonic() < deadline:
                if await request.is_disconnected():
                    return _error(HTTPStatus.GATEWAY_TIMEOUT, "client went away")
                await asyncio.sleep(0.02)
        if failure is not None:
            status, retry_after = failure
            if retry_after is not None:
                return _error(status, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
            return _error(status, _phrase(status))

        bot_token, _, method = request.path_params["path"].partition("/")
        if not bot_token.startswith("bot") or not method or "/" in method:
            return _error(HTTPStatus.NOT_FOUND, "Not Found")
        if bot_token[3:] != self.token:
            return _error(HTTPStatus.UNAUTHORIZED, "Unauthorized")
        handler = self._methods.get(method.lower())
        if handler is None:
            return _error(HTTPStatus.NOT_FOUND, "Not Found: method not found")
        return handler(params)

    def _get_me(self, params: Dict[str, Any]) -> JSONResponse:
        return _ok(self._bot_user())

    def _send_message(self, params: Dict[str, Any]) -> JSONResponse:
        chat_id = str(params.get("chat_id", "")).strip()
        text = params.get("text")
        if not chat_id:
            return _error(HTTPStatus.BAD_REQUEST, "Bad Request: chat_id is empty")
        chat = _chat(chat_id)
        if chat is None:
            return _error(HTTPStatus.BAD_REQUEST, "Bad Request: chat not found")
        if not isinstance(text, str) or not text.strip():
            return _error(HTTPStatus.BAD_REQUEST, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT_LENGTH:
            return _error(HTTPStatus.BAD_REQUEST, "Bad Request: message is too long")
        with self._lock:
            if chat_id in self._blocked:
                return _error(HTTPStatus.FORBIDDEN, "Forbidden: bot was blocked by the user")
            message_id = self._message_ids.get(chat_id, 0) + 1
            self._message_ids[chat_id] = message_id
            self.sent.append({"chat_id": chat_id, "text": text, "message_id": message_id})
        message = {"message_id": message_id, "from": self._bot_user(), "chat": chat, "date": int(time.time()), "text": text}
        return _ok(message)

    def _set_webhook(self, params: Dict[str, Any]) -> JSONResponse:
        with self._lock:
            self.webhook = {key: params[key] for key in ("url", "secret_token", "allowed_updates", "max_connections") if key in params}
        return _ok(True, "Webhook was set")

    def _delete_webhook(self, params: Dict[str, Any]) -> JSONResponse:
        with self._lock:
            self.webhook = {}
        return _ok(True, "Webhook was deleted")

    def _get_webhook_info(self, params: Dict[str, Any]) -> JSONResponse:
        with self._lock:
            url = self.webhook.get("url", "")
        return _ok({"url": url, "has_custom_certificate": False, "pending_update_count": 0})

    def _bot_user(self) -> Dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Helpline",
            "username": self.username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }


def text_update(update_id: int, chat_id: int, text: str, date: Optional[int] = None) -> bytes:
    """A webhook body: a private-chat text message from the worker `chat_id`, built with
    python-telegram-bot's own types (for end-to-end tests)."""
    import datetime as dt

    when = dt.datetime.fromtimestamp(date if date is not None else int(time.time()), tz=dt.timezone.utc)
    user = telegram.User(id=chat_id, first_name="Worker", is_bot=False)
    chat = telegram.Chat(id=chat_id, type=telegram.Chat.PRIVATE, first_name="Worker")
    message = telegram.Message(message_id=update_id, date=when, chat=chat, from_user=user, text=text)
    return telegram.Update(update_id=update_id, message=message).to_json().encode("utf-8")


async def _parameters(request: Request) -> Dict[str, Any]:
    params: Dict[str, Any] = dict(request.query_params)
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    if body and content_type.startswith("application/json"):
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict):
            params.update(data)
    elif body and content_type.startswith("application/x-www-form-urlencoded"):
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params


def _chat(chat_id: str) -> Optional[Dict[str, Any]]:
    if chat_id.startswith("@") and len(chat_id) > 1:
        return {"id": -1001000000000, "type": "channel", "title": chat_id[1:], "username": chat_id[1:]}
    try:
        number = int(chat_id)
    except ValueError:
        return None
    if number > 0:
        return {"id": number, "type": "private", "first_name": "Worker"}
    if chat_id.startswith("-100"):
        return {"id": number, "type": "supergroup", "title": "Group"}
    return {"id": number, "type": "group", "title": "Group"}


def _ok(result: Any, description: Optional[str] = None) -> JSONResponse:
    body: Dict[str, Any] = {"ok": True, "result": result}
    if description:
        body["description"] = description
    return JSONResponse(body)


def _error(status: int, description: str, parameters: Optional[Dict[str, Any]] = None) -> JSONResponse:
    body: Dict[str, Any] = {"ok": False, "error_code": int(status), "description": description}
    if parameters:
        body["parameters"] = parameters
    return JSONResponse(body, status_code=int(status))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
