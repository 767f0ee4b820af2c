"""The security tests' world: every kind of object the URL rules take an id or a token
of, made the real way, twice where ownership matters (a claim reviewed by one pair of
committee members and one reviewed by another pair, each with an evidence file)."""
from __future__ import annotations

import mailbox
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from survey.accounts.services import create_api_key
from survey.campaigns.models import Invitation
from survey.campaigns.services import invitation_token, unsubscribe_token
from survey.claims.models import Evidence
from survey.claims.services import claim_token
from survey.extensions import db
from survey.reports.document import Selection
from survey.reports.publishing import publish
from survey.reports.sampling import draw_sample
from tests.campaigns.helpers import make_campaign
from tests.committee.conftest import committee, make_claims  # noqa: F401  (fixtures)
from tests.reports.conftest import cohort  # noqa: F401  (fixture)

#: only in the claim that the first committee pair may not read
SECRET_WORD = "Zanzibar-Unique-Employer"


@pytest.fixture
def world(app, create_user, make_claims, committee, cohort, alumni, tmp_path, monkeypatch):  # noqa: F811
    users = {"admin": create_user(role="admin"), "chair": create_user(role="chair"),
             "auditor": create_user(role="auditor"), "member": committee[0]}
    [mine] = make_claims(with_file=True)
    strangers = [create_user(role="committee"), create_user(role="committee")]
    for member in committee:  # busy elsewhere: 'theirs' goes to the two strangers
        member.active = False
    db.session.commit()
    [theirs] = make_claims({"activity": "employed_full_time", "outcomes": ["promotion"], "attribution": 3,
                            "employer": SECRET_WORD, "evidence_link": f"https://example.org/{SECRET_WORD}"},
                           with_file=True)
    for member in committee:
        member.active = True
    db.session.commit()
    assert {r.reviewer_id for r in theirs.reviews} == {u.id for u in strangers}
    users["stranger"] = strangers[0]  # a committee member not assigned to 'mine'

    snapshot = publish(users["chair"], Selection(campaign_id=cohort.id), "Impact report 2026")
    db.session.flush()
    sample = draw_sample(users["auditor"], snapshot, 2)
    draft = make_campaign(alumni, name="Draft campaign")
    invitation = db.session.scalar(select(Invitation).where(Invitation.campaign_id == mine.campaign_id))
    unanswered = db.session.scalar(select(Invitation).where(Invitation.campaign_id == cohort.id,
                                                            Invitation.completed_at.is_(None)).order_by(Invitation.id))
    _key, api_key = create_api_key("walk")
    db.session.commit()

    caught = mailbox.Maildir(tmp_path / "caught", create=True)
    message = EmailMessage()
    message["To"], message["Subject"] = "someone@example.org", "Your survey"
    message.set_content("Hello")
    mail_key = caught.add(message)
    monkeypatch.setitem(app.config, "MAIL_CATCHER_DIR", str(tmp_path / "caught"))

    def evidence_of(claim):
        return db.session.scalars(select(Evidence).where(Evidence.claim_id == claim.id, Evidence.kind == "file")).first()

    return {
        "users": users, "mine": mine, "theirs": theirs,
        "evidence": {"mine": evidence_of(mine), "theirs": evidence_of(theirs)},
        "snapshot": snapshot, "sample": sample, "draft": draft, "cohort": cohort, "questionnaire": alumni,
        "api_key": api_key, "mail_key": mail_key,
        "tokens": {"survey": invitation_token(invitation.token_nonce),
                   "optout": unsubscribe_token(invitation.token_nonce),
                   "evidence": claim_token(mine.token_nonce), "slug": snapshot.slug,
                   "open_survey": invitation_token(unanswered.token_nonce),
                   "open_optout": unsubscribe_token(unanswered.token_nonce)},
    }
