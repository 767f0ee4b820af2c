"""The API's lists, one page at a time: campaigns (newest first) and the people in the
audiences (in the order they were added). Offset pagination, as the recipients'
(survey/campaigns/recipients.py): one count and one SELECT per page."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, func, select

from survey.audiences.models import Stakeholder
from survey.campaigns.models import Campaign
from survey.extensions import db


@dataclass
class Page:
    items: list
    page: int
    per_page: int
    #: items matching the filters, on every page
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def page_of(query: Select, *, page: int, per_page: int) -> Page:
    """``page`` of ``query`` (which has its ORDER BY); past the last page, no items."""
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    items = db.session.scalars(query.limit(per_page).offset((page - 1) * per_page)).all()
    return Page(items=list(items), page=page, per_page=per_page, total=int(total))


def campaigns_page(*, page: int, per_page: int, status: str | None = None) -> Page:
    query = select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id.desc())
    if status:
        query = query.where(Campaign.status == status)
    return page_of(query, page=page, per_page=per_page)


def people_page(*, page: int, per_page: int, kind: str | None = None, email: str | None = None) -> Page:
    """People of ``kind`` whose address contains ``email`` (any case), suppressed or not."""
    query = select(Stakeholder).order_by(Stakeholder.id)
    if kind:
        query = query.where(Stakeholder.kind == kind)
    search = (email or "").strip().lower()
    if search:
        query = query.where(func.lower(Stakeholder.email).contains(search, autoescape=True))
    return page_of(query, page=page, per_page=per_page)
