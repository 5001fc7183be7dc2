"""The Zalo OA adapter: webhook signature and parsing, sending through a fake Zalo API, token rotation.

Webhooks are signed here with hashlib directly, following Zalo's documented formula
(mac = sha256(app_id + raw body + timestamp + OA secret key)), not with the adapter's code.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
from typing import Any, Dict, Optional

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    MalformedBody,
    OutboundMessage,
    SignatureInvalid,
    WebhookRejected,
    WebhookRequest,
    WindowClosed,
)
from channel_adapters.zalo import MemoryTokenStore, ZaloAdapter, ZaloConfig, ZaloTokens
from tests.fakes.server import free_port, serve
from tests.fakes.zalo_api import SEND_PATH, TOKEN_PATH, FakeZaloApi

APP_ID = "3608465248940903967"
OA_SECRET = "oa-secret-key"
APP_SECRET = "app-secret-key"
OA_ID = "388613280878808645"
USER_ID = "2468458835291979221"  # more than 2**53: a JS-style float would lose digits
TIMESTAMP = "1719812345678"


def sign(body: bytes, timestamp: str = TIMESTAMP, secret: str = OA_SECRET, app_id: str = APP_ID) -> str:
    return "mac=" + hashlib.sha256(app_id.encode() + body + timestamp.encode() + secret.encode()).hexdigest()


def webhook(event: Any, secret: str = OA_SECRET, timestamp: Optional[str] = None, raw: Optional[bytes] = None) -> WebhookRequest:
    body = raw if raw is not None else json.dumps(event, ensure_ascii=False).encode("utf-8")
    if timestamp is None:
        timestamp = str(event.get("timestamp")) if isinstance(event, dict) else TIMESTAMP
    return WebhookRequest("POST", {}, {"content-type": "application/json", "x-zevent-signature": sign(body, timestamp, secret)}, body)


def user_event(event_name: str, message: Dict[str, Any], sender: Any = USER_ID, timestamp: Any = TIMESTAMP) -> Dict[str, Any]:
    return {
        "app_id": APP_ID,
        "user_id_by_app": "552177279717587730",
        "event_name": event_name,
        "sender": {"id": sender},
        "recipient": {"id": OA_ID},
        "message": message,
        "timestamp": timestamp,
    }


def follow_event(event_name: str = "follow", follower: Any = USER_ID, timestamp: str = TIMESTAMP) -> Dict[str, Any]:
    return {
        "oa_id": OA_ID,
        "follower": {"id": follower},
        "user_id_by_app": "552172779717587730",
        "event_name": event_name,
        "source": "oa_profile",
        "app_id": APP_ID,
        "timestamp": timestamp,
    }


def make_adapter(base: str = "http://127.0.0.1:9/", tokens: Optional[MemoryTokenStore] = None, timeout: float = 5.0) -> ZaloAdapter:
    config = ZaloConfig(APP_ID, OA_SECRET, APP_SECRET, api_base=base, oauth_base=base, timeout=timeout)
    return ZaloAdapter(config, tokens or MemoryTokenStore(ZaloTokens("access-1", "refresh-1", None)))


@pytest.fixture(scope="module")
def adapter():
    instance = make_adapter()
    yield instance
    asyncio.run(instance.aclose())


# ---------------------------------------------------------------------- parsing


def test_text_message_is_parsed(adapter):
    event = user_event("user_send_text", {"text": "Xin chào, tôi bị nợ lương", "msg_id": "96d3cdf3af150460909"})
    [message] = adapter.parse(webhook(event))
    assert message.channel == "zalo"
    assert message.sender == USER_ID
    assert message.message_id == "96d3cdf3af150460909"
    assert message.kind == TEXT
    assert message.text == "Xin chào, tôi bị nợ lương"
    assert message.sent_at == dt.datetime.fromtimestamp(1719812345.678, tz=dt.timezone.utc)
    assert message.context["event"] == "user_send_text"
    assert message.context["oa_id"] == OA_ID


def test_numeric_ids_become_exact_strings(adapter):
    raw = (
        b'{"app_id":"'
        + APP_ID.encode()
        + b'","event_name":"user_send_text","sender":{"id":'
        + USER_ID.encode()
        + b'},"recipient":{"id":'
        + OA_ID.encode()
        + b'},"message":{"text":"hi","msg_id":12345678901234567890},'
        b'"timestamp":' + TIMESTAMP.encode() + b"}"
    )
    [message] = adapter.parse(webhook(None, raw=raw, timestamp=TIMESTAMP))
    assert message.sender == USER_ID
    assert message.message_id == "12345678901234567890"
    assert message.context["oa_id"] == OA_ID


def att(kind: str, **payload: Any) -> list:
    return [{"type": kind, "payload": payload}]


IMAGE_ATTACHMENT = att("image", thumbnail="https://z.example/t.jpg", url="https://z.example/a.jpg")


@pytest.mark.parametrize(
    "event_name, message, kind, text",
    [
        ("user_send_image", {"msg_id": "m-img", "attachments": IMAGE_ATTACHMENT}, IMAGE, None),
        ("user_send_image", {"msg_id": "m-img2", "text": "ảnh bảng lương", "attachments": IMAGE_ATTACHMENT}, IMAGE, "ảnh bảng lương"),
        ("user_send_audio", {"msg_id": "m-aud", "attachments": att("audio", url="https://z.example/v.amr")}, VOICE, None),
        ("user_send_sticker", {"msg_id": "m-stk", "attachments": att("sticker", id="s1", url="https://z.example/s")}, STICKER, None),
        ("user_send_gif", {"msg_id": "m-gif", "attachments": att("gif", url="https://z.example/g.gif")}, STICKER, None),
        ("user_send_file", {"msg_id": "m-file", "attachments": att("file", url="https://z.example/f", name="hd.pdf")}, FILE, None),
        (
            "user_send_link",
            {"msg_id": "m-link", "text": "https://n.example/a", "attachments": att("link", url="https://n.example/a")},
            LINK,
            "https://n.example/a",
        ),
        ("user_send_video", {"msg_id": "m-vid", "attachments": att("video", url="https://z.example/v.mp4")}, OTHER, None),
        ("user_send_business_card", {"msg_id": "m-card", "attachments": att("link", url="https://z.example/c")}, OTHER, None),
        ("user_send_something_new", {"msg_id": "m-new"}, OTHER, None),
    ],
)
def test_every_message_kind(adapter, event_name, message, kind, text):
    [parsed] = adapter.parse(webhook(user_event(event_name, message)))
    assert (parsed.kind, parsed.text, parsed.message_id, parsed.sender) == (kind, text, message["msg_id"], USER_ID)
    if "attachments" in message:
        assert parsed.context["attachments"][0]["type"] == message["attachments"][0]["type"]
        assert parsed.context["attachments"][0]["url"] == message["attachments"][0]["payload"]["url"]


def test_voice_never_carries_text(adapter):
    [parsed] = adapter.parse(webhook(user_event("user_send_audio", {"msg_id": "m", "text": "?", "attachments": []})))
    assert parsed.kind == VOICE and parsed.text is None


def test_location_keeps_coordinates(adapter):
    attachment = {"type": "location", "payload": {"coordinates": {"latitude": "10.7769", "longitude": 106.7009}}}
    [parsed] = adapter.parse(webhook(user_event("user_send_location", {"msg_id": "m-loc", "attachments": [attachment]})))
    assert parsed.kind == LOCATION
    assert parsed.context["attachments"] == [{"type": "location", "latitude": 10.7769, "longitude": 106.7009}]


def test_anonymous_text_keeps_conversation(adapter):
    event = user_event("anonymous_send_text", {"text": "hỏi ẩn danh", "msg_id": "m-anon", "conversation_id": "conv-1"}, sender="anon-42")
    [parsed] = adapter.parse(webhook(event))
    assert (parsed.kind, parsed.text, parsed.sender) == (TEXT, "hỏi ẩn danh", "anon-42")
    assert parsed.context["anonymous"] is True and parsed.context["conversation_id"] == "conv-1"


@pytest.mark.parametrize("event_name, kind", [("follow", FOLLOW), ("unfollow", UNFOLLOW)])
def test_follow_and_unfollow(adapter, event_name, kind):
    [parsed] = adapter.parse(webhook(follow_event(event_name)))
    assert (parsed.kind, parsed.sender, parsed.text) == (kind, USER_ID, None)
    assert parsed.context["source"] == "oa_profile"
    # Stable across Zalo's retries, distinct per event, and without the follower id in clear.
    [again] = adapter.parse(webhook(follow_event(event_name)))
    [later] = adapter.parse(webhook(follow_event(event_name, timestamp="1719812399999")))
    assert parsed.message_id == again.message_id != later.message_id
    assert USER_ID not in parsed.message_id


def test_follow_and_unfollow_ids_differ(adapter):
    [follow] = adapter.parse(webhook(follow_event("follow")))
    [unfollow] = adapter.parse(webhook(follow_event("unfollow")))
    assert follow.message_id != unfollow.message_id


@pytest.mark.parametrize(
    "event",
    [
        user_event("oa_send_text", {"text": "our own reply", "msg_id": "echo-1"}, sender=OA_ID),
        user_event("oa_send_image", {"msg_id": "echo-2", "attachments": IMAGE_ATTACHMENT}, sender=OA_ID),
        user_event("oa_send_anonymous_text", {"text": "x", "msg_id": "echo-3"}, sender=OA_ID),
        user_event("user_seen_message", {"msg_ids": ["a", "b"]}),
        user_event("user_received_message", {"msg_id": "a"}),
        user_event("user_reacted_message", {"msg_id": "a", "react_icon": "/-heart"}),
        user_event("user_send_group_text", {"text": "group chat", "msg_id": "g-1"}),
        user_event("oa_send_group_text", {"text": "group chat", "msg_id": "g-2"}),
        {"app_id": APP_ID, "oa_id": OA_ID, "event_name": "add_user_to_tag", "tag": {"user_ids": [USER_ID]}, "timestamp": TIMESTAMP},
        {"app_id": APP_ID, "event_name": "user_submit_info", "sender": {"id": USER_ID}, "info": {"name": "A"}, "timestamp": TIMESTAMP},
    ],
)
def test_echoes_receipts_and_management_events_are_ignored(adapter, event):
    assert adapter.parse(webhook(event)) == []


def test_unknown_event_is_malformed(adapter):
    with pytest.raises(MalformedBody):
        adapter.parse(webhook(user_event("something_zalo_never_sent", {"msg_id": "m"})))


def test_old_timestamps_are_accepted(adapter):
    """Zalo retries for hours: a day-old event is a late delivery, not a forgery."""
    event = user_event("user_send_text", {"text": "late", "msg_id": "m-late"}, timestamp="1500000000000")
    [parsed] = adapter.parse(webhook(event))
    assert parsed.sent_at.year == 2017


def test_timestamp_sent_as_a_number_is_signed_as_its_digits(adapter):
    event = user_event("user_send_text", {"text": "hi", "msg_id": "m-num"}, timestamp=int(TIMESTAMP))
    [parsed] = adapter.parse(webhook(event, timestamp=TIMESTAMP))
    assert parsed.message_id == "m-num"


def test_signature_accepts_bare_hex_and_header_timestamp(adapter):
    event = user_event("user_send_text", {"text": "hi", "msg_id": "m-hdr"})
    body = json.dumps(event).encode()
    bare = sign(body)[len("mac=") :].upper()
    assert adapter.parse(WebhookRequest("POST", {}, {"x-zevent-signature": bare}, body))[0].message_id == "m-hdr"
    # A deployment that signs the X-ZEvent-Timestamp header's value instead of the body's.
    headers = {"x-zevent-signature": sign(body, timestamp="1719812340000"), "x-zevent-timestamp": "1719812340000"}
    assert adapter.parse(WebhookRequest("POST", {}, headers, body))[0].message_id == "m-hdr"


# ---------------------------------------------------------------------- refusals


def text_body() -> bytes:
    return json.dumps(user_event("user_send_text", {"text": "hi", "msg_id": "m-1"})).encode()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-zevent-signature": ""},
        {"x-zevent-signature": "mac=not-hex"},
        {"x-zevent-signature": "mac=" + "0" * 64},
        {"x-zevent-signature": sign(text_body(), secret=APP_SECRET)},  # the app secret is not the signing key
        {"x-zevent-signature": sign(text_body(), app_id="1111")},
        {"x-zevent-signature": sign(text_body(), timestamp="1719812345679")},
        {"x-zevent-signature": "mac=" + hashlib.sha256(text_body()).hexdigest()},
        {"x-zevent-signature": "mac=ｆ" + "0" * 63},
    ],
)
def test_forged_signatures_are_refused(adapter, headers):
    with pytest.raises(SignatureInvalid) as info:
        adapter.parse(WebhookRequest("POST", {}, headers, text_body()))
    assert info.value.status == 403


def test_tampered_body_is_refused(adapter):
    body = text_body()
    tampered = body.replace(b'"hi"', b'"ho"')
    with pytest.raises(SignatureInvalid):
        adapter.parse(WebhookRequest("POST", {}, {"x-zevent-signature": sign(body)}, tampered))


def test_refusals_log_no_ids_or_text(adapter, caplog):
    caplog.set_level(logging.DEBUG, logger="channel_adapters.zalo")
    body = json.dumps(user_event("user_send_text", {"text": "bí mật", "msg_id": "m-1"}, sender="9876543210")).encode()
    with pytest.raises(SignatureInvalid):
        adapter.parse(WebhookRequest("POST", {}, {"x-zevent-signature": "mac=" + "0" * 64}, body))
    with pytest.raises(MalformedBody):
        adapter.parse(webhook(user_event("user_send_text", {"text": 7, "msg_id": "m"}, sender="9876543210")))
    assert caplog.records
    assert "9876543210" not in caplog.text and "bí mật" not in caplog.text


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"",
        b"\xff\xfe{}",
        b"[1, 2, 3]",
        b'"text"',
        b"[" * 100000 + b"]" * 100000,
    ],
)
def test_broken_json_is_malformed(adapter, raw):
    with pytest.raises(MalformedBody):
        adapter.parse(webhook(None, raw=raw, timestamp=TIMESTAMP))


@pytest.mark.parametrize(
    "event",
    [
        {k: v for k, v in user_event("user_send_text", {"text": "x", "msg_id": "m"}).items() if k != "timestamp"},
        user_event("user_send_text", {"text": "x", "msg_id": "m"}, timestamp="yesterday"),
        user_event("user_send_text", {"text": "x", "msg_id": "m"}, timestamp=-5),
        user_event("user_send_text", {"text": "x", "msg_id": "m"}, timestamp=1.5),
        {k: v for k, v in user_event("user_send_text", {"text": "x", "msg_id": "m"}).items() if k != "event_name"},
        {**user_event("user_send_text", {"text": "x", "msg_id": "m"}), "event_name": 12},
        {k: v for k, v in user_event("user_send_text", {"text": "x", "msg_id": "m"}).items() if k != "sender"},
        {**user_event("user_send_text", {"text": "x", "msg_id": "m"}), "sender": USER_ID},
        user_event("user_send_text", {"text": "x", "msg_id": "m"}, sender=None),
        user_event("user_send_text", {"text": "x", "msg_id": "m"}, sender=True),
        user_event("user_send_text", {"text": "x", "msg_id": "m"}, sender=1.5),
        user_event("user_send_text", {"text": "x", "msg_id": "m"}, sender=[USER_ID]),
        user_event("user_send_text", {"text": "x", "msg_id": "m"}, sender=""),
        {**user_event("user_send_text", {"text": "x", "msg_id": "m"}), "message": "x"},
        user_event("user_send_text", {"text": "x"}),
        user_event("user_send_text", {"text": "x", "msg_id": {"id": 1}}),
        user_event("user_send_text", {"msg_id": "m"}),
        user_event("user_send_text", {"text": "", "msg_id": "m"}),
        user_event("user_send_text", {"text": ["x"], "msg_id": "m"}),
        user_event("user_send_image", {"msg_id": "m", "attachments": "https://z.example/a.jpg"}),
        user_event("user_send_image", {"msg_id": "m", "attachments": ["https://z.example/a.jpg"]}),
        {k: v for k, v in follow_event().items() if k != "follower"},
        follow_event(follower={"id": USER_ID}),
    ],
)
def test_wrong_types_and_missing_fields_are_malformed(adapter, event):
    with pytest.raises(MalformedBody) as info:
        adapter.parse(webhook(event, timestamp=TIMESTAMP))
    assert 400 <= info.value.status < 500


def test_huge_body_is_refused_before_parsing(adapter):
    body = json.dumps(user_event("user_send_text", {"text": "x" * 300_000, "msg_id": "m"})).encode()
    with pytest.raises(MalformedBody) as info:
        adapter.parse(WebhookRequest("POST", {}, {"x-zevent-signature": sign(body)}, body))
    assert info.value.status == 413


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
event_names = st.sampled_from(
    ["user_send_text", "user_send_image", "user_send_location", "follow", "oa_send_text", "anonymous_send_text", "x"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300), signed=st.booleans())
def test_random_bytes_only_raise_webhook_rejected(adapter, raw, signed):
    headers = {"x-zevent-signature": sign(raw)} if signed else {"x-zevent-signature": "mac=" + "a" * 64}
    try:
        adapter.parse(WebhookRequest("POST", {}, headers, raw))
    except WebhookRejected:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    event_name=event_names,
    sender=json_values,
    message=json_values,
    follower=json_values,
    timestamp=st.one_of(st.just(TIMESTAMP), st.integers(min_value=0, max_value=10**30), json_values),
    extra=st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    signed=st.booleans(),
)
def test_random_json_events_only_raise_webhook_rejected(adapter, event_name, sender, message, follower, timestamp, extra, signed):
    event = {**extra, "app_id": APP_ID, "event_name": event_name, "sender": sender, "message": message, "follower": follower}
    event["timestamp"] = timestamp
    body = json.dumps(event).encode()
    signed_timestamp = str(timestamp) if isinstance(timestamp, (int, str)) and not isinstance(timestamp, bool) else TIMESTAMP
    headers = {"x-zevent-signature": sign(body, signed_timestamp) if signed else "mac=" + "b" * 64}
    try:
        result = adapter.parse(WebhookRequest("POST", {}, headers, body))
    except WebhookRejected:
        return
    assert signed
    for parsed in result:
        assert isinstance(parsed.sender, str) and isinstance(parsed.message_id, str) and parsed.sender and parsed.message_id


# ---------------------------------------------------------------------- sending


@pytest.fixture(scope="module")
def zalo_server():
    fake = FakeZaloApi(app_id=APP_ID, app_secret=APP_SECRET)
    with serve(fake.app) as url:
        yield fake, url + "/"


@pytest.fixture
def zalo(zalo_server):
    fake, base = zalo_server
    fake.reset()
    return fake, base


def fresh_store(fake: FakeZaloApi, expires_at: Optional[float] = None) -> MemoryTokenStore:
    return MemoryTokenStore(ZaloTokens(fake.access_token, fake.refresh_token, expires_at))


def run_send(adapter: ZaloAdapter, *messages: OutboundMessage):
    async def scenario():
        try:
            return await asyncio.gather(*(adapter.send(message) for message in messages), return_exceptions=True)
        finally:
            await adapter.aclose()

    return asyncio.run(scenario())


def reply(text: str = "Chúng tôi đã nhận được tin nhắn của bạn.", recipient: str = USER_ID) -> OutboundMessage:
    return OutboundMessage("zalo", recipient, text)


def test_send_success(zalo):
    fake, base = zalo
    [message_id] = run_send(make_adapter(base, fresh_store(fake)), reply())
    assert isinstance(message_id, str) and message_id == fake.sent[0]["message_id"]
    assert fake.sent_texts() == ["Chúng tôi đã nhận được tin nhắn của bạn."]
    assert fake.sent_texts(USER_ID) == fake.sent_texts() and fake.sent_texts("someone else") == []
    [request] = fake.requests
    assert request["path"] == SEND_PATH
    assert request["headers"]["access_token"] == "access-1"
    assert "authorization" not in request["headers"]
    assert request["json"] == {"recipient": {"user_id": USER_ID}, "message": {"text": "Chúng tôi đã nhận được tin nhắn của bạn."}}


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_is_retryable(zalo, status):
    fake, base = zalo
    fake.fail_next(1, status=status)
    [error] = run_send(make_adapter(base, fresh_store(fake)), reply())
    assert isinstance(error, DeliveryError) and error.retryable and error.code == f"http_{status}"
    assert fake.sent_texts() == []


def test_timeout_is_retryable(zalo):
    fake, base = zalo
    fake.hang_next(1, 0.6)
    [error] = run_send(make_adapter(base, fresh_store(fake), timeout=0.2), reply())
    assert isinstance(error, DeliveryError) and error.retryable and error.code == "timeout"


def test_connection_refused_is_retryable():
    base = f"http://127.0.0.1:{free_port()}/"
    [error] = run_send(make_adapter(base), reply())
    assert isinstance(error, DeliveryError) and error.retryable and error.code == "connection"


def test_window_closed(zalo):
    fake, base = zalo
    fake.close_window(USER_ID)
    [error] = run_send(make_adapter(base, fresh_store(fake)), reply())
    assert isinstance(error, WindowClosed) and not error.retryable and error.code == "-230"
    assert fake.refresh_count == 0


def test_other_refusals_are_permanent_and_rate_limits_retryable(zalo):
    fake, base = zalo
    fake.error_next(1, -213, "User has not followed OA")
    fake.error_next(1, -32, "Your OA reached limit call api")
    fake.error_next(1, -232, "User has not interacted with the OA, or the last interaction has expired")
    refused, limited, window = run_send(make_adapter(base, fresh_store(fake)), reply(), reply(), reply())
    results = sorted([refused, limited, window], key=lambda error: error.code)
    assert [(type(e), e.code, e.retryable) for e in results] == [
        (DeliveryError, "-213", False),
        (WindowClosed, "-232", False),
        (DeliveryError, "-32", True),
    ]


def test_http_4xx_is_permanent(zalo):
    fake, base = zalo
    fake.fail_next(1, status=404)
    [error] = run_send(make_adapter(base, fresh_store(fake)), reply())
    assert isinstance(error, DeliveryError) and not error.retryable and error.code == "http_404"


def test_too_long_text_is_refused_before_sending(zalo):
    fake, base = zalo
    [error] = run_send(make_adapter(base, fresh_store(fake)), reply("x" * 2001))
    assert isinstance(error, DeliveryError) and not error.retryable and error.code == "text_too_long"
    assert fake.requests == []


def test_send_failures_log_no_ids_or_text(zalo, caplog):
    caplog.set_level(logging.DEBUG, logger="channel_adapters.zalo")
    fake, base = zalo
    fake.close_window(USER_ID)
    fake.fail_next(1, status=500)
    run_send(make_adapter(base, fresh_store(fake)), reply("nội dung riêng tư"), reply("nội dung riêng tư"))
    assert "zalo_send_failed" in caplog.text
    assert USER_ID not in caplog.text and "riêng tư" not in caplog.text and "access-1" not in caplog.text


# ---------------------------------------------------------------------- tokens


def test_expired_token_is_refreshed_saved_and_the_send_retried_once(zalo):
    fake, base = zalo
    fake.expire_token()
    store = fresh_store(fake)
    [message_id] = run_send(make_adapter(base, store), reply())
    assert message_id is not None and fake.sent_texts() == [reply().text]
    assert [request["path"] for request in fake.requests] == [SEND_PATH, TOKEN_PATH, SEND_PATH]
    refresh = fake.requests[1]
    assert refresh["headers"]["secret_key"] == APP_SECRET
    assert refresh["form"] == {"refresh_token": "refresh-1", "app_id": APP_ID, "grant_type": "refresh_token"}
    saved = asyncio.run(store.load())
    assert (saved.access_token, saved.refresh_token) == ("access-2", "refresh-2") == (fake.access_token, fake.refresh_token)
    assert saved.expires_at is not None and saved.expires_at > 1e9
    assert fake.requests[2]["headers"]["access_token"] == "access-2"
    assert fake.refresh_count == 1


def test_expiry_in_the_store_refreshes_before_sending(zalo):
    fake, base = zalo
    store = fresh_store(fake, expires_at=1.0)
    run_send(make_adapter(base, store), reply())
    assert [request["path"] for request in fake.requests] == [TOKEN_PATH, SEND_PATH]
    assert fake.requests[1]["headers"]["access_token"] == "access-2"


def test_concurrent_sends_after_expiry_refresh_once(zalo):
    fake, base = zalo
    fake.expire_token()
    results = run_send(make_adapter(base, fresh_store(fake)), *(reply(f"answer {i}") for i in range(5)))
    assert all(isinstance(result, str) for result in results), results
    assert fake.refresh_count == 1
    assert len(fake.requests_to(TOKEN_PATH)) == 1
    assert sorted(fake.sent_texts()) == [f"answer {i}" for i in range(5)]


def test_two_processes_sharing_a_store_refresh_once(zalo):
    """Two adapters (as two processes) share one store and its lock: the second uses the first's refresh."""
    fake, base = zalo
    fake.expire_token()
    store = fresh_store(fake)

    async def scenario():
        first, second = make_adapter(base, store), make_adapter(base, store)
        try:
            return await asyncio.gather(first.send(reply("one")), second.send(reply("two")), first.send(reply("three")))
        finally:
            await first.aclose()
            await second.aclose()

    assert all(isinstance(result, str) for result in asyncio.run(scenario()))
    assert fake.refresh_count == 1
    assert sorted(fake.sent_texts()) == ["one", "three", "two"]


