"""The survey link as a respondent uses it: open, save, resume, submit, and the refusals."""
from __future__ import annotations

import re
from datetime import datetime, time, timedelta, timezone

import pytest
from markupsafe import escape
from sqlalchemy import select, update

from survey.campaigns import services as campaign_services
from survey.campaigns.models import Campaign, Invitation, Response
from survey.extensions import db
from tests.campaigns.helpers import counted_queries, invitations, link_path, now, started_campaign

EN = {"Accept-Language": "en"}


@pytest.fixture
def invited(alumni, create_stakeholder, monkeypatch):
    """(campaign, invitation, link path) for one English-speaking alumnus."""
    def make(privacy="identified", locale="en"):
        create_stakeholder(locale=locale)
        campaign = started_campaign(alumni, monkeypatch, privacy=privacy)
        [invitation] = invitations(campaign.id)
        return campaign, invitation, link_path(invitation)

    return make


def _csrf(page_html: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page_html).group(1)


def _open(client, path) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    return page.get_data(as_text=True)


def _responses(campaign_id) -> list[Response]:
    db.session.expire_all()
    return db.session.scalars(select(Response).where(Response.campaign_id == campaign_id)).all()


def _invitation(invitation_id) -> Invitation:
    db.session.expire_all()
    return db.session.get(Invitation, invitation_id)


COMPLETE = {"activity": "employed_full_time", "outcomes": ["new_job", "raise"], "attribution": "4",
            "employer": "ACME", "role": "Data analyst"}


# ----------------------------------------------------------------------- links that do not work

@pytest.mark.parametrize("token", [
    "not-a-token",
    "A" * 43,  # the right shape, nobody's
    "A" * 101,  # longer than any token
    "A" * 5000,
])
def test_unknown_or_overlong_token_is_a_clear_404(client, token):
    page = client.get(f"/s/{token}", headers=EN)
    assert page.status_code == 404
    body = page.get_data(as_text=True)
    assert "This link does not work" in body
    assert "Copy the whole link from your email" in body
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"


def test_a_real_token_made_longer_is_refused(client, invited):
    _campaign, _invitation, path = invited()
    assert client.get(path + "A" * 80, headers=EN).status_code == 404
    assert client.get(path[:-1], headers=EN).status_code == 404


def test_unknown_token_page_in_french_by_default(client):
    page = client.get("/s/nope", headers={"Accept-Language": "fr"})
    assert page.status_code == 404
    assert '<html lang="fr">' in page.get_data(as_text=True)


# --------------------------------------------------------------------------- opening

def test_the_page_is_in_the_respondents_language(client, invited, alumni):
    _campaign, _invitation, path = invited(locale="fr")
    body = client.get(path, headers=EN).get_data(as_text=True)  # the browser says English
    assert '<html lang="fr">' in body
    assert str(escape(alumni.title("fr"))) in body


def test_opening_twice_keeps_the_first_opening(client, invited):
    campaign, invitation, path = invited()
    assert invitation.opened_at is None
    _open(client, path)
    first = _invitation(invitation.id)
    assert first.opened_at is not None and first.status == "opened"
    opened_at = first.opened_at
    _open(client, path)
    again = _invitation(invitation.id)
    assert again.opened_at == opened_at
    assert again.status == "opened"
    assert campaign_services.campaign_counts(campaign.id)["opened"] == 1
    assert _responses(campaign.id) == []  # opening is not answering


def test_opening_the_page_reads_the_invitation_once(client, invited):
    """The invitation, its person, campaign and questionnaire come in one SELECT, and the
    page is rendered from them: none of them is read again, at the first opening (which
    writes its time) or a later one."""
    _campaign, _invitation, path = invited()
    for _opening in range(2):
        with counted_queries() as statements:
            _open(client, path)
        reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "invitations" in s]
        assert len(reads) == 1, reads


# --------------------------------------------------------------------------- closed

