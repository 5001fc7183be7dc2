"""The operator console in a real browser (Debian's Chromium, driven by Playwright), against the
gateway running in-process: an operator logs in, a worker's request appears live in the queue, the
operator claims it, replies (the worker receives the reply), and resolves it. Also: the page's
strict Content-Security-Policy, a worker's HTML shown as text, and the interface in Chinese.

Screenshots of the queue and the case view are written to reports/screenshots/.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import time
from pathlib import Path
from typing import Iterator, List

import httpx
import pytest

from helpline import auth, console, store
from helpline.console import i18n
from helpline.paths import ROOT
from tests.gateway_helpers import gateway, wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = ROOT / "reports" / "screenshots"
PASSWORD = "console test password"
STATIC = Path(console.__file__).parent

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason="no Chromium at /usr/bin/chromium (install Debian's chromium package)")


# --- the page's parts, without a browser ---------------------------------------------------------

def test_every_interface_string_the_page_uses_is_in_all_three_languages():
    strings = i18n.load(console.STRINGS_FILE)
    assert set(strings["en"]) == set(strings["zh"]) == set(strings["vi"])
    html = (STATIC / "templates" / "console.html").read_text(encoding="utf-8")
    used = set(re.findall(r'data-i18n(?:-placeholder|-label)?="([a-z_]+)"', html))
    used |= set(re.findall(r"strings\.([a-z_]+)", html))
    for script in (STATIC / "static").glob("*.js"):
        used |= set(re.findall(r'\bt\("([a-z_]+)"', script.read_text(encoding="utf-8")))
    assert used and used <= set(strings["en"]), sorted(used - set(strings["en"]))


def test_broken_interface_strings_are_refused_with_file_line_and_reason(tmp_path):
    path = tmp_path / "i18n.yml"
    path.write_text("en:\n  a: A\n  b: '{n} B'\nzh:\n  a: 甲\n  b: 乙\nvi:\n  a: Á\n", encoding="utf-8")
    with pytest.raises(Exception) as refused:
        i18n.load(path)
    reasons = [(error.line, error.reason) for error in refused.value.errors]
    assert (6, "zh.b has placeholders [], en has ['n']") in reasons
    assert (8, "vi is missing b") in reasons


def test_the_scripts_never_insert_html():
    for script in (STATIC / "static").glob("*.js"):
        text = script.read_text(encoding="utf-8")
        for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert unsafe not in text, f"{script.name} uses {unsafe}"


# --- in the browser ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator["object"]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture()
def service(assistant, tmp_path):
    """The gateway (office hours all day, cookies over plain HTTP) with an operator and a supervisor."""
    with gateway(assistant, tmp_path, cookie_secure=False, office_hours="00:00-24:00") as client:
        engine = store.make_engine(f"sqlite:///{tmp_path / 'helpline.db'}")
        sessions = store.session_factory(engine)
        auth.create_operator(sessions, "lin", PASSWORD, "operator")
        auth.create_operator(sessions, "mai", PASSWORD, "supervisor")
        engine.dispose()
        yield client


class Problems:
    """Errors the page reports: script errors, console errors (CSP violations among them)."""

    # The console asks /api/me whether it is logged in, a wrong password is refused (401) and a locked
    # account too (423): Chromium logs these as errors, though they are the console working as designed.
    EXPECTED = re.compile(r"Failed to load resource: the server responded with a status of (401|423)")

    def __init__(self, page) -> None:
        self.seen: List[str] = []
        page.on("pageerror", lambda error: self.seen.append(f"page error: {error}"))
        page.on("console", self._console)

    def _console(self, message) -> None:
        if message.type == "error" and not self.EXPECTED.search(message.text):
            self.seen.append(f"console: {message.text}")


def open_console(browser, base_url: str, language: str = "en"):
    context = browser.new_context(viewport={"width": 1440, "height": 960}, locale="en-GB")
    context.add_init_script(f"localStorage.getItem('helpline.console.language') || "
                            f"localStorage.setItem('helpline.console.language', '{language}')")
    page = context.new_page()
    problems = Problems(page)
    page.goto(f"{base_url}/console")
    return page, problems


def log_in(page, username: str, password: str = PASSWORD) -> None:
    page.get_by_test_id("login-username").fill(username)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()


def worker_writes(client: httpx.Client, sender: str, text: str) -> dict:
    response = client.post("/webhooks/web", json={"sender": sender, "message_id": f"m{time.monotonic_ns()}", "text": text})
    assert response.status_code == 200, response.text
    return response.json()


def worker_inbox(client: httpx.Client, sender: str) -> List[dict]:
    return client.get("/webhooks/web/messages", params={"sender": sender}).json()["messages"]


@needs_chromium
def test_an_operator_takes_a_case_from_the_live_queue_to_resolution(browser, service):
    from playwright.sync_api import expect

    sender = "worker-console-0001"
    page, problems = open_console(browser, str(service.base_url))
    expect(page).to_have_title("Helpline console")

    log_in(page, "lin", "not the password")
    expect(page.get_by_test_id("login-error")).to_have_text("Wrong username or password.")
    log_in(page, "lin")
    expect(page.get_by_test_id("queue-screen")).to_be_visible()
    expect(page.get_by_test_id("live-status")).to_have_attribute("data-state", "live")
    expect(page.get_by_test_id("queue-empty")).to_be_visible()
    page.evaluate("window.notReloaded = true")

    # A worker asks for a person: the case appears in the queue by itself, within 2 s.
    worker_writes(service, sender, "我要找人工")
    asked_at = time.monotonic()
    row = page.get_by_test_id("queue-row")
    expect(row).to_have_count(1, timeout=2000)
    assert time.monotonic() - asked_at < 2
    assert page.evaluate("window.notReloaded") is True
    expect(row).to_have_attribute("data-status", "queued")
    expect(row).to_have_attribute("data-urgent", "false")
    expect(row.get_by_test_id("queue-status")).to_have_text("Waiting")
    expect(row).to_contain_text("Web chat")
    expect(row).to_contain_text("Chinese")
    expect(page).to_have_title("(1) Helpline console")
    assert page.evaluate("document.body.dataset.newCaseAlerts") == "1"
    assert page.evaluate("document.body.dataset.lastAlertSound") == "played"  # the Web Audio beep
    reference = row.get_by_test_id("queue-reference").inner_text()
    assert re.fullmatch(r"\d{3}-\d{3}", reference)
    first_clock = row.get_by_test_id("queue-waiting").inner_text()
    expect(row.get_by_test_id("queue-waiting")).not_to_have_text(first_clock, timeout=3000)  # the clock ticks

    # Another worker's urgent message goes to the top, marked red with its category.
    worker_writes(service, "worker-console-0009", "宿舍着火了，门被锁了")
    expect(row).to_have_count(2, timeout=2000)
    expect(row.first).to_have_attribute("data-urgent", "true")
    expect(row.first.get_by_test_id("queue-urgent")).to_have_text("Urgent: fire or chemicals")
    assert row.first.evaluate("node => getComputedStyle(node).borderLeftColor") == "rgb(180, 35, 24)"
    expect(page).to_have_title("(2) Helpline console")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "queue.png"))

    # The case: the whole transcript, bot turns included.
    row.filter(has_text=reference).click()
    case = page.get_by_test_id("case-view")
    expect(case).to_be_visible()
    expect(page).to_have_title("(1) Helpline console")  # the urgent one is still unseen
    expect(page.get_by_test_id("case-reference")).to_have_text(reference)
    expect(page.get_by_test_id("case-status")).to_have_attribute("data-status", "queued")
    transcript = page.get_by_test_id("transcript")
    expect(transcript.locator("[data-author=worker]")).to_contain_text("我要找人工")
    expect(transcript.locator("[data-author=bot]").first).to_contain_text(reference)
    expect(page.get_by_test_id("consent")).to_have_attribute("data-consent", "none")
    expect(page.get_by_test_id("reply-window")).to_have_text("open")
    expect(page.get_by_test_id("reply-text")).to_be_disabled()

    # Claim, then reply with a canned greeting in the worker's language plus a question.
    page.get_by_test_id("claim").click()
    expect(page.get_by_test_id("case-status")).to_have_attribute("data-status", "assigned")
    expect(page.get_by_test_id("case-operator")).to_have_text("lin")
    expect(page.get_by_test_id("claim")).to_be_hidden()
    reply_box = page.get_by_test_id("reply-text")
    expect(reply_box).to_be_enabled()
    page.get_by_test_id("canned").select_option("greeting")
    greeting = next(r.text["zh"] for r in console.canned.load(console.CANNED_FILE) if r.key == "greeting")
    expect(reply_box).to_have_value(greeting)
    reply_box.press("End")
    reply_box.press_sequentially("\n你在哪个城市上班？")
    page.get_by_test_id("reply-send").click()
    sent = f"{greeting}\n你在哪个城市上班？"
    expect(transcript.locator("[data-author=operator]")).to_contain_text("你在哪个城市上班？")
    expect(reply_box).to_have_value("")
    received = wait_for(lambda: [m for m in worker_inbox(service, sender) if m["author"] == "operator"], seconds=10)
    assert [m["text"] for m in received] == [sent]

    # A private note, shown to operators only.
    page.get_by_test_id("note-text").fill("工人在东莞，电子厂")
    page.get_by_test_id("note-add").click()
    expect(page.get_by_test_id("note")).to_contain_text("工人在东莞，电子厂")
    assert all("东莞" not in m["text"] for m in worker_inbox(service, sender))
    page.screenshot(path=str(SCREENSHOTS / "case.png"))

    # Resolve with an outcome.
    page.get_by_test_id("resolve").click()
    page.get_by_test_id("ask-input").fill("Explained overtime rules; worker will call 12333.")
    page.get_by_test_id("ask-confirm").click()
    expect(page.get_by_test_id("case-status")).to_have_attribute("data-status", "resolved")
    expect(page.get_by_test_id("reply-text")).to_be_disabled()
    expect(row.filter(has_text=reference)).to_have_count(0)  # the "open" filter no longer lists it
    page.get_by_test_id("filter-resolved").click()
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-status", "resolved")
    assert wait_for(lambda: worker_inbox(service, sender)[-1]["author"] == "system", seconds=10)
    assert problems.seen == []
    page.context.close()


@needs_chromium
def test_the_console_in_chinese_is_remembered_and_shows_workers_html_as_text(browser, service):
    from playwright.sync_api import expect

    sender = "worker-console-0002"
    hostile = '<img src=x onerror="document.title=\'pwned\'">救命 <b>bold</b>'
    worker_writes(service, sender, "我要找人工")
    worker_writes(service, sender, hostile)

    for _ in range(5):
        httpx.post(f"{service.base_url}/api/login", json={"username": "lin", "password": "wrong password"})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page, problems = open_console(browser, str(service.base_url))
    log_in(page, "lin")
    expect(page.get_by_test_id("login-error")).to_contain_text("this account is locked. Try again in 15 min.")
    log_in(page, "mai")
    expect(page.get_by_test_id("queue-row")).to_have_count(1)
    page.get_by_test_id("language").select_option("zh")
    expect(page.get_by_role("heading", name="案件队列")).to_be_visible()
    expect(page.get_by_test_id("filter-open")).to_have_text("未结案")
    expect(page).to_have_title("热线工作台")
    assert page.evaluate("document.documentElement.lang") == "zh-CN"

    page.reload()
    expect(page.get_by_test_id("filter-open")).to_have_text("未结案")  # remembered
    row = page.get_by_test_id("queue-row")
    expect(row.get_by_test_id("queue-status")).to_have_text("等待中")
    row.click()
    expect(page.get_by_test_id("claim")).to_have_text("认领")
    expect(page.get_by_test_id("resolve")).to_have_text("结案")
    expect(page.get_by_test_id("consent-value")).to_contain_text("尚未询问")
    expect(page.get_by_test_id("assign-operator")).to_be_visible()  # supervisors may reassign

    worker_turns = page.get_by_test_id("transcript").locator("[data-author=worker]")
    expect(worker_turns.last).to_contain_text(hostile)
    assert page.get_by_test_id("transcript").locator("img, b").count() == 0
    assert page.title() == "热线工作台"
    page.screenshot(path=str(SCREENSHOTS / "case_zh.png"))

    # Consent, asked by the operator and answered by the worker, shows at once; then the case can be
    # escalated to the factory (anonymously) and reassigned.
    page.get_by_test_id("ask-consent").click()
    page.get_by_test_id("ask-confirm").click()
    expect(page.get_by_test_id("consent")).to_have_attribute("data-consent", "asked")
    worker_writes(service, sender, "3")
    expect(page.get_by_test_id("consent")).to_have_attribute("data-consent", "anonymous")
    expect(page.get_by_test_id("consent-value")).to_contain_text("仅限匿名")
    page.get_by_test_id("escalate").click()
    page.get_by_test_id("ask-input").fill("需要联系工厂人事部")
    page.get_by_test_id("ask-check").check()
    page.get_by_test_id("ask-confirm").click()
    expect(page.get_by_test_id("case-status")).to_have_attribute("data-status", "escalated")
    page.get_by_test_id("assign-operator").select_option("lin")
    page.get_by_test_id("assign").click()
    expect(page.get_by_test_id("case-operator")).to_have_text("lin")

    page.get_by_test_id("language").select_option("vi")
    expect(page.get_by_test_id("claim")).to_have_text("Nhận xử lý")
    assert problems.seen == []
    page.context.close()


@needs_chromium
def test_the_reply_window_counts_down_and_closes_the_reply_box(browser, service, tmp_path):
    from playwright.sync_api import expect

    worker_writes(service, "worker-console-0003", "我要找人工")
    # As if the worker had written on WeChat (48 h window) 47 h 59 min 54 s ago.
    last_message = dt.datetime.utcnow() - dt.timedelta(hours=48) + dt.timedelta(seconds=6)
    with sqlite3.connect(tmp_path / "helpline.db") as db:
        db.execute("update conversations set channel='wechat', last_inbound_at=?", (last_message.isoformat(sep=" "),))
        db.execute("update cases set channel='wechat'")
    page, problems = open_console(browser, str(service.base_url))
    log_in(page, "mai")
    page.get_by_test_id("queue-row").click()
    window = page.get_by_test_id("reply-window")
    expect(window).to_have_text(re.compile(r"^0:0[0-6] left$"))
    expect(page.get_by_test_id("reply-text")).to_be_enabled()
    expect(window).to_have_text("window closed: the channel's reply time is over", timeout=10000)
    expect(page.get_by_test_id("reply-text")).to_be_disabled()
    expect(page.get_by_test_id("reply-send")).to_be_disabled()
    page.wait_for_timeout(1500)  # the API counts whole seconds left, so the console closes up to 1 s early
    page.reload()
    expect(window).to_have_text("window closed: wechat allows replies only within 48 hours of the worker's last message")
    expect(page.get_by_test_id("reply-hint")).to_contain_text("window closed: wechat allows")
    expect(page.get_by_test_id("reply-text")).to_be_disabled()
    assert problems.seen == []
    page.context.close()


def test_the_page_is_served_with_a_strict_policy_and_no_inline_script(assistant, tmp_path):
    with gateway(assistant, tmp_path) as client:
        page = client.get("/console")
        strings = client.get("/console/i18n.json").json()
        script = client.get("/console/static/console.js")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    for tag in re.findall(r"<script\b[^>]*>", page.text):
        assert 'src="/console/static/' in tag
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", page.text), "inline script"
    assert not re.search(r"\son[a-z]+=", page.text), "inline event handler"
    assert not re.search(r"\sstyle=", page.text), "inline style"
    assert strings["zh"]["app_title"] == "热线工作台"
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