def test_a_refresh_already_done_elsewhere_is_used(zalo):
    """The send failed with access-1, but by the time it holds the lock the store has access-2."""
    fake, base = zalo
    store = fresh_store(fake)

    async def scenario():
        adapter = make_adapter(base, store)
        try:
            await adapter.refresh_tokens()  # "another process" rotates the pair
            return await adapter.refresh_tokens(stale_access_token="access-1")
        finally:
            await adapter.aclose()

    tokens = asyncio.run(scenario())
    assert tokens.access_token == "access-2" and fake.refresh_count == 1


def test_refresh_token_is_single_use_in_the_fake(zalo):
    fake, base = zalo
    form = {"refresh_token": "refresh-1", "app_id": APP_ID, "grant_type": "refresh_token"}
    first = httpx.post(base + "v4/oa/access_token", headers={"secret_key": APP_SECRET}, data=form).json()
    again = httpx.post(base + "v4/oa/access_token", headers={"secret_key": APP_SECRET}, data=form).json()
    form2 = {**form, "refresh_token": "refresh-2"}
    wrong_secret = httpx.post(base + "v4/oa/access_token", headers={"secret_key": "nope"}, data=form2).json()
    assert first["access_token"] == "access-2" and first["expires_in"] == "90000"
    assert again["error"] != 0 and "access_token" not in again
    assert wrong_secret["error"] != 0 and fake.refresh_count == 1