@pytest.mark.parametrize("closed_by", ["time", "status"])
def test_closed_campaign_is_410_and_saves_nothing(client, invited, closed_by):
    campaign, invitation, path = invited()
    token = _csrf(_open(client, path))
    db.session.execute(update(Campaign).where(Campaign.id == campaign.id)
                       .values(closes_at=now() - timedelta(seconds=1)))
    db.session.commit()
    if closed_by == "status":
        assert campaign_services.close_due_campaigns() == 1
        db.session.commit()

    page = client.get(path, headers=EN)
    assert page.status_code == 410
    assert "This survey is closed" in page.get_data(as_text=True)
    for action in ("save", "submit"):
        posted = client.post(path, data={**COMPLETE, "csrf_token": token, action: "1"}, headers=EN)
        assert posted.status_code == 410
        assert "This survey is closed" in posted.get_data(as_text=True)
    assert _responses(campaign.id) == []
    stored = _invitation(invitation.id)
    assert (stored.started_at, stored.completed_at) == (None, None)


def test_a_draft_saved_before_closing_is_left_as_it_was(client, invited):
    campaign, invitation, path = invited()
    token = _csrf(_open(client, path))
    assert client.post(path, data={"csrf_token": token, "activity": "seeking", "save": "1"}).status_code == 303
    db.session.execute(update(Campaign).where(Campaign.id == campaign.id)
                       .values(closes_at=now() - timedelta(seconds=1)))
    db.session.commit()
    assert client.post(path, data={**COMPLETE, "csrf_token": token, "submit": "1"}).status_code == 410
    [draft] = _responses(campaign.id)
    assert draft.answers == {"activity": "seeking"}
    assert draft.submitted_at is None
    assert _invitation(invitation.id).completed_at is None


# --------------------------------------------------------------------------- save, resume

def test_save_then_resume_shows_the_saved_answers(client, invited):
    campaign, invitation, path = invited()
    token = _csrf(_open(client, path))
    saved = client.post(path, data={"csrf_token": token, "activity": "employed_full_time",
                                    "outcomes": ["new_job"], "employer": "ACME", "save": "1"}, headers=EN)
    # Post/redirect/get: the browser lands on a plain GET, so reloading never re-posts.
    assert saved.status_code == 303
    assert saved.headers["Location"].endswith(path + "?saved=1")
    assert "Your answers are saved" in client.get(saved.headers["Location"], headers=EN).get_data(as_text=True)
    [draft] = _responses(campaign.id)
    assert draft.answers == {"activity": "employed_full_time", "outcomes": ["new_job"], "employer": "ACME"}
    assert draft.submitted_at is None
    stored = _invitation(invitation.id)
    assert stored.status == "started" and stored.started_at is not None and stored.completed_at is None

    # Another day, another browser (a fresh session): the link alone brings the answers back.
    client.delete_cookie("session")
    resumed = _open(client, path)
    assert re.search(r'<input[^>]*checked[^>]*value="employed_full_time"|'
                     r'<input[^>]*value="employed_full_time"[^>]*checked', resumed)
    assert re.search(r'<input[^>]*value="new_job"[^>]*checked|<input[^>]*checked[^>]*value="new_job"', resumed)
    assert not re.search(r'<input[^>]*value="raise"[^>]*checked', resumed)
    assert re.search(r'<input[^>]*id="employer"[^>]*value="ACME"|<input[^>]*value="ACME"[^>]*id="employer"',
                     resumed)
    counts = campaign_services.campaign_counts(campaign.id)
    assert (counts["opened"], counts["started"], counts["completed"]) == (1, 1, 0)


def test_saving_again_replaces_the_draft(client, invited):
    campaign, _invitation, path = invited()
    token = _csrf(_open(client, path))
    client.post(path, data={"csrf_token": token, "activity": "seeking", "save": "1"})
    first = _responses(campaign.id)[0]
    client.post(path, data={"csrf_token": token, "activity": "volunteering", "save": "1"})
    [draft] = _responses(campaign.id)
    assert draft.id == first.id and draft.started_at == first.started_at
    assert draft.answers == {"activity": "volunteering"}


# --------------------------------------------------------------------------- submit

