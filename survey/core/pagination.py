"""Long lists, one page at a time: Flask-SQLAlchemy's pagination, read from ``?page=``,
where a page past the end shows the last one (a stale link still shows something)."""
from __future__ import annotations

from flask import request
from flask_sqlalchemy.pagination import Pagination

from survey.extensions import db

#: a larger ?page= is read as the last page (and never overflows the database's OFFSET)
MAX_PAGE = 10**9


def requested_page() -> int:
    return min(max(request.args.get("page", 1, type=int), 1), MAX_PAGE)


def paginate(statement, per_page: int) -> Pagination:
    """The requested page of ``statement``'s rows (``.items``, ``.page``, ``.pages``,
    ``.total``, ``.iter_pages()`` for the links)."""
    page = requested_page()
    result = db.paginate(statement, page=page, per_page=per_page, error_out=False)
    if not result.items and result.pages and page > result.pages:
        result = db.paginate(statement, page=result.pages, per_page=per_page, error_out=False)
    return result
