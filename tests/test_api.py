"""Handoff and the console's API: who may do what, what the worker is told, and the audit trail."""

import concurrent.futures
import datetime as dt
import json
import sqlite3
import subprocess
import sys
import threading
import time
from zoneinfo import ZoneInfo

import httpx
import pytest

from helpline import auth, store
from tests.gateway_helpers import gateway, query, wait_for

PASSWORD = "correct horse battery"


def web(client, sender, text, message_id=None):
    message_id = message_id or f"m{time.monotonic_ns()}"
    return client.post("/webhooks/web", json={"sender": sender, "message_id": message_id, "text": text}).json()


def add_operator(tmp_path, username, role="operator"):
    engine = store.make_engine(f"sqlite:///{tmp_path / 'helpline.db'}")
    auth.create_operator(store.session_factory(engine), username, PASSWORD, role)
    engine.dispose()


def login(base_url, username, password=PASSWORD):
    client = httpx.Client(base_url=base_url, timeout=30)
    response = client.post("/api/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf"]
    return client




@pytest.fixture()
def service(assistant, tmp_path):
    with gateway(assistant, tmp_path, cookie_secure=False, office_hours="00:00-24:00") as client:
        add_operator(tmp_path, "an")
        add_operator(tmp_path, "binh")
        add_operator(tmp_path, "sup", "supervisor")
        yield client


def test_asking_for_a_person_opens_a_case_and_tells_the_worker(service, tmp_path, assistant):
    reply = web(service, "worker000000000001", "我要找人工")
    [(reference, status, reason)] = query(tmp_path, "select reference, status, reason from cases")
    assert (status, reason) == ("queued", "asked")
    assert reply["replies"] == [assistant.render("utter_handoff_queued", "zh", case_ref=reference, wait_minutes=5)]
    assert reference in reply["replies"][0] and len(reference) == 7


def test_the_bot_stays_silent_after_handoff_with_one_still_waiting_note(service, tmp_path, assistant):
    web(service, "worker000000000002", "cho tôi gặp nhân viên")
    [(reference,)] = query(tmp_path, "select reference from cases")
    query(tmp_path, "update cases set still_waiting_noted_at = '2000-01-01 00:00:00'")
    first = web(service, "worker000000000002", "tang ca tinh luong sao")
    second = web(service, "worker000000000002", "nghi phep nam dc may ngay")
    assert first["replies"] == [assistant.render("utter_still_waiting", "vi", case_ref=reference)]
    assert second["replies"] == []
    assert query(tmp_path, "select status from messages where direction='in' order by id")[-2:] == [("kept",), ("kept",)]


def test_not_understood_twice_then_yes_opens_a_case(service, tmp_path):
    web(service, "worker000000000003", "bla bla bla")
    web(service, "worker000000000003", "ggg hhh")
    web(service, "worker000000000003", "好的")
    assert query(tmp_path, "select reason from cases") == [("not_understood",)]


def test_an_urgent_vietnamese_message_without_diacritics_opens_an_urgent_case(service, tmp_path, assistant):
    reply = web(service, "worker000000000004", "quan doc khoa cua ktx k cho tui em ra ngoai")
    [(reference, urgent, category)] = query(tmp_path, "select reference, urgent, category from cases")
    assert (urgent, category) == (1, "detention")
    numbers = assistant.render("utter_emergency_numbers", "vi")
    assert reply["replies"] == [assistant.render("utter_urgent", "vi", case_ref=reference, emergency_numbers=numbers)]
    assert "113" in reply["replies"][0]


def test_an_urgent_message_raises_a_case_already_waiting(service, tmp_path):
    web(service, "worker000000000005", "我要找人工")
    web(service, "worker000000000005", "组长打我，还说要弄死我")
    assert query(tmp_path, "select urgent, category from cases") == [(1, "violence")]


def test_an_out_of_hours_handoff_says_when_operators_return(assistant, tmp_path):
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    closed = [str(today), str(today + dt.timedelta(days=1))]
    with gateway(assistant, tmp_path, office_closed_days={"zh": closed, "vi": []}) as client:
        reply = web(client, "worker000000000006", "我要找人工")
    [(reference,)] = query(tmp_path, "select reference from cases")
    expected = assistant.render("utter_handoff_out_of_hours", "zh", case_ref=reference, return_time="后天11:00",
                                emergency_numbers=assistant.render("utter_emergency_numbers", "zh"))
    assert reply["replies"] == [expected]