def test_required_answer_missing_is_422_with_a_summary_linking_to_the_field(client, invited):
    campaign, invitation, path = invited()
    token = _csrf(_open(client, path))
    page = client.post(path, data={"csrf_token": token, "outcomes": ["new_job"], "employer": "ACME",
                                   "submit": "1"}, headers=EN)
    assert page.status_code == 422
    body = page.get_data(as_text=True)
    summary = re.search(r'<div class="error-summary"[^>]*>(.*?)</div>', body, re.S)
    assert summary, "no error summary"
    targets = re.findall(r'href="#([^"]*)"', summary.group(1))
    assert targets == ["activity"]
    assert "Please answer this question." in summary.group(1)
    for target in targets:  # each link leads to something on the page
        assert re.search(rf'\sid="{re.escape(target)}"', body), f"nothing has id={target!r}"
    # What was typed is still there, and nothing was stored.
    assert re.search(r'value="ACME"', body)
    assert _responses(campaign.id) == []
    stored = _invitation(invitation.id)
    assert stored.completed_at is None and stored.status == "opened"


def test_a_hidden_questions_answer_is_discarded(client, invited):
    campaign, _invitation, path = invited()
    token = _csrf(_open(client, path))
    # "None of these": attribution, employer… are hidden; a crafted POST sends them anyway.
    done = client.post(path, data={"csrf_token": token, "activity": "seeking", "outcomes": ["none"],
                                   "attribution": "5", "employer": "ACME", "salary_change": "20",
                                   "comment": "thanks", "submit": "1"})
    assert done.status_code == 200, done.get_data(as_text=True)
    [response] = _responses(campaign.id)
    assert response.answers == {"activity": "seeking", "outcomes": ["none"], "comment": "thanks"}


def test_a_hidden_questions_answer_is_not_saved_either(client, invited):
    campaign, _invitation, path = invited()
    token = _csrf(_open(client, path))
    client.post(path, data={"csrf_token": token, "outcomes": ["business_created"], "employer": "ACME",
                            "business_name": "Mine", "save": "1"})
    [draft] = _responses(campaign.id)
    assert draft.answers == {"outcomes": ["business_created"], "business_name": "Mine"}


def test_submit_once_then_409_and_answers_unchanged(client, invited):
    campaign, invitation, path = invited()
    token = _csrf(_open(client, path))
    done = client.post(path, data={**COMPLETE, "csrf_token": token, "submit": "1"}, headers=EN)
    assert done.status_code == 200
    assert "Your answers have been recorded" in done.get_data(as_text=True)
    [response] = _responses(campaign.id)
    submitted_at = response.submitted_at
    assert response.answers["employer"] == "ACME" and submitted_at is not None

    again = client.post(path, data={**COMPLETE, "employer": "Other", "csrf_token": token, "submit": "1"},
                        headers=EN)
    assert again.status_code == 409
    assert "already answered" in again.get_data(as_text=True)
    saving = client.post(path, data={**COMPLETE, "employer": "Other", "csrf_token": token, "save": "1"})
    assert saving.status_code == 409
    assert client.get(path).status_code == 409
    [response] = _responses(campaign.id)
    assert response.answers["employer"] == "ACME"
    assert response.submitted_at == submitted_at
    assert _invitation(invitation.id).status == "completed"
    assert campaign_services.campaign_counts(campaign.id)["completed"] == 1


def test_a_link_from_one_campaign_answers_that_campaign_only(client, alumni, create_stakeholder, monkeypatch):
    """One person invited by two campaigns: each link is its own (never derived from the
    person), and answering through one leaves the other campaign's link as it was."""
    person = create_stakeholder(locale="en")
    first = started_campaign(alumni, monkeypatch, name="Alumni 2025")
    second = started_campaign(alumni, monkeypatch, name="Alumni 2026")
    [mine] = invitations(first.id)
    [other] = invitations(second.id)
    assert mine.stakeholder_id == other.stakeholder_id == person.id
    path, other_path = link_path(mine), link_path(other)
    assert path != other_path and mine.token_hash != other.token_hash

    token = _csrf(_open(client, path))
    assert client.post(path, data={**COMPLETE, "csrf_token": token, "submit": "1"}, headers=EN).status_code == 200
    assert [r.campaign_id for r in _responses(first.id)] == [first.id] and _responses(second.id) == []
    assert _invitation(other.id).completed_at is None
    assert 'name="submit"' in _open(client, other_path)  # still a survey to answer (a used link is 409)


