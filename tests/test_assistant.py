"""The trained assistant, end to end: the right answer, in the worker's language."""

import json
import subprocess
import sys


def test_a_chinese_question_gets_the_chinese_answer(assistant, run):
    turn = run(assistant.respond("t-zh", "加班费怎么算啊，周末加班给几倍", None))
    assert (turn.language, turn.intent, turn.action) == ("zh", "overtime_pay", "answer")
    assert turn.replies == [assistant.render("utter_faq_overtime_pay", "zh")]
    assert "200%" in turn.replies[0] or "两倍" in turn.replies[0] or "2倍" in turn.replies[0]


def test_vietnamese_without_diacritics_gets_the_vietnamese_answer(assistant, run):
    turn = run(assistant.respond("t-vi", "cty k dong bhxh cho e thi lam sao", None))
    assert (turn.language, turn.intent, turn.action) == ("vi", "si_not_paid", "answer")
    assert turn.replies == [assistant.render("utter_faq_si_not_paid", "vi")]


def test_the_language_is_sticky_for_a_short_reply(assistant, run):
    run(assistant.respond("t-sticky", "chào chị", None))
    turn = run(assistant.respond("t-sticky", "ok", "vi"))
    assert turn.language == "vi"
    assert all(reply == assistant.render(name, "vi") for reply, name in zip(turn.replies, turn.responses))


def test_asking_for_a_person_hands_off(assistant, run):
    turn = run(assistant.respond("t-human", "我要找人工", None))
    assert turn.action == "handoff" and turn.responses == ["utter_handoff"]
    assert turn.replies == [assistant.render("utter_handoff", "zh")]


def test_an_urgent_message_hands_off_without_a_bot_answer(assistant, run):
    turn = run(assistant.respond("t-urgent", "toi k muon song nua", None))
    assert (turn.action, turn.urgent, turn.urgent_category, turn.language) == ("handoff", True, "self_harm", "vi")
    assert turn.replies == []


def test_switching_language_on_request(assistant, run):
    turn = run(assistant.respond("t-switch", "我看不懂中文，能说越南语吗", "zh"))
    assert turn.language == "vi"
    assert turn.replies == [assistant.render("utter_language_changed", "vi")]


def test_not_understood_twice_offers_a_person_and_yes_hands_off(assistant, run):
    first = run(assistant.respond("t-fallback", "bla bla bla", "zh"))
    second = run(assistant.respond("t-fallback", "ggg hhh", "zh"))
    third = run(assistant.respond("t-fallback", "好的", "zh"))
    assert (first.action, first.responses) == ("clarify", ["utter_clarify"])
    assert (second.action, second.responses) == ("clarify", ["utter_offer_person"])
    assert (third.action, third.responses) == ("handoff", ["utter_handoff"])


def test_understand_reports_topic_and_action(assistant, run):
    result = run(assistant.understand("nghỉ phép năm được mấy ngày vậy chị"))
    assert (result.language, result.topic, result.action, result.urgent) == ("vi", "leave", "answer", False)
    urgent = run(assistant.understand("宿舍着火了，门被锁了"))
    assert (urgent.action, urgent.urgent, urgent.urgent_category) == ("handoff", True, "fire_chemical")


def test_every_response_exists_in_both_languages(assistant):
    for name in assistant._agent.domain.responses:
        for lang in ("zh", "vi"):
            assert assistant.render(name, lang).strip()


def test_training_again_does_nothing_when_nothing_changed(paths, assistant):
    from helpline import training

    lines = []
    result = training.train(paths, progress=lines.append)
    assert not result.trained and lines == [f"Model is up to date: {paths.model.relative_to(paths.root)}"]


def test_predict_command_writes_one_json_line_per_input(assistant, paths):
    lines = [
        json.dumps({"text": "老板拖欠工资三个月了"}, ensure_ascii=False),
        "not json",
        json.dumps({"text": "toi muon gap nguoi that", "language": "vi"}),
    ]
    done = subprocess.run(
        [sys.executable, "-m", "helpline.cli", "predict"], input="\n".join(lines) + "\n",
        capture_output=True, text=True, cwd=paths.root, timeout=300,
    )
    assert done.returncode == 1  # one bad line
    assert "line 2: not a JSON object" in done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [set(r) for r in results] == [{"text", "language", "intent", "confidence", "topic", "urgent",
                                          "urgent_category", "action"}] * 2
    assert (results[0]["language"], results[0]["topic"], results[0]["action"]) == ("zh", "wages", "answer")
    assert (results[1]["language"], results[1]["intent"], results[1]["action"]) == ("vi", "request_human", "handoff")
