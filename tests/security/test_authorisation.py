"""The policy table and its object rules, asked directly (the URL walk checks that every
view asks them)."""
from __future__ import annotations

import pytest
from flask_login import AnonymousUserMixin

from survey.core.authorisation import API, POLICY, UnknownAction, allowed, can, role_of
from survey.core.types import utcnow
from survey.extensions import db


def test_anonymous_and_inactive_users_may_do_nothing(world):
    anonymous = AnonymousUserMixin()
    admin = world["users"]["admin"]
    assert can(admin, "write", "campaign")
    admin.active = False
    db.session.commit()
    for action, kind in POLICY:
        assert not can(anonymous, action, kind)
        assert not can(admin, action, kind)


def test_a_revoked_key_has_no_scope(world):
    from sqlalchemy import select

    from survey.accounts.models import ApiKey

    key = db.session.scalar(select(ApiKey))
    assert role_of(key) == API and can(key, "write", "campaign") and not can(key, "view", "claim")
    key.revoked_at = utcnow()
    assert role_of(key) is None and not can(key, "read", "campaign")


def test_claims_by_role_and_assignment(world):
    users, mine, theirs = world["users"], world["mine"], world["theirs"]
    table = {who: (can(users[who], "view", mine), can(users[who], "view", theirs),
                   can(users[who], "vote", mine), can(users[who], "decide", mine))
             for who in ("admin", "chair", "auditor", "member", "stranger")}
    assert table == {
        "admin": (False, False, False, False),
        "chair": (True, True, False, True),
        "auditor": (True, True, False, False),
        "member": (True, False, True, False),
        "stranger": (False, True, False, False),
    }
    evidence = world["evidence"]
    assert can(users["member"], "download", evidence["mine"]) and not can(users["member"], "download", evidence["theirs"])


def test_a_member_who_declared_a_conflict_no_longer_reads_or_votes(world):
    from survey.claims import services

    member, mine = world["users"]["member"], world["mine"]
    review = next(r for r in mine.reviews if r.reviewer_id == member.id and r.active)
    services.declare_conflict(review, "my cousin", reviewer=member)
    db.session.commit()
    assert not can(member, "view", mine) and not can(member, "vote", mine)


def test_a_mistyped_action_fails_loudly_not_silently():
    with pytest.raises(UnknownAction):
        can(None, "veiw", "claim")
    with pytest.raises(UnknownAction):
        allowed("publish", "claims")


@pytest.mark.parametrize("role, links", [
    ("admin", {"Campaigns", "Questionnaires", "Audiences", "Caught emails", "Reports"}),
    ("chair", {"Claims", "Reports", "Audit trail"}),
    ("auditor", {"Claims", "Reports", "Audit trail"}),
    ("committee", {"Review queue"}),
])
def test_the_menu_offers_what_the_table_allows_and_each_entry_opens(create_user, browser, role, links):
    import re

    client = browser(create_user(role=role))
    page = client.get("/account/password").get_data(as_text=True)
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', page, re.S).group(1)
    entries = dict((label, href) for href, label in re.findall(r'<a href="([^"]+)">([^<]+)</a>', nav))
    assert set(entries) == links | {"Change password"}
    for label, href in entries.items():
        assert client.get(href, follow_redirects=True).status_code == 200, label