def test_login_csrf_and_lock_out(service):
    assert service.get("/api/cases").status_code == 401
    bad = httpx.post(f"{service.base_url}/api/login", json={"username": "an", "password": "wrong password"})
    assert bad.status_code == 401 and bad.json()["code"] == "bad_credentials"
    an = login(service.base_url, "an")
    assert an.post("/api/logout", headers={"X-CSRF-Token": "forged"}).status_code == 403
    for _ in range(5):
        httpx.post(f"{service.base_url}/api/login", json={"username": "binh", "password": "wrong password"})
    locked = httpx.post(f"{service.base_url}/api/login", json={"username": "binh", "password": PASSWORD})
    assert locked.status_code == 423 and locked.json()["retry_after"] > 0
    cookie = an.cookies.jar
    assert any(c.name == "helpline_session" and c.has_nonstandard_attr("HttpOnly") for c in cookie)


def test_two_operators_claim_at_once_and_one_wins(service, tmp_path):
    web(service, "worker000000000007", "我要找人工")
    [(case_id,)] = query(tmp_path, "select id from cases")
    an, binh = login(service.base_url, "an"), login(service.base_url, "binh")
    barrier = threading.Barrier(2)

    def claim(client):
        barrier.wait()
        return client.post(f"/api/cases/{case_id}/claim")

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(claim, [an, binh]))
    assert sorted(r.status_code for r in results) == [200, 409]
    loser = next(r for r in results if r.status_code == 409).json()
    assert loser["code"] == "already_claimed" and "claimed by" in loser["error"]
    assert query(tmp_path, "select owner from conversations") == [("human",)]


def test_an_operator_cannot_open_another_operators_case_but_a_supervisor_can(service, tmp_path):
    web(service, "worker000000000008", "我要找人工")
    [(case_id,)] = query(tmp_path, "select id from cases")
    an, binh, sup = login(service.base_url, "an"), login(service.base_url, "binh"), login(service.base_url, "sup")
    assert binh.get(f"/api/cases/{case_id}").status_code == 200  # queued: anyone may look before claiming
    an.post(f"/api/cases/{case_id}/claim")
    assert binh.get(f"/api/cases/{case_id}").status_code == 403
    assert binh.post(f"/api/cases/{case_id}/messages", json={"text": "hi"}).status_code == 403
    assert [c["id"] for c in binh.get("/api/cases").json()["cases"]] == []
    assert sup.get(f"/api/cases/{case_id}").status_code == 200
    assert sup.post(f"/api/cases/{case_id}/assign", json={"operator": "binh"}).status_code == 200
    assert binh.get(f"/api/cases/{case_id}").status_code == 200
    assert an.post(f"/api/cases/{case_id}/assign", json={"operator": "an"}).status_code == 403


def test_every_action_is_in_the_audit_trail_and_the_worker_hears_the_operator(service, tmp_path, assistant):
    sender = "worker000000000009"
    web(service, sender, "我要找人工")
    [(case_id,)] = query(tmp_path, "select id from cases")
    an = login(service.base_url, "an")
    assert an.post(f"/api/cases/{case_id}/claim").status_code == 200
    assert an.post(f"/api/cases/{case_id}/messages", json={"text": "你好，我是热线的小安"}).status_code == 201
    assert an.post(f"/api/cases/{case_id}/notes", json={"text": "工厂在东莞"}).status_code == 201
    assert an.post(f"/api/cases/{case_id}/consent/ask").status_code == 200
    web(service, sender, "3")
    assert an.post(f"/api/cases/{case_id}/escalate", json={"reason": "需要联系工厂", "contact_factory": True}).status_code == 200
    assert an.post(f"/api/cases/{case_id}/resolve", json={"outcome": "工厂已补发工资"}).status_code == 200
    case = an.get(f"/api/cases/{case_id}").json()
    assert case["consent"] == "anonymous" and case["status"] == "resolved"
    actions = [a["action"] for a in case["audit"]]
    for action in ("opened", "read", "claimed", "replied", "note", "consent_asked", "consent", "escalated", "resolved"):
        assert action in actions
    assert case["audit"][actions.index("claimed")]["actor"] == "an"
    texts = [m["text"] for m in service.get("/webhooks/web/messages", params={"sender": sender}).json()["messages"]]
    assert "你好，我是热线的小安" in texts
    assert texts[-1] == assistant.render("utter_case_resolved", "zh")
    assert assistant.render("utter_consent_recorded", "zh") in texts


