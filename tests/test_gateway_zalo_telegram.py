"""Zalo and Telegram end to end, each against its fake platform API on loopback."""

import json
import time

import pytest

from tests.fakes.server import running
from tests.fakes.telegram_api import FakeTelegramApi, text_update
from tests.fakes.zalo_api import FakeZaloApi
from tests.gateway_helpers import gateway, query, wait_for
from tests.test_adapter_zalo import APP_ID, APP_SECRET, OA_SECRET, USER_ID, sign, user_event

TG_TOKEN = "123456:telegram-test-token"
TG_SECRET = "telegram-webhook-secret"
_ids = iter(range(1000, 10_000_000))




# --- Zalo ------------------------------------------------------------------------------------------

@pytest.fixture()
def zalo_fake():
    with running(FakeZaloApi(app_id=APP_ID, app_secret=APP_SECRET)) as api:
        yield api


def zalo_gateway(assistant, tmp_path, fake, **overrides):
    settings = {"zalo_app_id": APP_ID, "zalo_oa_secret": OA_SECRET, "zalo_app_secret": APP_SECRET,
                "zalo_access_token": "access-1", "zalo_refresh_token": "refresh-1",
                "zalo_api_base": fake.url + "/", "zalo_oauth_base": fake.url + "/", "channel_timeout": 1.0}
    settings.update(overrides)
    return gateway(assistant, tmp_path, **settings)


def zalo_post(client, text, user=USER_ID, msg_id=None, event_name="user_send_text", secret=OA_SECRET):
    timestamp = str(int(time.time() * 1000))
    event = user_event(event_name, {"msg_id": msg_id or f"msg{next(_ids)}", "text": text}, sender=user,
                       timestamp=timestamp)
    body = json.dumps(event, ensure_ascii=False).encode()
    return client.post("/webhooks/zalo", content=body, headers={
        "content-type": "application/json", "x-zevent-signature": sign(body, timestamp, secret)})


def test_zalo_questions_get_answers_in_their_language(assistant, tmp_path, zalo_fake):
    with zalo_gateway(assistant, tmp_path, zalo_fake) as client:
        assert zalo_post(client, "nghi phep nam dc may ngay vay").status_code == 200
        assert zalo_post(client, "加班费怎么算", user="1111222233334444555").status_code == 200
        vi = wait_for(lambda: zalo_fake.sent_texts(USER_ID))
        zh = wait_for(lambda: zalo_fake.sent_texts("1111222233334444555"))
    assert vi == [assistant.render("utter_faq_annual_leave", "vi")]
    assert zh == [assistant.render("utter_faq_overtime_pay", "zh")]


def test_zalo_forged_signature_refused_nothing_stored(assistant, tmp_path, zalo_fake):
    with zalo_gateway(assistant, tmp_path, zalo_fake) as client:
        assert zalo_post(client, "xin chao", secret="not-the-secret").status_code == 403
    assert query(tmp_path, "select count(*) from messages")[0][0] == 0


def test_zalo_duplicate_delivery_answered_once_and_echoes_ignored(assistant, tmp_path, zalo_fake):
    with zalo_gateway(assistant, tmp_path, zalo_fake) as client:
        zalo_post(client, "luong thu viec bao nhieu", msg_id="same-id")
        zalo_post(client, "luong thu viec bao nhieu", msg_id="same-id")
        assert zalo_post(client, "tin nhan cua OA", event_name="oa_send_text").status_code == 200
        wait_for(lambda: zalo_fake.sent_texts(USER_ID))
        time.sleep(0.5)
    assert len(zalo_fake.sent_texts(USER_ID)) == 1
    assert query(tmp_path, "select count(*) from messages where direction='in'")[0][0] == 1


def test_zalo_expired_token_is_refreshed_and_the_new_tokens_kept(assistant, tmp_path, zalo_fake):
    zalo_fake.expire_token()
    with zalo_gateway(assistant, tmp_path, zalo_fake) as client:
        zalo_post(client, "cty k dong bhxh cho e")
        wait_for(lambda: zalo_fake.sent_texts(USER_ID))
    assert zalo_fake.refresh_count == 1
    [(value,)] = query(tmp_path, "select value from channel_state where key='zalo.tokens'")
    assert json.loads(value)["refresh_token"] == zalo_fake.refresh_token


def test_zalo_send_failures_are_retried_until_delivered(assistant, tmp_path, zalo_fake):
    zalo_fake.fail_next(3, status=500)
    with zalo_gateway(assistant, tmp_path, zalo_fake) as client:
        zalo_post(client, "nghi phep nam dc may ngay vay")
        sent = wait_for(lambda: zalo_fake.sent_texts(USER_ID), seconds=30)
    assert sent == [assistant.render("utter_faq_annual_leave", "vi")]


# --- Telegram --------------------------------------------------------------------------------------

@pytest.fixture()
def tg_fake():
    with running(FakeTelegramApi(TG_TOKEN)) as api:
        yield api


def tg_gateway(assistant, tmp_path, fake, **overrides):
    settings = {"telegram_token": TG_TOKEN, "telegram_secret": TG_SECRET, "telegram_api_base": fake.url,
                "channel_timeout": 1.0}
    settings.update(overrides)
    return gateway(assistant, tmp_path, **settings)


def tg_post(client, chat_id, text, update_id=None, secret=TG_SECRET):
    return client.post("/webhooks/telegram", content=text_update(update_id or next(_ids), chat_id, text),
                       headers={"content-type": "application/json", "x-telegram-bot-api-secret-token": secret})


def test_telegram_start_and_questions_in_both_languages(assistant, tmp_path, tg_fake):
    with tg_gateway(assistant, tmp_path, tg_fake) as client:
        tg_post(client, 501, "/start")
        wait_for(lambda: tg_fake.sent_texts(501))
        tg_post(client, 501, "加班费怎么算")
        tg_post(client, 502, "nghi phep nam dc may ngay vay")
        wait_for(lambda: len(tg_fake.sent_texts(501)) == 2)
        vi = wait_for(lambda: tg_fake.sent_texts(502))
    assert tg_fake.sent_texts(501) == [assistant.render("utter_welcome", "zh"), assistant.render("utter_faq_overtime_pay", "zh")]
    assert vi == [assistant.render("utter_faq_annual_leave", "vi")]


def test_telegram_wrong_secret_refused_and_duplicate_update_answered_once(assistant, tmp_path, tg_fake):
    with tg_gateway(assistant, tmp_path, tg_fake) as client:
        assert tg_post(client, 601, "年假有几天", secret="wrong").status_code == 403
        assert query(tmp_path, "select count(*) from messages")[0][0] == 0
        tg_post(client, 601, "年假有几天", update_id=42)
        tg_post(client, 601, "年假有几天", update_id=42)
        wait_for(lambda: tg_fake.sent_texts(601))
        time.sleep(0.5)
    assert len(tg_fake.sent_texts(601)) == 1


@pytest.mark.parametrize("failure", ["500", "timeout"])
def test_telegram_failed_send_retried_until_delivered_once(assistant, tmp_path, tg_fake, failure):
    if failure == "500":
        tg_fake.fail_next(2, status=500)
    else:
        tg_fake.hang_next(1, seconds=2.5)
    with tg_gateway(assistant, tmp_path, tg_fake) as client:
        tg_post(client, 701, "病假工资怎么算")
        sent = wait_for(lambda: tg_fake.sent_texts(701), seconds=30)
        time.sleep(1.0)
    assert len(sent) == 1 and tg_fake.sent_texts(701) == sent
