"""The web chat: a small JSON webhook for the web widget, `helpline chat`-like clients and tests.

POST `{"sender", "message_id", "text"}`; the service answers with the bot's replies in the same
HTTP response, and the widget polls for later messages (an operator's). Sending is therefore a no-op:
a reply is delivered by being stored where the poll finds it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import List, Optional

from channel_adapters.base import TEXT, InboundMessage, MalformedBody, OutboundMessage, WebhookRequest

# The widget makes a random sender id per browser; anyone who knows it can read the conversation,
# so it must be long enough not to be guessed.
SENDER_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
MESSAGE_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_TEXT = 4000


class WebAdapter:
    """The web chat channel."""

    name = "web"

    def parse(self, request: WebhookRequest) -> List[InboundMessage]:
        """Parse `{"sender", "message_id", "text"}`; raises `MalformedBody` for anything else."""
        try:
            data = json.loads(request.body)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
            raise MalformedBody(f"body is not JSON ({type(error).__name__})") from None
        if not isinstance(data, dict):
            raise MalformedBody("body must be a JSON object")
        sender, message_id, text = data.get("sender"), data.get("message_id"), data.get("text")
        if not isinstance(sender, str) or not SENDER_RE.fullmatch(sender):
            raise MalformedBody("sender must be 16-64 letters, digits, _ or -")
        if not isinstance(message_id, str) or not MESSAGE_ID_RE.fullmatch(message_id):
            raise MalformedBody("message_id must be 1-64 letters, digits or _.:-")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            raise MalformedBody(f"text must be a non-empty string of at most {MAX_TEXT} characters")
        return [InboundMessage("web", sender, message_id, TEXT, text.strip(), dt.datetime.now(dt.timezone.utc))]

    @staticmethod
    def valid_sender(sender: str) -> bool:
        return bool(SENDER_RE.fullmatch(sender or ""))

    async def send(self, message: OutboundMessage) -> Optional[str]:
        """Nothing to push: the widget polls `GET /webhooks/web/messages`."""
        return None

    async def aclose(self) -> None:
        return None
