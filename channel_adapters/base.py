"""The types every channel adapter speaks, and the errors it raises.

An adapter turns a platform's webhook into `InboundMessage`s and sends `OutboundMessage`s. Everything
after the adapter sees only these types, so adding a platform is adding one module (and its fake
server for the tests).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Protocol

# What a message is, whatever the platform: the service answers text, welcomes follows and
# /start, and politely tells the worker what it cannot read.
TEXT = "text"
VOICE = "voice"  # `text` holds the platform's transcript when there is one
IMAGE = "image"
STICKER = "sticker"
LOCATION = "location"
FILE = "file"
LINK = "link"
FOLLOW = "follow"  # subscribe (WeChat), follow (Zalo), /start (Telegram): deserves a welcome
UNFOLLOW = "unfollow"
OTHER = "other"
KINDS = (TEXT, VOICE, IMAGE, STICKER, LOCATION, FILE, LINK, FOLLOW, UNFOLLOW, OTHER)


@dataclass(frozen=True)
class WebhookRequest:
    """What arrived over HTTP, before any parsing: the adapter decides whether to trust it."""

    method: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class InboundMessage:
    """One message from a worker, normalised.

    `message_id` is the platform's id for this message (or event), unique within the channel: the
    inbox drops a second delivery of the same id (platform retries).
    """

    channel: str
    sender: str  # platform user id: never logged in clear
    message_id: str
    kind: str
    text: Optional[str] = None
    sent_at: Optional[dt.datetime] = None
    # Platform details the adapter needs again to answer (e.g. WeChat's ToUserName for a passive reply).
    context: Dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboundMessage:
    """One message to a worker."""

    channel: str
    recipient: str  # platform user id
    text: str


class WebhookRejected(Exception):
    """The webhook is refused; `status` is the HTTP status to answer (4xx), `reason` goes to the log
    (never the body or a platform id)."""

    status = 400

    def __init__(self, reason: str, status: Optional[int] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.status = status


class SignatureInvalid(WebhookRejected):
    """The request is not signed by the platform (forged, or signed with another secret)."""

    status = 403


class MalformedBody(WebhookRejected):
    """The body cannot be parsed or does not have the fields and types the platform documents."""

    status = 400


class DeliveryError(Exception):
    """A send failed. `retryable` says whether trying again later can help (a 500 or a timeout can;
    a closed reply window or a blocked user cannot)."""

    def __init__(self, reason: str, retryable: bool = True, code: Optional[str] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.code = code


class WindowClosed(DeliveryError):
    """The platform no longer lets us message this worker (their last message is too old)."""

    def __init__(self, reason: str, code: Optional[str] = None) -> None:
        super().__init__(reason, retryable=False, code=code)


class ChannelAdapter(Protocol):
    """What the service needs of every platform module."""

    name: str

    def parse(self, request: WebhookRequest) -> List[InboundMessage]:
        """Verify and parse a webhook POST. Raises `SignatureInvalid` or `MalformedBody`; returns an
        empty list for a verified request that carries nothing for the service (an echo of our
        own message, an event we do not handle)."""

    async def send(self, message: OutboundMessage) -> Optional[str]:
        """Send one message; return the platform's message id when it gives one.
        Raises `DeliveryError` (or `WindowClosed`)."""

    async def aclose(self) -> None:
        """Release connections."""
