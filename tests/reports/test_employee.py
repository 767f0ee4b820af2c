"""Employee-survey aggregates on a fixture with known answers, checked against values
computed by hand: means, distributions, favourable rates, eNPS, groups too small to show
(and the group hidden with them), comments, and what an anonymous response keeps."""
from __future__ import annotations

import json
from datetime import time, timezone

import pytest
from sqlalchemy import select

from survey.campaigns.models import Invitation, Response
from survey.extensions import db
from survey.questionnaires.services import add_questionnaire
from survey.reports.employee import Scale, _enps, _scale, employee_figures
from survey.respond import services
from tests.campaigns.helpers import invitations, started_campaign

# (pay_fairness, equality, wellbeing, enps) per person, by department
SALES = [(5, 4, 5, 9), (5, 4, 5, 10), (5, 4, 5, 9), (4, 4, 5, 10), (4, 4, 5, 9), (4, 4, 5, 10),
         (4, 4, 5, 7), (3, 4, 5, 8), (3, 4, 5, 7), (2, 4, 5, 6), (2, 4, 5, 5), (1, 4, 5, 0)]
OPS = [(4, 4, 3, 10), (4, 4, 3, 8), (3, 4, 3, 8), (3, 4, 3, 6), (2, 4, 3, 6), (2, 4, 3, 3)]
LEGAL = [(1, 4, 1, 2), (1, 4, 1, 2), (1, 4, 1, 2)]
#: written by the first ten people in Sales (one empty: no comment); shown alphabetically
COMMENTS = ["more remote days", "Better coffee", "zebra crossing outside", "apple pie on Fridays",
            "Clearer promotion criteria", "bike shed", "Quieter open space", "", "Xmas party in January",
            "Free fruit"]


def _answers(pay, equality, wellbeing, enps, comment=None) -> dict:
    answers = {"pay_fairness": pay, "equality": equality, "wellbeing": wellbeing, "enps": enps}
    return {**answers, "comment": comment} if comment is not None else answers


@pytest.fixture
def pulse(builtin_questionnaires, create_stakeholder, monkeypatch):
    """12 employees in Sales, 6 in Ops, 3 in Legal, all answered (through the real submit
    service); one more employee, in no department, has not answered yet."""
    people = [(create_stakeholder(kind="employee", department=department), answers)
              for department, rows in (("Sales", SALES), ("Ops", OPS), ("Legal", LEGAL)) for answers in rows]
    late = create_stakeholder(kind="employee")
    campaign = started_campaign(builtin_questionnaires["employee-pulse"], monkeypatch, privacy="confidential")
    invited = {i.stakeholder_id: i for i in invitations(campaign.id)}
    comments = iter(COMMENTS + [None] * len(people))
    for person, answers in people:
        services.submit_response(invited[person.id], _answers(*answers, comment=next(comments)), "en")
        db.session.commit()
    return campaign, invited[late.id]


def test_scales_and_enps_of_a_known_workforce(pulse):
    campaign, _late = pulse
    figures = employee_figures([campaign.id])
    assert (figures["respondents"], figures["threshold"], figures["comment_threshold"]) == (21, 5, 10)
    assert figures["suppressed"] is False and figures["comments"] == []
    pay, equality, wellbeing = figures["scales"]
    assert pay["question"] == "pay_fairness" and pay["label"]["en"].startswith("How fair is your pay")
    assert (pay["min"], pay["max"], pay["n"]) == (1, 5, 21)
    # 1: Sales 1 + Legal 3; 2: 2 + 2; 3: 2 + 2; 4: 4 + 2; 5: 3 (Sales).
    assert pay["distribution"] == [[1, 4], [2, 4], [3, 4], [4, 6], [5, 3]]
    # (4·1 + 4·2 + 4·3 + 6·4 + 3·5) / 21 = 63 / 21
    assert pay["mean"] == 3.0
    # above the midpoint 3: 6 + 3 = 9 of 21; Wilson 95%: [0.2447, 0.6345]
    assert pay["favourable"] == {"numerator": 9, "denominator": 21, "value": 0.4286, "ci95": [0.2447, 0.6345]}
    assert equality["distribution"] == [[1, 0], [2, 0], [3, 0], [4, 21], [5, 0]] and equality["mean"] == 4.0
    assert equality["favourable"]["ci95"] == [0.8454, 1.0]
    # (12·5 + 6·3 + 3·1) / 21 = 81 / 21 = 3.857142…; favourable: Sales' 12 fives
    assert wellbeing["mean"] == 3.8571
    assert wellbeing["favourable"] == {"numerator": 12, "denominator": 21, "value": 0.5714,
                                       "ci95": [0.3655, 0.7553]}
    # The 0–10 question is an eNPS, not a scale: promoters (9–10) Sales 6 + Ops 1 = 7,
    # passives (7–8) 3 + 2 = 5, detractors (0–6) 3 + 3 + 3 = 9; 100·(7 − 9)/21 = −9.52 → −10
    [enps] = figures["enps"]
    assert enps["label"]["en"] == "How likely are you to recommend working here to a friend?"
    assert {k: v for k, v in enps.items() if k != "label"} == {
        "question": "enps", "n": 21, "promoters": 7, "passives": 5, "detractors": 9, "score": -10}
    # The published JSON is plain and stable.
    assert json.dumps(figures) == json.dumps(employee_figures([campaign.id]))


