"""The gateway end to end on the web channel: stored, answered once, in the worker's language."""

import concurrent.futures

import pytest

from tests.gateway_helpers import gateway, query, wait_for

SENDER = "webworker0123456789"


def post(client, message_id, text, sender=SENDER):
    return client.post("/webhooks/web", json={"sender": sender, "message_id": message_id, "text": text})




@pytest.fixture()
def web(assistant, tmp_path):
    with gateway(assistant, tmp_path) as client:
        yield client


def test_questions_in_chinese_and_vietnamese_get_answers_in_their_language(web, assistant):
    zh = post(web, "m1", "加班费怎么算").json()
    vi = post(web, "m2", "nghi phep nam dc may ngay vay", sender="vietworker0123456789").json()
    assert zh["replies"] == [assistant.render("utter_faq_overtime_pay", "zh")]
    assert vi["replies"] == [assistant.render("utter_faq_annual_leave", "vi")]


def test_a_message_delivered_twice_is_answered_once(web, tmp_path):
    first = post(web, "dup-1", "年假有几天")
    second = post(web, "dup-1", "年假有几天")
    assert first.json()["replies"] and second.json() == {"replies": [], "duplicate": True}
    assert query(tmp_path, "select count(*) from messages where direction='in'") == [(1,)]
    assert query(tmp_path, "select count(*) from messages where direction='out'") == [(1,)]


def test_the_same_message_twice_at_once_is_answered_once(web, tmp_path):
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: post(web, "race-1", "病假工资怎么算").json(), range(4)))
    assert sum(bool(r["replies"]) for r in results) == 1
    assert query(tmp_path, "select count(*) from messages where direction='out'") == [(1,)]


def test_later_messages_are_polled_after_the_last_seen(web):
    answer = post(web, "p1", "我要找人工").json()
    later = web.get("/webhooks/web/messages", params={"sender": SENDER, "after": 0}).json()["messages"]
    assert [m["text"] for m in later] == answer["replies"]
    none_after = web.get("/webhooks/web/messages", params={"sender": SENDER, "after": answer["last_id"]}).json()
    assert none_after == {"messages": []}


def test_after_a_handoff_the_bot_stays_silent(web, tmp_path):
    post(web, "h1", "我要找人工")
    assert post(web, "h2", "加班费怎么算").json()["replies"] == []
    assert query(tmp_path, "select status from messages where platform_message_id='h2'") == [("kept",)]


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'{"sender": "short", "message_id": "x", "text": "hi"}',
    b'{"sender": "webworker0123456789", "message_id": 5, "text": "hi"}',
    b'{"sender": "webworker0123456789", "message_id": "x", "text": ""}',
    b'{"sender": "webworker0123456789", "message_id": "x"}',
])
def test_malformed_bodies_get_a_4xx_and_nothing_is_stored(web, tmp_path, body):
    response = web.post("/webhooks/web", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert query(tmp_path, "select count(*) from messages") == [(0,)]


def test_a_body_over_the_limit_is_refused(web, tmp_path):
    response = web.post("/webhooks/web", content=b"x" * (70 * 1024))
    assert response.status_code == 413
    assert query(tmp_path, "select count(*) from messages") == [(0,)]


def test_channels_without_settings_are_off(web):
    for channel in ("wechat", "zalo", "telegram"):
        assert web.post(f"/webhooks/{channel}", content=b"{}").status_code == 404


def test_a_fast_sender_is_asked_to_slow_down_and_nothing_is_lost(assistant, tmp_path):
    with gateway(assistant, tmp_path, rate_limit=3, rate_window=60) as client:
        replies = [post(client, f"r{i}", "你好").json()["replies"] for i in range(6)]
    assert all(replies[:3])
    assert replies[3] == [assistant.render("utter_slow_down", "zh")]
    assert replies[4] == replies[5] == []
    assert query(tmp_path, "select count(*) from messages where direction='in'") == [(6,)]


def test_logs_carry_no_message_text_and_no_sender(web, caplog):
    caplog.set_level("INFO")
    post(web, "log-1", "我的身份证被组长拿走了")
    wait_for(lambda: any("dialogue.answered" in r.getMessage() for r in caplog.records))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "身份证" not in text and SENDER not in text
    assert "inbox.accepted" in text
