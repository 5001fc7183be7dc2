"""Zalo Official Account: verify and parse the webhook, send customer-service messages, rotate tokens.

Zalo has no standard Python SDK, so this module calls the REST API with httpx:

- Webhook: a JSON POST signed with `X-ZEvent-Signature: mac=<hex>`, where the hex is the plain
  SHA-256 (not an HMAC) of `app_id + raw body + timestamp + OA secret key`; `timestamp` is the
  event's own `timestamp` field. Zalo retries an event for hours (30 s, 5 min, 15 min, 30 min, 1 h)
  and then unsubscribes the app, so old timestamps are accepted: the inbox deduplicates on the id.
- Send: POST `v3.0/oa/message/cs` with the bare header `access_token`. Application errors arrive
  with HTTP 200 and a non-zero `error`: -216/-220 mean the access token is invalid or expired,
  -230/-232 that the worker has not interacted with the OA recently enough (the 7-day window).
- Tokens: the access token lasts about 25 h; the refresh token is single-use and rotates on every
  refresh (POST `v4/oa/access_token` on the OAuth host, header `secret_key`, form `refresh_token`,
  `app_id`, `grant_type=refresh_token`). One process refreshes at a time, under the token store's
  lock, and the new pair is saved before it is used: a lost refresh token needs an OA admin to
  grant the app again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, AsyncContextManager, Dict, List, Mapping, Optional, Protocol, Tuple

import httpx

from channel_adapters.base import (
    FILE,
    FOLLOW,
    IMAGE,
    LINK,
    LOCATION,
    OTHER,
    STICKER,
    TEXT,
    UNFOLLOW,
    VOICE,
    DeliveryError,
    InboundMessage,
    MalformedBody,
    OutboundMessage,
    SignatureInvalid,
    WebhookRequest,
    WindowClosed,
)

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-zevent-signature"
# Some deployments report the signed timestamp in this header as well; the documented source is the body.
TIMESTAMP_HEADER = "x-zevent-timestamp"
_MAC_RE = re.compile(r"(?:mac\s*=\s*)?([0-9a-fA-F]{64})")

# Worker messages (1:1 chats with the OA and anonymous visitors) and the kind each one is.
_MESSAGE_EVENTS: Dict[str, str] = {
    "user_send_text": TEXT,
    "user_send_image": IMAGE,
    "user_send_audio": VOICE,  # Zalo gives no transcript
    "user_send_sticker": STICKER,
    "user_send_gif": STICKER,
    "user_send_location": LOCATION,
    "user_send_file": FILE,
    "user_send_link": LINK,
    "user_send_video": OTHER,
    "user_send_business_card": OTHER,
    "anonymous_send_text": TEXT,
    "anonymous_send_image": IMAGE,
    "anonymous_send_audio": VOICE,
    "anonymous_send_sticker": STICKER,
    "anonymous_send_gif": STICKER,
    "anonymous_send_location": LOCATION,
    "anonymous_send_file": FILE,
    "anonymous_send_link": LINK,
    "anonymous_send_video": OTHER,
}
_FOLLOW_EVENTS = {"follow": FOLLOW, "unfollow": UNFOLLOW}

# Verified events that carry nothing for the service: echoes of the OA's own messages (the
# `oa_send_` prefix, which also covers group and anonymous echoes and call consent), group chats,
# read/delivery receipts, reactions, and OA management events.
_IGNORED_PREFIXES = ("oa_send_", "user_send_group_", "anonymous_send_group_")
_IGNORED_EVENTS = frozenset(
    {
        "user_seen_message",
        "user_received_message",
        "user_reacted_message",
        "oa_reacted_message",
        "anonymous_reacted_message",
        "user_click_chatnow",
        "user_submit_info",
        "update_user_info",
        "user_withdraw",
        "add_user_to_tag",
        "remove_user_from_tag",
        "remove_tag",
        "create_group",
        "user_join_group",
        "user_request_join_group",
        "accept_request_join_group",
        "reject_request_join_group",
        "react_request_join_group_accept",
        "react_request_join_group_reject",
        "add_group_admin",
        "remove_group_admin",
        "update_group_info",
        "user_out_group",
        "user_leave_group",
        "delete_group",
        "user_reply_consent",
        "user_call_oa",
        "oa_call_user",
        "widget_interaction_accepted",
        "widget_failed_to_sync_user_external_id",
        "extension_purchased",
        "change_template_status",
        "change_oa_daily_quota",
        "shop_has_order",
    }
)


@dataclass(frozen=True)
class ZaloConfig:
    """Settings for one Official Account, passed in by the service.

    `oa_secret` signs the webhook (Zalo's "OA secret key"); `app_secret` is the app's secret key,
    sent as the `secret_key` header when refreshing tokens.
    """

    app_id: str
    oa_secret: str = field(repr=False)
    app_secret: str = field(repr=False)
    api_base: str = "https://openapi.zalo.me/"
    oauth_base: str = "https://oauth.zaloapp.com/"
    timeout: float = 10.0
    # Refresh this many seconds before the recorded expiry rather than waiting for a -216.
    refresh_margin: float = 60.0
    max_body_bytes: int = 256 * 1024
    max_text_chars: int = 2000  # documented limit of a text consultation message
    token_error_codes: Tuple[int, ...] = (-216, -220)  # invalid / expired access token: refresh and retry once
    # -230: no interaction within 7 days; -232: no interaction, or the last one expired;
    # -305/-311: the older API's 48-hour window and reply quota.
    window_closed_codes: Tuple[int, ...] = (-230, -232, -305, -311)
    retryable_codes: Tuple[int, ...] = (-32,)  # rate limit reached


@dataclass(frozen=True)
class ZaloTokens:
    """The OA's token pair; `expires_at` is a Unix time (seconds), None when unknown."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: Optional[float] = None


class ZaloTokenStore(Protocol):
    """Where the token pair lives, shared by every process of the service."""

    async def load(self) -> ZaloTokens:
        """The current tokens."""

    async def save(self, tokens: ZaloTokens) -> None:
        """Store new tokens durably (the old refresh token is already dead when this is called)."""

    def lock(self) -> AsyncContextManager[Any]:
        """An async context manager that only one process holds at a time (database or Redis lock)."""


class MemoryTokenStore:
    """A token store in memory, for tests and a single process."""

    def __init__(self, initial_tokens: ZaloTokens) -> None:
        self._tokens = initial_tokens
        self._lock = asyncio.Lock()

    async def load(self) -> ZaloTokens:
        return self._tokens

    async def save(self, tokens: ZaloTokens) -> None:
        self._tokens = tokens

    def lock(self) -> AsyncContextManager[Any]:
        return self._lock


class ZaloAdapter:
    """The Zalo Official Account channel."""

    name = "zalo"

    def __init__(self, config: ZaloConfig, tokens: ZaloTokenStore) -> None:
        self._config = config
        self._tokens = tokens
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(config.timeout))

    # ------------------------------------------------------------------ webhook

    def parse(self, request: WebhookRequest) -> List[InboundMessage]:
        """Verify `X-ZEvent-Signature` and parse one event.

        Returns one message for a worker's message, follow or unfollow, and an empty list for a
        verified event that carries nothing for the service (echoes of the OA's own messages,
        receipts, reactions, group and management events). Raises `SignatureInvalid` when the
        signature is missing or wrong, `MalformedBody` when the body is not a documented event.
        """
        if len(request.body) > self._config.max_body_bytes:
            raise _reject(MalformedBody("body too large", status=413))
        mac = _signature(request.headers)
        if mac is None:
            raise _reject(SignatureInvalid("missing or malformed signature header"))
        try:
            event = json.loads(request.body.decode("utf-8"))
        except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise _reject(MalformedBody("body is not JSON")) from None
        if not isinstance(event, dict):
            raise _reject(MalformedBody("body is not a JSON object"))
        timestamp = _timestamp(event.get("timestamp"))
        if timestamp is None:
            raise _reject(MalformedBody("timestamp missing or not a number"))
        if not self._signature_matches(mac, request.body, timestamp, _header(request.headers, TIMESTAMP_HEADER)):
            raise _reject(SignatureInvalid("signature mismatch"))
        event_name = event.get("event_name")
        if not isinstance(event_name, str):
            raise _reject(MalformedBody("event_name missing"))
        if event_name in _FOLLOW_EVENTS:
            return [self._follow(event, event_name, timestamp)]
        kind = _MESSAGE_EVENTS.get(event_name)
        if kind is None and event_name.startswith("user_send_") and not event_name.startswith(_IGNORED_PREFIXES):
            kind = OTHER  # a worker's message of a kind added after this module was written
        if kind is not None:
            return [self._message(event, event_name, kind, timestamp)]
        if event_name in _IGNORED_EVENTS or event_name.startswith(_IGNORED_PREFIXES):
            log.debug("zalo_webhook_ignored event=%s", _safe_event(event_name))
            return []
        raise _reject(MalformedBody("unknown event_name"), event=event_name)

    def _signature_matches(self, mac: str, body: bytes, timestamp: str, header_timestamp: Optional[str]) -> bool:
        candidates = [timestamp]
        if header_timestamp and header_timestamp != timestamp:
            candidates.append(header_timestamp)
        matched = False
        for candidate in candidates:  # no early exit: the same work whichever candidate matches
            digest = hashlib.sha256(self._config.app_id.encode() + body + candidate.encode() + self._config.oa_secret.encode()).hexdigest()
            matched |= hmac.compare_digest(digest, mac)
        return matched

    def _message(self, event: Dict[str, Any], event_name: str, kind: str, timestamp: str) -> InboundMessage:
        sender = _id(_object(event, "sender", event_name).get("id"), "sender.id")
        message = _object(event, "message", event_name)
        message_id = _id(message.get("msg_id"), "message.msg_id")
        text = message.get("text")
        if text is not None and not isinstance(text, str):
            raise _reject(MalformedBody("message.text is not a string"), event=event_name)
        if kind == TEXT and not text:
            raise _reject(MalformedBody("text message without text"), event=event_name)
        if kind == VOICE:
            text = None  # a voice message has no transcript on Zalo; `text` is reserved for one
        context: Dict[str, Any] = {"event": event_name}
        attachments = _attachments(message.get("attachments"), event_name)
        if attachments:
            context["attachments"] = attachments
        if event_name.startswith("anonymous_"):
            context["anonymous"] = True
            conversation_id = message.get("conversation_id")
            if conversation_id is not None:
                context["conversation_id"] = _id(conversation_id, "message.conversation_id")
        recipient = event.get("recipient")
        if isinstance(recipient, dict) and recipient.get("id") is not None:
            context["oa_id"] = _id(recipient.get("id"), "recipient.id")
        return InboundMessage(self.name, sender, message_id, kind, text or None, _sent_at(timestamp), context)

    def _follow(self, event: Dict[str, Any], event_name: str, timestamp: str) -> InboundMessage:
        follower = _id(_object(event, "follower", event_name).get("id"), "follower.id")
        # Follow events have no msg_id. Derive one that is stable across Zalo's retries and does not
        # carry the follower's id in clear (message ids may reach the logs).
        digest = hashlib.sha256(f"{event_name}|{follower}|{timestamp}".encode()).hexdigest()[:32]
        context: Dict[str, Any] = {"event": event_name}
        source = event.get("source")
        if isinstance(source, str):
            context["source"] = source
        return InboundMessage(self.name, follower, f"{event_name}-{digest}", _FOLLOW_EVENTS[event_name], None, _sent_at(timestamp), context)

    # ------------------------------------------------------------------ sending

    async def send(self, message: OutboundMessage) -> Optional[str]:
        """Send a text consultation message; return Zalo's message id.

        Refreshes the tokens first when the stored expiry has passed, and once more (then sends again,
        once) when Zalo answers that the access token is invalid or expired. Raises `WindowClosed`
        when the worker has not interacted with the OA recently enough, `DeliveryError(retryable=True)`
        for HTTP 5xx, timeouts, connection errors and rate limits, `DeliveryError(retryable=False)`
        for any other refusal.
        """
        if len(message.text) > self._config.max_text_chars:
            raise _fail(DeliveryError("text longer than Zalo accepts", retryable=False, code="text_too_long"))
        tokens = await self._load_tokens()
        if self._expired(tokens):
            tokens = await self.refresh_tokens(stale_access_token=tokens.access_token)
        answer = await self._post_message(tokens.access_token, message)
        code = _error_code(answer)
        if code in self._config.token_error_codes:
            log.info("zalo_access_token_rejected code=%s", code)
            tokens = await self.refresh_tokens(stale_access_token=tokens.access_token)
            answer = await self._post_message(tokens.access_token, message)
            code = _error_code(answer)
            if code in self._config.token_error_codes:
                raise _fail(DeliveryError("access token refused right after a refresh", retryable=False, code=str(code)))
        return self._result(answer, code)

    def _result(self, answer: Dict[str, Any], code: Optional[int]) -> Optional[str]:
        if code == 0:
            data = answer.get("data")
            message_id = data.get("message_id") if isinstance(data, dict) else None
            return str(message_id) if isinstance(message_id, (str, int)) and not isinstance(message_id, bool) else None
        if code is None:
            raise _fail(DeliveryError("Zalo answered without an error code", retryable=True, code="bad_response"))
        if code in self._config.window_closed_codes:
            raise _fail(WindowClosed("the worker has not interacted with the OA recently enough", code=str(code)))
        if code in self._config.retryable_codes:
            raise _fail(DeliveryError(f"Zalo asked to try later (error {code})", retryable=True, code=str(code)))
        raise _fail(DeliveryError(f"Zalo refused the message (error {code})", retryable=False, code=str(code)))

    async def _post_message(self, access_token: str, message: OutboundMessage) -> Dict[str, Any]:
        payload = {"recipient": {"user_id": message.recipient}, "message": {"text": message.text}}
        url = f"{self._config.api_base}v3.0/oa/message/cs"
        response = await self._request("send", url, headers={"access_token": access_token}, json=payload)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise _fail(DeliveryError("Zalo answered with something other than a JSON object", retryable=True, code="bad_response"))
        return answer

    async def _request(self, what: str, url: str, **kwargs: Any) -> httpx.Response:
        """POST with the configured timeout; transport failures and HTTP errors become DeliveryError."""
        try:
            response = await self._client.post(url, **kwargs)
        except httpx.TimeoutException:
            raise _fail(DeliveryError(f"{what}: timed out", retryable=True, code="timeout")) from None
        except httpx.HTTPError as error:
            raise _fail(DeliveryError(f"{what}: {type(error).__name__}", retryable=True, code="connection")) from None
        if response.status_code >= 500 or response.status_code == 429:
            raise _fail(DeliveryError(f"{what}: HTTP {response.status_code}", retryable=True, code=f"http_{response.status_code}"))
        if response.status_code >= 400:
            raise _fail(DeliveryError(f"{what}: HTTP {response.status_code}", retryable=False, code=f"http_{response.status_code}"))
        return response

    # ------------------------------------------------------------------ tokens

    async def refresh_tokens(self, stale_access_token: Optional[str] = None) -> ZaloTokens:
        """Rotate the token pair under the store's lock and return the new pair, saved.

        With `stale_access_token` (the token that failed or expired), a pair that another process
        already refreshed is used as it is, without spending a refresh. Raises
        `DeliveryError(retryable=True)` when Zalo could not be reached, `DeliveryError(retryable=False)`
        when it refused the refresh token (an OA admin must grant the app again).
        """
        try:
            async with self._tokens.lock():
                current = await self._load_tokens()
                if stale_access_token is not None and current.access_token != stale_access_token and not self._expired(current):
                    log.info("zalo_token_refresh_skipped reason=already_refreshed")
                    return current
                fresh = await self._request_tokens(current.refresh_token)
                try:
                    await self._tokens.save(fresh)
                except Exception as error:  # the rotated refresh token is lost: a person must act
                    log.error("zalo_token_save_failed error=%s", type(error).__name__)
                    raise DeliveryError("new tokens could not be saved", retryable=False, code="token_save_failed") from error
                log.info("zalo_token_refreshed")
                return fresh
        except DeliveryError:
            raise
        except Exception as error:  # the lock (database, Redis) failed
            log.warning("zalo_token_lock_failed error=%s", type(error).__name__)
            raise DeliveryError("token store lock failed", retryable=True, code="token_store") from error

    async def _request_tokens(self, refresh_token: str) -> ZaloTokens:
        form = {"refresh_token": refresh_token, "app_id": self._config.app_id, "grant_type": "refresh_token"}
        try:
            url = f"{self._config.oauth_base}v4/oa/access_token"
            response = await self._request("refresh", url, headers={"secret_key": self._config.app_secret}, data=form)
        except DeliveryError as error:
            log.error("zalo_token_refresh_failed reason=%s", error.code)
            raise
        try:
            answer = response.json()
        except ValueError:
            answer = None
        access = answer.get("access_token") if isinstance(answer, dict) else None
        refresh = answer.get("refresh_token") if isinstance(answer, dict) else None
        if not (isinstance(access, str) and access and isinstance(refresh, str) and refresh):
            code = answer.get("error") if isinstance(answer, dict) else None
            log.error("zalo_token_refresh_failed reason=refused error=%s", code if isinstance(code, int) else "none")
            raise DeliveryError("Zalo refused the refresh token", retryable=False, code=f"refresh_refused:{code}")
        return ZaloTokens(access, refresh, _expires_at(answer.get("expires_in")))

    async def _load_tokens(self) -> ZaloTokens:
        try:
            return await self._tokens.load()
        except Exception as error:  # the database or Redis is down: later may work
            log.warning("zalo_token_load_failed error=%s", type(error).__name__)
            raise DeliveryError("tokens could not be loaded", retryable=True, code="token_store") from error

    def _expired(self, tokens: ZaloTokens) -> bool:
        return tokens.expires_at is not None and tokens.expires_at <= time.time() + self._config.refresh_margin

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()