def test_small_departments_are_hidden_with_the_next_smallest(pulse):
    campaign, _late = pulse
    by = employee_figures([campaign.id])["by"]
    assert list(by) == ["department"]  # nobody has a programme or a cohort
    # Legal (3 < 5) is hidden; Ops (6) goes with it, else 21 − 12 − 6 would give Legal back.
    # Sales: pay 42/12 = 3.5; eNPS 100·(6 − 3)/12 = 25.
    assert by["department"] == [
        {"value": "Legal", "suppressed": "small"},
        {"value": "Ops", "suppressed": "complementary"},
        {"value": "Sales", "n": 12, "means": {"pay_fairness": 3.5, "equality": 4.0, "wellbeing": 5.0},
         "enps": {"enps": 25}},
    ]


def test_a_hidden_group_cannot_be_worked_out_from_the_totals(pulse):
    campaign, _late = pulse
    figures = employee_figures([campaign.id])
    shown = [g for g in figures["by"]["department"] if "n" in g]
    hidden = [g for g in figures["by"]["department"] if "suppressed" in g]
    assert all(set(g) == {"value", "suppressed"} for g in hidden)
    # The attempt: everyone minus the groups shown, and the pay total minus theirs.
    rest = figures["respondents"] - sum(g["n"] for g in shown)
    pay_rest = figures["scales"][0]["mean"] * figures["respondents"] - sum(
        g["means"]["pay_fairness"] * g["n"] for g in shown)
    # 21 − 12 = 9 people with a mean of (63 − 42)/9 = 2.33: Legal and Ops together,
    # neither Legal (3 people, mean 1) nor Ops (6, mean 3).
    assert rest == 9 and round(pay_rest / rest, 2) == 2.33
    assert rest not in (len(LEGAL), len(OPS))


def test_too_few_respondents_show_nothing_but_their_number(pulse):
    campaign, _late = pulse
    figures = employee_figures([campaign.id], threshold=22)
    assert (figures["respondents"], figures["suppressed"]) == (21, True)
    assert (figures["scales"], figures["enps"], figures["by"]) == ([], [], {})


def test_a_question_few_answered_shows_only_its_count():
    four = [(1, 1), (2, 0), (3, 2), (4, 1), (5, 0)]
    assert _scale(Scale("q", {"en": "Q"}, 1, 5), four, threshold=5) == {
        "question": "q", "label": {"en": "Q"}, "min": 1, "max": 5, "n": 4, "mean": None,
        "distribution": [], "favourable": None}
    nps = _enps(Scale("e", {}, 0, 10), [(point, 1 if point in (0, 10) else 0) for point in range(11)], 5)
    assert (nps["n"], nps["promoters"], nps["detractors"], nps["score"]) == (2, None, None, None)


def test_comments_are_hidden_under_ten_then_shown_alphabetically(pulse):
    campaign, late = pulse
    # Ten people were given a comment box and one left it empty: 9 < 10, nothing is shown.
    [comments] = employee_figures([campaign.id], with_comments=True)["comments"]
    assert (comments["question"], comments["n"], comments["shown"], comments["items"]) == ("comment", 9, False, [])
    # One more (in no department) makes ten.
    services.submit_response(late, _answers(5, 5, 5, 10, comment="Onboarding was great"), "en")
    db.session.commit()
    [comments] = employee_figures([campaign.id], with_comments=True)["comments"]
    assert (comments["n"], comments["shown"]) == (10, True)
    # Alphabetical whatever the case, never in the order people answered; text only, no group.
    assert comments["items"] == ["apple pie on Fridays", "Better coffee", "bike shed", "Clearer promotion criteria",
                                 "Free fruit", "more remote days", "Onboarding was great", "Quieter open space",
                                 "Xmas party in January", "zebra crossing outside"]


