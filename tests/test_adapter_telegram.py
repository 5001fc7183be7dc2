"""The Telegram adapter against webhook updates built with python-telegram-bot's own types, and against
a fake Bot API server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time

import pytest
import telegram
import uvicorn.config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channel_adapters.base import (
    FILE,
    FOLLOW,
    IMAGE,
    KINDS,
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
    WindowClosed,
)
from channel_adapters.telegram import SECRET_HEADER, TelegramAdapter, TelegramConfig, split_text
from tests.fakes.server import free_port, serve
from tests.fakes.telegram_api import FakeTelegramApi, text_update

TOKEN = "123456:TEST-token_abc"
SECRET = "webhook-Secret_42"
WORKER = 4242
WHEN = dt.datetime(2024, 5, 1, 8, 30, tzinfo=dt.timezone.utc)
USER = telegram.User(id=WORKER, first_name="Lan", is_bot=False)
PRIVATE = telegram.Chat(id=WORKER, type=telegram.Chat.PRIVATE, first_name="Lan")


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api():
    fake = FakeTelegramApi(TOKEN)
    with pytest.MonkeyPatch.context() as patch:
        # tests/fakes/server.py leaves uvicorn's ws="auto", whose import fails with the websockets
        # version Rasa pins. This server speaks no websockets, so turn them off.
        patch.setitem(uvicorn.config.WS_PROTOCOLS, "auto", None)
        with serve(fake.app) as base_url:
            fake.base_url = base_url
            yield fake


@pytest.fixture()
def adapter(api, run):
    api.reset()
    instance = TelegramAdapter(TelegramConfig(token=TOKEN, secret=SECRET, api_base=api.base_url, timeout=0.5))
    yield instance
    run(instance.aclose())


@pytest.fixture(scope="module")
def offline(run):
    """An adapter for parsing only (parsing keeps no state): its API base is never called."""
    instance = TelegramAdapter(TelegramConfig(token=TOKEN, secret=SECRET, api_base=f"http://127.0.0.1:{free_port()}"))
    yield instance
    run(instance.aclose())


def signed(body: bytes, secret: str = SECRET, method: str = "POST") -> WebhookRequest:
    return WebhookRequest(method=method, query={}, headers={"content-type": "application/json", SECRET_HEADER: secret}, body=body)


def update(update_id: int = 7001, chat: telegram.Chat = PRIVATE, **fields) -> bytes:
    """A webhook body carrying one new message, serialised by python-telegram-bot itself."""
    message = telegram.Message(message_id=55, date=WHEN, chat=chat, from_user=USER, **fields)
    return telegram.Update(update_id=update_id, message=message).to_json().encode("utf-8")


def outbound(text: str, recipient: str = str(WORKER)) -> OutboundMessage:
    return OutboundMessage(channel="telegram", recipient=recipient, text=text)


# -- parsing ------------------------------------------------------------------------------------


def test_text_message_becomes_one_inbound_message(offline):
    [message] = offline.parse(signed(update(text="Tôi chưa được trả lương tháng này")))
    assert message == InboundMessage(
        channel="telegram",
        sender=str(WORKER),
        message_id="7001",
        kind=TEXT,
        text="Tôi chưa được trả lương tháng này",
        sent_at=WHEN,
        context={"chat_type": "private"},
    )


def test_message_id_is_the_update_id_so_a_redelivery_is_recognised(offline):
    first = offline.parse(signed(update(update_id=9, text="help")))
    again = offline.parse(signed(update(update_id=9, text="help")))
    other = offline.parse(signed(update(update_id=10, text="help")))
    assert first[0].message_id == again[0].message_id == "9"
    assert other[0].message_id == "10"


VOICE_NOTE = telegram.Voice(file_id="v1", file_unique_id="uv1", duration=4)
PHOTO = (telegram.PhotoSize(file_id="p1", file_unique_id="up1", width=90, height=90),)
PLACE = telegram.Location(longitude=106.7, latitude=10.8)


@pytest.mark.parametrize(
    "fields, kind, text",
    [
        ({"text": "hello"}, TEXT, "hello"),
        ({"text": "/start"}, FOLLOW, None),
        ({"text": "/start@helpline_test_bot"}, FOLLOW, None),
        ({"text": "/startled by my boss"}, TEXT, "/startled by my boss"),
        ({"text": "/help"}, TEXT, "/help"),
        ({"voice": VOICE_NOTE}, VOICE, None),
        ({"audio": telegram.Audio(file_id="a1", file_unique_id="ua1", duration=30)}, VOICE, None),
        ({"photo": PHOTO}, IMAGE, None),
        ({"sticker": telegram.Sticker("s1", "us1", 512, 512, False, False, telegram.Sticker.REGULAR)}, STICKER, None),
        ({"location": PLACE}, LOCATION, None),
        ({"venue": telegram.Venue(location=PLACE, title="Factory gate", address="KCN Tân Bình"), "location": PLACE}, LOCATION, None),
        ({"document": telegram.Document(file_id="d1", file_unique_id="ud1", file_name="payslip.pdf")}, FILE, None),
        ({"video": telegram.Video(file_id="m1", file_unique_id="um1", width=1, height=1, duration=3)}, FILE, None),
        ({"video_note": telegram.VideoNote(file_id="n1", file_unique_id="un1", length=240, duration=3)}, FILE, None),
        ({"contact": telegram.Contact(phone_number="+84900000000", first_name="Lan")}, OTHER, None),
        ({"dice": telegram.Dice(value=3, emoji="🎲")}, OTHER, None),
    ],
)
def test_every_kind_of_message_is_recognised(offline, fields, kind, text):
    [message] = offline.parse(signed(update(**fields)))
    assert (message.kind, message.text) == (kind, text)
    assert message.sender == str(WORKER)
    assert message.message_id == "7001"


def test_start_with_a_deep_link_payload_keeps_the_payload(offline):
    [message] = offline.parse(signed(update(text="/start factory-A12")))
    assert message.kind == FOLLOW
    assert message.context["start_payload"] == "factory-A12"


def test_photo_caption_is_kept_for_the_operators(offline):
    [message] = offline.parse(signed(update(photo=PHOTO, caption="this is my payslip")))
    assert message.kind == IMAGE
    assert message.text is None
    assert message.context["caption"] == "this is my payslip"


def test_location_keeps_its_coordinates(offline):
    [message] = offline.parse(signed(update(location=PLACE)))
    assert (message.context["latitude"], message.context["longitude"]) == (10.8, 106.7)


def test_group_message_is_parsed_with_the_group_as_sender(offline):
    group = telegram.Chat(id=-100555, type=telegram.Chat.SUPERGROUP, title="Line 3")
    [message] = offline.parse(signed(update(chat=group, text="hello")))
    assert message.sender == "-100555"
    assert message.context["chat_type"] == "supergroup"


def test_updates_without_a_new_message_carry_nothing(offline):
    edited = telegram.Message(message_id=55, date=WHEN, chat=PRIVATE, from_user=USER, text="edited", edit_date=WHEN)
    blocked = telegram.ChatMemberUpdated(
        chat=PRIVATE,
        from_user=USER,
        date=WHEN,
        old_chat_member=telegram.ChatMemberMember(user=USER),
        new_chat_member=telegram.ChatMemberBanned(user=USER, until_date=WHEN),
    )
    button = telegram.CallbackQuery(id="cq1", from_user=USER, chat_instance="ci", data="yes")
    for kwargs in ({"edited_message": edited}, {"my_chat_member": blocked}, {"callback_query": button}):
        body = telegram.Update(update_id=8000, **kwargs).to_json().encode()
        assert offline.parse(signed(body)) == []
    assert offline.parse(signed(b'{"update_id": 8001}')) == []


# -- the secret token ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {SECRET_HEADER: ""},
        {SECRET_HEADER: "wrong"},
        {SECRET_HEADER: SECRET.upper()},
        {SECRET_HEADER: SECRET + " "},
        {SECRET_HEADER: SECRET[:-1]},
        {SECRET_HEADER: "sécret"},
        {"x-telegram-bot-api-secret": SECRET},
    ],
)
def test_a_request_without_the_exact_secret_is_refused(offline, headers):
    request = WebhookRequest(method="POST", query={}, headers=headers, body=update(text="hello"))
    with pytest.raises(SignatureInvalid) as refused:
        offline.parse(request)
    assert refused.value.status == 403


def test_the_secret_is_checked_before_the_body_is_looked_at(offline):
    with pytest.raises(SignatureInvalid):
        offline.parse(signed(b"not json at all", secret="forged"))


def test_header_name_case_does_not_matter(offline):
    request = WebhookRequest(method="POST", query={}, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}, body=update(text="hi"))
    assert offline.parse(request)[0].text == "hi"


def test_only_post_is_accepted(offline):
    with pytest.raises(WebhookRejected) as refused:
        offline.parse(signed(update(text="hi"), method="GET"))
    assert refused.value.status == 405


def test_config_refuses_an_empty_or_invalid_secret_and_hides_credentials():
    for secret in ("", "with space", "x" * 257):
        with pytest.raises(ValueError):
            TelegramConfig(token=TOKEN, secret=secret)
    with pytest.raises(ValueError):
        TelegramConfig(token="", secret=SECRET)
    shown = repr(TelegramConfig(token=TOKEN, secret=SECRET))
    assert TOKEN not in shown and SECRET not in shown


# -- malformed bodies ---------------------------------------------------------------------------


def _message_dict(**changes):
    data = json.loads(update(text="hello"))
    data["message"].update(changes)
    return data


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"\xff\xfe\xfa",
        b"null",
        b"[]",
        b'"update"',
        b"42",
        b"{}",
        b'{"update_id": "7001"}',
        b'{"update_id": true}',
        b'{"update_id": 1.5}',
        b'{"update_id": 1, "message": "hello"}',
        b'{"update_id": 1, "message": [1, 2]}',
        json.dumps({"update_id": 1, "message": {"text": "no chat, no date"}}).encode(),
        json.dumps(_message_dict(chat={"id": "4242", "type": "private"})).encode(),
        json.dumps(_message_dict(chat={"id": None, "type": "private"})).encode(),
        json.dumps(_message_dict(chat="4242")).encode(),
        json.dumps(_message_dict(text=12345)).encode(),
        json.dumps(_message_dict(text=["a"])).encode(),
        json.dumps(_message_dict(date="yesterday")).encode(),
        json.dumps(_message_dict(photo="not a list")).encode(),
        b'{"update_id": 1, "message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
    ids=lambda body: ascii(body[:24]) if len(body) < 200 else f"{len(body)} bytes",
)
def test_malformed_bodies_are_refused_with_malformed_body(offline, body):
    with pytest.raises(MalformedBody) as refused:
        offline.parse(signed(body))
    assert 400 <= refused.value.status < 500


def test_an_oversized_body_is_refused_before_parsing(offline):
    body = update(text="x" * 2_000_000)
    with pytest.raises(MalformedBody) as refused:
        offline.parse(signed(body))
    assert refused.value.status == 413


def _check(adapter, request):
    try:
        messages = adapter.parse(request)
    except WebhookRejected as rejected:
        assert 400 <= rejected.status < 500
        return
    for message in messages:
        assert isinstance(message, InboundMessage)
        assert message.kind in KINDS
        assert isinstance(message.sender, str) and isinstance(message.message_id, str)
        assert message.text is None or isinstance(message.text, str)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
_MESSAGE_KEYS = ["message_id", "date", "chat", "from", "text", "caption", "photo", "voice", "sticker", "location", "venue", "document"]
_message_like = st.dictionaries(st.sampled_from(_MESSAGE_KEYS), _json | st.fixed_dictionaries({"id": _json, "type": _json}), max_size=8)
_update_like = st.fixed_dictionaries(
    {"update_id": st.integers(min_value=0, max_value=2**40)},
    optional={"message": _message_like | _json, "edited_message": _message_like, "callback_query": _json},
)
_FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FUZZ
@given(body=st.binary(max_size=300), good_secret=st.booleans())
def test_random_bytes_never_raise_anything_but_rejections(offline, body, good_secret):
    _check(offline, signed(body, secret=SECRET if good_secret else "forged"))


@_FUZZ
@given(data=_json | _update_like, good_secret=st.booleans())
def test_random_json_never_raises_anything_but_rejections(offline, data, good_secret):
    _check(offline, signed(json.dumps(data).encode(), secret=SECRET if good_secret else "forged"))


@_FUZZ
@given(text=st.text(min_size=1, max_size=200), chat_id=st.integers(min_value=-(2**52), max_value=2**52), update_id=st.integers(0, 2**31))
def test_any_text_message_round_trips(offline, text, chat_id, update_id):
    chat = telegram.Chat(id=chat_id, type=telegram.Chat.PRIVATE)
    [message] = offline.parse(signed(update(update_id=update_id, chat=chat, text=text)))
    assert message.sender == str(chat_id)
    assert message.message_id == str(update_id)
    assert message.kind in (TEXT, FOLLOW)
    if message.kind == TEXT:
        assert message.text == text


# -- sending ------------------------------------------------------------------------------------


def test_send_delivers_the_text_and_returns_telegrams_message_id(api, adapter, run):
    first = run(adapter.send(outbound("Chúng tôi đã nhận được tin nhắn của bạn.")))
    second = run(adapter.send(outbound("Một nhân viên sẽ trả lời sớm.")))
    assert (first, second) == ("1", "2")
    assert api.sent_texts(WORKER) == ["Chúng tôi đã nhận được tin nhắn của bạn.", "Một nhân viên sẽ trả lời sớm."]
    [request, _] = api.calls("sendMessage")
    assert request["json"]["chat_id"] == str(WORKER)
    assert "parse_mode" not in request["json"]  # plain text: a worker's "<" is not markup
    assert api.calls("getMe") == []  # no round trip to Telegram just to learn who we are


def test_parse_and_send_never_call_get_me(api, adapter, run):
    adapter.parse(signed(update(text="hello")))
    run(adapter.send(outbound("hi")))
    assert [r["path"].rsplit("/", 1)[-1] for r in api.requests] == ["sendMessage"]


def test_server_error_is_retryable_and_a_retry_then_succeeds(api, adapter, run):
    api.fail_next(1, status=500)
    with pytest.raises(DeliveryError) as failed:
        run(adapter.send(outbound("hello")))
    assert failed.value.retryable is True
    assert api.sent_texts() == []
    assert run(adapter.send(outbound("hello"))) == "1"
    assert api.sent_texts() == ["hello"]


def test_timeout_is_retryable_and_bounded_by_the_configured_timeout(api, adapter, run):
    api.hang_next(1, seconds=5)
    started = time.monotonic()
    with pytest.raises(DeliveryError) as failed:
        run(adapter.send(outbound("hello")))
    assert time.monotonic() - started < 3
    assert failed.value.retryable is True
    assert failed.value.code == "timeout"


def test_connection_refused_is_retryable(run):
    adapter = TelegramAdapter(TelegramConfig(token=TOKEN, secret=SECRET, api_base=f"http://127.0.0.1:{free_port()}", timeout=0.5))
    try:
        with pytest.raises(DeliveryError) as failed:
            run(adapter.send(outbound("hello")))
        assert failed.value.retryable is True
    finally:
        run(adapter.aclose())


def test_flood_control_is_retryable(api, adapter, run):
    api.fail_next(1, status=429, retry_after=2)
    with pytest.raises(DeliveryError) as failed:
        run(adapter.send(outbound("hello")))
    assert (failed.value.retryable, failed.value.code) == (True, "429")


def test_a_worker_who_blocked_the_bot_is_a_permanent_failure(api, adapter, run):
    # Telegram has no reply window: a block is the closest thing, and it is not a WindowClosed.
    api.block(WORKER)
    with pytest.raises(DeliveryError) as failed:
        run(adapter.send(outbound("hello")))
    assert failed.value.retryable is False
    assert failed.value.code == "403"
    assert not isinstance(failed.value, WindowClosed)
    assert api.sent_texts() == []


def test_a_refused_request_is_a_permanent_failure(api, adapter, run):
    with pytest.raises(DeliveryError) as failed:
        run(adapter.send(outbound("hello", recipient="not-a-chat")))
    assert (failed.value.retryable, failed.value.code) == (False, "400")


def test_a_rejected_token_is_a_permanent_failure_and_is_not_repeated_in_the_reason(api, run):
    wrong = "999:WRONG-token"
    adapter = TelegramAdapter(TelegramConfig(token=wrong, secret=SECRET, api_base=api.base_url, timeout=0.5))
    try:
        with pytest.raises(DeliveryError) as failed:
            run(adapter.send(outbound("hello")))
    finally:
        run(adapter.aclose())
    assert failed.value.retryable is False
    assert wrong not in failed.value.reason


def test_an_empty_text_is_refused_without_calling_telegram(api, adapter, run):
    with pytest.raises(DeliveryError) as failed:
        run(adapter.send(outbound("  \n ")))
    assert failed.value.retryable is False
    assert api.requests == []


def test_a_long_text_is_sent_as_several_messages_in_order(api, adapter, run):
    paragraphs = [f"Paragraph {n}: " + "quyền lợi người lao động " * 60 for n in range(12)]
    text = "\n".join(paragraphs)
    assert len(text) > 3 * 4096
    run(adapter.send(outbound(text)))
    sent = api.sent_texts(WORKER)
    assert len(sent) >= 4
    assert all(len(part) <= 4096 for part in sent)
    assert "".join("".join(sent).split()) == "".join(text.split())
    # cut at line breaks: every message starts with a paragraph
    assert all(part.startswith("Paragraph") for part in sent)


def test_emoji_heavy_text_is_cut_by_utf16_code_units(api, adapter, run):
    text = "😀" * 3000  # 3000 characters, 6000 UTF-16 code units
    run(adapter.send(outbound(text)))
    sent = api.sent_texts(WORKER)
    assert len(sent) == 2
    assert all(len(part.encode("utf-16-le")) // 2 <= 4096 for part in sent)
    assert "".join(sent) == text


def test_a_failed_second_part_is_retryable_and_the_first_stays_sent(api, adapter, run):
    text = "a " * 1500 + "\n" + "b " * 1500
    assert len(split_text(text)) == 2
    api.fail_next(1, status=500, after=1)
    with pytest.raises(DeliveryError) as failed:
        run(adapter.send(outbound(text)))
    assert failed.value.retryable is True
    assert "after 1 of 2 parts" in failed.value.reason
    assert api.sent_texts(WORKER) == [("a " * 1500).strip()]


@given(text=st.text(alphabet=st.sampled_from(list("ab \n😀é")), max_size=300), limit=st.integers(min_value=2, max_value=40))
def test_split_text_keeps_every_word_within_the_limit(text, limit):
    parts = split_text(text, limit)
    assert all(part and part == part.strip() for part in parts)
    assert all(len(part.encode("utf-16-le")) // 2 <= limit for part in parts)
    assert "".join("".join(parts).split()) == "".join(text.split())


# -- logging and shutdown -----------------------------------------------------------------------


def test_logs_carry_neither_message_text_nor_worker_ids(api, adapter, run, caplog):
    caplog.set_level(logging.DEBUG, logger="channel_adapters.telegram")
    secret_words = "my supervisor Nguyen hit me"
    with pytest.raises(SignatureInvalid):
        adapter.parse(signed(update(text=secret_words), secret="forged"))
    with pytest.raises(MalformedBody):
        adapter.parse(signed(json.dumps(_message_dict(chat=str(WORKER), text=secret_words)).encode()))
    adapter.parse(signed(update(text=secret_words)))
    run(adapter.send(outbound(secret_words)))
    api.block(WORKER)
    with pytest.raises(DeliveryError):
        run(adapter.send(outbound(secret_words)))
    ours = [r for r in caplog.records if r.name == "channel_adapters.telegram"]
    assert ours, "the adapter logs rejections and delivery failures"
    for record in ours:
        line = record.getMessage()
        assert line.startswith("event=")
        assert secret_words not in line and str(WORKER) not in line and TOKEN not in line and SECRET not in line


def test_aclose_closes_the_connection_pools_and_can_be_repeated(api, run):
    api.reset()
    adapter = TelegramAdapter(TelegramConfig(token=TOKEN, secret=SECRET, api_base=api.base_url))
    run(adapter.send(outbound("hello")))
    run(adapter.aclose())
    run(adapter.aclose())
    assert all(request._client.is_closed for request in adapter._requests)


# -- the fake server, as the rest of the service will use it --------------------------------------


def test_fake_serves_python_telegram_bots_own_startup_and_webhook_calls(api, run):
    api.reset()

    async def scenario():
        from telegram.ext import Application

        application = Application.builder().token(TOKEN).base_url(f"{api.base_url}/bot").updater(None).build()
        async with application:
            assert application.bot.username == api.username
            assert await application.bot.set_webhook("https://helpline.example/telegram", secret_token=SECRET)
            sent = await application.bot.send_message(chat_id=WORKER, text="xin chào")
            return sent

    sent = run(scenario())
    assert sent.text == "xin chào" and sent.chat.id == WORKER
    assert api.webhook["secret_token"] == SECRET
    assert api.sent_texts(str(WORKER)) == ["xin chào"]
    assert [r["path"].rsplit("/", 1)[-1] for r in api.requests] == ["getMe", "setWebhook", "sendMessage"]


def test_fake_text_update_helper_is_accepted_by_the_adapter(offline):
    [message] = offline.parse(signed(text_update(31, WORKER, "hello")))
    assert (message.message_id, message.sender, message.text) == ("31", str(WORKER), "hello")
