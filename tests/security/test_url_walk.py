"""Every URL rule of the app, as an anonymous visitor, as each role, as a committee member
who is not assigned to the object, and as an API key; with ids of objects that exist,
of objects that belong to someone else, and of none. Each gets exactly what the policy
table (survey.core.authorisation) says, nothing else; no 500 anywhere; a secret only in
another member's claim never shows; a rule added without an entry below fails."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from survey.accounts.models import ApiKey
from survey.campaigns.models import Campaign
from survey.claims.models import Claim, Review
from survey.core.authorisation import API, POLICY, can, kind_of
from survey.extensions import db
from survey.reports.models import ReportSnapshot
from tests.factories import token
from tests.security.conftest import SECRET_WORD

#: ids nothing has
MISSING = 987654

#: endpoint -> ("staff" | "api", action, kind) for the ones the policy table guards, per
#: method when they differ; ("public", why) for the ones anyone may open; ("self", why) for
#: one's own account (any logged-in user, no object of anyone else's).
EXPECT = {
    "accounts.home": ("public", "sends each visitor on: the login page or their home"),
    "accounts.login": ("public", "the login page"),
    "accounts.logout": ("public", "ends one's own session"),
    "accounts.change_password": ("self", "one's own password: any logged-in user"),
    "accounts.confirm_password": ("self", "one's own password: any logged-in user"),
    "set_language": ("public", "the page language, a cookie"),
    "static": ("public", "style sheets and scripts"),
    "committee.static": ("public", "style sheets and scripts"),
    "reports.static": ("public", "style sheets and scripts"),
    "api-docs.openapi_json": ("public", "the API's description"),
    "respond.survey": ("public", "a respondent's survey, by its secret token"),
    "evidence.show": ("public", "a claimant's evidence page, by its secret token"),
    "evidence.add_file": ("public", "a claimant's evidence page, by its secret token"),
    "evidence.add_link": ("public", "a claimant's evidence page, by its secret token"),
    "evidence.add_contact": ("public", "a claimant's evidence page, by its secret token"),
    "evidence.confirm_withdraw": ("public", "a claimant's evidence page, by its secret token"),
    "evidence.withdraw": ("public", "a claimant's evidence page, by its secret token"),
    "optout.one_click": ("public", "opting out, by the email's secret token (RFC 8058)"),
    "optout.confirm": ("public", "opting out, by the email's secret token"),
    "optout.choose": ("public", "opting out, by the email's secret token"),
    "optout.resubscribe": ("public", "opting out, by the email's secret token"),
    "reports.public": ("public", "a published report, by its slug"),
    "reports.public_json": ("public", "a published report, by its slug"),
    "reports.public_pdf": ("public", "a published report, by its slug"),
    "audiences.index": ("staff", "import", "audience"),
    "questionnaires.index": ("staff", "write", "questionnaire"),
    "questionnaires.save": ("staff", "write", "questionnaire"),
    "questionnaires.detail": ("staff", "read", "questionnaire"),
    "campaigns.index": ("staff", "read", "campaign"),
    "campaigns.new": ("staff", "write", "campaign"),
    "campaigns.edit": ("staff", "write", "campaign"),
    "campaigns.audience": ("staff", "write", "campaign"),
    "campaigns.timing": ("staff", "write", "campaign"),
    "campaigns.detail": ("staff", "read", "campaign"),
    "campaigns.progress": ("staff", "read", "campaign"),
    "campaigns.schedule": ("staff", "schedule", "campaign"),
    "campaigns.unschedule": ("staff", "schedule", "campaign"),
    "mail.caught": ("staff", "read", "mail"),
    "mail.show": ("staff", "read", "mail"),
    "audit.trail": ("staff", "read", "audit"),
    "committee.queue": ("staff", "queue", "claim"),
    "committee.claims": ("staff", "list", "claim"),
    "committee.bulk_decide": ("staff", "decide", "claim"),
    "committee.claim": ("staff", "view", "claim"),
    "committee.vote": ("staff", "vote", "claim"),
    "committee.declare_conflict": ("staff", "declare_conflict", "claim"),
    "committee.decide": ("staff", "decide", "claim"),
    "committee.revoke": ("staff", "revoke", "claim"),
    "committee.reassign": ("staff", "reassign", "claim"),
    "committee.evidence": ("staff", "download", "evidence"),
    "reports.index": ("staff", "read", "report"),
    "reports.pdf": ("staff", "export", "report"),
    "reports.csv": ("staff", "export", "report"),
    "reports.publish": ("staff", "publish", "report"),
    "reports.published": ("staff", "read", "report"),
    "reports.snapshot": ("staff", "read", "report"),
    "reports.trace": ("staff", "trace", "report"),
    "reports.draw": ("staff", "draw", "sample"),
    "reports.sample": ("staff", "read", "sample"),
    "reports.check": ("staff", "check", "sample"),
    "api_questionnaires.list_questionnaires": {"GET": ("api", "read", "questionnaire"),
                                               "POST": ("api", "write", "questionnaire")},
    "api_questionnaires.add_questionnaire_version": ("api", "write", "questionnaire"),
    "api_questionnaires.get_questionnaire": ("api", "read", "questionnaire"),
    "api_audiences.list_people": ("api", "read", "audience"),
    "api_audiences.import_audience_csv": ("api", "import", "audience"),
    "api_campaigns.list_campaigns": ("api", "read", "campaign"),
    "api_campaigns.create_campaign": ("api", "write", "campaign"),
    "api_campaigns.CampaignById": {"GET": ("api", "read", "campaign"), "PATCH": ("api", "write", "campaign")},
    "api_campaigns.campaign_funnel": ("api", "read", "campaign"),
    "api_campaigns.list_recipients": ("api", "read", "campaign"),
    "api_campaigns.schedule_campaign": ("api", "schedule", "campaign"),
    "api_campaigns.unschedule_campaign": ("api", "schedule", "campaign"),
    "api_reports.impact": ("api", "export", "report"),
}
#: the statuses of a request the actor may make (a form sent empty is a 400 or a 422…)
PERMITTED = {200, 201, 204, 302, 303, 400, 409, 415, 422}
#: walked last: they change the session itself
LAST = ("set_language", "accounts.logout")
ACTORS = (None, "admin", "chair", "auditor", "member", "stranger", API)


def _rules(app):
    rules = [(rule, method) for rule in app.url_map.iter_rules()
             for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return sorted(rules, key=lambda item: (item[0].endpoint in LAST, item[0].endpoint, item[1]))


def _spec(endpoint: str, method: str):
    spec = EXPECT[endpoint]
    return spec[method] if isinstance(spec, dict) else spec


def _view(app, endpoint, method):
    view = app.view_functions[endpoint]
    view_class = getattr(view, "view_class", None)
    return getattr(view_class, method.lower()) if view_class else view


def test_every_rule_is_in_the_table_and_guarded_as_it_says(app):
    endpoints = {rule.endpoint for rule, _ in _rules(app)}
    assert endpoints - set(EXPECT) == set(), "a new URL rule: say who may use it in EXPECT (and guard it)"
    assert set(EXPECT) - endpoints == set(), "EXPECT names a rule the app no longer has"
    for rule, method in _rules(app):
        spec = _spec(rule.endpoint, method)
        if spec[0] in ("public", "self"):
            assert getattr(_view(app, rule.endpoint, method), "permission", None) is None, rule.endpoint
            assert not rule.arguments - {"filename", "token", "slug"}, (rule.endpoint, "takes an id: guard it")
            continue
        assert (spec[1], spec[2]) in POLICY, spec
        assert getattr(_view(app, rule.endpoint, method), "permission", None) == spec[1:], (rule.endpoint, method)


def test_the_auditor_never_changes_anything_and_an_api_key_never_reaches_the_committee():
    auditor_may = {key for key, roles in POLICY.items() if "auditor" in roles}
    writes = {key for key in auditor_may if key[0] not in ("read", "list", "view", "queue", "download", "trace",
                                                            "export")}
    assert writes == {("draw", "sample"), ("check", "sample")}  # the auditor's own findings, nothing else
    assert not {kind for (_action, kind), roles in POLICY.items() if API in roles} & {"claim", "evidence", "audit",
                                                                                      "sample", "mail"}


def _candidates(world, rule):
    """(url values, the object the id stands for or None when it names nothing)."""
    names = set(rule.arguments)
    if "claim_id" in names:
        return [({"claim_id": world[w].id}, world[w]) for w in ("mine", "theirs")] + [({"claim_id": MISSING}, None)]
    if "evidence_id" in names:
        return ([({"evidence_id": world["evidence"][w].id}, world["evidence"][w]) for w in ("mine", "theirs")]
                + [({"evidence_id": MISSING}, None)])
    if "campaign_id" in names:
        return ([({"campaign_id": world[w].id}, world[w]) for w in ("draft", "cohort")]
                + [({"campaign_id": MISSING}, None)])
    if "questionnaire_id" in names:
        return [({"questionnaire_id": world["questionnaire"].id}, world["questionnaire"]),
                ({"questionnaire_id": MISSING}, None)]
    if "snapshot_id" in names:
        return [({"snapshot_id": world["snapshot"].id}, world["snapshot"]), ({"snapshot_id": MISSING}, None)]
    if "sample_id" in names:
        return [({"sample_id": world["sample"].id, "position": 1}, world["sample"]),
                ({"sample_id": MISSING, "position": 1}, None)] + (
            [({"sample_id": world["sample"].id, "position": 99}, None)] if "position" in names else [])
    if "key" in names:
        return [({"key": world["mail_key"]}, "mail"), ({"key": "nothing-here"}, None)]
    if "token" in names:
        tokens = world["tokens"]
        token_of = {"respond": tokens["survey"], "optout": tokens["optout"], "evidence": tokens["evidence"]}
        return [({"token": token_of[rule.endpoint.split(".")[0]]}, "public"), ({"token": "x" * 43}, None)]
    if "slug" in names:
        return [({"slug": world["tokens"]["slug"]}, "public"), ({"slug": "no-such-report"}, None)]
    if "filename" in names:
        return [({"filename": "does-not-exist.css"}, "public")]
    return [({}, "kind")]


def _state():
    db.session.expire_all()
    return (db.session.execute(select(Claim.id, Claim.state).order_by(Claim.id)).all(),
            db.session.scalar(select(func.count()).select_from(Review).where(Review.verdict.is_not(None))),
            db.session.execute(select(Campaign.id, Campaign.status).order_by(Campaign.id)).all(),
            db.session.scalar(select(func.count()).select_from(ReportSnapshot)))


@pytest.mark.parametrize("actor", ACTORS)
def test_every_url_as_every_actor(app, world, browser, actor):
    user = world["users"].get(actor) if actor not in (None, API) else None
    client = browser(user)
    csrf = token(client, "/login") if user is None else token(client, "/")
    if actor == API:
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {world['api_key']}"
        who = db.session.scalar(select(ApiKey))
    else:
        who = user
    for rule, method in _rules(app):
        spec = _spec(rule.endpoint, method)
        for values, obj in _candidates(world, rule):
            url = rule.build(values, append_unknown=False)[1]
            if rule.endpoint in ("reports.pdf", "reports.csv", "api_reports.impact"):
                url += f"?campaign={world['cohort'].id}"
            expected = _expected(spec, actor, who, obj)  # before the request: it may change who may
            before = _state()
            if method == "GET":
                response = client.get(url)
            elif rule.endpoint.startswith("api"):
                response = client.open(url, method=method, json={})
            else:
                response = client.open(url, method=method, data={
                    "csrf_token": csrf, "size": 1, "check1-verdict": "confirmed", "title": "Walked",
                    "campaign": world["cohort"].id})
            status, body = response.status_code, response.get_data().decode("utf-8", "replace")
            location = response.headers.get("Location", "")
            where = f"{method} {url} as {actor}: {status}, expected {expected}"
            assert status < 500, where
            if expected == "public":
                assert status not in (401, 403), where
            elif expected == "login":
                assert status == 302 and location.startswith("/login"), where
            elif expected == "permitted":
                assert status in PERMITTED, where
                assert not (status in (302, 303) and location.startswith("/login")), where
            else:
                assert status == expected, where
            if expected != "permitted" or actor in ("member", "admin", None):
                assert SECRET_WORD not in body, where
            if expected not in ("permitted", "public") or (expected == "permitted" and actor == "auditor"):
                assert _state() == before, f"{where}: something changed"


def _expected(spec, actor, who, obj):
    """What the policy table says this actor gets: "public", "login", "permitted" or a status."""
    if spec[0] == "public":
        return 404 if obj is None else "public"
    if spec[0] == "self":
        return "login" if who is None or actor == API else "permitted"
    if spec[0] == "api" and actor != API:
        return 401
    if spec[0] == "staff" and (who is None or actor == API):
        return "login"
    action, kind = spec[1], spec[2]
    if not can(who, action, kind):
        return 403
    if obj is None:
        return 404
    if not isinstance(obj, str) and kind_of(obj) == kind and not can(who, action, obj):
        return 404
    return "permitted"


@pytest.mark.parametrize("actor", ["member", "stranger"])
def test_a_member_reads_and_votes_only_on_their_own_claims(world, browser, actor):
    """The object rule, spelt out: what each of two members sees of two claims."""
    client = browser(world["users"][actor])
    own, other = ("mine", "theirs") if actor == "member" else ("theirs", "mine")
    assert client.get(f"/committee/claims/{world[own].id}").status_code == 200
    assert client.get(f"/committee/claims/{world[other].id}").status_code == 404
    assert client.get(f"/committee/evidence/{world['evidence'][own].id}").status_code == 200
    assert client.get(f"/committee/evidence/{world['evidence'][other].id}").status_code == 404
    csrf = token(client, "/committee/")
    refused = client.post(f"/committee/claims/{world[other].id}/vote",
                          data={"csrf_token": csrf, "vote-verdict": "approve", "vote-comment": "mine now"})
    assert refused.status_code == 404
    db.session.expire_all()
    assert all(review.verdict is None for review in db.session.get(Claim, world[other].id).reviews)


def test_a_revoked_api_key_is_refused(world, client):
    from survey.core.types import utcnow

    key = db.session.scalar(select(ApiKey))
    key.revoked_at = utcnow()
    db.session.commit()
    response = client.get("/api/v1/campaigns", headers={"Authorization": f"Bearer {world['api_key']}"})
    assert response.status_code == 401
