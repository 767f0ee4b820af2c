"""A person's own data, as JSON: the right of access (``flask --app wsgi people export``).

Everything held about them: contact data and attributes, suppression, each invitation
(campaign, dates, state, emails sent), the answers linked to them (drafts included),
their claims with state, details and evidence. Answers to anonymous campaigns are not
linked to anyone, so they cannot be part of it; the export says so.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from survey.audiences.models import Stakeholder
from survey.audit.chain import record
from survey.campaigns.models import Campaign, Invitation, Response
from survey.claims.models import Claim
from survey.core.types import utcnow
from survey.extensions import db
from survey.mail.models import OutboxMessage


def _when(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def export_person(person: Stakeholder, *, actor="cli") -> dict:
    """Everything about ``person``, JSON-ready; records the export in the audit trail."""
    invitations = db.session.execute(
        select(Invitation, Campaign).join(Campaign, Campaign.id == Invitation.campaign_id)
        .where(Invitation.stakeholder_id == person.id).order_by(Invitation.id)
    ).all()
    by_invitation = {r.invitation_id: r for r in db.session.scalars(
        select(Response).where(Response.invitation_id.in_([i.id for i, _c in invitations])))}
    emails: dict[int, list[dict]] = {}
    for message in db.session.scalars(select(OutboxMessage).where(
            OutboxMessage.invitation_id.in_([i.id for i, _c in invitations])).order_by(OutboxMessage.id)):
        emails.setdefault(message.invitation_id, []).append(
            {"kind": message.kind, "status": message.status, "sent_at": _when(message.sent_at)})

    def invitation_data(invitation: Invitation, campaign: Campaign) -> dict:
        response = by_invitation.get(invitation.id)
        return {
            "campaign": {"id": campaign.id, "name": campaign.name, "privacy": campaign.privacy},
            "status": invitation.status,
            "invited_at": _when(invitation.created_at), "sent_at": _when(invitation.sent_at),
            "opened_at": _when(invitation.opened_at), "started_at": _when(invitation.started_at),
            "completed_at": _when(invitation.completed_at), "opted_out_at": _when(invitation.opted_out_at),
            "reminders_sent": invitation.reminders_sent,
            "emails": emails.get(invitation.id, []),
            "answers": None if response is None else {
                "submitted": response.submitted_at is not None, "submitted_at": _when(response.submitted_at),
                "started_at": _when(response.started_at), "locale": response.locale,
                "answers": response.answers, "groups": response.segment,
            },
            **({"note": "anonymous campaign: answers are not linked to anyone, so none can be exported"}
               if campaign.privacy == "anonymous" else {}),
        }

    claims = db.session.scalars(select(Claim).where(Claim.stakeholder_id == person.id).order_by(Claim.id)).all()
    data = {
        "exported_at": _when(utcnow()),
        "person": {
            "email": person.email, "first_name": person.first_name, "last_name": person.last_name,
            "kind": person.kind, "locale": person.locale, "timezone": person.timezone,
            "attributes": person.attributes or {},
            "suppressed_at": _when(person.suppressed_at), "suppression_reason": person.suppression_reason,
            "created_at": _when(person.created_at), "updated_at": _when(person.updated_at),
        },
        "invitations": [invitation_data(i, c) for i, c in invitations],
        "claims": [{
            "id": claim.id, "campaign_id": claim.campaign_id, "outcome_type": claim.outcome_type,
            "state": claim.state, "details": claim.details, "attribution": claim.attribution,
            "created_at": _when(claim.created_at), "decided_at": _when(claim.decided_at),
            "decision_reason": claim.decision_reason, "revoked_reason": claim.revoked_reason,
            "evidence": [{
                "kind": item.kind, "source": item.source, "filename": item.filename, "media_type": item.media_type,
                "size": item.size, "url": item.url, "contact": item.contact, "added_at": _when(item.added_at),
            } for item in claim.evidence],
        } for claim in claims],
    }
    record("person_export", f"person:{person.id}", actor=actor)
    return data
