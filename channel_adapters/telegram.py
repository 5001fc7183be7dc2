"""Telegram: verify a webhook update, parse it into `InboundMessage`s, send text with the Bot API.

Telegram signs nothing: the only proof that a webhook comes from Telegram is the `secret_token` we
gave `setWebhook`, which Telegram echoes in the `X-Telegram-Bot-Api-Secret-Token` header of every
request. A request without the exact secret is refused before its body is looked at.

Parsing uses python-telegram-bot's own `Update.de_json`; sending uses `telegram.Bot.send_message`.
The bot is never initialised with `getMe`: sending needs no bot identity, and a network round trip
per webhook (what Rasa's channel does) would verify nothing.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import telegram
from telegram.constants import MessageLimit
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.request import HTTPXRequest

from channel_adapters.base import (
    FILE,
    FOLLOW,
    IMAGE,
    LOCATION,
    OTHER,
    STICKER,
    TEXT,
    VOICE,
    DeliveryError,
    InboundMessage,
    MalformedBody,
    OutboundMessage,
    SignatureInvalid,
    WebhookRejected,
    WebhookRequest,
)

logger = logging.getLogger(__name__)

SECRET_HEADER = "x-telegram-bot-api-secret-token"
# setWebhook's secret_token: 1-256 characters, A-Z, a-z, 0-9, _ and -.
_SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
# "/start", "/start@SomeBot", "/start <deep-link payload>": the first message of every new chat.
_START_COMMAND = re.compile(r"/start(?:@\w+)?(?:\s+(?P<payload>.*?))?\s*", re.DOTALL)
# sendMessage takes 1-4096 characters. Whether Telegram counts code points or UTF-16 code units is
# disputed, so we cut by UTF-16 code units: never longer than the limit in either reading.
MAX_TEXT_UNITS = int(MessageLimit.MAX_TEXT_LENGTH)


@dataclass(frozen=True)
class TelegramConfig:
    """Settings for one Telegram bot.

    `token` is the bot token from @BotFather; `secret` is the `secret_token` registered with
    `setWebhook`. `api_base` lets tests point the bot at a fake Bot API server. `timeout` (seconds)
    bounds every phase of every HTTP call (connect, write, read, waiting for a pooled connection).
    `max_body_bytes` refuses oversized webhook bodies before parsing them.
    """

    token: str = field(repr=False)
    secret: str = field(repr=False)
    api_base: str = "https://api.telegram.org"
    timeout: float = 10.0
    max_body_bytes: int = 1_000_000

    def __post_init__(self) -> None:
        if not self.token:
            raise ValueError("TelegramConfig.token is empty")
        if not _SECRET_PATTERN.fullmatch(self.secret or ""):
            # An empty secret would let any request without the header through.
            raise ValueError("TelegramConfig.secret must be 1-256 characters of A-Z, a-z, 0-9, _ or -")
        if not self.api_base.startswith(("http://", "https://")):
            raise ValueError("TelegramConfig.api_base must be an http(s) URL")
        if not self.timeout > 0:
            raise ValueError("TelegramConfig.timeout must be positive")
        if self.max_body_bytes <= 0:
            raise ValueError("TelegramConfig.max_body_bytes must be positive")


class TelegramAdapter:
    """The Telegram channel: webhook updates in, text messages out."""

    name = "telegram"

    def __init__(self, config: TelegramConfig) -> None:
        self.config = config
        self._requests = (self._http(config.timeout), self._http(config.timeout))
        self.bot = telegram.Bot(
            token=config.token,
            base_url=f"{config.api_base.rstrip('/')}/bot",
            base_file_url=f"{config.api_base.rstrip('/')}/file/bot",
            request=self._requests[0],
            get_updates_request=self._requests[1],
        )

    @staticmethod
    def _http(timeout: float) -> HTTPXRequest:
        return HTTPXRequest(connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout, pool_timeout=timeout)

    # -- inbound -----------------------------------------------------------------------------

    def parse(self, request: WebhookRequest) -> List[InboundMessage]:
        """Verify a webhook POST and turn its update into at most one `InboundMessage`.

        Returns an empty list for a verified update that carries no new message (an edited message,
        a button press, the worker blocking or unblocking the bot, ...).

        Raises:
            SignatureInvalid: the secret-token header is missing or wrong (answer 403).
            MalformedBody: the body is too large, not JSON, or not an `Update` (answer 4xx).
            WebhookRejected: the request is not a POST (answer 405).
        """
        self._verify(request)
        if str(request.method).upper() != "POST":
            self._reject("method_not_allowed")
            raise WebhookRejected("method_not_allowed", status=405)
        if not isinstance(request.body, (bytes, bytearray)):
            raise self._malformed("body_not_bytes")
        if len(request.body) > self.config.max_body_bytes:
            self._reject("body_too_large")
            raise MalformedBody("body_too_large", status=413)
        try:
            data = json.loads(bytes(request.body))
        except Exception as exc:  # broken UTF-8, broken JSON, nesting too deep
            raise self._malformed("invalid_json") from exc
        if not isinstance(data, dict):
            raise self._malformed("not_an_object")
        if not _is_int(data.get("update_id")):
            raise self._malformed("missing_update_id")
        try:
            update = telegram.Update.de_json(data, self.bot)
            message = update.message
            if message is None:
                return []
            inbound = self._inbound(update.update_id, message)
        except MalformedBody:
            raise
        except Exception as exc:  # de_json raises whatever the data provokes (TypeError, KeyError, ...)
            raise self._malformed("invalid_update") from exc
        return [inbound]

    def _verify(self, request: WebhookRequest) -> None:
        received = _header(request.headers, SECRET_HEADER)
        if received is None:
            self._reject("secret_missing")
            raise SignatureInvalid("secret_missing")
        expected = self.config.secret.encode("ascii")
        if not hmac.compare_digest(received.encode("utf-8", "surrogatepass"), expected):
            self._reject("secret_mismatch")
            raise SignatureInvalid("secret_mismatch")

    def _inbound(self, update_id: int, message: telegram.Message) -> InboundMessage:
        chat = message.chat
        if chat is None or not _is_int(chat.id):
            raise self._malformed("invalid_chat")
        if not isinstance(message.date, dt.datetime):
            raise self._malformed("invalid_date")
        for value in (message.text, message.caption):
            if value is not None and not isinstance(value, str):
                raise self._malformed("invalid_text")
        kind, text, context = _classify(message)
        if isinstance(chat.type, str):
            context["chat_type"] = str(chat.type)
        return InboundMessage(
            channel=self.name,
            sender=str(chat.id),
            # Telegram resends an update until it gets a 2xx; update_id is what stays the same.
            message_id=str(update_id),
            kind=kind,
            text=text,
            sent_at=message.date,
            context=context,
        )

    def _malformed(self, reason: str) -> MalformedBody:
        self._reject(reason)
        return MalformedBody(reason)

    @staticmethod
    def _reject(reason: str) -> None:
        logger.warning("event=telegram_webhook_rejected reason=%s", reason)

    # -- outbound ----------------------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> Optional[str]:
        """Send `message.text` to the chat `message.recipient` as plain text (no parse mode).

        A text longer than Telegram's limit is sent as several messages, in order, cut at line
        breaks or spaces where possible. Returns the Telegram message id of the last one sent.

        Raises:
            DeliveryError: `retryable=True` for timeouts, connection errors, HTTP 5xx and flood
                control (429); `retryable=False` when the worker blocked the bot or deleted their
                account (403), for a request Telegram refuses (400), a rejected token (401/404) and
                an empty text. If a long text fails part-way, the parts already sent stay sent
                (the reason says how many).
        """
        parts = split_text(message.text)
        if not parts:
            logger.warning("event=telegram_send_failed reason=empty_text retryable=false")
            raise DeliveryError("empty_text", retryable=False, code="empty_text")
        chat_id = _chat_id(message.recipient)
        message_id: Optional[str] = None
        for index, part in enumerate(parts):
            try:
                sent = await self.bot.send_message(chat_id=chat_id, text=part)
            except TelegramError as exc:
                error = self._delivery_error(exc)
                if index:
                    error.reason = f"{error.reason} (after {index} of {len(parts)} parts sent)"
                    error.args = (error.reason,)
                logger.warning(
                    "event=telegram_send_failed reason=%s retryable=%s part=%d parts=%d",
                    error.code,
                    str(error.retryable).lower(),
                    index + 1,
                    len(parts),
                )
                raise error from exc
            message_id = str(sent.message_id)
        logger.info("event=telegram_sent parts=%d", len(parts))
        return message_id

    def _delivery_error(self, exc: TelegramError) -> DeliveryError:
        # Order matters: TimedOut and BadRequest are subclasses of NetworkError.
        retryable, code = True, "telegram_error"
        if isinstance(exc, RetryAfter):
            code = "429"
        elif isinstance(exc, Forbidden):
            retryable, code = False, "403"
        elif isinstance(exc, InvalidToken):
            retryable, code = False, "401"
        elif isinstance(exc, BadRequest):
            retryable, code = False, "400"
        elif isinstance(exc, ChatMigrated):
            retryable, code = False, "chat_migrated"
        elif isinstance(exc, TimedOut):
            code = "timeout"
        elif isinstance(exc, NetworkError):
            code = "network"
        reason = f"{code}: {exc.message}".replace(self.config.token, "<token>")
        return DeliveryError(reason, retryable=retryable, code=code)

    async def aclose(self) -> None:
        """Close the HTTP connection pools. Safe to call more than once."""
        await self.bot.shutdown()
        # The bot only shuts down requests it initialised itself, and we never call initialize()
        # (it would call getMe), so close our own request objects too.
        for request in self._requests:
            await request.shutdown()


def split_text(text: str, limit: int = MAX_TEXT_UNITS) -> List[str]:
    """Cut `text` into parts of at most `limit` UTF-16 code units, preferring to cut after a line
    break, then after a space, and only as a last resort inside a word.

    Whitespace at the cuts is dropped (Telegram trims every message anyway); whitespace-only text
    gives no parts.
    """
    parts: List[str] = []
    rest = (text or "").strip()
    while rest:
        if _utf16_len(rest) <= limit:
            parts.append(rest)
            break
        end = max(1, _prefix_within(rest, limit))  # a limit below one character still makes progress
        window = rest[:end]
        cut = window.rfind("\n")
        if cut < end // 2:
            cut = max(window.rfind(" "), window.rfind("\t"))
        if cut < end // 2:
            cut = end
        part = rest[:cut].rstrip()
        if part:
            parts.append(part)
        rest = rest[cut:].lstrip()
    return parts


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _prefix_within(text: str, limit: int) -> int:
    """The number of characters of `text` that fit in `limit` UTF-16 code units."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