@pytest.mark.parametrize("token", [None, "", "forged"])
def test_post_without_a_valid_csrf_token_is_400_and_stores_nothing(client, invited, token):
    campaign, invitation, path = invited()
    _open(client, path)
    data = {**COMPLETE, "submit": "1"}
    if token is not None:
        data["csrf_token"] = token
    refused = client.post(path, data=data, headers=EN)
    assert refused.status_code == 400
    body = refused.get_data(as_text=True)
    assert "This page had expired, so nothing was saved." in body
    assert _responses(campaign.id) == []
    stored = _invitation(invitation.id)
    assert (stored.status, stored.started_at, stored.completed_at) == ("opened", None, None)
    # The answers are still on the page (a phone that dropped its session cookie loses nothing),
    # with a token that works: sent again, they are recorded.
    assert 'value="ACME"' in body and 'value="Data analyst"' in body
    assert "Please answer this question" not in body and "CSRF" not in body
    again = client.post(path, data={**data, "csrf_token": _csrf(body)}, headers=EN)
    assert again.status_code == 200
    assert _invitation(invitation.id).completed_at is not None


def test_an_expired_form_elsewhere_is_still_a_plain_refusal(client, create_user):
    """Staff forms say the form expired; only the survey, whose answers would be lost, comes back filled."""
    refused = client.post("/login", data={"email": "x@example.org", "password": "x"}, headers=EN)
    assert refused.status_code == 400 and "Form expired" in refused.get_data(as_text=True)


def test_anonymous_campaign_keeps_no_link_between_answer_and_person(client, invited):
    campaign, invitation, path = invited(privacy="anonymous")
    token = _csrf(_open(client, path))
    assert client.post(path, data={"csrf_token": token, "activity": "seeking", "save": "1"}).status_code == 303
    [draft] = _responses(campaign.id)
    assert draft.invitation_id == invitation.id  # a draft must be found again by its link

    before = datetime.now(timezone.utc)
    done = client.post(path, data={**COMPLETE, "csrf_token": token, "submit": "1"})
    assert done.status_code == 200, done.get_data(as_text=True)
    [response] = _responses(campaign.id)
    assert response.answers["employer"] == "ACME"
    assert response.invitation_id is None
    assert response.started_at is None
    midnights = {datetime.combine(moment.date(), time(0), tzinfo=timezone.utc)
                 for moment in (before, datetime.now(timezone.utc))}
    assert response.submitted_at in midnights  # the day only, at midnight UTC
    stored = _invitation(invitation.id)
    assert stored.status == "completed" and stored.completed_at is not None
    assert campaign_services.campaign_counts(campaign.id)["completed"] == 1
    assert client.post(path, data={**COMPLETE, "csrf_token": token, "submit": "1"}).status_code == 409
    assert len(_responses(campaign.id)) == 1


def test_anonymous_submit_without_a_draft(client, invited):
    campaign, invitation, path = invited(privacy="anonymous")
    token = _csrf(_open(client, path))
    assert client.post(path, data={**COMPLETE, "csrf_token": token, "submit": "1"}).status_code == 200
    [response] = _responses(campaign.id)
    assert (response.invitation_id, response.started_at) == (None, None)
    assert response.submitted_at.time() == time(0)
    assert _invitation(invitation.id).status == "completed"


def test_confidential_campaign_keeps_the_link(client, invited):
    campaign, invitation, path = invited(privacy="confidential")
    token = _csrf(_open(client, path))
    assert client.post(path, data={**COMPLETE, "csrf_token": token, "submit": "1"}).status_code == 200
    [response] = _responses(campaign.id)
    assert response.invitation_id == invitation.id and response.started_at is not None


# --------------------------------------------------------------------------- escaping