def test_the_same_question_in_several_campaigns_counts_together(pulse, builtin_questionnaires, monkeypatch):
    campaign, late = pulse
    second = started_campaign(builtin_questionnaires["employee-pulse"], monkeypatch, name="Pulse, again")
    mine = db.session.scalar(select(Invitation).where(Invitation.campaign_id == second.id,
                                                      Invitation.stakeholder_id == late.stakeholder_id))
    services.submit_response(mine, _answers(5, 5, 5, 10), "en")
    db.session.commit()
    pay = employee_figures([campaign.id, second.id])["scales"][0]
    # one more 5: 22 answers, (63 + 5)/22 = 3.0909
    assert (pay["n"], pay["distribution"][-1], pay["mean"]) == (22, [5, 4], 3.0909)


def test_no_scale_no_employee_figures(builtin_questionnaires, create_stakeholder, monkeypatch):
    pulse = builtin_questionnaires["employee-pulse"].definition
    comments_only = add_questionnaire({**pulse, "slug": "employee-comments",
                                       "questions": [q for q in pulse["questions"] if q["type"] != "scale"]})
    create_stakeholder(kind="employee")
    assert employee_figures([started_campaign(comments_only, monkeypatch).id]) is None


def test_an_identified_or_confidential_response_keeps_every_group(pulse):
    campaign, _late = pulse
    segments = db.session.scalars(select(Response.segment).where(Response.campaign_id == campaign.id)).all()
    # Confidential: every group is kept with the answers (Legal too); the report never shows it.
    assert sorted(json.dumps(s) for s in segments) == sorted(
        json.dumps({"department": d}) for d in ["Sales"] * 12 + ["Ops"] * 6 + ["Legal"] * 3)


def test_an_anonymous_response_cannot_be_traced_back(builtin_questionnaires, create_stakeholder, monkeypatch):
    # Cohort 2020: 4 in Sales, 2 in Legal (6 ≥ 5); Sales: 4 + 2 (6 ≥ 5); Legal: 2 < 5;
    # Sales in cohort 2020: 4 < 5, so that pair would narrow a response down to four people.
    people = {
        "sales-2020": [create_stakeholder(kind="employee", department="Sales", cohort="2020") for _ in range(4)],
        "sales-2019": [create_stakeholder(kind="employee", department="Sales", cohort="2019") for _ in range(2)],
        "legal-2020": [create_stakeholder(kind="employee", department="Legal", cohort="2020") for _ in range(2)],
    }
    campaign = started_campaign(builtin_questionnaires["employee-pulse"], monkeypatch, privacy="anonymous")
    invited = {i.stakeholder_id: i for i in invitations(campaign.id)}
    stored = {}
    for kind, group in people.items():
        invitation = invited[group[0].id]
        services.save_draft(invitation, {"pay_fairness": 3}, "en")  # a draft is linked until submitted
        db.session.commit()
        response = services.submit_response(invitation, _answers(3, 3, 3, 7, comment=f"from {kind}"), "en")
        db.session.commit()
        stored[kind] = response.id
    db.session.expire_all()

    # Only groups of at least 5 invitees, alone and together, are kept.
    segments = {kind: db.session.get(Response, rid).segment for kind, rid in stored.items()}
    assert segments == {"sales-2020": {"department": "Sales"}, "sales-2019": {"department": "Sales"},
                        "legal-2020": {"cohort": "2020"}}

    # Each column of the row: nothing points back to the invitation or the person, times are days.
    # (retention_level says how much the retention policy has stripped: it follows the
    # answer's age and content, never who gave it.)
    assert set(Response.__table__.columns.keys()) == {"id", "campaign_id", "invitation_id", "answers", "locale",
                                                      "started_at", "submitted_at", "segment", "retention_level"}
    for kind, rid in stored.items():
        row = db.session.get(Response, rid)
        assert (row.invitation_id, row.started_at, row.campaign_id) == (None, None, campaign.id)
        assert row.retention_level == 0
        assert row.submitted_at.astimezone(timezone.utc).time() == time(0)
        assert set(row.answers) == {"pay_fairness", "equality", "wellbeing", "enps", "comment"}

    # Nor anything else: no other row of any table holds a response id.
    ids = {str(rid) for rid in stored.values()} | {rid.hex for rid in stored.values()}
    for table in db.metadata.sorted_tables:
        if table.name == "responses":
            continue
        for row in db.session.execute(select(table)).all():
            text = repr(tuple(row))
            assert not any(rid in text for rid in ids), f"{table.name} holds a response id"
    # The invitations keep only "has answered".
    assert sorted(i.status for i in invitations(campaign.id)).count("completed") == 3


