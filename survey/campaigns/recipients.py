"""A campaign's recipients, one page at a time, each with every email sent to them.

Used by the admin campaign page and by ``GET /api/v1/campaigns/<id>/recipients``.
Two queries per page whatever its size (plus one count): the page of invitations
with their people, then the outbox rows of exactly those invitations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time

from sqlalchemy import func, select

from survey.audiences.models import Stakeholder
from survey.campaigns.models import INVITATION_STATUSES, Campaign, Invitation
from survey.extensions import db
from survey.mail.models import OutboxMessage

PER_PAGE = 50
MAX_PER_PAGE = 200


@dataclass
class Recipient:
    invitation: Invitation
    person: Stakeholder
    #: every email of this invitation, invitation first, then reminders in order
    emails: list[OutboxMessage] = field(default_factory=list)


@dataclass
class RecipientsPage:
    items: list[Recipient]
    page: int
    per_page: int
    #: recipients matching the filters, on every page
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def recipients_page(campaign_id: int, *, page: int = 1, per_page: int = PER_PAGE,
                    status: str | None = None, email: str | None = None, total: int | None = None) -> RecipientsPage:
    """Invitations of a campaign in id order (offset pagination), filtered by
    invitation ``status`` and by a part of the ``email`` address; ``total``: how many
    match, when the caller counted them already."""
    if status is not None and status not in INVITATION_STATUSES:
        raise ValueError(f"unknown invitation status {status!r}")
    page = max(int(page), 1)
    per_page = min(max(int(per_page), 1), MAX_PER_PAGE)
    conditions = [Invitation.campaign_id == campaign_id]
    if status:
        conditions.append(Invitation.status == status)
    search = (email or "").strip().lower()
    if search:
        conditions.append(func.lower(Stakeholder.email).contains(search, autoescape=True))

    joined = select(Invitation, Stakeholder).join(Stakeholder, Stakeholder.id == Invitation.stakeholder_id)
    counted = select(func.count(Invitation.id))
    if search:  # every invitation has its person: the join only matters to search their address
        counted = counted.join(Stakeholder, Stakeholder.id == Invitation.stakeholder_id)
    if total is None:
        total = db.session.scalar(counted.where(*conditions)) or 0
    rows = db.session.execute(
        joined.where(*conditions).order_by(Invitation.id).limit(per_page).offset((page - 1) * per_page)
    ).all()
    items = [Recipient(invitation, person) for invitation, person in rows]
    if items:
        by_invitation = {item.invitation.id: item for item in items}
        for message in db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.invitation_id.in_(list(by_invitation)))
            .order_by(OutboxMessage.invitation_id, OutboxMessage.sequence, OutboxMessage.id)
        ):
            by_invitation[message.invitation_id].emails.append(message)
    return RecipientsPage(items=items, page=page, per_page=per_page, total=int(total))


def page_links(page: int, pages: int, around: int = 2) -> list[int | None]:
    """Page numbers to link to: the first, the last and those around ``page``;
    ``None`` where numbers are left out (1 … 4 5 [6] 7 8 … 20)."""
    wanted = {1, pages, *range(page - around, page + around + 1)}
    numbers = sorted(n for n in wanted if 1 <= n <= pages)
    links: list[int | None] = []
    for number in numbers:
        if links and number - links[-1] > 1:
            links.append(None)
        links.append(number)
    return links


def format_quiet_hours(start: time | None, end: time | None) -> str:
    """(20:00, 08:00) → "20:00-08:00"; no quiet hours → ""."""
    if start is None or end is None:
        return ""
    return f"{start:%H:%M}-{end:%H:%M}"


def campaign_quiet_hours(campaign: Campaign) -> str:
    return format_quiet_hours(campaign.quiet_hours_start, campaign.quiet_hours_end)