def test_html_typed_in_an_answer_is_shown_escaped(client, invited):
    campaign, _invitation, path = invited()
    token = _csrf(_open(client, path))
    evil = '<script>alert("x")</script><b onmouseover=alert(1)>'
    saved = client.post(path, data={"csrf_token": token, "activity": "employed_full_time",
                                    "outcomes": ["new_job"], "employer": evil, "comment": evil, "save": "1"},
                        follow_redirects=True)
    assert saved.status_code == 200
    assert _responses(campaign.id)[0].answers["employer"] == evil  # stored as typed
    for body in (saved.get_data(as_text=True), _open(client, path)):
        assert "<script>alert" not in body
        assert "<b onmouseover" not in body
        assert "&lt;script&gt;alert(" in body
    # Shown back after a refused submit, too.
    refused = client.post(path, data={"csrf_token": token, "employer": evil, "outcomes": ["new_job"],
                                      "submit": "1"})
    assert refused.status_code == 422
    assert "<script>alert" not in refused.get_data(as_text=True)


def test_none_of_these_cannot_be_ticked_with_an_outcome(client, invited):
    """"None of these" with "new job" would make a claim its author also denied."""
    campaign, invitation, path = invited()
    token = _csrf(_open(client, path))
    page = client.post(path, data={"csrf_token": token, "activity": "seeking", "outcomes": ["none", "new_job"],
                                   "attribution": "4", "submit": "1"}, headers=EN)
    assert page.status_code == 422
    assert "“None of these” cannot be ticked with other answers." in page.get_data(as_text=True)
    assert _responses(campaign.id) == [] and _invitation(invitation.id).completed_at is None


def test_the_first_button_saves_so_enter_in_a_text_box_never_submits(client, invited):
    """Enter in a text box (a phone's "Go") presses the form's first submit button."""
    _campaign, _invitation, path = invited()
    body = re.search(r'<form[^>]*class="survey".*?</form>', _open(client, path), re.S).group(0)
    buttons = re.findall(r'<(?:input|button)[^>]*type="submit"[^>]*name="(\w+)"|'
                         r'<(?:input|button)[^>]*name="(\w+)"[^>]*type="submit"', body)
    assert [a or b for a, b in buttons] == ["save", "submit"]


def test_a_long_answer_of_the_most_characters_the_browser_allows_is_kept(client, invited):
    """The browser counts a line break as one character and sends it as two (CRLF)."""
    campaign, _invitation, path = invited()
    token = _csrf(_open(client, path))
    comment = ("x" * 99 + "\r\n") * 50  # 5,000 characters as the browser counts them
    page = client.post(path, data={"csrf_token": token, "activity": "seeking", "outcomes": ["none"],
                                   "comment": comment.strip(), "submit": "1"}, headers=EN)
    assert page.status_code == 200, page.get_data(as_text=True)
    [response] = _responses(campaign.id)
    assert response.answers["comment"] == comment.replace("\r\n", "\n").strip()


def test_once_answered_no_reminder_is_due_nor_announced(client, invited):
    campaign, invitation, path = invited()
    db.session.execute(update(Invitation).where(Invitation.id == invitation.id)
                       .values(next_reminder_at=datetime.now(timezone.utc) + timedelta(days=3)))
    db.session.commit()
    token = _csrf(_open(client, path))
    done = client.post(path, data={"csrf_token": token, "activity": "seeking", "outcomes": ["none"], "submit": "1"})
    assert done.status_code == 200
    assert _invitation(invitation.id).next_reminder_at is None


def test_the_page_of_a_request_too_large_is_in_the_respondents_language(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 1024)
    page = client.post("/s/whatever", data={"x": "0" * 4096}, headers={"Accept-Language": "fr"})
    assert page.status_code == 413
    body = page.get_data(as_text=True)
    assert "Request Entity Too Large" not in body and "Trop volumineux" in body