def test_an_alumni_campaign_has_no_employee_section(cohort):
    # The alumni questionnaire has a scale (credit to the course) and free texts (the
    # employer's name): neither is an employee-survey figure, nor a comment to show.
    assert employee_figures([cohort.id], with_comments=True) is None


def test_a_lone_person_without_a_shown_group_cannot_be_worked_out(builtin_questionnaires, create_stakeholder,
                                                                    monkeypatch):
    """Anonymous: 6 in Sales, 6 in Ops and one in Legal, a department too small to keep with
    the answer. That one answer is in the totals and in no department: were only Sales and
    Ops shown, the totals minus theirs would be exactly that person's answers."""
    sales = [(4, 4, 4, 9), (4, 4, 5, 9), (5, 4, 4, 10), (4, 5, 4, 9), (3, 4, 4, 8), (4, 4, 4, 9)]
    ops = [(3, 3, 3, 8), (3, 3, 4, 7), (4, 3, 3, 8), (3, 4, 3, 7), (3, 3, 3, 8), (2, 3, 3, 8)]
    lone = (1, 1, 1, 0)
    people = ([(create_stakeholder(kind="employee", department="Sales"), a) for a in sales]
              + [(create_stakeholder(kind="employee", department="Ops"), a) for a in ops]
              + [(create_stakeholder(kind="employee", department="Legal"), lone)])
    campaign = started_campaign(builtin_questionnaires["employee-pulse"], monkeypatch, privacy="anonymous")
    invited = {i.stakeholder_id: i for i in invitations(campaign.id)}
    for person, answers in people:
        services.submit_response(invited[person.id], _answers(*answers), "en")
        db.session.commit()

    figures = employee_figures([campaign.id])
    assert figures["respondents"] == 13
    # The answer without a department is a group of its own, too small to show; Ops goes with it.
    assert figures["by"]["department"] == [
        {"value": "(not given)", "suppressed": "small"},
        {"value": "Ops", "suppressed": "complementary"},
        {"value": "Sales", "n": 6, "means": {"pay_fairness": 4.0, "equality": 4.1667, "wellbeing": 4.1667},
         "enps": {"enps": 83}},
    ]
    # The attempt: the totals minus every group shown, on each scale.
    shown = [g for g in figures["by"]["department"] if "n" in g]
    rest = figures["respondents"] - sum(g["n"] for g in shown)
    leftover = {scale["question"]: round((scale["mean"] * scale["n"] - sum(g["means"][scale["question"]] * g["n"]
                                                                          for g in shown)) / rest, 2)
                for scale in figures["scales"]}
    # What is left is Ops and the lone answer together (7 people), never that answer alone.
    assert rest == 7
    assert leftover == {"pay_fairness": 2.71, "equality": 2.86, "wellbeing": 2.86}
    assert leftover != dict(zip(leftover, lone))


def test_a_breakdown_nobody_has_a_value_for_is_not_shown(pulse):
    campaign, _late = pulse
    # Everyone answered without a programme: a lone "(not given)" group would be the totals again.
    assert "programme" not in employee_figures([campaign.id])["by"]


def test_an_employee_survey_s_report_shows_no_empty_alumni_part(pulse, create_user, browser):
    """Found by a newcomer: an employee campaign's report said "0 people invited", with empty
    alumni rates and outcomes, above its real figures."""
    campaign, _late = pulse
    admin = browser(create_user(role="chair"))
    page = admin.get(f"/reports/?campaign={campaign.id}").get_data(as_text=True)
    assert 'id="report-employees-title"' in page
    assert 'id="report-headline-title"' not in page and 'id="report-outcomes-title"' not in page
