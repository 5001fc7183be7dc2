import textwrap

import pytest

from helpline import content

GOOD_ENTRY = """\
  - id: {id}
    topic: hours
    reviewed_on: 2026-11-23
    review_by: 2027-05-23
    zh:
      answer: 每天一般不超过8小时。
      sources: [《劳动法》第三十六条]
      examples: [{zh}]
    vi:
      answer: Không quá 8 giờ một ngày.
      sources: ["Bộ luật Lao động 2019, Điều 105"]
      examples: [{vi}]
"""


def entry(id="hours_x", prefix="q"):
    zh = ", ".join(f"{prefix}问题{i}" for i in range(10))
    vi = ", ".join(f"{prefix} cau hoi {i}" if i < 3 else f"{prefix} câu hỏi {i}" for i in range(10))
    return GOOD_ENTRY.format(id=id, zh=zh, vi=vi)


def write(folder, name, body):
    path = folder / name
    path.write_text("entries:\n" + body, encoding="utf-8")
    return path


def errors_of(folder):
    with pytest.raises(content.ContentInvalid) as raised:
        content.load(folder)
    return raised.value.errors


def test_the_real_content_covers_every_subject(paths):
    entries = content.load(paths.content)
    assert len(entries) >= 60
    topics = {e.topic for e in entries}
    assert topics >= {"hours", "wages", "contract", "resignation_dismissal", "social_insurance", "leave",
                      "injury_safety", "personal", "helpline", "emergency"}
    for e in entries:
        assert len(e.answers["zh"].examples) >= 10 and len(e.answers["vi"].examples) >= 10
        assert sum(not content.has_diacritics(x) for x in e.answers["vi"].examples) >= 3


def test_a_good_file_loads(tmp_path):
    write(tmp_path, "hours.yml", entry())
    [loaded] = content.load(tmp_path)
    assert loaded.id == "hours_x" and loaded.response == "utter_faq_hours_x"
    assert loaded.answers["vi"].sources == ("Bộ luật Lao động 2019, Điều 105",)


def test_a_missing_field_is_reported_with_file_line_and_entry(tmp_path):
    body = entry().replace("    topic: hours\n", "")
    path = write(tmp_path, "hours.yml", body)
    [error] = errors_of(tmp_path)
    assert (error.file, error.line, error.entry) == (path, 2, "hours_x")
    assert "missing topic" in error.reason
    assert str(error).startswith(f"{path}:2: entry hours_x: missing topic")


def test_an_unknown_topic_points_at_its_line(tmp_path):
    write(tmp_path, "hours.yml", entry().replace("topic: hours", "topic: weather"))
    [error] = errors_of(tmp_path)
    assert error.line == 3 and "topic 'weather'" in error.reason


def test_too_few_examples_and_no_plain_vietnamese(tmp_path):
    body = entry().replace("q cau hoi", "q câu hỏi")
    body = body.replace(", q问题9", "")
    write(tmp_path, "hours.yml", body)
    reasons = sorted(e.reason for e in errors_of(tmp_path))
    assert any("zh.examples has 9 questions" in r for r in reasons)
    assert any("vi.examples has 0 questions without diacritics" in r for r in reasons)


def test_a_bad_date_and_a_review_date_before_the_review(tmp_path):
    write(tmp_path, "a.yml", entry().replace("reviewed_on: 2026-11-23", "reviewed_on: last week"))
    write(tmp_path, "b.yml", entry("hours_y", "y").replace("review_by: 2027-05-23", "review_by: 2025-01-01"))
    reasons = [e.reason for e in errors_of(tmp_path)]
    assert any("reviewed_on must be a date" in r for r in reasons)
    assert any("review_by must be after reviewed_on" in r for r in reasons)


def test_duplicate_ids_and_shared_examples_across_files(tmp_path):
    write(tmp_path, "a.yml", entry())
    write(tmp_path, "b.yml", entry())
    write(tmp_path, "c.yml", entry("hours_z"))
    reasons = [e.reason for e in errors_of(tmp_path)]
    assert any("id already used at" in r for r in reasons)
    assert any("is also an example of entry hours_x" in r for r in reasons)


def test_an_example_repeated_in_one_entry(tmp_path):
    write(tmp_path, "a.yml", entry().replace("q问题1,", "q问题0,"))
    [error] = errors_of(tmp_path)
    assert "repeats" in error.reason and error.line == 9


def test_invalid_yaml_is_reported_with_its_line(tmp_path):
    path = tmp_path / "broken.yml"
    path.write_text(textwrap.dedent("""\
        entries:
          - id: x
            topic: [unclosed
        """), encoding="utf-8")
    [error] = errors_of(tmp_path)
    assert error.file == path and error.line >= 3 and "not valid YAML" in error.reason


def test_a_file_without_entries(tmp_path):
    (tmp_path / "empty.yml").write_text("hello: world\n", encoding="utf-8")
    [error] = errors_of(tmp_path)
    assert "entries" in error.reason


def test_an_answer_too_long_for_a_wechat_reply(tmp_path):
    write(tmp_path, "a.yml", entry().replace("每天一般不超过8小时。", "很长" * 400))
    [error] = errors_of(tmp_path)
    assert "bytes, more than 1800" in error.reason


def test_due_for_review(tmp_path):
    import datetime as dt

    write(tmp_path, "a.yml", entry())
    entries = content.load(tmp_path)
    assert content.due_for_review(entries, dt.date(2027, 1, 1)) == []
    assert content.due_for_review(entries, dt.date(2027, 6, 1)) == entries