def test_a_spent_refresh_token_is_a_permanent_failure(zalo):
    """The store lost the rotated pair (e.g. a crash before saving): a person must grant the app again."""
    fake, base = zalo
    asyncio.run(_rotate(fake, base))
    fake.expire_token()
    [error] = run_send(make_adapter(base, MemoryTokenStore(ZaloTokens("access-1", "refresh-1", None))), reply())
    assert isinstance(error, DeliveryError) and not error.retryable and error.code.startswith("refresh_refused")
    assert fake.sent_texts() == []


async def _rotate(fake: FakeZaloApi, base: str) -> None:
    async with httpx.AsyncClient() as client:
        form = {"refresh_token": fake.refresh_token, "app_id": APP_ID, "grant_type": "refresh_token"}
        await client.post(base + "v4/oa/access_token", headers={"secret_key": APP_SECRET}, data=form)


def test_refresh_server_error_is_retryable_and_keeps_the_tokens(zalo):
    fake, base = zalo
    fake.expire_token()
    fake.fail_next(1, status=500, path=TOKEN_PATH)
    store = fresh_store(fake)
    [error] = run_send(make_adapter(base, store), reply())
    assert isinstance(error, DeliveryError) and error.retryable
    assert asyncio.run(store.load()).refresh_token == "refresh-1"
    # The next attempt (the outbox's retry) refreshes and delivers.
    run_send(make_adapter(base, store), reply())
    assert fake.sent_texts() == [reply().text] and fake.refresh_count == 1


