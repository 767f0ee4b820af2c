"""What admins do to campaigns and audiences is in the audit trail, with who did it."""
from __future__ import annotations

from sqlalchemy import select

from survey.audiences.services import import_audience
from survey.audit.chain import verify
from survey.audit.models import AuditEvent
from survey.campaigns import services
from survey.extensions import db
from tests.campaigns.helpers import make_campaign, schedule


def _events(subject: str) -> list[tuple[str, str, str | None, str | None]]:
    return [(event.action, event.actor, event.from_state, event.to_state) for event in db.session.scalars(
        select(AuditEvent).where(AuditEvent.subject == subject).order_by(AuditEvent.id))]


def test_a_campaign_s_life_is_in_the_trail(alumni, create_stakeholder, monkeypatch):
    """Found in review: creating, changing, scheduling and unscheduling a campaign left no event."""
    create_stakeholder()
    campaign = make_campaign(alumni)
    services.update_campaign(campaign, name="Alumni 2026, spring")
    services.update_campaign(campaign, name="Alumni 2026, spring")  # the same again: nothing changed
    schedule(campaign, monkeypatch)
    services.unschedule_campaign(campaign)
    db.session.commit()
    assert _events(f"campaign:{campaign.id}") == [
        ("campaign_created", "system", None, None),
        ("campaign_changed", "system", None, None),
        ("campaign_status", "system", "draft", "scheduled"),
        ("campaign_status", "system", "scheduled", "draft"),
    ]
    changed = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "campaign_changed"))
    assert changed.data == {"settings": ["name"]}
    assert verify().ok


def test_an_import_names_its_admin_and_its_counts(app, create_user):
    user = create_user(role="admin")
    with app.test_request_context():
        from flask_login import login_user

        login_user(user)
        import_audience(b"email;prenom\nada@example.org;Ada\nnot an address;Bob\n", "alumnus")
        db.session.commit()
    [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "audience_import")).all()
    assert (event.subject, event.actor) == ("audience:alumnus", f"user:{user.id}")
    assert event.data == {"created": 1, "updated": 0, "rejected": 1}