def _classify(message: telegram.Message) -> Tuple[str, Optional[str], Dict[str, Any]]:
    """The kind of a message, the worker's words in it, and the details worth keeping."""
    context: Dict[str, Any] = {}
    if isinstance(message.caption, str) and message.caption:
        # A photo or file can come with words: keep them for the operators.
        context["caption"] = message.caption
    if message.text is not None:
        start = _START_COMMAND.fullmatch(message.text)
        if start:
            if start.group("payload"):
                context["start_payload"] = start.group("payload")
            return FOLLOW, None, context
        return TEXT, message.text, context
    if message.voice or message.audio:
        return VOICE, None, context  # Telegram gives bots no transcript
    if message.photo:
        return IMAGE, None, context
    if message.sticker:
        return STICKER, None, context
    if message.location or message.venue:
        location = message.location or message.venue.location
        if location is not None:
            context["latitude"], context["longitude"] = location.latitude, location.longitude
        return LOCATION, None, context
    if message.document or message.video or message.video_note or message.animation:
        return FILE, None, context
    return OTHER, None, context


def _header(headers: Mapping[str, str], name: str) -> Optional[str]:
    value = headers.get(name)
    if value is None:  # base.py promises lower-case names; be lenient with other mappings
        value = next((v for k, v in headers.items() if isinstance(k, str) and k.lower() == name), None)
    return value if isinstance(value, str) else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _chat_id(recipient: str) -> Any:
    """Chat ids are integers; a "@channelname" stays a string."""
    try:
        return int(recipient)
    except (TypeError, ValueError):
        return recipient