def test_contacting_the_factory_needs_the_workers_consent(service, tmp_path):
    web(service, "worker000000000010", "我要找人工")
    [(case_id,)] = query(tmp_path, "select id from cases")
    an = login(service.base_url, "an")
    an.post(f"/api/cases/{case_id}/claim")
    refused = an.post(f"/api/cases/{case_id}/escalate", json={"reason": "联系工厂", "contact_factory": True})
    assert refused.status_code == 422 and refused.json()["code"] == "consent_required"


def test_a_reply_outside_the_channels_window_is_refused_with_its_reason(service, tmp_path):
    web(service, "worker000000000011", "我要找人工")
    [(case_id,)] = query(tmp_path, "select id from cases")
    query(tmp_path, "update conversations set channel='wechat', last_inbound_at=?",
       (dt.datetime.utcnow() - dt.timedelta(hours=49)).isoformat(sep=" "))
    query(tmp_path, "update cases set channel='wechat'")
    an = login(service.base_url, "an")
    an.post(f"/api/cases/{case_id}/claim")
    case = an.get(f"/api/cases/{case_id}").json()
    assert case["window"]["open"] is False
    refused = an.post(f"/api/cases/{case_id}/messages", json={"text": "你好"})
    assert refused.status_code == 422 and refused.json()["code"] == "window_closed"
    assert "48 hours" in refused.json()["error"]


def test_handing_back_lets_the_bot_answer_again(service, tmp_path, assistant):
    sender = "worker000000000012"
    web(service, sender, "我要找人工")
    [(case_id,)] = query(tmp_path, "select id from cases")
    an = login(service.base_url, "an")
    an.post(f"/api/cases/{case_id}/claim")
    assert an.post(f"/api/cases/{case_id}/handback").json()["status"] == "resolved"
    assert web(service, sender, "加班费怎么算")["replies"] == [assistant.render("utter_faq_overtime_pay", "zh")]


def test_the_queue_is_ordered_by_urgency_then_waiting_time_and_updates_live(service, tmp_path):
    an = login(service.base_url, "an")
    received = []

    def listen():
        with an.stream("GET", "/api/events", timeout=30) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    received.append(json.loads(line[5:]))
                    if len(received) >= 2:
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(0.5)
    started = time.monotonic()
    web(service, "worker000000000013", "我要找人工")
    wait_for(lambda: received, seconds=2)
    assert time.monotonic() - started < 2 and received[0]["change"] == "opened"
    web(service, "worker000000000014", "宿舍着火了，门被锁了")
    queue = an.get("/api/cases").json()["cases"]
    assert [c["urgent"] for c in queue] == [True, False]
    assert queue[0]["category"] == "fire_chemical"


def test_openapi_describes_the_console_api(service):
    paths = service.get("/openapi.json").json()["paths"]
    for path in ("/api/login", "/api/cases", "/api/cases/{case_id}", "/api/cases/{case_id}/claim",
                 "/api/cases/{case_id}/messages", "/api/cases/{case_id}/notes", "/api/cases/{case_id}/escalate",
                 "/api/cases/{case_id}/resolve", "/api/cases/{case_id}/handback"):
        assert path in paths


def test_operator_add_command(tmp_path):
    env = {"HELPLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'ops.db'}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "helpline.cli", "operator", "add", "lan", "--role", "supervisor"],
                          input=PASSWORD + "\n", capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(tmp_path / "ops.db") as connection:
        [(role, hashed)] = connection.execute("select role, password_hash from operators where username='lan'").fetchall()
    assert role == "supervisor" and hashed.startswith("$argon2") and PASSWORD not in hashed
    short = subprocess.run([sys.executable, "-m", "helpline.cli", "operator", "add", "x", "--role", "operator"],
                           input="short\n", capture_output=True, text=True, env=env, timeout=120)
    assert short.returncode == 1 and "at least" in short.stderr
