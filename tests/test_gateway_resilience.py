"""Hostile input never gets a 500, and a process killed mid-message answers it once after restart."""

import json
import os
import signal
import sqlite3
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.server import free_port, serve
from tests.fakes.telegram_api import FakeTelegramApi
from tests.fakes.wechat_api import FakeWeChatApi
from tests.fakes.zalo_api import FakeZaloApi
from tests.gateway_helpers import gateway, gateway_process, wait_for, wait_ready
from tests.test_adapter_wechat import AES_KEY, APP_ID, APP_SECRET, TOKEN, signed_query
from tests.test_adapter_zalo import APP_ID as ZALO_APP
from tests.test_adapter_zalo import APP_SECRET as ZALO_SECRET
from tests.test_adapter_zalo import OA_SECRET, sign


@pytest.fixture(scope="module")
def all_channels(assistant, tmp_path_factory):
    """The gateway with every channel on, against fake platforms."""
    wechat, zalo, telegram = FakeWeChatApi(app_id=APP_ID, app_secret=APP_SECRET), FakeZaloApi(ZALO_APP, ZALO_SECRET), \
        FakeTelegramApi("1:tg")
    with serve(wechat.app) as w, serve(zalo.app) as z, serve(telegram.app) as t:
        with gateway(assistant, tmp_path_factory.mktemp("fuzz"), wechat_token=TOKEN, wechat_app_id=APP_ID,
                     wechat_app_secret=APP_SECRET, wechat_aes_key=AES_KEY, wechat_api_base=w + "/",
                     zalo_app_id=ZALO_APP, zalo_oa_secret=OA_SECRET, zalo_app_secret=ZALO_SECRET,
                     zalo_access_token="access-1", zalo_refresh_token="refresh-1", zalo_api_base=z + "/",
                     zalo_oauth_base=z + "/", telegram_token="1:tg", telegram_secret="s3cret",
                     telegram_api_base=t, channel_timeout=1.0, rate_limit=1000) as client:
            yield client


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"event_name": st.sampled_from(["user_send_text", "follow", "oa_send_text", "nope"]),
                           "sender": json_values, "message": json_values, "timestamp": json_values,
                           "app_id": st.just(ZALO_APP)}).map(lambda v: json.dumps(v).encode()),
    st.text(max_size=200).map(lambda t: f"<xml><MsgType>text</MsgType><Content>{t}</Content></xml>".encode()),
    st.just(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><xml>&b;</xml>'),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, signed=st.booleans(), channel=st.sampled_from(["wechat", "zalo", "telegram", "web"]))
def test_random_and_malformed_bodies_never_get_a_500(all_channels, body, signed, channel):
    headers, params = {"content-type": "application/json"}, {}
    if signed and channel == "wechat":
        params = signed_query()
    elif signed and channel == "zalo":
        headers["x-zevent-signature"] = sign(body, "0")
    elif signed and channel == "telegram":
        headers["x-telegram-bot-api-secret-token"] = "s3cret"
    response = all_channels.post(f"/webhooks/{channel}", content=body, headers=headers, params=params)
    assert response.status_code < 500
    assert all_channels.get("/healthz").status_code == 200


def test_a_process_killed_while_a_message_is_in_flight_answers_it_once_after_restart(tmp_path):
    database = tmp_path / "helpline.db"
    port = str(free_port())
    env = {"HELPLINE_DATABASE_URL": f"sqlite:///{database}", "HELPLINE_PORT": port, "HELPLINE_SECRET_KEY": "k"}
    sender, log = "crashworker012345678", tmp_path / "service.log"
    with gateway_process({**env, "HELPLINE_ASSISTANT_DELAY": "30"}, log) as first:
        with httpx.Client(base_url=first.base_url, timeout=60) as client:
            wait_ready(client)
            with pytest.raises(httpx.ReadTimeout):
                client.post("/webhooks/web", json={"sender": sender, "message_id": "m1", "text": "加班费怎么算"},
                            timeout=2)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    with sqlite3.connect(database) as db:
        assert db.execute("select status from messages where direction='in'").fetchall() == [("received",)]
        assert db.execute("select count(*) from messages where direction='out'").fetchone() == (0,)
    with gateway_process(env, log) as second:
        with httpx.Client(base_url=second.base_url, timeout=60) as client:
            wait_ready(client)
            replies = wait_for(lambda: client.get("/webhooks/web/messages", params={"sender": sender}).json()["messages"],
                               seconds=60)
            time.sleep(1.0)
            again = client.get("/webhooks/web/messages", params={"sender": sender}).json()["messages"]
    assert len(replies) == 1 and again == replies
    with sqlite3.connect(database) as db:
        assert db.execute("select status from messages where direction='in'").fetchall() == [("answered",)]
    assert "加班费" not in log.read_text(encoding="utf-8", errors="replace")