def test_wrong_app_secret_fails_the_refresh_permanently(zalo):
    fake, base = zalo
    fake.expire_token()
    config = ZaloConfig(APP_ID, OA_SECRET, "not-the-secret", api_base=base, oauth_base=base)
    [error] = run_send(ZaloAdapter(config, fresh_store(fake)), reply())
    assert isinstance(error, DeliveryError) and not error.retryable


def test_token_refused_right_after_refresh_is_permanent(zalo):
    fake, base = zalo
    fake.expire_token()
    fake.error_next(2, -216, "Access token is invalid")
    [error] = run_send(make_adapter(base, fresh_store(fake)), reply())
    assert isinstance(error, DeliveryError) and not error.retryable and error.code == "-216"
    assert fake.refresh_count == 1 and len(fake.requests_to(SEND_PATH)) == 2


class FailingSaveStore(MemoryTokenStore):
    async def save(self, tokens: ZaloTokens) -> None:
        raise OSError("database down")


def test_new_tokens_are_never_used_unsaved(zalo):
    fake, base = zalo
    fake.expire_token()
    [error] = run_send(make_adapter(base, FailingSaveStore(ZaloTokens("access-1", "refresh-1", None))), reply())
    assert isinstance(error, DeliveryError) and not error.retryable and error.code == "token_save_failed"
    assert [request["headers"].get("access_token") for request in fake.requests_to(SEND_PATH)] == ["access-1"]


def test_secrets_stay_out_of_reprs():
    config = ZaloConfig(APP_ID, OA_SECRET, APP_SECRET)
    tokens = ZaloTokens("access-secret", "refresh-secret", None)
    assert OA_SECRET not in repr(config) and APP_SECRET not in repr(config)
    assert "access-secret" not in repr(tokens) and "refresh-secret" not in repr(tokens)
