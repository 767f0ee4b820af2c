"""Authorisation, walked over every committee, audit and evidence URL: each role and an
anonymous visitor, with ids and tokens that are not theirs. Nobody outside the rule
gets data: a login redirect, 403 or 404, and nothing changes."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from survey.audit.models import AuditEvent
from survey.claims.models import Claim, Evidence
from survey.extensions import db
from tests.committee.conftest import token

SECRET_WORD = "Zanzibar-Unique-Employer"
PREFIXES = ("/committee", "/audit", "/e/")


def _rules(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(PREFIXES) and not rule.endpoint.endswith(".static"):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method


def _url(rule, claim_id, evidence_id, claim_token):
    values = {"claim_id": claim_id, "evidence_id": evidence_id, "token": claim_token}
    return rule.build({name: values[name] for name in rule.arguments}, append_unknown=False)[1]


@pytest.fixture
def world(create_user, make_claims, committee, browser):
    """Two claims: 'mine' reviewed by the committee fixture's two members; 'theirs' reviewed
    by two other members. The secret word appears only in 'theirs'."""
    [mine] = make_claims(with_file=True)
    outsiders = [create_user(role="committee"), create_user(role="committee")]
    for member in committee:  # the first two members are busy: 'theirs' goes to the others
        member.active = False
    db.session.commit()
    [theirs] = make_claims({"activity": "employed_full_time", "outcomes": ["promotion"],
                            "employer": SECRET_WORD, "evidence_link": f"https://example.org/{SECRET_WORD}"},
                           with_file=True)
    for member in committee:
        member.active = True
    db.session.commit()
    assert {r.reviewer_id for r in theirs.reviews} == {u.id for u in outsiders}
    evidence = db.session.scalars(select(Evidence).where(Evidence.claim_id == theirs.id)).first()
    return {"mine": mine, "theirs": theirs, "evidence": evidence, "member": committee[0]}


def _state():
    db.session.expire_all()
    return (db.session.execute(select(Claim.id, Claim.state).order_by(Claim.id)).all(),
            db.session.scalar(select(func.count()).select_from(AuditEvent)))


@pytest.mark.parametrize("role", [None, "admin", "committee"])
def test_no_one_outside_the_rule_reaches_anothers_claim_or_evidence(app, world, create_user, browser, role):
    user = world["member"] if role == "committee" else (create_user(role=role) if role else None)
    client = browser(user)
    csrf = token(client, "/login") if user is None else token(client, "/")
    before = _state()
    theirs = world["theirs"]
    for rule, method in _rules(app):
        if rule.endpoint.startswith("evidence."):
            continue  # the respondent's pages: checked with wrong tokens below
        url = _url(rule, theirs.id, world["evidence"].id, "x")
        response = client.open(url, method=method, data={"csrf_token": csrf})
        body = response.get_data(as_text=True)
        allowed_anyway = role == "committee" and rule.endpoint in ("committee.queue", "committee.claims",
                                                                    "committee.bulk_decide")
        if not allowed_anyway:
            assert response.status_code in (302, 403, 404), (role, method, url, response.status_code)
            if response.status_code == 302:
                assert response.headers["Location"].startswith("/login"), (role, url)
        assert SECRET_WORD not in body, (role, method, url)
    assert _state() == before


def test_wrong_or_other_tokens_on_the_respondent_pages_change_nothing(app, world, browser):
    from survey.claims.services import claim_token

    client = browser(None)
    csrf = token(client, "/login")
    before = _state()
    wrong = [claim_token("not-a-nonce"), "x" * 43, "../../etc/passwd", world["theirs"].token_hash]
    for rule, method in _rules(app):
        if not rule.endpoint.startswith("evidence."):
            continue
        for bad in wrong:
            response = client.open(_url(rule, 0, 0, bad), method=method,
                                   data={"csrf_token": csrf, "url": "https://example.org", "contact": "x"})
            assert response.status_code == 404, (method, rule.rule, bad)
            assert SECRET_WORD not in response.get_data(as_text=True)
    assert _state() == before


@pytest.mark.parametrize("role", ["chair", "auditor"])
def test_chair_and_auditor_read_every_claim(world, create_user, browser, role):
    client = browser(create_user(role=role))
    page = client.get(f"/committee/claims/{world['theirs'].id}")
    assert page.status_code == 200 and SECRET_WORD in page.get_data(as_text=True)
    assert client.get(f"/committee/evidence/{world['evidence'].id}").status_code == 200
