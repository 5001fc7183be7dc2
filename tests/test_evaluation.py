"""The urgency part of the evaluation report: every test set is read and scored per language."""

from bot import urgency
from helpline import evaluation


def test_urgency_sets_are_scored_together_per_language(tmp_path):
    (tmp_path / "urgency.yml").write_text(
        "- {text: 我不想活了, language: zh, urgent: true, category: self_harm}\n"
        "- {text: 累死了, language: zh, urgent: false}\n",
        encoding="utf-8",
    )
    (tmp_path / "urgency_b.yml").write_text(
        "- {text: toi k muon song nua, language: vi, urgent: true, category: violence}\n"
        "- {text: hôm nay trời đẹp, language: vi, urgent: true, category: fire_chemical}\n"
        "- {text: cty co duoc giu cccd cua cong nhan k, language: vi, urgent: false}\n",
        encoding="utf-8",
    )
    sets = evaluation.load_urgency_sets(tmp_path)
    assert list(sets) == ["urgency.yml", "urgency_b.yml"]

    cases = [case for cases in sets.values() for case in cases]
    vi, zh = evaluation.score_urgency(cases, urgency.UrgencyDetector(None))
    assert (zh.language, zh.urgent, zh.caught, zh.calm, zh.false_alarms, zh.wrong_category) == ("zh", 1, 1, 1, 0, 0)
    assert (vi.language, vi.urgent, vi.caught, vi.calm, vi.false_alarms, vi.wrong_category) == ("vi", 2, 1, 1, 0, 1)
    assert vi.recall == 0.5 and vi.misses == ["[fire_chemical] hôm nay trời đẹp"]


def test_sets_scored_apart_and_combined_equal_the_sets_scored_together(tmp_path):
    (tmp_path / "urgency.yml").write_text(
        "- {text: 我不想活了, language: zh, urgent: true, category: self_harm}\n"
        "- {text: toi k muon song nua, language: vi, urgent: true, category: violence}\n",
        encoding="utf-8",
    )
    (tmp_path / "urgency_b.yml").write_text(
        "- {text: 累死了, language: zh, urgent: false}\n"
        "- {text: hôm nay trời đẹp, language: vi, urgent: true, category: fire_chemical}\n",
        encoding="utf-8",
    )
    detector = urgency.UrgencyDetector(None)
    sets = evaluation.load_urgency_sets(tmp_path)
    apart = evaluation.combine_scores([evaluation.score_urgency(cases, detector) for cases in sets.values()])
    together = evaluation.score_urgency([case for cases in sets.values() for case in cases], detector)
    assert apart == together
    assert [(u.language, u.urgent, u.caught, u.calm) for u in apart] == [("vi", 2, 1, 0), ("zh", 1, 1, 1)]