# ---------------------------------------------------------------------- helpers


def _reject(error: Exception, event: Optional[str] = None) -> Exception:
    """Log a refused webhook (reason and event type only) and hand the error back to raise."""
    reason = getattr(error, "reason", str(error))
    if event is None:
        log.warning("zalo_webhook_rejected reason=%r", reason)
    else:
        log.warning("zalo_webhook_rejected reason=%r event=%s", reason, _safe_event(event))
    return error


def _fail(error: DeliveryError) -> DeliveryError:
    log.warning("zalo_send_failed reason=%s retryable=%s", error.code, error.retryable)
    return error


def _safe_event(name: str) -> str:
    """The event name for a log line, cut down to harmless characters (it came from outside)."""
    return re.sub(r"[^a-z0-9_]", "?", name[:64].lower())


def _header(headers: Mapping[str, str], name: str) -> Optional[str]:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value if isinstance(value, str) else None


def _signature(headers: Mapping[str, str]) -> Optional[str]:
    """The hex digest of `X-ZEvent-Signature` (`mac=<hex>`, or the bare hex), lower-cased."""
    value = _header(headers, SIGNATURE_HEADER)
    match = _MAC_RE.fullmatch(value.strip()) if value else None
    return match.group(1).lower() if match else None


def _timestamp(value: Any) -> Optional[str]:
    """The event's timestamp as the text that was signed: a string or integer of digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return value
    return None


def _sent_at(timestamp: str) -> Optional[dt.datetime]:
    try:
        return dt.datetime.fromtimestamp(int(timestamp) / 1000, tz=dt.timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None


def _object(event: Dict[str, Any], key: str, event_name: str) -> Dict[str, Any]:
    value = event.get(key)
    if not isinstance(value, dict):
        raise _reject(MalformedBody(f"{key} missing or not an object"), event=event_name)
    return value


def _id(value: Any, what: str) -> str:
    """A platform id: Zalo sends strings, but some payloads carry numbers; both become strings."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value and len(value) <= 128 and value.isprintable():
        return value
    raise _reject(MalformedBody(f"{what} missing or not an id"))


def _attachments(value: Any, event_name: str) -> List[Dict[str, Any]]:
    """What operators need of the attachments: the type, the URL and, for a location, coordinates."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise _reject(MalformedBody("message.attachments is not a list of objects"), event=event_name)
    result = []
    for item in value:
        payload = item.get("payload")
        payload = payload if isinstance(payload, dict) else {}
        entry: Dict[str, Any] = {"type": item.get("type") if isinstance(item.get("type"), str) else None}
        for key in ("url", "thumbnail", "name", "description"):
            if isinstance(payload.get(key), str):
                entry[key] = payload[key]
        coordinates = payload.get("coordinates")
        if isinstance(coordinates, dict):
            for key in ("latitude", "longitude"):
                number = _number(coordinates.get(key))
                if number is not None:
                    entry[key] = number
        result.append(entry)
    return result


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _error_code(answer: Dict[str, Any]) -> Optional[int]:
    value = answer.get("error")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _expires_at(expires_in: Any) -> Optional[float]:
    """Zalo gives `expires_in` in seconds, as a string."""
    seconds = _number(expires_in)
    return time.time() + seconds if seconds is not None and seconds > 0 else None
