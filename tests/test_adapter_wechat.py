"""The WeChat adapter against requests signed and encrypted with wechatpy's own code, and against the
fake WeChat API server."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import time

import pytest
import xmltodict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.session.memorystorage import MemoryStorage
from wechatpy.utils import WeChatSigner, check_signature

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
from channel_adapters.wechat import WeChatAdapter, WeChatConfig
from tests.fakes.server import free_port, serve
from tests.fakes.wechat_api import FakeWeChatApi

TOKEN = "helpline-test-token"
APP_ID = "wx0123456789abcdef"
APP_SECRET = "test-app-secret"
AES_KEY = base64.b64encode(bytes(range(32))).decode()[:-1]  # EncodingAESKey: 43 characters
OA = "gh_0123456789ab"
OPENID = "oAbCdEfGhIjKlMnOpQrStUvWxYz0"
CREATED = 1700000000
CREATED_AT = dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.timezone.utc)


# ---- requests made with wechatpy's own code ------------------------------------------------------


def signed_query(token: str = TOKEN, timestamp: str | None = None, nonce: str = "1234567890", **extra: str) -> dict:
    timestamp = timestamp or str(int(time.time()))
    signer = WeChatSigner()
    signer.add_data(token, timestamp, nonce)
    query = {"signature": signer.signature, "timestamp": timestamp, "nonce": nonce, **extra}
    check_signature(token, query["signature"], timestamp, nonce)  # the library agrees with itself
    return query


def message_xml(**fields) -> str:
    fields = {"ToUserName": OA, "FromUserName": OPENID, "CreateTime": CREATED, **fields}
    nodes = [f"<{k}>{v}</{k}>" if isinstance(v, int) else f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()]
    return "<xml>" + "".join(nodes) + "</xml>"


def plain_request(xml: str | bytes, query: dict | None = None) -> WebhookRequest:
    body = xml.encode("utf-8") if isinstance(xml, str) else xml
    return WebhookRequest("POST", signed_query() if query is None else query, {"content-type": "text/xml"}, body)


def encrypted_request(xml: str, app_id: str = APP_ID, plaintext_copy: str | None = None) -> WebhookRequest:
    """Safe mode (only the encrypted copy), or compatible mode when `plaintext_copy` is given."""
    timestamp, nonce = str(int(time.time())), "987654321"
    envelope = xmltodict.parse(WeChatCrypto(TOKEN, AES_KEY, app_id).encrypt_message(xml, nonce, timestamp))["xml"]
    query = signed_query(timestamp=timestamp, nonce=nonce, encrypt_type="aes", msg_signature=envelope["MsgSignature"])
    inner = plaintext_copy[len("<xml>"): -len("</xml>")] if plaintext_copy else f"<ToUserName><![CDATA[{OA}]]></ToUserName>"
    body = f"<xml>{inner}<Encrypt><![CDATA[{envelope['Encrypt']}]]></Encrypt></xml>"
    return WebhookRequest("POST", query, {"content-type": "text/xml"}, body.encode("utf-8"))


def make_adapter(**overrides) -> WeChatAdapter:
    options = {"token": TOKEN, "app_id": APP_ID, "app_secret": APP_SECRET, "aes_key": AES_KEY, **overrides}
    return WeChatAdapter(WeChatConfig(**options))


@pytest.fixture
def adapter() -> WeChatAdapter:
    return make_adapter()


# ---- server verification -------------------------------------------------------------------------


def test_verify_get_answers_echostr(adapter):
    assert adapter.verify_get(signed_query(echostr="5837397814")) == "5837397814"


@pytest.mark.parametrize(
    "query",
    [
        signed_query(token="another-token", echostr="1"),
        {**signed_query(echostr="1"), "nonce": "tampered"},
        {"timestamp": "1", "nonce": "2", "echostr": "3"},
        {},
        signed_query(timestamp=str(int(time.time()) - 3600), echostr="1"),  # replayed an hour later
    ],
    ids=["other-token", "tampered-nonce", "no-signature", "empty", "stale"],
)
def test_verify_get_refuses_unsigned(adapter, query):
    with pytest.raises(SignatureInvalid):
        adapter.verify_get(query)


def test_verify_get_without_echostr_is_malformed(adapter):
    with pytest.raises(MalformedBody):
        adapter.verify_get(signed_query())


# ---- every kind of message -----------------------------------------------------------------------

KINDS = [
    ("text", message_xml(MsgType="text", Content="工资拖欠了三个月", MsgId="23477391284561234"), TEXT, "工资拖欠了三个月"),
    ("voice-transcribed", message_xml(MsgType="voice", MediaId="m1", Format="amr", Recognition="加班费怎么算", MsgId="1001"),
     VOICE, "加班费怎么算"),
    ("voice-no-transcript", message_xml(MsgType="voice", MediaId="m1", Format="amr", MsgId="1002"), VOICE, None),
    ("image", message_xml(MsgType="image", PicUrl="http://mmbiz.example/p.jpg", MediaId="m2", MsgId="1003"), IMAGE, None),
    ("location", message_xml(MsgType="location", Location_X="22.54", Location_Y="114.05", Scale="15", Label="深圳市宝安区",
                             MsgId="1004"), LOCATION, "深圳市宝安区"),
    ("link", message_xml(MsgType="link", Title="合同", Description="d", Url="https://example.org/a", MsgId="1005"),
     LINK, "https://example.org/a"),
    ("video", message_xml(MsgType="video", MediaId="m3", ThumbMediaId="t3", MsgId="1006"), FILE, None),
    ("shortvideo", message_xml(MsgType="shortvideo", MediaId="m4", ThumbMediaId="t4", MsgId="1007"), FILE, None),
    ("miniprogram", message_xml(MsgType="miniprogrampage", Title="t", AppId="wxapp", PagePath="p", MsgId="1008"), OTHER, None),
    ("unknown-type", message_xml(MsgType="hologram", MsgId="1009"), OTHER, None),
]


@pytest.mark.parametrize("xml,kind,text", [k[1:] for k in KINDS], ids=[k[0] for k in KINDS])
@pytest.mark.parametrize("mode", ["plaintext", "safe", "compatible"])
def test_message_kinds(adapter, mode, xml, kind, text):
    if mode == "plaintext":
        request = plain_request(xml)
    else:
        request = encrypted_request(xml, plaintext_copy=xml if mode == "compatible" else None)
    [message] = adapter.parse(request)
    assert message.channel == "wechat"
    assert message.sender == OPENID
    assert message.kind == kind
    assert message.text == text
    assert message.message_id == xmltodict.parse(xml)["xml"]["MsgId"]
    assert message.sent_at == CREATED_AT
    assert message.context["to_user"] == OA
    assert message.context["encrypted"] is (mode != "plaintext")


EVENTS = [
    ("subscribe", message_xml(MsgType="event", Event="subscribe"), FOLLOW),
    ("subscribe-by-qrcode", message_xml(MsgType="event", Event="subscribe", EventKey="qrscene_factory42", Ticket="T"), FOLLOW),
    ("unsubscribe", message_xml(MsgType="event", Event="unsubscribe"), UNFOLLOW),
]


@pytest.mark.parametrize("xml,kind", [e[1:] for e in EVENTS], ids=[e[0] for e in EVENTS])
@pytest.mark.parametrize("mode", ["plaintext", "safe"])
def test_follow_events(adapter, mode, xml, kind):
    request = plain_request(xml) if mode == "plaintext" else encrypted_request(xml)
    [message] = adapter.parse(request)
    assert (message.kind, message.sender, message.text, message.sent_at) == (kind, OPENID, None, CREATED_AT)
    assert OPENID not in message.message_id  # the id may reach logs and tables
    assert adapter.parse(request)[0].message_id == message.message_id  # WeChat's retry is recognised


def test_event_ids_differ_by_time_and_event(adapter):
    ids = {
        adapter.parse(plain_request(message_xml(MsgType="event", Event=event, CreateTime=created)))[0].message_id
        for event in ("subscribe", "unsubscribe")
        for created in (CREATED, CREATED + 1)
    }
    assert len(ids) == 4


@pytest.mark.parametrize(
    "xml",
    [
        message_xml(MsgType="event", Event="SCAN", EventKey="123", Ticket="T"),
        message_xml(MsgType="event", Event="CLICK", EventKey="MENU_HELP"),
        message_xml(MsgType="event", Event="VIEW", EventKey="https://example.org"),
        message_xml(MsgType="event", Event="TEMPLATESENDJOBFINISH", MsgID=200163836, Status="success"),
        message_xml(MsgType="event", Event="LOCATION", Latitude="23.1", Longitude="113.3", Precision="119.3"),
        message_xml(MsgType="event", Event="scancode_push", EventKey="k"),
    ],
    ids=["scan", "click", "view", "templatesendjobfinish", "location-report", "scancode"],
)
def test_other_events_carry_nothing(adapter, xml):
    assert adapter.parse(plain_request(xml)) == []


def test_compatible_mode_reads_the_signed_copy(adapter):
    forged = message_xml(MsgType="text", Content="forged", MsgId="1")
    real = message_xml(MsgType="text", Content="real", MsgId="2")
    [message] = adapter.parse(encrypted_request(real, plaintext_copy=forged))
    assert (message.text, message.message_id) == ("real", "2")


def test_plaintext_adapter_reads_compatible_mode(adapter):
    xml = message_xml(MsgType="text", Content="hello", MsgId="3")
    [message] = make_adapter(aes_key=None).parse(encrypted_request(xml, plaintext_copy=xml))
    assert (message.text, message.context["encrypted"]) == ("hello", False)


# ---- forged requests -----------------------------------------------------------------------------

GOOD = message_xml(MsgType="text", Content="hi", MsgId="42")


@pytest.mark.parametrize(
    "query",
    [
        signed_query(token="attacker-guess"),
        {**signed_query(), "signature": "0" * 40},
        {**signed_query(), "timestamp": str(int(time.time()) + 1)},
        {k: v for k, v in signed_query().items() if k != "signature"},
        {},
        signed_query(timestamp=str(int(time.time()) - 3600)),
    ],
    ids=["other-token", "zero-signature", "tampered-timestamp", "no-signature", "no-query", "stale"],
)
def test_forged_query_refused(adapter, query):
    with pytest.raises(SignatureInvalid) as info:
        adapter.parse(plain_request(GOOD, query))
    assert info.value.status == 403


def test_forged_msg_signature_refused(adapter):
    request = encrypted_request(GOOD)
    query = {**request.query, "msg_signature": "f" * 40}
    with pytest.raises(SignatureInvalid):
        adapter.parse(WebhookRequest("POST", query, {}, request.body))


def test_encrypted_without_msg_signature_refused(adapter):
    request = encrypted_request(GOOD)
    query = {k: v for k, v in request.query.items() if k != "msg_signature"}
    with pytest.raises(SignatureInvalid):
        adapter.parse(WebhookRequest("POST", query, {}, request.body))


def test_message_for_another_account_refused(adapter):
    with pytest.raises(SignatureInvalid):
        adapter.parse(encrypted_request(GOOD, app_id="wxanotheraccount00"))


def test_plaintext_refused_when_encryption_required():
    strict = make_adapter(require_encryption=True)
    with pytest.raises(SignatureInvalid):
        strict.parse(plain_request(GOOD))
    assert strict.parse(encrypted_request(GOOD))[0].text == "hi"


def test_require_encryption_needs_a_key():
    with pytest.raises(ValueError):
        make_adapter(aes_key=None, require_encryption=True)


def test_bad_aes_key_refused_at_start():
    with pytest.raises(ValueError):
        make_adapter(aes_key="too-short")


def test_get_is_not_a_message(adapter):
    with pytest.raises(WebhookRejected) as info:
        adapter.parse(WebhookRequest("GET", signed_query(), {}, b""))
    assert info.value.status == 405


# ---- malformed bodies ----------------------------------------------------------------------------

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    "<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime>"
    "<MsgType>text</MsgType><Content>&b;</Content><MsgId>1</MsgId></xml>"
)
EXTERNAL_ENTITY = '<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><Content>&x;</Content></xml>'

MALFORMED = [
    ("empty", b""),
    ("broken-xml", b"<xml><ToUserName>gh</ToUser"),
    ("json", b'{"MsgType": "text"}'),
    ("not-utf8", message_xml(MsgType="text", Content="x", MsgId="1").encode("utf-16")),
    ("billion-laughs", BILLION_LAUGHS.encode()),
    ("external-entity", EXTERNAL_ENTITY.encode()),
    ("lowercase-doctype", b"<!doctype xml><xml/>"),
    ("harmless-doctype", ("<!DOCTYPE xml>" + message_xml(MsgType="text", Content="x", MsgId="1")).encode()),  # refused all the same
    ("wrong-root", b"<message><MsgType>text</MsgType></message>"),
    ("empty-root", b"<xml/>"),
    ("text-root", b"<xml>hello</xml>"),
    ("no-sender", message_xml(MsgType="text", Content="x", MsgId="1").replace(f"<FromUserName><![CDATA[{OPENID}]]></FromUserName>", "")),
    ("no-msgtype", message_xml(Content="x", MsgId="1")),
    ("no-msgid", message_xml(MsgType="text", Content="x")),
    ("no-content", message_xml(MsgType="text", MsgId="1")),
    ("no-event", message_xml(MsgType="event")),
    ("msgid-not-number", message_xml(MsgType="text", Content="x", MsgId="abc")),
    ("createtime-not-number", message_xml(MsgType="text", Content="x", MsgId="1", CreateTime="yesterday")),
    ("createtime-huge", message_xml(MsgType="text", Content="x", MsgId="1", CreateTime=10**30)),
    ("nested-content", message_xml(MsgType="text", MsgId="1").replace("</xml>", "<Content><b>x</b></Content></xml>")),
    ("repeated-sender", message_xml(MsgType="text", Content="x", MsgId="1").replace("</xml>", "<FromUserName>o2</FromUserName></xml>")),
    ("msgtype-with-attribute", message_xml(Content="x", MsgId="1").replace("</xml>", '<MsgType a="1">text</MsgType></xml>')),
    ("location-without-coordinates", message_xml(MsgType="location", Label="x", MsgId="1")),
    ("too-large", message_xml(MsgType="text", Content="x" * 70_000, MsgId="1")),
]


@pytest.mark.parametrize("body", [m[1] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_body(adapter, body):
    with pytest.raises(MalformedBody) as info:
        adapter.parse(plain_request(body))
    assert 400 <= info.value.status < 500


def test_encrypted_doctype_refused(adapter):
    with pytest.raises(MalformedBody):
        adapter.parse(encrypted_request(BILLION_LAUGHS))


def test_encrypted_garbage_is_malformed(adapter):
    request = encrypted_request(GOOD)
    garbage = base64.b64encode(b"not what WeChat encrypted" * 3).decode()
    signer = WeChatSigner()  # signed correctly, so only decryption can fail
    signer.add_data(TOKEN, request.query["timestamp"], request.query["nonce"], garbage)
    query = {**request.query, "msg_signature": signer.signature}
    with pytest.raises(MalformedBody):
        adapter.parse(WebhookRequest("POST", query, {}, f"<xml><Encrypt>{garbage}</Encrypt></xml>".encode()))


def test_encrypted_without_encrypt_element_is_malformed(adapter):
    query = signed_query(encrypt_type="aes", msg_signature="0" * 40)
    with pytest.raises(MalformedBody):
        adapter.parse(WebhookRequest("POST", query, {}, f"<xml><ToUserName>{OA}</ToUserName></xml>".encode()))


def test_safe_mode_without_key_is_malformed():
    with pytest.raises(MalformedBody):
        make_adapter(aes_key=None).parse(encrypted_request(GOOD))


def test_unknown_encrypt_type_is_malformed(adapter):
    with pytest.raises(MalformedBody):
        adapter.parse(plain_request(GOOD, signed_query(encrypt_type="rot13")))


# ---- property tests: nothing but WebhookRejected escapes parse() ---------------------------------

TAGS = st.sampled_from(["ToUserName", "FromUserName", "CreateTime", "MsgType", "MsgId", "Content", "Event", "Encrypt",
                        "Recognition", "Location_X", "Location_Y", "Url", "EventKey", "x"])
VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["text", "event", "voice", "image", "location", "link", "video", "subscribe", "unsubscribe", "SCAN",
                     "qrscene_1", "123", "-1", "99999999999999", ""]),
)
XML_DOCS = st.recursive(
    st.builds(lambda tag, value: {tag: value}, TAGS, VALUES),
    lambda children: st.dictionaries(TAGS, st.one_of(VALUES, children, st.lists(VALUES, max_size=3)), max_size=6),
    max_leaves=12,
)
# Mostly well-formed messages with random changes, so the property reaches the field checks, not only XML errors.
MESSAGE_DOCS = st.builds(
    lambda base, changes: {**base, **changes},
    st.fixed_dictionaries(
        {
            "ToUserName": st.just(OA) | VALUES,
            "FromUserName": st.just(OPENID) | VALUES,
            "CreateTime": st.just(str(CREATED)) | VALUES,
            "MsgType": st.sampled_from(["text", "voice", "image", "location", "link", "video", "event", "miniprogrampage"]) | VALUES,
            "MsgId": st.just("1") | VALUES,
            "Event": st.sampled_from(["subscribe", "unsubscribe", "CLICK"]) | VALUES,
        }
    ),
    XML_DOCS,
)
QUERIES = st.dictionaries(st.sampled_from(["signature", "timestamp", "nonce", "encrypt_type", "msg_signature", "echostr"]),
                          st.text(max_size=20), max_size=6)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _only_rejections(adapter: WeChatAdapter, request: WebhookRequest) -> None:
    try:
        result = adapter.parse(request)
    except WebhookRejected:
        return
    assert isinstance(result, list) and all(isinstance(m, InboundMessage) for m in result)


@PROPERTY
@given(body=st.binary(max_size=2000), signed=st.booleans(), encrypted=st.booleans())
def test_random_bytes_only_rejected(adapter, body, signed, encrypted):
    extra = {"encrypt_type": "aes", "msg_signature": "0" * 40} if encrypted else {}
    query = signed_query(**extra) if signed else {"signature": "0" * 40, "timestamp": "1", "nonce": "2", **extra}
    _only_rejections(adapter, WebhookRequest("POST", query, {}, body))


@PROPERTY
@given(doc=XML_DOCS | MESSAGE_DOCS, plaintext_adapter=st.booleans())
def test_random_xml_only_rejected(adapter, doc, plaintext_adapter):
    try:
        xml = xmltodict.unparse({"xml": doc})
    except ValueError:  # a document hypothesis built that XML cannot express
        return
    _only_rejections(make_adapter(aes_key=None) if plaintext_adapter else adapter, plain_request(xml))


@PROPERTY
@given(doc=XML_DOCS | MESSAGE_DOCS)
def test_random_encrypted_xml_only_rejected(adapter, doc):
    try:
        xml = xmltodict.unparse({"xml": doc})
    except ValueError:
        return
    _only_rejections(adapter, encrypted_request(xml))


@PROPERTY
@given(encrypt=st.text(max_size=200))
def test_random_ciphertext_signed_correctly_only_rejected(adapter, encrypt):
    timestamp, nonce = str(int(time.time())), "1"
    signer = WeChatSigner()
    signer.add_data(TOKEN, timestamp, nonce, encrypt)
    query = signed_query(timestamp=timestamp, nonce=nonce, encrypt_type="aes", msg_signature=signer.signature)
    try:
        body = xmltodict.unparse({"xml": {"Encrypt": encrypt}}).encode("utf-8")
    except ValueError:
        return
    _only_rejections(adapter, WebhookRequest("POST", query, {}, body))


@PROPERTY
@given(query=QUERIES, body=st.binary(max_size=200))
def test_random_queries_only_rejected(adapter, query, body):
    _only_rejections(adapter, WebhookRequest("POST", query, {}, body))
    try:
        adapter.verify_get(query)
    except WebhookRejected:
        pass


# ---- passive replies -----------------------------------------------------------------------------


def _inbound(adapter: WeChatAdapter, encrypted: bool) -> InboundMessage:
    xml = message_xml(MsgType="text", Content="hi", MsgId="7")
    return adapter.parse(encrypted_request(xml) if encrypted else plain_request(xml))[0]


def test_passive_reply_plaintext(adapter):
    body = adapter.passive_reply(_inbound(adapter, encrypted=False), "您好，我们在。")
    reply = parse_message(body.decode("utf-8"))
    assert (reply.type, reply.content, reply.source, reply.target) == ("text", "您好，我们在。", OA, OPENID)


def test_passive_reply_encrypted(adapter):
    body = adapter.passive_reply(_inbound(adapter, encrypted=True), "Chào bạn")
    envelope = xmltodict.parse(body)["xml"]
    assert "Content" not in envelope
    plain = WeChatCrypto(TOKEN, AES_KEY, APP_ID).decrypt_message(body, envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"])
    reply = parse_message(plain)
    assert (reply.content, reply.source, reply.target) == ("Chào bạn", OA, OPENID)


def test_passive_reply_survives_cdata_end(adapter):
    text = "a]]><b>&amp;</b>"
    reply = parse_message(adapter.passive_reply(_inbound(adapter, encrypted=False), text).decode("utf-8"))
    assert reply.content == text


def test_passive_reply_limit_counts_utf8_bytes(adapter):
    inbound = _inbound(adapter, encrypted=False)
    assert adapter.passive_reply(inbound, "工" * 682 + "ab") is not None  # 2048 bytes
    assert adapter.passive_reply(inbound, "工" * 683) is None  # 2049 bytes: 683 characters only
    assert adapter.passive_reply(inbound, "x" * 2049) is None


def test_passive_reply_needs_a_wechat_inbound(adapter):
    with pytest.raises(ValueError):
        adapter.passive_reply(InboundMessage("telegram", "1", "1", TEXT, "hi"), "hello")


# ---- sending through the fake API ----------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_server():
    fake = FakeWeChatApi(app_id=APP_ID, app_secret=APP_SECRET)
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def fake(fake_server):
    fake, _ = fake_server
    fake.reset()
    return fake


@pytest.fixture
def sender(fake_server, run):
    _, url = fake_server
    adapter = make_adapter(api_base=url + "/", timeout=0.5)
    yield adapter
    run(adapter.aclose())


def out(text: str = "您好", recipient: str = OPENID) -> OutboundMessage:
    return OutboundMessage("wechat", recipient, text)


def test_send_text(fake, sender, run):
    run(sender.send(out("第一条")))
    run(sender.send(out("第二条")))
    assert fake.sent_texts(OPENID) == ["第一条", "第二条"]
    token_calls = [r for r in fake.requests if r["path"] == "/cgi-bin/token"]
    sends = [r for r in fake.requests if r["path"] == "/cgi-bin/message/custom/send"]
    assert len(token_calls) == 1  # the token is reused
    assert token_calls[0]["query"] == {"grant_type": "client_credential", "appid": APP_ID, "secret": APP_SECRET}
    assert [r["query"]["access_token"] for r in sends] == fake.tokens_issued * 2
    assert sends[0]["json"] == {"touser": OPENID, "msgtype": "text", "text": {"content": "第一条"}}


def test_token_shared_through_session_storage(fake, fake_server, run):
    _, url = fake_server
    storage = MemoryStorage()  # stands in for the Redis storage the service passes in scale-out mode
    first, second = (WeChatAdapter(WeChatConfig(TOKEN, APP_ID, APP_SECRET, api_base=url + "/"), session=storage) for _ in range(2))
    run(first.send(out("a")))
    run(second.send(out("b")))
    assert len(fake.tokens_issued) == 1
    assert fake.sent_texts() == ["a", "b"]


def test_rejected_token_is_refetched_once(fake, sender, run):
    run(sender.send(out("a")))
    fake.invalidate_tokens()
    run(sender.send(out("b")))
    assert fake.sent_texts() == ["a", "b"]
    assert len(fake.tokens_issued) == 2


def test_token_rejected_twice_gives_up(fake, sender, run):
    fake.errcode_next(2, 40001)
    with pytest.raises(DeliveryError) as info:
        run(sender.send(out()))
    assert (info.value.retryable, info.value.code) == (False, "40001")
    assert len([r for r in fake.requests if r["path"].endswith("custom/send")]) == 2


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_is_retryable(fake, sender, run, status):
    fake.fail_next(1, status=status)
    with pytest.raises(DeliveryError) as info:
        run(sender.send(out()))
    assert info.value.retryable and not isinstance(info.value, WindowClosed)
    assert fake.sent_texts() == []
    run(sender.send(out("again")))  # the next try goes through
    assert fake.sent_texts() == ["again"]


def test_client_error_is_permanent(fake, sender, run):
    run(sender.send(out("warm up the token")))
    fake.fail_next(1, status=400)
    with pytest.raises(DeliveryError) as info:
        run(sender.send(out()))
    assert not info.value.retryable


@pytest.mark.parametrize("hung", ["token", "send"])
def test_timeout_is_retryable(fake, fake_server, run, hung):
    _, url = fake_server
    adapter = make_adapter(api_base=url + "/", timeout=0.2)
    if hung == "send":
        run(adapter.send(out("fetches the token")))
    fake.hang_next(1, seconds=0.6)
    started = time.monotonic()
    with pytest.raises(DeliveryError) as info:
        run(adapter.send(out()))
    assert info.value.retryable and info.value.code == "timeout"
    assert time.monotonic() - started < 0.5  # the adapter's timeout, not the server, ended it
    assert fake.requests[-1]["path"] == ("/cgi-bin/token" if hung == "token" else "/cgi-bin/message/custom/send")


def test_connection_refused_is_retryable(run):
    adapter = make_adapter(api_base=f"http://127.0.0.1:{free_port()}/", timeout=0.5)
    with pytest.raises(DeliveryError) as info:
        run(adapter.send(out()))
    assert info.value.retryable


def test_token_endpoint_failure_is_retryable(fake, sender, run):
    fake.fail_next(1, status=503)  # the first request is the token fetch
    with pytest.raises(DeliveryError) as info:
        run(sender.send(out()))
    assert info.value.retryable
    assert fake.requests[0]["path"] == "/cgi-bin/token"


def test_wrong_app_secret_is_permanent(fake, fake_server, run):
    _, url = fake_server
    adapter = WeChatAdapter(WeChatConfig(TOKEN, APP_ID, "wrong-secret", api_base=url + "/"))
    with pytest.raises(DeliveryError) as info:
        run(adapter.send(out()))
    assert (info.value.retryable, info.value.code) == (False, "40125")


def test_window_closed(fake, sender, run):
    fake.close_window(OPENID)
    with pytest.raises(WindowClosed) as info:
        run(sender.send(out()))
    assert (info.value.code, info.value.retryable) == ("45015", False)
    run(sender.send(out("to someone else", recipient="oOtherWorker000000000000000A")))
    assert fake.sent_texts() == ["to someone else"]


def test_over_the_message_count_closes_the_window(fake, sender, run):
    fake.errcode_next(1, 45047)
    with pytest.raises(WindowClosed) as info:
        run(sender.send(out()))
    assert info.value.code == "45047"


@pytest.mark.parametrize("errcode", [-1, 45009, 45011])  # system busy, daily and per-minute API quotas
def test_busy_is_retryable(fake, sender, run, errcode):
    fake.errcode_next(1, errcode)
    with pytest.raises(DeliveryError) as info:
        run(sender.send(out()))
    assert (info.value.retryable, info.value.code) == (True, str(errcode))


def test_other_errcode_is_permanent(fake, sender, run):
    fake.errcode_next(1, 40003)  # invalid openid
    with pytest.raises(DeliveryError) as info:
        run(sender.send(out()))
    assert (info.value.retryable, info.value.code) == (False, "40003")
    assert not isinstance(info.value, WindowClosed)


# ---- logs ----------------------------------------------------------------------------------------


def test_logs_carry_no_user_id_or_text(adapter, fake, sender, run, caplog):
    caplog.set_level(logging.DEBUG)
    secret_text = "我在龙华厂三号宿舍"
    adapter.parse(plain_request(message_xml(MsgType="text", Content=secret_text, MsgId="9")))
    with pytest.raises(MalformedBody):
        adapter.parse(plain_request(message_xml(MsgType="text", Content=secret_text, MsgId="not-a-number")))
    with pytest.raises(SignatureInvalid):
        adapter.parse(plain_request(message_xml(MsgType="text", Content=secret_text), signed_query(token="x")))
    fake.close_window(OPENID)
    with pytest.raises(WindowClosed):
        run(sender.send(out(secret_text)))
    logged = caplog.text
    assert "webhook_rejected" in logged and "send_failed" in logged
    for private in (OPENID, secret_text, APP_SECRET, *fake.tokens_issued):
        assert private not in logged