def test_the_error_summary_names_each_question_and_the_title_says_error(client, invited):
    """Two links both reading "Merci de répondre à cette question." said not which question."""
    _campaign, _invitation, path = invited(locale="fr")
    token = _csrf(_open(client, path))
    page = client.post(path, data={"csrf_token": token, "submit": "1"}, headers={"Accept-Language": "fr"})
    assert page.status_code == 422
    body = page.get_data(as_text=True)
    summary = re.search(r'<div class="error-summary"[^>]*>(.*?)</div>', body, re.S).group(1)
    links = [re.sub(r"\s+", " ", text).strip() for text in re.findall(r"<a [^>]*>(.*?)</a>", summary, re.S)]
    assert len(links) == 2 and len(set(links)) == 2
    assert all(text.endswith(": Merci de répondre à cette question.") for text in links)
    assert re.search(r"<title>Erreur : ", body) or re.search(r"<title>Erreur: ", body)


def test_what_a_scale_s_ends_mean_is_read_with_the_question(client, invited):
    """"1 = Not at all · 5 = Entirely": without it a screen reader says only "1" … "5"."""
    _campaign, _invitation, path = invited()
    body = _open(client, path)
    fieldset = re.search(r'<fieldset id="attribution"[^>]*aria-describedby="([^"]+)"', body)
    assert fieldset and "attribution-ends" in fieldset.group(1).split()
    assert re.search(r'<p class="hint scale-ends" id="attribution-ends">1 = ', body)


@pytest.mark.parametrize("typed, link, kept_as_words", [
    ("linkedin.com/in/ada-lovelace", "https://linkedin.com/in/ada-lovelace", None),
    ("www.example.org/contrat.pdf", "https://www.example.org/contrat.pdf", None),
    ("Ask my manager, Ms Byron", None, "Ask my manager, Ms Byron"),
])
def test_a_link_to_evidence_typed_any_way_never_costs_the_answers(client, invited, typed, link, kept_as_words):
    """The question is free text: "linkedin.com/in/…" without https:// made the whole submit a
    "Not possible" page, and every answer on it was lost."""
    from survey.claims.models import Claim, Evidence

    campaign, invitation, path = invited()
    token = _csrf(_open(client, path))
    done = client.post(path, data={"csrf_token": token, **COMPLETE, "evidence_link": typed, "submit": "1"})
    assert done.status_code == 200, done.get_data(as_text=True)
    assert _invitation(invitation.id).completed_at is not None
    claims = db.session.scalars(select(Claim).where(Claim.campaign_id == campaign.id)).all()
    assert len(claims) == 2  # new job, raise
    for claim in claims:
        links = [e.url for e in db.session.scalars(select(Evidence).where(Evidence.claim_id == claim.id))]
        assert links == ([link] if link else [])
        assert claim.details.get("evidence_link") == kept_as_words


def test_an_optional_consent_box_says_it_is_optional(client, invited):
    """The page says optional questions are marked: an unmarked box reads as one to tick."""
    _campaign, _invitation, path = invited()
    body = _open(client, path)
    label = re.search(r'<label for="consent_contact">(.*?)</label>', body, re.S).group(1)
    assert "(optional)" in label


@pytest.mark.parametrize("privacy", ["anonymous", "confidential"])
def test_a_private_campaign_asks_for_no_evidence(client, invited, privacy):
    """No claim comes of a private answer, and a payslip or a profile link names its giver:
    an anonymous survey asking for one would break its own promise."""
    campaign, _invitation, path = invited(privacy=privacy)
    body = _open(client, path)
    for question in ("evidence_link", "evidence_file", "consent_contact"):
        assert f'id="q-{question}"' not in body
    assert 'id="q-employer"' in body  # the outcome's other questions stay
    sent = {**COMPLETE, "evidence_link": "https://profiles.example/in/ada", "consent_contact": "y",
            "csrf_token": _csrf(body), "submit": "1"}
    assert client.post(path, data=sent).status_code == 200
    [response] = _responses(campaign.id)
    assert not {"evidence_link", "consent_contact"} & set(response.answers)


def test_an_identified_campaign_asks_for_evidence(client, invited):
    _campaign, _invitation, path = invited()
    body = _open(client, path)
    assert all(f'id="q-{question}"' in body for question in ("evidence_link", "evidence_file", "consent_contact"))
