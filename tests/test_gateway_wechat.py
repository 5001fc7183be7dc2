"""WeChat end to end: signed and encrypted requests made with wechatpy, a fake WeChat API on loopback."""

import concurrent.futures
import time

import pytest
import xmltodict
from wechatpy.crypto import WeChatCrypto

from tests.fakes.server import running
from tests.fakes.wechat_api import FakeWeChatApi
from tests.gateway_helpers import gateway, query, wait_for
from tests.test_adapter_wechat import AES_KEY, APP_ID, APP_SECRET, OA, OPENID, TOKEN, encrypted_request, message_xml, signed_query

_ids = iter(range(10_000_000, 20_000_000))


def text_xml(text, msg_id=None, sender=OPENID):
    return message_xml(MsgType="text", Content=text, MsgId=msg_id or next(_ids), FromUserName=sender,
                       CreateTime=int(time.time()))


def post_plain(client, xml):
    return client.post("/webhooks/wechat", params=signed_query(), content=xml.encode())


def post_encrypted(client, xml):
    request = encrypted_request(xml)
    return client.post("/webhooks/wechat", params=dict(request.query), content=request.body)


def reply_content(body, encrypted=False):
    if encrypted:
        envelope = xmltodict.parse(body)["xml"]
        body = WeChatCrypto(TOKEN, AES_KEY, APP_ID).decrypt_message(
            body, envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"])
    return xmltodict.parse(body)["xml"]["Content"]




@pytest.fixture()
def fake():
    with running(FakeWeChatApi(app_id=APP_ID, app_secret=APP_SECRET)) as api:
        yield api


def wechat_gateway(assistant, tmp_path, fake, **overrides):
    settings = {"wechat_token": TOKEN, "wechat_app_id": APP_ID, "wechat_app_secret": APP_SECRET,
                "wechat_aes_key": AES_KEY, "wechat_api_base": fake.url + "/", "channel_timeout": 1.0}
    settings.update(overrides)
    return gateway(assistant, tmp_path, **settings)


def test_server_verification(assistant, tmp_path, fake):
    with wechat_gateway(assistant, tmp_path, fake) as client:
        assert client.get("/webhooks/wechat", params=signed_query(echostr="42")).text == "42"
        assert client.get("/webhooks/wechat", params={**signed_query(echostr="42"), "signature": "x"}).status_code == 403


def test_chinese_plaintext_and_vietnamese_safe_mode_get_passive_replies(assistant, tmp_path, fake):
    with wechat_gateway(assistant, tmp_path, fake) as client:
        zh = post_plain(client, text_xml("加班费怎么算"))
        vi = post_encrypted(client, text_xml("nghi phep nam dc may ngay vay", sender="o-vietnamese-worker-000001"))
    assert reply_content(zh.content) == assistant.render("utter_faq_overtime_pay", "zh")
    assert reply_content(vi.content, encrypted=True) == assistant.render("utter_faq_annual_leave", "vi")
    assert fake.sent_texts() == []  # both went as passive replies


def test_a_forged_signature_is_refused_and_nothing_is_stored(assistant, tmp_path, fake):
    with wechat_gateway(assistant, tmp_path, fake) as client:
        response = client.post("/webhooks/wechat", params={**signed_query(), "signature": "0" * 40},
                               content=text_xml("加班费怎么算").encode())
    assert response.status_code == 403
    assert query(tmp_path, "select count(*) from messages")[0][0] == 0


def test_a_retry_while_the_first_is_still_processing_gets_one_answer(assistant, tmp_path, fake):
    xml = text_xml("病假工资怎么算", msg_id=777)
    with wechat_gateway(assistant, tmp_path, fake, assistant_delay=1.0) as client:
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            responses = list(pool.map(lambda _: post_plain(client, xml), range(3)))
        time.sleep(1.5)
    passive = [r for r in responses if r.content.startswith(b"<xml>")]
    assert len(passive) == 1 and sorted(r.text for r in responses if r not in passive) == ["success", "success"]
    assert fake.sent_texts() == []
    assert query(tmp_path, "select count(*) from messages where direction='out'")[0][0] == 1


def test_a_slow_assistant_answers_success_then_the_customer_service_api(assistant, tmp_path, fake):
    with wechat_gateway(assistant, tmp_path, fake, assistant_delay=1.5, wechat_passive_seconds=0.5) as client:
        response = post_plain(client, text_xml("加班费怎么算"))
        assert response.text == "success"
        sent = wait_for(lambda: fake.sent_texts(OPENID))
    assert sent == [assistant.render("utter_faq_overtime_pay", "zh")]


@pytest.mark.parametrize("failure", ["500", "timeout"])
def test_a_failed_send_is_retried_until_delivered_once(assistant, tmp_path, fake, failure):
    if failure == "500":
        fake.fail_next(2, status=500)
    else:
        fake.hang_next(1, seconds=2.5)
    with wechat_gateway(assistant, tmp_path, fake, assistant_delay=0.8, wechat_passive_seconds=0.2) as client:
        assert post_plain(client, text_xml("年假有几天")).text == "success"
        sent = wait_for(lambda: fake.sent_texts(OPENID), seconds=30)
        time.sleep(1.0)
        assert fake.sent_texts(OPENID) == sent and len(sent) == 1
    assert query(tmp_path, "select count(*) from outbox where status='sent' and attempts>=1")[0][0] == 1


def test_subscribe_voice_and_image(assistant, tmp_path, fake):
    with wechat_gateway(assistant, tmp_path, fake, office_hours="00:00-24:00") as client:
        follow = post_plain(client, message_xml(MsgType="event", Event="subscribe", CreateTime=int(time.time())))
        voice = post_plain(client, message_xml(MsgType="voice", MediaId="m1", Format="amr", Recognition="我要找人工",
                                               MsgId=next(_ids), CreateTime=int(time.time())))
        image = post_plain(client, message_xml(MsgType="image", PicUrl="http://x/y.jpg", MediaId="m2",
                                               MsgId=next(_ids), FromUserName="o-another-worker-00001",
                                               CreateTime=int(time.time())))
    assert reply_content(follow.content) == assistant.render("utter_welcome", "zh")
    [(reference,)] = query(tmp_path, "select reference from cases")
    assert reply_content(voice.content) == assistant.render("utter_handoff_queued", "zh", case_ref=reference, wait_minutes=5)
    assert reply_content(image.content) == assistant.render("utter_non_text", "zh")
    assert OA  # replies are addressed from the account the message was sent to (checked in the adapter tests)
