"""The urgency part of the evaluation report: every test set is read and scored per language."""

from bot import urgency
from helpline import evaluation

SELF_HARM_ZH = "- {text: 我不想活了, language: zh, urgent: true, category: self_harm}\n"
EXAGGERATION_ZH = "- {text: 累死了, language: zh, urgent: false}\n"
SELF_HARM_VI_AS_VIOLENCE = "- {text: toi k muon song nua, language: vi, urgent: true, category: violence}\n"
CALM_VI_AS_FIRE = "- {text: hôm nay trời đẹp, language: vi, urgent: true, category: fire_chemical}\n"


def _write_sets(folder, first, second):
    (folder / "urgency.yml").write_text(first, encoding="utf-8")
    (folder / "urgency_b.yml").write_text(second, encoding="utf-8")


def test_urgency_sets_are_scored_together_per_language(tmp_path):
    _write_sets(tmp_path, SELF_HARM_ZH + EXAGGERATION_ZH, SELF_HARM_VI_AS_VIOLENCE + CALM_VI_AS_FIRE
                + "- {text: cty co duoc giu cccd cua cong nhan k, language: vi, urgent: false}\n")
    sets = evaluation.load_urgency_sets(tmp_path)
    assert list(sets) == ["urgency.yml", "urgency_b.yml"]

    cases = [case for cases in sets.values() for case in cases]
    vi, zh = evaluation.score_urgency(cases, urgency.UrgencyDetector(None))
    assert (zh.language, zh.urgent, zh.caught, zh.calm, zh.false_alarms, zh.wrong_category) == ("zh", 1, 1, 1, 0, 0)
    assert (vi.language, vi.urgent, vi.caught, vi.calm, vi.false_alarms, vi.wrong_category) == ("vi", 2, 1, 1, 0, 1)
    assert vi.recall == 0.5 and vi.misses == ["[fire_chemical] hôm nay trời đẹp"]


def test_sets_scored_apart_and_combined_equal_the_sets_scored_together(tmp_path):
    _write_sets(tmp_path, SELF_HARM_ZH + SELF_HARM_VI_AS_VIOLENCE, EXAGGERATION_ZH + CALM_VI_AS_FIRE)
    detector = urgency.UrgencyDetector(None)
    sets = evaluation.load_urgency_sets(tmp_path)
    apart = evaluation.combine_scores([evaluation.score_urgency(cases, detector) for cases in sets.values()])
    together = evaluation.score_urgency([case for cases in sets.values() for case in cases], detector)
    assert apart == together
    assert [(u.language, u.urgent, u.caught, u.calm) for u in apart] == [("vi", 2, 1, 0), ("zh", 1, 1, 1)]
