"""The canned replies operators insert in the console (content/canned_replies.yml)."""

import re
import textwrap

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from helpline import console
from helpline.console import canned
from helpline.content import ContentInvalid, has_diacritics

HAN = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def replies():
    return canned.load(console.CANNED_FILE)


def test_the_file_loads_with_a_dozen_replies_in_every_language(replies):
    assert 10 <= len(replies) <= 12
    for reply in replies:
        assert set(reply.title) == {"en", "zh", "vi"}, reply.key
        assert set(reply.text) == {"zh", "vi"}, reply.key
        assert all(value.strip() for value in [*reply.title.values(), *reply.text.values()]), reply.key


def test_the_texts_are_written_in_each_language(replies):
    for reply in replies:
        assert HAN.search(reply.text["zh"]) and HAN.search(reply.title["zh"]), reply.key
        assert has_diacritics(reply.text["vi"]) and has_diacritics(reply.title["vi"]), reply.key
        assert not HAN.search(reply.text["vi"]), reply.key


def test_the_replies_operators_need_are_there(replies):
    keys = {reply.key for reply in replies}
    assert {"greeting", "ask_details", "ask_factory_city", "confidentiality", "before_consent",
            "referral_labour_authority", "closing"} <= keys
    by_key = {reply.key: reply for reply in replies}
    assert "12333" in by_key["referral_labour_authority"].text["zh"]
    assert "thanh tra lao động" in by_key["referral_labour_authority"].text["vi"]


def test_the_api_serves_the_replies(replies):
    app = FastAPI()
    console.mount(app)
    with TestClient(app) as client:
        body = client.get("/api/canned").json()
    assert [item["key"] for item in body["canned"]] == [reply.key for reply in replies]
    assert body["canned"][0] == replies[0].as_json()


GOOD = """\
replies:
  - key: greeting
    title: {en: Greeting, zh: 问候, vi: Chào hỏi}
    text:
      zh: 你好！
      vi: Chào bạn!
"""

BROKEN = {
    "missing language": (GOOD.replace("      vi: Chào bạn!\n", ""), 5, "text: missing or empty vi"),
    "missing field": (GOOD.replace("    title: {en: Greeting, zh: 问候, vi: Chào hỏi}\n", ""), 2, "missing title"),
    "unknown field": (GOOD + "    tone: warm\n", 7, "unknown fields tone"),
    "bad key": (GOOD.replace("key: greeting", "key: Greeting!"), 2, "key must be lower_snake_case"),
    "empty title": (GOOD.replace("vi: Chào hỏi", "vi: ''"), 3, "title: missing or empty vi"),
    "repeated key": (GOOD + GOOD.replace("replies:\n", ""), 7, "key already used by reply 1"),
    "not YAML": (GOOD.replace("    text:\n", "    text: [\n"), 6, "not valid YAML"),
    "no list": ("replies: hello\n", 1, "the file must have a non-empty list `replies:`"),
    "too long": (GOOD.replace("你好！", "好" * 501), 5, "text.zh is 501 characters, more than 500"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_a_broken_file_is_refused_with_file_line_and_reason(tmp_path, name):
    text, line, reason = BROKEN[name]
    path = tmp_path / "canned_replies.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ContentInvalid) as refused:
        canned.load(path)
    [error] = refused.value.errors
    assert (error.file, error.line) == (path, line), str(error)
    assert reason in error.reason
    assert str(error).startswith(f"{path}:{line}: ")


def test_the_console_refuses_to_mount_with_a_broken_file(tmp_path):
    path = tmp_path / "canned_replies.yml"
    path.write_text(textwrap.dedent(BROKEN["missing language"][0]), encoding="utf-8")
    with pytest.raises(ContentInvalid, match=rf"{re.escape(str(path))}:5: entry greeting: text: missing or empty vi"):
        console.mount(FastAPI(), canned_file=path)
