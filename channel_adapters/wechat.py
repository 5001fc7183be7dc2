"""WeChat Official Account: verify and parse the webhook, build passive replies, send through the
customer-service API.

WeChat signs every request's query (`signature` = SHA-1 of the sorted token, timestamp and nonce). In
plaintext mode that signature does not cover the body; in compatible and safe mode the body carries an
AES-encrypted copy signed by `msg_signature`, and this module reads only that copy, so set `aes_key`
(and `require_encryption` once WeChat is in safe mode) to have bodies authenticated.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping
from xml.parsers.expat import ExpatError

import requests
import xmltodict
from wechatpy import messages, parse_message
from wechatpy.client import WeChatClient
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException, WeChatClientException
from wechatpy.replies import TextReply
from wechatpy.session import SessionStorage
from wechatpy.utils import check_signature

from channel_adapters.base import (
    FILE,
    FOLLOW,
    IMAGE,
    LINK,
    LOCATION,
    OTHER,
    TEXT,
    UNFOLLOW,
    VOICE,
    DeliveryError,
    InboundMessage,
    MalformedBody,
    OutboundMessage,
    SignatureInvalid,
    WebhookRejected,
    WebhookRequest,
    WindowClosed,
)

logger = logging.getLogger(__name__)

# Customer-service API answers (errcode) that mean something to the service.
WINDOW_CLOSED = 45015  # the worker's last message is older than the reply window (48 h)
OVER_COUNT = 45047  # more replies than WeChat allows per worker message (5 since June 2023)
# Worth trying again later: system busy, and the account's daily / per-minute API quotas.
RETRY_LATER = frozenset({-1, 45009, 45011})
TOKEN_INVALID = frozenset({40001, 40014, 42001})  # bad / malformed / expired access token

_DECLARATION = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_MSG_ID = re.compile(r"[0-9]{1,30}")
_TIMESTAMP = re.compile(r"[0-9]{1,10}")  # seconds; ten digits reach the year 2286
# An access token is refreshed this long before WeChat says it expires, so no call uses a dying one.
_TOKEN_MARGIN_SECONDS = 300


@dataclass(frozen=True)
class WeChatConfig:
    """Settings of one Official Account.

    `aes_key` is the EncodingAESKey (43 characters); None means plaintext mode only. With
    `require_encryption`, plaintext requests are refused (use it once WeChat is set to safe mode: a
    plaintext body is not covered by any signature). `max_age` is how far (seconds) a request's signed
    timestamp may be from our clock; None turns the check off.
    """

    token: str
    app_id: str
    app_secret: str
    aes_key: str | None = None
    api_base: str = "https://api.weixin.qq.com/"
    timeout: float = 10.0
    require_encryption: bool = False
    max_age: float | None = 300.0
    max_body_bytes: int = 64 * 1024
    passive_max_bytes: int = 2048


class _RedactCredentials(logging.Filter):
    """urllib3 logs every request line at DEBUG, query included: that is the app secret (token fetch)
    and the access token (every API call). Blank them before any handler sees the record."""

    _PATTERN = re.compile(r"\b(secret|access_token)=[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._PATTERN.sub(r"\1=[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def _redact_http_logs() -> None:
    http_logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _RedactCredentials) for f in http_logger.filters):
        http_logger.addFilter(_RedactCredentials())


class _BadAnswer(Exception):
    """WeChat (or something in between) answered 2xx with a body that is not the documented JSON."""


class _Client(WeChatClient):
    """wechatpy's client pointed at `api_base`, with a timeout on the token request too (wechatpy's own
    token fetch has none and always calls api.weixin.qq.com), one token fetch at a time per process,
    and no automatic retry (wechatpy's retries on a bad token without limit; the adapter retries once)."""

    def __init__(self, config: WeChatConfig, session: SessionStorage | None) -> None:
        super().__init__(config.app_id, config.app_secret, session=session, timeout=config.timeout, auto_retry=False)
        self._api_root = config.api_base.rstrip("/") + "/"
        self.API_BASE_URL = self._api_root + "cgi-bin/"
        self._token_lock = threading.Lock()

    @property
    def access_token(self) -> str:
        token = self._cached_token()
        if token:
            return token
        with self._token_lock:  # another thread may have fetched it while we waited
            token = self._cached_token()
            if token:
                return token
            self.fetch_access_token()
            return self.session.get(self.access_token_key)

    def _cached_token(self) -> str | None:
        token = self.session.get(self.access_token_key)
        if token and (self.expires_at is None or self.expires_at > time.time()):
            # expires_at is None when another process fetched it: shared storage expires it by TTL.
            return token
        return None

    def close(self) -> None:
        self._http.close()

    def forget_access_token(self) -> None:
        self.session.delete(self.access_token_key)
        self.expires_at = None

    def fetch_access_token(self) -> Dict[str, Any]:
        response = self._http.get(
            self._api_root + "cgi-bin/token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
            timeout=self.timeout,
        )
        if response.status_code >= 400:
            raise WeChatClientException(errcode=None, errmsg=None, client=self, request=response.request, response=response)
        try:
            result = response.json()
        except ValueError:
            raise _BadAnswer("token answer is not JSON") from None
        if not isinstance(result, dict):
            raise _BadAnswer("token answer is not an object")
        if result.get("errcode"):
            raise WeChatClientException(result["errcode"], result.get("errmsg"), client=self, response=response)
        token = result.get("access_token")
        expires_in = result.get("expires_in", 7200)
        if not isinstance(token, str) or not token or not isinstance(expires_in, int):
            raise _BadAnswer("token answer without a token")
        lifetime = max(expires_in - _TOKEN_MARGIN_SECONDS, 60)
        self.session.set(self.access_token_key, token, lifetime)
        self.expires_at = int(time.time()) + lifetime
        logger.info("event=access_token_fetched channel=wechat")
        return result


class WeChatAdapter:
    """The WeChat Official Account channel: webhook verification and parsing, passive replies, and
    customer-service messages."""

    name = "wechat"

    def __init__(self, config: WeChatConfig, session: SessionStorage | None = None) -> None:
        """`session` is a wechatpy session storage for the access token (a `RedisStorage` in scale-out
        mode, so every process uses the same token; in memory by default).

        Raises ValueError if `aes_key` is not a valid EncodingAESKey.
        """
        self._config = config
        self._crypto: WeChatCrypto | None = None
        if config.aes_key is not None:
            try:
                self._crypto = WeChatCrypto(config.token, config.aes_key, config.app_id)
            except (AssertionError, ValueError, TypeError) as exc:
                raise ValueError("aes_key is not a valid EncodingAESKey (43 characters of base64)") from exc
        if config.require_encryption and self._crypto is None:
            raise ValueError("require_encryption needs aes_key")
        self._client = _Client(config, session)
        _redact_http_logs()

    # ---- webhook -------------------------------------------------------------------------------

    def verify_get(self, query: Mapping[str, str]) -> str:
        """Answer WeChat's server verification (the GET sent when the URL is saved in the console):
        returns `echostr` to be sent back as the body.

        Raises SignatureInvalid (bad or stale signature) or MalformedBody (no echostr).
        """
        self._check_query_signature(query)
        echostr = query.get("echostr")
        if not isinstance(echostr, str) or not echostr:
            raise self._reject(MalformedBody("missing echostr"))
        return echostr

    def parse(self, request: WebhookRequest) -> List[InboundMessage]:
        """Verify a webhook POST and turn it into at most one `InboundMessage`.

        Returns [] for verified events the service does not handle (menu clicks, scans, template
        reports...). Raises SignatureInvalid (query or body signature wrong, stale timestamp, app id of
        another account, plaintext when encryption is required) or MalformedBody (too big, not XML, a
        DOCTYPE/ENTITY declaration, missing or mistyped fields).
        """
        if request.method.upper() != "POST":
            raise self._reject(WebhookRejected("method not allowed", status=405))
        self._check_query_signature(request.query)
        if len(request.body) > self._config.max_body_bytes:
            raise self._reject(MalformedBody("body too large", status=413))
        outer_text = self._decode(request.body)
        outer = self._parse_xml(outer_text)

        encrypt_type = request.query.get("encrypt_type") or "raw"
        if encrypt_type == "aes" and self._crypto is not None:
            xml_text = self._decrypt(outer, request.query)
            data = self._parse_xml(xml_text)
            encrypted = True
        elif encrypt_type == "aes" and "MsgType" not in outer:
            raise self._reject(MalformedBody("encrypted body but no aes_key configured"))
        elif encrypt_type in ("aes", "raw"):
            # Plaintext mode, or compatible mode without a key: the plaintext copy is all we can read.
            if self._config.require_encryption:
                raise self._reject(SignatureInvalid("plaintext request refused: encryption required"))
            xml_text, data, encrypted = outer_text, outer, False
        else:
            raise self._reject(MalformedBody("unknown encrypt_type"))

        try:
            return self._to_inbound(xml_text, data, encrypted)
        except MalformedBody as exc:
            raise self._reject(exc) from None

    def passive_reply(self, inbound: InboundMessage, text: str) -> bytes | None:
        """The body of a passive text reply to `inbound` (XML, encrypted when the request was).

        Returns None when `text` is longer than WeChat takes in a passive reply
        (`passive_max_bytes` of UTF-8): send it with `send` instead. Raises ValueError when `inbound`
        did not come from this adapter or `text` is empty.
        """
        if not text:
            raise ValueError("empty reply")
        if len(text.encode("utf-8")) > self._config.passive_max_bytes:
            return None
        to_user = inbound.context.get("to_user")
        if inbound.channel != self.name or not isinstance(to_user, str) or not to_user:
            raise ValueError("not an inbound WeChat message")
        reply = TextReply(source=_cdata(to_user), target=_cdata(inbound.sender), content=_cdata(_xml_chars(text)))
        xml = reply.render()
        if inbound.context.get("encrypted"):
            if self._crypto is None:
                raise ValueError("inbound message was encrypted but no aes_key is configured")
            xml = self._crypto.encrypt_message(xml, secrets.token_hex(8), str(int(time.time())))
        return xml.encode("utf-8")

    # ---- sending -------------------------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> str | None:
        """Send a text with the customer-service API (POST cgi-bin/message/custom/send).

        Returns WeChat's msgid when it gives one. Raises WindowClosed (45015: outside the 48 h window;
        45047: over the number of replies per worker message), DeliveryError(retryable=True) for HTTP
        5xx, timeouts, connection errors, "system busy" (-1) and API quotas (45009, 45011),
        DeliveryError(retryable=False) for other
        refusals. A rejected access token is dropped and the send tried once more with a new one.
        """
        return await asyncio.to_thread(self._send_blocking, message)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def _send_blocking(self, message: OutboundMessage) -> str | None:
        for attempt in (1, 2):
            try:
                result = self._client.message.send_text(message.recipient, message.text)
            except WeChatClientException as exc:
                if exc.errcode in TOKEN_INVALID and attempt == 1:
                    logger.info("event=access_token_rejected channel=wechat code=%s", exc.errcode)
                    self._client.forget_access_token()
                    continue
                raise self._delivery_error(_classify(exc)) from None
            except _BadAnswer as exc:
                raise self._delivery_error(DeliveryError(str(exc), retryable=True, code="bad_answer")) from None
            except requests.Timeout:
                raise self._delivery_error(DeliveryError("timeout", retryable=True, code="timeout")) from None
            except requests.RequestException as exc:
                error = DeliveryError(f"connection error: {type(exc).__name__}", retryable=True, code="connection")
                raise self._delivery_error(error) from None
            if not isinstance(result, dict):  # wechatpy hands back the raw response when it is not JSON
                raise self._delivery_error(DeliveryError("answer is not JSON", retryable=True, code="bad_answer"))
            msgid = result.get("msgid")
            return str(msgid) if msgid is not None else None
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _delivery_error(error: DeliveryError) -> DeliveryError:
        logger.warning("event=send_failed channel=wechat code=%s retryable=%s", error.code, error.retryable)
        return error

    # ---- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _reject(error: WebhookRejected) -> WebhookRejected:
        logger.warning("event=webhook_rejected channel=wechat status=%s reason=%s", error.status, error.reason)
        return error

    def _check_query_signature(self, query: Mapping[str, str]) -> None:
        signature, timestamp, nonce = (query.get(key) for key in ("signature", "timestamp", "nonce"))
        if not all(isinstance(value, str) and value for value in (signature, timestamp, nonce)):
            raise self._reject(SignatureInvalid("missing signature, timestamp or nonce"))
        try:
            check_signature(self._config.token, signature, timestamp, nonce)
        except InvalidSignatureException:
            raise self._reject(SignatureInvalid("bad signature")) from None
        if self._config.max_age is not None:
            if not _TIMESTAMP.fullmatch(timestamp) or abs(time.time() - int(timestamp)) > self._config.max_age:
                raise self._reject(SignatureInvalid("stale timestamp"))

    def _decode(self, body: bytes) -> str:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise self._reject(MalformedBody("body is not UTF-8")) from None
        return text

    def _parse_xml(self, text: str) -> Dict[str, Any]:
        """Parse a WeChat XML document into the dict under its <xml> root, refusing DTDs first (no
        entity expansion, internal or external)."""
        if _DECLARATION.search(text):
            raise self._reject(MalformedBody("XML with DOCTYPE or ENTITY declaration"))
        try:
            document = xmltodict.parse(text, disable_entities=True)
        except (ExpatError, ValueError, TypeError):
            raise self._reject(MalformedBody("body is not XML")) from None
        root = document.get("xml") if isinstance(document, dict) else None
        if not isinstance(root, dict):
            raise self._reject(MalformedBody("no <xml> root element"))
        return root

    def _decrypt(self, outer: Dict[str, Any], query: Mapping[str, str]) -> str:
        assert self._crypto is not None
        msg_signature = query.get("msg_signature")
        if not isinstance(msg_signature, str) or not msg_signature:
            raise self._reject(SignatureInvalid("missing msg_signature"))
        encrypt = outer.get("Encrypt")
        if not isinstance(encrypt, str) or not encrypt:
            raise self._reject(MalformedBody("missing Encrypt"))
        try:
            plain = self._crypto.decrypt_message({"Encrypt": encrypt}, msg_signature, query["timestamp"], query["nonce"])
        except InvalidSignatureException:
            raise self._reject(SignatureInvalid("bad msg_signature")) from None
        except InvalidAppIdException:
            raise self._reject(SignatureInvalid("encrypted for another app id")) from None
        except Exception:  # garbage ciphertext fails in many ways inside wechatpy and cryptography
            raise self._reject(MalformedBody("Encrypt cannot be decrypted")) from None
        if not isinstance(plain, str) or not plain:
            raise self._reject(MalformedBody("Encrypt decrypts to nothing"))
        return plain

    def _to_inbound(self, xml_text: str, data: Dict[str, Any], encrypted: bool) -> List[InboundMessage]:
        sender = _field(data, "FromUserName")
        to_user = _field(data, "ToUserName")
        create_time = _field(data, "CreateTime")
        msg_type = _field(data, "MsgType").lower()
        if not _TIMESTAMP.fullmatch(create_time):
            raise MalformedBody("CreateTime is not a timestamp")
        sent_at = dt.datetime.fromtimestamp(int(create_time), tz=dt.timezone.utc)
        context: Dict[str, Any] = {"to_user": to_user, "encrypted": encrypted, "msg_type": msg_type}

        if msg_type == "event":
            event = _field(data, "Event").lower()
            kind = {"subscribe": FOLLOW, "unsubscribe": UNFOLLOW}.get(event)
            if kind is None:
                logger.info("event=webhook_ignored channel=wechat wechat_event=%s", re.sub(r"[^a-z0-9_]", "", event)[:40])
                return []
            # Events have no MsgId; WeChat documents FromUserName + CreateTime for deduplication.
            digest = hashlib.sha256(f"{sender}:{create_time}:{event}".encode()).hexdigest()[:32]
            context["event"] = event
            return [InboundMessage(self.name, sender, f"event-{digest}", kind, None, sent_at, context)]

        msg_id = _field(data, "MsgId")
        if not _MSG_ID.fullmatch(msg_id):
            raise MalformedBody("MsgId is not a number")
        try:
            message = parse_message(xml_text)
        except (ExpatError, ValueError, TypeError, KeyError, AttributeError):
            raise MalformedBody("message cannot be parsed") from None

        text: str | None = None
        if isinstance(message, messages.TextMessage):
            kind, text = TEXT, _field(data, "Content")
        elif isinstance(message, messages.VoiceMessage):
            kind, text = VOICE, _field(data, "Recognition", required=False) or None
            context["media_id"] = _field(data, "MediaId", required=False)
        elif isinstance(message, messages.ImageMessage):
            kind = IMAGE
            context["media_id"] = _field(data, "MediaId", required=False)
        elif isinstance(message, messages.LocationMessage):
            kind, text = LOCATION, _field(data, "Label", required=False) or None
            context["location"] = [_field(data, "Location_X"), _field(data, "Location_Y")]
        elif isinstance(message, messages.LinkMessage):
            kind, text = LINK, _field(data, "Url", required=False) or None
            context["title"] = _field(data, "Title", required=False)
        elif isinstance(message, (messages.VideoMessage, messages.ShortVideoMessage)):
            kind = FILE
            context["media_id"] = _field(data, "MediaId", required=False)
        else:
            kind = OTHER
        return [InboundMessage(self.name, sender, msg_id, kind, text, sent_at, context)]


def _field(data: Mapping[str, Any], name: str, required: bool = True) -> str | None:
    """A text field of a WeChat message (xmltodict gives a dict or a list for nested or repeated
    elements: those are malformed here)."""
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise MalformedBody(f"missing {name}")
        return None
    if not isinstance(value, str):
        raise MalformedBody(f"{name} is not text")
    return value


def _classify(exc: WeChatClientException) -> DeliveryError:
    """Turn a wechatpy client error (an HTTP error, or an errcode in a 200 answer) into ours."""
    if exc.errcode is None:
        status = getattr(exc.response, "status_code", None)
        retryable = status is None or status >= 500 or status == 429
        return DeliveryError(f"HTTP {status}", retryable=retryable, code=f"http_{status}")
    try:
        code = int(exc.errcode)
    except (TypeError, ValueError):
        return DeliveryError("unexpected errcode", retryable=False, code="bad_answer")
    if code == WINDOW_CLOSED:
        return WindowClosed("outside the customer-service window", code=str(code))
    if code == OVER_COUNT:
        return WindowClosed("over the customer-service message count", code=str(code))
    if code in RETRY_LATER:
        return DeliveryError(f"WeChat busy or over quota: errcode {code}", retryable=True, code=str(code))
    return DeliveryError(f"WeChat refused: errcode {code}", retryable=False, code=str(code))


def _cdata(value: str) -> str:
    """Make `value` safe inside wechatpy's `<![CDATA[...]]>` (it does not escape `]]>`)."""
    return value.replace("]]>", "]]]]><![CDATA[>")


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_chars(value: str) -> str:
    """Drop the control characters XML 1.0 cannot carry (they would make WeChat refuse the reply)."""
    return _XML_INVALID.sub("", value)
