"""A fake Zalo Official Account API: the customer-service send endpoint and the OAuth token refresh.

Behaves as the documented API does where the adapter can notice:
- POST /v3.0/oa/message/cs needs the header `access_token` equal to the current, unexpired access
  token, else `{"error": -216}`; a worker whose window was closed gets `{"error": -230}`.
  Application errors come with HTTP 200, as on Zalo.
- POST /v4/oa/access_token (form `refresh_token`, `app_id`, `grant_type=refresh_token`, header
  `secret_key`) rotates both tokens; a refresh token works once.
The -14xxx error codes of the OAuth host are not published; the ones used here are placeholders.

Serve it with `tests.fakes.server.serve(fake.app)`; point `ZaloConfig.api_base` and `oauth_base` at
the URL (with a trailing slash).
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SEND_PATH = "/v3.0/oa/message/cs"
TOKEN_PATH = "/v4/oa/access_token"
EXPIRES_IN = "90000"  # 25 hours, a string as Zalo sends it


class FakeZaloApi:
    """The fake API; `.app` is the Starlette app, `.requests` every request received, in order."""

    def __init__(
        self,
        app_id: str = "3608465248940903967",
        app_secret: str = "fake-app-secret",
        access_token: str = "access-1",
        refresh_token: str = "refresh-1",
    ) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self._initial = (access_token, refresh_token)
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route(SEND_PATH, self._send_cs, methods=["POST"]),
                Route(TOKEN_PATH, self._access_token, methods=["POST"]),
            ]
        )
        self.reset()

    # ------------------------------------------------------------------ test controls

    def reset(self) -> None:
        """Back to the initial tokens, no requests, no injected failures, every window open."""
        with self._lock:
            self.access_token, self.refresh_token = self._initial
            self.access_token_expired = False
            self.refresh_count = 0
            self.requests: List[Dict[str, Any]] = []
            self.sent: List[Dict[str, str]] = []
            self.closed_windows: set = set()
            self._used_refresh_tokens: set = set()
            self._failures: List[Tuple[Optional[str], int]] = []
            self._hangs: List[Tuple[Optional[str], float]] = []
            self._errors: List[Tuple[Optional[str], Dict[str, Any]]] = []
            self._counter = 0

    def fail_next(self, count: int, status: int = 500, path: Optional[str] = None) -> None:
        """Answer the next `count` requests (to `path`, or to any endpoint) with HTTP `status`."""
        with self._lock:
            self._failures.extend([(path, status)] * count)

    def hang_next(self, count: int, seconds: float, path: Optional[str] = None) -> None:
        """Sleep `seconds` before answering the next `count` requests (to `path`, or any)."""
        with self._lock:
            self._hangs.extend([(path, seconds)] * count)

    def error_next(self, count: int, error: int, message: str = "injected error", path: Optional[str] = SEND_PATH) -> None:
        """Answer the next `count` requests to `path` with HTTP 200 and `{"error": error, "message": ...}`."""
        with self._lock:
            self._errors.extend([(path, {"error": error, "message": message})] * count)

    def expire_token(self) -> None:
        """The current access token stops working (the refresh token still works)."""
        with self._lock:
            self.access_token_expired = True

    def close_window(self, user_id: str) -> None:
        """Sending to this worker fails with -230, as when their last interaction is over 7 days old."""
        with self._lock:
            self.closed_windows.add(user_id)

    def open_window(self, user_id: str) -> None:
        with self._lock:
            self.closed_windows.discard(user_id)

    def sent_texts(self, recipient: Optional[str] = None) -> List[str]:
        """The texts of the messages delivered (to `recipient`, or to anyone), in order."""
        with self._lock:
            return [item["text"] for item in self.sent if recipient is None or item["recipient"] == recipient]

    def requests_to(self, path: str) -> List[Dict[str, Any]]:
        with self._lock:
            return [item for item in self.requests if item["path"] == path]

    # ------------------------------------------------------------------ endpoints

    async def _send_cs(self, request: Request) -> Response:
        record, injected = await self._record_and_inject(request)
        if injected is not None:
            return injected
        body = record["json"]
        with self._lock:
            if request.headers.get("access_token") != self.access_token or self.access_token_expired:
                return JSONResponse({"error": -216, "message": "Access token is invalid"})
            if not isinstance(body, dict):
                return JSONResponse({"error": -201, "message": "body is invalid!"})
            recipient = body.get("recipient") if isinstance(body.get("recipient"), dict) else {}
            message = body.get("message") if isinstance(body.get("message"), dict) else {}
            user_id, text = recipient.get("user_id"), message.get("text")
            if not isinstance(user_id, str) or not user_id:
                return JSONResponse({"error": -201, "message": "user_id is invalid!"})
            if not isinstance(text, str) or not text or len(text) > 2000:
                return JSONResponse({"error": -201, "message": "text is invalid!"})
            if user_id in self.closed_windows:
                return JSONResponse({"error": -230, "message": "User has not interacted with the OA in the past 7 days"})
            self._counter += 1
            message_id = f"{self._counter:020x}"
            self.sent.append({"recipient": user_id, "text": text, "message_id": message_id})
        return JSONResponse({"error": 0, "message": "Success", "data": {"message_id": message_id, "user_id": user_id}})

    async def _access_token(self, request: Request) -> Response:
        record, injected = await self._record_and_inject(request)
        if injected is not None:
            return injected
        form = record["form"]
        with self._lock:
            if request.headers.get("secret_key") != self.app_secret:
                return JSONResponse({"error": -14001, "error_name": "Invalid secret key", "error_description": ""})
            if form.get("app_id") != self.app_id:
                return JSONResponse({"error": -14002, "error_name": "Invalid appId", "error_description": ""})
            if form.get("grant_type") != "refresh_token":
                return JSONResponse({"error": -14004, "error_name": "Invalid grant type", "error_description": ""})
            token = form.get("refresh_token")
            if token != self.refresh_token or token in self._used_refresh_tokens:
                return JSONResponse({"error": -14014, "error_name": "Invalid refresh token", "error_description": ""})
            self._used_refresh_tokens.add(token)
            self.refresh_count += 1
            self.access_token = f"access-{self.refresh_count + 1}"
            self.refresh_token = f"refresh-{self.refresh_count + 1}"
            self.access_token_expired = False
            return JSONResponse({"access_token": self.access_token, "refresh_token": self.refresh_token, "expires_in": EXPIRES_IN})

    async def _record_and_inject(self, request: Request) -> Tuple[Dict[str, Any], Optional[Response]]:
        """Record the request; apply an injected hang, failure or error aimed at this path."""
        raw = await request.body()
        try:
            parsed_json = json.loads(raw) if raw else None
        except ValueError:
            parsed_json = None
        form = {}
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = {key: values[-1] for key, values in parse_qs(raw.decode("utf-8", "replace")).items()}
        path = request.url.path
        record = {
            "path": path,
            "query": dict(request.query_params),
            "headers": {key.lower(): value for key, value in request.headers.items()},
            "json": parsed_json,
            "form": form,
        }
        with self._lock:
            self.requests.append(record)
            hang = _take(self._hangs, path)
            failure = _take(self._failures, path)
            error = _take(self._errors, path)
        if hang is not None:
            await asyncio.sleep(hang)
        if failure is not None:
            return record, JSONResponse({"error": -1, "message": "injected HTTP failure"}, status_code=failure)
        if error is not None:
            return record, JSONResponse(error)
        return record, None


def _take(queue: List[Tuple[Optional[str], Any]], path: str) -> Any:
    """Remove and return the first injected value aimed at `path` (or at any path)."""
    for index, (target, value) in enumerate(queue):
        if target is None or target == path:
            del queue[index]
            return value
    return None
